"""What a check returns: one frozen record per gradient, one per check; no rendering.

The statuses and verdicts are :mod:`gradcheck.kinds`' (``STATUSES`` and ``PASSING`` are
re-exported here). This module sits below every rendering: :mod:`gradcheck.report` imports it,
never the reverse. ``print(report)`` and a notebook's HTML still work because the renderings are
supplied from above through :mod:`gradcheck._renderings` (its docstring says why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gradcheck import _renderings, kinds
from gradcheck.kinds import PASSING, STATUSES

if TYPE_CHECKING:
    import numpy as np

    from gradcheck.numeric import Estimate
    from gradcheck.tolerance import Tolerance

__all__ = ["MISS_PROBABILITY", "PASSING", "STATUSES", "CheckReport", "Diagnosis", "Evidence",
           "Finding", "GradientResult", "KinkElement", "Sweep", "WorstElement"]

# What a result's ``miss_norm`` means: an error of the analytic gradient whose 2-norm is at least
# ``miss_norm`` escapes every random direction of the check with probability at most this (the
# bound is derived in gradcheck._directions; tests/test_results.py checks the engine's value).
MISS_PROBABILITY = 1e-6


@dataclass(frozen=True)
class WorstElement:
    """One row of a worst-elements table."""

    index: tuple[int, ...]
    analytic: float
    numeric: float
    abs_error: float
    budget: float


@dataclass(frozen=True)
class KinkElement:
    """An element where the one-sided derivatives differ: the layer has a kink there."""

    index: tuple[int, ...]
    left: float
    right: float
    analytic: float
    valid: bool  # the analytic value is an admissible choice (in the closed interval)


@dataclass(frozen=True, eq=False)
class Evidence:
    """The arrays behind one gradient's verdict, kept for diagnosis and pictures.

    Not part of the record's equality, repr or JSON: it holds references to arrays the check
    made anyway (the analytic gradient, the float64 reference inputs and ``dout``, the measured
    rounding of the analytic side), plus the numerical estimates at the compared elements and
    the objective ``L`` for a step sweep.
    ``estimate`` and ``indices`` are ``None`` in directional mode (no element was estimated).
    """

    name: str
    analytic: np.ndarray
    estimate: Estimate | None
    indices: np.ndarray | None
    inputs: Mapping[str, np.ndarray]
    dout: np.ndarray
    objective: Callable[[np.ndarray], Any] | None
    tolerance: Tolerance
    rounding: np.ndarray | None = None  # the analytic side's rounding r_k, flat, every element


@dataclass(frozen=True)
class Finding:
    """One cause a failing gradient's error is consistent with, and how much of it it explains.

    ``explained`` is the fraction of ``||e||²`` (``e = analytic - numeric`` over the compared
    elements) that the cause's prediction accounts for: ``1 - ||e - e_pred||² / ||e||²``.
    """

    cause: str
    text: str
    explained: float


@dataclass(frozen=True)
class Sweep:
    """The discrepancy ``analytic - D(h)`` at one element over a range of central-difference
    steps ``h``; ``verdict`` is ``"bug"`` (constant), ``"numerical"`` (it shrinks) or
    ``"unclear"``."""

    index: tuple[int, ...]
    steps: tuple[float, ...]
    discrepancies: tuple[float, ...]
    verdict: str
    text: str


@dataclass(frozen=True)
class Diagnosis:
    """What is wrong with a failing gradient, in words, with its evidence.

    ``findings`` are ordered best first (the first is *the* diagnosis); empty when no cause
    explains enough of the error. ``sweep`` says whether the worst element's discrepancy is a
    bug or numerical.
    """

    findings: tuple[Finding, ...] = ()
    sweep: Sweep | None = None
    note: str = ""

    @property
    def cause(self) -> str:
        """The best finding's cause, or ``""``."""
        return self.findings[0].cause if self.findings else ""


@dataclass(frozen=True)
class GradientResult:
    """The measured comparison for one gradient, and its verdict.

    ``status`` is one of :data:`~gradcheck.kinds.STATUSES`. ``detectable`` is the smallest
    relative error of the analytic gradient this check could have seen (the budget over the
    gradient's size where the check carries evidence); ``kinks`` lists the non-differentiable
    elements found. ``miss_norm`` (sampled and directional modes): an error of at least this
    2-norm escapes every random direction with probability at most :data:`MISS_PROBABILITY`.
    BatchNorm with N = 2 and eps = 0 is honestly ``zero`` for ``dx``: its output does not depend
    on ``x``.
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
    detectable: float = float("nan")
    kinks: tuple[KinkElement, ...] = ()
    diagnosis: Diagnosis | None = None
    evidence: Evidence | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        """``pass``, ``zero`` (with a warning) and a valid ``kink`` pass."""
        return self.status in PASSING


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
    def verdict(self) -> str:
        """``"pass"``, ``"fail"`` (a gradient failed or a problem was found) or ``"inconclusive"``
        (nothing failed, but some gradient could not be certified): one of
        :data:`~gradcheck.kinds.VERDICTS`."""
        if self.passed:
            return kinds.PASS
        if self.problems or any(r.status not in PASSING | {kinds.INCONCLUSIVE}
                                for r in self.results):
            return kinds.FAIL
        return kinds.INCONCLUSIVE

    @property
    def nfev(self) -> int:
        return sum(r.nfev for r in self.results)

    def __str__(self) -> str:
        """The terminal rendering (100 columns), as ``print(report)`` shows it.

        The rendering is :mod:`gradcheck.report`'s, supplied through
        :mod:`gradcheck._renderings`; without one, a line saying so.
        """
        render = _renderings.rendering(kinds.TEXT)
        if render is None:
            return (f"{self.layer}: {self.verdict} (no text rendering supplied: "
                    "gradcheck._renderings.supply(kinds.TEXT, ...))")
        return render(self)

    def _repr_html_(self) -> str | None:
        """The HTML rendering without the page around it, for Jupyter; ``None`` (Jupyter then
        shows the text) when no HTML rendering is supplied."""
        render = _renderings.rendering(kinds.HTML)
        return None if render is None else render(self)
