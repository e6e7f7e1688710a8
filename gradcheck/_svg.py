"""Small inline SVG pictures for the HTML report: no scripts, no fetches, no namespaces to fetch.

Each function returns one ``<svg>`` element as a string (HTML5 needs no ``xmlns`` for inline
SVG, and the page's Content-Security-Policy forbids every fetch). Every text is escaped.

- :func:`scatter`: analytic against numeric per compared element, the diagonal drawn; points
  outside their budget in red.
- :func:`heatmap`: per element of a 2-D gradient (a 4-D one laid out as an N×C mosaic of H×W
  tiles), either the error ``analytic - numeric`` itself (blue below zero, red above: a
  per-feature mistake such as a missing mean term shows as stripes) or
  ``|analytic - numeric| / budget`` (pale green inside the budget, red outside it); grey where
  nothing was compared. Each has its colour scale (:func:`legend`): swatches of its own colours,
  numbered.
- :func:`sweep`: ``|analytic - D(h)|`` against the step ``h`` (log-log), the budget dashed.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

_W, _H, _PAD = 320, 240, 36
MAX_POINTS = 2000
MAX_CELLS = 96  # a heat map side longer than this is pooled (max) into blocks


def _svg(width: int, height: int, title: str, body: Sequence[str]) -> str:
    label = html.escape(title)
    return (f'<svg class="pic" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{label}"><title>{label}</title>' + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 10) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}">'
            f"{html.escape(text)}</text>")


def _scale(lo: float, hi: float, a: float, b: float) -> tuple[float, float]:
    """``(slope, offset)`` mapping [lo, hi] onto [a, b]."""
    span = hi - lo or 1.0
    return (b - a) / span, a - lo * (b - a) / span


def scatter(analytic: np.ndarray, numeric: np.ndarray, outside: np.ndarray, title: str) -> str:
    """Analytic (y) against numeric (x); the diagonal is where a right gradient lies."""
    a, n, bad = (np.asarray(v).reshape(-1) for v in (analytic, numeric, outside))
    if a.size > MAX_POINTS:
        keep = np.linspace(0, a.size - 1, MAX_POINTS).astype(int)
        a, n, bad = a[keep], n[keep], bad[keep]
    lo = float(min(np.min(a), np.min(n)))
    hi = float(max(np.max(a), np.max(n)))
    sx, ox = _scale(lo, hi, _PAD, _W - 10)
    sy, oy = _scale(lo, hi, _H - _PAD, 10)
    body = [f'<rect x="{_PAD}" y="10" width="{_W - 10 - _PAD}" height="{_H - 10 - _PAD}" '
            'fill="#fff" stroke="#d0d7de"/>',
            f'<line x1="{sx * lo + ox:.1f}" y1="{sy * lo + oy:.1f}" x2="{sx * hi + ox:.1f}" '
            f'y2="{sy * hi + oy:.1f}" stroke="#8c959f" stroke-dasharray="4 3"/>']
    for ai, ni, b in zip(a, n, bad, strict=True):
        colour = "#cf222e" if b else "#0969da"
        body.append(f'<circle cx="{sx * ni + ox:.1f}" cy="{sy * ai + oy:.1f}" r="2.2" '
                    f'fill="{colour}" fill-opacity="0.7"/>')
    body += [_text((_W + _PAD) / 2, _H - 6, "numeric"),
             f'<text x="12" y="{(_H - _PAD) / 2:.0f}" font-size="10" text-anchor="middle" '
             f'transform="rotate(-90 12 {(_H - _PAD) / 2:.0f})">analytic</text>',
             _text(_PAD, _H - _PAD + 12, f"{lo:.3g}", "start", 9),
             _text(_W - 10, _H - _PAD + 12, f"{hi:.3g}", "end", 9)]
    return _svg(_W, _H, title, body)


def mosaic(values: np.ndarray) -> np.ndarray:
    """A 2-D layout of a 1-D to 4-D array: (N, C, H, W) as N·H rows of C·W columns."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        return v.reshape(1, -1)
    if v.ndim == 2:
        return v
    if v.ndim == 3:
        v = v[..., np.newaxis]
    if v.ndim > 4:
        v = v.reshape((*v.shape[:3], -1))
    n, c, h, _w = v.shape[:4]
    return v.reshape(n, c, h, -1).transpose(0, 2, 1, 3).reshape(n * h, c * v.shape[3])


def _pool(grid: np.ndarray) -> np.ndarray:
    """Blocks of a grid longer than MAX_CELLS, each shown by its largest-magnitude value."""
    rows, cols = grid.shape
    fr, fc = math.ceil(rows / MAX_CELLS), math.ceil(cols / MAX_CELLS)
    if fr == 1 and fc == 1:
        return grid
    padded = np.full((math.ceil(rows / fr) * fr, math.ceil(cols / fc) * fc), np.nan)
    padded[:rows, :cols] = grid
    tiles = padded.reshape(padded.shape[0] // fr, fr, padded.shape[1] // fc, fc)
    blocks = tiles.transpose(0, 2, 1, 3).reshape(tiles.shape[0], tiles.shape[2], -1)
    size = np.where(np.isnan(blocks), -1.0, np.abs(blocks))
    pick = np.argmax(size, axis=2)[..., np.newaxis]
    return np.take_along_axis(blocks, pick, axis=2)[..., 0]  # all-NaN blocks stay NaN


def _signed_colour(value: float, top: float) -> str:
    """Blue (negative) through white (zero) to red (positive), linear up to ``top``."""
    if value != value:
        return "#d0d7de"
    u = min(abs(value) / top, 1.0) if top > 0 else 0.0
    if value < 0:
        return f"#{int(255 - 246 * u):02x}{int(255 - 150 * u):02x}{int(255 - 37 * u):02x}"
    return f"#{int(255 - 48 * u):02x}{int(255 - 221 * u):02x}{int(255 - 209 * u):02x}"


def _colour(ratio: float, low: float, top: float) -> str:
    """Within the budget: white to pale green; outside it: pale to dark red, on a log scale from
    the smallest (``low``) to the largest ratio above 1 shown (``top``), so that a pattern among
    the failing elements stays visible; grey for NaN (not compared)."""
    if ratio != ratio:
        return "#d0d7de"
    if ratio <= 1.0:
        u = min(max((math.log10(max(ratio, 1e-300)) + 6.0) / 6.0, 0.0), 1.0)  # 1e-6..1 -> 0..1
        return f"#{int(255 - 40 * u):02x}{int(255 - 10 * u):02x}{int(255 - 40 * u):02x}"
    span = math.log10(top / low) if top > low else 0.0
    u = min(max(math.log10(ratio / low) / span, 0.0), 1.0) if span > 0 else 1.0
    u = 0.2 + 0.8 * u
    return f"#{int(255 - 130 * u):02x}{int(225 - 225 * u):02x}{int(225 - 210 * u):02x}"


_BAR_W, _BAR_H, _BAR_STEPS = 12, 120, 16  # the colour scale: a bar of swatches, top = largest
_GAP = 12  # between the ratios outside the budget and those within it
_LEGEND_W = 96  # the bar, its numbers and a margin, right of the cells


def _legend_values(signed: bool, biggest: float, low: float, top: float) -> list[float]:
    """The values the colour bar shows, top to bottom: the map's whole range, the same mapping.

    Signed: ``+biggest`` down to ``-biggest`` through 0. Ratios: outside the budget (if any cell
    is) from the largest ratio down to the smallest above 1 on a log scale, then within it from
    1 down to 1e-6.
    """
    k = _BAR_STEPS
    if signed:  # an odd count: the middle swatch is 0
        return [biggest * (1.0 - 2.0 * i / k) for i in range(k + 1)]
    inside = [10.0 ** (-6.0 * i / (k // 2 - 1)) for i in range(k // 2)]
    if top <= 1.0:
        return [10.0 ** (-6.0 * i / (k - 1)) for i in range(k)]
    span = math.log10(top / low) if top > low else 0.0
    outside = [top / 10.0 ** (span * i / (k // 2 - 1)) for i in range(k // 2)]
    return outside + inside


def _tick(value: float, signed: bool) -> str:
    if signed:
        return "0" if value == 0 else f"{value:+.3g}".replace("-", "−")
    return "1 = budget" if value == 1.0 else f"{value:.3g}"


def legend(x: float, y: float, *, signed: bool, biggest: float, low: float, top: float) -> str:
    """A vertical colour scale at (x, y): swatches of the map's own colours, numbered at the
    ends and at 0 (signed) or at the budget (ratios), plus the grey of "not compared"."""
    values = _legend_values(signed, biggest, low, top)
    h = _BAR_H / len(values)
    split = not signed and top > 1.0  # outside the budget above a gap, within it below
    at = [y + i * h + (_GAP if split and i >= len(values) // 2 else 0.0)
          for i in range(len(values))]
    body = ['<g class="legend">']
    for v, top_y in zip(values, at, strict=True):
        fill = _signed_colour(v, biggest) if signed else _colour(v, low, top)
        what = "analytic - numeric" if signed else "error/budget"
        body.append(f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{_BAR_W}" height="{h:.2f}" '
                    f'fill="{fill}"><title>{what} {v:.4g}</title></rect>')
    mark = 0.0 if signed else 1.0  # where the colours change meaning
    ticks = {i: v for i, v in enumerate(values) if v == mark}
    ticks = {**dict(list(ticks.items())[:1]), 0: values[0], len(values) - 1: values[-1]}
    if split:
        ticks[len(values) // 2 - 1] = values[len(values) // 2 - 1]  # the smallest ratio > 1
    for i, v in sorted(ticks.items()):
        body.append(_text(x + _BAR_W + 4, at[i] + h / 2 + 3, _tick(v, signed), "start", 9))
    grey = at[-1] + h + 6
    body += [f'<rect x="{x:.1f}" y="{grey:.1f}" width="{_BAR_W}" height="{h:.2f}" '
             'fill="#d0d7de"><title>not compared</title></rect>',
             _text(x + _BAR_W + 4, grey + h / 2 + 3, "not compared", "start", 9), "</g>"]
    return "".join(body)


def heatmap(values: np.ndarray, title: str, *, signed: bool = False,
            rows_label: str = "axis 0", cols_label: str = "axis 1") -> str:
    """A 2-D layout of ``values`` (NaN = not compared) as coloured cells.

    ``signed``: the error ``analytic - numeric`` itself, blue below zero and red above, scaled
    to its largest magnitude; else error/budget ratios (:func:`_colour`).
    """
    grid = _pool(np.asarray(values, dtype=np.float64))
    rows, cols = grid.shape
    finite = grid[np.isfinite(grid)]
    over = finite[finite > 1.0]
    low, top = (float(np.min(over)), float(np.max(over))) if over.size else (1.0, 1.0)
    biggest = float(np.max(np.abs(finite))) if finite.size else 0.0
    cell = max(3.0, min(24.0, 280.0 / max(rows, cols)))
    width = int(cols * cell + 60 + _LEGEND_W)
    height = int(max(rows * cell, _BAR_H + _GAP + 24) + 40)
    what = "analytic - numeric" if signed else "error/budget"
    body = []
    for i in range(rows):
        for j in range(cols):
            value = float(grid[i, j])
            tip = "not compared" if value != value else f"{what} {value:.4g}"
            fill = _signed_colour(value, biggest) if signed else _colour(value, low, top)
            body.append(f'<rect x="{40 + j * cell:.1f}" y="{10 + i * cell:.1f}" '
                        f'width="{cell:.1f}" height="{cell:.1f}" fill="{fill}">'
                        f"<title>({i}, {j}): {html.escape(tip)}</title></rect>")
    body += [_text(40 + cols * cell / 2, rows * cell + 32, cols_label),
             f'<text x="14" y="{10 + rows * cell / 2:.0f}" font-size="10" '
             f'text-anchor="middle" transform="rotate(-90 14 {10 + rows * cell / 2:.0f})">'
             f"{html.escape(rows_label)}</text>",
             legend(40 + cols * cell + 16, 10, signed=signed, biggest=biggest, low=low, top=top)]
    return _svg(width, height, title, body)


def sweep(steps: Sequence[float], discrepancies: Sequence[float], budget: float,
          title: str) -> str:
    """``|analytic - D(h)|`` against ``h``, both on log scales; the budget as a dashed line."""
    h = np.log10(np.asarray(steps, dtype=np.float64))
    d = np.log10(np.maximum(np.abs(np.asarray(discrepancies, dtype=np.float64)), 1e-300))
    b = math.log10(budget) if budget > 0 else float(np.min(d)) - 1
    lo, hi = float(min(np.min(d), b)) - 0.5, float(max(np.max(d), b)) + 0.5
    sx, ox = _scale(float(np.min(h)), float(np.max(h)), _PAD, _W - 10)
    sy, oy = _scale(lo, hi, _H - _PAD, 10)
    points = " ".join(f"{sx * x + ox:.1f},{sy * y + oy:.1f}" for x, y in zip(h, d, strict=True))
    body = [f'<rect x="{_PAD}" y="10" width="{_W - 10 - _PAD}" height="{_H - 10 - _PAD}" '
            'fill="#fff" stroke="#d0d7de"/>',
            f'<line x1="{_PAD}" y1="{sy * b + oy:.1f}" x2="{_W - 10}" y2="{sy * b + oy:.1f}" '
            'stroke="#1a7f37" stroke-dasharray="5 3"/>',
            f'<polyline points="{points}" fill="none" stroke="#cf222e" stroke-width="1.5"/>']
    body += [f'<circle cx="{sx * x + ox:.1f}" cy="{sy * y + oy:.1f}" r="2.5" fill="#cf222e"/>'
             for x, y in zip(h, d, strict=True)]
    body += [_text((_W + _PAD) / 2, _H - 6, "step h (log10)"),
             _text(_PAD, _H - _PAD + 12, f"{10 ** float(np.min(h)):.0e}", "start", 9),
             _text(_W - 10, _H - _PAD + 12, f"{10 ** float(np.max(h)):.0e}", "end", 9),
             _text(_W - 12, sy * b + oy - 4, "budget", "end", 9),
             f'<text x="12" y="{(_H - _PAD) / 2:.0f}" font-size="10" text-anchor="middle" '
             f'transform="rotate(-90 12 {(_H - _PAD) / 2:.0f})">|analytic - D(h)|</text>']
    return _svg(_W, _H, title, body)
