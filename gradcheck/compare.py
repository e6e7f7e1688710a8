"""The verdict per gradient: element-wise and directional comparisons under per-element budgets.

Measuring happens elsewhere (:mod:`gradcheck.numeric`, :mod:`gradcheck._objective`,
:mod:`gradcheck._shadow`); this module turns the measurements into a status
(:data:`gradcheck.results.STATUSES`) with the budget of :mod:`gradcheck.tolerance`:

1. Every compared element is held to its own budget ``e_k + r_k + atol + rtol·max(|a_k|, |n_k|)``.
2. An element over budget is re-measured with the complex step in extended precision (complex
   long double), when the complex step is the engine: ``e_k`` grows by four times the change,
   so a float64 estimate spoiled by the forward's own rounding (an ill-conditioned variance, a
   cancelling sum) cannot fail a correct layer.
3. An element still over budget *fails* when both sides were measured (the analytic rounding by
   a witness, the numerical estimate confirmed), or when its error exceeds what rounding could
   possibly explain, ``sqrt(ε)·(|a_k| + |n_k| + T_k)``; otherwise it is *inconclusive*.
4. A gradient whose every element is zero on both sides, up to their measured noise, is *zero*.

Directions (sampled and directional modes) follow the same steps with ``<a, u>`` against the
numerical ``dL/du``, the budget projected on ``|u|``. An error vector ``e`` escapes one direction
only when ``|<e, u>|`` falls under that direction's budget; with ``u = s z``, ``z`` standard normal
and ``s`` the spread of ``x``, ``<e, u> ~ N(0, s² |e|²)``, so an error of 2-norm at least
``miss_norm = max budget / (s z*)``, where ``P(|Z| < z*)^DIRECTIONS = MISS_PROBABILITY``, is
caught with probability at least ``1 - MISS_PROBABILITY``.

``detectable`` is the smallest relative error of the whole gradient (``a = n (1 + δ)``) that the
check would have flagged: the smallest ``budget_k / |a_k|`` over the elements and directions.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gradcheck import numeric
from gradcheck._calls import _STREAM, _Run, _Spec
from gradcheck._kinks import Kinks, analyse, mirrored, smooth_along
from gradcheck._objective import Numeric, Reference, prepare
from gradcheck._shadow import Shadow
from gradcheck.errors import LayerError
from gradcheck.results import Evidence, GradientResult, KinkElement, WorstElement
from gradcheck.tolerance import (
    FLOOR_ULPS,
    NOISE_RATIO,
    Tolerance,
    analytic_rounding,
    budget,
    resolve,
    unit_roundoff,
)

FULL_MODE_MAX_ELEMENTS = 2048
DIRECTIONS = 8
MISS_PROBABILITY = 1e-6
EXTRA_SAMPLES = 32
WORST_ROWS = 5
CONFIRM_MAX = 64  # elements over budget re-measured in extended precision, worst first
CONFIRM_FACTOR = 4.0  # e_k += CONFIRM_FACTOR * |n_k - n'_k|


# --- the analytic side ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Side:
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


def _side(grad: np.ndarray, shadow: Shadow, name: str, eps: float, natural: Any) -> _Side:
    a = grad.astype(np.float64).reshape(-1)
    w = shadow.witness.get(name)
    flat_w = None if w is None else np.asarray(w).reshape(-1)
    terms = shadow.terms.get(name)
    t = np.zeros_like(a) if terms is None else np.asarray(terms, dtype=np.float64).reshape(-1)
    # The gradient is rounding noise when the wider dtype shrank it as a whole (energy, so a
    # single element's lucky rounding does not decide), or when it sits at the witness's own
    # resolution; with no witness only an exact zero is known to be one.
    noise_like = not np.any(a)
    if flat_w is not None:
        eps_w = float(np.finfo(flat_w.dtype).eps)
        resolution = FLOOR_ULPS * eps_w * np.asarray(natural, dtype=np.float64)
        small = np.abs(flat_w).astype(np.float64)
        noise_like = noise_like or bool(
            _dot(small, small) <= NOISE_RATIO**2 * _dot(a, a) or np.all(small <= resolution))
    exact = grad.reshape(-1) if flat_w is None else grad.reshape(-1).astype(flat_w.dtype)
    rounding = analytic_rounding(exact, flat_w, t, eps, natural).astype(np.float64)
    return _Side(a, rounding, t, noise_like, flat_w is not None, eps)


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
    """The element-by-element comparisons of one gradient."""

    status: str  # pass, zero, fail or inconclusive
    failing: int
    unsure: int
    max_abs: float
    max_rel: float
    worst: tuple[WorstElement, ...]
    nfev: int
    step: float
    count: int
    detectable: float
    numeric_zero: bool  # the numerical side is exactly zero everywhere
    kinks: tuple[KinkElement, ...] = ()
    ties: tuple[str, ...] = ()


def _confirm(num: Numeric, side: _Side, idx: np.ndarray, n: np.ndarray, e: np.ndarray,
             over: np.ndarray, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Step 2: re-measure the worst elements over budget in extended precision."""
    confirmed = np.zeros(idx.size, dtype=bool)
    if num.method != "complex" or num.witness is None or not over.any():
        return e, confirmed, 0
    worst_first = np.flatnonzero(over)[np.argsort(-ratio[over], kind="stable")]
    pick = np.sort(worst_first[:CONFIRM_MAX])
    try:
        wide = numeric.complex_step(num.witness, num.x, indices=idx[pick],
                                    terms=None, dtype=np.clongdouble)
    except Exception:  # the forward does not run in extended precision: nothing confirmed
        return e, confirmed, 0
    e = e.copy()
    e[pick] += CONFIRM_FACTOR * np.abs(n[pick] - wide.value)
    confirmed[pick] = True
    return e, confirmed, wide.nfev


def _judge_elements(side: _Side, est: numeric.Estimate, idx: np.ndarray, num: Numeric,
                    tol: Tolerance, shape: tuple[int, ...]) -> _Elements:
    a, r, t = side.a[idx], side.rounding[idx], side.terms[idx]
    n = np.asarray(est.value, dtype=np.float64).reshape(-1)
    e = np.asarray(est.error, dtype=np.float64).reshape(-1)
    err = np.abs(a - n)
    first = budget(a, n, e, r, tol)
    over = err > first
    e, confirmed, extra = _confirm(num, side, idx, n, e, over, _ratio(err, first))
    bud = budget(a, n, e, r, tol)
    over = err > bud
    kinks, extra_k = _kinks_of(num, idx, a, n, e, bud, over, np.abs(a) + t, shape)
    certified = confirmed & side.witnessed
    band = math.sqrt(side.eps) * (np.abs(a) + np.abs(n) + t)
    explained = (kinks.valid | kinks.remeasured if kinks is not None
                 else np.zeros(idx.size, dtype=bool))
    invalid = kinks.kink & ~kinks.valid if kinks is not None else explained
    failing = (over & ~explained & (certified | (err > band) | invalid)) | invalid
    unsure = over & ~failing & ~explained
    ties = kinks.ties if kinks is not None else ()
    zero = side.noise_like and bool(_dot(n, n) <= _dot(e + r, e + r))
    found_kinks = kinks.rows if kinks is not None else ()
    status = ("fail" if failing.any() or ties else "inconclusive" if unsure.any()
              else "kink" if found_kinks else "zero" if zero else "pass")
    size = np.maximum(np.abs(a), np.abs(n))
    rel = np.divide(err, size, out=np.zeros_like(err), where=size > 0)
    detect = np.divide(bud, np.abs(a), out=np.full_like(bud, np.inf), where=np.abs(a) > 0)
    return _Elements(
        status=status, failing=int(failing.sum()) + len(ties), unsure=int(unsure.sum()),
        max_abs=float(np.max(err)), max_rel=float(np.max(rel)),
        worst=_worst_rows(idx, shape, a, n, err, bud), nfev=est.nfev + extra + extra_k,
        step=float(np.median(est.step)), count=idx.size,
        detectable=float(np.min(detect, initial=np.inf)), numeric_zero=not np.any(n),
        kinks=found_kinks, ties=ties,
    )


def _kinks_of(num: Numeric, idx: np.ndarray, a: np.ndarray, n: np.ndarray, e: np.ndarray,
              bud: np.ndarray, over: np.ndarray, terms: np.ndarray,
              shape: tuple[int, ...]) -> tuple[Kinks | None, int]:
    """Step 2b: kink analysis of the elements over budget, and of the elements where the
    mirrored complex step shows a tie (only when the forward uses piecewise operations)."""
    nfev = 0
    mirror = None
    if not num.nonsmooth:  # no operation with a kink in the forward: nothing to analyse
        return None, nfev
    candidates = over.copy()
    if num.method == "complex" and num.piecewise:
        flat_terms = np.zeros(num.x.size)
        flat_terms[idx] = terms
        mv, me, nfev = mirrored(num, idx, n, flat_terms.reshape(num.x.shape))
        mirror = (mv, me + e)
        candidates |= np.abs(mv - n) > me + e
    if num.nonsmooth and num.method != "complex":
        candidates[:] = True  # central stencils average the two sides of an exact kink
    if not candidates.any():
        return None, nfev
    found = analyse(num, idx, a, bud, candidates, mirror, n, shape)
    return found, nfev + found.nfev


# --- directions -------------------------------------------------------------------------------


def _along(f: Any, x: np.ndarray, u: np.ndarray) -> Any:
    """``phi(t) = L(x + t u)``, the objective along one direction."""
    return lambda t: f(x + t * u)


@dataclass(frozen=True)
class _Directions:
    """The directional comparisons of one gradient."""

    status: str  # pass, zero, fail or inconclusive
    nfev: int
    miss_norm: float
    message: str
    worst: tuple[float, float, float]  # analytic <a, u>, numeric dL/du, budget: largest ratio
    detectable: float


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """A dot product in this thread (no multithreaded BLAS: see ``_objective._inner``)."""
    return float(np.einsum("i,i->", a, b))


def _direction_budget(side: _Side, u: np.ndarray, est: numeric.Estimate, measured: float,
                      tol: Tolerance) -> tuple[float, float]:
    """The budget along ``u`` (projected per-element terms) and the rounding band."""
    au = np.abs(u).reshape(-1)
    size = _dot(au, side.magnitude)
    slack = _dot(au, side.rounding) + tol.atol * float(np.sum(au))
    rtol = tol.rtol or 0.0
    allowed = (float(est.error) + slack
               + rtol * max(_dot(au, side.size), abs(measured)))
    return allowed, math.sqrt(side.eps) * (size + abs(measured))


def _confirm_direction(num: Numeric, u: np.ndarray, measured: float) -> float | None:
    """The change of ``dL/du`` in extended precision, or ``None`` when it cannot be made."""
    if num.method != "complex" or num.witness is None:
        return None
    try:
        wide = numeric.directional(
            _along(num.witness, num.x.astype(np.longdouble), u.astype(np.longdouble)),
            method="complex")
    except Exception:
        return None
    return abs(measured - float(wide.value))


def _judge_directions(name: str, num: Numeric, side: _Side, tol: Tolerance,
                      rng: np.random.Generator) -> _Directions:
    # Directions at the scale of x's spread, where the engines' steps in t are natural.
    spread = float(np.std(num.x)) or float(np.sqrt(np.mean(np.square(num.x)))) or 1.0
    nfev, rows, failures, unsure, zero, kinked = 0, [], [], 0, True, 0
    noise = float(np.max(num.noise, initial=0.0))
    for k in range(DIRECTIONS):
        u = rng.standard_normal(num.x.shape) * spread
        terms = (_dot(np.abs(u).reshape(-1), side.magnitude)
                 if num.method == "complex" else None)
        est = numeric.directional(_along(num.f, num.x, u), method=num.method, noise=noise,
                                  terms=terms)
        nfev += est.nfev
        claimed, measured = _dot(side.a, u.reshape(-1)), float(est.value)
        allowed, band = _direction_budget(side, u, est, measured, tol)
        diff = abs(claimed - measured)
        certified = False
        if diff > allowed:
            change = _confirm_direction(num, u, measured)
            nfev += 2 if change is not None else 0
            if change is not None:
                allowed += CONFIRM_FACTOR * change
                certified = side.witnessed
        if diff > allowed and (num.piecewise or num.method != "complex"):
            smooth, _, _, used = smooth_along(num, u, allowed)
            nfev += used
            if not smooth:  # the direction crosses a kink: no two-sided derivative to compare
                kinked += 1
                continue
        rows.append((claimed, measured, allowed))
        zero = zero and abs(measured) <= allowed
        if diff > allowed and (certified or diff > band):
            failures.append(f"direction {k}: <d{name}, u> analytic {claimed:.9g} vs numeric "
                            f"{measured:.9g} (budget {allowed:.2g})")
        elif diff > allowed:
            unsure += 1
    # P(|Z| < z)^directions = MISS_PROBABILITY; the standard library's normal quantile keeps
    # SciPy off the common path (it costs a tenth of a second to import)
    q = MISS_PROBABILITY ** (1.0 / max(1, len(rows)))
    z = statistics.NormalDist().inv_cdf((1.0 + q) / 2.0)
    nan = float("nan")
    worst = max(rows, key=lambda r: abs(r[0] - r[1]) / r[2] if r[2] > 0 else math.inf,
                default=(nan, nan, nan))
    miss = max((r[2] for r in rows), default=math.inf) / (z * spread)
    detect = min((r[2] / abs(r[0]) for r in rows if r[0]), default=math.inf)
    zero = zero and side.noise_like and bool(rows)
    status = ("fail" if failures else "inconclusive" if unsure else "kink" if kinked
              else "zero" if zero else "pass")
    message = "; ".join(failures[:2])
    if kinked:
        message = "; ".join(filter(None, [message, f"{kinked} of {DIRECTIONS} directions cross "
                                          "a kink and carry no evidence"]))
    return _Directions(status, nfev, miss, message, worst, detect)


# --- one gradient -----------------------------------------------------------------------------


def _mode(spec: _Spec, x: np.ndarray) -> str:
    if spec.mode != "auto":
        return spec.mode
    return "sampled" if x.size > FULL_MODE_MAX_ELEMENTS else "full"


def _sample_indices(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Every index of every axis at least once, the corners, and a few random elements."""
    m = max(shape)
    coords = [rng.permutation(np.resize(np.arange(n), m)) for n in shape]
    spread = np.ravel_multi_index(coords, shape)
    corners = np.ravel_multi_index(
        np.array(np.meshgrid(*[[0, n - 1] for n in shape])).reshape(len(shape), -1), shape
    )
    size = math.prod(shape)
    extra = rng.choice(size, size=min(EXTRA_SAMPLES, size), replace=False)
    return np.unique(np.concatenate([spread, corners, extra]))


def judge(spec: _Spec, run: _Run, ref: Reference, shadow: Shadow, name: str,
          found: numeric.Probe | None = None) -> GradientResult:
    """Measure and judge the gradient of input ``name`` (``found``: the check's probe)."""
    t0 = time.perf_counter()
    x = spec.inputs[name]
    raw = _gradient_array(spec, run, name)
    dtype = raw.dtype if raw.dtype.kind == "f" else x.dtype
    tol = resolve(spec.tolerance, dtype)
    if raw.shape != x.shape:
        return _shape_failure(name, raw, x, tol)
    if not np.all(np.isfinite(raw)):
        return _nonfinite_failure(name, raw, x, tol)
    natural = ref.total / max(1, ref.out.size) / numeric.local_scale(ref.inputs[name])
    side = _side(raw, shadow, name, unit_roundoff(dtype), natural.reshape(-1))
    num = prepare(spec, ref, name, found)
    mode = _mode(spec, x)
    rng = np.random.default_rng([spec.seed, _STREAM, *map(ord, name)])
    elements = est = idx = None
    if mode != "directional":
        idx = _sample_indices(x.shape, rng) if mode == "sampled" else np.arange(x.size)
        est = _estimate(num, side, idx, full=mode == "full")
        elements = _judge_elements(side, est, idx, num, tol, x.shape)
    directions = _judge_directions(name, num, side, tol, rng) if mode != "full" else None
    result = _result(name, mode, elements, directions, num, tol, x, time.perf_counter() - t0,
                     spec.dout is not None)
    evidence = Evidence(name, raw, est, idx, ref.inputs, ref.g, num.f, tol, side.rounding)
    return replace(result, evidence=evidence)  # for gradcheck.diagnosis and the pictures


def _estimate(num: Numeric, side: _Side, idx: np.ndarray, full: bool) -> numeric.Estimate:
    indices = None if full else idx
    if num.method == "complex":
        terms = (np.abs(side.a) + side.terms).reshape(num.x.shape)
        return numeric.complex_step(num.f, num.x, indices=indices, terms=terms)
    return numeric.numerical_gradient(num.f, num.x, method=num.method, indices=indices,
                                      noise=num.noise)


def _gradient_array(spec: _Spec, run: _Run, name: str) -> np.ndarray:
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
    nan = float("nan")
    return GradientResult(name, "shape", nan, nan, nan, None, nan, nan, 0, "-", "-", 0, x.size,
                          tol.rtol or 0.0, tol.atol, nan, msg)


def _nonfinite_failure(name: str, grad: np.ndarray, x: np.ndarray,
                       tol: Tolerance) -> GradientResult:
    nan = float("nan")
    bad = int(grad.size - np.count_nonzero(np.isfinite(grad)))
    return GradientResult(name, "nonfinite", nan, nan, nan, None, nan, nan, 0, "-", "-", 0,
                          x.size, tol.rtol or 0.0, tol.atol, nan,
                          f"d{name} contains {bad} NaN or inf of {grad.size} elements")


_ORDER = ("fail", "inconclusive", "kink", "pass", "zero")  # the first one present wins


def _status(el: _Elements | None, d: _Directions | None) -> str:
    found = {s.status for s in (el, d) if s is not None}
    if found == {"zero"}:
        return "zero"
    return next(s for s in _ORDER if s in found or s == "pass")


def _result(name: str, mode: str, el: _Elements | None, d: _Directions | None, num: Numeric,
            tol: Tolerance, x: np.ndarray, seconds: float, user_dout: bool) -> GradientResult:
    """One GradientResult from the element-wise and the directional comparisons."""
    nan = float("nan")
    status = _status(el, d)
    head: tuple[float, float, float, tuple[int, ...] | None, float, float]
    if el is not None:
        w = el.worst[0]
        head = (el.max_abs, el.max_rel, w.budget, w.index, w.analytic, w.numeric)
    else:  # directional mode: the worst direction stands in for the worst element
        a, n, b = d.worst if d is not None else (nan, nan, nan)
        head = (abs(a - n), abs(a - n) / max(abs(a), abs(n)) if a or n else 0.0, b, None, a, n)
    max_abs, max_rel, bud, index, analytic, numeric_value = head
    detect = min(el.detectable if el else math.inf, d.detectable if d else math.inf)
    return GradientResult(
        name=name, status=status, max_abs_error=max_abs, max_rel_error=max_rel, budget=bud,
        worst_index=index, analytic_at_worst=analytic, numeric_at_worst=numeric_value,
        nfev=(el.nfev if el else 0) + (d.nfev if d else 0), method=num.method, mode=mode,
        elements=el.count if el else 0, size=x.size, rtol=tol.rtol or 0.0, atol=tol.atol,
        step=el.step if el else nan, message=_message(name, status, el, d, user_dout),
        reason=num.reason, directions=DIRECTIONS if d else 0,
        miss_norm=d.miss_norm if d else nan, worst=el.worst if el else (), seconds=seconds,
        detectable=detect if math.isfinite(detect) else nan, kinks=el.kinks if el else (),
    )


def _message(name: str, status: str, el: _Elements | None, d: _Directions | None,
             user_dout: bool) -> str:
    if status == "zero":
        cause = (f"`{name}` has no effect on <dout, out> for the `dout` given (a constant dout "
                 "does this to normalising layers)" if user_dout else
                 f"`{name}` has no effect on the output")
        return (f"zero: {cause}; analytic and numerical d{name} are both zero up to the "
                "rounding of the terms they sum, so this check carries no evidence (a bias "
                "right before a normalisation is redundant, for example; if that is intended, "
                f"exclude `{name}` with wrt=)")
    parts = []
    if el is not None and el.status in ("fail", "inconclusive"):
        w = el.worst[0]
        count = el.failing if el.status == "fail" else el.unsure
        parts.append(f"{count} of {el.count} elements over budget; worst at {w.index}: "
                     f"analytic {w.analytic:.9g}, numeric {w.numeric:.9g}, "
                     f"error {w.abs_error:.3g} > budget {w.budget:.3g}")
        if el.numeric_zero:
            parts.append(
                f"the numerical gradient is zero everywhere: does the forward use `{name}`?"
            )
    if el is not None:
        bad = [k for k in el.kinks if not k.valid]
        if bad:
            k = bad[0]
            parts.append(f"kink at {k.index}: one-sided derivatives {k.left:.9g} (left) and "
                         f"{k.right:.9g} (right), but analytic {k.analytic:.9g} lies outside them")
        parts.extend(el.ties[:2])
        if status == "kink":
            parts.append(f"kink: {len(el.kinks)} element(s) where the layer is not "
                         "differentiable (ties or thresholds); the analytic values there are "
                         "valid choices between the one-sided derivatives")
    if d is not None and d.message:
        parts.append(d.message)
    if status == "inconclusive":
        parts.append("inconclusive: the error is within what rounding could explain, and the "
                     "layer could not be re-run in a wider dtype to tell rounding from a bug")
    return "; ".join(parts)
