"""The complex step: ``Im f(x + ih e_k) / h``, exact to rounding for real-analytic code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.numeric._base import (
    _CS_ROUNDING,
    _EPS,
    _TINY,
    Estimate,
    _Evaluator,
    _finish,
    _validate,
    complex_step_size,
)

_UNMEASURABLE = 2.0**-30  # a step above this fraction of a nonzero element does not measure it


def _complex_steps(xk: np.ndarray, scale: Any = None) -> np.ndarray:
    """Powers of two (so ``Im/h`` is exact): :func:`complex_step_size`."""
    return complex_step_size(xk, scale)


def _complex_bound(value: np.ndarray, h: np.ndarray, terms: Any, eps: float) -> np.ndarray:
    """Rounding relative to the terms each element sums (by default the gradient's largest
    element), plus the resolution of ``Im f / h``: imaginary parts below the smallest normal
    number lose digits (subnormals)."""
    scale = np.max(np.abs(value), initial=0.0) if terms is None else terms
    return _CS_ROUNDING * eps * (np.abs(value) + scale) + _TINY / h


def _validate_complex_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind != "c" or np.finfo(dt).eps > _EPS:
        raise InvalidArgument(
            f"`dtype` must be complex128 or a wider complex dtype (np.clongdouble), got {dt}"
        )
    return dt


def _validate_terms(terms: Any, shape: tuple[int, ...], idx: np.ndarray) -> Any:
    if terms is None:
        return None
    arr = np.asarray(terms, dtype=np.float64)
    if arr.shape != shape or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidArgument(
            f"`terms` must be non-negative finite floats of `x`'s shape {shape}, "
            f"got shape {arr.shape}"
        )
    return arr.reshape(-1)[idx]


def complex_step(f: Callable[[np.ndarray], Any], x: Any, *, indices: Any = None,
                 terms: Any = None, dtype: Any = np.complex128) -> Estimate:
    """Gradient by the complex step ``Im f(x + ih e_k) / h``: exact to rounding, one call each.

    Parameters
    ----------
    f : callable
        ``f(arr) -> scalar``; must carry the imaginary part of a complex ``arr`` through
        real-analytic operations only (see :func:`probe_complex_step`).
    x : array of float
        Point of evaluation; never modified. Evaluated as complex128.
    indices : 1-D array of int, optional
        Flat indices of the elements to estimate; all when omitted.
    terms : array of float, optional
        ``x``'s shape: the magnitude of the terms each element's derivative sums, to which its
        rounding is relative; by default the largest ``|v|`` over the estimated elements.
    dtype : complex dtype
        ``complex128``, or ``np.clongdouble`` for a second, more precise estimate (a witness:
        its difference from the first measures the first's rounding).

    Returns
    -------
    Estimate
        ``method="complex"``, error ``2⁷·ε·(|v_k| + T_k) + 2⁻¹⁰²²/h_k`` with ``T_k`` the
        ``terms`` (see the module docstring for what it leaves out), step ``h``.

    Raises
    ------
    InvalidArgument
        ``x`` not a finite float array, ``indices`` out of range, ``f`` not returning a finite
        scalar.

    Examples
    --------
    >>> est = complex_step(lambda a: np.sum(np.sin(a)), np.array([0.0, 1.0]))
    >>> bool(np.all(np.abs(est.value - np.cos([0.0, 1.0])) <= est.error)), est.nfev
    (True, 2)
    """
    problem = _validate(f, x, indices)
    dt = _validate_complex_dtype(dtype)
    scale = _validate_terms(terms, problem.x.shape, problem.idx)
    ev = _Evaluator(problem)
    h = _complex_steps(problem.x.flat[problem.idx], scale)
    value = ev.imag_many(problem.idx, h, dt).imag / h
    error = _complex_bound(value, h, scale, float(np.finfo(dt).eps))
    # an element too close to underflow for any step far below itself (1e-300) is not measured
    xk = np.abs(problem.x.flat[problem.idx])
    error = np.where((xk > 0) & (h > _UNMEASURABLE * xk), np.inf, error)
    return _finish(problem, value, error, ev.nfev, "complex", h)



def rebound(est: Estimate, terms: Any) -> Estimate:
    """``est``'s bound again for other term magnitudes ``T_k`` (its own shape), without a new
    evaluation: a check first bounds the complex step with the terms it knows and widens the
    bound only when a verdict needs the measured ones.

    Examples
    --------
    >>> est = complex_step(lambda a: np.sum(a ** 2), np.array([1.0, 2.0]), terms=np.zeros(2))
    >>> bool(np.all(rebound(est, np.full(2, 1e3)).error > est.error))
    True
    """
    if est.method != "complex":
        raise InvalidArgument(f"`est` must come from the complex step, got {est.method!r}")
    scale = np.asarray(terms, dtype=np.float64)
    if scale.shape != est.value.shape or not np.all(np.isfinite(scale)) or np.any(scale < 0):
        raise InvalidArgument(f"`terms` must be non-negative finite floats of shape "
                              f"{est.value.shape}, got shape {scale.shape}")
    return replace(est, error=_complex_bound(est.value, est.step, scale, _EPS))
