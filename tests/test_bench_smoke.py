"""Smoke test of the benchmarks (`make bench`): a tiny configuration, the files and their shape.

No timing assertions: this only proves that bench/run.py runs end to end and writes what it
promises. torch is left out so the test is fast and does not depend on the optional extra.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench_run():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT))  # `bench` is a directory of the repository, not installed
        return importlib.import_module("bench.run")


@pytest.fixture(scope="module")
def tiny(bench_run, tmp_path_factory):
    config = bench_run.Config(
        name="smoke",
        speed_shapes=((4, 5), (2, 3, 4, 4)),
        scale_shapes=((8, 6),),
        sensitivity=(((4, 5), ("gc-full", "gc-sampled", "gc-directional", "course",
                               "torch-fast")),),
        deltas=(1e-2, 1e-9),
        seeds=1,
        accuracy_shapes=((4, 5),),
        use_torch=False,
        max_seconds=0.5,
        reference_shape=None,
        max_runs=1,
        pin_allocator=False,  # leave this process's malloc alone
    )
    out = tmp_path_factory.mktemp("bench")
    log = tmp_path_factory.mktemp("log") / "progress.txt"
    with log.open("w") as stream:
        result = bench_run.run(config, out, stream=stream)
    return result, out, log.read_text()


def test_writes_both_files(tiny):
    _, out, _ = tiny
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.md"]


def test_json_structure(tiny):
    _, out, _ = tiny
    data = json.loads((out / "bench.json").read_text())
    for key in ("machine", "config", "speed", "scale", "sensitivity", "false_positives",
                "accuracy", "targets", "skipped", "total_seconds", "allocator"):
        assert key in data, key
    for key in ("cpu_count", "numpy", "torch", "date"):
        assert key in data["machine"], key
    assert [t["id"] for t in data["targets"]] == ["T1", "T2", "T3"]


def test_speed_records(tiny):
    result, _, _ = tiny
    speed = [r for r in result["speed"] if r["section"] == "speed"]
    labels = {r["label"] for r in speed}
    assert {"gradcheck complex/full", "gradcheck central/sampled",
            "gradcheck complex/directional", "gradcheck auto/directional", "course checker",
            "torch default", "torch fast_mode"} <= labels
    for r in speed:
        assert r["status"] in ("measured", "skipped")
        if r["status"] == "measured":
            assert r["nfev"] > 0 and r["passed"] is True
            assert len(r["times_s"]) == r["runs"] >= 1
        else:
            assert r["reason"]
    directional = [r for r in speed if r["mode"] == "directional" and r["status"] == "measured"]
    assert directional
    for r in directional:  # no element sample: 8 directions per gradient, a miss bound for each
        assert r["judged"] == 0 and r["coverage"] == "24 directions"
        assert set(r["detail"]["miss_norm"]) == {"x", "gamma", "beta"}
        assert r["forward_calls"] > r["nfev"]  # the analytic run (and auto's probe) too
    torch_rows = [r for r in speed if r["checker"] == "torch"]
    assert all(r["status"] == "skipped" and "disabled" in r["reason"] for r in torch_rows)


def test_sensitivity_flags_the_big_bug(tiny):
    result, _, _ = tiny
    sweeps = result["sensitivity"]
    assert {s["label"] for s in sweeps} == {"gradcheck auto/full", "gradcheck auto/sampled",
                                            "gradcheck auto/directional", "course checker"}
    for s in sweeps:
        assert s["flags"][0] is True, s  # dx off by 1 % is caught by every checker
        assert s["smallest_flagged"] is not None
    assert all(a["false_positives"] == 0 for a in result["false_positives"])


def test_accuracy_rows(tiny):
    result, _, _ = tiny
    rows = result["accuracy"]["rows"]
    methods = {r["method"] for r in rows}
    assert {"complex", "central", "richardson"} <= methods
    complex_x = next(r for r in rows if r["method"] == "complex" and r["gradient"] == "x")
    assert complex_x["rel_to_max"] < 1e-12
    assert complex_x["bound_covers"] == 1.0


def test_markdown_sections_and_progress(tiny):
    _, out, progress = tiny
    text = (out / "bench.md").read_text()
    for heading in ("## Targets", "## 1. Speed", "## 2. Sensitivity", "## 3. Accuracy",
                    "## 4. Scale"):
        assert heading in text
    assert "| shape" in text  # GitHub tables
    assert "[bench" in progress and "wrote" in progress


def test_smallest_flagged(bench_run):
    deltas = (1e-2, 1e-3, 1e-4, 1e-5)
    assert bench_run.smallest_flagged(deltas, [True, True, False, None]) == 1e-3
    assert bench_run.smallest_flagged(deltas, [False, True, False, None]) is None
    assert bench_run.smallest_flagged(deltas, [True, True, True, True]) == 1e-5


def _record(bench_run, checkers, shape, method, mode, seconds, nfev, calls, key="gradcheck"):
    if key == "gradcheck":
        checker = checkers.gradcheck_checker(method, mode)
    else:
        checker = checkers.Checker("torch", "central eps=1e-6", mode, lambda *a: None)
    record = bench_run._speed_record(checker, shape, "speed")
    record.update(status="measured", median_s=seconds, nfev=nfev, forward_calls=calls,
                  passed=True, coverage="24 directions", runs=1, times_s=[seconds],
                  detail={"miss_norm": {"x": 1e-3, "gamma": 1e-4, "beta": 1e-4},
                          "method_used": "complex"})
    return record


def test_fast_mode_targets_render(bench_run):
    """T2 and T3 on made-up numbers: judged per fast mode for auto and complex, and rendered."""
    from bench import checkers, render

    small, big = bench_run.TARGET_FULL_SHAPE, bench_run.TARGET_BIG_SHAPE
    records = [_record(bench_run, checkers, small, "", "fast_mode", 0.01, 8, 8, key="torch")]
    for shape, scale in ((small, 0.01), (big, 1.0)):
        records += [
            _record(bench_run, checkers, shape, "complex", "directional", 1.5 * scale, 48, 52),
            _record(bench_run, checkers, shape, "auto", "directional", 4.0 * scale, 48, 371),
            _record(bench_run, checkers, shape, "complex", "sampled", 3.5 * scale, 192, 196),
            _record(bench_run, checkers, shape, "auto", "sampled", 6.0 * scale, 192, 515),
        ]
    sweeps = []
    for label, smallest in (("gradcheck auto/sampled", 1e-9), ("gradcheck auto/directional", 1e-9),
                            ("torch fast_mode", None)):
        for kind in ("scaled", "element"):
            sweeps.append({"shape": list(small), "label": label, "kind": kind,
                           "smallest_flagged": smallest,
                           "first_flagged_above": 1.0 if smallest is None else None,
                           "methods_used": ["complex"]})
    costs = bench_run.CostModel()
    for shape in (small, big):  # no forward timed here
        costs.forward_cost[(shape, True)] = 0.025 if shape == big else 2e-4
        costs.forward_cost[(shape, False)] = 0.01 if shape == big else 1e-4
    t2 = bench_run.target_fast(records, sweeps, costs)
    assert t2["met_by"] == ["complex/directional"] and t2["met"] is True
    assert t2["candidates"][0]["label"] == "complex/directional"  # fastest first
    auto = next(c for c in t2["candidates"] if c["label"] == "auto/directional")
    assert auto["probe"]["forward_calls"] == 371 - 52 and auto["met"] is False
    t3 = bench_run.target_big(records, costs)
    assert t3["met_by"] == ["complex/directional"]
    for text in (render._t2(t2), render._t3(t3)):
        assert "MET by complex/directional" in text and "auto/directional" in text
        assert "probe added 319 calls" in text
