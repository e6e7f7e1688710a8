"""The HTML page: banner, failures first and linked, sticky verdict column, merged warnings, SVG
with colour scales.

Parsed with :mod:`html.parser` (the page) and :mod:`xml.etree` (each SVG picture); looked at in
headless Chromium by hand (see the issue's closing note), never in a test.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser

import bn_catalog as cat
import numpy as np
import pytest

from gradcheck import _svg
from gradcheck import report as rep
from gradcheck.check import check_layer
from gradcheck.layer import from_functions
from gradcheck.results import CheckReport

VOID = {"meta", "br", "img", "input", "link", "hr", "col"}


class Page(HTMLParser):
    """Collects elements (tag, attributes, text) and checks that tags nest properly."""

    def __init__(self):
        super().__init__()
        self.stack, self.elements, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "parents": list(self.stack)}
        self.elements.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": "",
                              "parents": list(self.stack)})

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1]["tag"] != tag:
            self.errors.append(f"unexpected </{tag}>")
            return
        self.stack.pop()

    def handle_data(self, data):
        for element in self.stack:
            element["text"] += data

    def find(self, tag, **attrs):
        return [e for e in self.elements if e["tag"] == tag and all(
            v in e["attrs"].get(k, "").split() for k, v in attrs.items())]


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert page.errors == [] and page.stack == []
    return page


def bn_report(backward, shape=(6, 4), warnings=()) -> CheckReport:
    rng = np.random.default_rng(2)
    inputs = {"x": rng.normal(1.0, 2.0, size=shape), "gamma": rng.uniform(0.5, 2, shape[1]),
              "beta": rng.normal(size=shape[1])}
    layer = from_functions(cat.batchnorm_forward, backward, config={"bn_param": {}})
    return replace(check_layer(layer, inputs), warnings=tuple(warnings))


FLOAT32 = "inputs `x` (float32) are not float64"
PASSING = bn_report(cat.backward_compact, warnings=[FLOAT32])
FAILING = bn_report(cat.missing_mean_term, warnings=[FLOAT32])
SWAPPED = bn_report(cat.swapped_dgamma_dbeta, warnings=[FLOAT32])
PAGE = rep.render([PASSING, FAILING, SWAPPED], "html")


@pytest.mark.parametrize(("reports", "banner", "text"), [
    pytest.param([PASSING], "pass", "PASS: 1 of 1 checks passed", id="pass"),
    pytest.param([PASSING, FAILING], "fail", "FAIL: 1 of 2 checks passed", id="fail"),
    pytest.param([], "empty", "EMPTY: no checks ran", id="empty"),
])
def test_a_verdict_banner(reports, banner, text):
    page = parse(rep.render(reports, "html"))
    [div] = page.find("div", **{"class": "banner"})
    assert banner in div["attrs"]["class"].split()
    assert div["text"].startswith(text)


def test_failures_come_first_and_link_to_their_details():
    page = parse(PAGE)
    verdicts = [td["text"] for td in page.find("td", **{"class": "sticky"})]
    assert verdicts == ["FAIL"] * 3 + ["pass"] * 6
    ids = {e["attrs"]["id"] for e in page.elements if "id" in e["attrs"]}
    links = [a["attrs"]["href"] for a in page.find("a")]
    assert len(links) == 3 and {h[1:] for h in links} <= ids
    sections = [e for e in page.find("section")]
    assert [s["attrs"]["id"] for s in sections] == [h[1:] for h in links]


def test_the_verdict_column_stays_visible_while_the_table_scrolls():
    page = parse(PAGE)
    [box] = page.find("div", **{"class": "scroll"})
    [table] = page.find("table", **{"class": "summary"})
    assert box in table["parents"]
    sticky = page.find("th", **{"class": "sticky"})
    assert [t["text"] for t in sticky] == ["verdict"]
    css = PAGE.split("<style>", 1)[1].split("</style>", 1)[0]
    assert re.search(r"\.scroll \{[^}]*overflow-x: auto", css)
    assert re.search(r"\.sticky \{[^}]*position: sticky; left: 0", css)


FONT_PX, CH_EM = 16.0, 0.6  # the browsers' default font size; a digit is at most 0.6em wide
WINDOW, SCROLLBAR = 1280, 16


def _css() -> str:
    return PAGE.split("<style>", 1)[1].split("</style>", 1)[0]


def _em(pattern: str) -> float:
    found = re.search(pattern, _css())
    assert found, pattern
    return float(found.group(1))


def _summary_rows(page: Page) -> tuple[list[float], list[list[dict]]]:
    """The summary's declared column widths (ch) and its rows of cells."""
    [table] = page.find("table", **{"class": "summary"})
    cols = [c for c in page.find("col") if table in c["parents"]]
    widths = [float(re.fullmatch(r"width: ([\d.]+)ch", c["attrs"]["style"]).group(1))
              for c in cols]
    rows = [[c for c in page.elements if c["tag"] in ("td", "th") and c["parents"][-1] is tr]
            for tr in page.find("tr") if table in tr["parents"]]
    return widths, rows


def test_the_summary_table_fits_1280_px_without_scrolling():
    widths, rows = _summary_rows(parse(PAGE))
    assert all(len(row) == len(widths) for row in rows)  # a declared width for every column
    assert re.search(r"table\.summary \{[^}]*table-layout: fixed; width: 100%", _css())
    font = _em(r"table\.summary \{[^}]*font-size: ([\d.]+)em") * FONT_PX
    pad = _em(r"table\.summary td \{[^}]*padding: [\d.]+em ([\d.]+)em") * font
    margin = float(re.search(r"body \{ margin: ([\d.]+)em", PAGE).group(1)) * FONT_PX
    table = sum(widths) * CH_EM * font + len(widths) * 2 * pad + 2 + 2  # sticky and box borders
    assert table <= WINDOW - 2 * margin - SCROLLBAR, table


def test_no_summary_cell_can_widen_its_column():
    widths, rows = _summary_rows(parse(PAGE))
    assert re.search(r"table\.summary td \{[^}]*white-space: normal;\s*overflow-wrap: anywhere",
                     _css())  # text wraps, even a long name without spaces
    assert re.search(r"table\.summary td\.n \{ white-space: nowrap; \}", _css())
    for row in rows:
        for cell, width in zip(row, widths, strict=True):
            if "n" in cell["attrs"].get("class", "").split():  # numbers do not wrap: they fit
                assert len(cell["text"]) <= width, (cell["text"], width)
            else:  # words fit their column; a longer one would be cut mid-word
                assert max(len(w) for w in cell["text"].split()) <= width, (cell["text"], width)


def test_repeated_warnings_are_merged():
    page = parse(PAGE)
    notes = [li["text"] for li in page.find("li") if FLOAT32 in li["text"]]
    assert notes == [f"warning: {FLOAT32} (3 checks)"]


def _svgs(text: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", text, flags=re.DOTALL)]


def test_failing_gradients_have_their_pictures_as_valid_svg():
    section = PAGE.split('id="r1-x"', 1)[1].split("</section>", 1)[0]
    pictures = _svgs(section)
    assert [p.find("title").text for p in pictures] == [
        "dx: analytic vs numeric", "dx: error", "dx: error / budget",
        "dx: discrepancy against step"]
    scatter, error, ratio, sweep = pictures
    assert len(scatter.findall("circle")) == FAILING.results[0].size
    assert len(error.findall("rect")) == len(ratio.findall("rect")) == FAILING.results[0].size
    assert len(sweep.findall("circle")) == len(FAILING.results[0].diagnosis.sweep.steps)
    assert "<svg" not in PAGE.split("<h2>Details</h2>", 1)[0]  # passing rows: no pictures


def test_a_missing_mean_term_shows_as_stripes():
    heat = _svgs(PAGE.split('id="r1-x"', 1)[1])[1]
    n, d = FAILING.results[0].evidence.analytic.shape
    cells = heat.findall("rect")
    errors = np.array([float(c.find("title").text.rsplit(" ", 1)[1]) for c in cells])
    colours = np.array([c.get("fill") for c in cells]).reshape(n, d)
    assert all(len(set(colours[:, j])) == 1 for j in range(d))  # one colour down each column
    assert len(set(colours[0])) == d  # a different one in each column: stripes
    spread_down = np.ptp(errors.reshape(n, d), axis=0) / np.abs(errors.reshape(n, d)[0])
    assert np.all(spread_down < 1e-3)


def _legend(svg: ET.Element) -> tuple[dict[float, str], list[str]]:
    """The colour scale's swatches {value: fill} and its numbers, top to bottom."""
    [g] = [g for g in svg.findall("g") if g.get("class") == "legend"]
    swatches = {float(r.find("title").text.rsplit(" ", 1)[1]): r.get("fill")
                for r in g.findall("rect") if r.find("title").text != "not compared"}
    return swatches, [t.text for t in g.findall("text")]


def _cells(svg: ET.Element) -> tuple[np.ndarray, list[str]]:
    cells = [c for c in svg.findall("rect") if "not compared" not in c.find("title").text]
    return np.array([float(c.find("title").text.rsplit(" ", 1)[1]) for c in cells]), [
        c.get("fill") for c in cells]


HEATMAPS = [svg for svg in _svgs(PAGE) if svg.find("title").text.endswith(("error", "budget"))]


def test_every_heat_map_has_a_colour_scale_with_numbers():
    assert len(HEATMAPS) == 2  # the failing dx: error and ratios (1-D gradients: no map)
    for svg in HEATMAPS:
        swatches, ticks = _legend(svg)
        values, fills = _cells(svg)
        k = int(np.argmax(np.abs(values)))
        signed = svg.find("title").text.endswith("error")
        top = max(swatches, key=abs) if signed else max(swatches)
        assert fills[k] == swatches[np.sign(values[k]) * abs(top) if signed else top]
        assert np.isclose(abs(top), abs(values[k]))  # the scale spans the map's own range
        assert ticks[-1] == "not compared"
        if signed:
            assert ticks[:3] == [f"{top:+.3g}".replace("-", "−"), "0",
                                 f"{-top:+.3g}".replace("-", "−")]
        else:
            assert ticks[0] == f"{top:.3g}" and "1 = budget" in ticks and "1e-06" in ticks


def test_the_colour_scale_of_ratios_splits_at_the_budget():
    svg = ET.fromstring(_svg.heatmap(np.array([[1e-3, 5.0], [300.0, np.nan]]), "r"))
    swatches, ticks = _legend(svg)
    assert ticks == ["300", "5", "1 = budget", "1e-06", "not compared"]
    values, fills = _cells(svg)
    assert dict(zip(values, fills, strict=True))[5.0] == swatches[5.0]  # the palest red
    assert swatches[1.0] != swatches[5.0]
    inside = ET.fromstring(_svg.heatmap(np.array([[1e-3, 0.5]]), "r"))
    assert _legend(inside)[1] == ["1 = budget", "1e-06", "not compared"]


def test_a_4d_gradient_is_laid_out_as_a_mosaic():
    values = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    grid = _svg.mosaic(values)
    assert grid.shape == (2 * 2, 3 * 2)
    assert grid[0, 2:4].tolist() == values[0, 1, 0].tolist()  # channel 1 is the 2nd tile
    assert grid[3, 0:2].tolist() == values[1, 0, 1].tolist()


def test_large_heat_maps_are_pooled_by_their_maximum():
    ratios = np.zeros((300, 10))
    ratios[123, 4] = -50.0
    svg = ET.fromstring(_svg.heatmap(ratios, "big", signed=True))
    assert "-50" in ET.tostring(svg, encoding="unicode")  # the block shows its extreme value
    assert len(svg.findall("rect")) <= _svg.MAX_CELLS * 10
    fills = [c.get("fill") for c in svg.findall("rect")]
    assert sum(f != fills[0] for f in fills) == 1  # the one red block holds the bad element


def test_the_page_fetches_nothing():
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', PAGE).group(1)
    assert "default-src 'none'" in csp
    assert not re.search(r"(xmlns|src|href)=\"(https?:)?//", PAGE)


def test_repr_html_is_a_fragment_and_str_is_the_text_report():
    fragment = FAILING._repr_html_()
    assert "<html" not in fragment and "<!DOCTYPE" not in fragment
    page = parse(fragment)
    assert page.find("div", **{"class": "gradcheck"})
    assert "diagnosis: dx misses the mean(dout) term" in fragment
    assert len(_svgs(fragment)) == 4
    assert str(FAILING) == rep.render([FAILING], "text")
    assert str(FAILING).splitlines()[0].startswith("FAIL: 0 of 1 checks passed")
