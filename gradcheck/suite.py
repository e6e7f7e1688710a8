"""The reference suite behind ``gradcheck run`` and ``make check``: BatchNorm checked every way.

Cases: backward form (staged, compact) x mode (train, eval) x layout ((N, D), (N, C, H, W)) x
dtype (float64, float32) x numerical method (complex, richardson, central), each through the
public :func:`gradcheck.check_layer`. Inputs are deliberately awkward: a per-channel offset of
12 with spread 5, gamma drawn around 1 with mixed signs, odd N.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import IO

import numpy as np

from gradcheck.check import CheckReport, check_layer
from gradcheck.layers.batchnorm import BatchNorm

SHAPES = {"N,D": (7, 5), "N,C,H,W": (3, 4, 3, 2)}
FORMS = ("staged", "compact")
MODES = ("train", "eval")
DTYPES = ("float64", "float32")
METHODS = ("complex", "richardson", "central")


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


def run_reference_suite(*, quick: bool = False, progress: IO[str] | None = None,
                        seed: int = 0) -> list[CheckReport]:
    """Check the reference BatchNorm in every case; one report per case, labelled."""
    reports = []
    all_cases = list(cases(quick))
    show = progress is not None and progress.isatty()
    for i, (layout, form, mode, dtype, method) in enumerate(all_cases, 1):
        rng = np.random.default_rng([seed, i])
        shape = SHAPES[layout]
        layer = _layer(form, mode, shape[1], rng)
        with warnings.catch_warnings():  # float32 cases warn by design; the report keeps it
            warnings.simplefilter("ignore", UserWarning)
            report = check_layer(layer, _inputs(shape, dtype, rng), method=method, seed=seed)
        label = f"{layout} {form} {mode} {dtype} {method}"
        reports.append(replace(report, case=label))
        if show and progress is not None:
            verdict = "pass" if report.passed else "FAIL"
            progress.write(f"\r[{i}/{len(all_cases)}] {label}: {verdict}   ")
            progress.flush()
    if show and progress is not None:
        progress.write("\n")
    return reports

