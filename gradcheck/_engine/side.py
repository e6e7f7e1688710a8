"""The analytic side of one gradient: its values, flat, with their measured rounding.

The rounding comes from the second runs of :mod:`gradcheck._engine.shadow` (the witness in a
wider dtype and the term magnitudes); every verdict and every ``detectable`` rests on it. (An
earlier *lean* side judged first without them; a budget without the measured rounding states a
sensitivity the check does not have where a backward's terms cancel, so it is gone.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck._engine.shadow import Shadow
from gradcheck.tolerance import (
    FLOOR_ULPS,
    NOISE_RATIO,
    WITNESS_FACTOR,
    analytic_rounding,
    unit_roundoff,
)


@dataclass(frozen=True)
class Side:
    """The analytic gradient of one input, flat, with what was measured about its rounding."""

    a: np.ndarray  # float64
    rounding: np.ndarray  # r_k
    terms: np.ndarray  # T_k
    noise_like: bool  # the whole gradient is its own rounding noise (or exactly 0)
    witnessed: bool
    eps: float

    @property
    def size(self) -> np.ndarray:
        return np.abs(self.a)

    @property
    def magnitude(self) -> np.ndarray:
        """``|a_k| + T_k``: what element ``k``'s rounding is relative to."""
        return np.abs(self.a) + self.terms


def scaled_norm(v: np.ndarray) -> float:
    """``‖v‖₂`` without underflow or overflow: a gradient of 1e-200 or 1e200 is a gradient, and
    its status must not depend on the units the layer uses."""
    flat = np.asarray(v, dtype=np.float64).reshape(-1)
    top = float(np.max(np.abs(flat), initial=0.0))
    if top == 0.0 or not np.isfinite(top):
        return top
    w = flat / top
    return top * float(np.sqrt(np.einsum("i,i->", w, w)))


def side(grad: np.ndarray, shadow: Shadow, name: str, eps: float, natural: Any,
         kappa: float = 1.0) -> Side:
    """The side of gradient ``name`` from ``shadow``'s measurements."""
    a = grad.astype(np.float64).reshape(-1)
    measured = shadow
    w = measured.witness.get(name)
    flat_w = None if w is None else np.asarray(w).reshape(-1)
    terms = measured.terms.get(name)
    t = np.zeros_like(a) if terms is None else np.asarray(terms, dtype=np.float64).reshape(-1)
    # The gradient is rounding noise when the wider dtype shrank it as a whole (energy, so a
    # single element's lucky rounding does not decide: sitting below the witness's resolution
    # proves nothing, as an O(1) bias beside an input of 3e155 shows); with no witness only an
    # exact zero is known to be one.
    # An exact zero is one only where the witness is zero too, at float64's resolution (an
    # analytic 0 from a norm that overflowed, beside a witness of the true 1e-160, is none).
    noise_like = not np.any(a) and (flat_w is None or scaled_norm(np.abs(flat_w)) <= FLOOR_ULPS
                                    * eps * scaled_norm(np.asarray(natural, dtype=np.float64)))
    if flat_w is not None:
        small = np.abs(flat_w).astype(np.float64)
        noise_like = noise_like or bool(scaled_norm(small) <= NOISE_RATIO * scaled_norm(a))
    exact = grad.reshape(-1) if flat_w is None else grad.reshape(-1).astype(flat_w.dtype)
    rounding = analytic_rounding(exact, flat_w, t, eps, natural, kappa).astype(np.float64)
    # What the backward's own rounding was measured to be, and a gradient returned in a dtype
    # narrower than the layer's holds its values to that dtype's unit roundoff.
    # Its differences are random per element (one may round alike twice), so their largest
    # share of an element's magnitude is the backward's unit roundoff, for every element.
    linear = measured.linearity.get(name)
    if linear is not None:
        lin = np.asarray(linear, dtype=np.float64).reshape(-1)
        size = np.abs(a) + t
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(size > 0, lin / size, 0.0)
        unit = float(np.max(share, initial=0.0)) if np.all(np.isfinite(share)) else 0.0
        rounding = rounding + WITNESS_FACTOR * (lin + unit * size)
    if grad.dtype.kind == "f":
        rounding = rounding + 2 * unit_roundoff(grad.dtype) * np.abs(a)
    return Side(a, rounding, t, noise_like, flat_w is not None, eps)


def at_resolution(a: np.ndarray, eps: float, natural: Any) -> bool:
    """Whether a gradient may sit at a witness's resolution (then only the witness can say it
    is *zero*): no element above ``2·16 ε N_k``, which bounds ``16 ε_w N_k`` for ``ε_w ≤ ε``."""
    floor = 2 * FLOOR_ULPS * eps * np.asarray(natural, dtype=np.float64)
    return bool(np.all(np.abs(a) <= floor))
