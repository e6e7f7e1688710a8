"""Smoke test of issue 16's targets (bench/targets.py) at tiny sizes: structure, not speed.

No timing assertions (the ratios depend on the machine and its load); this proves each target
runs end to end, reports a ratio consistent with its numerator, denominator and limit, and states
what the issue asks it to state (mode and miss bound, evaluations, the load average).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"id", "target", "ratio", "limit", "met", "numerator", "denominator", "details"}


@pytest.fixture(scope="module")
def targets():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT))  # `bench` is a directory of the repository, not installed
        return importlib.import_module("bench.targets")


@pytest.fixture(scope="module")
def tiny(targets):
    return targets.Sizes(name="tiny", directional=(8, 6), auto_shapes=((4, 5),),
                         big=(2, 3, 4, 4), full=(4, 5), concurrent=(4, 5), repeats=1,
                         budget_s=1.0, cli_runs=1, concurrent_s=0.05, deltas=(1e-2, 1e-9))


@pytest.fixture(scope="module")
def outcome(targets, tiny, tmp_path_factory):
    """T2, T3 and T4 in this process (T1 needs torch, T5 and T6 subprocesses: tested below)."""
    log = tmp_path_factory.mktemp("log") / "progress.txt"
    with log.open("w") as stream:
        result = targets.run(tiny, stream=stream, only=["T2", "T3", "T4"])
    return result, log.read_text()


def _consistent(record):
    assert set(record) == KEYS
    if record["met"] is None:
        assert record["ratio"] is None and record["details"]["why"].startswith("not measured")
        return
    assert record["numerator"] > 0 and record["denominator"] > 0
    assert math.isclose(record["ratio"], record["numerator"] / record["denominator"])
    assert record["met"] is (record["ratio"] <= record["limit"])
    assert record["details"]["why"]


def test_run_measures_what_it_was_asked(outcome):
    result, progress = outcome
    assert [t["id"] for t in result["targets"]] == ["T2", "T3", "T4"]
    assert len(result["load_average_at_start"]) == 3
    for record in result["targets"]:
        _consistent(record)
        assert len(record["details"]["load_before"]) == 3
    assert "T3: ratio" in progress


def test_auto_vs_complex_every_mode(outcome):
    t2 = outcome[0]["targets"][0]
    rows = t2["details"]["rows"]
    assert [r["mode"] for r in rows] == ["full", "sampled", "directional"]
    assert all(r["passed"] for r in rows)
    assert t2["ratio"] == pytest.approx(max(r["ratio"] for r in rows))


def test_default_big_states_mode_and_evaluations(outcome):
    t3 = outcome[0]["targets"][1]["details"]
    assert t3["verdict"] == "pass"
    assert set(t3["gradients"]) == {"x", "gamma", "beta"}
    assert t3["modes"] and t3["nfev"] > 0
    assert t3["forward_calls"] >= t3["nfev"]  # every evaluation is a call of the forward


def test_full_mode_counts_its_forwards(outcome):
    t4 = outcome[0]["targets"][2]["details"]
    assert t4["status"] == "pass" and t4["nfev"] >= t4["elements"] == 20
    assert t4["profile_top"] and all(r["own_s"] >= 0 for r in t4["profile_top"])


def test_directional_without_torch(targets, tiny, monkeypatch):
    monkeypatch.setattr(targets.baselines, "torch_status", lambda: (None, "no module torch"))
    record = targets.target_directional(tiny)
    _consistent(record)
    assert record["met"] is None and "torch not installed" in record["details"]["why"]


def test_cli_runs_the_course_file(targets, tiny):
    record = targets.target_cli(tiny)
    _consistent(record)
    assert record["met"] is not None, record["details"]["why"]  # exit code 0
    assert record["details"]["exit_code"] == 0 and record["denominator"] == 0.4
    assert "--op batchnorm" in record["details"]["command"]


def test_concurrent_workers_report_their_checks(targets):
    pair = targets._checkers(2, (4, 5), 0.05)
    assert len(pair) == 2
    for run in pair:
        assert len(run["wall"]) == len(run["cpu"]) >= 1
        assert min(run["wall"]) > 0 and min(run["cpu"]) > 0


def test_concurrent_alternates_phases_and_pairs_a_control(targets, tiny):
    record = targets.target_concurrent(tiny)
    _consistent(record)
    details = record["details"]
    rounds = targets.T6_ROUNDS
    for side in (details, details["control"]):
        assert len(side["alone_by_phase_s"]) == rounds + 1
        assert len(side["pair_by_phase_s"]) == rounds
        assert side["units"]["pair"] >= 2 * rounds and side["units"]["alone"] >= rounds + 1
    assert details["ratio_vs_control"] == pytest.approx(
        record["ratio"] / details["control"]["ratio"])
    assert "pure-Python loop" in details["why"]


def test_interleaved_alternates_and_stops_at_the_budget(targets):
    order = []
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times = targets.interleaved(fns, repeats=4, budget_s=60.0)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert [len(v) for v in times.values()] == [4, 4]
    slow = {"a": lambda: targets.time.sleep(0.02)}
    assert len(targets.interleaved(slow, repeats=10, budget_s=0.03)["a"]) == 1


@pytest.mark.parametrize(("ours", "theirs", "lead", "lower"), [
    pytest.param({"smallest": 1e-9}, {"smallest": 1e-2, "above": None}, 1e7, False, id="both"),
    pytest.param({"smallest": 1e-9}, {"smallest": None, "above": 10.0}, 1e10, False,
                 id="torch-above-range"),
    pytest.param({"smallest": 1e-9}, {"smallest": None, "above": None}, 1e11, True,
                 id="torch-blind"),
    pytest.param({"smallest": None}, {"smallest": 1e-2, "above": None}, None, False,
                 id="ours-blind"),
])
def test_sensitivity_lead(targets, ours, theirs, lead, lower):
    got, bound = targets._lead(ours, theirs)
    assert bound is lower
    assert got == (None if lead is None else pytest.approx(lead))


def test_table_and_files(targets, outcome, tmp_path):
    result, _ = outcome
    text = targets.table(result)
    assert text.startswith("Targets (issues 16 and 25)") and "load average" in text
    assert "T3" in text and ("MET" in text or "NOT MET" in text)
    targets.write(result, tmp_path)
    data = json.loads((tmp_path / "targets.json").read_text())
    assert [t["id"] for t in data["targets"]] == ["T2", "T3", "T4"]
    assert "| T4" in (tmp_path / "targets.md").read_text()


def test_docstring_examples(targets):
    """bench/ is not in pytest's testpaths: run its doctests (import-time parsers, the layer)."""
    import doctest

    from bench import course_layers

    for module in (targets, course_layers):
        outcome = doctest.testmod(module)
        assert outcome.attempted > 0 and outcome.failed == 0, module.__name__


def test_grad_norms_are_read_against_an_independent_upstream(targets):
    """dx = P(dout)/std (P removes 2 of n directions per channel): ‖dx‖ ≈ ‖dout‖/std, not ≈ 0
    as it would be if dout were drawn from x's own random stream (dout ∝ xhat)."""
    import numpy as np

    shape = (8, 3, 6, 6)
    inputs = targets.course_inputs(shape)
    norms = targets.course_grad_norms(inputs)
    std = inputs["x"].transpose(0, 2, 3, 1).reshape(-1, 3).std(axis=0)
    expected = np.linalg.norm(targets.checkers.upstream(shape, 0)) / np.mean(std)
    assert 0.5 < norms["x"] / expected < 1.5


def test_scale_targets_and_table(targets, tiny, tmp_path):
    sizes = dataclasses.replace(tiny, scaled=((4, 5), (8, 6)), memory=((8, 6),))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(targets, "T7_FROM", 30)  # 8x6 stands in for the sizes from 256k up
        times = targets.target_scale_time(sizes)
        memory = targets.target_scale_memory(sizes)
    assert [t["id"] for t in times] == ["T7"] and "8x6" in times[0]["target"]
    assert [t["details"]["dtype"] for t in memory] == ["float64", "float32"]
    for record in times + memory:
        _consistent(record)
    row = times[0]["details"]
    assert row["forward_calls"] >= row["complex_forward_calls"] > 0 and row["backward_calls"]
    outcome = {"date": "now", "cpu_count": 2, "load_average_at_start": [1.0, 1.0, 1.0],
               "load_average_at_end": [1.0, 1.0, 1.0], "command": "bench"}
    targets.write_scale(targets.scale_rows(sizes), outcome, tmp_path)
    assert "| 8×6" in (tmp_path / "scale.md").read_text()
    assert len(json.loads((tmp_path / "scale.json").read_text())["rows"]) == 3


def test_failing_cli_is_diagnosed(targets, tiny):
    record = targets.target_cli_failing(tiny)
    _consistent(record)
    assert record["met"] is not None, record["details"]["why"]  # exit code 1
    assert record["details"]["exit_code"] == 1 and record["details"]["diagnosed"]
