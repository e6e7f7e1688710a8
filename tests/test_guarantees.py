"""The verdict's printed claims, as properties over the catalogs of correct layers.

- ``detectable`` is a guarantee: an error ten times that size (relative to the gradient's
  largest element, in the error's largest element), injected into a correct backward at random
  positions and in random patterns, fails.
- Statuses do not depend on units: scaling a layer's output (and so its gradients) by ``2^k``
  changes none.
- Statuses do not depend on memory layout: C order, Fortran order and strided views agree.

The layers come from ``tests/correct_layers.py`` and ``tests/adversary_catalog.py`` (written
without reading the engine); nothing here computes an expected value with gradcheck.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from correct_layers import correct_cases
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gradcheck import check_layer

MODES = ("full", "sampled", "directional")
PATTERNS = ("relative", "one", "slice", "noise", "offset")
# Small, smooth cases keep the property runs short; kinks and zeros are kept (their statuses
# must be just as invariant), inputs above 600 elements are left to the catalog tests.
CASES = [c for c in correct_cases()
         if sum(np.asarray(v).size for v in c.inputs.values()) <= 600]


class Wrapped:
    """A catalog layer whose outputs are scaled by ``2^k`` and whose gradient ``name`` carries an
    injected error ``size · max|true| · pattern`` (the same in every dtype it runs in)."""

    def __init__(self, inner: Any, k: int = 0, name: str = "", pattern: np.ndarray | None = None,
                 size: float = 0.0) -> None:
        self.inner, self.k, self.target, self.pattern, self.size = inner, k, name, pattern, size
        self.name = getattr(inner, "name", "layer")

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        out, cache = self.inner.forward(inputs)
        return (np.asarray(out) * 2.0**self.k if self.k else out), cache  # exact: a power of 2

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        grads = dict(self.inner.backward(dout, cache))
        if self.k:
            grads = {n: np.asarray(v) * 2.0**self.k for n, v in grads.items()}
        if self.pattern is not None:
            true = np.asarray(grads[self.target])
            top = np.max(np.abs(true.astype(np.float64)))
            grads[self.target] = true + (self.size * top * self.pattern).astype(true.dtype)
        return grads


def _pattern(kind: str, shape: tuple[int, ...], rng: np.random.Generator,
             true: np.ndarray) -> np.ndarray:
    size = math.prod(shape)
    if kind == "relative":
        top = float(np.max(np.abs(true)))
        return (true / top).reshape(shape) if top else np.ones(shape)
    if kind == "offset":
        return np.full(shape, rng.choice([-1.0, 1.0]))
    if kind == "noise":
        noise = rng.uniform(-1.0, 1.0, size)
        return (noise / np.max(np.abs(noise))).reshape(shape)
    out = np.zeros(shape)
    if kind == "one":
        out.flat[int(rng.integers(size))] = rng.choice([-1.0, 1.0])
        return out
    axis = int(rng.integers(len(shape))) if shape else 0
    index = (slice(None),) * axis + (int(rng.integers(shape[axis])),)
    out[index] = rng.choice([-1.0, 1.0])
    return out


def _check(layer: Any, case: Any, mode: str, inputs: Mapping[str, np.ndarray] | None = None):
    options = {**case.options, "mode": mode}
    return check_layer(layer, dict(case.inputs if inputs is None else inputs), dout=case.dout,
                       **options)


_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.filterwarnings("ignore")
@_SETTINGS
@given(case=st.sampled_from(CASES), mode=st.sampled_from(MODES),
       kind=st.sampled_from(PATTERNS), seed=st.integers(0, 2**16))
def test_an_error_ten_times_detectable_fails(case: Any, mode: str, kind: str, seed: int) -> None:
    clean = _check(case.layer, case, mode)
    rng = np.random.default_rng(seed)
    candidates = [r for r in clean.results if np.isfinite(r.detectable) and r.passed]
    assume(candidates)
    result = candidates[int(rng.integers(len(candidates)))]
    shape = case.inputs[result.name].shape
    out, cache = case.layer.forward(dict(case.inputs))
    g = np.ones_like(np.asarray(out)) if case.dout is None else case.dout
    true = np.asarray(case.layer.backward(g, cache)[result.name], dtype=np.float64)
    pattern = _pattern(kind, shape, rng, true)
    wrong = Wrapped(case.layer, name=result.name, pattern=pattern,
                    size=10 * result.detectable)
    report = _check(wrong, case, mode)
    status = {r.name: r.status for r in report.results}[result.name]
    assert status == "fail", (case.key, mode, kind, result.detectable, status,
                              [r.message for r in report.results])


@pytest.mark.filterwarnings("ignore")
@_SETTINGS
@given(case=st.sampled_from(CASES), mode=st.sampled_from(MODES),
       k=st.sampled_from([-600, -300, -97, -1, 1, 53, 300, 600]))
def test_scaling_outputs_by_a_power_of_two_changes_no_status(case: Any, mode: str,
                                                            k: int) -> None:
    out, _ = case.layer.forward(dict(case.inputs))
    info = np.finfo(np.asarray(out).dtype)  # scaled values stay normal numbers of the dtype
    top = float(np.max(np.abs(np.asarray(out, dtype=np.float64))))
    span = 2.0 ** (info.nexp // 2 + 4)  # room for the terms inside the layer (float64: 2^-1006)
    assume(top == 0.0 or float(info.tiny) * span < top * 2.0**k < float(info.max) / span)
    base = {r.name: r.status for r in _check(case.layer, case, mode).results}
    scaled = {r.name: r.status for r in _check(Wrapped(case.layer, k=k), case, mode).results}
    assert scaled == base, (case.key, mode, k)


def _layouts(inputs: Mapping[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    out = {}
    for name, v in inputs.items():
        v = np.asarray(v)
        if kind == "fortran":
            out[name] = np.asfortranarray(v)
        elif kind == "strided":
            big = np.zeros((2, *v.shape), dtype=v.dtype)
            big[0] = v
            out[name] = big[0]  # a view into a larger array
            if v.ndim:
                wide = np.zeros((*v.shape[:-1], 2 * v.shape[-1]), dtype=v.dtype)
                wide[..., ::2] = v
                out[name] = wide[..., ::2]  # non-contiguous along the last axis
        else:
            out[name] = np.asarray(v).T.copy().T if kind == "transposed" else v
    return out


@pytest.mark.filterwarnings("ignore")
@_SETTINGS
@given(case=st.sampled_from(CASES), mode=st.sampled_from(MODES),
       kind=st.sampled_from(["fortran", "strided", "transposed"]))
def test_memory_layout_changes_no_status(case: Any, mode: str, kind: str) -> None:
    base = {r.name: r.status for r in _check(case.layer, case, mode).results}
    other = {r.name: r.status
             for r in _check(case.layer, case, mode, _layouts(case.inputs, kind)).results}
    assert other == base, (case.key, mode, kind)
