"""Directional comparisons: ``<a, u>`` against the numerical ``dL/du``, per input or shared.

Each direction follows the steps of :mod:`gradcheck.compare` with the budget projected on
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

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gradcheck import numeric
from gradcheck._kinks import smooth_along
from gradcheck._objective import Numeric
from gradcheck._side import Side, dot
from gradcheck.tolerance import FLOOR_ULPS, Tolerance

DIRECTIONS = 8
MISS_PROBABILITY = 1e-6
DENSITY = 1 / math.sqrt(6)  # the peak density of <e, w> / |e| (Ball, 1986)
CONFIRM_FACTOR = 4.0  # the change in extended precision widens the bound by this much
SHARE_LOSS = 4.0  # a shared miss bound may be this much above the input's own
ZERO_MARGIN = 4.0  # a gradient whose every projection is within this many budgets may be zero



@dataclass(frozen=True)
class Directions:
    """The directional comparisons of one gradient."""

    status: str  # pass, zero, kink, fail or inconclusive
    nfev: int
    miss_norm: float
    message: str
    worst: tuple[float, float, float]  # analytic <a, u>, numeric dL/du, budget: largest ratio
    detectable: float
    shared: tuple[str, ...] = ()  # the other inputs the directions moved along with this one

    @property
    def evidence(self) -> bool:
        """Whether any direction was compared (none is when every one crossed a kink)."""
        return math.isfinite(self.miss_norm)


def spread(x: np.ndarray) -> float:
    """The scale of the directions for ``x``: its spread, so the engines' steps are natural."""
    return float(np.std(x)) or float(np.sqrt(np.mean(np.square(x)))) or 1.0


def _along(f: Any, x: np.ndarray, u: np.ndarray) -> Any:
    """``phi(t) = L(x + t u)``, the objective along one direction."""
    def phi(t: Any) -> Any:
        if isinstance(t, complex) and t.real == 0 and x.dtype == np.float64:
            point = np.empty(x.shape, np.complex128)  # x + i·h·u without temporaries
            point.real = x
            np.multiply(u, t.imag, out=point.imag)
            return f(point)
        return f(x + t * u)

    return phi


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
    if side.lean:  # r = 16 ε |a| and no terms: both projections follow from Σ|u|·|a|
        return _Projected(claimed, size, FLOOR_ULPS * side.eps * size + atol, size)
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
    return [numeric.directional(_along(f, x, row.reshape(x.shape)), method=method, noise=noise,
                                terms=None if terms is None else float(terms[k]))
            for k, row in enumerate(u)]


def _rebound(rows: list[numeric.Estimate], terms: np.ndarray) -> list[numeric.Estimate]:
    """The complex step's bounds again with the full side's term magnitudes."""
    return [numeric.rebound(est, np.array(t)) if est.method == "complex" else est
            for est, t in zip(rows, terms, strict=True)]


# --- one input's own directions ----------------------------------------------------------------


def _directions(rng: np.random.Generator, n: int, s: float) -> np.ndarray:
    u = _uniform(rng, (DIRECTIONS, n))
    u *= s
    return u


def _clear(side: Side, p: _Projected, rows: list[numeric.Estimate], tol: Tolerance) -> bool:
    """Every direction within its (lean) budget, and the gradient clearly not rounding noise."""
    measured, error = _values(rows)
    allowed, _ = _allowed(error, [p], measured, tol, side.eps)
    if np.any(np.abs(p.claimed - measured) > allowed):
        return False
    largest = max(float(np.max(np.abs(p.claimed))), float(np.max(np.abs(measured))))
    return largest > ZERO_MARGIN * float(np.max(allowed))


def _confirm(num: Numeric, u: np.ndarray, measured: float) -> float | None:
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


def _verdict(name: str, num: Numeric, side: Side, tol: Tolerance, u: np.ndarray,
             p: _Projected, rows: list[numeric.Estimate], s: float) -> Directions:
    nfev = sum(est.nfev for est in rows)
    measured, error = _values(rows)
    allowed, band = _allowed(error, [p], measured, tol, side.eps)
    kept, failures, unsure, zero, kinked = [], [], 0, True, 0
    for k in range(len(rows)):
        claimed, budget = float(p.claimed[k]), float(allowed[k])
        diff = abs(claimed - float(measured[k]))
        direction = u[k].reshape(num.x.shape)
        certified = False
        if diff > budget:
            change = _confirm(num, direction, float(measured[k]))
            nfev += 2 if change is not None else 0
            if change is not None:
                budget += CONFIRM_FACTOR * change
                certified = side.witnessed
        if diff > budget and (num.piecewise or num.method != "complex"):
            smooth, _, _, used = smooth_along(num, direction, budget)
            nfev += used
            if not smooth:  # the direction crosses a kink: no two-sided derivative to compare
                kinked += 1
                continue
        kept.append((claimed, float(measured[k]), budget))
        zero = zero and abs(float(measured[k])) <= budget
        if diff > budget and (certified or diff > float(band[k])):
            failures.append(f"direction {k}: <d{name}, u> analytic {claimed:.9g} vs numeric "
                            f"{float(measured[k]):.9g} (budget {budget:.2g})")
        elif diff > budget:
            unsure += 1
    zero = zero and side.noise_like and bool(kept)
    status = ("fail" if failures else "inconclusive" if unsure else "kink" if kinked
              else "zero" if zero else "pass")
    message = "; ".join(failures[:2])
    if kinked:
        message = "; ".join(filter(None, [message, f"{kinked} of {DIRECTIONS} directions cross "
                                          "a kink and carry no evidence"]))
    return _summary(status, nfev, kept, s, message)


def _summary(status: str, nfev: int, kept: list[tuple[float, float, float]], s: float,
             message: str = "", mine: Sequence[float] | None = None) -> Directions:
    """``kept``: (analytic, numeric, budget) per direction; ``mine``: this input's own part of
    the analytic side, when the directions were shared (what its relative errors move)."""
    nan = float("nan")
    worst = max(kept, key=lambda r: abs(r[0] - r[1]) / r[2] if r[2] > 0 else math.inf,
                default=(nan, nan, nan))
    miss = max((r[2] for r in kept), default=math.inf) * _miss_factor(len(kept)) / s
    own = [r[0] for r in kept] if mine is None else list(mine)
    detect = min((r[2] / abs(c) for r, c in zip(kept, own, strict=True) if c), default=math.inf)
    return Directions(status, nfev, miss, message, worst, detect)


def own(name: str, num: Numeric, side: Side, full: Callable[[], Side], tol: Tolerance,
        rng: np.random.Generator) -> Directions:
    """Input ``name``'s own directions, judged with ``side`` when it is lean and clear, else with
    ``full()``."""
    s = spread(num.x)
    u = _directions(rng, num.x.size, s)
    au = np.abs(u)
    p = _project(side, u, tol, au)
    terms = p.magnitude if num.method == "complex" else None
    rows = _evaluate(num.f, num.x, u, num.method, float(np.max(num.noise, initial=0.0)), terms)
    if side.lean and not _clear(side, p, rows, tol):
        side = full()
        p = _project(side, u, tol, au)
        rows = _rebound(rows, p.magnitude)
    return _verdict(name, num, side, tol, u, p, rows, s)


# --- directions shared by the inputs of a check -----------------------------------------------


def shared(f: Any, v: np.ndarray, parts: Mapping[str, tuple[slice, float]],
           sides: Mapping[str, Side], full: Callable[[str], Side], tol: Tolerance,
           rng: np.random.Generator) -> tuple[dict[str, Directions], int]:
    """Complex-step directions of the joint objective ``f`` at ``v`` (the inputs concatenated;
    ``parts`` gives each input's slice and spread). Returns the inputs the shared directions
    vouch for, and the evaluations made."""
    u = _uniform(rng, (DIRECTIONS, v.size))
    for sl, s in parts.values():
        u[:, sl] *= s
    au = np.abs(u)
    projected = _joint_projections(u, au, parts, sides, tol)
    rows = _evaluate(f, v, u, "complex", 0.0, _total(p.magnitude for p in projected.values()))
    nfev = sum(est.nfev for est in rows)
    over, table = _joint_table(rows, projected, sides, tol)
    if over:
        sides = {name: full(name) for name in parts}
        if any(s.noise_like for s in sides.values()):
            return {}, nfev
        projected = _joint_projections(u, au, parts, sides, tol)
        rows = _rebound(rows, _total(p.magnitude for p in projected.values()))
        over, table = _joint_table(rows, projected, sides, tol)
        if over:
            return {}, nfev
    allowed, own_budget = table
    measured, _ = _values(rows)
    claimed = _total(p.claimed for p in projected.values())
    widest = float(np.max(allowed))
    vouched = {}
    for name, (_, s) in parts.items():
        a = sides[name].a
        loss_ok = widest <= SHARE_LOSS * float(np.max(own_budget[name]))
        miss = widest * _miss_factor(DIRECTIONS) / s
        if not (loss_ok or miss <= math.sqrt(sides[name].eps) * math.sqrt(dot(a, a))):
            continue  # its own directions would see errors much smaller than the shared ones
        kept = list(zip(claimed.tolist(), measured.tolist(), allowed.tolist(), strict=True))
        vouched[name] = _summary("pass", 0, kept, s, mine=projected[name].claimed.tolist())
    result = {name: replace(d, shared=tuple(o for o in vouched if o != name))
              for name, d in vouched.items()}
    if result:  # the evaluations are counted once, on the first input they vouch for
        first = next(iter(result))
        result[first] = replace(result[first], nfev=nfev)
    return result, nfev


def _total(arrays: Iterable[np.ndarray]) -> np.ndarray:
    return np.sum(list(arrays), axis=0)


def _joint_projections(u: np.ndarray, au: np.ndarray, parts: Mapping[str, tuple[slice, float]],
                       sides: Mapping[str, Side], tol: Tolerance) -> dict[str, _Projected]:
    return {name: _project(sides[name], u[:, sl], tol, au[:, sl])
            for name, (sl, _) in parts.items()}


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
