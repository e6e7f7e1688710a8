"""A session's checks: collection order, property tests collapsed, and the trip across processes."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import numpy as np
import pytest

from gradcheck import _gather
from gradcheck._gather import Entry
from gradcheck.results import (
    CheckReport,
    Coverage,
    ExplainedElement,
    GradientResult,
    KinkElement,
    WorstElement,
)

NAN, INF = float("nan"), float("inf")


def _result(name: str = "x", error: float = 1e-12, budget: float = 1e-8, **changes):
    passed = error <= budget
    base = GradientResult(
        name=name, status="pass" if passed else "fail", max_abs_error=error, max_rel_error=error,
        budget=budget, worst_index=(0, 1), analytic_at_worst=0.5, numeric_at_worst=0.5, nfev=12,
        method="complex", coverage=Coverage(mode="full", elements=12, size=12), rtol=1e-8,
        atol=0.0, worst=(WorstElement((0, 1), 0.5, 0.5 + error, error, budget),))
    return replace(base, **changes)


def _report(layer: str = "bn", *results: GradientResult, case: str = "") -> CheckReport:
    return CheckReport(layer, results or (_result(),), {"x": (3, 4)}, "float64", 0, "complex",
                       case=case)


# --- the wire format -----------------------------------------------------------------------


ODD = _report(
    "odd", _result(coverage=Coverage(mode="full", elements=12, size=12, step=NAN, miss_norm=INF,
                                     detectable=-INF), worst_index=None,
                   kinks=(KinkElement((2,), -1.0, 1.0, 0.0, True),)),
    _result("gamma", error=1e-3, coverage=Coverage(mode="sampled", elements=5, size=4096,
                                                    directions=8)),
    case="N,C,H,W staged",
)
# A kink explained, an element left to rounding and one invalid kink, under a stated guarantee.
EXPLAINED = _report(
    "relu", _result(status="kink", coverage=Coverage(
        mode="sampled", elements=40, size=4096, directions=8, miss_norm=3e-7, detectable=2e-6,
        guarantee="probable", step=1e-200), explained=(
            ExplainedElement((3, 1), "invalid kink", 2.0, 0.5, 1e-8),
            ExplainedElement((0, 2), "rounding", 1e-9, 3e-9, 1e-9),
            ExplainedElement((1, 1), "kink", 0.0, 0.5, 1e-8))),
)


@pytest.mark.parametrize("report", [
    pytest.param(_report(), id="plain"),
    pytest.param(ODD, id="nan-inf-none-kinks-sampled"),
    pytest.param(EXPLAINED, id="coverage-and-explained"),
    pytest.param(replace(_report(), problems=("backward modified `dout`",),
                         warnings=("`x` is float32",), seconds=0.25), id="problems-warnings"),
])
def test_reports_survive_json_unchanged(report):
    entry = Entry(3, "t.py::test_a", True, report)
    sent = json.loads(json.dumps(_gather.encode([entry]), allow_nan=False))
    (back,) = _gather.decode(sent)
    # repr compares NaN fields too (NaN != NaN would defeat ==) and shows tuples as tuples
    assert repr(back) == repr(entry)
    assert type(back.report.results[0].worst) is tuple and type(back.report.shapes["x"]) is tuple
    assert all(type(r.coverage) is Coverage and type(r.explained) is tuple
               for r in back.report.results)


def test_numpy_scalars_are_sent_as_python_numbers():
    report = replace(_report(), seed=np.int64(7), seconds=np.float64(0.5))
    (back,) = _gather.decode(_gather.encode([Entry(0, "", False, report)]))
    assert (back.report.seed, back.report.seconds) == (7, 0.5)
    assert (type(back.report.seed), type(back.report.seconds)) == (int, float)


def test_encode_refuses_values_it_cannot_rebuild():
    report = replace(_report(), case=object())
    with pytest.raises(TypeError, match="cannot send a object across processes"):
        _gather.encode([Entry(0, "", False, report)])


def test_decode_rebuilds_only_gradcheck_results():
    payload = [{"position": 0, "nodeid": "", "is_property": False,
                "report": {"__dataclass__": "Popen", "args": "rm -rf /"}}]
    with pytest.raises(ValueError, match="refusing to rebuild 'Popen'"):
        _gather.decode(payload)


def test_entries_pickle_as_well():  # execnet is stricter than JSON about nothing we send
    entry = Entry(1, "t.py::a", False, _report())
    assert pickle.loads(pickle.dumps(_gather.encode([entry]))) == _gather.encode([entry])


# --- order and collapsing -------------------------------------------------------------------


def test_merged_workers_are_listed_in_collection_order():
    a, b, c = _report("a"), _report("b"), _report("c")
    worker0 = [Entry(2, "t.py::c", False, c)]
    worker1 = [Entry(0, "t.py::a", False, a), Entry(0, "t.py::a", False, b)]
    assert [r.layer for r in _gather.session_reports(worker0 + worker1)] == ["a", "b", "c"]


def test_a_plain_test_keeps_every_check():
    entries = [Entry(0, "t.py::a", False, _report("bn")) for _ in range(3)]
    assert len(_gather.session_reports(entries)) == 3


def _examples(*errors: float, layer: str = "bn", nodeid: str = "t.py::prop") -> list[Entry]:
    return [Entry(1, nodeid, True, _report(layer, _result(error=e), case=f"e={e}"))
            for e in errors]


@pytest.mark.parametrize(("errors", "shown", "label"), [
    pytest.param((1e-12, 5e-9, 1e-10), "e=5e-09", "e=5e-09 (3 examples, all passed)",
                 id="passing-shows-the-closest-to-budget"),
    pytest.param((1e-12, 1e-3, 2e-5, 1e-4, 1e-12), "e=0.0001",
                 "e=0.0001 (5 examples, 3 failed; the last failure shown)",
                 id="failing-shows-the-last-failure"),
])
def test_a_property_test_collapses_into_one_real_check(errors, shown, label):
    (report,) = _gather.session_reports(_examples(*errors))
    (original,) = [e.report for e in _examples(*errors) if e.report.case == shown]
    assert report.case == label
    assert replace(report, case=shown) == original


def test_property_examples_collapse_per_test_and_layer():
    entries = (_examples(1e-12, 1e-12, layer="staged") + _examples(1e-12, layer="compact")
               + _examples(1e-12, nodeid="t.py::other"))
    got = [(r.layer, r.case) for r in _gather.session_reports(entries)]
    assert got == [("staged", "e=1e-12 (2 examples, all passed)"),
                   ("compact", "e=1e-12 (1 example, all passed)"),
                   ("bn", "e=1e-12 (1 example, all passed)")]


def test_an_unlabelled_property_report_is_labelled_with_its_test():
    entries = [Entry(0, "t.py::prop", True, _report())]
    assert _gather.session_reports(entries)[0].case == "t.py::prop (1 example, all passed)"
