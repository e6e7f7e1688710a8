"""The HTML report: a verdict banner, failures first and linked to their details, pictures.

A self-contained page: inline CSS, inline SVG (:mod:`gradcheck._svg`), no scripts, and a
Content-Security-Policy that forbids every fetch. The summary table is laid out from declared
column widths (:data:`COLUMNS`) and wraps its text, so it fits a 1280 px window; in a narrower one
it scrolls sideways inside its box while its first column, the verdict, stays in view
(``position: sticky``). Every text that
gradcheck did not write itself is escaped with :func:`html.escape`. :func:`fragment` is the same
content without the page around it, for Jupyter (``CheckReport._repr_html_``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from gradcheck import _format as fmt
from gradcheck import _svg, kinds
from gradcheck._version import __version__
from gradcheck.results import CheckReport, Evidence, GradientResult
from gradcheck.tolerance import budget

# The summary's columns and their widths in ``ch`` (the width of a digit): the table is laid out
# from these alone (``table-layout: fixed``), so no cell can widen it. A number needs 11ch
# (−1.234e-300); text wraps. 126ch at 0.6em a ch, plus padding, is under 1200 px: the table fits a
# 1280 px window without scrolling. How a gradient was measured (method, mode, evaluations, time)
# shares one column, wrapped, instead of four.
COLUMNS = (("verdict", 9), ("gradient", 8), ("layer", 12), ("case", 18), ("error at worst", 11),
           ("its budget", 11), ("err/budget", 10), ("worst at", 9), ("analytic", 11),
           ("numeric", 11), ("measured", 16))
HEADERS = tuple(h for h, _ in COLUMNS)

CSS = """
.gradcheck { font-family: system-ui, sans-serif; color: #1b1f24; }
.gradcheck table { border-collapse: separate; border-spacing: 0; margin: 0.5em 0 1.5em;
  font-variant-numeric: tabular-nums; }
.gradcheck th, .gradcheck td { border-bottom: 1px solid #d0d7de; padding: 0.25em 0.6em;
  white-space: nowrap; text-align: left; }
.gradcheck td.n { text-align: right; }
.gradcheck table.summary { table-layout: fixed; width: 100%; font-size: 0.875em; }
.gradcheck table.summary th, .gradcheck table.summary td { white-space: normal;
  overflow-wrap: anywhere; padding: 0.25em 0.4em; vertical-align: top; }
.gradcheck table.summary td.n { white-space: nowrap; }
.gradcheck th { background: #f6f8fa; }
.gradcheck .scroll { overflow-x: auto; max-width: 100%; border: 1px solid #d0d7de; }
.gradcheck .scroll table { margin: 0; }
.gradcheck .sticky { position: sticky; left: 0; z-index: 1; background: #fff;
  border-right: 2px solid #d0d7de; }
.gradcheck th.sticky { background: #f6f8fa; }
.gradcheck .banner { padding: 0.7em 1em; border-radius: 6px; font-weight: bold;
  font-size: 1.15em; margin: 0.5em 0 1em; }
.gradcheck .banner.pass { background: #dafbe1; color: #116329; border: 1px solid #4ac26b; }
.gradcheck .banner.fail { background: #ffebe9; color: #a40e26; border: 1px solid #ff8182; }
.gradcheck .banner.inconclusive, .gradcheck .banner.empty { background: #fff8c5;
  color: #7d4e00; border: 1px solid #d4a72c; }
.gradcheck .pass { color: #1a7f37; }
.gradcheck .fail { color: #cf222e; font-weight: bold; }
.gradcheck .diagnosis { background: #f6f8fa; border-left: 4px solid #0969da;
  padding: 0.4em 0.8em; }
.gradcheck .pics { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.gradcheck figure { margin: 0; }
.gradcheck figcaption { font-size: 0.85em; color: #57606a; max-width: 320px; }
.gradcheck section { border-top: 1px solid #d0d7de; margin-top: 1em; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gradcheck report</title>
<style>
body {{ margin: 2em; }}{css}</style>
</head>
<body>
{body}
</body>
</html>"""

e = html.escape


def _cls(r: GradientResult) -> str:
    """The CSS class of a gradient's verdict: the classes are named after the verdicts."""
    return kinds.PASS if r.passed else kinds.FAIL


def _row(i: int, rep: CheckReport, r: GradientResult) -> str:
    word = e(fmt.verdict_word(r))
    verdict = (f'<a class="{_cls(r)}" href="#{fmt.anchor(i, r)}">{word}</a>'
               if fmt.needs_detail(r) else f'<span class="{_cls(r)}">{word}</span>')
    index = "-" if r.worst_index is None else str(r.worst_index)
    cells = [f"d{r.name}", rep.layer, rep.case or "-"]
    numbers = fmt.worst_cells(r)
    values = [fmt.num(r.analytic_at_worst), fmt.num(r.numeric_at_worst)]
    measured = f"{r.method}, {fmt.mode(r)}; {r.nfev} evaluations, {fmt.seconds(r.seconds)} s"
    return ("<tr>" + f'<td class="sticky">{verdict}</td>'
            + "".join(f"<td>{e(c)}</td>" for c in cells)
            + "".join(f'<td class="n">{e(c)}</td>' for c in numbers)
            + f"<td>{e(index)}</td>" + "".join(f'<td class="n">{e(c)}</td>' for c in values)
            + f"<td>{e(measured)}</td></tr>")


def _summary(reports: Sequence[CheckReport]) -> str:
    cols = "".join(f'<col style="width: {w}ch">' for _, w in COLUMNS)
    head = "".join(f'<th class="sticky">{e(h)}</th>' if k == 0 else f"<th>{e(h)}</th>"
                   for k, h in enumerate(HEADERS))
    rows = "\n".join(_row(i, rep, r) for i, rep, r in fmt.failures_first(reports))
    return (f'<div class="scroll"><table class="summary"><colgroup>{cols}</colgroup>'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody></table></div>")


def element_ratios(ev: Evidence) -> np.ndarray | None:
    """``|analytic - numeric| / budget`` per element, NaN where nothing was compared.

    The budget is :func:`gradcheck.tolerance.budget` of the first measurement: for elements the
    checker re-measured in extended precision it is the budget before that confirmation.
    """
    if ev.estimate is None or ev.indices is None:
        return None
    a = np.asarray(ev.analytic, dtype=np.float64)
    at = a.reshape(-1)[ev.indices]
    n = np.asarray(ev.estimate.value, dtype=np.float64).reshape(-1)
    r = np.zeros_like(n) if ev.rounding is None else np.asarray(ev.rounding).reshape(-1)[
        ev.indices]
    bud = budget(at, n, np.asarray(ev.estimate.error).reshape(-1), r, ev.tolerance)
    err = np.abs(at - n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bud > 0, err / bud, np.where(err > 0, np.inf, 0.0))
    out = np.full(a.size, np.nan)
    out[ev.indices] = ratio
    return out.reshape(a.shape)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{e(caption)}</figcaption></figure>"


def _heatmaps(r: GradientResult, ev: Evidence, ratios: np.ndarray) -> list[str]:
    """The error and the error/budget per element, in the same layout."""
    assert ev.estimate is not None and ev.indices is not None
    error = np.full(ratios.size, np.nan)
    error[ev.indices] = (np.asarray(ev.analytic, dtype=np.float64).reshape(-1)[ev.indices]
                         - np.asarray(ev.estimate.value, dtype=np.float64).reshape(-1))
    four = ratios.ndim > 2
    layout = "tiles: N rows × C columns, each H × W" if four else "rows: batch; columns: features"
    labels: dict[str, Any] = {"rows_label": "N·H" if four else "axis 0 (batch)",
                              "cols_label": "C·W" if four else "axis 1 (features)"}
    return [
        _figure(_svg.heatmap(_svg.mosaic(error.reshape(ratios.shape)), f"d{r.name}: error",
                             signed=True, **labels),
                f"analytic - numeric per element ({layout}); blue below zero, red above, grey "
                "not compared; stripes mean a per-feature mistake (a missing mean term)"),
        _figure(_svg.heatmap(_svg.mosaic(ratios), f"d{r.name}: error / budget", **labels),
                "|analytic - numeric| / budget per element; green within the budget, red "
                "outside it (darker: further)"),
    ]


def pictures(r: GradientResult) -> list[str]:
    """The SVG figures for one gradient: scatter, heat maps (2-D and more), step sweep."""
    ev, figures = r.evidence, []
    ratios = element_ratios(ev) if ev is not None else None
    if ev is not None and ev.estimate is not None and ratios is not None and ev.indices is not None:
        a = np.asarray(ev.analytic, dtype=np.float64).reshape(-1)[ev.indices]
        n = np.asarray(ev.estimate.value, dtype=np.float64).reshape(-1)
        outside = ratios.reshape(-1)[ev.indices] > 1
        figures.append(_figure(_svg.scatter(a, n, outside, f"d{r.name}: analytic vs numeric"),
                               "analytic against numeric per element; a right gradient lies "
                               "on the dashed diagonal; red: outside the budget"))
        if ratios.ndim >= 2:
            figures += _heatmaps(r, ev, ratios)
    d = r.diagnosis
    if d is not None and d.sweep is not None:
        figures.append(_figure(
            _svg.sweep(d.sweep.steps, d.sweep.discrepancies, r.budget,
                       f"d{r.name}: discrepancy against step"),
            f"|analytic - D(h)| at {d.sweep.index} over central-difference steps; flat above "
            "the budget (dashed) is a bug, falling with h is numerical error"))
    return figures


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _detail(i: int, rep: CheckReport, r: GradientResult) -> str:
    title = e(f"{fmt.label(rep)} d{r.name}: {fmt.verdict_word(r)}")
    parts = [f'<section id="{fmt.anchor(i, r)}"><h3 class="{_cls(r)}">{title}</h3>']
    parts += [f"<p>{e(t)}</p>" for t in (r.message, r.reason) if t]
    lines = fmt.diagnosis_lines(r)
    if lines:
        parts.append('<div class="diagnosis">' + "".join(f"<p>{e(t)}</p>" for t in lines)
                     + "</div>")
    if r.mode == kinds.SAMPLED:
        parts.append(f"<p>{e(fmt.coverage(r))}</p>")
    figures = pictures(r) if not r.passed else []
    if figures:
        parts.append('<div class="pics">' + "".join(figures) + "</div>")
    if r.worst:
        parts.append(_table(fmt.WORST_HEADERS, [[str(w.index), fmt.num(w.analytic),
                                                 fmt.num(w.numeric), fmt.num(w.abs_error),
                                                 fmt.num(w.budget)] for w in r.worst]))
    if fmt.sweep_rows(r):
        parts.append(_table(fmt.SWEEP_HEADERS, fmt.sweep_rows(r)))
    return "\n".join(parts) + "</section>"


def fragment(reports: Sequence[CheckReport]) -> str:
    """The report's content in a ``<div class="gradcheck">`` with its own ``<style>``."""
    items = fmt.validated(reports)
    overall = fmt.overall(items)
    blocks = [f"<style>{CSS}</style>", '<div class="gradcheck">', "<h1>gradcheck report</h1>",
              f'<div class="banner {overall}">{e(fmt.verdict_line(items))}</div>',
              "<h2>Summary</h2>", _summary(items)]
    notes = fmt.merged_notes(items)
    if notes:
        blocks += ["<h2>Problems and warnings</h2>",
                   "<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>"]
    details = [_detail(i, rep, r) for i, rep, r in fmt.failures_first(items)
               if fmt.needs_detail(r)]
    if details:
        blocks += ["<h2>Details</h2>", *details]
    sampled = [f"{fmt.label(rep)} d{r.name}: {fmt.coverage(r)}"
               for rep in items for r in rep.results if r.mode == kinds.SAMPLED]
    if sampled:
        blocks += ["<h2>Sampled gradients</h2>",
                   "<ul>" + "".join(f"<li>{e(n)}</li>" for n in sampled) + "</ul>"]
    blocks += [f"<p>{e(f'generated by gradcheck {__version__}')}</p>", "</div>"]
    return "\n".join(blocks)


def page(reports: Sequence[CheckReport]) -> str:
    """The whole page."""
    body = fragment(reports).replace(f"<style>{CSS}</style>\n", "", 1)
    return _PAGE.format(css=CSS, body=body)
