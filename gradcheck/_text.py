"""The text report, for terminals: 100 columns by default, failures first, the verdict last.

Layout (``verbosity`` 0): the verdict line; one row per gradient, failures first, with the
worst element inline (index, analytic, numeric, and its error in units of its budget); then,
per failing gradient, its message, diagnosis, step sweep and worst elements; the problems and
warnings (each once, with how many checks raised it); the verdict again. ``verbosity`` -1
(``-q``) keeps the verdict, the failing rows, each failing gradient's diagnosis headline
and the problems that failed a check; 1 (``-v``)
adds the details of passing gradients and the coverage of sampled ones. ``wide`` prints every
column instead (the table then fits no fixed width). Long sentences wrap at
:data:`gradcheck._terminal.WIDTH`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from gradcheck import _format as fmt
from gradcheck import kinds
from gradcheck._terminal import WIDTH, paint
from gradcheck._version import __version__
from gradcheck.results import CheckReport, GradientResult

COMPACT_HEADERS = ("check", "gradient", "verdict", "err/budget", "worst at", "analytic",
                   "numeric")
_COMPACT_ALIGN = ("left", "left", "left", "right", "left", "right", "right")
_MIN_CHECK = 12
# The terminal style (gradcheck._terminal.paint) of a status or an overall verdict: green for
# what passes, yellow for what is uncertain, red for the rest (also a document with no check).
_STYLE_OF = {**dict.fromkeys(kinds.PASSING, "pass"), kinds.INCONCLUSIVE: "warn"}


def _tabulate(rows: Sequence[Sequence[str]], **options: Any) -> str:
    """``tabulate`` of text cells, imported on first use: the compact table of a passing check is
    laid out by :func:`_layout`, so ``gradcheck check`` starts without it (issue 16)."""
    from tabulate import tabulate

    return tabulate(rows, disable_numparse=True, **options)


def _style(result_passed: bool, word: str) -> str:
    """The terminal style (:func:`gradcheck._terminal.paint`) of a gradient's verdict word."""
    return _STYLE_OF.get(kinds.PASS if result_passed else word.lower(), "fail")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def _cut_middle(text: str, width: int) -> str:
    """Shortened in the middle: a label's start (the layer) and its end (the case) both stay."""
    if len(text) <= width:
        return text
    head = max((width - 1) * 2 // 5, 1)
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _compact_row(report: CheckReport, r: GradientResult, check_width: int) -> list[str]:
    index = "-" if r.worst_index is None else str(r.worst_index).replace(" ", "")
    ratio = fmt.ratio(r)
    return [_cut_middle(fmt.label(report), check_width), _cut(f"d{r.name}", 10),
            fmt.verdict_word(r), f"{ratio:.2g}" if ratio == ratio else "-", _cut(index, 16),
            fmt.num(r.analytic_at_worst), fmt.num(r.numeric_at_worst)]


def _colour_rows(rows: list[list[str]], passed: list[bool], column: int,
                 color: bool) -> list[list[str]]:
    for row, ok in zip(rows, passed, strict=True):
        row[column] = paint(row[column], _style(ok, row[column]), color)
    return rows


def _layout(headers: Sequence[str], rows: list[list[str]], align: Sequence[str],
            styles: Sequence[str | None], color: bool) -> list[str]:
    """A plain table: columns two spaces apart, a dashed rule; colour added after padding."""
    widths = [max(len(c) for c in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str], style: str | None = None, column: int = -1) -> str:
        parts = [c.ljust(w) if a == "left" else c.rjust(w)
                 for c, w, a in zip(cells, widths, align, strict=True)]
        if style is not None and column >= 0:
            parts[column] = paint(parts[column], style, color)
        return "  ".join(parts).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(row, style, 2) for row, style in zip(rows, styles, strict=True)]
    return out


def _compact_table(items: list[tuple[int, CheckReport, GradientResult]], color: bool) -> str:
    """The summary table, its free-text column shortened until the table fits WIDTH."""
    check_width = max([len(fmt.label(rep)) for _, rep, _ in items] + [_MIN_CHECK])
    styles = [_style(r.passed, fmt.verdict_word(r)) for _, _, r in items]
    while True:
        rows = [_compact_row(rep, r, check_width) for _, rep, r in items]
        lines = _layout(COMPACT_HEADERS, rows, _COMPACT_ALIGN, styles, False)
        widest = max(len(line) for line in lines)
        if widest <= WIDTH or check_width <= _MIN_CHECK:
            break
        check_width = max(_MIN_CHECK, check_width - (widest - WIDTH))
    return "\n".join(_layout(COMPACT_HEADERS, rows, _COMPACT_ALIGN, styles, color))


def _wide_table(items: list[tuple[int, CheckReport, GradientResult]], color: bool) -> str:
    rows = [fmt.summary_cells(rep, r) for _, rep, r in items]
    rows = _colour_rows(rows, [r.passed for _, _, r in items], fmt.VERDICT_COLUMN, color)
    return _tabulate(rows, headers=fmt.TABLE_HEADERS, colalign=fmt.TABLE_ALIGN)


def _wrap(text: str, indent: str = "  ", wide: bool = False) -> list[str]:
    if wide:
        return [indent + text]
    return textwrap.wrap(text, WIDTH, initial_indent=indent,
                         subsequent_indent=" " * len(indent) + "  ",
                         break_on_hyphens=False, break_long_words=True)


def _indent(block: str, indent: str = "    ") -> list[str]:
    return [indent + line for line in block.splitlines()]


def _gradient_detail(report: CheckReport, r: GradientResult, verbosity: int, color: bool,
                     wide: bool) -> list[str]:
    head = f"{fmt.label(report)} d{r.name}: {fmt.verdict_word(r)}"
    lines = ["", paint(_cut(head, WIDTH) if not wide else head, _style(r.passed,
                                                                      fmt.verdict_word(r)),
                       color)]
    texts = [r.message, *fmt.diagnosis_lines(r)]
    if verbosity > 0 or not r.passed:
        texts.append(r.reason)
    if r.mode == kinds.SAMPLED and (verbosity > 0 or not r.passed):
        texts.append(fmt.coverage(r))
    for text in texts:
        if text:
            lines += _wrap(text, wide=wide)
    if fmt.sweep_rows(r):
        lines += _indent(_tabulate(fmt.sweep_rows(r), headers=fmt.SWEEP_HEADERS,
                                   colalign=("right", "right")))
    if r.worst and not r.passed:
        rows = [[str(w.index), fmt.num(w.analytic), fmt.num(w.numeric), fmt.num(w.abs_error),
                 fmt.num(w.budget)] for w in r.worst]
        table = _tabulate(rows, headers=fmt.WORST_HEADERS, colalign=fmt.WORST_ALIGN)
        lines += ["  worst elements:", *_indent(table)]
    return lines


def _details(reports: Sequence[CheckReport], verbosity: int, color: bool,
             wide: bool) -> list[str]:
    lines: list[str] = []
    for _, report, r in fmt.failures_first(reports):
        if not r.passed or (verbosity >= 0 and r.message) or verbosity > 0:
            lines += _gradient_detail(report, r, verbosity, color, wide)
    return lines


def _reason(message: str) -> list[str]:
    """Why a gradient without a diagnosis did not pass, for ``-q``: the message from its
    ``inconclusive:`` clause on, else its first clause."""
    at = message.find("inconclusive:")
    text = message[at:] if at >= 0 else message.split("; ")[0]
    return [text] if text else []


def render_text(reports: Sequence[CheckReport], *, wide: bool = False, color: bool = False,
                verbosity: int = 0) -> str:
    """The terminal document (see the module docstring); ANSI colours only when ``color``."""
    items = fmt.failures_first(reports)
    verdict = fmt.verdict_line(reports)
    style = _STYLE_OF.get(fmt.overall(reports), "fail")
    shown = items if verbosity >= 0 else [t for t in items if not t[2].passed]
    lines = [paint(verdict, style, color)]
    if shown:
        lines += ["", (_wide_table if wide else _compact_table)(shown, color)]
    if verbosity >= 0:
        lines += _details(reports, verbosity, color, wide)
        notes = fmt.merged_notes(reports)
        if notes:
            lines.append("")
            for note in notes:
                lines += _wrap(note, indent="- ", wide=wide)
    else:  # -q: the problems that failed a check stay (a random forward fails with no row)
        for _, report, r in shown:  # the headline of every failing gradient's diagnosis
            head = fmt.diagnosis_lines(r)[:1] or _reason(r.message)  # else why it is not a pass
            if head:
                lines += _wrap(f"{fmt.label(report)} d{r.name}: {head[0]}", indent="- ",
                               wide=wide)
        problems = list(dict.fromkeys(p for r in reports if not r.passed for p in r.problems))
        if problems:
            lines.append("")
            for problem in problems:
                lines += _wrap(problem, indent="- ", wide=wide)
    if verbosity > 0:
        lines += ["", f"generated by gradcheck {__version__}"]
    if reports and verbosity >= 0:
        lines += ["", paint(verdict, style, color)]
    return "\n".join(lines)
