"""The error of one gradient at its compared elements, and how much of it a prediction explains.

Every cause model predicts the analytic gradient a mistake would produce (or, equivalently, the
error ``e = analytic - numeric`` it would leave); the share of ``||e||²`` it accounts for,
``1 - ||e - e_pred||² / ||e||²``, is its evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gradcheck.results import Evidence, Finding
from gradcheck.tolerance import budget as element_budget

__all__ = ["Candidate", "Case", "align", "candidate", "explained", "fit", "make_case", "predicts",
           "shares"]


@dataclass(frozen=True)
class Case:
    """The compared elements of one gradient: flat indices, analytic, numeric, e, the shape."""

    name: str
    shape: tuple[int, ...]
    idx: np.ndarray
    a: np.ndarray
    n: np.ndarray
    full: bool  # every element was compared
    budget: np.ndarray | None = None  # each compared element's allowance (the check's budget)

    @property
    def e(self) -> np.ndarray:
        return self.a - self.n

    @property
    def grad(self) -> str:
        """How the learner calls this gradient: ``dx``, ``dW``."""
        return f"d{self.name}"

    def take(self, arr: np.ndarray) -> np.ndarray:
        full = arr if arr.shape == self.shape else np.broadcast_to(arr, self.shape)
        return full.reshape(-1)[self.idx]

    @property
    def wrong(self) -> np.ndarray:
        """The compared elements that are wrong: over their budget (without budgets, those whose
        error is above a thousandth of the largest: never the ones at rounding level)."""
        err = np.abs(self.e)
        if self.budget is not None:
            over = err > self.budget
            if over.any():
                return over
        top = float(np.max(err, initial=0.0))
        return err > 1e-3 * top if top > 0 else np.zeros(err.shape, dtype=bool)

    def grid(self, arr: np.ndarray) -> np.ndarray | None:
        """A compared-elements array back in the gradient's shape (full mode only)."""
        return arr.reshape(self.shape) if self.full else None


@dataclass(frozen=True)
class Candidate:
    """A finding with the error its cause predicts (``None``: a pattern, not a prediction)."""

    finding: Finding
    error: np.ndarray | None = None


def make_case(ev: Evidence) -> Case | None:
    if ev.estimate is None or ev.indices is None:
        return None
    a = np.asarray(ev.analytic, dtype=np.float64).reshape(-1)[ev.indices]
    n = np.asarray(ev.estimate.value, dtype=np.float64).reshape(-1)
    full = ev.indices.size == int(np.prod(ev.analytic.shape))
    r = (np.zeros_like(n) if ev.rounding is None
         else np.asarray(ev.rounding, dtype=np.float64).reshape(-1)[ev.indices])
    bud = element_budget(a, n, np.asarray(ev.estimate.error, dtype=np.float64).reshape(-1), r,
                         ev.tolerance)
    return Case(ev.name, tuple(ev.analytic.shape), ev.indices, a, n, full,
                bud if bud.shape == n.shape else None)


def explained(e: np.ndarray, residual: np.ndarray) -> float:
    """``1 - ||residual||² / ||e||²``, clipped below at 0."""
    scale = float(np.max(np.abs(e), initial=0.0))  # scaled: errors of 1e-200 or 1e200 are errors
    if scale == 0.0 or not np.isfinite(scale):
        return 0.0
    e, residual = e / scale, residual / scale
    total = float(np.dot(e, e))
    return max(0.0, 1.0 - float(np.dot(residual, residual)) / total) if total > 0 else 0.0


def predicts(case: Case, a_pred: np.ndarray) -> float:
    """How much of ``e`` a predicted analytic gradient (at the compared elements) explains."""
    return explained(case.e, case.a - a_pred)


def candidate(case: Case, cause: str, text: str, a_pred: np.ndarray, evidence: str = ""
              ) -> Candidate:
    """The finding of a cause that predicts the analytic gradient ``a_pred``."""
    found = Finding(cause, text, predicts(case, a_pred), evidence)
    return Candidate(found, a_pred - case.n)


def fit(e: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    """Least-squares ``c`` in ``e ≈ c q`` and the fraction it explains."""
    qq = float(np.dot(q, q))
    if qq == 0 or not np.isfinite(qq):
        return 0.0, 0.0
    c = float(np.dot(e, q)) / qq
    return c, explained(e, e - c * q)


def align(q: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``q`` broadcast to ``shape``: as is, or a 1-D ``q`` along axis 1 or the last axis."""
    if q.shape == shape:
        return q
    if q.ndim == 1 and len(shape) >= 2:
        for axis in (1, len(shape) - 1):
            if shape[axis] == q.size:
                view = [1] * len(shape)
                view[axis] = q.size
                return np.broadcast_to(q.reshape(view), shape)
    return None


def shares(e: np.ndarray, parts: Sequence[np.ndarray]) -> list[float]:
    """The fraction of ``||e||²`` on each boolean part."""
    total = float(np.dot(e, e))
    return [float(np.sum(e[p] ** 2)) / total if total else 0.0 for p in parts]
