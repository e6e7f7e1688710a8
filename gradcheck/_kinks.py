"""Kinks: elements where the one-sided derivatives differ, and whether the analytic value is one
the layer may legitimately return there.

A layer built on ``max``, ``relu``, ``abs`` or ``clip`` is not differentiable where inputs tie or
sit on a threshold. There the two-sided estimates are the average of the one-sided derivatives
(central differences) or one of them (the complex step, whose sign picks a side at a tie of
real parts), and a correct backward may return anything in between. So, for each element the
verdict would otherwise fail, and each element where the complex step with ``+ih`` and ``-ih``
disagrees:

- the one-sided derivatives ``left``/``right`` are measured (the mirrored complex step, or real
  one-sided differences on steps far below the element's scale, extrapolated and checked for
  consistency at a step four times smaller, shrinking when they disagree);
- the element is a **kink** when they differ beyond their bounds, and the analytic value is
  **valid** there when it lies in ``[min(left, right), max(left, right)]`` up to the bounds;
- every pair of kinks is also moved together, along ``e_i + e_j``: where that direction keeps
  the tie (the derivative along it is two-sided), the analytic ``a_i + a_j`` must equal it.
  That catches a tie rule that sends the full ``dout`` to every tied element (the sum is then
  ``2·dout``), which the element-wise interval cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck._objective import Numeric
from gradcheck.numeric import complex_step, local_scale
from gradcheck.results import KinkElement

MAX_KINKS = 512  # elements analysed per gradient, worst first
MAX_PAIRS = 256  # tie-keeping pairs tried per gradient, nearest indices first
_ONE_SIDED = 2.0**-18  # one-sided step, as a fraction of the element's local scale
_SHRINK = 2.0**-6  # when the one-sided estimates at h and h/4 disagree
_TRIES = 3
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Kinks:
    """The kink analysis of one gradient's compared elements."""

    kink: np.ndarray  # bool per compared element
    valid: np.ndarray  # bool per compared element: a valid choice at a kink
    rows: tuple[KinkElement, ...]
    ties: tuple[str, ...]  # failures along tie-keeping directions
    nfev: int
    # bool per compared element: no kink, and the one-sided derivatives (steps far below the
    # element's scale) agree with the analytic value: the first estimate's steps crossed a
    # kink nearby, and the smaller steps settle it
    remeasured: np.ndarray
    # bool per compared element: a candidate left unanalysed (beyond MAX_KINKS): it may sit
    # on a kink, so over budget it is inconclusive, never failed
    unanalysed: np.ndarray


def mirrored(num: Numeric, idx: np.ndarray, plus: np.ndarray, terms: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, int]:
    """The complex step with ``-ih``: the other one-sided derivative at a tie of real parts.

    Returns the mirrored values, their bound, and the evaluations used.
    """
    def flipped(arr: np.ndarray) -> Any:
        return num.f(np.conj(arr))

    est = complex_step(flipped, num.x, indices=idx, terms=terms)
    return -est.value.reshape(-1), est.error.reshape(-1), est.nfev


class _OneSided:
    """Real one-sided derivatives of ``f`` along a direction ``u`` at ``x``."""

    def __init__(self, f: Callable[[np.ndarray], Any], x: np.ndarray, noise: float) -> None:
        self.f, self.x, self.noise, self.nfev = f, x, noise, 0
        self.f0 = self._at(x)

    def _at(self, arr: np.ndarray) -> float:
        self.nfev += 1
        with np.errstate(all="ignore"):
            return float(np.real(self.f(arr)))

    def _side(self, u: np.ndarray, h: float) -> tuple[float, float]:
        d1 = (self._at(self.x + h * u) - self.f0) / h
        d2 = (self._at(self.x + (h / 2) * u) - self.f0) / (h / 2)
        rounding = 2 * (self.noise + 8 * _EPS * abs(self.f0)) / (h / 2)
        return 2 * d2 - d1, abs(d2 - d1) + rounding

    def both(self, u: np.ndarray, scale: float) -> tuple[float, float, float]:
        """``left``, ``right`` and a bound on each, from steps that do not cross a nearby kink."""
        h = _ONE_SIDED * scale
        for _ in range(_TRIES):
            right, br = self._side(u, h)
            left, bl = self._side(-u, h)
            left = -left
            right_q, bq = self._side(u, h / 4)
            left_q, blq = self._side(-u, h / 4)
            consistent = abs(right - right_q) <= br + bq and abs(left + left_q) <= bl + blq
            if consistent:
                return left, right, max(bl, br)
            h *= _SHRINK
        return left, right, max(bl, br, abs(right - right_q), abs(left + left_q))


def analyse(num: Numeric, idx: np.ndarray, a: np.ndarray, budget: np.ndarray,
            candidates: np.ndarray, mirror: tuple[np.ndarray, np.ndarray] | None,
            plus: np.ndarray, shape: tuple[int, ...]) -> Kinks:
    """Which ``candidates`` (bool over the compared elements) are kinks, and valid ones."""
    kink = np.zeros(idx.size, dtype=bool)
    valid = np.zeros(idx.size, dtype=bool)
    remeasured = np.zeros(idx.size, dtype=bool)
    left = np.zeros(idx.size)
    right = np.zeros(idx.size)
    bound = np.zeros(idx.size)
    scale = local_scale(num.x).reshape(-1)
    noise = float(np.max(num.noise, initial=0.0))
    sided = _OneSided(num.f, num.x, noise)
    # worst first: the elements furthest over their budget decide the verdict
    found = np.flatnonzero(candidates)
    ratio = np.abs(a[found] - plus[found]) / np.maximum(budget[found], np.finfo(float).tiny)
    order = found[np.argsort(-ratio, kind="stable")][:MAX_KINKS]
    unanalysed = candidates.copy()
    unanalysed[order] = False
    for j in order:
        if mirror is not None and abs(mirror[0][j] - plus[j]) > mirror[1][j]:
            lo, hi, b = mirror[0][j], plus[j], mirror[1][j]
        else:
            u = np.zeros(num.x.shape)
            u.flat[idx[j]] = 1.0
            lo, hi, b = sided.both(u, float(scale[idx[j]]))
        left[j], right[j], bound[j] = lo, hi, b
        kink[j] = abs(hi - lo) > 2 * b + budget[j]
        slack = 2 * b + budget[j]
        valid[j] = kink[j] and min(lo, hi) - slack <= a[j] <= max(lo, hi) + slack
        remeasured[j] = not kink[j] and abs(a[j] - (lo + hi) / 2) <= 2 * b + budget[j]
    rows = tuple(
        KinkElement(tuple(int(i) for i in np.unravel_index(idx[j], shape)), float(left[j]),
                    float(right[j]), float(a[j]), bool(valid[j]))
        for j in np.flatnonzero(kink)
    )
    ties = _ties(num, idx, a, budget, np.flatnonzero(kink & valid), sided, scale, mirror, shape)
    return Kinks(kink, valid, rows, ties, sided.nfev, remeasured, unanalysed)


def _pairs(members: np.ndarray, idx: np.ndarray) -> list[tuple[int, int]]:
    pairs = [(int(members[p]), int(members[q])) for p in range(len(members))
             for q in range(p + 1, len(members))]
    pairs.sort(key=lambda pq: abs(int(idx[pq[0]]) - int(idx[pq[1]])))
    return pairs[:MAX_PAIRS]


def smooth_along(num: Numeric, u: np.ndarray, budget: float) -> tuple[bool, float, float, int]:
    """Whether ``L`` is differentiable along ``u`` at ``x``: its one-sided derivatives agree.

    Returns ``(smooth, left, right, nfev)``.
    """
    sided = _OneSided(num.f, num.x, float(np.max(num.noise, initial=0.0)))
    lo, hi, b = _along_pair(num, u, sided, 1.0, num.method == "complex")
    return abs(hi - lo) <= 2 * b + budget, lo, hi, sided.nfev


def _along_pair(num: Numeric, u: np.ndarray, sided: _OneSided, scale: float,
                mirror: bool) -> tuple[float, float, float]:
    if mirror:
        h = 2.0**-360

        def phi(t: complex) -> Any:
            return num.f(num.x + t * u)

        right = float(np.imag(phi(1j * h))) / h
        left = float(np.imag(phi(-1j * h))) / -h
        sided.nfev += 2
        return left, right, 2**7 * _EPS * (abs(left) + abs(right)) + 1e-300
    return sided.both(u, scale)


def _ties(num: Numeric, idx: np.ndarray, a: np.ndarray, budget: np.ndarray,
          members: np.ndarray, sided: _OneSided, scale: np.ndarray,
          mirror: tuple[np.ndarray, np.ndarray] | None, shape: tuple[int, ...]) -> tuple[str, ...]:
    """Tie-keeping directions ``e_i + e_j``: where the derivative along them is two-sided, the
    analytic gradients must add up to it."""
    found = []
    for i, j in _pairs(members, idx):
        u = np.zeros(num.x.shape)
        u.flat[idx[i]] = 1.0
        u.flat[idx[j]] = 1.0
        s = float(min(scale[idx[i]], scale[idx[j]]))
        lo, hi, b = _along_pair(num, u, sided, s, mirror is not None)
        if abs(hi - lo) > 2 * b + budget[i] + budget[j]:
            continue  # not a tie this direction keeps: independent kinks
        claimed = a[i] + a[j]
        if abs(claimed - (lo + hi) / 2) > 2 * b + budget[i] + budget[j]:
            where = (tuple(int(v) for v in np.unravel_index(idx[i], shape)),
                     tuple(int(v) for v in np.unravel_index(idx[j], shape)))
            found.append(
                f"tie at {where[0]} and {where[1]}: moving both together changes the loss at "
                f"rate {(lo + hi) / 2:.9g}, but their analytic gradients add up to {claimed:.9g} "
                "(a tie rule that sends the full dout to every tied element?)"
            )
    return tuple(found)
