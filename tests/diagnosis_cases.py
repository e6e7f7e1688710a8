"""Every learner mistake of the two catalogs as one runnable case, for the test and the bench.

A case is (op, mistake name, shape, seed) -> the check's {gradient: cause}, and whether the
headline named it right: every gradient in the mistake's ``expected`` carries its cause, and any
other failing gradient carries one of those causes or none. The BatchNorm catalog
(``bn_catalog``) runs at its own shapes (N, D).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import bn_catalog as bn
import learner_catalog as lc
import numpy as np

from gradcheck.check import check_layer
from gradcheck.layer import from_functions

BN_SHAPES = ((5, 4), (7, 3), (9, 5))  # odd N: "odd-batch-only" is right at even N


@dataclass(frozen=True)
class Outcome:
    failed: bool  # the check failed (a mistake a check cannot see would pass)
    got: Mapping[str, str]  # {failing gradient: diagnosed cause, "" for none}
    right: bool
    headline: str  # the first failing gradient's headline


def bn_inputs(shape: tuple[int, ...], seed: int) -> dict[str, np.ndarray]:
    n, d = shape
    rng = np.random.default_rng([seed, 99])
    return {"x": rng.normal(1.5, 2.0, size=(n, d)),
            "gamma": rng.choice([-1.0, 1.0], d) * rng.uniform(0.5, 2.0, d),
            "beta": rng.normal(size=d)}


def mistakes() -> dict[str, tuple[str, Mapping[str, str]]]:
    """{mistake: (op, expected)} over both catalogs, gradient mistakes only."""
    out = {f"batchnorm-{k}": ("batchnorm", v) for k, v in bn.EXPECTED.items() if v}
    out.update({k: (m.op, m.expected) for k, m in lc.MISTAKES.items()})
    return out


def shapes(op: str) -> tuple[tuple[int, ...], ...]:
    return BN_SHAPES if op == "batchnorm" else lc.OPS[op].shapes


def _layer_and_inputs(name: str, op: str, shape: tuple[int, ...], seed: int, correct: bool):
    if op == "batchnorm":
        backward = bn.backward_compact if correct else bn.BROKEN[name.removeprefix("batchnorm-")]
        layer = from_functions(bn.batchnorm_forward, backward,
                               config={"bn_param": {"mode": "train", "eps": 1e-3}})
        return layer, bn_inputs(shape, seed)
    spec = lc.OPS[op]
    m = None if correct else lc.MISTAKES[name]
    forward = m.forward if m is not None and m.forward is not None else spec.forward
    backward = m.backward if m is not None and m.backward is not None else spec.backward
    return from_functions(forward, backward, config=spec.config(shape, seed)), spec.inputs(
        shape, seed)


def run(name: str, op: str, shape: tuple[int, ...], seed: int, *, correct: bool = False,
        expected: Mapping[str, str] | None = None) -> Outcome:
    layer, inputs = _layer_and_inputs(name, op, shape, seed, correct)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = check_layer(layer, inputs, seed=seed)
    bad = [r for r in report.results if not r.passed]
    got = {r.name: r.diagnosis.cause if r.diagnosis is not None else "" for r in bad}
    want = dict(expected or {})
    right = bool(bad) and all(got.get(k) == v for k, v in want.items()) and all(
        got[k] in ("", *want.values()) for k in got if k not in want)
    first = next((r for r in bad if r.diagnosis is not None and r.diagnosis.findings), None)
    headline = first.diagnosis.findings[0].text if first is not None else ""
    claimed = any(r.diagnosis is not None for r in report.results)
    return Outcome(bool(bad) or claimed, got, right, headline)
