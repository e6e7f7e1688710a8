"""The pytest plugin, end to end: a real pytest session in a subprocess, loaded by entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gradcheck import _collect
from gradcheck import pytest_plugin as plugin
from gradcheck.check import CheckReport, GradientResult
from gradcheck.report import OUTPUT_FILES
from gradcheck.results import Coverage

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
    result.stdout.fnmatch_lines([f"gradcheck: FAIL: 1 of 3 checks passed; 1 of 3 gradients passed; "
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
    assert "**FAIL: 1 of 3 checks passed; 1 of 3 gradients passed**" in summary
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
    result = GradientResult(
        name="x", status="pass", max_abs_error=0.0, max_rel_error=0.0, budget=1e-8,
        worst_index=(0,), analytic_at_worst=1.0, numeric_at_worst=1.0, nfev=1, method="complex",
        coverage=Coverage(mode="full", elements=1, size=1), rtol=1e-8, atol=0.0)
    return CheckReport("layer", (result,), {"x": (1,)}, "float64", 0, "complex", case=case)


@pytest.mark.parametrize(("nodeid", "case", "expected"), [
    pytest.param("t.py::test_a", "", "t.py::test_a", id="labelled-with-the-test"),
    pytest.param("t.py::test_a", "N,D staged", "N,D staged", id="an-existing-case-is-kept"),
    pytest.param("", "", "", id="outside-a-test"),
])
def test_collector_labels_reports(tmp_path, nodeid, case, expected):
    collector = plugin._Collector(tmp_path)
    try:
        collector.test = (nodeid, 0, False) if nodeid else None
        _collect.notify(_report(case))
    finally:
        collector.pytest_unconfigure()
    _collect.notify(_report())  # no longer listening
    assert [r.case for r in collector.reports] == [expected]


# --- pytest-xdist: workers' checks merged on the controller ---------------------------------

PROPERTY_TESTS = """
import numpy as np
from hypothesis import given, settings, strategies as st

from gradcheck.check import check_layer
from gradcheck.layer import from_callables

GOOD = from_callables(lambda x: np.sum(np.sin(x)), np.cos, name="good_sine")


@settings(max_examples=12, database=None, derandomize=True)
@given(st.integers(2, 40))
def test_property(n):
    with open("examples.log", "a") as log:  # the oracle: one line per example run
        log.write(f"{n}\\n")
    assert check_layer(GOOD, {"x": np.linspace(-1.0, 1.0, n)}).passed
"""


def _session(pytester, out, *args):
    result = pytester.runpytest_subprocess(f"{plugin.OPTION}={out}", "-p", "no:cacheprovider",
                                           *args)
    result.assert_outcomes(passed=5)
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return result, [(r["layer"], r["case"], r["passed"], r["results"][0]["max_abs_error"])
                    for r in data["reports"]]


def test_an_xdist_session_writes_the_serial_report_once(pytester, step_summary):
    pytester.makepyfile(test_layers=LAYER_TESTS, test_props=PROPERTY_TESTS)
    out = pytester.path / "out"
    _, serial = _session(pytester, out)
    examples = len((pytester.path / "examples.log").read_text().splitlines())
    (out / "gw0").mkdir()  # what the previous version wrote under xdist
    (out / "gw0" / "summary.md").write_text("stale\n", encoding="utf-8")
    step_summary.write_text("earlier step\n", encoding="utf-8")

    result, merged = _session(pytester, out, "-n", "2")

    # "created: 2/2 workers" (pytest-xdist < 3.8) or "2 workers [5 items]"
    result.stdout.re_match_lines([r"(created: 2/2 workers|2 workers \[\d+ items\])",
                                  r"gradcheck: FAIL: 2 of 4 checks passed; 2 of 4 gradients "
                                  rf"passed; reports in {re.escape(str(out))}"])
    assert merged == serial
    assert [case for _, case, _, _ in merged][-1] == (
        f"test_props.py::test_property ({examples} examples, all passed)")
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    summary = step_summary.read_text(encoding="utf-8")
    assert summary.count("# gradcheck report") == 1
    assert summary == "earlier step\n" + (out / "summary.md").read_text(encoding="utf-8")


def test_a_session_without_checks_removes_an_earlier_report(pytester):
    pytester.makepyfile(test_it=NO_CHECKS)
    out = pytester.path / "out"
    out.mkdir()
    for name in OUTPUT_FILES:
        (out / name).write_text("from an earlier run\n", encoding="utf-8")
    (out / "notes.txt").write_text("the user's own file\n", encoding="utf-8")
    result = pytester.runpytest_subprocess(f"{plugin.OPTION}={out}", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([f"gradcheck: no gradient checks ran; nothing written to {out} "
                                 f"(removed {len(OUTPUT_FILES)} files of an earlier run)"])
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


class _Node:
    """What pytest_testnodedown receives from pytest-xdist, reduced to what the plugin reads."""

    def __init__(self, output=None):
        self.gateway = type("Gateway", (), {"id": "gw1"})()
        if output is not None:
            self.workeroutput = output


def test_a_worker_sends_its_checks_and_the_controller_takes_them(tmp_path):
    worker_output: dict = {}
    worker = plugin._Collector(tmp_path, worker_output)
    controller = plugin._Collector(tmp_path)
    try:
        worker.test = ("t.py::test_a", 0, False)
        _collect.notify(_report())
        worker.pytest_sessionfinish()
        controller.entries.clear()  # it heard the in-process notify too; a real one would not
        controller.pytest_testnodedown(_Node(json.loads(json.dumps(worker_output))), None)
        controller.pytest_testnodedown(_Node(), "Not properly terminated")
    finally:
        worker.pytest_unconfigure()
        controller.pytest_unconfigure()
    assert not list(tmp_path.iterdir()), "a worker never writes"
    assert [r.case for r in controller.reports] == ["t.py::test_a"]
    assert controller.notes == ["worker gw1 went down (Not properly terminated) without sending "
                                "its checks; the report lacks them"]


# --- pytest-native failures -----------------------------------------------------------------

FAILING_TEST = """
import numpy as np

from gradcheck.layer import from_callables

BROKEN = from_callables(lambda x: np.sum(np.sin(x)), lambda x: 1.001 * np.cos(x),
                        name="broken_sine")


def test_broken(check_gradients):
    check_gradients(BROKEN, {"x": np.linspace(-1.0, 1.0, 3)})
"""


def test_a_failing_check_reads_like_a_pytest_failure(pytester):
    pytester.makepyfile(test_it=FAILING_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        ">       check_gradients(BROKEN, *",
        "E       AssertionError: dx: 3 of 3 elements over budget; worst at (*,): "
        "analytic *, numeric *, error * > budget *",
        "E       gradient check of broken_sine failed (seed 0, float64)",
        "FAILED test_it.py::test_broken - AssertionError: dx: 3 of 3 elements over*",
    ])
    result.stdout.no_fnmatch_line("*gradcheck/check.py*")  # our frames are hidden


FLOAT32_TEST = """
import numpy as np

from gradcheck.check import check_grads


def test_float32():
    x = np.linspace(0.0, 1.0, 4, dtype=np.float32)
    assert check_grads(lambda x: np.sum(x**2), lambda x: 2 * x, x).passed
"""


@pytest.mark.parametrize(("filters", "outcome"), [
    pytest.param(["-W", "error"], {"failed": 1}, id="W-error-fails"),
    pytest.param(["-W", "error", "-W", "ignore::gradcheck.GradcheckWarning"], {"passed": 1},
                 id="our-category-can-be-filtered"),
])
def test_warnings_have_a_category_of_their_own(pytester, filters, outcome):
    pytester.makepyfile(test_it=FLOAT32_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *filters)
    result.assert_outcomes(**outcome)
    if "failed" in outcome:
        result.stdout.fnmatch_lines(["E   *GradcheckWarning: *float64*"])


CRASHING_TESTS = '''
import os
import numpy as np


class Crashing:
    """A layer whose backward ends its process."""

    def forward(self, inputs):
        return inputs["x"] * 2.0, None

    def backward(self, dout, cache):
        os._exit(0)


def test_crashing(check_gradients):
    check_gradients(Crashing(), {"x": np.ones((3, 2))})


def test_after():
    pass  # reached only if the session outlived the crash: the outer test counts it as passed
'''


def test_isolate_option_keeps_the_session_alive_when_a_layer_exits(pytester):
    """--gradcheck-isolate: a layer's os._exit ends its worker, not the test session."""
    pytester.makepyfile(test_crash=CRASHING_TESTS)
    result = pytester.runpytest_subprocess(plugin.ISOLATE_OPTION, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*WorkerLost*exited with status 0*no verdict*"])
    # without it the layer ends the session itself, with its own exit status (0: a green CI)
    crashed = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert "passed" not in crashed.stdout.str() and "failed" not in crashed.stdout.str()
