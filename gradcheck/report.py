"""Results to tables and files: text for terminals, Markdown for CI summaries, HTML, JSON.

One document, four renderings. :func:`render` looks the format up in a registry instead of
branching: the three table formats share one document builder, parameterised by a ``_Style``
(tabulate's table format, escaping, headings, lists and the page around it); JSON is
:func:`to_json` dumped with ``allow_nan=False``. :func:`write_reports` writes all four files,
each atomically (a temporary file in the same directory, fsync, ``os.replace``), so a crash never
leaves a half-written report behind. What only the other formats need (tabulate, :mod:`html`,
:mod:`gradcheck._html`, :mod:`tempfile`) is imported on first use, so a passing ``gradcheck
check`` prints its text report without loading them.

The document: the overall verdict (:func:`verdict_line`); a summary table with one row per
gradient; details for every gradient that failed or passed with a warning (its message, the
elements it sampled, its worst elements) and every report with problems or warnings; and, for
sampled gradients, the smallest error they would certainly have caught. Numbers are printed in
scientific notation with four significant digits (``1.235e-08``), NaN as ``-``. The JSON keys are
documented one by one in ``reports/README.md``; NaN and inf become ``null``.

Examples
--------
>>> import numpy as np
>>> from gradcheck.check import check_grads
>>> report = check_grads(lambda x: np.sum(x**3), lambda x: 3 * x**2, np.array([1.0, 2.0]))
>>> print(render([report], "text").splitlines()[0])
PASS: 1 of 1 checks passed; 1 of 1 gradients passed
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gradcheck import _format as _fmt
from gradcheck import _text, kinds
from gradcheck._version import __version__
from gradcheck.errors import InvalidArgument
from gradcheck.results import CheckReport, GradientResult, WorstElement

__all__ = [
    "FORMATS",
    "OUTPUT_FILES",
    "SCHEMA_VERSION",
    "SUMMARY_HEADERS",
    "failure_message",
    "render",
    "render_html_fragment",
    "summary_rows",
    "to_json",
    "verdict_line",
    "write_reports",
]

# 2: each result gained ``coverage`` (what its check covered, and how ``detectable`` holds) and
# ``explained`` (the elements over budget that did not plainly fail, and why); the flat keys
# mode, elements, size, directions, miss_norm, detectable, step stay for readers of version 1.
SCHEMA_VERSION = 2
# Per report, for the AssertionError of assert_gradients (see failure_message).
SUMMARY_HEADERS = ("gradient", "verdict", "max abs err", "max rel err", "budget", "worst index",
                   "analytic", "numeric", "method", "mode", "nfev")
# Over all reports, for the documents.
TABLE_HEADERS = _fmt.TABLE_HEADERS
_TABLE_ALIGN = _fmt.TABLE_ALIGN
_VERDICT_COLUMN = _fmt.VERDICT_COLUMN
WORST_HEADERS = _fmt.WORST_HEADERS
_WORST_ALIGN = _fmt.WORST_ALIGN

# The JSON schema: the keys, in order (documented in reports/README.md).
TOP_KEYS = ("schema_version", "generated_by", "passed", "reports")
REPORT_KEYS = ("passed", "layer", "case", "method", "seed", "dtype", "shapes", "problems",
               "warnings", "seconds", "nfev", "results")
RESULT_KEYS = ("name", "passed", "status", "max_abs_error", "max_rel_error", "budget",
               "worst_index", "analytic_at_worst", "numeric_at_worst", "nfev", "method", "mode",
               "elements", "size", "directions", "miss_norm", "detectable", "rtol", "atol", "step",
               "reason", "message", "seconds", "worst", "diagnosis", "coverage", "explained")
COVERAGE_KEYS = ("mode", "elements", "size", "directions", "miss_norm", "detectable",
                 "guarantee", "step")
WORST_KEYS = ("index", "analytic", "numeric", "abs_error", "budget")
EXPLAINED_KEYS = ("index", "explanation", "analytic", "numeric", "budget")
DIAGNOSIS_KEYS = ("cause", "findings", "sweep", "note")
FINDING_KEYS = ("cause", "text", "explained", "evidence")
SWEEP_KEYS = ("index", "steps", "discrepancies", "verdict", "text")

OUTPUT_FILES = {"summary.txt": kinds.TEXT, "summary.md": kinds.MARKDOWN,
                "summary.html": kinds.HTML, "results.json": kinds.JSON}

# --- numbers and labels (shared with the text and HTML renderings, in gradcheck._format) -----

_num = _fmt.num
_seconds = _fmt.seconds
_label = _fmt.label
_verdict_word = _fmt.verdict_word
_mode = _fmt.mode
_needs_detail = _fmt.needs_detail
_coverage = _fmt.coverage
_all_passed = _fmt.all_passed
_validated = _fmt.validated
verdict_line = _fmt.verdict_line


# --- the short form, for AssertionError ------------------------------------------------------


def summary_rows(report: CheckReport) -> list[list[str]]:
    """One row per gradient of one report, in :data:`SUMMARY_HEADERS` order.

    Parameters
    ----------
    report : CheckReport
        One check.

    Returns
    -------
    list of list of str
        Formatted cells: ``d<name>``, the verdict, the errors, the budget, the worst index with
        the analytic and numerical values there, the method, the mode, the evaluations.

    Examples
    --------
    >>> import numpy as np
    >>> from gradcheck.check import check_grads
    >>> report = check_grads(lambda x: np.sum(x**3), lambda x: 3 * x**2, np.array([1.0, 2.0]))
    >>> summary_rows(report)[0][:2]
    ['dx', 'pass']
    """
    return [_row(r) for r in report.results]


def _row(r: GradientResult) -> list[str]:
    index = "-" if r.worst_index is None else str(r.worst_index)
    return [f"d{r.name}", _verdict_word(r), _num(r.max_abs_error), _num(r.max_rel_error),
            _num(r.budget), index, _num(r.analytic_at_worst), _num(r.numeric_at_worst), r.method,
            r.mode, str(r.nfev)]


def failure_message(report: CheckReport) -> str:
    """A few lines for an ``AssertionError``: what failed, where, by how much.

    The first line is what pytest shows beside the test's name, so it carries the verdict on its
    own: each failing gradient by name with its message (how many of its compared elements are
    over budget, its worst element with the analytic and numerical values there), then the
    first problem. Below it, the check (layer, seed, dtype), the gradients' table and every
    problem; no arrays. The full detail belongs in the reports (:func:`write_reports`,
    ``--gradcheck-report``).

    Parameters
    ----------
    report : CheckReport
        A check that did not pass.

    Returns
    -------
    str
        The headline, a line naming the check, a table with one row per gradient, then one line
        per problem.

    Examples
    --------
    >>> import numpy as np
    >>> from gradcheck.check import check_grads
    >>> wrong = lambda x: 3.01 * x**2
    >>> report = check_grads(lambda x: np.sum(x**3), wrong, np.array([1.0, 2.0]))
    >>> print("\\n".join(failure_message(report).splitlines()[:2]))
    dx: 2 of 2 elements over budget; worst at (...): analytic ..., numeric ..., error ...
    gradient check of <lambda> failed (seed 0, float64)
    """
    failing = [_headline(r) for r in report.results if not r.passed]
    problems = [f"problem: {p}" for p in report.problems]
    case = f", case {report.case}" if report.case else ""
    lines = ["; ".join(failing + problems[:1]),
             f"gradient check of {report.layer} failed (seed {report.seed}, {report.dtype}{case})"]
    from tabulate import tabulate  # on first use: a passing check's text report needs none

    lines.append(tabulate(summary_rows(report), headers=SUMMARY_HEADERS, disable_numparse=True))
    lines += [f"  {p}" for p in problems]
    return "\n".join(lines)


def _headline(r: GradientResult) -> str:
    """One failing gradient in a clause: ``dx: 3 of 24 elements over budget; worst at ...``.

    The verdict's own message when there is one (it counts the failing elements); otherwise the
    count and the worst element from the worst-elements rows.
    """
    if r.message:
        status = ("" if r.status == kinds.FAIL or r.message.startswith(r.status)
                  else f"{r.status}: ")
        return f"d{r.name}: {status}{r.message}"
    if r.status != kinds.FAIL or not r.worst:
        return f"d{r.name}: {r.status}"
    w = r.worst[0]
    return (f"d{r.name}: {_failing_count(r)} of {r.elements} elements over budget; worst at "
            f"{w.index}: analytic {w.analytic:.9g}, numeric {w.numeric:.9g}, "
            f"error {w.abs_error:.3g} > budget {w.budget:.3g}")


def _failing_count(r: GradientResult) -> str:
    """How many compared elements exceed their budget, from the worst-elements rows.

    The rows are the elements with the largest error-to-budget ratio, so the count is exact when
    a row passes or every compared element has a row; otherwise at least that many fail.
    """
    over = sum(w.abs_error > w.budget for w in r.worst)
    exact = over < len(r.worst) or len(r.worst) >= r.elements
    return str(over) if exact else f"at least {over}"


# --- documents: one builder, three styles ----------------------------------------------------


@dataclass(frozen=True)
class _Style:
    """How one document format spells the parts of a report; every text arrives escaped."""

    tablefmt: str
    escape: Callable[[str], str]
    heading: Callable[[int, str], str]
    paragraph: Callable[[str], str]
    bullets: Callable[[Sequence[str]], str]
    verdict: Callable[[str, bool], str]
    page: Callable[[str], str]
    separator: str = "\n\n"


def _table(style: _Style, headers: Sequence[str], rows: list[list[str]],
           align: Sequence[str]) -> str:
    from tabulate import tabulate  # on first use: a passing check's text report needs none

    return tabulate(rows, headers=[style.escape(h) for h in headers], tablefmt=style.tablefmt,
                    disable_numparse=True, colalign=align)


def _summary_table(style: _Style, reports: Sequence[CheckReport]) -> str:
    rows = []
    for _, report, r in _fmt.failures_first(reports):
        cells = [style.escape(c) for c in _fmt.summary_cells(report, r)]
        cells[_VERDICT_COLUMN] = style.verdict(cells[_VERDICT_COLUMN], r.passed)
        rows.append(cells)
    return _table(style, TABLE_HEADERS, rows, _TABLE_ALIGN)


def _worst_table(style: _Style, worst: Sequence[WorstElement]) -> str:
    rows = [[style.escape(str(w.index)), _num(w.analytic), _num(w.numeric), _num(w.abs_error),
             _num(w.budget)] for w in worst]
    return _table(style, WORST_HEADERS, rows, _WORST_ALIGN)


def _gradient_detail(style: _Style, r: GradientResult) -> list[str]:
    title = style.escape(f"d{r.name}: {_verdict_word(r)}")
    blocks = [style.heading(4, style.verdict(title, r.passed))]
    for text in (r.message, *_fmt.diagnosis_lines(r), r.reason):
        if text:
            blocks.append(style.paragraph(style.escape(text)))
    if r.mode == kinds.SAMPLED:
        blocks.append(style.paragraph(style.escape(_coverage(r))))
    if r.worst:
        blocks.append(_worst_table(style, r.worst))
    if _fmt.sweep_rows(r):
        blocks.append(_table(style, _fmt.SWEEP_HEADERS, _fmt.sweep_rows(r), ("right", "right")))
    return blocks


def _report_detail(style: _Style, report: CheckReport) -> list[str]:
    flagged = sorted((r for r in report.results if _needs_detail(r)), key=lambda r: r.passed)
    notes = [f"problem: {p}" for p in report.problems] + [f"warning: {w}" for w in report.warnings]
    if not flagged and not notes:
        return []
    blocks = [style.heading(3, style.escape(_label(report)))]
    if notes:
        blocks.append(style.bullets([style.escape(n) for n in notes]))
    for r in flagged:
        blocks += _gradient_detail(style, r)
    return blocks


def _coverage_notes(style: _Style, reports: Sequence[CheckReport]) -> list[str]:
    notes = [f"{_label(rep)} d{r.name}: {_coverage(r)}"
             for rep in reports for r in rep.results if r.mode == kinds.SAMPLED]
    if not notes:
        return []
    return [style.heading(2, "Sampled gradients"), style.bullets([style.escape(n) for n in notes])]


def _document(style: _Style, reports: Sequence[CheckReport]) -> str:
    ordered = sorted(reports, key=lambda rep: rep.passed)  # failing checks' details first
    details = [block for report in ordered for block in _report_detail(style, report)]
    blocks = [
        style.heading(1, "gradcheck report"),
        style.paragraph(style.verdict(style.escape(verdict_line(reports)), _all_passed(reports))),
        style.heading(2, "Summary"),
        _summary_table(style, reports),
        *([style.heading(2, "Details"), *details] if details else []),
        *_coverage_notes(style, reports),
        style.paragraph(style.escape(f"generated by gradcheck {__version__}")),
    ]
    return style.page(style.separator.join(blocks))


def _markdown_escape(text: str) -> str:
    """HTML specials as entities (GitHub would eat ``<dx, u>`` as a tag); ``|`` for tables."""
    import html

    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


_MARKDOWN = _Style(
    tablefmt="github",
    escape=_markdown_escape,
    heading=lambda level, text: f"{'#' * level} {text}",
    paragraph=str,
    bullets=lambda items: "\n".join(f"- {item}" for item in items),
    verdict=lambda text, ok: text if ok else f"**{text}**",
    page=str,
)


# --- JSON ------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-ready copy: tuples to lists, numpy scalars to Python, NaN and inf to None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_plain(v) for v in value]
    return str(value)


def _record(obj: Any, keys: Sequence[str], **given: Any) -> dict[str, Any]:
    return {k: given[k] if k in given else _plain(getattr(obj, k)) for k in keys}


def _diagnosis_json(r: GradientResult) -> dict[str, Any] | None:
    d = r.diagnosis
    if d is None:
        return None
    return _record(d, DIAGNOSIS_KEYS, findings=[_record(f, FINDING_KEYS) for f in d.findings],
                   sweep=None if d.sweep is None else _record(d.sweep, SWEEP_KEYS))


def _result_json(r: GradientResult) -> dict[str, Any]:
    return _record(r, RESULT_KEYS, worst=[_record(w, WORST_KEYS) for w in r.worst],
                   diagnosis=_diagnosis_json(r), coverage=_record(r.coverage, COVERAGE_KEYS),
                   explained=[_record(e, EXPLAINED_KEYS) for e in r.explained])


def _report_json(report: CheckReport) -> dict[str, Any]:
    return _record(report, REPORT_KEYS, results=[_result_json(r) for r in report.results])


def to_json(reports: Sequence[CheckReport]) -> dict[str, Any]:
    """The reports as plain JSON data with stable keys (schema in ``reports/README.md``).

    Parameters
    ----------
    reports : sequence of CheckReport
        One report per check.

    Returns
    -------
    dict
        ``schema_version``, ``generated_by``, ``passed`` (every check passed, and there was at
        least one) and ``reports`` (one object per report). When there is exactly one report its
        keys (``layer``, ``method``, ``seed``, ``dtype``, ``results``, ...) are also copied to
        the top level, so ``gradcheck check --format json`` reads as one check. NaN and inf are
        ``None``.

    Raises
    ------
    InvalidArgument
        ``reports`` is a single report or holds something else.

    Examples
    --------
    >>> import numpy as np
    >>> from gradcheck.check import check_grads
    >>> report = check_grads(lambda x: np.sum(x**3), lambda x: 3 * x**2, np.array([1.0, 2.0]))
    >>> data = to_json([report])
    >>> data["schema_version"], data["passed"], data["results"][0]["name"], len(data["reports"])
    (2, True, 'x', 1)
    """
    checked = _validated(reports)
    items = [_report_json(r) for r in checked]
    head = {"schema_version": SCHEMA_VERSION, "generated_by": f"gradcheck {__version__}",
            "passed": _all_passed(checked)}
    single = copy.deepcopy(items[0]) if len(items) == 1 else {}
    return {**head, **single, "reports": items}


def _json_text(reports: Sequence[CheckReport]) -> str:
    return json.dumps(to_json(reports), indent=2, allow_nan=False)


# --- the registry and the public entry points --------------------------------------------------


def _html() -> ModuleType:
    """:mod:`gradcheck._html`, imported on first use: the text report needs neither it nor
    :mod:`html` (``gradcheck check``'s start-up time, issue 16)."""
    from gradcheck import _html as module

    return module


def _html_page(reports: Sequence[CheckReport]) -> str:
    return _html().page(reports)


_RENDERERS: dict[str, Callable[[Sequence[CheckReport]], str]] = {
    kinds.TEXT: _text.render_text,
    kinds.MARKDOWN: partial(_document, _MARKDOWN),
    kinds.HTML: _html_page,
    kinds.JSON: _json_text,
}
FORMATS = kinds.FORMATS


def render(reports: Sequence[CheckReport], fmt: str, *, wide: bool = False,
           color: bool = False, verbosity: int = 0) -> str:
    """One document over all reports, in one format.

    Parameters
    ----------
    reports : sequence of CheckReport
        One report per check (a suite, a pytest session or a single ``[report]``).
    fmt : {"text", "markdown", "html", "json"}
        ``text`` for terminals (100 columns, failures first, the verdict first and last),
        ``markdown`` (GitHub tables) for CI summaries, ``html`` a self-contained page (inline
        CSS and SVG pictures; no scripts, fonts or fetches), ``json`` as :func:`to_json`.
    wide, color, verbosity
        For ``text`` only: every column instead of 100 columns; ANSI colours; -1 the verdict
        and the failures only, 0 the default, 1 the details of passing gradients too.

    Returns
    -------
    str
        The document, without a trailing newline.

    Raises
    ------
    InvalidArgument
        An unknown ``fmt``, or ``reports`` is not a sequence of reports.

    Examples
    --------
    >>> import numpy as np
    >>> from gradcheck.check import check_grads
    >>> report = check_grads(lambda x: np.sum(x**3), lambda x: 3 * x**2, np.array([1.0, 2.0]))
    >>> print("\\n".join(render([report], "markdown").splitlines()[:3]))
    # gradcheck report
    <BLANKLINE>
    PASS: 1 of 1 checks passed; 1 of 1 gradients passed
    """
    if fmt not in _RENDERERS:
        raise InvalidArgument(f"`fmt` must be one of {FORMATS}, got {fmt!r}")
    items = _validated(reports)
    if fmt == kinds.TEXT and (wide or color or verbosity):
        return _text.render_text(items, wide=wide, color=color, verbosity=verbosity)
    return _RENDERERS[fmt](items)


def render_html_fragment(reports: Sequence[CheckReport]) -> str:
    """The HTML report without the page around it (for notebooks: ``_repr_html_``).

    Parameters
    ----------
    reports : sequence of CheckReport
        One report per check.

    Returns
    -------
    str
        A ``<style>`` and a ``<div class="gradcheck">`` holding the banner, the table, the
        details and the pictures.

    Examples
    --------
    >>> import numpy as np
    >>> from gradcheck.check import check_grads
    >>> report = check_grads(lambda x: np.sum(x**3), lambda x: 3 * x**2, np.array([1.0, 2.0]))
    >>> '<div class="banner pass">' in render_html_fragment([report])
    True
    """
    return _html().fragment(_validated(reports))


def write_reports(reports: Sequence[CheckReport], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write :data:`OUTPUT_FILES` (text, Markdown, HTML, JSON) into ``out_dir``, atomically.

    Every document is rendered before any file is touched, and each file is written to a
    temporary file in ``out_dir``, flushed to disk and renamed over the old one: a crash leaves
    either the old file or the new one, never half of one. An exception or Ctrl-C removes the
    temporary file; a process killed outright (``kill -9``) cannot, so temporary files are named
    ``.gradcheck-tmp-*`` and any of ours older than :data:`STALE_SECONDS` is removed by the next
    write into the same directory.

    Parameters
    ----------
    reports : sequence of CheckReport
        One report per check.
    out_dir : str or path
        The directory; created with its parents if missing.

    Returns
    -------
    list of Path
        The files written, in :data:`OUTPUT_FILES` order.

    Raises
    ------
    InvalidArgument
        ``out_dir`` names an existing file, or ``reports`` is not a sequence of reports.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from gradcheck.check import check_grads
    >>> report = check_grads(lambda x: np.sum(x**3), lambda x: 3 * x**2, np.array([1.0, 2.0]))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [p.name for p in write_reports([report], tmp)]
    ['summary.txt', 'summary.md', 'summary.html', 'results.json']
    """
    items = _validated(reports)
    directory = Path(out_dir)
    if directory.exists() and not directory.is_dir():
        raise InvalidArgument(f"`out_dir` must be a directory, got the file {str(directory)!r}")
    texts = {name: render(items, fmt) + "\n" for name, fmt in OUTPUT_FILES.items()}
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale(directory)
    return [_write_atomic(directory / name, text) for name, text in texts.items()]


_TMP_PREFIX = ".gradcheck-tmp-"
STALE_SECONDS = 600  # no write takes this long: an older temporary file of ours is left by a kill


def _remove_stale(directory: Path) -> None:
    """Delete our temporary files that a killed process left behind (older than STALE_SECONDS)."""
    now = time.time()
    for name in OUTPUT_FILES:
        for tmp in directory.glob(f"{_TMP_PREFIX}{name}.*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.lstat().st_mtime > STALE_SECONDS and tmp.is_file():
                    tmp.unlink()


def _write_atomic(path: Path, text: str) -> Path:
    import tempfile

    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_TMP_PREFIX}{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); filesystems that refuse are left alone."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
