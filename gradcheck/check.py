"""Orchestration: run a layer, measure its gradients, judge, and keep everyone's data safe.

The probe: a random upstream gradient ``g`` (seeded, standard normal, so its values are distinct:
a constant ``g`` makes BatchNorm's ``dx`` identically zero and the check vacuous) turns the layer
into the scalar ``L(inputs) = <g, forward(inputs)>``, whose gradient is exactly what
``backward(g, cache)`` claims to return. The numerical side always runs the layer on float64 copies
of the inputs (complex128 for the complex step); a float32 layer's analytic gradients are judged
against it under float32 budgets (:mod:`gradcheck.tolerance`).

Modes. ``full`` estimates every element. ``sampled`` (the default above
:data:`FULL_MODE_MAX_ELEMENTS` elements per input) estimates a seeded sample in which every index
of every axis appears (so every channel and every batch row), plus the corners, plus random
elements; and compares ``<analytic, u>`` with the numerical ``dL/du`` along :data:`DIRECTIONS`
signed Gaussian directions ``u``. An error vector ``e`` escapes one direction only when
``|<e, u>|`` falls under that direction's budget; with ``u = s z``, ``z`` standard normal and
``s`` the spread of ``x``, ``<e, u> ~ N(0, s^2 |e|^2)``, so an error of 2-norm at least
``miss_norm = max budget / (s z*)``, where ``P(|Z| < z*)^DIRECTIONS = MISS_PROBABILITY``, is
caught with probability at least ``1 - MISS_PROBABILITY``. The report states the mode, the
evaluations and ``miss_norm``.

Safety. The caller's arrays are never handed to the layer (copies only); the layer's attributes
are fingerprinted before and after and restored if a forward changed them; a forward that modifies
its inputs or a backward that modifies ``dout`` or the cache is reported as a failure; the backward
runs twice to catch nondeterminism.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import erfinv

from gradcheck import _collect, numeric
from gradcheck._state import fingerprint, safe_deepcopy
from gradcheck.errors import GradcheckError, InvalidArgument, LayerError
from gradcheck.layer import from_callables, input_order, layer_name, merge_parameters
from gradcheck.tolerance import Tolerance, budget, natural_scale, resolve

__all__ = [
    "CheckReport",
    "GradientResult",
    "WorstElement",
    "assert_gradients",
    "check_grads",
    "check_layer",
]

FULL_MODE_MAX_ELEMENTS = 2048
DIRECTIONS = 8
MISS_PROBABILITY = 1e-6
EXTRA_SAMPLES = 32
WORST_ROWS = 5
MODES = ("auto", "full", "sampled", "directional")
# Our random streams are keyed by (seed, _STREAM), so they never coincide with a caller's
# default_rng(seed) data: a dout equal to (x - mean)/std would make BatchNorm's dx vanish.
_STREAM = 0x67726164


@dataclass(frozen=True)
class WorstElement:
    """One row of a worst-elements table."""

    index: tuple[int, ...]
    analytic: float
    numeric: float
    abs_error: float
    budget: float


@dataclass(frozen=True)
class GradientResult:
    """The measured comparison for one gradient, and its verdict.

    ``status`` is ``"pass"``, ``"fail"`` (an error over budget), ``"shape"`` (the gradient's shape
    differs from its input's), ``"nonfinite"`` or ``"vacuous"`` (both sides exactly zero: they
    agree, but the check carries no evidence; it passes with a warning). BatchNorm with N = 2 and
    eps = 0 is honestly vacuous for ``dx``: its output does not depend on ``x``.
    """

    name: str
    status: str
    max_abs_error: float
    max_rel_error: float
    budget: float
    worst_index: tuple[int, ...] | None
    analytic_at_worst: float
    numeric_at_worst: float
    nfev: int
    method: str
    mode: str
    elements: int
    size: int
    rtol: float
    atol: float
    step: float
    message: str = ""
    reason: str = ""
    directions: int = 0
    miss_norm: float = float("nan")
    worst: tuple[WorstElement, ...] = ()
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """A vacuous result passes (both sides agree on zero) but carries a warning message."""
        return self.status in ("pass", "vacuous")


@dataclass(frozen=True)
class CheckReport:
    """Everything one check measured; ``passed`` only when every gradient passed and no problem."""

    layer: str
    results: tuple[GradientResult, ...]
    shapes: Mapping[str, tuple[int, ...]]
    dtype: str
    seed: int
    method: str
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    case: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems and all(r.passed for r in self.results)

    @property
    def nfev(self) -> int:
        return sum(r.nfev for r in self.results)


@dataclass(frozen=True)
class _Spec:
    """Validated arguments of one check."""

    layer: Any
    name: str
    inputs: dict[str, np.ndarray]
    wrt: list[str]
    method: str
    mode: str
    seed: int
    tolerance: Tolerance
    dout: np.ndarray | None


@dataclass
class _Run:
    """The analytic side of one check."""

    out: np.ndarray
    g: np.ndarray
    grads: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- validation ---------------------------------------------------------------------------


def _as_input(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.array(value, copy=True)
    except Exception as exc:
        raise InvalidArgument(
            f"`inputs[{name!r}]` must be array-like, got {type(value).__name__}"
        ) from exc
    if arr.dtype.kind != "f":
        raise InvalidArgument(
            f"`inputs[{name!r}]` must have a floating dtype (float32 or float64), got {arr.dtype}"
        )
    if arr.size == 0:
        raise InvalidArgument(f"`inputs[{name!r}]` must not be empty, got shape {arr.shape}")
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise InvalidArgument(f"`inputs[{name!r}]` must be finite, got {bad} NaN or inf")
    return arr


def _validate(layer: Any, inputs: Any, method: str, mode: str, seed: Any,
              tolerance: Any, dout: Any, wrt: Any) -> _Spec:
    for attr in ("forward", "backward"):
        if not callable(getattr(layer, attr, None)):
            raise InvalidArgument(
                f"`layer` must have callable `forward` and `backward` (see gradcheck.layer), "
                f"got {type(layer).__name__}; wrap functions with from_functions or from_class"
            )
    if not isinstance(inputs, Mapping) or not inputs:
        raise InvalidArgument(
            f"`inputs` must be a non-empty mapping of name to array, got {inputs!r:.60}"
        )
    if method not in numeric.METHODS:
        raise InvalidArgument(f"`method` must be one of {numeric.METHODS}, got {method!r}")
    if mode not in MODES:
        raise InvalidArgument(f"`mode` must be one of {MODES}, got {mode!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgument(f"`seed` must be a non-negative integer, got {seed!r}")
    tol = _tolerance(tolerance)
    arrays = {str(k): _as_input(str(k), v) for k, v in merge_parameters(layer, inputs).items()}
    names = input_order(arrays, wrt)
    return _Spec(layer, layer_name(layer), arrays, names, method, mode, int(seed), tol,
                 None if dout is None else _as_input("dout", dout))


def _tolerance(tolerance: Any) -> Tolerance:
    if tolerance is None:
        return Tolerance()
    if isinstance(tolerance, Tolerance):
        return tolerance
    if isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool):
        return Tolerance(rtol=float(tolerance))
    raise InvalidArgument(f"`tolerance` must be a Tolerance or a float rtol, got {tolerance!r}")


def _warn_dtypes(spec: _Spec) -> list[str]:
    low = [f"`{k}` ({v.dtype})" for k, v in spec.inputs.items() if v.dtype != np.float64]
    if not low:
        return []
    return [f"inputs {', '.join(low)} are not float64: judged under their own dtype's budgets "
            "against a float64 numerical reference"]


# --- calling the layer ----------------------------------------------------------------------


def _forward(spec: _Spec, inputs: Mapping[str, np.ndarray], context: str) -> tuple[Any, Any]:
    try:
        result = spec.layer.forward(inputs)
    except GradcheckError:
        raise
    except Exception as exc:
        raise LayerError(
            f"{spec.name}: forward raised {type(exc).__name__}: {exc} ({context})"
        ) from exc
    if not isinstance(result, tuple) or len(result) != 2:
        raise LayerError(
            f"{spec.name}: forward must return (out, cache), got {type(result).__name__}"
        )
    return result


def _output(spec: _Spec, out: Any, context: str) -> np.ndarray:
    arr = np.asarray(out)
    if arr.dtype.kind not in "fc":
        raise LayerError(
            f"{spec.name}: forward returned {arr.dtype} output, expected floats ({context})"
        )
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise LayerError(
            f"{spec.name}: forward returned {bad} NaN or inf of {arr.size} outputs ({context})"
        )
    return arr


def _backward(spec: _Spec, dout: np.ndarray, cache: Any, run: _Run) -> dict[str, Any]:
    d = dout.copy()
    before = fingerprint(cache)
    work = safe_deepcopy(cache)
    try:
        grads = spec.layer.backward(d, work)
    except GradcheckError:
        raise
    except Exception as exc:
        raise LayerError(f"{spec.name}: backward raised {type(exc).__name__}: {exc}") from exc
    if not np.array_equal(d, dout):
        run.problems.append("backward modified `dout` in place")
    if work is not cache and fingerprint(work) != before:
        run.problems.append(
            "backward modified the cache in place (a second call sees other values)"
        )
    if not isinstance(grads, Mapping):
        raise LayerError(
            f"{spec.name}: backward must return gradients by name, got {type(grads).__name__}"
        )
    return dict(grads)


def _upstream(spec: _Spec, out: np.ndarray, run_warnings: list[str]) -> np.ndarray:
    if spec.dout is None:
        g = np.random.default_rng([spec.seed, _STREAM]).standard_normal(out.shape)
        return g.astype(out.dtype)
    if spec.dout.shape != out.shape:
        raise InvalidArgument(
            f"`dout` must have the output's shape {out.shape}, got shape {spec.dout.shape}"
        )
    if spec.dout.size > 1 and np.all(spec.dout == spec.dout.flat[0]):
        run_warnings.append(
            "`dout` is constant: for normalising layers (BatchNorm) dx is then identically zero "
            "and its check is vacuous; leave `dout` unset for a random one"
        )
    return spec.dout.astype(out.dtype)


def _analytic(spec: _Spec) -> _Run:
    inputs = {k: v.copy() for k, v in spec.inputs.items()}
    out_raw, cache = _forward(spec, inputs, "analytic pass")
    out = _output(spec, out_raw, "analytic pass")
    run = _Run(out=out, g=np.empty(0), grads={})
    for k, v in inputs.items():
        if not np.array_equal(v, spec.inputs[k]):
            run.problems.append(f"forward modified its input `{k}` in place")
    run.warnings.extend(_warn_dtypes(spec))
    run.g = _upstream(spec, out, run.warnings)
    first = _backward(spec, run.g, cache, run)
    second = _backward(spec, run.g, cache, run)
    run.grads = first
    _compare_repeats(spec, first, second, run)
    run.problems[:] = list(dict.fromkeys(run.problems))
    return run


def _compare_repeats(spec: _Spec, first: dict[str, Any], second: dict[str, Any], run: _Run) -> None:
    for name in spec.wrt:
        a, b = first.get(name), second.get(name)
        if a is None or b is None:
            continue
        a, b = np.asarray(a), np.asarray(b)
        if a.shape == b.shape and not np.array_equal(a, b, equal_nan=True):
            diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            run.problems.append(
                f"backward is not deterministic: `{name}` differs by up to {diff:.3g} between "
                "two calls with the same dout and cache"
            )


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
    status = "vacuous" if vacuous else ("pass" if passed else "fail")
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
    if status == "vacuous":
        return (f"vacuous: analytic and numerical d{name} are both exactly zero, so this check "
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


# --- public API ------------------------------------------------------------------------------


def check_layer(
    layer: Any,
    inputs: Mapping[str, Any],
    *,
    method: str = "auto",
    mode: str = "auto",
    seed: int = 0,
    tolerance: Tolerance | float | None = None,
    dout: Any = None,
    wrt: Sequence[str] | str | None = None,
) -> CheckReport:
    """Compare a layer's analytic gradients with numerical ones; measure, never raise on a mismatch.

    Parameters
    ----------
    layer : Layer
        Has ``forward(inputs) -> (out, cache)`` and ``backward(dout, cache) -> {name: grad}``;
        see :mod:`gradcheck.layer` for adapters. Its own ``parameters()`` are checked too.
    inputs : mapping of str to array
        Float arrays by name; never modified.
    method : {"auto", "complex", "central", "richardson"}
        Numerical method; ``auto`` uses the complex step when a probe shows the forward carries
        the imaginary part, else Richardson extrapolation.
    mode : {"auto", "full", "sampled"}
        ``auto`` estimates every element up to 2048 elements per input, else a sample plus
        random directions.
    seed : int
        Seeds the upstream gradient, the samples and the directions.
    tolerance : Tolerance or float, optional
        Overrides ``rtol`` (a float) or ``rtol``/``atol``; see :mod:`gradcheck.tolerance`.
    dout : array, optional
        Upstream gradient; by default random with distinct values.
    wrt : str or sequence of str, optional
        Which inputs to check (default all).

    Returns
    -------
    CheckReport
        ``report.passed`` is the verdict; ``report.results`` one :class:`GradientResult` each.

    Raises
    ------
    InvalidArgument
        Bad arguments (the message names the parameter).
    LayerError
        The layer raised, returned NaN, or omitted a gradient (the message names the phase).

    Examples
    --------
    >>> from gradcheck import BatchNorm
    >>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 5))
    >>> report = check_layer(BatchNorm(5), {"x": x})
    >>> report.passed, [r.name for r in report.results], report.results[0].method
    (True, ['x', 'gamma', 'beta'], 'complex')
    """
    t0 = time.perf_counter()
    spec = _validate(layer, inputs, method, mode, seed, tolerance, dout, wrt)
    state = _snapshot(layer)
    try:
        results, run = _check(spec)
    except GradcheckError as exc:
        raise _with_context(exc, spec) from exc.__cause__
    finally:
        restored = _restore(layer, state)
    if restored:
        run.warnings.append(f"the layer's state changed during the check ({restored}); restored")
    for note in run.warnings:
        warnings.warn(f"{spec.name}: {note}", UserWarning, stacklevel=2)
    report = CheckReport(
        spec.name, tuple(results), {k: v.shape for k, v in spec.inputs.items()},
        str(np.result_type(*spec.inputs.values())), spec.seed, _methods(results),
        tuple(run.problems), tuple(run.warnings), time.perf_counter() - t0,
    )
    _collect.notify(report)
    return report


def _check(spec: _Spec) -> tuple[list[GradientResult], _Run]:
    run = _analytic(spec)
    ref = _reference(spec, run)
    rounding = _forward_rounding(run, ref)
    return [_judge(spec, run, ref, name, rounding) for name in spec.wrt], run


def _methods(results: Sequence[GradientResult]) -> str:
    seen = [r.method for r in results if r.method != "-"]
    return ", ".join(dict.fromkeys(seen)) or "-"


def _snapshot(layer: Any) -> tuple[str, Any]:
    state = getattr(layer, "__dict__", None)
    return fingerprint(state), safe_deepcopy(state)


def _restore(layer: Any, snapshot: tuple[str, Any]) -> str:
    digest, saved = snapshot
    state = getattr(layer, "__dict__", None)
    if state is None or fingerprint(state) == digest:
        return ""
    changed = sorted(k for k in set(state) | set(saved)
                     if fingerprint(state.get(k)) != fingerprint(saved.get(k)))
    state.clear()
    state.update(saved)
    return "attributes " + ", ".join(changed)


def _with_context(exc: GradcheckError, spec: _Spec) -> GradcheckError:
    shapes = ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in spec.inputs.items())
    text = str(exc)
    prefix = "" if text.startswith(spec.name) else f"{spec.name}: "
    return type(exc)(f"{prefix}{text} [inputs: {shapes}]")


def assert_gradients(
    layer: Any, inputs: Mapping[str, Any], **options: Any
) -> CheckReport:
    """:func:`check_layer`, raising ``AssertionError`` with a short table when it fails.

    Examples
    --------
    >>> from gradcheck import BatchNorm
    >>> x = np.random.default_rng(0).normal(size=(6, 3))
    >>> assert_gradients(BatchNorm(3), {"x": x}).passed
    True
    """
    report = check_layer(layer, inputs, **options)
    if not report.passed:
        from gradcheck.report import failure_message

        raise AssertionError(failure_message(report))
    return report


def check_grads(f: Any, grad: Any, x: Any, **options: Any) -> CheckReport:
    """Check ``grad(x)`` against ``f(x) -> scalar`` (the small tier: no layer needed).

    Examples
    --------
    >>> check_grads(lambda x: np.sum(np.sin(x)), np.cos, np.linspace(0.0, 1.0, 5)).passed
    True
    """
    return check_layer(from_callables(f, grad), {"x": x}, **options)
