"""Numerical derivatives of a scalar function, each with an error bound.

Every estimator here measures ``∂f/∂x_k`` for a scalar ``f`` at ``x`` (or ``dφ/dt`` at ``t = 0``
for :func:`directional`) and returns an :class:`Estimate`: the value, a per-element bound on its
error, the evaluations used and the step taken. Nothing here judges; the caller compares.
All evaluations run in float64 (complex128 for the complex step) on a fresh copy of ``x``.
Below, ``ε = 2⁻⁵²`` and ``v`` is the estimate.

**Noise.** ``noise`` bounds the absolute rounding error of ``f`` near ``x``; the caller usually
knows it (for ``L = <g, out>`` about ``ε_out·Σ|g·out|``, times the forward's condition number when
that is large). The estimators add ``8ε·|f|`` at the points they evaluate, the rounding no
evaluation escapes; with ``noise=None`` that is all there is, which is enough unless ``f`` is a
sum that cancels (``|f| ≪ Σ|terms|``).

**Complex step** (Squire & Trapp 1998; Martins, Sturdza & Alonso 2003). For real-analytic ``f``,
``f(x + ih e_k) = f(x) + ih ∂_k f - h²/2 ∂²_k f - ih³/6 ∂³_k f + …``: the imaginary part carries
the derivative with no subtraction, hence no cancellation, so ``h`` can be tiny. We take
``h = 2⁻³⁶⁰·max(1, |x_k|)`` rounded down to a power of two (≈ 4e-109): the ``h³`` terms then
underflow to exactly zero (no truncation error at all; with the common ``h = 1e-20`` a zero
gradient comes out as ``-h²·∂³f/6``) and the division by ``h`` is exact. The bound ::

    error_k = 2⁷·ε·(|v_k| + max_j |v_j|) + 2⁻¹⁰²²/h_k

models the rounding of the derivative computation relative to the gradient's scale; the second
term (≈ 1e-199) is the resolution left when imaginary parts fall below the smallest normal
number. Two things are outside it: a gradient that cancels far below the terms it sums (constant
``g`` makes BatchNorm's ``dx`` vanish; the result is then rounding noise of size ``ε·terms``), and
the forward's conditioning: the derivative of the computed program differs from the exact one by
about ``ε·κ`` relative (``κ = |mean|/std`` for BatchNorm's centering), an error the analytic
backward shares. Only real-analytic code carries the imaginary part faithfully: ``abs``,
``max``/``min``, comparisons, ``np.var`` and casts to float break it, silently or not, which
:func:`probe_complex_step` detects.

**Central differences.** ``D(h) = (f(x + h) - f(x - h)) / ((x + h) - (x - h))`` has truncation
error ``c·h² + O(h⁴)`` (``c = ∂³f/6``) and rounding error at most ``noise/h``; the sum is
smallest for ``h ∝ (noise/|∂³f|)^(1/3)``, which for relative noise ``ε`` is the classic
``h = ε^(1/3)·max(1, |x_k|)`` (sign of ``x_k``, sign(0) = +1). The step actually taken is
``(x + h) - x``. The bound comes from **two steps**: ``D(2h) - D(h) ≈ 3·c·h²``, so ::

    error_k = |D(2h) - D(h)| + 2·noise_k/|h| + 4ε·|D(h)| + 2⁻¹⁰²²

is three times the extrapolated truncation error (a safety factor for the ``O(h⁴)`` terms and the
rounding inside the difference) plus the rounding of ``D(h)`` and of the quotient itself, with
``noise_k = noise + 8ε·max|f|`` over the element's four evaluations. The step ignores the
natural scale: when ``x_k`` varies on a scale far below ``|x_k|`` (BatchNorm with ``|mean| ≫ std``)
the h² model fails and neither value nor bound can be trusted; use Richardson there.

**Richardson extrapolation** runs :func:`scipy.differentiate.derivative` (elementwise: one
abscissa per element, the element's flat index passed in ``args``): an 8th-order stencil
``±h, ±h/2, ±h/4, ±h/8``, ``h`` halved each iteration. SciPy's ``error`` is the change from the
previous iterate and on an error increase it returns the latest, worse, iterate, so a callback
records every iterate ``D_i`` and each gets the bound ::

    error_i = max(|D_i - D_{i-1}|, |D_{i+1} - D_i|)
              + W·(noise_k + |D_i|·δ_k)/h_i + 4ε·|D_i| + 2⁻¹⁰²²

(both neighbours within the run must agree; ``W = Σ|w_j| ≈ 13.5`` is the stencil's weight sum,
so the second term bounds the rounding; ``noise_k`` as above over every value the element saw;
``δ_k`` the largest error in forming ``x_k + t``, zero unless a step crosses a power of two). An
iterate has *settled* when its neighbours agree to 2⁻⁶ relative or to 8 times its rounding
terms; we report the settled iterate with the smallest bound. Elements with none (the step
began far above their natural scale and never reached the asymptotic regime) are run again from
a step 2⁻¹¹ lower, up to four runs; if none settles, the smallest bound is reported.

The initial step is ``h₀ = scale/8`` rounded to a power of two, with
``scale = min(max(1, |x_k|), std(x))``: the natural scale of an input is its spread, not its
magnitude. BatchNorm with mean 1e4 and std 1e-3 varies on the scale 1e-3, and a step
proportional to ``|x|`` would be a million times too large. Powers of two keep ``x_k + t`` exact;
steps stay above ``2⁻³⁶·max(1, |x_k|)`` (offsets of at least 4 ulp).

**Directional** derivatives ``dφ/dt`` at 0 cost O(1) evaluations whatever the size of ``x``: the
caller passes ``φ(t) = L(x + t·u)`` with ``u`` scaled so that ``t ≈ 1`` is the natural scale. The
complex step there takes two steps, ``h₁ = 2⁻³⁶⁰`` and ``h₂ = h₁·(1 + √5)/2``, whose different
rounding measures the error: ``error = 2|v₁ - v₂| + 2⁷·ε·|v₁| + 2⁻¹⁰²²/h₁``. Central and
Richardson are as above, with ``x_k = 0``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.exceptions import ComplexWarning
from scipy.differentiate import derivative

from gradcheck.errors import InvalidArgument

__all__ = [
    "METHODS",
    "Estimate",
    "central",
    "complex_step",
    "directional",
    "numerical_gradient",
    "probe_complex_step",
    "richardson",
]

METHODS = ("auto", "complex", "central", "richardson")

_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).smallest_normal)  # added to every bound (subnormal results)
_CS_EXPONENT = -360  # complex step h = 2**-360 * max(1, |x|): O(h**3) terms underflow to 0
_CS_ROUNDING = 2.0**7  # complex-step rounding bound, in units of eps (see module docstring)
_F_ULPS = 2.0**3  # every evaluation of f is off by at least this many eps of |f|
_RICH_ORDER = 8
_RICH_MAXITER = 12
_RICH_RUNS = 4  # restarts, each 2**-11 lower, for elements whose iterates never settle
_RICH_RTOL = 2.0**-42  # iterate until consecutive estimates agree to ~2e-13, or the error grows
_RICH_FIRST = 1 / 8  # initial step, as a fraction of the natural scale
_RICH_FLOOR = 2.0**-36  # steps stay above this fraction of max(1, |x|): offsets >= 4 ulp
_RICH_SETTLED = 2.0**-6  # an iterate has settled when its neighbours agree to this (relative)
_PROBE_SAMPLES = 3
_PROBE_RTOL = 1e-9  # complex step and Richardson must agree to their bounds plus this


@dataclass(frozen=True)
class Estimate:
    """A numerical derivative with a bound on its error.

    Attributes
    ----------
    value : ndarray of float64
        The estimate; shape ``x.shape``, or ``(len(indices),)`` when indices are given;
        0-d for :func:`directional`.
    error : ndarray of float64
        Per-element bound on ``|value - true derivative|``, same shape, ``>= 0``.
    nfev : int
        Evaluations of the function used.
    method : str
        ``"complex"``, ``"central"`` or ``"richardson"``.
    step : ndarray of float64
        Per-element step actually taken, same shape as ``value``.
    reason : str
        For ``method="auto"``: which method ran and why; ``""`` otherwise.
    """

    value: np.ndarray
    error: np.ndarray
    nfev: int
    method: str
    step: np.ndarray
    reason: str = ""


@dataclass(frozen=True)
class _Problem:
    """Validated arguments: a private float64 copy of ``x`` and the flat indices to estimate."""

    f: Callable[[np.ndarray], Any]
    x: np.ndarray
    idx: np.ndarray
    shape: tuple[int, ...]  # of the estimate


# --------------------------------------------------------------------------------- validation


def _validate_f(f: Any, name: str = "f") -> None:
    if not callable(f):
        raise InvalidArgument(f"`{name}` must be callable, got {type(f).__name__}")


def _validate_x(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise InvalidArgument(
            f"`x` must be a real floating array (float16, float32 or float64), got {arr.dtype}"
        )
    base = np.array(arr, dtype=np.float64, copy=True)
    if not np.all(np.isfinite(base)):
        bad = int(base.size - np.count_nonzero(np.isfinite(base)))
        raise InvalidArgument(f"`x` must be finite, got {bad} NaN or inf of {base.size} elements")
    base.flags.writeable = False
    return base


def _validate_indices(indices: Any, size: int) -> np.ndarray:
    if indices is None:
        return np.arange(size)
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu" or idx.ndim != 1:
        raise InvalidArgument(
            "`indices` must be a 1-D array of integer flat indices, "
            f"got dtype {idx.dtype} and shape {idx.shape}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = idx[(idx < 0) | (idx >= size)][0]
        raise InvalidArgument(
            f"`indices` must be flat indices in [0, {size}) for `x` of size {size}, got {bad}"
        )
    return idx.astype(np.intp)


def _validate_noise(noise: Any) -> float | None:
    if noise is None:
        return None
    ok = isinstance(noise, (int, float, np.floating, np.integer)) and not isinstance(noise, bool)
    if not ok or not np.isfinite(noise) or noise < 0:
        raise InvalidArgument(f"`noise` must be a non-negative finite float or None, got {noise!r}")
    return float(noise)


def _validate(f: Any, x: Any, indices: Any) -> _Problem:
    _validate_f(f)
    base = _validate_x(x)
    idx = _validate_indices(indices, base.size)
    shape = base.shape if indices is None else (idx.size,)
    return _Problem(f, base, idx, shape)


def _as_scalar(value: Any, where: str, *, complex_ok: bool = False, name: str = "f") -> complex:
    """``value`` as a Python number; ``InvalidArgument`` unless it is a finite numeric scalar."""
    arr = np.asarray(value)
    if arr.ndim != 0 or arr.dtype.kind not in "iufc":
        raise InvalidArgument(
            f"`{name}` must return a numeric scalar, got {type(value).__name__} with shape "
            f"{arr.shape} and dtype {arr.dtype} {where}"
        )
    if not np.isfinite(arr):
        raise InvalidArgument(f"`{name}` must return a finite value, got {arr.item()!r} {where}")
    if arr.dtype.kind == "c" and not complex_ok and arr.imag != 0:
        raise InvalidArgument(
            f"`{name}` must return a real value for real input, got {arr.item()!r} {where}"
        )
    return complex(arr.item()) if complex_ok else complex(float(arr.real))


class _Evaluator:
    """Calls ``f`` on fresh copies of ``x`` (never on the caller's array) and counts the calls."""

    def __init__(self, problem: _Problem) -> None:
        self.f = problem.f
        self.x = problem.x
        self.nfev = 0

    def at(self, k: int | None = None, value: float = 0.0) -> float:
        """``f(x)`` with element ``k`` (a flat index) replaced by ``value``."""
        arr = self.x.copy()
        if k is not None:
            arr.flat[k] = value
        self.nfev += 1
        where = "at `x`" if k is None else f"at `x` with element {k} perturbed"
        return float(_as_scalar(self.f(arr), where).real)

    def at_or_nan(self, k: int, value: float) -> float:
        """As :meth:`at`, but NaN when ``f`` is not finite there: a step too large for ``f``
        (e.g. one that makes a variance vanish), which the Richardson reruns shrink away."""
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return self.at(k, value)
        except InvalidArgument as exc:
            if "finite" not in str(exc):
                raise
            return float("nan")

    def imag_at(self, k: int, h: float) -> complex:
        """``f(x + i h e_k)`` on a complex128 copy."""
        arr = self.x.astype(np.complex128)
        arr.flat[k] += 1j * h
        self.nfev += 1
        return _as_scalar(self.f(arr), f"at `x + ih e_{k}`", complex_ok=True)


def _finish(
    problem: _Problem, value: Any, error: Any, nfev: int, method: str, step: Any
) -> Estimate:
    def shaped(a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64).reshape(problem.shape)

    return Estimate(shaped(value), shaped(error), int(nfev), method, shaped(step))


# ------------------------------------------------------------------------------- complex step


def _complex_steps(xk: np.ndarray) -> np.ndarray:
    """``2**-360 * max(1, |x|)`` rounded down to a power of two, so ``Im/h`` is exact."""
    _, exponent = np.frexp(np.maximum(1.0, np.abs(xk)))
    return np.ldexp(1.0, exponent - 1 + _CS_EXPONENT)


def _complex_bound(value: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Rounding relative to the gradient's scale, plus the resolution of ``Im f / h``: imaginary
    parts below the smallest normal number lose digits (subnormals)."""
    scale = np.max(np.abs(value), initial=0.0)
    return _CS_ROUNDING * _EPS * (np.abs(value) + scale) + _TINY / h


def complex_step(f: Callable[[np.ndarray], Any], x: Any, *, indices: Any = None) -> Estimate:
    """Gradient by the complex step ``Im f(x + ih e_k) / h``: exact to rounding, one call each.

    Parameters
    ----------
    f : callable
        ``f(arr) -> scalar``; must carry the imaginary part of a complex ``arr`` through
        real-analytic operations only (see :func:`probe_complex_step`).
    x : array of float
        Point of evaluation; never modified. Evaluated as complex128.
    indices : 1-D array of int, optional
        Flat indices of the elements to estimate; all when omitted.

    Returns
    -------
    Estimate
        ``method="complex"``, error ``2⁷·ε·(|v_k| + max|v|) + 2⁻¹⁰²²/h_k`` (the maximum over
        the estimated elements; see the module docstring for what it leaves out), step ``h``.

    Raises
    ------
    InvalidArgument
        ``x`` not a finite float array, ``indices`` out of range, ``f`` not returning a finite
        scalar.

    Examples
    --------
    >>> est = complex_step(lambda a: np.sum(np.sin(a)), np.array([0.0, 1.0]))
    >>> bool(np.all(np.abs(est.value - np.cos([0.0, 1.0])) <= est.error)), est.nfev
    (True, 2)
    """
    problem = _validate(f, x, indices)
    ev = _Evaluator(problem)
    h = _complex_steps(problem.x.flat[problem.idx])
    value = np.array([ev.imag_at(int(k), hk).imag for k, hk in zip(problem.idx, h, strict=True)])
    value = value / h
    error = _complex_bound(value, h)
    return _finish(problem, value, error, ev.nfev, "complex", h)


# ------------------------------------------------------------------------ central differences


def _central_steps(xk: np.ndarray) -> np.ndarray:
    """``eps**(1/3) * sign(x) * max(1, |x|)`` with sign(0) = +1."""
    sign = np.where(xk < 0, -1.0, 1.0)
    return _EPS ** (1 / 3) * sign * np.maximum(1.0, np.abs(xk))


def _central_core(
    evaluate: Callable[[int, float], float], xk: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``D(h)``, its bound from ``D(2h)`` and the step taken, for each element ``j``."""
    h = _central_steps(xk)
    points = xk[:, None] + np.array([1.0, -1.0, 2.0, -2.0]) * h[:, None]
    values = np.array([[evaluate(j, t) for t in row] for j, row in enumerate(points)])
    values = values.reshape(xk.size, 4)
    d1 = (values[:, 0] - values[:, 1]) / (points[:, 0] - points[:, 1])
    d2 = (values[:, 2] - values[:, 3]) / (points[:, 2] - points[:, 3])
    step = points[:, 0] - xk
    noise_k = noise + _F_ULPS * _EPS * np.max(np.abs(values), axis=1, initial=0.0)
    error = np.abs(d2 - d1) + 2 * noise_k / np.abs(step) + 4 * _EPS * np.abs(d1) + _TINY
    return d1, error, step


def central(
    f: Callable[[np.ndarray], Any], x: Any, *, indices: Any = None, noise: float | None = None
) -> Estimate:
    """Gradient by central differences with ``h = ε^(1/3)·max(1, |x_k|)``, bound from two steps.

    Parameters
    ----------
    f : callable
        ``f(arr) -> real scalar``.
    x : array of float
        Point of evaluation; never modified. Evaluated as float64.
    indices : 1-D array of int, optional
        Flat indices of the elements to estimate; all when omitted.
    noise : float, optional
        Bound on the absolute rounding error of ``f`` near ``x`` (at the points evaluated);
        ``8·ε·|f|`` at those points is always added, and is all there is when omitted.

    Returns
    -------
    Estimate
        ``method="central"``, value ``D(h)``, error ``|D(2h) - D(h)| + 2·noise_k/|h| + 4ε|D(h)|``
        (``noise_k = noise + 8ε·max|f|`` over the element's four values), step ``(x + h) - x``;
        4 evaluations per element.

    Raises
    ------
    InvalidArgument
        As :func:`complex_step`, and for a negative or non-finite ``noise``.

    Examples
    --------
    >>> est = central(lambda a: np.sum(a**3), np.array([1.0, 2.0]), noise=1e-15)
    >>> bool(np.all(np.abs(est.value - [3.0, 12.0]) <= est.error)), est.nfev
    (True, 8)
    """
    problem = _validate(f, x, indices)
    noise_abs = _validate_noise(noise) or 0.0
    ev = _Evaluator(problem)
    idx = problem.idx
    value, error, step = _central_core(
        lambda j, v: ev.at(int(idx[j]), v), problem.x.flat[idx], noise_abs
    )
    return _finish(problem, value, error, ev.nfev, "central", step)


# ---------------------------------------------------------------------- Richardson (scipy)


def _stencil_weight_sum(order: int = _RICH_ORDER) -> float:
    """``Σ|w_j|`` of SciPy's central stencil ``±h/2**j`` (j < order/2), steps in units of h."""
    n = order // 2
    offsets = np.concatenate([-(0.5 ** np.arange(n))[::-1], [0.0], 0.5 ** np.arange(n)])
    rhs = np.zeros(2 * n + 1)
    rhs[1] = 1.0
    weights = np.linalg.solve(np.vander(offsets, increasing=True).T, rhs)
    return float(np.sum(np.abs(weights)))


_WEIGHT_SUM = _stencil_weight_sum()


class _Recorder:
    """SciPy callback: keeps every iterate ``D_i`` (row ``i - 1``) of the elements ``todo``."""

    def __init__(self, todo: np.ndarray, m: int) -> None:
        self.todo = todo
        self.history = np.full((_RICH_MAXITER, m), np.nan)

    def __call__(self, res: Any) -> None:
        nit = np.atleast_1d(res.nit)
        done = np.flatnonzero(nit > 0)
        self.history[nit[done] - 1, self.todo[done]] = np.atleast_1d(res.df)[done]


class _Stencil:
    """The elementwise function SciPy differentiates: ``t ↦ f(base_j + t)`` for element ``j``."""

    def __init__(self, evaluate: Callable[[int, float], float], base: np.ndarray, f0: float):
        self.evaluate = evaluate
        self.base = base
        self.f0 = f0
        self.drift = np.zeros(base.size)  # largest |fl(base + t) - base - t| per element
        self.fmax = np.full(base.size, abs(f0))  # largest |f| seen per element

    def __call__(self, t: np.ndarray, j: np.ndarray) -> np.ndarray:
        t, j = np.broadcast_arrays(t, j)
        out = np.empty(t.shape)
        for pos in np.ndindex(t.shape):
            out[pos] = self._one(float(t[pos]), int(j[pos]))
        return out

    def _one(self, t: float, j: int) -> float:
        if t == 0.0:
            return self.f0
        value = self.base[j] + t
        self.drift[j] = max(self.drift[j], abs((value - self.base[j]) - t))
        result = self.evaluate(j, value)
        self.fmax[j] = max(self.fmax[j], abs(result))
        return result


def _richardson_steps(x: np.ndarray, xk: np.ndarray) -> np.ndarray:
    """Initial steps ``scale/8`` as powers of two, ``scale = min(max(1, |x_k|), std(x))``."""
    magnitude = np.maximum(1.0, np.abs(xk))
    spread = float(np.std(x)) if x.size > 1 else 0.0
    scale = np.minimum(magnitude, spread) if spread > 0 else magnitude
    first = np.maximum(_RICH_FIRST * scale, _RICH_FLOOR * magnitude)
    return np.exp2(np.round(np.log2(first)))


def _richardson_run(stencil: _Stencil, todo: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """One SciPy run over the elements ``todo``; every iterate, NaN for the other elements."""
    recorder = _Recorder(todo, stencil.base.size)
    derivative(
        stencil, np.zeros(todo.size), args=(todo,), initial_step=h0[todo],
        step_factor=2.0, order=_RICH_ORDER, maxiter=_RICH_MAXITER,
        tolerances={"atol": _TINY, "rtol": _RICH_RTOL}, callback=recorder,
    )
    return recorder.history


def _neighbour_spread(history: np.ndarray) -> np.ndarray:
    """``max(|D_i - D_{i-1}|, |D_{i+1} - D_i|)`` within each run of ``_RICH_MAXITER`` rows."""
    runs = history.reshape(-1, _RICH_MAXITER, history.shape[1])
    diffs = np.abs(np.diff(runs, axis=1))
    pad = np.full((runs.shape[0], 1, runs.shape[2]), np.nan)
    spread = np.fmax(np.concatenate([pad, diffs], axis=1), np.concatenate([diffs, pad], axis=1))
    return spread.reshape(history.shape)


def _iterate_bounds(
    history: np.ndarray, steps: np.ndarray, stencil: _Stencil, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each iterate's bound, and whether it has settled (agrees with its neighbours)."""
    spread = _neighbour_spread(history)
    noise_k = noise + _F_ULPS * _EPS * stencil.fmax
    size = np.abs(history)
    rounding = _WEIGHT_SUM * (noise_k + size * stencil.drift) / steps + 4 * _EPS * size + _TINY
    settled = (spread <= _RICH_SETTLED * size) | (spread <= 8 * rounding)
    missing = np.isnan(history) | np.isnan(spread)
    return np.where(missing, np.inf, spread + rounding), settled & ~missing


def _choose(
    history: np.ndarray, steps: np.ndarray, bound: np.ndarray, settled: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per element, the settled iterate with the smallest bound (any iterate if none settled)."""
    best = np.where(
        settled.any(axis=0),
        np.argmin(np.where(settled, bound, np.inf), axis=0),
        np.argmin(bound, axis=0),
    )
    cols = np.arange(history.shape[1])
    return history[best, cols], bound[best, cols], steps[best, cols]


def _richardson_core(
    evaluate: Callable[[int, float], float], base: np.ndarray, h0: np.ndarray, f0: float,
    noise: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs SciPy from ``h0``, then again 2**-11 lower for elements that have not settled."""
    stencil = _Stencil(evaluate, base, f0)
    floor = _RICH_FLOOR * np.maximum(1.0, np.abs(base))
    todo, h = np.arange(base.size), h0
    histories, steps = [], []
    for _ in range(_RICH_RUNS):
        histories.append(_richardson_run(stencil, todo, h))
        steps.append(h / 2.0 ** np.arange(_RICH_MAXITER)[:, None])
        bound, settled = _iterate_bounds(np.vstack(histories), np.vstack(steps), stencil, noise)
        h = h * 2.0 ** (1 - _RICH_MAXITER)
        todo = np.flatnonzero(~settled.any(axis=0) & (h >= floor))
        if todo.size == 0:
            break
    return _choose(np.vstack(histories), np.vstack(steps), bound, settled)


def richardson(
    f: Callable[[np.ndarray], Any], x: Any, *, indices: Any = None, noise: float | None = None
) -> Estimate:
    """Gradient by Richardson extrapolation (:func:`scipy.differentiate.derivative`).

    Parameters
    ----------
    f : callable
        ``f(arr) -> real scalar``.
    x : array of float
        Point of evaluation; never modified. Evaluated as float64.
    indices : 1-D array of int, optional
        Flat indices of the elements to estimate; all when omitted.
    noise : float, optional
        Bound on the absolute rounding error of ``f`` near ``x`` (at the points evaluated, up
        to ``max(1, |x_k|)/8`` away); ``8·ε·|f|`` there is always added.

    Returns
    -------
    Estimate
        ``method="richardson"``; the bound and the step choice are in the module docstring.
        One evaluation for ``f(x)``, then typically 12 to 25 per element; elements that need
        restarts take up to 30 more per run.

    Raises
    ------
    InvalidArgument
        As :func:`central`.

    Examples
    --------
    >>> est = richardson(lambda a: np.sum(np.exp(a)), np.array([0.0, 1.0]))
    >>> bool(np.all(np.abs(est.value - np.exp([0.0, 1.0])) <= est.error))
    True
    """
    problem = _validate(f, x, indices)
    noise_abs = _validate_noise(noise) or 0.0
    ev = _Evaluator(problem)
    f0 = ev.at()
    idx, xk = problem.idx, problem.x.flat[problem.idx]
    if idx.size == 0:
        return _finish(problem, xk, xk, ev.nfev, "richardson", xk)
    value, error, step = _richardson_core(
        lambda j, v: ev.at_or_nan(int(idx[j]), v), xk, _richardson_steps(problem.x, xk), f0,
        noise_abs,
    )
    return _finish(problem, value, error, ev.nfev, "richardson", step)


# ----------------------------------------------------------------- complex-step safety probe

_NON_ANALYTIC_UFUNCS = frozenset({
    "greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
    "maximum", "minimum", "fmax", "fmin", "absolute", "fabs", "sign", "signbit", "clip",
    "conjugate", "floor", "ceil", "rint", "trunc", "heaviside", "copysign",
    "remainder", "fmod", "floor_divide", "divmod", "modf",
})

_NON_ANALYTIC_FUNCTIONS: dict[Any, str] = {
    np.var: "np.var", np.std: "np.std", np.nanvar: "np.nanvar", np.nanstd: "np.nanstd",
    np.max: "np.max", np.min: "np.min", np.amax: "np.amax", np.amin: "np.amin",
    np.clip: "np.clip", np.round: "np.round", np.around: "np.around", np.sort: "np.sort",
    np.argmax: "np.argmax", np.argmin: "np.argmin", np.median: "np.median",
    np.percentile: "np.percentile", np.quantile: "np.quantile", np.ptp: "np.ptp",
}


def _log_of(arrays: tuple[Any, ...]) -> list[str]:
    return next((a.log for a in arrays if isinstance(a, _Traced)), [])


def _untraced(arrays: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.view(np.ndarray) if isinstance(a, _Traced) else a for a in arrays)


def _traced(result: Any, log: list[str]) -> Any:
    """Wrap a ufunc result (array, NumPy scalar or tuple of them) so that tracing goes on."""
    if isinstance(result, tuple):
        return tuple(_traced(r, log) for r in result)
    if not isinstance(result, (np.ndarray, np.generic)):
        return result
    out = np.asarray(result).view(_Traced)
    out.log = log
    return out


class _Traced(np.ndarray):
    """An ndarray that records the non-analytic operations applied to it and to what derives
    from it (``__array_ufunc__``, ``__array_function__``); ``.real``, ``.imag`` and ``astype``
    keep tracing but are not recorded: they drop the imaginary part visibly, which checks (b)
    and (c) measure, and complex-step-safe code uses them legitimately (``mu.real`` for the
    running statistics)."""

    log: list[str]

    def __array_finalize__(self, obj: Any) -> None:
        self.log = getattr(obj, "log", [])

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out", ())
        log = _log_of(inputs + out)
        if ufunc.__name__ in _NON_ANALYTIC_UFUNCS:
            log.append(f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}"))
        if out:
            kwargs["out"] = _untraced(out)
        result = getattr(ufunc, method)(*_untraced(inputs), **kwargs)
        if out:
            return out[0] if len(out) == 1 else out
        return _traced(result, log)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func in _NON_ANALYTIC_FUNCTIONS:
            self.log.append(_NON_ANALYTIC_FUNCTIONS[func])
        return super().__array_function__(func, types, args, kwargs)

    @property  # type: ignore[misc]
    def real(self) -> Any:  # type: ignore[override]
        return _traced(self.view(np.ndarray).real, self.log)

    @property  # type: ignore[misc]
    def imag(self) -> Any:  # type: ignore[override]
        return _traced(self.view(np.ndarray).imag, self.log)

    def astype(self, dtype: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return _traced(self.view(np.ndarray).astype(dtype, *args, **kwargs), self.log)


def _perturbed(problem: _Problem, k: int) -> np.ndarray:
    arr = problem.x.astype(np.complex128)
    arr.flat[k] += 1j * _complex_steps(problem.x.flat[k : k + 1])[0]
    return arr


def _element(problem: _Problem, k: int) -> str:
    return str(tuple(int(i) for i in np.unravel_index(k, problem.x.shape)))


def _raised(problem: _Problem, exc: Exception) -> str:
    """Why a complex evaluation failed; re-raises if ``f`` fails on real input too."""
    _Evaluator(problem).at()  # a genuine error in f propagates unchanged from here
    return f"the forward raised {type(exc).__name__} on complex input ({exc})"


def _probe_first_call(problem: _Problem, k: int) -> str:
    """(a) raising on complex input and (b) dropping the imaginary part visibly."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = np.asarray(problem.f(_perturbed(problem, k)))
        except Exception as exc:  # any error on complex input means "not complex-step safe"
            return _raised(problem, exc)
    if any(issubclass(w.category, ComplexWarning) for w in caught):
        return ("the forward casts the perturbed input to a real dtype (ComplexWarning: "
                "the imaginary part is discarded)")
    if value.dtype.kind != "c":
        return ("the forward returned a real value for complex input: the imaginary part was "
                "dropped (.real, float() or a cast to a real dtype)")
    if value.ndim == 0 and not np.isfinite(value):
        return f"the forward returned {value.item()!r} for complex input"
    return ""


def _probe_trace(problem: _Problem, k: int) -> str:
    """(d) non-analytic operations, recorded on an ndarray subclass (lost if ``f`` strips it)."""
    probe = _perturbed(problem, k).view(_Traced)
    probe.log = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            problem.f(probe)
        except Exception:  # the subclass itself may upset f; checks (a)-(c) still apply
            return ""
    if not probe.log:
        return ""
    return (f"the forward calls {probe.log[0]} on the perturbed input (comparisons, max/min, "
            "abs, var and casts to float break the complex step)")


def _disagreement(problem: _Problem, sample: np.ndarray, cs: Estimate, ref: Estimate) -> str:
    """The first element where the complex step is off ``ref`` beyond both bounds + 1e-9."""
    for j, k in enumerate(sample):
        c, r = float(cs.value[j]), float(ref.value[j])
        bound = float(cs.error[j] + ref.error[j])
        where = f"element {_element(problem, int(k))}"
        if c == 0.0 and abs(r) > 2 * bound:
            return (f"the imaginary part is zero at {where} while finite differences give "
                    f"{r:.6g} (the imaginary part was dropped, e.g. by .real, abs or np.var)")
        if abs(c - r) > 2 * bound + _PROBE_RTOL * max(abs(c), abs(r)):
            return (f"complex step ({c:.12g}) and finite differences ({r:.12g} ± {bound:.1g}) "
                    f"disagree at {where} (np.var, abs or .real drop part of the imaginary part)")
    return ""


def _scatter(problem: _Problem, sample: np.ndarray, noise: float | None,
             reference: Estimate) -> np.ndarray:
    """A second Richardson run on steps 3/4 as large: its difference from the first measures
    the error actually made (the ``noise`` given may miss the forward's conditioning)."""
    ev = _Evaluator(problem)
    xk = problem.x.flat[sample]
    again, _, _ = _richardson_core(
        lambda j, v: ev.at(int(sample[j]), v), xk, 0.75 * _richardson_steps(problem.x, xk),
        ev.at(), noise or 0.0,
    )
    return np.abs(again - reference.value)


def _probe_agreement(problem: _Problem, sample: np.ndarray, noise: float | None) -> str:
    """(b) a silently zero imaginary part and (c) disagreement with Richardson's central
    differences, whose step follows the natural scale (the classic central step can exceed it,
    e.g. for BatchNorm with ``|mean| ≫ std``, and would blame correct code). A disagreement is
    confirmed with a second Richardson run, whose scatter widens the bound, before it counts:
    agreement never needs the second run, so the common case costs one run."""
    reference = richardson(problem.f, problem.x, indices=sample, noise=noise)
    try:
        cs = complex_step(problem.f, problem.x, indices=sample)
    except Exception as exc:  # see _probe_first_call
        return _raised(problem, exc)
    if not _disagreement(problem, sample, cs, reference):
        return ""
    scatter = _scatter(problem, sample, noise, reference)
    return _disagreement(problem, sample, cs, replace(reference, error=reference.error + scatter))


def _validate_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgument(f"`seed` must be a non-negative integer, got {seed!r}")
    return int(seed)


def probe_complex_step(
    f: Callable[[np.ndarray], Any], x: Any, *, seed: int = 0, noise: float | None = None
) -> tuple[bool, str]:
    """Whether the complex step can be trusted on ``f`` at ``x``, and why not.

    Checks, in order: (d) ``f``, run once on an ndarray subclass that records the non-analytic
    operations (comparisons, ``maximum``/``minimum``, ``abs``, ``sign``, ``clip``, ``conjugate``,
    rounding, ``np.var``/``np.std``) applied to arrays derived from its input, uses one (``.real``
    and casts are followed but left to (b) and (c), as they are how safe code keeps side outputs
    such as running statistics real);
    (a) ``f`` raises on complex input; (b) the imaginary part is dropped visibly (a
    ``ComplexWarning``, a real result, or ``Im f = 0`` where central differences see a slope);
    (c) the complex step disagrees with central differences at three seeded elements beyond the
    two bounds plus 1e-9 relative. The central differences are Richardson's (:func:`richardson`,
    run twice, on steps in the ratio 3/4, whose difference widens the bound when ``noise`` misses
    the forward's conditioning; about 40 calls per element): the classic central step can exceed
    the natural scale of an ill-conditioned input and blame correct code, and its 1e-8 accuracy
    would hide a dropped term that is small but far above the complex step's bound. In all, the
    probe costs about 125 evaluations. ``np.isfinite``/``np.isnan`` are not
    flagged. If ``f`` strips the subclass (``np.asarray``), (d) sees nothing and (a)-(c) still
    apply.

    Parameters
    ----------
    f : callable
        ``f(arr) -> scalar``.
    x : array of float
        Point of evaluation; never modified.
    seed : int
        Seeds the choice of the elements compared in (c).
    noise : float, optional
        Bound on the absolute rounding error of ``f`` near ``x``, for central differences.

    Returns
    -------
    safe : bool
    reason : str
        ``"complex step unsafe: ..."`` naming the cause when not safe; ``""`` when safe.

    Raises
    ------
    InvalidArgument
        As :func:`central`, and for a negative or non-integer ``seed``.

    Examples
    --------
    >>> x = np.array([1.0, -2.0, 3.0])
    >>> probe_complex_step(lambda a: np.sum(a**2), x)
    (True, '')
    >>> safe, why = probe_complex_step(lambda a: np.sum(np.maximum(a, 0)), x)
    >>> safe, why[:52]
    (False, 'complex step unsafe: the forward calls np.maximum on')
    """
    problem = _validate(f, x, None)
    noise = _validate_noise(noise)
    rng = np.random.default_rng(_validate_seed(seed))
    sample = np.sort(rng.choice(problem.x.size, min(_PROBE_SAMPLES, problem.x.size), replace=False))
    if sample.size == 0:
        return True, ""
    k = int(sample[0])
    reason = (
        _probe_trace(problem, k)
        or _probe_first_call(problem, k)
        or _probe_agreement(problem, sample, noise)
    )
    return not reason, f"complex step unsafe: {reason}" if reason else ""


# ------------------------------------------------------------------------ public dispatchers


class _Counted:
    """Wraps ``f`` to count its calls (for the evaluations the probe spends)."""

    def __init__(self, f: Callable[[np.ndarray], Any]) -> None:
        self.f = f
        self.calls = 0

    def __call__(self, arr: np.ndarray) -> Any:
        self.calls += 1
        return self.f(arr)


def _validate_method(method: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(method, str) or method not in allowed:
        known = ", ".join(repr(m) for m in allowed)
        raise InvalidArgument(f"`method` must be one of {known}, got {method!r}")
    return method


def _auto(f: Callable[[np.ndarray], Any], x: Any, indices: Any, noise: Any, seed: int) -> Estimate:
    counted = _Counted(f)
    safe, why = probe_complex_step(counted, x, seed=seed, noise=noise)
    if safe:
        est = complex_step(f, x, indices=indices)
        reason = ("complex step safe: no non-analytic operation found and complex step agreed "
                  "with finite differences; used complex")
    else:
        est = richardson(f, x, indices=indices, noise=noise)
        reason = f"{why}; used richardson"
    return replace(est, nfev=est.nfev + counted.calls, reason=reason)


def numerical_gradient(
    f: Callable[[np.ndarray], Any],
    x: Any,
    *,
    method: str = "auto",
    indices: Any = None,
    noise: float | None = None,
    seed: int = 0,
) -> Estimate:
    """Numerical gradient of the scalar ``f`` at ``x`` by the chosen method, with error bounds.

    Parameters
    ----------
    f : callable
        ``f(arr) -> scalar``; ``arr`` is a fresh float64 (or complex128) copy of ``x``.
    x : array of float
        Point of evaluation; never modified, even if ``f`` mutates its argument or raises.
    method : {"auto", "complex", "central", "richardson"}
        ``"auto"`` runs :func:`probe_complex_step` and uses the complex step when it is safe,
        Richardson otherwise; ``Estimate.reason`` says which ran and why.
    indices : 1-D array of int, optional
        Flat indices of the elements to estimate (sampling for large inputs).
    noise : float, optional
        Bound on the absolute rounding error of ``f`` near ``x`` (see :func:`richardson`);
        unused by the complex step.
    seed : int
        Seeds the probe's choice of elements.

    Returns
    -------
    Estimate
        For ``"auto"``, ``nfev`` includes the probe's evaluations.

    Raises
    ------
    InvalidArgument
        Unknown ``method``, ``x`` not a finite float array, ``indices`` out of range, ``f`` not
        returning a finite scalar, bad ``noise`` or ``seed``.

    Examples
    --------
    >>> est = numerical_gradient(lambda a: np.sum(np.abs(a)), np.array([1.0, -2.0]))
    >>> est.method, est.value.round(8)
    ('richardson', array([ 1., -1.]))
    >>> est.reason[:56]
    'complex step unsafe: the forward calls np.absolute on th'
    """
    method = _validate_method(method, METHODS)
    seed = _validate_seed(seed)
    if method == "auto":
        _validate(f, x, indices)
        return _auto(f, x, indices, _validate_noise(noise), seed)
    if method == "complex":
        _validate_noise(noise)
        return complex_step(f, x, indices=indices)
    runner = central if method == "central" else richardson
    return runner(f, x, indices=indices, noise=noise)


# ---------------------------------------------------------------------------- directional


class _PhiEvaluator:
    """Calls ``phi(t)`` and counts the calls."""

    def __init__(self, phi: Callable[[Any], Any]) -> None:
        self.phi = phi
        self.nfev = 0

    def real(self, t: float) -> float:
        self.nfev += 1
        return float(_as_scalar(self.phi(t), f"at t={t!r}", name="phi").real)

    def imag(self, h: float) -> float:
        self.nfev += 1
        return _as_scalar(self.phi(1j * h), f"at t={1j * h!r}", complex_ok=True, name="phi").imag


_GOLDEN = (1 + 5**0.5) / 2


def _directional_complex(ev: _PhiEvaluator, noise: float | None) -> tuple[float, float, float]:
    h1 = 2.0**_CS_EXPONENT
    h2 = h1 * _GOLDEN  # not a power of two: different rounding, same (zero) truncation
    v1, v2 = ev.imag(h1) / h1, ev.imag(h2) / h2
    return v1, 2 * abs(v1 - v2) + _CS_ROUNDING * _EPS * abs(v1) + _TINY / h1, h1


def _directional_central(ev: _PhiEvaluator, noise: float | None) -> tuple[float, float, float]:
    value, error, step = _central_core(lambda j, t: ev.real(t), np.zeros(1), noise or 0.0)
    return float(value[0]), float(error[0]), float(step[0])


def _directional_richardson(ev: _PhiEvaluator, noise: float | None) -> tuple[float, float, float]:
    value, error, step = _richardson_core(
        lambda j, t: ev.real(t), np.zeros(1), np.array([_RICH_FIRST]), ev.real(0.0), noise or 0.0
    )
    return float(value[0]), float(error[0]), float(step[0])


_DIRECTIONAL = {
    "complex": _directional_complex,
    "central": _directional_central,
    "richardson": _directional_richardson,
}


def directional(
    phi: Callable[[Any], Any], *, method: str, noise: float | None = None
) -> Estimate:
    """Derivative ``dφ/dt`` at ``t = 0`` in O(1) evaluations (the fast mode for large inputs).

    The caller builds ``φ(t) = L(x + t·u)`` for a seeded direction ``u`` and compares the result
    with ``<grad, u>``. Steps assume ``t ≈ 1`` is the natural scale: scale ``u`` accordingly.

    Parameters
    ----------
    phi : callable
        ``phi(t) -> scalar`` for a real ``t`` (complex for ``method="complex"``).
    method : {"complex", "central", "richardson"}
        2 evaluations (two complex steps), 4, or 10 to 30 (at most 1 + 4·30 on restarts).
    noise : float, optional
        Bound on the absolute rounding error of ``phi`` near 0, as for :func:`central`;
        unused by the complex step.

    Returns
    -------
    Estimate
        ``value``, ``error`` and ``step`` are 0-d arrays.

    Raises
    ------
    InvalidArgument
        Unknown ``method``, ``phi`` not callable or not returning a finite scalar, bad ``noise``.

    Examples
    --------
    >>> est = directional(lambda t: np.exp(2 * t), method="complex")
    >>> float(est.value), est.nfev
    (2.0, 2)
    """
    _validate_f(phi, "phi")
    method = _validate_method(method, tuple(_DIRECTIONAL))
    ev = _PhiEvaluator(phi)
    value, error, step = _DIRECTIONAL[method](ev, _validate_noise(noise))
    return Estimate(np.array(value), np.array(error), ev.nfev, method, np.array(step))
