"""Per-dtype tolerances and the error budget that turns a measured error into a verdict.

An analytic gradient ``a`` is compared with a numerical estimate ``n`` that carries its own error
bound ``e`` (see :mod:`gradcheck.numeric`). Element ``k`` passes when::

    |a_k - n_k| <= budget_k = e_k + atol + rtol * scale

``scale = max(max|n|, max|a|, natural_scale)`` over the whole gradient tensor: the analytic
side is computed in floating point, and its rounding error is proportional to the size of the
terms it sums, not to the (possibly tiny, cancelled) value of one element; ``natural_scale``
(:func:`natural_scale`) stands in for those terms when the whole gradient cancels.
``rtol`` defaults to ``sqrt(eps)`` of the
dtype the *layer* ran in (float64: 1.5e-8, float32: 3.5e-4, float16: 3.1e-2): a backward that
loses half the digits of its dtype is wrong, one that loses fewer is rounding. For a layer that
did not run in float64 the measured rounding of its forward (its output against the same forward
run in float64, relative to the output's size) is a floor: ``rtol >= 4 * rho``. ``atol`` defaults
to 0; both can be overridden (:class:`Tolerance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradcheck.errors import InvalidArgument

__all__ = ["Tolerance", "budget", "default_rtol", "natural_scale"]

FORWARD_ROUNDING_FACTOR = 4.0  # rtol floor = this * the forward's measured relative rounding


@dataclass(frozen=True)
class Tolerance:
    """Overrides for the budget; ``None`` means the per-dtype default."""

    rtol: float | None = None
    atol: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if value is None and name == "rtol":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidArgument(f"`{name}` must be a non-negative float, got {value!r}")
            if not np.isfinite(value) or value < 0:
                raise InvalidArgument(
                    f"`{name}` must be a non-negative finite float, got {value!r}"
                )


def default_rtol(dtype: np.dtype | type) -> float:
    """``sqrt(eps)`` of a floating dtype (complex: of its real part)."""
    dt = np.dtype(dtype)
    if dt.kind not in "fc":
        raise InvalidArgument(f"`dtype` must be a floating dtype, got {dt}")
    return float(np.sqrt(np.finfo(dt).eps))


def resolve(tolerance: Tolerance, dtype: np.dtype, forward_rounding: float = 0.0) -> Tolerance:
    """The tolerance actually used for a layer that ran in ``dtype``."""
    if tolerance.rtol is not None:
        return tolerance
    rtol = max(default_rtol(dtype), FORWARD_ROUNDING_FACTOR * forward_rounding)
    return Tolerance(rtol=rtol, atol=tolerance.atol)


def natural_scale(g: np.ndarray, out: np.ndarray, x: np.ndarray) -> float:
    """The size ``dL/dx`` has when nothing cancels.

    ``natural_scale = sum|g * (out - mean(out))| / (n * spread(x))``.

    Moving ``x`` by its own spread moves the output by about the output's spread, so this is
    the magnitude of the terms a backward adds up; its rounding is relative to them, not to a
    result that cancels to (near) zero, e.g. BatchNorm's ``dx`` for N = 2 and eps = 0.
    ``spread(x)`` is the standard deviation of ``x``, or its RMS when ``x`` is constant. The
    checker uses it for inputs the size of the output (``x``), not for parameters summed over a
    batch, whose terms it would overstate by about ``sqrt(N)``.
    """
    spread = float(np.std(x)) or float(np.sqrt(np.mean(np.square(x))))
    if spread == 0.0 or out.size == 0:
        return 0.0
    return float(np.sum(np.abs(g * (out - np.mean(out))))) / (x.size * spread)


def budget(
    analytic: np.ndarray, numeric: np.ndarray, numeric_error: np.ndarray, tol: Tolerance,
    floor: float = 0.0,
) -> np.ndarray:
    """Per-element allowance ``e_k + atol + rtol * scale`` (see the module docstring)."""
    scale = max(float(np.max(np.abs(numeric), initial=0.0)),
                float(np.max(np.abs(analytic), initial=0.0)), floor)
    rtol = 0.0 if tol.rtol is None else tol.rtol
    return numeric_error + tol.atol + rtol * scale
