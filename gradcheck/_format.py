"""Words and numbers every rendering shares: labels, verdicts, the diagnosis in sentences."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from gradcheck import kinds
from gradcheck.errors import InvalidArgument
from gradcheck.results import MISS_PROBABILITY, CheckReport, GradientResult

# Over all reports, for the documents (every column: markdown, --wide).
# The error and the budget are the same element's (the worst, by error over budget) and their
# ratio is the worst ratio: a row never sets the largest error beside another element's budget.
TABLE_HEADERS = ("layer", "case", "gradient", "method", "mode", "error at worst", "its budget",
                 "err/budget", "verdict", "evaluations", "time (s)")
TABLE_ALIGN = ("left",) * 5 + ("right",) * 3 + ("left", "right", "right")
VERDICT_COLUMN = TABLE_HEADERS.index("verdict")
WORST_HEADERS = ("index", "analytic", "numeric", "abs error", "budget")
WORST_ALIGN = ("left",) + ("right",) * 4
SWEEP_HEADERS = ("step h", "analytic - D(h)")


def num(value: float) -> str:
    """Scientific notation, four significant digits; NaN as ``-``."""
    return "-" if value != value else f"{value:.3e}"


def seconds(value: float) -> str:
    return f"{value:.3g}"


def label(report: CheckReport) -> str:
    return f"{report.layer} [{report.case}]" if report.case else report.layer


def verdict_word(result: GradientResult) -> str:
    return result.status if result.passed else result.status.upper()


def mode(result: GradientResult) -> str:
    if result.mode == kinds.SAMPLED:
        return f"{kinds.SAMPLED} {result.elements}/{result.size}"
    return result.mode


def needs_detail(result: GradientResult) -> bool:
    """Failures, and passes with something to say (messages are only ever warnings or why)."""
    return not result.passed or bool(result.message)


def coverage(result: GradientResult) -> str:
    head = f"sampled {result.elements} of {result.size} elements and {result.directions} random "
    if not math.isfinite(result.miss_norm):  # every direction crossed a kink, or none was made
        return (head + "directions, which carry no guarantee: an error on an element not sampled "
                "may go unseen (mode='full' compares every element)")
    return (head + f"directions: an error of 2-norm >= {num(result.miss_norm)} would be caught "
            f"with probability >= 1 - {MISS_PROBABILITY:g}")


def ratio(result: GradientResult) -> float:
    """The worst element's error in units of its budget (> 1 fails)."""
    err = abs(result.analytic_at_worst - result.numeric_at_worst)
    if result.budget != result.budget or err != err:
        return float("nan")
    return err / result.budget if result.budget > 0 else (float("inf") if err else 0.0)


def failures_first(reports: Sequence[CheckReport]) -> list[tuple[int, CheckReport,
                                                                  GradientResult]]:
    """(report number, report, gradient) for every gradient: failing ones first, stably."""
    rows = [(i, rep, r) for i, rep in enumerate(reports) for r in rep.results]
    return sorted(rows, key=lambda t: (t[2].passed, t[1].passed))


def anchor(i: int, result: GradientResult) -> str:
    """The id of a gradient's details in HTML."""
    return f"r{i}-{''.join(c if c.isalnum() else '-' for c in result.name)}"


def verdict_line(reports: Sequence[CheckReport]) -> str:
    """The overall verdict in one line: ``PASS`` only when every check passed.

    Parameters
    ----------
    reports : sequence of CheckReport
        One report per check.

    Returns
    -------
    str
        ``"PASS: k of n checks passed; g of m gradients passed"``, ``FAIL`` likewise,
        ``INCONCLUSIVE`` when nothing failed but a gradient could not be certified, or
        ``"EMPTY: no checks ran"`` (an empty session proves nothing, so it is not a pass).

    Examples
    --------
    >>> verdict_line([])
    'EMPTY: no checks ran'
    """
    items = validated(reports)
    if not items:
        return f"{kinds.EMPTY.upper()}: no checks ran"
    passed = sum(r.passed for r in items)
    grads = [g for r in items for g in r.results]
    verdicts = {r.verdict for r in items}
    word = (kinds.PASS if passed == len(items)
            else kinds.FAIL if kinds.FAIL in verdicts else kinds.INCONCLUSIVE).upper()
    return (f"{word}: {passed} of {len(items)} checks passed; "
            f"{sum(g.passed for g in grads)} of {len(grads)} gradients passed")


def overall(reports: Sequence[CheckReport]) -> str:
    """``pass``, ``fail``, ``inconclusive`` or ``empty`` for a whole document: the worst
    verdict of its reports, :data:`~gradcheck.kinds.EMPTY` when it has none."""
    if not reports:
        return kinds.EMPTY
    verdicts = {r.verdict for r in reports}
    return next((v for v in (kinds.FAIL, kinds.INCONCLUSIVE) if v in verdicts), kinds.PASS)


def all_passed(reports: Sequence[CheckReport]) -> bool:
    return bool(reports) and all(r.passed for r in reports)


def validated(reports: Any) -> tuple[CheckReport, ...]:
    if isinstance(reports, CheckReport):
        raise InvalidArgument("`reports` must be a sequence of CheckReport, got a single "
                              "CheckReport; pass [report]")
    items = tuple(reports)
    bad = [type(r).__name__ for r in items if not isinstance(r, CheckReport)]
    if bad:
        raise InvalidArgument(f"`reports` must hold only CheckReport, got {', '.join(bad[:3])}")
    return items


def merged_notes(reports: Sequence[CheckReport]) -> list[str]:
    """Problems and warnings, each once, with the number of checks it came from."""
    counts: dict[str, int] = {}
    for rep in reports:
        for text in [f"problem in {label(rep)}: {p}" for p in rep.problems] + [
                f"warning: {w}" for w in rep.warnings]:
            counts[text] = counts.get(text, 0) + 1
    return [text if n == 1 else f"{text} ({n} checks)" for text, n in counts.items()]


def explained(fraction: float) -> str:
    return "> 99.99%" if fraction > 0.9999 else f"{fraction:.2%}"


def diagnosis_lines(result: GradientResult) -> list[str]:
    """The diagnosis in sentences: the cause with its evidence, the alternatives, the sweep."""
    d = result.diagnosis
    if d is None:
        return []
    lines = []
    if d.findings:
        best = d.findings[0]
        lines.append(f"diagnosis: {best.text}")
        if result.status == "shape":  # no element compared: the shape is the evidence
            lines += [f"evidence: {best.evidence}"] if best.evidence else []
        else:
            because = f"{best.evidence}; " if best.evidence else ""
            lines.append(f"evidence: {because}explains {explained(best.explained)} of "
                         "||analytic - numeric||²")
        lines += [f"also consistent with: {f.text} ({explained(f.explained)})"
                  for f in d.findings[1:]]
    if d.note:
        lines.append(f"diagnosis: {d.note}")
    if d.sweep is not None:
        lines.append(f"bug or noise at {d.sweep.index}: {d.sweep.text}")
    return lines


def sweep_rows(result: GradientResult) -> list[list[str]]:
    d = result.diagnosis
    if d is None or d.sweep is None:
        return []
    return [[f"{h:.1e}", f"{v:+.4e}"] for h, v in zip(d.sweep.steps, d.sweep.discrepancies,
                                                      strict=True)]


def worst_error(result: GradientResult) -> float:
    """The error at the worst element (the one :func:`ratio` and ``result.budget`` are of)."""
    return abs(result.analytic_at_worst - result.numeric_at_worst)


def ratio_text(result: GradientResult) -> str:
    value = ratio(result)
    return "-" if value != value else f"{value:.2g}"


def worst_cells(result: GradientResult) -> list[str]:
    """Error, budget and their ratio, all of the worst element."""
    return [num(worst_error(result)), num(result.budget), ratio_text(result)]


def summary_cells(report: CheckReport, r: GradientResult) -> list[str]:
    return [report.layer, report.case or "-", f"d{r.name}", r.method, mode(r),
            *worst_cells(r), verdict_word(r), str(r.nfev), seconds(r.seconds)]
