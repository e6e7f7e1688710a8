"""The numerical side of a check and the verdict: estimates, budgets, statuses per gradient."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import erfinv

from gradcheck import numeric
from gradcheck._calls import _STREAM, _forward, _output, _Run, _Spec
from gradcheck.errors import LayerError
from gradcheck.results import GradientResult, WorstElement
from gradcheck.tolerance import Tolerance, budget, natural_scale, resolve

FULL_MODE_MAX_ELEMENTS = 2048
DIRECTIONS = 8
MISS_PROBABILITY = 1e-6
EXTRA_SAMPLES = 32
WORST_ROWS = 5

# --- the numerical side --------------------------------------------------------------------


def _objective(spec: _Spec, inputs64: dict[str, np.ndarray], name: str, g64: np.ndarray,
               copy_inputs: bool) -> Any:
    """``L(arr) = <g, forward(inputs with `name` = arr)>``.

    The other inputs are shared read-only arrays (a forward that writes to them raises) unless
    the analytic pass caught the forward mutating its inputs; then each call gets copies.
    """
    others = {k: (v if copy_inputs else _read_only(v)) for k, v in inputs64.items() if k != name}
    flat_g = g64.reshape(-1)

    def f(arr: np.ndarray) -> Any:
        local = {k: (arr if k == name else (others[k].copy() if copy_inputs else others[k]))
                 for k in inputs64}
        out, _ = _forward(spec, local, f"numerical pass for `{name}`")
        out = np.asarray(out)
        return np.dot(flat_g, out.reshape(-1)) if out.size == flat_g.size else np.sum(g64 * out)

    return f


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class _Numeric:
    """What the numerical side needs for one gradient."""

    f: Any
    x: np.ndarray
    noise: float
    floor: float  # tolerance.natural_scale
    method: str
    reason: str


@dataclass(frozen=True)
class _Reference:
    """The float64 run every gradient's numerical side starts from (made once per check)."""

    inputs: dict[str, np.ndarray]
    g: np.ndarray
    out: np.ndarray
    noise: float  # rounding noise of one evaluation of L, scaled by the conditioning
    copy_inputs: bool  # the forward mutates its inputs: give each evaluation copies


def _reference(spec: _Spec, run: _Run) -> _Reference:
    inputs64 = {k: v.astype(np.float64) for k, v in spec.inputs.items()}
    g64 = run.g.astype(np.float64)
    context = "float64 reference"
    out64 = _output(spec, _forward(spec, dict(inputs64), context)[0], context)
    noise = float(np.finfo(out64.dtype).eps * np.sum(np.abs(g64 * out64))) * _conditioning(
        inputs64)
    mutates = any(p.startswith("forward modified its input") for p in run.problems)
    return _Reference(inputs64, g64, out64, noise, mutates)


def _prepare(spec: _Spec, ref: _Reference, name: str) -> _Numeric:
    x64 = ref.inputs[name]
    f = _objective(spec, ref.inputs, name, ref.g, copy_inputs=ref.copy_inputs)
    floor = natural_scale(ref.g, np.asarray(ref.out, dtype=np.float64), x64)
    if x64.size != ref.out.size:
        floor = 0.0  # a parameter's gradient sums over the batch: its terms do not cancel to 0
    method, reason = spec.method, ""
    if method == "auto":
        safe, why = numeric.probe_complex_step(f, x64, seed=spec.seed, noise=ref.noise)
        method = "complex" if safe else "richardson"
        reason = "auto: the complex-step probe passed" if safe else f"auto: {why}; used richardson"
    return _Numeric(f, x64, ref.noise, floor, method, reason)


def _conditioning(inputs: Mapping[str, np.ndarray]) -> float:
    """``max |v| / std(v)`` over the inputs that vary: how many digits ``v - mean(v)`` loses.

    The forward's rounding noise grows with it (BatchNorm at |mean| 1e4, std 1e-3 loses seven
    digits), so the numerical engines' noise model is scaled by it.
    """
    ratios = [float(np.max(np.abs(v))) / s for v in inputs.values() if (s := float(np.std(v))) > 0]
    return max([1.0, *ratios])


def _forward_rounding(run: _Run, ref: _Reference) -> float:
    """Relative deviation of the layer's own-dtype output from its float64 run."""
    if run.out.dtype == np.float64:
        return 0.0
    out64 = np.asarray(ref.out, dtype=np.float64)
    scale = float(np.max(np.abs(out64), initial=0.0)) or 1.0
    return float(np.max(np.abs(run.out.astype(np.float64) - out64))) / scale


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


# --- judging --------------------------------------------------------------------------------


def _shape_failure(name: str, grad: np.ndarray, x: np.ndarray, tol: Tolerance) -> GradientResult:
    msg = (
        f"d{name} has shape {grad.shape} but `{name}` has shape {x.shape}; a gradient must have "
        "its input's shape (a (1, D) dbeta for a (D,) beta, or a parameter gradient not summed "
        "over the batch, is a bug even if it broadcasts)"
    )
    nan = float("nan")
    return GradientResult(name, "shape", nan, nan, nan, None, nan, nan, 0, "-", "-", 0, x.size,
                          tol.rtol or 0.0, tol.atol, nan, msg)


def _worst_rows(idx: np.ndarray, shape: tuple[int, ...], a: np.ndarray, n: np.ndarray,
                err: np.ndarray, bud: np.ndarray) -> tuple[WorstElement, ...]:
    ratio = np.where(bud > 0, err / np.where(bud > 0, bud, 1.0), np.where(err > 0, np.inf, 0.0))
    order = np.argsort(-ratio, kind="stable")[:WORST_ROWS]
    return tuple(
        WorstElement(tuple(int(i) for i in np.unravel_index(idx[k], shape)), float(a[k]),
                     float(n[k]), float(err[k]), float(bud[k]))
        for k in order
    )


@dataclass(frozen=True)
class _Elements:
    """The element-by-element comparisons of one gradient."""

    passed: bool
    vacuous: bool  # both sides exactly zero everywhere
    zero: bool  # the numerical side is exactly zero everywhere
    max_abs: float
    max_rel: float
    worst: tuple[WorstElement, ...]
    nfev: int
    step: float
    count: int


def _judge_elements(analytic: np.ndarray, est: numeric.Estimate, idx: np.ndarray,
                    tol: Tolerance, floor: float, shape: tuple[int, ...]) -> _Elements:
    a = analytic.reshape(-1)[idx].astype(np.float64)
    n = np.asarray(est.value, dtype=np.float64).reshape(-1)
    err = np.abs(a - n)
    bud = budget(analytic.astype(np.float64), n, np.asarray(est.error).reshape(-1), tol, floor)
    denom = np.maximum(np.abs(a), np.abs(n))
    rel = np.divide(err, denom, out=np.zeros_like(err), where=denom > 0)
    return _Elements(
        passed=bool(np.all(err <= bud)), vacuous=not np.any(a) and not np.any(n),
        zero=not np.any(n), max_abs=float(np.max(err)), max_rel=float(np.max(rel)),
        worst=_worst_rows(idx, shape, a, n, err, bud), nfev=est.nfev,
        step=float(np.median(est.step)), count=idx.size,
    )


def _along(num: _Numeric, u: np.ndarray) -> Any:
    """``phi(t) = L(x + t u)``, the objective along one direction."""
    return lambda t: num.f(num.x + t * u)


@dataclass(frozen=True)
class _Directions:
    """The directional comparisons of one gradient."""

    passed: bool
    nfev: int
    miss_norm: float
    message: str
    worst: tuple[float, float, float]  # analytic <a, u>, numeric dL/du, budget: largest ratio


def _judge_directions(name: str, num: _Numeric, analytic: np.ndarray, tol: Tolerance,
                      rng: np.random.Generator) -> _Directions:
    # Directions at the scale of x's spread, where the engines' steps in t are natural.
    spread = float(np.std(num.x)) or float(np.sqrt(np.mean(np.square(num.x)))) or 1.0
    nfev, rows, failures = 0, [], []
    a = analytic.astype(np.float64)
    for k in range(DIRECTIONS):
        u = rng.standard_normal(num.x.shape) * spread
        est = numeric.directional(_along(num, u), method=num.method, noise=num.noise)
        nfev += est.nfev
        claimed, measured = float(np.vdot(a, u)), float(est.value)
        size_u = float(np.sum(np.abs(u)))
        allowed = float(est.error) + tol.atol * size_u + (tol.rtol or 0.0) * max(
            float(np.vdot(np.abs(a), np.abs(u))), abs(measured), num.floor * size_u)
        rows.append((claimed, measured, allowed))
        if abs(claimed - measured) > allowed:
            failures.append(f"direction {k}: <d{name}, u> analytic {claimed:.9g} vs numeric "
                            f"{measured:.9g} (budget {allowed:.2g})")
    z = math.sqrt(2.0) * float(erfinv(MISS_PROBABILITY ** (1.0 / DIRECTIONS)))
    worst = max(rows, key=lambda r: abs(r[0] - r[1]) / r[2] if r[2] > 0 else math.inf)
    miss = max(r[2] for r in rows) / (z * spread)
    return _Directions(not failures, nfev, miss, "; ".join(failures[:2]), worst)


def _mode(spec: _Spec, x: np.ndarray) -> str:
    if spec.mode != "auto":
        return spec.mode
    return "sampled" if x.size > FULL_MODE_MAX_ELEMENTS else "full"


def _judge(spec: _Spec, run: _Run, ref: _Reference, name: str,
           rounding: float) -> GradientResult:
    t0 = time.perf_counter()
    x = spec.inputs[name]
    raw = _gradient_array(spec, run, name)
    tol = resolve(spec.tolerance, raw.dtype if raw.dtype.kind == "f" else x.dtype, rounding)
    grad = raw.real.astype(np.float64) if raw.dtype.kind == "c" else raw
    if grad.shape != x.shape:
        return _shape_failure(name, grad, x, tol)
    if not np.all(np.isfinite(grad)):
        return _nonfinite_failure(name, grad, x, tol)
    num = _prepare(spec, ref, name)
    mode = _mode(spec, x)
    rng = np.random.default_rng([spec.seed, _STREAM, *map(ord, name)])
    elements = None
    if mode != "directional":
        idx = _sample_indices(x.shape, rng) if mode == "sampled" else np.arange(x.size)
        est = numeric.numerical_gradient(num.f, num.x, method=num.method,
                                         indices=idx if mode == "sampled" else None,
                                         noise=num.noise)
        elements = _judge_elements(grad, est, idx, tol, num.floor, x.shape)
    directions = _judge_directions(name, num, grad, tol, rng) if mode != "full" else None
    return _result(name, mode, elements, directions, num, tol, x, time.perf_counter() - t0)


def _nonfinite_failure(name: str, grad: np.ndarray, x: np.ndarray,
                       tol: Tolerance) -> GradientResult:
    nan = float("nan")
    bad = int(grad.size - np.count_nonzero(np.isfinite(grad)))
    return GradientResult(name, "nonfinite", nan, nan, nan, None, nan, nan, 0, "-", "-", 0,
                          x.size, tol.rtol or 0.0, tol.atol, nan,
                          f"d{name} contains {bad} NaN or inf of {grad.size} elements")


def _gradient_array(spec: _Spec, run: _Run, name: str) -> np.ndarray:
    if name not in run.grads or run.grads[name] is None:
        have = ", ".join(sorted(map(str, run.grads))) or "nothing"
        raise LayerError(
            f"{spec.name}: backward returned no gradient for `{name}` (it returned {have})"
        )
    arr = np.asarray(run.grads[name])
    if arr.dtype.kind not in "fc":
        raise LayerError(f"{spec.name}: backward returned {arr.dtype} for d{name}, expected floats")
    return arr


def _result(name: str, mode: str, el: _Elements | None, d: _Directions | None,
            num: _Numeric, tol: Tolerance, x: np.ndarray, seconds: float) -> GradientResult:
    """One GradientResult from the element-wise and the directional comparisons."""
    nan = float("nan")
    passed = (el is None or el.passed) and (d is None or d.passed)
    vacuous = el is not None and el.vacuous and d is None
    status = "zero" if vacuous else ("pass" if passed else "fail")
    head: tuple[float, float, float, tuple[int, ...] | None, float, float]
    if el is not None:
        w = el.worst[0]
        head = (el.max_abs, el.max_rel, w.budget, w.index, w.analytic, w.numeric)
    else:  # directional mode: the worst direction stands in for the worst element
        a, n, b = d.worst if d is not None else (nan, nan, nan)
        head = (abs(a - n), abs(a - n) / max(abs(a), abs(n)) if a or n else 0.0, b, None, a, n)
    max_abs, max_rel, bud, index, analytic, numeric_value = head
    return GradientResult(
        name=name, status=status, max_abs_error=max_abs, max_rel_error=max_rel, budget=bud,
        worst_index=index, analytic_at_worst=analytic, numeric_at_worst=numeric_value,
        nfev=(el.nfev if el else 0) + (d.nfev if d else 0), method=num.method, mode=mode,
        elements=el.count if el else 0, size=x.size, rtol=tol.rtol or 0.0, atol=tol.atol,
        step=el.step if el else nan, message=_message(name, status, el, d), reason=num.reason,
        directions=DIRECTIONS if d else 0, miss_norm=d.miss_norm if d else nan,
        worst=el.worst if el else (), seconds=seconds,
    )


def _message(name: str, status: str, el: _Elements | None, d: _Directions | None) -> str:
    if status == "zero":
        return (f"zero: analytic and numerical d{name} are both exactly zero, so this check "
                f"carries no evidence (does the output depend on `{name}`? if not, exclude it "
                "with wrt=)")
    parts = []
    if el is not None and not el.passed:
        w = el.worst[0]
        parts.append(f"worst at {w.index}: analytic {w.analytic:.9g}, numeric {w.numeric:.9g}, "
                     f"error {w.abs_error:.3g} > budget {w.budget:.3g}")
        if el.zero:
            parts.append(
                f"the numerical gradient is zero everywhere: does the forward use `{name}`?"
            )
    if d is not None and d.message:
        parts.append(d.message)
    return "; ".join(parts)


