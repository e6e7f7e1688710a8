"""Reports: every format, passing and failing; the JSON schema; HTML safety; atomic files."""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import report as rep
from gradcheck.check import CheckReport, GradientResult, WorstElement
from gradcheck.errors import InvalidArgument
from gradcheck.results import Coverage, ExplainedElement

README = Path(__file__).resolve().parents[1] / "reports" / "README.md"
NAN = float("nan")


def _result(**changes) -> GradientResult:
    base = GradientResult(
        name="x", status="pass", max_abs_error=1.2345678e-12, max_rel_error=3.0e-13,
        budget=1.5e-8, worst_index=(1, 2), analytic_at_worst=0.5, numeric_at_worst=0.5,
        nfev=12, method="complex", rtol=1.5e-8, atol=0.0,
        coverage=Coverage(mode="full", elements=12, size=12, detectable=3e-8, guarantee="certain",
                          step=1e-20),
        message="", reason="auto: the complex-step probe passed",
        worst=(WorstElement((1, 2), 0.5, 0.5, 1.2345678e-12, 1.5e-8),), seconds=0.01,
    )
    return replace(base, **changes)


def _failing_result(**changes) -> GradientResult:
    worst = (WorstElement((0, 3), 1.047146963, 1.046100862, 1.0461e-3, 1.56e-8),
             WorstElement((2, 1), 0.918957915, 0.918039875, 9.18e-4, 1.56e-8))
    failing = _result(name="gamma", status="fail", max_abs_error=1.0461e-3,
                      max_rel_error=9.99e-4, budget=1.56e-8, worst_index=(0, 3),
                      analytic_at_worst=1.047146963, numeric_at_worst=1.046100862, worst=worst,
                      message="worst at (0, 3): analytic 1.04714696, numeric 1.04610086")
    return replace(failing, **changes)


def _report(*results: GradientResult, **changes) -> CheckReport:
    base = CheckReport(layer="BatchNorm(4)", results=results or (_result(),),
                       shapes={"x": (3, 4), "gamma": (4,)}, dtype="float64", seed=7,
                       method="complex", seconds=0.05)
    return replace(base, **changes)


PASSING = _report(_result(), _result(name="beta"), case="N,D staged train")
FAILING = _report(_result(), _failing_result(), problems=("backward modified `dout` in place",),
                  warnings=("input `x` is float32, not float64",), layer="my_bn")
SAMPLED = _report(_result(coverage=Coverage(mode="sampled", elements=150, size=4096,
                                            directions=8, miss_norm=2.5e-7)), layer="big")
# A passing kink, an element left to rounding, and what the check covered.
KINKED = _report(_result(
    name="h", status="kink",
    coverage=Coverage(mode="sampled", elements=40, size=600, directions=8, miss_norm=3e-9,
                      detectable=2.5e-7, guarantee="probable", step=1e-200),
    explained=(ExplainedElement((3, 1), "kink", 0.0, 0.85, 1e-8),
               ExplainedElement((0, 2), "rounding", 1e-9, 3e-9, 1e-9))), layer="relu")


# --- every format -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", rep.FORMATS)
@pytest.mark.parametrize(("reports", "verdict", "gradients"), [
    pytest.param([PASSING], "PASS: 1 of 1 checks passed; 2 of 2 gradients passed", ["x", "beta"],
                 id="passing"),
    pytest.param([PASSING, FAILING], "FAIL: 1 of 2 checks passed; 3 of 4 gradients passed",
                 ["x", "beta", "x", "gamma"], id="failing"),
])
def test_every_format_states_the_verdict_and_every_gradient(fmt, reports, verdict, gradients):
    text = rep.render(reports, fmt)
    if fmt == "json":
        data = json.loads(text)
        assert data["passed"] is verdict.startswith("PASS")
        assert [r["layer"] for r in data["reports"]] == [r.layer for r in reports]
        assert [g["name"] for r in data["reports"] for g in r["results"]] == gradients
        return
    assert verdict in text
    for report in reports:
        assert report.layer in text
    for name in gradients:
        assert f"d{name}" in text


@pytest.mark.parametrize(("fmt", "marker"), [
    pytest.param("text", "-------", id="text"),
    pytest.param("markdown", "| layer", id="markdown"),
    pytest.param("html", '<table class="summary">', id="html"),
    pytest.param("json", '"schema_version": 2', id="json"),
])
def test_each_format_has_its_own_shape(fmt, marker):
    assert marker in rep.render([PASSING], fmt)


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
@pytest.mark.parametrize(("reports", "expected", "absent"), [
    pytest.param([PASSING], [], ["Details", "probe passed", "worst elements"],
                 id="passing-has-no-details"),
    pytest.param([FAILING], ["dgamma: FAIL", "(0, 3)", "1.047e+00", "1.046e+00",
                             "1.046e-03", "dout", "float32", "worst at (0, 3)"],
                 ["dx: pass"], id="failing-shows-worst-elements-problems-warnings"),
    pytest.param([_report(_result(message="complex step unsafe: forward calls abs; used "
                                          "richardson", method="richardson"))],
                 ["dx: pass", "used richardson"], [],
                 id="passing-with-a-warning-is-detailed"),
])
def test_document_content(fmt, reports, expected, absent):
    text = rep.render(reports, fmt)
    if fmt == "text":
        expected = [e.replace("&gt;", ">") for e in expected]
    for piece in expected:
        assert piece in text
    for piece in absent:
        assert piece not in text


@pytest.mark.parametrize(("fmt", "verbosity"), [
    pytest.param("text", 1, id="text-verbose"),
    pytest.param("markdown", 0, id="markdown"),
    pytest.param("html", 0, id="html"),
])
def test_sampled_gradients_state_their_coverage(fmt, verbosity):
    text = rep.render([SAMPLED], fmt, verbosity=verbosity).replace("&gt;", ">")
    for piece in ("sampled 150 of 4096 elements and 8 random", "2-norm >= 2.500e-07",
                  "probability >= 1 - 1e-06"):
        assert piece in text
    assert "Details" not in text


@pytest.mark.parametrize(("value", "text"), [
    pytest.param(1.2345678e-8, "1.235e-08", id="four-significant-digits"),
    pytest.param(0.0, "0.000e+00", id="zero"),
    pytest.param(-3.0, "-3.000e+00", id="negative"),
    pytest.param(NAN, "-", id="nan"),
    pytest.param(math.inf, "inf", id="inf"),
])
def test_numbers(value, text):
    assert rep._num(value) == text


def test_nan_shows_as_a_dash_in_tables():
    shape = _result(name="beta", status="shape", max_abs_error=NAN, max_rel_error=NAN,
                    budget=NAN, worst_index=None, analytic_at_worst=NAN, numeric_at_worst=NAN,
                    method="-", coverage=Coverage(mode="-", elements=0, size=4), worst=(),
                    message="dbeta has shape (1, 4)")
    text = rep.render([_report(shape)], "text")
    row = next(line for line in text.splitlines() if "dbeta" in line and "SHAPE" in line)
    assert "nan" not in row.lower()
    assert " - " in row


@pytest.mark.parametrize(("reports", "line"), [
    pytest.param([], "EMPTY: no checks ran", id="empty"),
    pytest.param([PASSING, PASSING], "PASS: 2 of 2 checks passed; 4 of 4 gradients passed",
                 id="pass"),
    pytest.param([_report(problems=("forward modified its input `x` in place",))],
                 "FAIL: 0 of 1 checks passed; 1 of 1 gradients passed",
                 id="problem-fails-the-check"),
    pytest.param([_report(_result(status="inconclusive"))],
                 "INCONCLUSIVE: 0 of 1 checks passed; 0 of 1 gradients passed",
                 id="inconclusive-is-not-a-fail"),
])
def test_verdict_line(reports, line):
    assert rep.verdict_line(reports) == line


@pytest.mark.parametrize(("call", "match"), [
    pytest.param(lambda: rep.render([PASSING], "pdf"), r"`fmt` must be one of .*'pdf'",
                 id="render(fmt='pdf')"),
    pytest.param(lambda: rep.render(PASSING, "text"), r"got a single CheckReport; pass \[report\]",
                 id="render(single report)"),
    pytest.param(lambda: rep.to_json([PASSING, "x"]), r"only CheckReport, got str",
                 id="to_json(a string inside)"),
    pytest.param(lambda: rep.write_reports([PASSING], README), r"`out_dir` must be a directory",
                 id="write_reports(out_dir is a file)"),
])
def test_input_validation(call, match):
    with pytest.raises(InvalidArgument, match=match):
        call()


# --- JSON -------------------------------------------------------------------------------------


def _documented_keys(section: str) -> list[str]:
    """The keys listed in reports/README.md's table under ``### {section}``."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"### {section}\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", body, flags=re.MULTILINE)


def test_documented_keys_are_the_emitted_keys():
    data = rep.to_json([FAILING, SAMPLED])
    report = data["reports"][0]
    result = report["results"][1]
    assert list(data) == _documented_keys("Top level")
    assert list(report) == _documented_keys("Report")
    assert list(result) == _documented_keys("Result (one gradient)")
    assert list(result["worst"][0]) == _documented_keys("Worst-element row")
    kinked = rep.to_json([KINKED])["results"][0]
    assert list(kinked["coverage"]) == _documented_keys("Coverage")
    assert list(kinked["explained"][0]) == _documented_keys("Explained element")


def test_the_schema_version_is_2_and_documented():
    assert rep.SCHEMA_VERSION == 2
    assert rep.to_json([PASSING])["schema_version"] == 2
    text = README.read_text(encoding="utf-8")
    assert "`schema_version` is 2 " in text and "| `schema_version` | int | 2 |" in text


def test_json_states_coverage_and_explained_elements():
    data = json.loads(rep.render([KINKED], "json"))
    assert data == rep.to_json([KINKED])
    result = data["results"][0]
    assert result["coverage"] == {"mode": "sampled", "elements": 40, "size": 600,
                                  "directions": 8, "miss_norm": 3e-9, "detectable": 2.5e-7,
                                  "guarantee": "probable", "step": 1e-200}
    assert result["explained"] == [
        {"index": [3, 1], "explanation": "kink", "analytic": 0.0, "numeric": 0.85,
         "budget": 1e-8},
        {"index": [0, 2], "explanation": "rounding", "analytic": 1e-9, "numeric": 3e-9,
         "budget": 1e-9},
    ]


@pytest.mark.parametrize("report", [
    pytest.param(KINKED, id="sampled"),
    pytest.param(FAILING, id="full"),
    pytest.param(_report(_result(status="shape", coverage=Coverage(mode="-", elements=0, size=4))),
                 id="nothing-compared"),
])
def test_the_v1_keys_repeat_the_coverage(report):
    for result in rep.to_json([report])["results"]:
        for key in ("mode", "elements", "size", "directions", "miss_norm", "detectable", "step"):
            assert result[key] == result["coverage"][key]


def test_a_single_report_is_also_the_top_level():
    data = rep.to_json([FAILING])
    for key in ("passed", "layer", "method", "seed", "dtype", "results"):
        assert data[key] == data["reports"][0][key]
    assert data["passed"] is False
    assert data["seed"] == 7
    assert data["results"][1]["worst_index"] == [0, 3]


def test_several_reports_stay_in_the_list():
    data = rep.to_json([PASSING, FAILING])
    assert list(data) == ["schema_version", "generated_by", "passed", "reports"]
    assert [r["passed"] for r in data["reports"]] == [True, False]


def test_empty_is_not_a_pass():
    assert rep.to_json([])["passed"] is False


def test_json_round_trips_and_nan_is_null():
    shape = _result(status="shape", max_abs_error=NAN, budget=math.inf, worst_index=None,
                    worst=())
    reports = [_report(shape), SAMPLED]
    text = rep.render(reports, "json")
    data = json.loads(text)
    assert data == rep.to_json(reports)
    first = data["reports"][0]["results"][0]
    assert first["max_abs_error"] is None
    assert first["budget"] is None
    assert first["worst_index"] is None
    assert first["miss_norm"] is None
    assert data["reports"][1]["results"][0]["miss_norm"] == 2.5e-7
    assert "NaN" not in text and "Infinity" not in text


def test_json_values_are_plain_python():
    import numpy as np

    report = _report(_result(max_abs_error=np.float32(0.5), nfev=np.int64(3),
                             worst_index=(np.int64(1),)), shapes={"x": (np.int64(2), 3)})
    result = rep.to_json([report])["results"][0]
    assert (result["max_abs_error"], result["nfev"], result["worst_index"]) == (0.5, 3, [1])
    assert type(result["nfev"]) is int


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=5, max_size=5))
def test_any_float_gives_strict_json(values):
    a, b, c, d, e = values
    report = _report(_result(max_abs_error=a, max_rel_error=b, budget=c,
                             coverage=Coverage(mode="sampled", elements=1, size=2, miss_norm=d),
                             worst=(WorstElement((0,), a, b, c, e),)))
    data = json.loads(rep.render([report], "json"))
    assert data["results"][0]["worst"][0]["budget"] == (e if math.isfinite(e) else None)
    assert data["results"][0]["budget"] == (c if math.isfinite(c) else None)


# --- HTML and Markdown safety -----------------------------------------------------------------


HOSTILE = _report(_failing_result(message="<img src=x onerror=alert(1)> & more"),
                  layer="<script>alert('layer')</script>", case="a|b<c>",
                  problems=("<b>bold</b>",))


def test_html_is_self_contained():
    page = rep.render([PASSING, FAILING, HOSTILE], "html")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")
    lowered = page.lower()
    for forbidden in ("http://", "https://", "//", "url(", "@import", "@font-face"):
        assert forbidden not in lowered
    tags = {t.strip("/") for t in re.findall(r"<(/?[a-z0-9!]+)", lowered)}
    assert tags <= {"!doctype", "html", "head", "meta", "title", "style", "body", "h1", "h2",
                    "h3", "h4", "p", "ul", "li", "span", "table", "thead", "tbody", "tr", "th",
                    "td", "div", "section", "a", "figure", "figcaption", "svg", "rect", "line",
                    "circle", "polyline", "text", "colgroup", "col", "g"}
    assert not re.search(r"<[^>]*\s(src|on\w+)=", lowered)
    assert set(re.findall(r'href="([^"]*)"', lowered)) <= {
        f"#{m}" for m in re.findall(r'id="([^"]*)"', lowered)}  # only links within the page


def test_html_escapes_everything_it_did_not_write():
    page = rep.render([HOSTILE], "html")
    assert "&lt;script&gt;alert(&#x27;layer&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; more" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "a|b&lt;c&gt;" in page


def test_markdown_tables_keep_their_columns():
    text = rep.render([HOSTILE, PASSING], "markdown")
    summary = text.split("## Summary\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    pipes = {len(re.findall(r"(?<!\\)\|", row)) for row in summary}
    assert len(summary) == 2 + 1 + 2  # header, rule, HOSTILE's gradient, PASSING's two
    assert pipes == {len(rep.TABLE_HEADERS) + 1}
    assert "a\\|b&lt;c&gt;" in text
    assert "<script" not in text and "<img" not in text


# --- the short message for AssertionError -------------------------------------------------------


def test_failure_message_is_short_and_precise():
    message = rep.failure_message(FAILING)
    lines = message.splitlines()
    assert lines[0] == ("dgamma: worst at (0, 3): analytic 1.04714696, numeric 1.04610086; "
                        "problem: backward modified `dout` in place")
    assert lines[1] == "gradient check of my_bn failed (seed 7, float64)"
    for piece in ("dgamma", "FAIL", "1.046e-03", "9.990e-04", "1.560e-08", "(0, 3)",
                  "1.047e+00", "1.046e+00", "worst at (0, 3)",
                  "problem: backward modified `dout` in place"):
        assert piece in message
    assert len(lines) <= 4 + len(FAILING.results) + len(FAILING.problems)


def _full(elements: int) -> Coverage:
    return Coverage(mode="full", elements=elements, size=elements)


def _rows(failing: int, passing: int) -> tuple[WorstElement, ...]:
    return tuple(WorstElement((k,), 1.0, 1.1, 0.1 if k < failing else 1e-9, 1e-8)
                 for k in range(failing + passing))


@pytest.mark.parametrize(("changes", "headline"), [
    pytest.param({"message": "3 of 24 elements over budget; worst at (0, 3): ..."},
                 "dgamma: 3 of 24 elements over budget; worst at (0, 3): ...",
                 id="the-verdict-message"),
    pytest.param({"message": "", "worst": _rows(2, 0), "coverage": _full(2)},
                 "dgamma: 2 of 2 elements over budget; worst at (0,): analytic 1, numeric 1.1, "
                 "error 0.1 > budget 1e-08", id="every-element-has-a-row"),
    pytest.param({"message": "", "worst": _rows(3, 2), "coverage": _full(24)},
                 "dgamma: 3 of 24 elements over budget; worst at (0,): *", id="a-row-passes"),
    pytest.param({"message": "", "worst": _rows(5, 0), "coverage": _full(24)},
                 "dgamma: at least 5 of 24 elements over budget; worst at (0,): *",
                 id="every-row-fails"),
    pytest.param({"status": "shape", "message": "dgamma has shape (1, 4) but `gamma` has (4,)"},
                 "dgamma: shape: dgamma has shape (1, 4) but `gamma` has (4,)", id="shape"),
    pytest.param({"status": "nonfinite", "message": ""}, "dgamma: nonfinite", id="nonfinite"),
])
def test_the_headline_names_the_gradient_and_counts_its_failing_elements(changes, headline):
    report = _report(_result(), _failing_result(**changes))
    assert fnmatch.fnmatchcase(rep.failure_message(report).splitlines()[0], headline)


def test_summary_rows_follow_the_headers():
    rows = rep.summary_rows(FAILING)
    assert [len(r) for r in rows] == [len(rep.SUMMARY_HEADERS)] * 2
    assert rows[1][:2] == ["dgamma", "FAIL"]


# --- files --------------------------------------------------------------------------------------


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_reports_writes_every_format(tmp_path):
    out = tmp_path / "nested" / "reports"
    paths = rep.write_reports([PASSING, FAILING], out)
    assert [p.name for p in paths] == list(rep.OUTPUT_FILES)
    for path, fmt in zip(paths, rep.OUTPUT_FILES.values(), strict=True):
        assert path.read_text(encoding="utf-8") == rep.render([PASSING, FAILING], fmt) + "\n"
    assert json.loads((out / "results.json").read_text())["passed"] is False
    assert _leftovers(out) == []


def _old_files(directory: Path) -> dict[str, str]:
    directory.mkdir(exist_ok=True)
    for name in rep.OUTPUT_FILES:
        (directory / name).write_text(f"old {name}\n")
    return {name: f"old {name}\n" for name in rep.OUTPUT_FILES}


def _fail(*args, **kwargs):
    raise OSError("disk full (simulated)")


@pytest.mark.parametrize("target", [
    pytest.param("os.replace", id="rename-fails"),
    pytest.param("os.fsync", id="fsync-fails"),
])
def test_a_crash_mid_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch, target):
    old = _old_files(tmp_path)
    monkeypatch.setattr(target, _fail)
    with pytest.raises(OSError, match="simulated"):
        rep.write_reports([FAILING], tmp_path)
    monkeypatch.undo()
    assert {name: (tmp_path / name).read_text() for name in old} == old
    assert _leftovers(tmp_path) == []


def test_a_rendering_error_touches_no_file(tmp_path, monkeypatch):
    old = _old_files(tmp_path)

    def broken(reports):
        raise RuntimeError("renderer bug")

    monkeypatch.setitem(rep._RENDERERS, "html", broken)
    with pytest.raises(RuntimeError, match="renderer bug"):
        rep.write_reports([FAILING], tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == old


def test_a_crash_after_some_files_leaves_each_file_whole(tmp_path, monkeypatch):
    old = _old_files(tmp_path)
    real_replace = os.replace
    calls = []

    def replace_twice(src, dst):
        calls.append(dst)
        if len(calls) > 2:
            raise OSError("power cut (simulated)")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_twice)
    with pytest.raises(OSError, match="simulated"):
        rep.write_reports([FAILING], tmp_path)
    monkeypatch.undo()
    new = rep.render([FAILING], "text") + "\n"
    assert (tmp_path / "summary.txt").read_text() == new
    assert (tmp_path / "summary.html").read_text() == old["summary.html"]
    assert _leftovers(tmp_path) == []


def test_rewriting_keeps_the_file_mode(tmp_path):
    path = tmp_path / "summary.txt"
    path.write_text("old\n")
    path.chmod(0o640)
    rep.write_reports([PASSING], tmp_path)
    assert path.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o644


def test_json_states_what_each_check_could_detect():
    import numpy as np

    from gradcheck import BatchNorm
    from gradcheck.check import check_layer
    from gradcheck.report import to_json

    x = np.random.default_rng(0).normal(2.0, 1.5, size=(6, 4))
    data = to_json([check_layer(BatchNorm(4), {"x": x})])
    detectable = [r["detectable"] for r in data["reports"][0]["results"]]
    assert len(detectable) == 3 and all(0 < d < 1e-6 for d in detectable)


def test_importing_the_report_loads_no_numerical_engine():
    """The renderings know the records, not the engine that makes them (nor SciPy)."""
    import subprocess
    import sys

    code = ("import sys, json, gradcheck.report; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('gradcheck', 'scipy'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    engine = ("gradcheck.numeric", "gradcheck.check", "gradcheck._engine", "gradcheck.tolerance",
              "scipy")
    assert [m for m in json.loads(done.stdout) if m.startswith(engine)] == []


def test_a_sample_whose_directions_carry_no_guarantee_says_so() -> None:
    """A sampled gradient whose directions all crossed kinks has no miss bound: the coverage line
    says so instead of promising that an error of 2-norm >= inf would be caught."""
    import numpy as np

    from gradcheck import _format
    from gradcheck.check import check_layer
    from gradcheck.layer import from_functions

    x = np.random.default_rng(1).integers(-2, 3, size=(256, 256)).astype(float)
    report = check_layer(from_functions(lambda x: (np.maximum(x, 0), x),
                                        lambda d, x: (d * (x > 0),)), {"x": x})
    (r,) = report.results
    assert r.mode == "sampled" and not math.isfinite(r.miss_norm)
    text = _format.coverage(r)
    assert "inf" not in text and "no guarantee" in text, text
