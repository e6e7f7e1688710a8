"""One gradient, measured: its elements and directions as evidence for the ladder.

The stages for input ``name`` (:func:`judge`): the numerical side is prepared
(:mod:`gradcheck._engine.objective`), the analytic side with its measured rounding
(:mod:`gradcheck._engine.side`); the compared elements are estimated (full or sampled mode), the
worst ones over budget confirmed in extended precision and, where the forward is piecewise,
measured one-sidedly (:mod:`gradcheck._engine.kinks`); directions are measured
(:mod:`gradcheck._engine.directions`, own or shared). Nothing here decides a status: the
evidence goes to :mod:`gradcheck._engine.ladder`, which also proves ``detectable`` by injecting
errors into the analytic gradient. What remains here is assembling the ``GradientResult``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from gradcheck import kinds, numeric
from gradcheck._engine import directions as _directions
from gradcheck._engine import ladder
from gradcheck._engine.call import STREAM, Run, Spec
from gradcheck._engine.directions import CONFIRM_FACTOR, DIRECTIONS, MISS_PROBABILITY, Directions
from gradcheck._engine.kinks import MAX_KINKS, KinkEvidence, measure, mirrored
from gradcheck._engine.ladder import ElementEvidence, ElementVerdict
from gradcheck._engine.objective import Numeric, Reference, joint_objective, nonsmooth, prepare
from gradcheck._engine.shadow import Lazy
from gradcheck._engine.side import Side, at_resolution, scaled_norm, side
from gradcheck.errors import LayerError
from gradcheck.results import (
    MAX_EXPLAINED,
    Coverage,
    Evidence,
    ExplainedElement,
    GradientResult,
    KinkElement,
    WorstElement,
)
from gradcheck.tolerance import (
    Tolerance,
    budget,
    confirm_dtypes,
    judged_dtype,
    resolve,
    unit_roundoff,
)

__all__ = ["AUTO_WORK", "DIRECTIONS", "FULL_MODE_MAX_ELEMENTS", "MISS_PROBABILITY", "Sides",
           "judge", "modes", "shared"]

FULL_MODE_MAX_ELEMENTS = 2048
# What mode="auto" may spend: evaluations times the elements each one computes (the larger of
# the inputs' and the output's). A full check of 2048 elements with its parameters fits, and so
# does the sample of a 256x64 input; at a million elements only the shared directions do.
AUTO_WORK = 2**23
# ... and what it may spend more on one input whose directions turned out weak (see _weak): its
# elements one by one, while they fit (2048 parameters beside an input of 32k elements do, 128
# beside 1M; the 2048 of a float32 BatchNorm at 8M elements would cost 2048 forwards of 8M).
ESCALATION_WORK = 16 * AUTO_WORK
EXTRA_SAMPLES = 32
WORST_ROWS = 5
CONFIRM_MAX = 64  # elements over budget re-measured in extended precision, worst first


# --- elements ---------------------------------------------------------------------------------


def _worst_rows(idx: np.ndarray, shape: tuple[int, ...], a: np.ndarray, n: np.ndarray,
                err: np.ndarray, bud: np.ndarray) -> tuple[WorstElement, ...]:
    ratio = _ratio(err, bud)
    order = np.argsort(-ratio, kind="stable")[:WORST_ROWS]
    return tuple(
        WorstElement(tuple(int(i) for i in np.unravel_index(idx[k], shape)), float(a[k]),
                     float(n[k]), float(err[k]), float(bud[k]))
        for k in order
    )


def _ratio(err: np.ndarray, bud: np.ndarray) -> np.ndarray:
    return np.where(bud > 0, err / np.where(bud > 0, bud, 1.0), np.where(err > 0, np.inf, 0.0))


@dataclass(frozen=True)
class _Elements:
    """The element-by-element comparisons of one gradient: the evidence and its verdict."""

    evidence: ElementEvidence
    verdict: ElementVerdict
    shape: tuple[int, ...]
    nfev: int
    step: float

    @property
    def status(self) -> str:
        return self.verdict.status

    @property
    def count(self) -> int:
        return int(self.evidence.idx.size)

    def counted(self, codes: frozenset[int]) -> int:
        return int(np.count_nonzero(np.isin(self.verdict.outcome, list(codes))))

    @property
    def worst(self) -> tuple[WorstElement, ...]:
        ev, v = self.evidence, self.verdict
        return _worst_rows(ev.idx, self.shape, ev.a, ev.n, v.err, v.budget)

    @property
    def kinks(self) -> tuple[KinkElement, ...]:
        k = self.evidence.kinks
        if k is None:
            return ()
        outcome = self.verdict.outcome
        shown = np.isin(outcome, [ladder.KINK, ladder.TIE, ladder.BAD_KINK, ladder.BAD_TIE])
        return tuple(
            KinkElement(tuple(int(i) for i in np.unravel_index(self.evidence.idx[j], self.shape)),
                        float(k.left[j]), float(k.right[j]), float(self.evidence.a[j]),
                        bool(outcome[j] in (ladder.KINK, ladder.TIE)))
            for j in np.flatnonzero(shown & k.analysed)
        )


def _confirm(num: Numeric, idx: np.ndarray, n: np.ndarray, e: np.ndarray,
             over: np.ndarray, ratio: np.ndarray, eps: float
             ) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Step 2: re-measure the worst elements over budget in extended precision (for a layer of
    float32 or narrower, float64's complex step is extended enough where long double does not
    run: a framework's tensors). Returns the widened bounds, which elements were confirmed, the
    evaluations, and whether confirming is possible at all for this gradient."""
    confirmed = np.zeros(idx.size, dtype=bool)
    if num.method != "complex" or num.witness is None:
        return e, confirmed, 0, False
    if not over.any():
        return e, confirmed, 0, True
    worst_first = np.flatnonzero(over)[np.argsort(-ratio[over], kind="stable")]
    pick = np.sort(worst_first[:CONFIRM_MAX])
    wide = None
    for dtype in confirm_dtypes(eps):
        try:
            wide = numeric.complex_step(num.witness, num.x, indices=idx[pick],
                                        terms=None, dtype=dtype)
            break
        except Exception:  # the forward does not run in this precision
            continue
    if wide is None:  # nor in any extended one: nothing confirmed
        return e, confirmed, 0, False
    e = e.copy()
    e[pick] += CONFIRM_FACTOR * np.abs(n[pick] - wide.value)
    confirmed[pick] = True
    return e, confirmed, wide.nfev, True


def _measure_elements(side: Side, est: numeric.Estimate, idx: np.ndarray, num: Numeric,
                      tol: Tolerance, shape: tuple[int, ...]) -> _Elements:
    """Everything the ladder needs about the compared elements: the estimates, their
    confirmation where one would fail, and the kink measurements where the forward is
    piecewise."""
    a, r, t = side.a[idx], side.rounding[idx], side.terms[idx]
    n = np.asarray(est.value, dtype=np.float64).reshape(-1)
    e = np.asarray(est.error, dtype=np.float64).reshape(-1)
    err = np.abs(a - n)
    first = budget(a, n, e, r, tol)
    over = err > first
    e, confirmed, extra, can_confirm = _confirm(num, idx, n, e, over, _ratio(err, first),
                                                side.eps)
    bud = budget(a, n, e, r, tol)
    kinks, extra_k = _kinks_of(num, idx, a, n, e, bud, err > bud, np.abs(a) + t)
    evidence = ElementEvidence(
        idx=idx, a=a, n=n, e=e, r=r, t=t, certified=confirmed & side.witnessed,
        certifiable=can_confirm and side.witnessed, exact=num.method == "complex",
        eps=side.eps, tol=tol, kinks=kinks, noise_like=side.noise_like,
        comparable=num.comparable)
    return _Elements(evidence, ladder.judge_elements(evidence), shape, est.nfev + extra + extra_k,
                     _median(est.step))


def _median(values: np.ndarray) -> float:
    """The median by sorting (``np.median`` imports ``numpy.ma``, 10 ms of a CLI run)."""
    flat = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    n = flat.size
    return float((flat[(n - 1) // 2] + flat[n // 2]) / 2) if n else float("nan")


def _kinks_of(num: Numeric, idx: np.ndarray, a: np.ndarray, n: np.ndarray, e: np.ndarray,
              bud: np.ndarray, over: np.ndarray, terms: np.ndarray
              ) -> tuple[KinkEvidence | None, int]:
    """Step 2b: one-sided measurements at the elements over budget, and at the elements where
    the mirrored complex step shows a tie (only when the forward uses piecewise operations)."""
    nfev = 0
    mirror = None
    if not num.nonsmooth:  # no operation with a kink in the forward: nothing to analyse
        return None, nfev
    candidates = over.copy()
    if num.method == "complex" and num.piecewise:
        flat_terms = np.zeros(num.x.size)
        flat_terms[idx] = terms
        mv, me, nfev = mirrored(num, idx, flat_terms.reshape(num.x.shape))
        mirror = (mv, me + e)
        candidates |= np.abs(mv - n) > me + e
    if num.method != "complex":
        candidates[:] = True  # central stencils average the two sides of an exact kink
    if not candidates.any():
        return None, nfev
    ratio = np.abs(a - n) / np.maximum(bud, np.finfo(float).tiny)
    order = np.argsort(-ratio, kind="stable")  # worst first: they decide the verdict
    found = measure(num, idx, order, candidates, mirror, n, bud)
    return found, nfev + found.nfev


# --- one gradient -----------------------------------------------------------------------------


def _work(spec: Spec, run: Run) -> int:
    """The elements one evaluation computes: the larger of the inputs' and the output's."""
    return max(sum(spec.inputs[k].size for k in spec.inputs), run.out.size, 1)


def modes(spec: Spec, run: Run) -> dict[str, str]:
    """Each input's mode. ``auto`` gives the smallest inputs (the parameters) every element
    while the evaluations fit :data:`AUTO_WORK`, up to :data:`FULL_MODE_MAX_ELEMENTS` each,
    then a sample where it fits, then directions only (their miss bound is stated)."""
    if spec.mode != "auto":
        return {name: spec.mode for name in spec.wrt}
    allowance = AUTO_WORK // _work(spec, run) - DIRECTIONS
    chosen = {}
    for name in sorted(spec.wrt, key=lambda k: spec.inputs[k].size):
        shape = spec.inputs[name].shape
        size = spec.inputs[name].size
        sample = max(shape, default=1) + 2 ** len(shape) + EXTRA_SAMPLES  # _sample_indices' most
        if size <= min(FULL_MODE_MAX_ELEMENTS, allowance):
            chosen[name], allowance = "full", allowance - size
        elif sample <= allowance:
            chosen[name], allowance = "sampled", allowance - sample
        else:
            chosen[name] = "directional"
    return {name: chosen[name] for name in spec.wrt}


def _sample_indices(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Every index of every axis at least once, the corners, and a few random elements (a 0-d
    input's one element)."""
    if not shape:
        return np.arange(1)
    m = max(shape)
    coords = [rng.permutation(np.resize(np.arange(n), m)) for n in shape]
    spread = np.ravel_multi_index(coords, shape)
    corners = np.ravel_multi_index(
        np.array(np.meshgrid(*[[0, n - 1] for n in shape])).reshape(len(shape), -1), shape
    )
    size = math.prod(shape)
    extra = rng.choice(size, size=min(EXTRA_SAMPLES, size), replace=False)
    return np.unique(np.concatenate([spread, corners, extra]))


def judge(spec: Spec, run: Run, ref: Reference, sides: Sides, name: str,
          found: numeric.Probe | None = None,
          vouched: Directions | None = None) -> GradientResult:
    """Measure and judge the gradient of input ``name`` (``found``: the check's probe;
    ``vouched``: its result from the directions it shared with the other inputs)."""
    t0 = time.perf_counter()
    x = spec.inputs[name]
    raw = _gradient_array(spec, run, name)
    tol = resolve(spec.tolerance, judged_dtype(raw.dtype, x.dtype))
    if raw.shape != x.shape:
        return _shape_failure(name, raw, x, tol)
    if not np.all(np.isfinite(raw)):
        return _nonfinite_failure(name, raw, x, tol)
    mode = modes(spec, run)[name]
    alone = vouched is None or mode != "directional"  # evaluations perturbing `name` alone
    num = prepare(spec, ref, name, found, alone=alone)

    # The measured rounding is what the verdict and the guarantee of `detectable` rest on.
    current = sides.get(name, raw)
    if sides.wide_differs():  # nor may extended precision confirm an estimate, then
        num = replace(num, witness=None)
    rng = np.random.default_rng([spec.seed, STREAM, *map(ord, name)])
    directions = note = None
    if mode == "directional":
        directions = vouched or _directions.own(name, num, current, tol, rng)
        # cheap enough to estimate one by one
        small = (x.size <= FULL_MODE_MAX_ELEMENTS
                 and x.size * _work(spec, run) <= ESCALATION_WORK)
        if spec.mode == "auto" and (not directions.evidence
                                    or (small and _weak(directions, current))):
            norm = scaled_norm(current.a)
            note = (f"auto: the directions alone would miss errors of 2-norm "
                    f"{directions.miss_norm:.3g} (|d{name}| = {norm:.3g}), so elements were "
                    "estimated too")
            mode = "full" if x.size <= FULL_MODE_MAX_ELEMENTS else "sampled"
            if mode == "full" or not math.isfinite(directions.miss_norm):
                directions = None
            if vouched is not None:  # its elements are estimated alone: screen it alone
                num = prepare(spec, ref, name, found, alone=True)
        elif spec.mode == "auto" and _weak(directions, current):
            note = (f"auto: the directions alone would miss errors of 2-norm "
                    f"{directions.miss_norm:.3g} (|d{name}| = {scaled_norm(current.a):.3g}); "
                    f"estimating its {x.size} elements one by one would take {x.size} forwards "
                    f"of {_work(spec, run)} elements, beyond auto's budget (mode='full' does)")
    elements = est = idx = None
    if mode != "directional":
        idx = _sample_indices(x.shape, rng) if mode == "sampled" else np.arange(x.size)
        est = _estimate(num, current, idx, full=mode == "full")
        elements = _measure_elements(current, est, idx, num, tol, x.shape)
    covered = idx is not None and idx.size == x.size  # a sample of every element: no need
    if mode == "sampled" and directions is None and note is None and not covered:
        directions = vouched or _directions.own(name, num, current, tol, rng)
    if note:
        num = replace(num, reason="; ".join(filter(None, [num.reason, note])))
    guarantee = _guarantee(spec, name, current, elements, directions, x.shape)
    result = _result(name, mode, elements, directions, num, tol, x, time.perf_counter() - t0,
                     spec.dout is not None, guarantee)
    evidence = Evidence(name, raw, est, idx, ref.inputs, ref.g, num.f, tol, current.rounding)
    return replace(result, evidence=evidence)  # for gradcheck.diagnosis and the pictures


def _guarantee(spec: Spec, name: str, side: Side, el: _Elements | None,
               d: Directions | None, shape: tuple[int, ...]) -> float:
    """``detectable``, proven by injection (:func:`gradcheck._engine.ladder.detectable`)."""
    start = ladder.closed_form(el.verdict if el else None, d.verdict if d else None, side.a)
    rng = np.random.default_rng([spec.seed, STREAM, *b"detectable", *map(ord, name)])
    return ladder.detectable(el.evidence if el else None, d.evidence_ if d else None, side.a,
                             shape, rng, start)


class Sides:
    """Each gradient's analytic side (:mod:`gradcheck._engine.side`), made once per check from
    the shadow runs, which run on first need."""

    def __init__(self, spec: Spec, ref: Reference, shadow: Lazy) -> None:
        self._spec, self._ref, self._shadow = spec, ref, shadow
        self._made: dict[str, Side] = {}

    def wide_differs(self) -> bool:
        """Whether the wider dtype computes another function (measured by the shadow runs)."""
        return self._shadow.get().differs

    def get(self, name: str, raw: np.ndarray) -> Side:
        if name not in self._made:
            dtype = judged_dtype(raw.dtype, self._spec.inputs[name].dtype)
            kappa = max(float(np.max(self._ref.conditioning(k), initial=1.0))
                        for k in self._ref.inputs)
            self._made[name] = side(raw, self._shadow.get(), name, unit_roundoff(dtype),
                                    self._ref.natural(name), kappa)
        return self._made[name]


def _weak(d: Directions, current: Side) -> bool:
    """Directions whose miss bound exceeds ``sqrt(ε)`` of the gradient's norm: a float32 layer
    at a bad conditioning, say, where the budget of directions shared with a large input swamps
    a small parameter's gradient (its elements one by one are then worth their cost; a large
    input's elements would suffer the same rounding)."""
    norm = scaled_norm(current.a)
    return d.miss_norm > math.sqrt(current.eps) * norm


def shared(spec: Spec, run: Run, ref: Reference, sides: Sides,
           found: numeric.Probe | None) -> tuple[dict[str, Directions], int]:
    """The inputs that one set of shared directions vouches for
    (:mod:`gradcheck._engine.directions`), and the evaluations it made: complex-step checks with
    two or more inputs in a directional
    mode, a smooth forward, and gradients that are neither failing already nor possibly zero."""
    method_ok = spec.method == "complex" or (spec.method == "auto" and found is not None
                                             and found.safe)
    if not method_ok or found is None or nonsmooth(found):
        return {}, 0
    raws, made = {}, {}
    mode = modes(spec, run)
    for name in spec.wrt:
        x = spec.inputs[name]
        if mode[name] == "full" or name not in run.grads or run.grads[name] is None:
            continue
        raw = np.asarray(run.grads[name])
        if raw.shape != x.shape or raw.dtype.kind != "f" or not np.all(np.isfinite(raw)):
            continue
        one = sides.get(name, raw)
        if one.noise_like or at_resolution(one.a, one.eps, ref.natural(name)):
            continue  # zero or not: only its own comparison can say
        raws[name], made[name] = raw, one
    if len(made) < 2:
        return {}, 0
    names = list(made)
    f, v = joint_objective(spec, ref, names)
    bounds = np.cumsum([0] + [spec.inputs[k].size for k in names])
    parts = {k: (slice(int(lo), int(hi)), _directions.spread(ref.inputs[k]))
             for k, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True)}
    tol = resolve(spec.tolerance, np.result_type(*raws.values()))
    rng = np.random.default_rng([spec.seed, STREAM, *b"shared"])
    return _directions.shared(f, v, parts, made, tol, rng)


def _estimate(num: Numeric, side: Side, idx: np.ndarray, full: bool) -> numeric.Estimate:
    indices = None if full else idx
    if num.method == "complex":
        terms = (np.abs(side.a) + side.terms).reshape(num.x.shape)
        return numeric.complex_step(num.f, num.x, indices=indices, terms=terms)
    return numeric.numerical_gradient(num.f, num.x, method=num.method, indices=indices,
                                      noise=num.noise)


def _gradient_array(spec: Spec, run: Run, name: str) -> np.ndarray:
    if name not in run.grads or run.grads[name] is None:
        have = ", ".join(sorted(map(str, run.grads))) or "nothing"
        raise LayerError(
            f"{spec.name}: backward returned no gradient for `{name}` (it returned {have})"
        )
    arr = np.asarray(run.grads[name])
    if arr.dtype.kind not in "fc":
        raise LayerError(f"{spec.name}: backward returned {arr.dtype} for d{name}, expected floats")
    if arr.dtype.kind == "c":
        imag = float(np.max(np.abs(arr.imag), initial=0.0))
        if imag > 0:
            raise LayerError(
                f"{spec.name}: backward returned a complex d{name} with imaginary parts up to "
                f"{imag:.3g}; the gradient of a real layer must be real"
            )
        arr = arr.real
    return arr


def _shape_failure(name: str, grad: np.ndarray, x: np.ndarray, tol: Tolerance) -> GradientResult:
    msg = (
        f"d{name} has shape {grad.shape} but `{name}` has shape {x.shape}; a gradient must have "
        "its input's shape (a (1, D) dbeta for a (D,) beta, or a parameter gradient not summed "
        "over the batch, is a bug even if it broadcasts)"
    )
    return _uncompared(name, kinds.SHAPE, x, tol, msg)


def _nonfinite_failure(name: str, grad: np.ndarray, x: np.ndarray,
                       tol: Tolerance) -> GradientResult:
    bad = int(grad.size - np.count_nonzero(np.isfinite(grad)))
    return _uncompared(name, kinds.NONFINITE, x, tol,
                       f"d{name} contains {bad} NaN or inf of {grad.size} elements")


_FAILING = ("fail", "inconclusive")


def _result(name: str, mode: str, el: _Elements | None, d: Directions | None, num: Numeric,
            tol: Tolerance, x: np.ndarray, seconds: float, user_dout: bool,
            detect: float) -> GradientResult:
    """One GradientResult from the element-wise and the directional comparisons."""
    nan = float("nan")
    status = ladder.gradient_status(el.verdict if el else None, d.verdict if d else None,
                                    detect, el is not None and el.count == x.size)
    found = {v.status for v in (el, d) if v is not None}
    unproven = status == "inconclusive" and not found & {"fail", "inconclusive"}
    head: tuple[float, float, float, tuple[int, ...] | None, float, float]
    directions_decide = (el is not None and d is not None and el.status not in _FAILING
                         and d.status in _FAILING)
    worst = el.worst if el is not None else ()
    if el is not None and not directions_decide:
        w = worst[0]
        err, a, n = el.verdict.err, el.evidence.a, el.evidence.n
        size = np.maximum(np.abs(a), np.abs(n))
        rel = np.divide(err, size, out=np.zeros_like(err), where=size > 0)
        head = (float(np.max(err)), float(np.max(rel)), w.budget, w.index, w.analytic,
                w.numeric)
    else:  # the worst direction stands in for the worst element (directions only, or they
        # failed where every sampled element passed)
        a_u, n_u, b = d.worst if d is not None else (nan, nan, nan)
        head = (abs(a_u - n_u), abs(a_u - n_u) / max(abs(a_u), abs(n_u)) if a_u or n_u else 0.0,
                b, None, a_u, n_u)
    max_abs, max_rel, bud, index, analytic, numeric_value = head
    return GradientResult(
        name=name, status=status, max_abs_error=max_abs, max_rel_error=max_rel, budget=bud,
        worst_index=index, analytic_at_worst=analytic, numeric_at_worst=numeric_value,
        nfev=(el.nfev if el else 0) + (d.nfev if d else 0), method=num.method,
        coverage=_coverage(mode, el, d, x, detect), rtol=tol.rtol or 0.0, atol=tol.atol,
        message=_message(name, status, el, d, user_dout, unproven), reason=_reason(num, d),
        worst=worst,
        seconds=seconds, kinks=el.kinks if el else (), explained=_explained(el) if el else (),
    )


def _reason(num: Numeric, d: Directions | None) -> str:
    """Why the method ran, and which inputs shared the directions (then the values shown are
    the joint ``<a, u>`` and ``dL/du``, the same for each of them)."""
    if d is None or not d.shared:
        return num.reason
    shared = (f"directions shared with {', '.join(f'd{n}' for n in d.shared)}: one evaluation "
              "per direction for all of them; the values shown are the joint <a, u> and dL/du")
    return "; ".join(filter(None, [num.reason, shared]))


def _message(name: str, status: str, el: _Elements | None, d: Directions | None,
             user_dout: bool, unproven: bool = False) -> str:
    if status == "zero":
        cause = (f"`{name}` has no effect on <dout, out> for the `dout` given (a constant dout "
                 "does this to normalising layers)" if user_dout else
                 f"`{name}` has no effect on the output")
        return (f"zero: {cause}; analytic and numerical d{name} are both zero up to the "
                "rounding of the terms they sum, so this check carries no evidence (a bias "
                "right before a normalisation is redundant, for example; if that is intended, "
                f"exclude `{name}` with wrt=)")
    parts = []
    unanalysed = unsure = 0
    if el is not None:
        unanalysed = el.counted(frozenset({ladder.UNANALYSED}))
        unsure = el.counted(ladder.UNSURE)
    over = int(np.count_nonzero(el.verdict.err > el.verdict.budget)) if el is not None else 0
    if el is not None and el.status in _FAILING and over:
        w = el.worst[0]
        count = el.counted(ladder.FAILING) if el.status == "fail" else min(unsure, over)
        parts.append(f"{count} of {el.count} elements over budget; worst at {w.index}: "
                     f"analytic {w.analytic:.9g}, numeric {w.numeric:.9g}, "
                     f"error {w.abs_error:.3g} > budget {w.budget:.3g}")
        if not np.any(el.evidence.n):
            parts.append(
                f"the numerical gradient is zero everywhere: does the forward use `{name}`?"
            )
    if el is not None:
        parts.extend(el.verdict.notes[:3])
        if status == "kink":
            parts.append(f"kink: {len(el.kinks)} element(s) where the layer is not "
                         "differentiable (ties or thresholds); the analytic values there are "
                         "valid choices between the one-sided derivatives")
        explained = el.counted(frozenset({ladder.REMEASURED}))
        if explained:
            parts.append(f"{explained} element(s) over the first estimate's budget were measured "
                         "again with one-sided steps far below the element's scale, which agree "
                         "with the analytic value (the first steps crossed a kink nearby)")
    if d is not None and d.message:
        if el is not None and el.status not in _FAILING and d.status in _FAILING:
            parts.append(f"every one of the {el.count} sampled elements passes, but the "
                         "directions, which move every element, do not")
        parts.append(d.message)
    if el is None and d is not None and not d.evidence:
        parts.append("no direction was compared, so there is no verdict: check the elements one "
                     "by one (mode='sampled' or 'full'), where kinks are analysed")
    if unproven:
        kept = f"{d.verdict.kept} of {DIRECTIONS}" if d is not None else "no"
        parts.append(f"inconclusive: every compared value agrees, but the elements not compared "
                     f"rest on the directions ({kept} carry evidence), which would not fail "
                     "even an error as large as the gradient itself: check every element "
                     "(mode='full')")
    if unanalysed:
        parts.append(f"{unanalysed} elements over budget may sit on kinks but were beyond the "
                     f"{MAX_KINKS} analysed (worst first), so they carry no verdict")
    unmeasured = el.counted(frozenset({ladder.UNMEASURED})) if el is not None else 0
    if unmeasured:
        parts.append(f"{unmeasured} elements could not be measured: the numerical side has no "
                     "bound there, or one too wide to see the largest element's sign (no step "
                     "far below the element's own size and above the forward's noise: values "
                     "near 1e-300, a pole, inputs spanning many decades)")
    if el is not None and el.counted(frozenset({ladder.INCOMPARABLE})):
        parts.append("the float64 run the numerical side differentiates computes another "
                     "function than the layer's own dtype, so neither its agreement nor its "
                     "discrepancies say anything about the backward")
    unverified = el.counted(frozenset({ladder.UNVERIFIED})) if el is not None else 0
    if unverified:
        parts.append(f"{unverified} tied elements whose slots do not follow a symmetric "
                     "selection (max, sort, top-k): their tie rule could not be verified")
    by_rounding = ((el is not None and el.counted(frozenset({ladder.ROUNDING})) > 0)
                   or (d is not None and d.verdict.rounding))
    if status == "inconclusive" and by_rounding:
        parts.append("inconclusive: the error is within what rounding could explain, and "
                     + _why_unconfirmed(el))
    return "; ".join(parts)


# --- the record's parts -----------------------------------------------------------------------


def _uncompared(name: str, status: str, x: np.ndarray, tol: Tolerance,
                message: str) -> GradientResult:
    """A gradient that was never compared (wrong shape, NaN or inf): nothing covered."""
    nan = float("nan")
    return GradientResult(
        name=name, status=status, max_abs_error=nan, max_rel_error=nan, budget=nan,
        worst_index=None, analytic_at_worst=nan, numeric_at_worst=nan, nfev=0, method="-",
        coverage=Coverage(mode="-", elements=0, size=x.size), rtol=tol.rtol or 0.0,
        atol=tol.atol, message=message,
    )


def _coverage(mode: str, el: _Elements | None, d: Directions | None, x: np.ndarray,
              detect: float) -> Coverage:
    """What the check of one gradient covered; ``detect`` is its proven ``detectable``."""
    nan = float("nan")
    detectable = detect if math.isfinite(detect) else nan
    return Coverage(mode=mode, elements=el.count if el else 0, size=x.size,
                    directions=DIRECTIONS if d else 0, miss_norm=d.miss_norm if d else nan,
                    detectable=detectable, guarantee=_guarantee_kind(el, d, x, detectable),
                    step=el.step if el else nan)


def _guarantee_kind(el: _Elements | None, d: Directions | None, x: np.ndarray,
                    detectable: float) -> str:
    """How ``detectable`` holds: directions carry it wherever there are any (with probability
    at least 1 - MISS_PROBABILITY); elements alone only when every one was compared (full
    mode, or a sample that reached every element)."""
    if not math.isfinite(detectable):
        return kinds.NO_GUARANTEE
    if d is not None:
        return kinds.PROBABLE
    return kinds.CERTAIN if el is not None and el.count == x.size else kinds.NO_GUARANTEE


def _explained(el: _Elements) -> tuple[ExplainedElement, ...]:
    """Every compared element the ladder gave a named outcome other than within budget or a
    plain failure, worst first by error over budget, at most :data:`MAX_EXPLAINED`."""
    ev, v = el.evidence, el.verdict
    named = np.flatnonzero(~np.isin(v.outcome, [ladder.WITHIN, ladder.FAILED]))
    order = named[np.argsort(-_ratio(v.err[named], v.budget[named]), kind="stable")]
    return tuple(
        ExplainedElement(tuple(int(i) for i in np.unravel_index(ev.idx[j], el.shape)),
                         ladder.OUTCOMES[int(v.outcome[j])], float(ev.a[j]), float(ev.n[j]),
                         float(v.budget[j]))
        for j in order[:MAX_EXPLAINED]
    )


def _why_unconfirmed(el: _Elements | None) -> str:
    """Why an error within the rounding band could not be certified a bug."""
    if el is not None and not el.evidence.exact:
        return ("a finite-difference estimate (the forward does not take the complex step) "
                "cannot be confirmed in extended precision, so rounding cannot be told from a "
                "bug (method='complex' where the forward allows it settles it)")
    return ("the layer could not be re-run in a wider dtype to tell rounding from a bug")
