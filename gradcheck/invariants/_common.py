"""Shared machinery of the invariants: the result type, validation, calling the layer, judging.

Every check calls the layer on fresh copies (:func:`_call`), turns an unusable result into a failed
:class:`InvariantResult` (:func:`_reports`), and judges errors against per-element tolerances at the
worst ratio (:func:`_judge`). The constant ``_C`` is the error model's count of rounded operations
per path (see :mod:`gradcheck.invariants.batchnorm`, "Error model").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument, LayerError

_C = 10.0  # rounded operations per path; see "Error model" in the module docstring


@dataclass(frozen=True)
class InvariantResult:
    """The verdict on one identity.

    ``max_error`` and ``tolerance`` are taken where ``error / tolerance`` is largest, so
    ``passed`` is ``max_error <= tolerance``; an exact identity has ``tolerance == 0``.
    ``detail`` says what was compared and where the worst element is.
    """

    name: str
    passed: bool
    max_error: float
    tolerance: float
    detail: str


class _Unusable(Exception):
    """The layer returned something the identity cannot be evaluated on."""


def _float_array(name: str, a: Any) -> np.ndarray:
    arr = np.array(a, copy=True)
    if arr.dtype.kind != "f":
        raise InvalidArgument(f"`{name}` must have a real floating dtype, got {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise InvalidArgument(f"`{name}` must be finite, got NaN or inf")
    return arr


def _eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise InvalidArgument(f"`eps` must be a non-negative float, got {eps!r}")
    if not np.isfinite(eps) or eps < 0:
        raise InvalidArgument(f"`eps` must be a non-negative finite float, got {eps!r}")
    return float(eps)


def _default_dout(x: np.ndarray) -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(x.shape) + 0.5).astype(x.dtype)


def _moments(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and biased variance, two-pass in float64."""
    mean = rows.mean(axis=1)
    centred = rows - mean[:, None]
    return mean, (centred * centred).mean(axis=1)


def _copy(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return a.copy()
    if isinstance(a, list):
        return [_copy(b) for b in a]
    return a


def _call(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call the layer on fresh copies; wrap whatever it raises in :class:`LayerError`."""
    try:
        return fn(*(_copy(a) for a in args))
    except Exception as exc:
        raise LayerError(f"`{what}` raised {type(exc).__name__}: {exc}") from exc


def _result(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind != "f" or arr.shape != shape:
        raise _Unusable(
            f"{name} must be a real float array of shape {shape}, "
            f"got {arr.dtype} of shape {arr.shape}"
        )
    return arr


def _unit(*arrays: np.ndarray) -> float:
    """Machine epsilon of the least precise dtype among ``arrays``."""
    return max(float(np.finfo(a.dtype).eps) for a in arrays)


def _reports(name: str) -> Callable[[Callable[..., InvariantResult]], Any]:
    """Turn an unusable layer result into a failed :class:`InvariantResult` named ``name``."""

    def wrap(check: Callable[..., InvariantResult]) -> Callable[..., InvariantResult]:
        @functools.wraps(check)
        def run(*args: Any, **kwargs: Any) -> InvariantResult:
            try:
                return check(*args, **kwargs)
            except _Unusable as exc:
                return InvariantResult(name, False, float("inf"), 0.0, str(exc))

        return run

    return wrap


def _judge(
    name: str, error: np.ndarray, tolerance: Any, what: str, floor: float = 0.0
) -> InvariantResult:
    """The verdict at the element where ``|error| / tolerance`` is largest.

    ``floor`` is added to every tolerance (the underflow budget; 0 for exact identities).
    """
    err = np.abs(np.asarray(error, dtype=np.float64))
    err = np.where(np.isfinite(err), err, np.inf)
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64) + floor, err.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tol > 0, err / tol, np.where(err > 0, np.inf, 0.0))
    worst = np.unravel_index(int(np.argmax(ratio)), err.shape)
    e, t = float(err[worst]), float(tol[worst])
    passed = bool(np.all(err <= tol))
    verdict = "holds" if passed else "FAILS"
    detail = f"{what}: {verdict}; worst at {tuple(int(i) for i in worst)}: "
    return InvariantResult(name, passed, e, t, detail + f"error {e:.3g}, tolerance {t:.3g}")

