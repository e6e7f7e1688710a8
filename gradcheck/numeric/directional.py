"""Directional derivatives ``dφ/dt`` at 0: O(1) evaluations whatever the size of ``x``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.numeric._base import (
    _CS_ROUNDING,
    _EPS,
    _TINY,
    Estimate,
    _as_scalar,
    _validate_f,
    _validate_method,
    _validate_noise,
    complex_step_size,
    one_by_one,
)
from gradcheck.numeric.central import _central_core
from gradcheck.numeric.richardson import _RICH_FIRST, _richardson_core


class _PhiEvaluator:
    """Calls ``phi(t)`` and counts the calls."""

    def __init__(self, phi: Callable[[Any], Any]) -> None:
        self.phi = phi
        self.nfev = 0

    def real(self, t: float) -> float:
        self.nfev += 1
        return float(_as_scalar(self.phi(t), f"at t={t!r}", name="phi").real)

    def real_or_nan(self, t: float) -> float:
        """As :meth:`real`, but NaN where ``phi`` is not finite (a step too large for it, e.g.
        a log of a negative number), which Richardson's restarts shrink away."""
        try:
            with np.errstate(all="ignore"):
                return self.real(t)
        except InvalidArgument as exc:
            if "finite" not in str(exc):
                raise
            return float("nan")

    def imag(self, h: float) -> float:
        self.nfev += 1
        return _as_scalar(self.phi(1j * h), f"at t={1j * h!r}", complex_ok=True, name="phi").imag


_GOLDEN = (1 + 5**0.5) / 2


def _directional_complex(ev: _PhiEvaluator, noise: float | None,
                         terms: float | None) -> tuple[float, float, float]:
    h1 = float(complex_step_size(0.0, terms))
    v1 = ev.imag(h1) / h1
    if terms is not None:  # the rounding is bounded by the terms: one evaluation is enough
        return v1, _CS_ROUNDING * _EPS * (abs(v1) + terms) + _TINY / h1, h1
    h2 = h1 * _GOLDEN  # not a power of two: different rounding, same (zero) truncation
    v2 = ev.imag(h2) / h2
    return v1, 2 * abs(v1 - v2) + _CS_ROUNDING * _EPS * abs(v1) + _TINY / h1, h1


def _directional_central(ev: _PhiEvaluator, noise: float | None,
                         terms: float | None = None) -> tuple[float, float, float]:
    value, error, step = _central_core(one_by_one(lambda j, t: ev.real(t)), np.zeros(1),
                                       noise or 0.0)
    return float(value[0]), float(error[0]), float(step[0])


def _directional_richardson(ev: _PhiEvaluator, noise: float | None,
                            terms: float | None = None) -> tuple[float, float, float]:
    value, error, step = _richardson_core(
        one_by_one(lambda j, t: ev.real_or_nan(t)), np.zeros(1), np.array([_RICH_FIRST]),
        ev.real(0.0),
        noise or 0.0,
    )
    return float(value[0]), float(error[0]), float(step[0])


_DIRECTIONAL = {
    "complex": _directional_complex,
    "central": _directional_central,
    "richardson": _directional_richardson,
}


def directional(
    phi: Callable[[Any], Any], *, method: str, noise: float | None = None,
    terms: float | None = None,
) -> Estimate:
    """Derivative ``dφ/dt`` at ``t = 0`` in O(1) evaluations (the fast mode for large inputs).

    The caller builds ``φ(t) = L(x + t·u)`` for a seeded direction ``u`` and compares the result
    with ``<grad, u>``. Steps assume ``t ≈ 1`` is the natural scale: scale ``u`` accordingly.

    Parameters
    ----------
    phi : callable
        ``phi(t) -> scalar`` for a real ``t`` (complex for ``method="complex"``).
    method : {"complex", "central", "richardson"}
        2 evaluations (two complex steps; 1 with ``terms``), 4, or 10 to 30 (at most 1 + 4·30
        on restarts).
    noise : float, optional
        Bound on the absolute rounding error of ``phi`` near 0, as for :func:`central`;
        unused by the complex step.
    terms : float, optional
        For the complex step: the size of the terms ``dφ/dt`` sums (``Σ|u_k|·(|g_k| + T_k)``),
        which bounds its rounding, ``2⁷·ε·(|v| + terms)``; then one evaluation suffices. Without
        it a second step of different rounding measures the error.

    Returns
    -------
    Estimate
        ``value``, ``error`` and ``step`` are 0-d arrays.

    Raises
    ------
    InvalidArgument
        Unknown ``method``, ``phi`` not callable or not returning a finite scalar, bad ``noise``.

    Examples
    --------
    >>> est = directional(lambda t: np.exp(2 * t), method="complex")
    >>> float(est.value), est.nfev
    (2.0, 2)
    """
    _validate_f(phi, "phi")
    method = _validate_method(method, tuple(_DIRECTIONAL))
    ev = _PhiEvaluator(phi)
    if terms is not None and (not np.isfinite(terms) or terms < 0):
        raise InvalidArgument(f"`terms` must be a non-negative finite float, got {terms!r}")
    value, error, step = _DIRECTIONAL[method](ev, _validate_noise(noise),
                                              None if terms is None else float(terms))
    return Estimate(np.array(value), np.array(error), ev.nfev, method, np.array(step))
