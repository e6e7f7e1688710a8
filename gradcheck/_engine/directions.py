"""Directional comparisons: ``<a, u>`` against the numerical ``dL/du``, per input or shared.

Each direction follows the steps of :mod:`gradcheck._engine.judge` with the budget projected on
``|u|``. The directions are ``u = s w``, ``s`` the spread of ``x`` and ``w`` uniform on
``[-√3, √3]`` per element (unit variance; a quarter of the cost of drawing Gaussians). An error
vector ``e`` escapes one direction only when ``|<e, u>|`` falls under that direction's budget
``B``. ``<e, w>/|e|`` is symmetric and log-concave, so its density peaks at 0, where Ball's
cube-slicing theorem bounds it by :data:`DENSITY` ``= 1/√6``: ``P(|<e, u>| < B) ≤ 2 DENSITY B /
(s |e|)``. All of ``D`` independent directions miss with probability at most
:data:`MISS_PROBABILITY` when ``|e| ≥ miss_norm = 2 DENSITY max B / (s MISS_PROBABILITY^(1/D))``
(Gaussian directions would give 0.798 for 0.816 in that factor).

**Shared directions** (as Chainer's checker does): one set of directions moves every input of
the check at once, ``u = (u_1, u_2, ...)`` with each part at its input's spread, so a check of
``x``, ``gamma`` and ``beta`` makes :data:`DIRECTIONS` evaluations instead of three times as many.
``<e, u>`` then also carries the other inputs' errors, independent of input ``i``'s part, and
adding an independent variable never raises the peak of a density, so input ``i``'s miss bound
is the shared budget's, over ``s_i``. An input shares only where that budget allows: its miss
bound stays under ``sqrt(ε) |a_i|`` (the band beyond which no rounding explains an error) or
within :data:`SHARE_LOSS` of the bound its own directions would have. A shared direction over
budget, or an input that is rounding noise (*zero* needs its own comparison), sends every input
back to its own directions.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck import numeric
from gradcheck._engine import ladder
from gradcheck._engine.kinks import linear_along
from gradcheck._engine.ladder import DirectionEvidence, DirectionVerdict
from gradcheck._engine.objective import Numeric
from gradcheck._engine.side import Side, scaled_norm
from gradcheck.results import MISS_PROBABILITY
from gradcheck.tolerance import Tolerance, confirm_dtypes

DIRECTIONS = 8
DENSITY = 1 / math.sqrt(6)  # the peak density of <e, w> / |e| (Ball, 1986)
CONFIRM_FACTOR = 4.0  # the change in extended precision widens the bound by this much
SHARE_LOSS = 4.0  # a shared miss bound may be this much above the input's own



@dataclass(frozen=True)
class Directions:
    """The directional comparisons of one gradient: the evidence and its verdict."""

    evidence_: DirectionEvidence
    verdict: DirectionVerdict
    nfev: int

    @property
    def status(self) -> str:
        return self.verdict.status

    @property
    def miss_norm(self) -> float:
        return self.verdict.miss_norm

    @property
    def message(self) -> str:
        return self.verdict.message

    @property
    def worst(self) -> tuple[float, float, float]:
        return self.verdict.worst

    @property
    def shared(self) -> tuple[str, ...]:
        return self.evidence_.shared

    @property
    def evidence(self) -> bool:
        """Whether any direction was compared (none is when every one crossed a kink)."""
        return self.verdict.evidence


def spread(x: np.ndarray) -> float:
    """The scale of the directions for ``x``: its spread, so the engines' steps are natural."""
    return numeric.spread(x)


class _Along:
    """``phi(t) = L(x + t u)``, the objective along one direction; :meth:`point` is the point
    ``x + t u`` itself."""

    def __init__(self, f: Any, x: np.ndarray, u: np.ndarray) -> None:
        self.f, self.x, self.u = f, x, u

    def point(self, t: Any) -> np.ndarray:
        x, u = self.x, self.u
        if isinstance(t, complex) and t.real == 0 and x.dtype == np.float64:
            point = np.empty_like(x, np.complex128)  # x + i·h·u without temporaries, laid out
            point.real = x  # as x is (a layer may depend on its input's memory layout)
            np.multiply(u, t.imag, out=point.imag)
            return point
        moved = np.empty_like(x, np.result_type(x, t))
        moved[...] = x + t * u
        return moved

    def __call__(self, t: Any) -> Any:
        return self.f(self.point(t))


def _along(f: Any, x: np.ndarray, u: np.ndarray) -> _Along:
    """``phi(t) = L(x + t u)``, the objective along one direction."""
    return _Along(f, x, u)


def _miss_factor(rows: int) -> float:
    """``miss_norm · s / max B`` for ``rows`` directions (the module docstring)."""
    return 2 * DENSITY / MISS_PROBABILITY ** (1.0 / max(1, rows))


def _uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform on ``[-√3, √3]``: unit variance."""
    w = rng.random(shape)
    w -= 0.5
    w *= 2 * math.sqrt(3)
    return w


@dataclass(frozen=True)
class _Projected:
    """One side projected on a stack of directions ``U`` (one per row): per direction, ``<a, u>``
    and the parts of its budget (``Σ|u|·|a|``, ``Σ|u|·r + atol·Σ|u|``, ``Σ|u|·(|a| + T)``)."""

    claimed: np.ndarray
    size: np.ndarray
    slack: np.ndarray
    magnitude: np.ndarray


def _project(side: Side, u: np.ndarray, tol: Tolerance, au: np.ndarray | None = None
             ) -> _Projected:
    au = np.abs(u) if au is None else au
    claimed, size = np.einsum("kn,n->k", u, side.a), np.einsum("kn,n->k", au, side.size)
    atol = tol.atol * au.sum(axis=1) if tol.atol else 0.0
    return _Projected(claimed, size, np.einsum("kn,n->k", au, side.rounding) + atol,
                      np.einsum("kn,n->k", au, side.magnitude))


def _allowed(error: np.ndarray, parts: Sequence[_Projected], measured: np.ndarray,
             tol: Tolerance, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per direction, the budget from its inputs' parts, and the rounding band."""
    size = sum(p.size for p in parts)
    allowed = (error + sum(p.slack for p in parts)
               + (tol.rtol or 0.0) * np.maximum(size, np.abs(measured)))
    return allowed, math.sqrt(eps) * (sum(p.magnitude for p in parts) + np.abs(measured))


def _values(rows: Sequence[numeric.Estimate]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([float(e.value) for e in rows]), np.array([float(e.error) for e in rows]))


def _evaluate(f: Any, x: np.ndarray, u: np.ndarray, method: str, noise: float,
              terms: np.ndarray | None) -> list[numeric.Estimate]:
    """``dL/du`` along each row of ``u`` (flat; reshaped to ``x``'s shape)."""
    rows = [row.reshape(x.shape) for row in u]
    if method == "complex" and terms is not None:
        batched = _complex_batch(f, x, rows, [float(t) for t in terms])
        if batched is not None:
            return batched
    return [numeric.directional(_along(f, x, row), method=method, noise=noise,
                                terms=None if terms is None else float(terms[k]))
            for k, row in enumerate(rows)]


# The complex points of one batch of directions held at once (2 MB at 256x64 with 8 directions;
# at a million elements the directions are evaluated one at a time, each point made and freed).
_BATCH_BYTES = 8 << 20


def _complex_batch(f: Any, x: np.ndarray, rows: Sequence[np.ndarray],
                   terms: Sequence[float]) -> list[numeric.Estimate] | None:
    """Each direction's one complex-step evaluation (:func:`gradcheck.numeric.directional` with
    its terms), all in one batch, where the layer evaluates batches itself (one message to a
    worker instead of one per direction) and the points fit :data:`_BATCH_BYTES`; else None.
    The estimates are :func:`gradcheck.numeric.directional`'s own, fed the batch's values."""
    if not getattr(f, "batched", False) or len(rows) * x.size * 16 > _BATCH_BYTES:
        return None
    steps = [float(numeric.complex_step_size(0.0, t)) for t in terms]
    values = f.points(_along(f, x, row).point(1j * h) for row, h in zip(rows, steps, strict=True))
    return [numeric.directional(_Known(_along(f, x, row), 1j * h, value), method="complex",
                                noise=0.0, terms=t)
            for row, h, t, value in zip(rows, steps, terms, values, strict=True)]


class _Known:
    """``phi`` with its value at one ``t`` already evaluated (in a batch)."""

    def __init__(self, phi: _Along, t: complex, value: Any) -> None:
        self.phi, self.t, self.value = phi, t, value

    def __call__(self, t: Any) -> Any:
        return self.value if t == self.t else self.phi(t)


# --- one input's own directions ----------------------------------------------------------------


def _directions(rng: np.random.Generator, n: int, s: float) -> np.ndarray:
    u = _uniform(rng, (DIRECTIONS, n))
    u *= s
    return u


def _confirm(num: Numeric, u: np.ndarray, measured: float, eps: float) -> float | None:
    """The change of ``dL/du`` in extended precision (:func:`gradcheck.tolerance.
    confirm_dtypes`), or ``None`` when it cannot be made."""
    if num.method != "complex" or num.witness is None:
        return None
    for dtype in confirm_dtypes(eps):
        real = np.longdouble if dtype == np.clongdouble else np.float64
        try:
            wide = numeric.directional(
                _along(num.witness, num.x.astype(real), u.astype(real)), method="complex")
        except Exception:
            continue
        return abs(measured - float(wide.value))
    return None


def _across_zero(x: np.ndarray, u: np.ndarray, a: np.ndarray, step: float, excess: float
                 ) -> bool:
    """Whether the elements a real step of ``step`` along ``u`` moves across 0 (``|x_k| <
    step·|u_k|``: where a log, a reciprocal, a pole or a clamp of the smallest float sits) could
    carry the discrepancy's ``excess`` over budget: the direction then says nothing about the
    others (inputs spanning many decades, an element of 1e-300 beside ones of 1)."""
    over = np.abs(x.reshape(-1)) < step * np.abs(u.reshape(-1))
    return bool(over.any()) and float(np.sum(np.abs(a[over] * u.reshape(-1)[over]))) >= excess


# A direction is measured again on steps below its nearest crossing of 0 only down to this
# fraction of the natural scale (an element of 1e-300 beside ones of 1 leaves no such step).
_SHORTEST = 2.0**-20


def _short(num: Numeric, u: np.ndarray, step: float) -> tuple[float, float, int] | None:
    """``dL/du`` measured again on steps that move no element across 0 (a quarter of the
    nearest crossing, for steps up to the natural scale 1): its value, bound and evaluations; or
    ``None`` where that crossing is closer than :data:`_SHORTEST` (a jump or kink at 0 then
    lies within any usable step)."""
    x, w = num.x.reshape(-1), u.reshape(-1)
    over = np.abs(x) < max(step, 1.0) * np.abs(w)
    nearest = float(np.min(np.abs(x[over]) / np.abs(w[over]), initial=np.inf))
    scale = nearest / 4
    if not _SHORTEST <= scale < 1.0:
        return None
    est = numeric.directional(_along(num.f, num.x, u * scale), method=num.method,
                              noise=float(np.max(num.noise, initial=0.0)))
    return float(est.value) / scale, float(est.error) / scale, int(est.nfev)


def _measure(name: str, num: Numeric, side: Side, tol: Tolerance, u: np.ndarray,
             p: _Projected, rows: list[numeric.Estimate], s: float,
             project: Callable[[Sequence[np.ndarray]], np.ndarray]) -> Directions:
    """The evidence of one input's own directions: directions over budget are confirmed in
    extended precision and, where the forward has kinks, tested for crossing one."""
    nfev = sum(est.nfev for est in rows)
    measured, error = _values(rows)
    allowed, band = _allowed(error, [p], measured, tol, side.eps)
    allowed = allowed.copy()
    certified = np.zeros(len(rows), dtype=bool)
    crossing = np.zeros(len(rows), dtype=bool)
    can_confirm = num.method == "complex" and num.witness is not None
    for k in range(len(rows)):
        diff = abs(float(p.claimed[k]) - float(measured[k]))
        direction = u[k].reshape(num.x.shape)
        if diff > allowed[k]:
            change = _confirm(num, direction, float(measured[k]), side.eps)
            nfev += 2 if change is not None else 0
            can_confirm = can_confirm and change is not None
            if change is not None:
                allowed[k] += CONFIRM_FACTOR * change
                certified[k] = side.witnessed
        if diff > allowed[k] and num.method != "complex" and _across_zero(
                num.x, direction, side.a, float(rows[k].step), diff - float(allowed[k])):
            again = _short(num, direction, float(rows[k].step))
            if again is None:
                crossing[k] = True
                continue
            # measured again on steps that move no element across 0: it replaces the first
            value, err, used = again
            nfev += used
            measured[k] = value
            allowed[k] = err + p.slack[k] + (tol.rtol or 0.0) * max(p.size[k], abs(value))
            band[k] = math.sqrt(side.eps) * (p.magnitude[k] + abs(value))
            diff = abs(float(p.claimed[k]) - value)
        if diff > allowed[k] and (num.piecewise or num.method != "complex"):
            other = u[(k + 1) % len(rows)].reshape(num.x.shape)
            linear, used = linear_along(num, direction, other, float(allowed[k]))
            nfev += used
            crossing[k] = not linear
    evidence = DirectionEvidence(
        claimed=p.claimed, measured=measured, allowed=allowed, band=band, certified=certified,
        certifiable=can_confirm and side.witnessed, crossing=crossing, spread=s,
        miss_factor=_miss_factor(len(rows)), rtol=tol.rtol or 0.0, noise_like=side.noise_like,
        project=project, label=name, comparable=num.comparable)
    return Directions(evidence, ladder.judge_directions(evidence), nfev)


def _projector(rng: np.random.Generator, n: int, scales: Sequence[tuple[slice, float]],
               part: slice) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """``<e, u>`` of error rows ``e`` (flat, ``part`` of the directions) for the directions
    ``rng`` is about to draw, drawn again one at a time (as :func:`_uniform` draws them) when an
    injected error needs them: nothing of size ``DIRECTIONS x n`` is kept."""
    state = copy.deepcopy(rng)

    def project(errors: Sequence[np.ndarray]) -> np.ndarray:
        again = copy.deepcopy(state)
        out = np.zeros((len(errors), DIRECTIONS))
        for k in range(DIRECTIONS):
            w = again.random(n)
            w -= 0.5
            w *= 2 * math.sqrt(3)
            for sl, s in scales:
                w[sl] *= s
            for i, e in enumerate(errors):
                out[i, k] = float(np.dot(w[part], e))
        return out

    return project


def own(name: str, num: Numeric, side: Side, tol: Tolerance,
        rng: np.random.Generator) -> Directions:
    """Input ``name``'s own directions, measured against its analytic ``side``."""
    s = spread(num.x)
    whole = slice(0, num.x.size)
    project = _projector(rng, num.x.size, [(whole, s)], whole)
    u = _directions(rng, num.x.size, s)
    au = np.abs(u)
    p = _project(side, u, tol, au)
    terms = p.magnitude if num.method == "complex" else None
    rows = _evaluate(num.f, num.x, u, num.method, float(np.max(num.noise, initial=0.0)), terms)
    return _measure(name, num, side, tol, u, p, rows, s, project)


# --- directions shared by the inputs of a check -----------------------------------------------


def shared(f: Any, v: np.ndarray, parts: Mapping[str, tuple[slice, float]],
           sides: Mapping[str, Side], tol: Tolerance, rng: np.random.Generator
           ) -> tuple[dict[str, Directions], int]:
    """Complex-step directions of the joint objective ``f`` at ``v`` (the inputs concatenated;
    ``parts`` gives each input's slice and spread). Returns the inputs the shared directions
    vouch for, and the evaluations made."""
    scales = list(parts.values())
    projectors = {name: _projector(rng, v.size, scales, sl) for name, (sl, _) in parts.items()}
    projected, rows = _streamed(f, v, parts, sides, tol, rng)
    nfev = sum(est.nfev for est in rows)
    over, table = _joint_table(rows, projected, sides, tol)
    if over:  # a shared direction over budget sends every input back to its own directions
        return {}, nfev
    allowed, own_budget = table
    measured, _ = _values(rows)
    claimed = _total(p.claimed for p in projected.values())
    eps = max(side.eps for side in sides.values())
    _, band = _allowed(np.zeros(DIRECTIONS), list(projected.values()), measured, tol, eps)
    widest = float(np.max(allowed))
    names = []
    for name, (_, s) in parts.items():
        a = sides[name].a
        loss_ok = widest <= SHARE_LOSS * float(np.max(own_budget[name]))
        miss = widest * _miss_factor(DIRECTIONS) / s
        if loss_ok or miss <= math.sqrt(sides[name].eps) * scaled_norm(a):
            names.append(name)  # else its own directions would see much smaller errors
    result: dict[str, Directions] = {}
    for name in names:
        evidence = DirectionEvidence(
            claimed=claimed, measured=measured, allowed=allowed, band=band,
            certified=np.zeros(DIRECTIONS, dtype=bool),
            certifiable=all(side.witnessed for side in sides.values()),
            crossing=np.zeros(DIRECTIONS, dtype=bool), spread=parts[name][1],
            miss_factor=_miss_factor(DIRECTIONS), rtol=tol.rtol or 0.0, noise_like=False,
            project=projectors[name], own=projected[name].claimed,
            shared=tuple(o for o in names if o != name), label=name)
        # the evaluations are counted once, on the first input they vouch for
        result[name] = Directions(evidence, ladder.judge_directions(evidence),
                                  nfev if not result else 0)
    return result, nfev


def _streamed(f: Any, v: np.ndarray, parts: Mapping[str, tuple[slice, float]],
              sides: Mapping[str, Side], tol: Tolerance, rng: np.random.Generator
              ) -> tuple[dict[str, _Projected], list[numeric.Estimate]]:
    """The shared directions drawn, projected and evaluated one at a time, in two buffers of
    ``v``'s size (the stack of all of them and its absolute value were 16 times ``v``'s
    memory, and each pass over them a trip to main memory); the same numbers as drawing the
    stack at once (:func:`_uniform` and :func:`_projector` draw row by row too)."""
    u, au = np.empty(v.size), np.empty(v.size)
    found: dict[str, list[_Projected]] = {name: [] for name in parts}
    rows = []
    batch = getattr(f, "batched", False) and DIRECTIONS * v.size * 16 <= _BATCH_BYTES
    kept: list[tuple[np.ndarray, float]] = []  # the directions of one batch, and their terms
    for _ in range(DIRECTIONS):
        if batch:
            u, au = np.empty(v.size), np.empty(v.size)
        rng.random(out=u)
        u -= 0.5
        u *= 2 * math.sqrt(3)
        for sl, s in parts.values():
            u[sl] *= s
        np.abs(u, out=au)
        for name, (sl, _) in parts.items():
            found[name].append(_project(sides[name], u[None, sl], tol, au[None, sl]))
        magnitude = _total(p[-1].magnitude for p in found.values())
        if batch:
            kept.append((u, float(magnitude[0])))
        else:
            rows.append(numeric.directional(_along(f, v, u), method="complex", noise=0.0,
                                            terms=float(magnitude[0])))
    if kept:
        rows = _complex_batch(f, v, [k[0] for k in kept], [k[1] for k in kept]) or []
    return {name: _stacked(ps) for name, ps in found.items()}, rows


def _stacked(rows: Sequence[_Projected]) -> _Projected:
    """One :class:`_Projected` of the directions ``rows`` projected one at a time."""
    return _Projected(*(np.concatenate([getattr(p, k) for p in rows])
                        for k in ("claimed", "size", "slack", "magnitude")))


def _total(arrays: Iterable[np.ndarray]) -> np.ndarray:
    return np.sum(list(arrays), axis=0)


def _joint_table(rows: list[numeric.Estimate], projected: Mapping[str, _Projected],
                 sides: Mapping[str, Side], tol: Tolerance) -> tuple[bool, Any]:
    """Whether a direction is over its shared budget; the budgets; and each input's own
    budgets (had its part of ``u`` been a direction of its own)."""
    measured, error = _values(rows)
    step = np.array([float(e.step) for e in rows])
    own_budget = {}
    for name, p in projected.items():
        alone = numeric.rebound(
            numeric.Estimate(p.claimed, np.zeros_like(p.claimed), 0, "complex", step),
            p.magnitude)
        own_budget[name] = _allowed(alone.error, [p], p.claimed, tol, sides[name].eps)[0]
    eps = max(s.eps for s in sides.values())
    allowed, _ = _allowed(error, list(projected.values()), measured, tol, eps)
    claimed = sum(p.claimed for p in projected.values())
    over = bool(np.any(np.abs(claimed - measured) > allowed))
    return over, (allowed, own_budget)
