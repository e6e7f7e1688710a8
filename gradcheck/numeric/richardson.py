"""Richardson extrapolation on :func:`scipy.differentiate.derivative`, with honest bounds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck.numeric._base import (
    _EPS,
    _F_ULPS,
    _TINY,
    Estimate,
    _Evaluator,
    _finish,
    _noise_at,
    _validate,
    _validate_noise,
    local_scale,
)

_RICH_ORDER = 8
_RICH_MAXITER = 12
_RICH_RUNS = 4  # restarts, each 2**-11 lower, for elements whose iterates never settle
_RICH_RTOL = 2.0**-42  # iterate until consecutive estimates agree to ~2e-13, or the error grows
_RICH_FIRST = 1 / 8  # initial step, as a fraction of the natural scale
_RICH_FLOOR = 2.0**-36  # steps stay above this fraction of |x|: offsets of at least 4 ulp
# (of |x| itself, not of max(1, |x|): an input of 1e-100 is differentiated on its own scale)
_RICH_SETTLED = 2.0**-6  # an iterate has settled when its neighbours agree to this (relative)
_RICH_RATE = 2.0**-3  # ... and each difference is at most this fraction of the one before
_NOISE_SAFETY = 4.0  # the measured noise (a standard deviation) counts four times



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
    """The elementwise function SciPy differentiates: ``t ↦ f(base_j + t)`` for element ``j``,
    every point SciPy asks for at once evaluated in one batch (``evaluate(js, values)``)."""

    def __init__(self, evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 base: np.ndarray, f0: float):
        self.evaluate = evaluate
        self.base = base
        self.f0 = f0
        self.drift = np.zeros(base.size)  # largest |fl(base + t) - base - t| per element
        self.fmax = np.full(base.size, abs(f0))  # largest |f| seen per element

    def __call__(self, t: np.ndarray, j: np.ndarray) -> np.ndarray:
        t, j = np.broadcast_arrays(np.asarray(t, dtype=np.float64), np.asarray(j))
        out = np.full(t.shape, self.f0)
        moved = t != 0.0
        ts, js = t[moved], j[moved].astype(np.intp)
        values = self.base[js] + ts
        np.maximum.at(self.drift, js, np.abs((values - self.base[js]) - ts))
        found = np.asarray(self.evaluate(js, values), dtype=np.float64)
        np.fmax.at(self.fmax, js, np.abs(found))
        out[moved] = found
        return out


def _richardson_steps(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Initial steps ``scale/8`` as powers of two, ``scale = min(max(1, |x_k|), s_k)`` with
    ``s_k`` the element's :func:`local_scale`."""
    xk = x.reshape(-1)[idx]
    magnitude = np.maximum(1.0, np.abs(xk))
    scale = np.minimum(magnitude, local_scale(x).reshape(-1)[idx])
    first = np.maximum(_RICH_FIRST * scale, _RICH_FLOOR * np.abs(xk))
    return np.exp2(np.round(np.log2(first)))


def _own_steps(xk: np.ndarray) -> np.ndarray:
    """``|x_k|/8`` as a power of two (infinite for ``x_k = 0``: no magnitude to follow)."""
    with np.errstate(divide="ignore"):
        return np.where(xk != 0.0, np.exp2(np.round(np.log2(np.abs(xk) * _RICH_FIRST))), np.inf)


def _richardson_run(stencil: _Stencil, todo: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """One SciPy run over the elements ``todo``; every iterate, NaN for the other elements."""
    recorder = _Recorder(todo, stencil.base.size)
    from scipy.differentiate import derivative  # imported when Richardson runs, not before

    derivative(
        stencil, np.zeros(todo.size), args=(todo,), initial_step=h0[todo],
        step_factor=2.0, order=_RICH_ORDER, maxiter=_RICH_MAXITER,
        tolerances={"atol": _TINY, "rtol": _RICH_RTOL}, callback=recorder,
    )
    return recorder.history


def _runs(history: np.ndarray) -> np.ndarray:
    return history.reshape(-1, _RICH_MAXITER, history.shape[1])


def _neighbour_diffs(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``|D_i - D_{i-1}|`` and ``|D_{i+1} - D_i|`` within each run of ``_RICH_MAXITER`` rows."""
    runs = _runs(history)
    diffs = np.abs(np.diff(runs, axis=1))
    pad = np.full((runs.shape[0], 1, runs.shape[2]), np.nan)
    before = np.concatenate([pad, diffs], axis=1).reshape(history.shape)
    after = np.concatenate([diffs, pad], axis=1).reshape(history.shape)
    return before, after


def _later_excess(history: np.ndarray, steps: np.ndarray, rounding: np.ndarray,
                  settled: np.ndarray) -> np.ndarray:
    """How far each iterate lies outside the rounding band of every settled iterate on a smaller
    step: on a smooth function those agree with it; across a kink inside the larger steps' range
    they do not, and the larger-step iterate must not be trusted."""
    order = np.argsort(-np.nan_to_num(steps, nan=-np.inf), axis=0, kind="stable")
    d = np.take_along_axis(history, order, axis=0)
    r = np.take_along_axis(rounding, order, axis=0)
    ok = np.take_along_axis(settled, order, axis=0)
    hi = np.where(ok, d - r, -np.inf)
    lo = np.where(ok, d + r, np.inf)
    # suffix extremes over strictly smaller steps
    hi_after = np.concatenate([np.maximum.accumulate(hi[::-1], axis=0)[::-1][1:],
                               np.full((1, d.shape[1]), -np.inf)])
    lo_after = np.concatenate([np.minimum.accumulate(lo[::-1], axis=0)[::-1][1:],
                               np.full((1, d.shape[1]), np.inf)])
    excess = np.fmax(np.fmax(hi_after - d, d - lo_after), 0.0)
    out = np.empty_like(excess)
    np.put_along_axis(out, order, excess, axis=0)
    return np.where(np.isfinite(out), out, 0.0)


def _iterate_bounds(
    history: np.ndarray, steps: np.ndarray, stencil: _Stencil, noise: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Each iterate's bound, and whether it has settled: its neighbours agree, to rounding or
    to 2⁻⁶ relative with the differences shrinking at a Taylor rate (each at most 1/8 of the
    one before; an 8th-order stencil gives about 1/256), which iterates polluted by a kink inside
    the stencil do not show."""
    before, after = _neighbour_diffs(history)
    spread = np.fmax(before, after)
    noise_k = noise + _F_ULPS * _EPS * stencil.fmax
    size = np.abs(history)
    rounding = _WEIGHT_SUM * (noise_k + size * stencil.drift) / steps + 4 * _EPS * size + _TINY
    # A run's first iterate has no difference before it: it cannot show a rate, and across a
    # kink the first, widest stencils agree with each other best. It settles only to rounding.
    converging = after <= _RICH_RATE * before
    settled = (spread <= 8 * rounding) | ((spread <= _RICH_SETTLED * size) & converging)
    missing = np.isnan(history) | np.isnan(spread)
    settled = settled & ~missing
    bound = spread + rounding + _later_excess(history, steps, rounding, settled)
    return np.where(missing, np.inf, bound), settled


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
    evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray], base: np.ndarray, h0: np.ndarray,
    f0: float,
    noise: Any,
    noise_own: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs SciPy from ``h0``, then again 2**-11 lower for elements that have not settled.
    ``noise_own`` is the noise on steps at an element's own magnitude, where that differs."""
    stencil = _Stencil(evaluate, base, f0)
    floor = _RICH_FLOOR * np.abs(base)
    own = _own_steps(base)
    todo, h = np.arange(base.size), h0
    histories, steps = [], []
    for run in range(_RICH_RUNS):
        histories.append(_richardson_run(stencil, todo, h))
        steps.append(h / 2.0 ** np.arange(_RICH_MAXITER)[:, None])
        taken = np.vstack(steps)
        rows = noise if noise_own is None else np.where(taken <= own, noise_own, noise)
        bound, settled = _iterate_bounds(np.vstack(histories), taken, stencil, rows)
        # A restart starts 2**-11 lower, or at the element's own magnitude where that is lower
        # still: a step wider than |x_k| crosses 0, where a log, a reciprocal, a pole or a
        # clamp of the smallest float sits. Across a kink at 0, a symmetric stencil's iterates
        # agree on the mean of the two slopes at every step wider than |x_k| and look settled,
        # so an element far below the first run's steps runs once at its own magnitude in any
        # case (a settled iterate there overrules the wider ones, _later_excess)
        lower = h * 2.0 ** (1 - _RICH_MAXITER)
        if run == 0:
            below = own < lower
        h = np.minimum(lower, own)
        todo = np.flatnonzero((~settled.any(axis=0) | (below if run == 0 else False))
                              & (h >= floor))
        if todo.size == 0:
            break
    history, step = np.vstack(histories), np.vstack(steps)
    # ... and its wider steps' agreement is worth no more than what its own magnitude can
    # vouch for: no bound below the best settled on its own magnitude (infinite where none is).
    mine = np.min(np.where(settled & (step <= own), bound, np.inf), axis=0)
    bound = np.where(below[None, :], np.maximum(bound, mine[None, :]), bound)
    return _choose(history, step, bound, settled)


def richardson(
    f: Callable[[np.ndarray], Any], x: Any, *, indices: Any = None, noise: Any = None
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
    noise : float or array, optional
        Bound on the absolute rounding error of ``f`` near ``x`` (at the points evaluated, up
        to ``max(1, |x_k|)/8`` away), one for all elements or one per element (``x``'s shape);
        ``8·ε·|f|`` there is always added.

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
    noise_k = _noise_at(_validate_noise(noise, problem.x.shape), problem.idx)
    ev = _Evaluator(problem)
    f0 = ev.at()
    idx, xk = problem.idx, problem.x.flat[problem.idx]
    if idx.size == 0:
        return _finish(problem, xk, xk, ev.nfev, "richardson", xk)
    steps = _richardson_steps(problem.x, idx)
    def evaluate(js: np.ndarray, values: np.ndarray) -> np.ndarray:
        return ev.at_many(idx[js], values, nan=True)

    measured = measured_noise(evaluate, xk, steps, f0)
    # Elements far below their first steps also run on their own magnitude (_richardson_core),
    # where the noise is measured again: the wider steps' measurement sees the forward's shape
    # across 0 as noise.
    own = np.minimum(_own_steps(xk), steps)
    below = np.flatnonzero(own < steps * 2.0 ** (1 - _RICH_MAXITER))
    mine = measured.copy()
    if below.size:
        mine[below] = measured_noise(lambda js, values: evaluate(below[js], values), xk[below],
                                     own[below], f0)
    value, error, step = _richardson_core(
        evaluate, xk, steps, f0,
        np.maximum(noise_k, _NOISE_SAFETY * measured),
        np.maximum(noise_k, _NOISE_SAFETY * mine),
    )
    return _finish(problem, value, error, ev.nfev, "richardson", step)


def measured_noise(evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray], xk: np.ndarray,
                   steps: np.ndarray, f0: float) -> np.ndarray:
    """The rounding noise of ``f`` near each element, measured (Moré & Wild's ECnoise idea):
    on points ``x_k + j δ``, ``j = -4..4``, with ``δ`` far below the element's natural scale,
    ``f`` is a low-degree polynomial plus noise, so its 6th differences are noise alone, with
    variance ``C(12, 6) σ²``. A forward whose rounding is amplified beyond the noise model
    (``E[x²] - E[x]²``, a long sum) shows it here. 8 evaluations per element, in one batch."""
    offsets = np.array([-4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0])
    delta = steps * 2.0**-20
    js = np.repeat(np.arange(xk.size), offsets.size)
    points = (xk[:, None] + offsets[None, :] * delta[:, None]).reshape(-1)
    found = np.asarray(evaluate(js, points), dtype=np.float64).reshape(xk.size, offsets.size)
    values = np.insert(found, 4, f0, axis=1)  # j = 0 is f(x) itself
    sigma = np.zeros(xk.size)
    for j in range(xk.size):
        if not np.all(np.isfinite(values[j])):
            continue
        sixth = np.diff(values[j], n=6)
        sigma[j] = float(np.sqrt(np.mean(sixth**2) / 924.0))
    return sigma
