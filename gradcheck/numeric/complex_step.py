"""The complex step: ``Im f(x + ih e_k) / h``, exact to rounding for real-analytic code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck.numeric._base import (
    _CS_EXPONENT,
    _CS_ROUNDING,
    _EPS,
    _TINY,
    Estimate,
    _Evaluator,
    _finish,
    _validate,
)


def _complex_steps(xk: np.ndarray) -> np.ndarray:
    """``2**-360 * max(1, |x|)`` rounded down to a power of two, so ``Im/h`` is exact."""
    _, exponent = np.frexp(np.maximum(1.0, np.abs(xk)))
    return np.ldexp(1.0, exponent - 1 + _CS_EXPONENT)


def _complex_bound(value: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Rounding relative to the gradient's scale, plus the resolution of ``Im f / h``: imaginary
    parts below the smallest normal number lose digits (subnormals)."""
    scale = np.max(np.abs(value), initial=0.0)
    return _CS_ROUNDING * _EPS * (np.abs(value) + scale) + _TINY / h


def complex_step(f: Callable[[np.ndarray], Any], x: Any, *, indices: Any = None) -> Estimate:
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

    Returns
    -------
    Estimate
        ``method="complex"``, error ``2⁷·ε·(|v_k| + max|v|) + 2⁻¹⁰²²/h_k`` (the maximum over
        the estimated elements; see the module docstring for what it leaves out), step ``h``.

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
    ev = _Evaluator(problem)
    h = _complex_steps(problem.x.flat[problem.idx])
    value = np.array([ev.imag_at(int(k), hk).imag for k, hk in zip(problem.idx, h, strict=True)])
    value = value / h
    error = _complex_bound(value, h)
    return _finish(problem, value, error, ev.nfev, "complex", h)

