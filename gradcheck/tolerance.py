"""Per-dtype defaults and the per-element error budget that turns a measured error into a verdict.

An analytic gradient ``a`` is compared with a numerical estimate ``n`` element by element.
Element ``k`` passes when ``|a_k - n_k| <= budget_k``, where the budget is what that element's
two computations can honestly lose, and nothing else::

    budget_k = e_k + r_k + atol + rtol * max(|a_k|, |n_k|)

**The numerical bound** ``e_k`` is the engine's own bound for that element
(:mod:`gradcheck.numeric`), widened by ``4 |n_k - n'_k|`` where a second estimate ``n'`` in
extended precision (complex long double) was made to confirm an element that would fail.

**The analytic rounding** ``r_k`` is measured, not assumed. The layer's forward and backward are
run a second time in a wider dtype (the *witness*: float64 for a float32 layer, ``np.longdouble``
for a float64 layer where it is wider, as on x86-64 and aarch64 Linux), on the same input values
and the same upstream gradient. Rounding errors shrink with the unit roundoff while a wrong
formula stays wrong, so ``|a_k - w_k|`` is the rounding the layer's own dtype added at element
``k``: it is large exactly where the element's own terms cancel (a bias before a normalisation,
a saturated ``1 - tanh²``) and tiny elsewhere. With ``T_k`` the magnitude of the terms the backward
sums into element ``k`` (the backward applied to the upstream gradient with random signs: for a
backward linear in ``dout``, ``Σ_i r_i J_ik g_i`` has the RMS ``(Σ_i (J_ik g_i)²)^½``), ::

    r_k = 4 min(|a_k - w_k|, (√ε + 16 ε κ)(|a_k| + T_k) + 16 ε N_k)
          + 16 ε_w N_k + 16 ε (|a_k| + T_k)

where ``ε`` is the unit roundoff of the layer's dtype (a gap beyond half its digits is no
rounding but the backward failing in that dtype: an exp that overflows, a closed form that
cancels to nothing where the witness's wider range and precision do not); the last term is a
floor for the rounding the witness shares (the final conversion) and for layers that do not
carry the wider dtype through. The middle term is the witness's own resolution: ``w_k`` is off
by about ``ε_w`` times the magnitudes inside the backward, which can be far above ``|a_k|`` (a
saturated ``1 - tanh²`` subtracts numbers near 1), and where ``a_k`` happens to be as accurate
as ``w_k`` the gap ``|a_k - w_k|`` says nothing. ``N_k = Σ|g·out| / (n_out s_k)``, the size the
gradient has when nothing cancels (moving ``x_k`` by its local scale ``s_k`` moves the output by
about its own size), stands in for those magnitudes; at ``ε_w`` (2⁻¹¹ of float64's ``ε`` for
long double) it is far below anything a float64 check resolves.

Where no witness could run (the forward raises on long double, or casts its arrays back to
float64), only the floor is left: an element over that budget but within
``sqrt(ε) (|a_k| + |n_k| + T_k)`` is *inconclusive* rather than failed, as nothing measured can
tell rounding from a bug there.

**``rtol`` and ``atol``** default to ``64 ε`` and 0: a slack for the imprecision of the bounds,
four decades below what float64 checks can resolve. Both can be overridden (:class:`Tolerance`).
No tensor-wide scale enters an element's budget: a 100% error in a channel a million times
smaller than its neighbours is caught, and a channel whose gradient cancels does not raise a
false alarm.

**Zero gradients.** An element is *zero* when both sides are indistinguishable from 0 by their
own measured noise: ``|w_k| <= |a_k| / 64`` (the wider dtype shrank the analytic value: it was
rounding) or ``a_k == 0``, and ``|n_k| <= e_k``. A gradient whose every element is zero carries
no evidence and says so (status ``zero``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument

__all__ = [
    "WITNESS_FACTOR",
    "Tolerance",
    "analytic_rounding",
    "budget",
    "confirm_dtypes",
    "default_rtol",
    "resolve",
    "unit_roundoff",
    "witness_dtype",
]

WITNESS_FACTOR = 4.0  # r_k = WITNESS_FACTOR * |a_k - w_k| + ...
WITNESS_ROOM = 1.0  # ... with |a_k - w_k| at most WITNESS_ROOM * sqrt(eps) * (|a_k| + T_k)
FLOOR_ULPS = 16.0  # ... + FLOOR_ULPS * eps * (|a_k| + T_k)
RTOL_ULPS = 64.0  # default rtol = RTOL_ULPS * eps
NOISE_RATIO = 1 / 64  # |w_k| <= NOISE_RATIO * |a_k|: the analytic value was rounding noise


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


def unit_roundoff(dtype: np.dtype | type) -> float:
    """``ε`` of a floating dtype (complex: of its real part)."""
    dt = np.dtype(dtype)
    if dt.kind not in "fc":
        raise InvalidArgument(f"`dtype` must be a floating dtype, got {dt}")
    return float(np.finfo(dt).eps)


def default_rtol(dtype: np.dtype | type) -> float:
    """``64 ε`` of a floating dtype: slack for the bounds, not for rounding (which is measured)."""
    return RTOL_ULPS * unit_roundoff(dtype)


def judged_dtype(grad: np.dtype, layer: np.dtype) -> np.dtype:
    """The dtype a gradient is judged in: its own, or the layer's where the gradient is narrower
    (a float64 layer that returns float16 gradients is held to float64 slack; the rounding of
    its values and of its backward is measured, :mod:`gradcheck._engine.side`)."""
    if grad.kind != "f":
        return layer
    if layer.kind == "f" and np.finfo(layer).eps < np.finfo(grad).eps:
        return layer
    return grad


def resolve(tolerance: Tolerance, dtype: np.dtype) -> Tolerance:
    """The tolerance actually used for a layer that ran in ``dtype``."""
    if tolerance.rtol is not None:
        return tolerance
    return Tolerance(rtol=default_rtol(dtype), atol=tolerance.atol)


def confirm_dtypes(eps: float) -> tuple[type, ...]:
    """The complex dtypes that confirm a numerical estimate for a layer of unit roundoff
    ``eps``, widest first: long double, and float64 where that is 2^20 finer than the layer."""
    wide: tuple[type, ...] = (np.clongdouble,)
    if eps >= 2.0**20 * float(np.finfo(np.float64).eps):
        wide += (np.complex128,)
    return wide


def witness_dtype(dtype: np.dtype | type) -> np.dtype | None:
    """The wider dtype that measures a layer's rounding in ``dtype``; ``None`` if there is none."""
    dt = np.dtype(dtype)
    if dt.itemsize < 8:
        return np.dtype(np.float64)
    wide = np.dtype(np.longdouble)
    return wide if np.finfo(wide).eps < np.finfo(dt).eps else None


def analytic_rounding(a: np.ndarray, witness: np.ndarray | None, terms: np.ndarray,
                      eps: float, natural: Any = 0.0, kappa: float = 1.0) -> np.ndarray:
    """``r_k = 4 min(|a_k - w_k|, (√ε + 16 ε κ)(|a_k| + T_k) + 16 ε N_k) + 16 ε_w N_k + 16 ε
    (|a_k| + T_k)``, ``κ`` the inputs' largest conditioning (see the module docstring)."""
    size = np.abs(a)
    floor = FLOOR_ULPS * eps * (size + terms)
    if witness is None:
        return floor
    eps_w = float(np.finfo(np.asarray(witness).dtype).eps)
    resolution = FLOOR_ULPS * eps_w * np.asarray(natural, dtype=np.float64)
    # Rounding keeps at least half the digits of the terms an element sums: a gap beyond
    # that (an exp that overflows, a closed form that cancels to nothing, in the layer's dtype
    # and not in the witness's) is the backward failing in its dtype, a discrepancy to judge.
    # (Half the digits of the magnitudes inside it, too: ``N_k`` stands in for those, as a
    # saturated ``1 - tanh²`` subtracts numbers near 1 to leave 0 where the witness has 1e-18.)
    # And the inputs' conditioning ``κ`` (an offset of 1e3 on a spread of 1e-3 in float32
    # leaves a normalisation's gradient a fifth off, and that is rounding too).
    room = (WITNESS_ROOM * math.sqrt(eps) + FLOOR_ULPS * eps * kappa) * (size + terms) + (
        FLOOR_ULPS * eps * np.asarray(natural, dtype=np.float64))
    gap = np.minimum(np.abs(a - witness), room)
    return WITNESS_FACTOR * gap + resolution + floor


def budget(analytic: np.ndarray, numeric: np.ndarray, numeric_error: np.ndarray,
           rounding: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Per-element allowance ``e_k + r_k + atol + rtol max(|a_k|, |n_k|)``."""
    rtol = 0.0 if tol.rtol is None else tol.rtol
    size = np.maximum(np.abs(analytic), np.abs(numeric))
    return numeric_error + rounding + tol.atol + rtol * size
