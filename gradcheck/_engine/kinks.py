"""Kinks and ties, measured: the one-sided derivatives at elements where a piecewise forward may
not be differentiable, and the slots of tied elements. Nothing here decides a status; the
verdict on these measurements is :mod:`gradcheck._engine.ladder`'s.

A layer built on ``max``, ``relu``, ``abs``, ``sort`` or ``clip`` is not differentiable where
inputs tie or sit on a threshold. There the complex step with ``+ih`` picks one side (NumPy
orders complex numbers by their real parts, then their imaginary parts), central differences
average the two, and a correct backward may return any element of the Clarke subdifferential.
For each candidate element (over budget, or where ``+ih`` and ``-ih`` disagree):

- ``left``/``right``, the one-sided derivatives, are measured (the mirrored complex step, or real
  one-sided differences on steps far below the element's scale, extrapolated and checked at a
  step four times smaller, shrinking when they disagree), each with its ``bound``;
- elements whose ``(left, right)`` agree within their bounds are candidates for one **tie**:
  ``k`` elements whose common value a selection (``max``, ``sort``, top-k, a median) orders.
  Moving all of them together keeps the tie, so the derivative along ``1_S`` is two-sided and
  is measured (``total``); moving the first ``m`` of them up puts them in the top ``m`` slots of
  the tie, so the chain ``D⁺(1_{S_1}), …, D⁺(1_{S_{k-1}})`` gives every slot's value ``c``
  (**symmetric** when the chain's last link agrees with ``total - left``, i.e. the function is
  locally symmetric in the tied elements, as every selection is). The valid gradients of the
  tied block are then exactly the convex hull of the permutations of ``c``: a majorization test
  the ladder makes, for ``k`` of any size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck._engine.objective import Numeric
from gradcheck.numeric import complex_step, complex_step_size, local_scale

MAX_KINKS = 512  # elements analysed per gradient, worst first
MAX_TIE = 64  # tied elements whose slots are measured (one evaluation per slot)
_ONE_SIDED = 2.0**-18  # one-sided step, as a fraction of the element's local scale
_SHRINK = 2.0**-6  # when the one-sided estimates at h and h/4 disagree
_TRIES = 3
_EPS = float(np.finfo(np.float64).eps)
_MIRROR_ULPS = 2.0**7


@dataclass(frozen=True)
class Tie:
    """``k`` tied elements (positions among the compared elements) and their measured slots."""

    members: np.ndarray  # int positions, in index order
    total: float  # the two-sided derivative along 1_S (moving every member together)
    smooth: bool  # whether that derivative was two-sided (else: independent kinks)
    slots: np.ndarray  # the slot values c, top slot first (measured when smooth)
    symmetric: bool  # the chain's last link agreed with total - left: the sort model holds
    bound: float  # on each measured derivative


@dataclass(frozen=True)
class KinkEvidence:
    """The one-sided measurements of one gradient's compared elements."""

    analysed: np.ndarray  # bool per compared element
    left: np.ndarray  # one-sided derivatives (NaN where not analysed)
    right: np.ndarray
    bound: np.ndarray  # on each of left and right
    unanalysed: np.ndarray  # bool: a candidate beyond MAX_KINKS
    ties: tuple[Tie, ...]
    nfev: int


def mirrored(num: Numeric, idx: np.ndarray, terms: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, int]:
    """The complex step with ``-ih``: the other one-sided derivative at a tie of real parts.

    Returns the mirrored values, their bound, and the evaluations used.
    """
    def flipped(arr: np.ndarray) -> Any:
        return num.f(np.conj(arr))

    est = complex_step(flipped, num.x, indices=idx, terms=terms)
    return -est.value.reshape(-1), est.error.reshape(-1), est.nfev


class OneSided:
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


class _Along:
    """One-sided derivatives of ``L`` along any direction: the mirrored complex step where the
    complex step is the engine (exact), else real one-sided differences."""

    def __init__(self, num: Numeric) -> None:
        self.num = num
        self.complex = num.method == "complex"
        self.sided = OneSided(num.f, num.x, float(np.max(num.noise, initial=0.0)))
        self.extra = 0
        # the mirrored step, raised where the derivatives are tiny (see complex_step_size)
        self.h = float(complex_step_size(0.0, float(np.max(num.noise, initial=0.0)) / _EPS))

    @property
    def nfev(self) -> int:
        return self.sided.nfev + self.extra

    def _imag(self, u: np.ndarray, h: float) -> float:
        self.extra += 1
        return float(np.imag(self.num.f(self.num.x + (1j * h) * u))) / h

    def right(self, u: np.ndarray, scale: float) -> tuple[float, float]:
        if self.complex:
            value = self._imag(u, self.h)
            return value, _MIRROR_ULPS * _EPS * abs(value) + 1e-300
        _, hi, b = self.sided.both(u, scale)
        return hi, b

    def both(self, u: np.ndarray, scale: float) -> tuple[float, float, float]:
        if self.complex:
            right = self._imag(u, self.h)
            left = self._imag(u, -self.h)  # Im f(x - ih u) / (-h): the other side
            return left, right, _MIRROR_ULPS * _EPS * (abs(left) + abs(right)) + 1e-300
        return self.sided.both(u, scale)


def linear_along(num: Numeric, u: np.ndarray, w: np.ndarray, budget: float
                 ) -> tuple[bool, int]:
    """Whether ``L`` is differentiable at ``x`` as far as ``u`` and ``w`` can tell: two-sided
    along ``u`` and additive, ``D(u + w) = D(u) + D(w)``. At a tie whose active slot is inside
    the tied block (a median of equal values) every line through ``x`` is two-sided, yet the
    derivative along ``u`` picks the tied element with the middle component of ``u``: only
    additivity shows it. Returns the answer and the evaluations used."""
    along = _Along(num)
    lo, hi, b = along.both(u, 1.0)
    if abs(hi - lo) > 2 * b + budget:
        return False, along.nfev
    du, bu = along.right(w, 1.0)
    duw, buw = along.right(u + w, 1.0)
    gap = abs(duw - (lo + hi) / 2 - du)
    return gap <= 2 * (b + bu + buw) + 2 * budget, along.nfev


def measure(num: Numeric, idx: np.ndarray, order: np.ndarray, candidates: np.ndarray,
            mirror: tuple[np.ndarray, np.ndarray] | None, plus: np.ndarray,
            slack: np.ndarray) -> KinkEvidence:
    """One-sided derivatives at the ``candidates`` (bool over the compared elements), analysed
    in ``order`` (worst first; at most :data:`MAX_KINKS`), and the ties among them; ``slack``
    is each element's budget (what two derivatives may differ by and still agree)."""
    size = idx.size
    left, right, bound = (np.full(size, np.nan) for _ in range(3))
    analysed = np.zeros(size, dtype=bool)
    scale = local_scale(num.x).reshape(-1)
    sided = OneSided(num.f, num.x, float(np.max(num.noise, initial=0.0)))
    chosen = order[candidates[order]][:MAX_KINKS]
    for j in chosen:
        if mirror is not None:
            lo, hi, b = mirror[0][j], plus[j], mirror[1][j]
        else:
            u = np.zeros(num.x.shape)
            u.flat[idx[j]] = 1.0
            lo, hi, b = sided.both(u, float(scale[idx[j]]))
        left[j], right[j], bound[j] = lo, hi, b
        analysed[j] = True
    unanalysed = candidates & ~analysed
    along = _Along(num)
    groups = _groups(analysed, left, right, bound, slack)
    groups += _equal_values(num.x.reshape(-1)[idx], analysed & ~_member(groups, size), slack,
                            left, right, bound)
    ties = tuple(_tie(along, idx, members, left, right, bound, scale, slack)
                 for members in groups)
    return KinkEvidence(analysed, left, right, bound, unanalysed, ties, sided.nfev + along.nfev)


def _groups(analysed: np.ndarray, left: np.ndarray, right: np.ndarray, bound: np.ndarray,
            slack: np.ndarray) -> list[np.ndarray]:
    """Kinks whose one-sided pairs agree within their bounds: candidates for one tie."""
    kinked = np.flatnonzero(analysed & (np.abs(right - left) > 2 * bound + slack))
    groups: list[list[int]] = []
    for j in kinked:
        for group in groups:
            first = group[0]
            tol = 2 * (bound[j] + bound[first]) + slack[j] + slack[first]
            if abs(left[j] - left[first]) <= tol and abs(right[j] - right[first]) <= tol:
                group.append(int(j))
                break
        else:
            groups.append([int(j)])
    return [np.array(g) for g in groups if len(g) >= 2]


def along_tie(num: Numeric, positions: np.ndarray, left: np.ndarray, right: np.ndarray,
              scale: np.ndarray, slack: np.ndarray) -> tuple[Tie, int]:
    """The tie measurements (two-sided total, slot chain) of elements at flat ``positions`` of
    ``num.x`` with known one-sided derivatives: a tie that spans several inputs, measured on
    their joint objective. Returns the tie and the evaluations used."""
    along = _Along(num)
    members = np.arange(positions.size)
    tie = _tie(along, positions, members, left.astype(np.float64).copy(),
               right.astype(np.float64).copy(), np.zeros(positions.size), scale, slack)
    return tie, along.nfev


def _member(groups: list[np.ndarray], size: int) -> np.ndarray:
    inside = np.zeros(size, dtype=bool)
    for g in groups:
        inside[g] = True
    return inside


def _equal_values(values: np.ndarray, loose: np.ndarray, slack: np.ndarray, left: np.ndarray,
                  right: np.ndarray, bound: np.ndarray) -> list[np.ndarray]:
    """Analysed elements in no group yet whose input value others share exactly: a tie whose
    active slot is inside the tied block (a median of tied values) moves no single element's
    one-sided derivatives, so only moving several of them shows it. Every compared element of
    that value joins the group."""
    groups = []
    for value in np.unique(values[loose]):
        members = np.flatnonzero(values == value)
        if members.size >= 2:
            groups.append(members)
    return groups


def _tie(along: _Along, idx: np.ndarray, members: np.ndarray, left: np.ndarray,
         right: np.ndarray, bound: np.ndarray, scale: np.ndarray, slack: np.ndarray) -> Tie:
    """The two-sided derivative along ``1_S`` and the slot chain of one candidate tie (also the
    one-sided derivatives of members not measured yet, into ``left``/``right``/``bound``)."""
    shape = along.num.x.shape
    s = float(np.min(scale[idx[members]]))

    def indicator(part: np.ndarray) -> np.ndarray:
        u = np.zeros(shape)
        u.flat[idx[part]] = 1.0
        return u

    for j in members[np.isnan(left[members])]:  # a member of equal value not yet measured
        left[j], right[j], bound[j] = along.both(indicator(np.array([j])), s)
    lo, hi, b = along.both(indicator(members), s)
    b = max(b, float(np.max(bound[members])))
    room = 2 * b + float(np.sum(slack[members]))
    smooth = abs(hi - lo) <= room
    total = (lo + hi) / 2
    k = members.size
    if not smooth or k > MAX_TIE:
        return Tie(members, total, smooth, np.zeros(0), False, b)
    chain = [0.0]
    for m in range(1, k):
        value, bm = along.right(indicator(members[:m]), s)
        chain.append(value)
        b = max(b, bm)
    chain.append(total)
    slots = np.diff(np.array(chain))  # top slot first
    bottom = float(np.mean(left[members]))
    symmetric = (abs(slots[-1] - bottom) <= 2 * b + room
                 and abs(slots[0] - float(np.mean(right[members]))) <= 2 * b + room)
    return Tie(members, total, True, slots, bool(symmetric), b)
