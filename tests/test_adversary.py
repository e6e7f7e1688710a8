"""The adversaries' catalogs as tests: layers written by testers who never read the engine.

``tests/adversary_catalog.py`` (and ``adversary2``..``adversary4``, later rounds) hold
families of correct layers, valid alternative conventions at ties, realistic bugs and synthetic
perturbations; their ground truth comes from torch autograd or mpmath (``bench/
adversary_truth.py``), never from gradcheck. Here:

- no correct layer fails (full and directional mode; inconclusive is allowed, and counted by
  ``bench/adversary.py``);
- every wrong backward whose error (largest element, relative to the true gradient's largest
  element, measured on the very ``dout`` the check used) is above the ``detectable`` the result
  states, fails.

The few families where the verdict is still known to be wrong are marked ``xfail(strict=True)``
with the reason: the day they pass, the mark must go.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from typing import Any

import numpy as np
import pytest

from gradcheck import check_layer, from_functions

FAILING = {"fail", "shape", "nonfinite"}
CATALOGS = [name for name in ("adversary_catalog", "adversary2_catalog", "adversary3_catalog",
                              "adversary4_catalog")
            if importlib.util.find_spec(name) is not None]
# (catalog, family, case name, mode): why the verdict is still wrong there (see the issue note)
KNOWN: dict[tuple[str, str, str, str], str] = {}


def _cases(kinds: set[str]) -> list[Any]:
    params = []
    for catalog in CATALOGS:
        module = importlib.import_module(catalog)
        for case in module.cases():
            if case.kind in kinds:
                params.append((catalog, case))
    return params


def _id(param: tuple[str, Any]) -> str:
    catalog, case = param
    return f"{catalog.removesuffix('_catalog')}-{case.family}-{case.name}"


class _Measured:
    """The case's layer; records, at the first backward in the inputs' dtype, how far it is from
    the correct backward on that very ``dout`` (per gradient, relative to the largest element)."""

    def __init__(self, case: Any, dtype: np.dtype) -> None:
        self.case, self.dtype = case, dtype
        self.size: list[float] | None = None
        self.matched = False

    def backward(self, dout: Any, cache: Any) -> tuple[Any, ...]:
        got = self.case.backward(dout, cache)
        if not self.matched:  # the first call, or the first in the inputs' dtype
            true = self.case.correct_backward(dout, cache)
            self.size = [_relative(g, t) for g, t in zip(got, true, strict=True)]
            self.matched = np.asarray(dout).dtype == self.dtype
        return got


def _relative(got: Any, true: Any) -> float:
    g, t = np.asarray(got, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if g.shape != t.shape:
        return math.inf
    top = float(np.max(np.abs(t), initial=0.0))
    diff = float(np.max(np.abs(g - t), initial=0.0))
    return diff / top if top > 0 else (math.inf if diff > 0 else 0.0)


def _known(catalog: str, case: Any, mode: str) -> None:
    reason = KNOWN.get((catalog, case.family, case.name, mode))
    if reason:
        pytest.xfail(reason)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("mode", ["full", "directional"])
@pytest.mark.parametrize("param", _cases({"correct"}), ids=_id)
def test_a_correct_adversary_layer_never_fails(param: tuple[str, Any], mode: str) -> None:
    catalog, case = param
    inputs = case.make_inputs(np.random.default_rng(0))
    report = check_layer(from_functions(case.forward, case.backward), inputs, mode=mode)
    bad = {r.name: r.message[:200] for r in report.results if r.status in FAILING}
    if bad:
        _known(catalog, case, mode)
    assert not bad, bad
    # A pass resting on directions claims something: that an error of `detectable` would fail.
    if mode == "directional":
        unproven = {r.name: r.status for r in report.results
                    if r.status in ("pass", "kink") and not math.isfinite(r.detectable)}
        assert not unproven, unproven


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("param", _cases({"bug", "precision", "synthetic"}), ids=_id)
def test_an_adversary_bug_above_detectable_fails(param: tuple[str, Any]) -> None:
    catalog, case = param
    inputs = case.make_inputs(np.random.default_rng(0))
    dtype = np.result_type(*inputs.values())
    measured = _Measured(case, dtype)
    report = check_layer(from_functions(case.forward, measured.backward), inputs, mode="full")
    assert measured.size is not None
    if report.problems:  # a backward that mutates its cache or dout fails the check as a whole
        assert report.verdict == "fail"
        return
    escaped = {r.name: (size, r.detectable, r.status)
               for r, size in zip(report.results, measured.size, strict=True)
               if size > 0 and math.isfinite(r.detectable) and size > r.detectable
               and r.status not in FAILING}
    if escaped:
        _known(catalog, case, "full")
    assert not escaped, escaped
