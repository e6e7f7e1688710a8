"""The records a check returns: verdicts, what ``miss_norm`` means, and no rendering of their own.

``results`` sits below every rendering (``gradcheck.report`` imports it, never the reverse);
``print(report)`` and ``_repr_html_`` work through the renderings the package supplies
(``gradcheck._renderings``), whatever else was imported.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import gradcheck
from gradcheck import _renderings, kinds, results
from gradcheck._engine import judge
from gradcheck.results import CheckReport, Coverage, GradientResult

ROOT = Path(__file__).resolve().parents[1]
NAN = float("nan")


def _result(status: str = kinds.PASS, **changes) -> GradientResult:
    base = GradientResult(
        name="x", status=status, max_abs_error=1e-12, max_rel_error=1e-13, budget=1e-8,
        worst_index=(0,), analytic_at_worst=3.0, numeric_at_worst=3.0, nfev=2,
        method=kinds.COMPLEX, coverage=Coverage(mode=kinds.FULL, elements=2, size=2, step=1e-20),
        rtol=1e-8, atol=0.0)
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
    assert results.MISS_PROBABILITY == judge.MISS_PROBABILITY


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


HAND_BUILT = ("from gradcheck.results import CheckReport, Coverage, GradientResult\n"
              "r = GradientResult(name='x', status='fail', max_abs_error=1.0, max_rel_error=1.0, "
              "budget=1e-8, worst_index=(0,), analytic_at_worst=2.0, numeric_at_worst=1.0, "
              "nfev=2, method='complex', coverage=Coverage(mode='full', elements=1, size=1), "
              "rtol=1e-8, atol=0.0)\n"
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


# --- coverage and the explained elements --------------------------------------------------------


def test_the_records_are_built_by_keyword():
    with pytest.raises(TypeError):
        GradientResult("x", kinds.PASS, 0.0, 0.0, 1e-8, (0,), 1.0, 1.0, 1,  # type: ignore[misc]
                       kinds.COMPLEX, Coverage(mode=kinds.FULL, elements=1, size=1), 1e-8, 0.0)
    with pytest.raises(TypeError):
        Coverage(kinds.FULL, 1, 1)  # type: ignore[misc]


@pytest.mark.parametrize("name", ["mode", "elements", "size", "directions", "miss_norm",
                                  "detectable", "step"])
def test_the_result_reads_its_coverage(name):
    coverage = Coverage(mode=kinds.SAMPLED, elements=3, size=40, directions=8, miss_norm=2e-9,
                        detectable=1e-7, guarantee=kinds.PROBABLE, step=1e-5)
    assert getattr(_result(coverage=coverage), name) == getattr(coverage, name)


@pytest.mark.parametrize(("changes", "match"), [
    pytest.param({"guarantee": "sure", "detectable": 1e-7}, r"`guarantee` must be one of .*'sure'",
                 id="unknown-guarantee"),
    pytest.param({"guarantee": kinds.CERTAIN}, r"'certain' guarantee needs a finite `detectable`",
                 id="certain-without-detectable"),
    pytest.param({"guarantee": kinds.PROBABLE, "detectable": math.inf},
                 r"'probable' guarantee needs a finite `detectable`, got inf",
                 id="probable-with-infinite-detectable"),
])
def test_coverage_validates_its_guarantee(changes, match):
    with pytest.raises(ValueError, match=match):
        Coverage(mode=kinds.FULL, elements=1, size=1, **changes)


def _cube(v):
    return np.sum(v**3)


X = np.linspace(-1.0, 1.0, 600).reshape(20, 30)


@pytest.mark.parametrize(("grad", "mode", "expected"), [
    # (mode, elements compared, directions, guarantee); 8 directions, as the README states
    pytest.param(lambda v: 3 * v**2, kinds.FULL, (kinds.FULL, 600, 0, kinds.CERTAIN),
                 id="full-every-element-certain"),
    pytest.param(lambda v: 3 * v**2, kinds.DIRECTIONAL, (kinds.DIRECTIONAL, 0, 8, kinds.PROBABLE),
                 id="directional-probable"),
    pytest.param(lambda v: 3 * v[:2] ** 2, kinds.FULL, ("-", 0, 0, kinds.NO_GUARANTEE),
                 id="shape-nothing-covered"),
    pytest.param(lambda v: np.full_like(v, np.nan), kinds.FULL, ("-", 0, 0, kinds.NO_GUARANTEE),
                 id="nonfinite-nothing-covered"),
])
def test_coverage_states_what_was_compared_and_how_detectable_holds(grad, mode, expected):
    r = gradcheck.check_grads(_cube, grad, X, mode=mode).results[0]
    c = r.coverage
    assert (c.mode, c.elements, c.directions, c.guarantee) == expected
    assert c.size == 600
    assert math.isfinite(c.detectable) == bool(c.guarantee)
    assert math.isfinite(c.miss_norm) == (c.directions > 0)


def test_a_sample_states_its_elements_and_the_directions_carry_the_guarantee():
    c = gradcheck.check_grads(_cube, lambda v: 3 * v**2, X, mode=kinds.SAMPLED).results[0].coverage
    assert c.mode == kinds.SAMPLED and 0 < c.elements < c.size == 600
    assert c.directions == 8 and c.guarantee == kinds.PROBABLE
    assert 0 < c.detectable < 1e-6 and 0 < c.miss_norm < math.inf


def _relu(g: np.ndarray, x: np.ndarray, **options) -> GradientResult:
    """``sum(g * max(x, 0))`` with ``dout = 1``: the gradient is ``g`` where ``x > 0`` and 0
    where ``x < 0``; at an exact 0 the one-sided derivatives are 0 (left) and ``g_k`` (right),
    and the analytic ``g * (x > 0)`` takes 0 there: a valid choice."""
    report = gradcheck.check_grads(lambda v: np.sum(g * np.maximum(v, 0)), lambda v: g * (v > 0),
                                   x, dout=np.array(1.0), mode=kinds.FULL, **options)
    return report.results[0]


@pytest.mark.parametrize(("method", "numeric"), [
    # central stencils average the two sides: (1.7 h - 0) / (2 h)
    pytest.param(kinds.CENTRAL, 0.85, id="central"),
    pytest.param(kinds.RICHARDSON, 0.85, id="richardson"),
    # NumPy orders complex numbers lexicographically, max(0 + ih, 0) = ih: the right side
    pytest.param(kinds.COMPLEX, 1.7, id="complex"),
])
def test_explained_lists_a_kink(method, numeric):
    g = np.array([0.3, 1.7, -0.8, 1.1])
    r = _relu(g, np.array([-1.5, 0.0, 2.0, 0.7]), method=method)
    assert r.status == kinds.KINK and r.passed
    (kink,) = r.explained  # the three smooth elements are within budget
    assert (kink.index, kink.explanation, kink.analytic) == ((1,), "kink", 0.0)
    assert kink.numeric == pytest.approx(numeric, rel=1e-6)
    assert 0 < kink.budget < abs(kink.numeric)  # over budget, and explained
    assert [k.index for k in r.kinks] == [(1,)]
    assert (r.coverage.elements, r.coverage.guarantee) == (4, kinds.CERTAIN)


def test_explained_keeps_the_worst_256():
    g = np.linspace(0.5, 2.0, 300)
    r = _relu(g, np.zeros(300), method=kinds.CENTRAL)
    assert len(r.explained) == 256 and {e.explanation for e in r.explained} == {"kink"}
    assert all(e.analytic == 0.0 for e in r.explained)
    ratios = [abs(e.numeric - e.analytic) / e.budget for e in r.explained]
    assert ratios == sorted(ratios, reverse=True)
