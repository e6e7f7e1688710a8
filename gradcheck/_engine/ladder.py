"""The status ladder: every gradient's status is decided here, and only here, from recorded
evidence (:class:`ElementEvidence`, :class:`DirectionEvidence`); nothing in this module calls
the layer.

**Elements.** Element ``k`` is within budget when ``|a_k - n_k| <= budget_k``
(:func:`gradcheck.tolerance.budget`). An element over budget ends as anything but a failure
only through a named explanation whose evidence was measured (:data:`EXPLAINED`):

- ``kink``: its one-sided derivatives differ by more than their bounds, those bounds are tighter
  than the discrepancy they excuse, and they bracket the analytic value;
- ``tie``: it is one of ``k`` tied elements (any ``k``) whose two-sided derivative along all of
  them was measured with their slots ``c``, and the analytic values of the block lie in the
  convex hull of the permutations of ``c`` (their sum is the measured total, and the sum of
  their ``m`` largest is at most that of the ``m`` largest slots: a majorization);
- ``remeasured``: the estimate came from a stencil of finite steps (not the complex step), the
  one-sided derivatives on far smaller steps agree with each other and with the analytic value,
  and their bound is tighter than the discrepancy (the stencil crossed a kink nearby).

Without such evidence an element over budget *fails* when its estimate was confirmed in
extended precision and its analytic rounding measured by a witness (``certified``), or when its
error exceeds what rounding could explain, ``sqrt(ε)(|a_k| + |n_k| + T_k)``; otherwise it is
``rounding``: *inconclusive*. An element that may sit on a kink but was beyond the analysed ones
is ``unanalysed`` (inconclusive); a tie whose slots do not follow the symmetric model is
``unverified`` (inconclusive); an element the numerical side could not measure at all (no step
far below an element of 1e-300) is ``unmeasured`` (inconclusive); where the float64 reference
computes another function than the layer's own dtype (a ``finfo(x.dtype).eps`` guard in a
float32 layer), neither a discrepancy nor an agreement says anything about the backward: every
element is ``incomparable`` (inconclusive). A looser estimate never overrules a tighter one.

**Directions** follow the same steps with projected budgets; a direction that crosses a kink,
or whose budget is not a number, carries no evidence. Elements not compared rest on the
directions: a ``pass`` or ``kink`` there whose ``detectable`` found no size (not even an error
as large as the gradient would fail) is *inconclusive* (:func:`gradient_status`). **zero**
needs the witness: both sides indistinguishable from 0 by their measured noise (norms are
computed scaled, so no magnitude decides it).

**detectable** (:func:`detectable`) is a guarantee, not a formula: errors of the stated size
(relative to the gradient's largest element, in the error's largest element) are injected into
the analytic gradient in several patterns at random positions and judged by this ladder with
the same evidence; the stated size rises until every one of them fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gradcheck._engine.kinks import KinkEvidence, Tie
from gradcheck._engine.side import scaled_norm
from gradcheck.results import MISS_PROBABILITY
from gradcheck.tolerance import Tolerance, budget

# The outcome of each compared element (an int8 code per element), by index.
(WITHIN, FAILED, KINK, TIE, REMEASURED, ROUNDING, UNANALYSED, UNVERIFIED, BAD_KINK, BAD_TIE,
 UNMEASURED, INCOMPARABLE) = range(12)
OUTCOMES = ("within", "fail", "kink", "tie", "remeasured", "rounding", "unanalysed",
            "unverified tie", "invalid kink", "invalid tie", "unmeasured", "incomparable")
EXPLAINED = frozenset({KINK, TIE, REMEASURED})  # over budget, but explained by evidence
# no verdict: inconclusive
UNSURE = frozenset({ROUNDING, UNANALYSED, UNVERIFIED, UNMEASURED, INCOMPARABLE})
FAILING = frozenset({FAILED, BAD_KINK, BAD_TIE})

STATUS_ORDER = ("fail", "inconclusive", "kink", "pass", "zero")  # the first one present wins
MAX_DETECTABLE = 1.0  # beyond an error as large as the gradient itself, nothing is guaranteed


# --- elements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ElementEvidence:
    """What was measured at the compared elements of one gradient (flat, per element)."""

    idx: np.ndarray  # flat indices of the compared elements
    a: np.ndarray  # analytic
    n: np.ndarray  # numerical estimate
    e: np.ndarray  # its bound (widened by any confirmation)
    r: np.ndarray  # the analytic side's rounding
    t: np.ndarray  # term magnitudes
    certified: np.ndarray  # bool: estimate confirmed in extended precision, analytic witnessed
    certifiable: bool  # an element found over budget would be confirmed and certified
    exact: bool  # the estimate is the complex step (no finite stencil)
    eps: float
    tol: Tolerance
    kinks: KinkEvidence | None
    noise_like: bool  # the witness shows the analytic gradient is its own rounding noise
    comparable: bool = True  # the numerical side differentiates the layer's own function


@dataclass(frozen=True)
class ElementVerdict:
    status: str
    outcome: np.ndarray  # int8 code per compared element (OUTCOMES)
    err: np.ndarray
    budget: np.ndarray
    notes: tuple[str, ...]  # invalid kinks and ties, in words


def judge_elements(ev: ElementEvidence, a: np.ndarray | None = None,
                   simulated: bool = False) -> ElementVerdict:
    """The outcome of every compared element and the elements' status; ``a`` replaces the
    analytic values (an injected error), ``simulated`` counts every element as certified where
    a run would certify it."""
    a = ev.a if a is None else a
    err = np.abs(a - ev.n)
    bud = budget(a, ev.n, ev.e, ev.r, ev.tol)
    over = err > bud
    band = math.sqrt(ev.eps) * (np.abs(a) + np.abs(ev.n) + ev.t)
    certified = ev.certified | (ev.certifiable if simulated else False)
    outcome = np.where(over, np.where(certified | (err > band), FAILED, ROUNDING), WITHIN)
    outcome = outcome.astype(np.int8)
    # The numerical side could not measure it: no bound, or a bound within which even the
    # largest element's sign flipped would lie (any value there would be within it: an
    # element at 1e-13 whose steps the noise swamps) while the two sides differ beyond
    # rounding (agreement to half the digits is no coincidence), unless the whole gradient is
    # its own rounding noise (then only *zero* can be said).
    top = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(ev.n), initial=0.0)))
    wide = (ev.e > 2 * top) & (err > band) & (top > 0) & (not ev.noise_like)
    outcome[~np.isfinite(ev.e) | ~np.isfinite(bud) | wide] = UNMEASURED
    if not ev.comparable:  # agreement with another function proves nothing either
        outcome[:] = INCOMPARABLE
    notes: list[str] = []
    if ev.kinks is not None:
        _kinks(ev, ev.kinks, a, err, bud, over, outcome, notes)
    status = _status_of(outcome, ev, err, bud)
    return ElementVerdict(status, outcome, err, bud, tuple(notes))


def _kinks(ev: ElementEvidence, k: KinkEvidence, a: np.ndarray, err: np.ndarray,
           bud: np.ndarray, over: np.ndarray, outcome: np.ndarray, notes: list[str]) -> None:
    """Explanations from the kink measurements (modifies ``outcome`` in place: it is this
    function's own working array)."""
    lo = np.fmin(k.left, k.right)
    hi = np.fmax(k.left, k.right)
    slack = 2 * k.bound + bud
    kink = k.analysed & (hi - lo > slack)
    tight = 2 * k.bound < err  # the one-sided bounds are tighter than the discrepancy
    inside = (a >= lo - slack) & (a <= hi + slack)
    outcome[kink & inside & (tight | ~over)] = KINK  # within budget too: a kink found
    outcome[over & kink & inside & ~tight] = ROUNDING
    outcome[kink & ~inside] = BAD_KINK
    mid = (k.left + k.right) / 2
    settles = k.analysed & ~kink & over & tight & (np.abs(a - mid) <= slack) & (not ev.exact)
    outcome[settles] = REMEASURED
    # a finite stencil near a kink whose remeasurement is no tighter than the discrepancy: no
    # estimate can tell the analytic value wrong (the stencil may have crossed the kink)
    outcome[k.analysed & ~kink & over & ~tight & (outcome == FAILED) & (not ev.exact)] = ROUNDING
    outcome[over & k.unanalysed & (outcome == FAILED)] = UNANALYSED
    for tie in k.ties:
        _tie(ev, tie, a, bud, kink, outcome, notes)
    for j in np.flatnonzero(outcome == BAD_KINK)[:2]:
        notes.append(f"kink at flat index {int(ev.idx[j])}: one-sided derivatives "
                     f"{k.left[j]:.9g} (left) and {k.right[j]:.9g} (right), but analytic "
                     f"{a[j]:.9g} lies outside them")


def tie_verdict(tie: Tie, a: np.ndarray, bud: np.ndarray, where: str) -> tuple[int, str]:
    """Whether the analytic values ``a`` of a tie's members (budgets ``bud``) are a valid way
    to share it: ``TIE``, ``BAD_TIE`` (with the note), ``UNVERIFIED`` (the slots do not follow
    the symmetric model) or ``WITHIN`` (moving them together is not two-sided: independent
    kinks, judged one by one)."""
    if not tie.smooth:
        return WITHIN, ""
    k = a.size
    slack = 2 * tie.bound * k + float(np.sum(bud))
    claimed = float(np.sum(a))
    if abs(claimed - tie.total) > slack:
        return BAD_TIE, (f"{where}: moving them together changes the loss at rate "
                         f"{tie.total:.9g}, but their analytic gradients add up to "
                         f"{claimed:.9g} (a tie rule that sends the full dout to every tied "
                         "element?)")
    if not tie.symmetric:
        return UNVERIFIED, ""
    largest_a = np.cumsum(np.sort(a)[::-1])
    largest_c = np.cumsum(np.sort(tie.slots)[::-1])
    room = np.arange(1, k + 1) * 2 * tie.bound + np.cumsum(np.sort(bud)[::-1])
    if np.any(largest_a[:-1] > largest_c[:-1] + room[:-1]):
        return BAD_TIE, (f"{where}: their analytic gradients {np.round(a[:6], 9).tolist()} are "
                         "not a valid way to share the tie's slots "
                         f"{np.round(tie.slots[:6], 9).tolist()} among them")
    return TIE, ""


def _tie(ev: ElementEvidence, tie: Tie, a: np.ndarray, bud: np.ndarray, kink: np.ndarray,
         outcome: np.ndarray, notes: list[str]) -> None:
    m = tie.members
    where = f"{m.size} tied elements (flat indices {', '.join(str(int(i)) for i in ev.idx[m][:6])})"
    code, note = tie_verdict(tie, a[m], bud[m], where)
    if note:
        notes.append(note)
    if code == BAD_TIE:  # the members the rule got wrong: over their budget, or on a kink
        wrong = m[(outcome[m] != WITHIN) | kink[m]]
        outcome[wrong if wrong.size else m] = BAD_TIE
    elif code == UNVERIFIED:
        outcome[m[np.isin(outcome[m], (FAILED, ROUNDING, BAD_KINK))]] = UNVERIFIED
    elif code == TIE:
        outcome[m[outcome[m] != WITHIN]] = TIE
        outcome[m[kink[m] & (outcome[m] == WITHIN)]] = TIE


def _status_of(outcome: np.ndarray, ev: ElementEvidence, err: np.ndarray,
               bud: np.ndarray) -> str:
    codes = set(np.unique(outcome).tolist())
    if codes & FAILING:
        return "fail"
    if codes & UNSURE:
        return "inconclusive"
    if codes & {KINK, TIE}:
        return "kink"
    if ev.noise_like and scaled_norm(ev.n) <= scaled_norm(ev.e + ev.r):
        return "zero"
    return "pass"


# --- directions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectionEvidence:
    """What was measured along the directions of one gradient."""

    claimed: np.ndarray  # <a, u> (joint, for shared directions)
    measured: np.ndarray  # dL/du
    allowed: np.ndarray  # each direction's budget (widened by any confirmation)
    band: np.ndarray  # what rounding could explain
    certified: np.ndarray  # bool
    certifiable: bool
    crossing: np.ndarray  # bool: the direction crosses a kink (no two-sided derivative)
    spread: float  # the scale s of this input's part of the directions
    miss_factor: float  # miss_norm = max budget * miss_factor / s (see .directions)
    rtol: float
    noise_like: bool
    project: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None  # errors -> <e, u> rows
    own: np.ndarray | None = None  # this input's own part of <a, u> (shared directions)
    comparable: bool = True
    shared: tuple[str, ...] = ()
    label: str = "x"


@dataclass(frozen=True)
class DirectionVerdict:
    status: str
    miss_norm: float
    worst: tuple[float, float, float]  # analytic, numeric, budget of the largest ratio
    message: str
    kept: int  # directions that carry evidence
    rounding: bool = False  # some direction is over budget by what rounding could explain

    @property
    def evidence(self) -> bool:
        return self.kept > 0


def judge_directions(d: DirectionEvidence, shift: np.ndarray | None = None,
                     simulated: bool = False) -> DirectionVerdict:
    """The directions' status; ``shift`` is an injected error's projection ``<e, u>``."""
    claimed = d.claimed if shift is None else d.claimed + shift
    allowed = d.allowed if shift is None else d.allowed + d.rtol * np.abs(shift)
    diff = np.abs(claimed - d.measured)
    keep = ~d.crossing
    over = keep & (diff > allowed)
    certified = d.certified | (d.certifiable if simulated else False)
    failing = over & (certified | (diff > d.band)) & d.comparable
    # A direction whose budget would hold its own derivative's sign flipped, while the two
    # sides differ beyond rounding, has no evidence either way (inputs of 3e155 beside ones
    # of 1: the forward's rounding swamps the small ones' share).
    blind = keep & (allowed > 2 * np.maximum(np.abs(claimed), np.abs(d.measured))) & (
        diff > d.band) & (not d.noise_like)
    # A budget that is not a number (an estimate lost to overflow) measures nothing; nor does
    # agreement with a reference that computes another function than the layer.
    unmeasured = keep & ~np.isfinite(allowed)
    unsure = (over & ~failing) | blind | unmeasured | (keep & (not d.comparable))
    kept = int(np.count_nonzero(keep))
    zero = (d.noise_like and kept > 0
            and bool(np.all(np.abs(d.measured[keep]) <= allowed[keep])))
    status = ("fail" if failing.any() else "inconclusive" if unsure.any() or not kept
              else "kink" if d.crossing.any() else "zero" if zero else "pass")
    nan = float("nan")
    ratio = np.where(keep, diff / np.where(allowed > 0, allowed, np.inf), -1.0)
    w = int(np.argmax(ratio)) if kept else -1
    worst = (float(claimed[w]), float(d.measured[w]), float(allowed[w])) if kept else (nan,) * 3
    # The miss bound holds for the directions that carry evidence: with k of D kept, the
    # chance that all k miss is MISS_PROBABILITY only at the factor for k (directions.py).
    rows = d.claimed.size
    fewer = MISS_PROBABILITY ** (1.0 / max(1, rows) - 1.0 / max(1, kept))
    miss = (float(np.max(allowed[keep])) * d.miss_factor * fewer / d.spread if kept
            else math.inf)
    return DirectionVerdict(status, miss, worst, _direction_message(d, claimed, allowed,
                                                                    failing), kept,
                             bool(np.any((over & ~failing) | blind)))


def _direction_message(d: DirectionEvidence, claimed: np.ndarray, allowed: np.ndarray,
                       failing: np.ndarray) -> str:
    parts = [f"direction {k}: <d{d.label}, u> analytic {claimed[k]:.9g} vs numeric "
             f"{d.measured[k]:.9g} (budget {allowed[k]:.2g})" for k in np.flatnonzero(failing)[:2]]
    unmeasured = int(np.count_nonzero(~d.crossing & ~np.isfinite(allowed)))
    if unmeasured:
        parts.append(f"{unmeasured} of {d.crossing.size} directions could not be measured (the "
                     "numerical side's bound is not a number)")
    if not d.comparable:
        parts.append("the float64 run the numerical side differentiates computes another "
                     "function than the layer's own dtype, so no direction says anything about "
                     "the backward")
    crossing = int(np.count_nonzero(d.crossing))
    if crossing:
        parts.append(f"{crossing} of {d.crossing.size} directions cross a kink and carry no "
                     "evidence")
    return "; ".join(parts)


# --- one gradient -----------------------------------------------------------------------------


def gradient_status(el: ElementVerdict | None, d: DirectionVerdict | None,
                    detect: float = 0.0, complete: bool = False) -> str:
    """The gradient's status from its elements and its directions; ``detect`` is the proven
    ``detectable`` (:func:`detectable`) and ``complete`` says every element was compared."""
    if el is None and d is not None and not d.evidence:
        return "inconclusive"  # the directions were all the evidence, and they carry none
    found = {s.status for s in (el, d) if s is not None}
    if found == {"zero"}:
        return "zero"
    status = next(s for s in STATUS_ORDER if s in found or s == "pass")
    if status in ("pass", "kink") and not complete and not math.isfinite(detect):
        # The elements not compared rest on the directions, and not even an error as large as
        # the gradient itself would fail them: a pass there would be no evidence.
        return "inconclusive"
    return status


def across_inputs(statuses: dict[str, str], failed: dict[str, list[str]]) -> dict[str, str]:
    """Statuses after the ties that span several inputs (``np.maximum(a, b)`` where ``a`` and
    ``b`` tie): an input whose share of an invalid cross-input tie was found fails, whatever
    its own elements said (each input alone saw only one side of the tie)."""
    return {name: "fail" if failed.get(name) else status for name, status in statuses.items()}


# --- detectable ---------------------------------------------------------------------------------


def _patterns(a: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Error patterns of largest element 1 (rows, flat): relative, offset, one element at three
    random positions, one slice along each axis, and random noise; random signs."""
    size = a.size
    rows = []
    top = float(np.max(np.abs(a), initial=0.0))
    if top > 0:
        rows.append(a / top)
    rows.append(np.full(size, 1.0))
    for k in rng.choice(size, size=min(3, size), replace=False):
        row = np.zeros(size)
        row[k] = rng.choice([-1.0, 1.0])
        rows.append(row)
    for axis, length in enumerate(shape):
        mask = np.zeros(shape, dtype=bool)
        mask[(slice(None),) * axis + (int(rng.integers(length)),)] = True
        rows.append(mask.reshape(-1) * rng.choice([-1.0, 1.0]))
    noise = rng.uniform(-1.0, 1.0, size)
    rows.append(noise / max(float(np.max(np.abs(noise))), 1e-300))
    return np.array(rows)


def detectable(el: ElementEvidence | None, d: DirectionEvidence | None, a: np.ndarray,
               shape: tuple[int, ...], rng: np.random.Generator,
               start: float) -> float:
    """The smallest size ``δ`` (from ``start``, doubling) such that every injected error whose
    largest element is ``δ · max|a|`` fails; ``inf`` when none up to :data:`MAX_DETECTABLE`."""
    top = float(np.max(np.abs(a), initial=0.0))
    if top == 0.0 or (el is None and d is None) or not math.isfinite(start):
        return math.inf
    rows = _patterns(a, shape, rng)
    shifts = d.project(list(rows)) if d is not None and d.project is not None else None
    delta = max(start, 1e-300 / top)
    while delta <= MAX_DETECTABLE:
        if all(_caught(el, d, a, row, None if shifts is None else shifts[i], delta * top)
               for i, row in enumerate(rows)):
            return delta
        delta *= 2.0
    return math.inf


def _caught(el: ElementEvidence | None, d: DirectionEvidence | None, a: np.ndarray,
            row: np.ndarray, shift: np.ndarray | None, size: float) -> bool:
    if el is not None:
        injected = el.a + size * row[el.idx]
        if judge_elements(el, injected, simulated=True).status == "fail":
            return True
    if d is not None and shift is not None:
        if judge_directions(d, size * shift, simulated=True).status == "fail":
            return True
    return False


def closed_form(el: ElementVerdict | None, d: DirectionVerdict | None, a: np.ndarray) -> float:
    """Where the search for :func:`detectable` starts. Directions move every element, so where
    there are any, an error fails them once its 2-norm passes their miss bound (an error whose
    largest element is that large has at least that 2-norm); elements alone (full mode) fail
    once an error passes some element's budget plus the discrepancy already there."""
    top = float(np.max(np.abs(a), initial=0.0))
    if top == 0.0:
        return math.inf
    if d is not None:
        return d.miss_norm / top
    if el is not None:
        return float(np.max(el.budget, initial=0.0)) / top
    return math.inf
