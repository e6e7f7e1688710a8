"""The records a check returns: verdicts, what ``miss_norm`` means, and no rendering of their own.

``results`` sits below every rendering (``gradcheck.report`` imports it, never the reverse);
``print(report)`` and ``_repr_html_`` work through the renderings the package supplies
(``gradcheck._renderings``), whatever else was imported.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from gradcheck import _renderings, compare, kinds, results
from gradcheck.results import CheckReport, GradientResult

ROOT = Path(__file__).resolve().parents[1]
NAN = float("nan")


def _result(status: str = kinds.PASS, **changes) -> GradientResult:
    base = GradientResult(
        name="x", status=status, max_abs_error=1e-12, max_rel_error=1e-13, budget=1e-8,
        worst_index=(0,), analytic_at_worst=3.0, numeric_at_worst=3.0, nfev=2,
        method=kinds.COMPLEX, mode=kinds.FULL, elements=2, size=2, rtol=1e-8, atol=0.0,
        step=1e-20)
    return replace(base, **changes)


def _report(*statuses: str, problems: tuple[str, ...] = ()) -> CheckReport:
    return CheckReport("cube", tuple(_result(s, name=f"x{i}") for i, s in enumerate(statuses)),
                       {"x": (2,)}, "float64", 0, kinds.COMPLEX, problems=problems)


@pytest.mark.parametrize(("statuses", "problems", "verdict"), [
    pytest.param([kinds.PASS, kinds.ZERO, kinds.KINK], (), kinds.PASS, id="passing-statuses"),
    pytest.param([kinds.PASS, kinds.INCONCLUSIVE], (), kinds.INCONCLUSIVE, id="inconclusive"),
    pytest.param([kinds.INCONCLUSIVE, kinds.FAIL], (), kinds.FAIL, id="fail-beats-inconclusive"),
    pytest.param([kinds.SHAPE], (), kinds.FAIL, id="shape"),
    pytest.param([kinds.NONFINITE], (), kinds.FAIL, id="nonfinite"),
    pytest.param([kinds.INCONCLUSIVE], ("backward modified `dout`",), kinds.FAIL, id="problem"),
])
def test_verdict(statuses, problems, verdict):
    report = _report(*statuses, problems=problems)
    assert report.verdict == verdict and report.verdict in kinds.VERDICTS
    assert report.passed == (verdict == kinds.PASS)


def test_miss_probability_is_the_one_the_engine_uses():
    assert results.MISS_PROBABILITY == compare.MISS_PROBABILITY


def _gradcheck_imports(module: str) -> set[str]:
    """Every gradcheck module ``module`` imports, also inside functions and TYPE_CHECKING."""
    path = ROOT / Path(*module.split(".")).with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gradcheck"):
            found |= {f"{node.module}.{a.name}" if node.module == "gradcheck" else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("gradcheck")}
    return found


# What the renderings may import: the records, the vocabulary and each other; the terminal's
# width and colours; tolerance for the per-element budgets of the HTML heat map. Never the engine.
RENDERING = {"gradcheck.report", "gradcheck._format", "gradcheck._text", "gradcheck._html",
             "gradcheck._svg"}
MAY_IMPORT = RENDERING | {"gradcheck.results", "gradcheck.kinds", "gradcheck.errors",
                          "gradcheck._version", "gradcheck._terminal", "gradcheck.tolerance"}


@pytest.mark.parametrize("module", sorted(RENDERING))
def test_renderings_import_records_not_the_engine(module):
    assert _gradcheck_imports(module) - MAY_IMPORT == set()


@pytest.mark.parametrize(("module", "allowed"), [
    pytest.param("gradcheck._renderings", {"gradcheck.kinds", "gradcheck.errors"},
                 id="_renderings"),
    # numeric and tolerance for type annotations only
    pytest.param("gradcheck.results", {"gradcheck.kinds", "gradcheck._renderings",
                                       "gradcheck.numeric", "gradcheck.tolerance"}, id="results"),
])
def test_records_import_no_rendering(module, allowed):
    assert _gradcheck_imports(module) <= allowed


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


HAND_BUILT = ("from gradcheck.results import CheckReport, GradientResult\n"
              "r = GradientResult('x', 'fail', 1.0, 1.0, 1e-8, (0,), 2.0, 1.0, 2, 'complex', "
              "'full', 1, 1, 1e-8, 0.0, 1e-20)\n"
              "report = CheckReport('cube', (r,), {'x': (1,)}, 'float64', 0, 'complex')\n")


def test_print_renders_a_hand_built_report_in_a_fresh_interpreter():
    out = _fresh(HAND_BUILT + "import sys\nloaded = 'gradcheck.report' in sys.modules\n"
                 "print(report)\nprint('<div class=\"gradcheck\">' in report._repr_html_())\n"
                 "print(loaded)")
    lines = out.splitlines()
    assert lines[0] == "FAIL: 0 of 1 checks passed; 0 of 1 gradients passed"
    assert lines[-2:] == ["True", "False"]  # HTML too; the report module was not loaded before


def test_importing_gradcheck_supplies_renderings_without_loading_them():
    code = ("import sys, json, gradcheck; from gradcheck import _renderings\n"
            "print(json.dumps([_renderings.rendering('text') is not None, "
            "sorted(m for m in sys.modules if m.startswith('gradcheck'))]))")
    supplied, loaded = json.loads(_fresh(code))
    assert supplied
    assert {"gradcheck.report", "gradcheck.results"} & set(loaded) == set()


def test_without_a_supplied_rendering_a_report_says_so(monkeypatch):
    monkeypatch.setattr(_renderings, "_supplied", {})
    report = _report(kinds.PASS)
    assert str(report) == ("cube: pass (no text rendering supplied: "
                           "gradcheck._renderings.supply(kinds.TEXT, ...))")
    assert report._repr_html_() is None


def test_a_supplied_rendering_is_used(monkeypatch):
    monkeypatch.setattr(_renderings, "_supplied", {})
    _renderings.supply(kinds.TEXT, lambda report: f"<{report.layer}>")
    assert str(_report(kinds.PASS)) == "<cube>"


@pytest.mark.parametrize(("fmt", "render", "match"), [
    pytest.param(kinds.MARKDOWN, str, r"`fmt` must be one of \('text', 'html'\), got 'markdown'",
                 id="format"),
    pytest.param(kinds.TEXT, "text", r"`render` must be callable, got str", id="not-callable"),
])
def test_supply_validates(fmt, render, match):
    from gradcheck.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=match):
        _renderings.supply(fmt, render)
