"""What a check returns: one frozen record per gradient, one per check; no rendering.

The statuses and verdicts are :mod:`gradcheck.kinds`' (``STATUSES`` and ``PASSING`` are
re-exported here). This module sits below every rendering: :mod:`gradcheck.report` imports it,
never the reverse. ``print(report)`` and a notebook's HTML still work because the renderings are
supplied from above through :mod:`gradcheck._renderings` (its docstring says why).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gradcheck import _renderings, kinds
from gradcheck.kinds import PASSING, STATUSES

if TYPE_CHECKING:
    import numpy as np

    from gradcheck.numeric import Estimate
    from gradcheck.tolerance import Tolerance

__all__ = ["MAX_EXPLAINED", "MISS_PROBABILITY", "PASSING", "STATUSES", "CheckReport", "Coverage",
           "Diagnosis", "Evidence", "ExplainedElement", "Finding", "GradientResult", "KinkElement",
           "Sweep", "WorstElement"]

# What a result's ``miss_norm`` means: an error of the analytic gradient whose 2-norm is at least
# ``miss_norm`` escapes every random direction of the check with probability at most this (the
# bound is derived in gradcheck._engine.directions; tests/test_results.py checks the engine's
# value).
MISS_PROBABILITY = 1e-6
# The most elements a result's ``explained`` lists (worst first by error over budget).
MAX_EXPLAINED = 256


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


@dataclass(frozen=True)
class ExplainedElement:
    """A compared element over its budget (or on a kink or tie) that did not end as a plain
    failure, and the explanation it ended with.

    ``explanation`` is the ladder's name for its outcome (``gradcheck._engine.ladder.OUTCOMES``):
    ``kink``, ``tie`` or ``remeasured`` (explained by measured evidence: the element passes);
    ``rounding``, ``unanalysed`` or ``unverified tie`` (no verdict: inconclusive);
    ``invalid kink`` or ``invalid tie`` (the analytic value is not an admissible choice there:
    it fails).
    """

    index: tuple[int, ...]
    explanation: str
    analytic: float
    numeric: float
    budget: float


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """What one gradient's check covered, and what it could have missed.

    ``elements`` of the input's ``size`` were compared one by one (every one in ``full`` mode,
    a sample in ``sampled``, none in ``directional``), and ``directions`` random directions
    (sampled and directional modes; else 0). ``miss_norm`` (where there are directions): an
    error of at least this 2-norm escapes every direction with probability at most
    :data:`MISS_PROBABILITY`. ``detectable``: an error of the analytic gradient whose largest
    element is at least ``detectable`` times the gradient's largest fails. ``guarantee`` says
    how that holds (:data:`~gradcheck.kinds.GUARANTEES`): ``"certain"`` when the elements
    alone carry it (every element compared: full mode, or a sample that reached every one),
    ``"probable"`` when directions carry it (with probability at least
    ``1 - MISS_PROBABILITY``), ``""`` when nothing does (``detectable`` is then NaN, or came
    from part of the elements alone). ``step`` is the median step of the numerical method
    over the compared elements (NaN when none was estimated). ``mode`` is ``"-"`` when nothing
    was compared (a gradient of the wrong shape, or with NaN or inf).

    Raises
    ------
    ValueError
        ``guarantee`` is not one of :data:`~gradcheck.kinds.GUARANTEES`, or claims a guarantee
        for a ``detectable`` that is not finite.
    """

    mode: str
    elements: int
    size: int
    directions: int = 0
    miss_norm: float = float("nan")
    detectable: float = float("nan")
    guarantee: str = kinds.NO_GUARANTEE
    step: float = float("nan")

    def __post_init__(self) -> None:
        if self.guarantee not in kinds.GUARANTEES:
            raise ValueError(f"`guarantee` must be one of {kinds.GUARANTEES}, "
                             f"got {self.guarantee!r}")
        if self.guarantee and not math.isfinite(self.detectable):
            raise ValueError(f"a {self.guarantee!r} guarantee needs a finite `detectable`, "
                             f"got {self.detectable!r}")


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

    ``text`` is the headline a learner can act on (the gradient, the term, the measured factor,
    the likely line); ``evidence`` says what was measured to support it (a fit, a count).
    ``explained`` is the fraction of ``||e||²`` (``e = analytic - numeric`` over the compared
    elements) that the cause's prediction accounts for: ``1 - ||e - e_pred||² / ||e||²``.
    """

    cause: str
    text: str
    explained: float
    evidence: str = ""


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


@dataclass(frozen=True, kw_only=True)
class GradientResult:
    """The measured comparison for one gradient, and its verdict.

    ``status`` is one of :data:`~gradcheck.kinds.STATUSES`. ``coverage`` says what the check
    covered and could have missed (its mode, the elements and directions compared, ``detectable``
    and how it is guaranteed); its fields are also readable here (``result.mode``,
    ``result.detectable``, ...). ``kinks`` lists the non-differentiable elements found;
    ``explained`` every compared element over its budget (or on a kink or tie) that did not end
    as a plain failure, with its explanation: at most :data:`MAX_EXPLAINED`, worst first by
    error over budget. BatchNorm with N = 2 and eps = 0 is honestly ``zero`` for ``dx``: its
    output does not depend on ``x``. Fields are keyword-only.
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
    coverage: Coverage
    rtol: float
    atol: float
    message: str = ""
    reason: str = ""
    worst: tuple[WorstElement, ...] = ()
    seconds: float = 0.0
    kinks: tuple[KinkElement, ...] = ()
    explained: tuple[ExplainedElement, ...] = ()
    diagnosis: Diagnosis | None = None
    evidence: Evidence | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        """``pass``, ``zero`` (with a warning) and a valid ``kink`` pass."""
        return self.status in PASSING

    @property
    def mode(self) -> str:
        """``coverage.mode``: ``full``, ``sampled``, ``directional``, or ``-``."""
        return self.coverage.mode

    @property
    def elements(self) -> int:
        """``coverage.elements``: the elements compared one by one."""
        return self.coverage.elements

    @property
    def size(self) -> int:
        """``coverage.size``: the elements of the input."""
        return self.coverage.size

    @property
    def directions(self) -> int:
        """``coverage.directions``: the random directions compared."""
        return self.coverage.directions

    @property
    def miss_norm(self) -> float:
        """``coverage.miss_norm``: the 2-norm of an error the directions catch but for a
        chance of at most :data:`MISS_PROBABILITY`."""
        return self.coverage.miss_norm

    @property
    def detectable(self) -> float:
        """``coverage.detectable``: the smallest relative error the check would have flagged."""
        return self.coverage.detectable

    @property
    def step(self) -> float:
        """``coverage.step``: the median step of the numerical method."""
        return self.coverage.step


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
