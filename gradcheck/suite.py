"""The reference suite behind ``gradcheck run`` and ``make check``: every reference, every way.

BatchNorm cases: backward form (staged, compact) x mode (train, eval) x layout ((N, D),
(N, C, H, W)) x dtype (float64, float32) x numerical method (complex, richardson, central).
LayerNorm, GroupNorm and instance norm cases (:data:`NORMS`: LayerNorm on (N, D) with
per-feature and on (N, C, H, W) with PyTorch's elementwise (C, H, W) parameters, GroupNorm with
2 groups, instance norm): form x dtype x method. Each runs through the public
:func:`gradcheck.check_layer`. Inputs are deliberately awkward: an offset of 12 with spread 5,
gamma drawn around 1 with mixed signs, odd N.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import IO, Any

import numpy as np

from gradcheck import kinds
from gradcheck.check import CheckReport, check_layer
from gradcheck.errors import GradcheckWarning
from gradcheck.layers.batchnorm import BatchNorm
from gradcheck.layers.groupnorm import GroupNorm, InstanceNorm
from gradcheck.layers.layernorm import LayerNorm

SHAPES = {"N,D": (7, 5), "N,C,H,W": (3, 4, 3, 2)}
FORMS = ("staged", "compact")
MODES = ("train", "eval")
DTYPES = ("float64", "float32")
METHODS = (kinds.COMPLEX, kinds.RICHARDSON, kinds.CENTRAL)  # the quick suite runs the first
#: LayerNorm/GroupNorm/instance norm cases: name -> (x shape, a layer for a backward form).
NORMS: dict[str, tuple[tuple[int, ...], Any]] = {
    "LayerNorm N,D": ((7, 5), lambda form: LayerNorm(5, backward_form=form)),
    "LayerNorm N,C,H,W": ((3, 4, 3, 2), lambda form: LayerNorm((4, 3, 2), backward_form=form)),
    "GroupNorm N,C,H,W G=2": ((3, 4, 3, 2), lambda form: GroupNorm(2, 4, backward_form=form)),
    "InstanceNorm N,C,H,W": ((3, 4, 3, 2), lambda form: InstanceNorm(4, backward_form=form)),
}


def _layer(form: str, mode: str, channels: int, rng: np.random.Generator) -> BatchNorm:
    bn = BatchNorm(channels, backward_form=form)  # type: ignore[arg-type]
    if mode == "eval":
        for _ in range(3):  # give the running statistics realistic values
            bn(rng.normal(12.0, 5.0, size=(16, channels)))
        bn.training = False
    return bn


def _inputs(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    c = shape[1]
    return {
        "x": rng.normal(12.0, 5.0, size=shape).astype(dtype),
        "gamma": (rng.choice([-1.0, 1.0], c) * rng.uniform(0.5, 2.0, c)).astype(dtype),
        "beta": rng.normal(0.0, 1.0, c).astype(dtype),
    }


def cases(quick: bool = False) -> Iterator[tuple[str, str, str, str, str]]:
    """(layout, form, mode, dtype, method) for every case of the suite."""
    methods = METHODS[:1] if quick else METHODS
    yield from itertools.product(SHAPES, FORMS, MODES, DTYPES, methods)


def norm_cases(quick: bool = False) -> Iterator[tuple[str, str, str, str]]:
    """(norm, form, dtype, method) for every LayerNorm/GroupNorm case of the suite."""
    methods = METHODS[:1] if quick else METHODS
    yield from itertools.product(NORMS, FORMS, DTYPES, methods)


def _norm_inputs(layer: Any, shape: tuple[int, ...], dtype: str,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    p = layer.gamma.shape
    return {
        "x": rng.normal(12.0, 5.0, size=shape).astype(dtype),
        "gamma": (rng.choice([-1.0, 1.0], p) * rng.uniform(0.5, 2.0, p)).astype(dtype),
        "beta": rng.normal(0.0, 1.0, p).astype(dtype),
    }


def _all_cases(quick: bool, seed: int) -> list[tuple[str, Any, dict[str, np.ndarray], str]]:
    """(label, layer, inputs, method) for every case, inputs drawn in order from one seed."""
    out = []
    for i, (layout, form, mode, dtype, method) in enumerate(cases(quick), 1):
        rng = np.random.default_rng([seed, i])
        shape = SHAPES[layout]
        layer = _layer(form, mode, shape[1], rng)
        out.append((f"{layout} {form} {mode} {dtype} {method}", layer,
                    _inputs(shape, dtype, rng), method))
    for j, (norm, form, dtype, method) in enumerate(norm_cases(quick), 1):
        rng = np.random.default_rng([seed, 1, j])
        shape, make = NORMS[norm]
        layer = make(form)
        out.append((f"{norm} {form} {dtype} {method}", layer,
                    _norm_inputs(layer, shape, dtype, rng), method))
    return out


def run_reference_suite(*, quick: bool = False, progress: IO[str] | None = None,
                        seed: int = 0) -> list[CheckReport]:
    """Check every reference layer in every case; one report per case, labelled."""
    reports = []
    all_cases = _all_cases(quick, seed)
    show = progress is not None and progress.isatty()
    for i, (label, layer, inputs, method) in enumerate(all_cases, 1):
        with warnings.catch_warnings():  # float32 cases warn by design; the report keeps it
            warnings.simplefilter("ignore", GradcheckWarning)
            report = check_layer(layer, inputs, method=method, seed=seed)
        reports.append(replace(report, case=label))
        if show and progress is not None:
            verdict = report.verdict if report.passed else report.verdict.upper()
            progress.write(f"\r[{i}/{len(all_cases)}] {label}: {verdict}   ")
            progress.flush()
    if show and progress is not None:
        progress.write("\n")
    return reports
