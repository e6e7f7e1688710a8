"""The pytest plugin, end to end: a real pytest session in a subprocess, loaded by entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradcheck import _collect
from gradcheck import pytest_plugin as plugin
from gradcheck.check import CheckReport, GradientResult
from gradcheck.report import OUTPUT_FILES

pytest_plugins = ["pytester"]

LAYER_TESTS = """
import numpy as np
import pytest

from gradcheck.check import check_grads, check_layer
from gradcheck.layer import from_callables

X = np.linspace(-1.0, 1.0, 6)
GOOD = from_callables(lambda x: np.sum(np.sin(x)), np.cos, name="good_sine")
BROKEN = from_callables(lambda x: np.sum(np.sin(x)), lambda x: 1.001 * np.cos(x),
                        name="broken_sine")


def test_good():
    assert check_layer(GOOD, {"x": X}).passed


def test_broken_is_caught():
    assert not check_layer(BROKEN, {"x": X}).passed


def test_fixture_raises_on_a_broken_layer(check_gradients):
    with pytest.raises(AssertionError, match="broken_sine"):
        check_gradients(BROKEN, {"x": X})


def test_without_checks():
    '''A test that runs no gradient check: the report must not list it.'''
"""

NO_CHECKS = """
def test_nothing_to_check():
    '''A session in which no gradient check runs.'''
"""


@pytest.fixture
def step_summary(tmp_path, monkeypatch) -> Path:
    """A GITHUB_STEP_SUMMARY file that already holds an earlier step's text."""
    path = tmp_path / "step_summary.md"
    path.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv(plugin.STEP_SUMMARY_ENV, str(path))
    return path


def test_a_session_is_collected_into_one_report(pytester, step_summary):
    pytester.makepyfile(test_layers=LAYER_TESTS)
    out = pytester.path / "reports" / "session"
    result = pytester.runpytest_subprocess(f"{plugin.OPTION}={out}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"gradcheck: FAIL: 1 of 3 checks passed (1 of 3 gradients); "
                                 f"reports in {out}"])
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [(r["layer"], r["case"], r["passed"]) for r in data["reports"]] == [
        ("good_sine", "test_layers.py::test_good", True),
        ("broken_sine", "test_layers.py::test_broken_is_caught", False),
        ("broken_sine", "test_layers.py::test_fixture_raises_on_a_broken_layer", False),
    ]
    for name in ("summary.txt", "summary.md", "summary.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert "good_sine" in text and "broken_sine" in text
    summary = step_summary.read_text(encoding="utf-8")
    assert summary.startswith("earlier step\n# gradcheck report\n")
    assert "**FAIL: 1 of 3 checks passed (1 of 3 gradients)**" in summary
    assert summary == "earlier step\n" + (out / "summary.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("args", "test_file", "line"), [
    pytest.param([], LAYER_TESTS, None, id="without-the-option"),
    pytest.param([f"{plugin.OPTION}=out"], NO_CHECKS,
                 "gradcheck: no gradient checks ran; nothing written to */out",
                 id="no-checks-ran"),
])
def test_nothing_is_written_unless_checks_were_collected(pytester, step_summary, args,
                                                         test_file, line):
    pytester.makepyfile(test_it=test_file)
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=test_file.count("def test_"))
    assert not (pytester.path / "out").exists()
    assert [p.name for p in pytester.path.rglob("*") if p.name in OUTPUT_FILES] == []
    assert step_summary.read_text(encoding="utf-8") == "earlier step\n"
    if line is None:
        result.stdout.no_fnmatch_line("gradcheck:*")
    else:
        result.stdout.fnmatch_lines([line])


def test_the_option_must_name_a_directory(pytester):
    pytester.makepyfile(test_it=NO_CHECKS)
    pytester.path.joinpath("taken").write_text("a file\n")
    result = pytester.runpytest(f"{plugin.OPTION}=taken")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gradcheck-report must name a directory, got the file*taken*"])


def test_help_lists_the_option_in_its_group(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["gradient checks (gradcheck):", "*--gradcheck-report=DIR*"])


def _report(case: str = "") -> CheckReport:
    nan = float("nan")
    result = GradientResult("x", "pass", 0.0, 0.0, 1e-8, (0,), 1.0, 1.0, 1, "complex", "full",
                            1, 1, 1e-8, 0.0, nan)
    return CheckReport("layer", (result,), {"x": (1,)}, "float64", 0, "complex", case=case)


@pytest.mark.parametrize(("nodeid", "case", "expected"), [
    pytest.param("t.py::test_a", "", "t.py::test_a", id="labelled-with-the-test"),
    pytest.param("t.py::test_a", "N,D staged", "N,D staged", id="an-existing-case-is-kept"),
    pytest.param("", "", "", id="outside-a-test"),
])
def test_collector_labels_reports(tmp_path, nodeid, case, expected):
    collector = plugin._Collector(tmp_path)
    try:
        collector.nodeid = nodeid
        _collect.notify(_report(case))
    finally:
        collector.pytest_unconfigure()
    _collect.notify(_report())  # no longer listening
    assert [r.case for r in collector.reports] == [expected]
