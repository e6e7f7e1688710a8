"""Replay: a failing check with --out writes its case; the printed command reproduces it exactly."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import bn_catalog as cat
import numpy as np
import pytest

from gradcheck.check import check_layer
from gradcheck.cli import main
from gradcheck.layer import from_functions
from gradcheck.replay import FILE_NAME, load_replay, write_replay

CATALOG = str(Path(cat.__file__))
BN = ["--forward", "batchnorm_forward", "--kwarg", 'bn_param={"mode": "train", "eps": 1e-3}']
FIXED = ["--shape", "x=5,4", "--shape", "gamma=4", "--shape", "beta=4", "--seed", "3"]
SYMBOLIC = ["--shape", "x=N,D", "--shape", "gamma=D", "--shape", "beta=D", "--examples", "5"]


def _without_timings(data):
    for report in data["reports"]:
        report.pop("seconds")
        for r in report["results"]:
            r.pop("seconds")
    return data["reports"]


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("backward", "shapes"), [
    pytest.param("missing_mean_term", FIXED, id="fixed-shapes"),
    pytest.param("odd_batch_bug", SYMBOLIC, id="property-mode-shrunk-case"),
    pytest.param("dbeta_keepdims", FIXED, id="shape-failure"),
])
def test_the_printed_command_replays_the_failure_bit_for_bit(backward, shapes, tmp_path, capsys):
    out_dir = tmp_path / "reports"
    argv = ["check", CATALOG, *BN, "--backward", backward, *shapes, "--format", "json",
            "--out", str(out_dir)]
    code, first, err = _run(argv, capsys)
    assert code == 1
    [command] = re.findall(r"replay this failure: (gradcheck replay .+)", err)
    assert command == f"gradcheck replay {out_dir / FILE_NAME}"
    words = shlex.split(command)[1:]
    code2, second, _ = _run([*words, "--format", "json"], capsys)
    assert code2 == 1
    original, replayed = json.loads(first), json.loads(second)
    assert _without_timings(replayed) == _without_timings(original)


def test_a_passing_check_writes_no_replay(tmp_path, capsys):
    argv = ["check", CATALOG, *BN, "--backward", "backward_compact", *FIXED, "--out",
            str(tmp_path)]
    code, _, err = _run(argv, capsys)
    assert code == 0
    assert not (tmp_path / FILE_NAME).exists() and "replay" not in err


def _inputs():
    rng = np.random.default_rng(4)
    return {"x": rng.normal(2.0, 3.0, size=(5, 3)).astype(np.float32),
            "gamma": rng.uniform(0.5, 2.0, 3).astype(np.float32),
            "beta": rng.normal(size=3).astype(np.float32)}


@pytest.mark.filterwarnings("ignore:.*are not float64")
def test_the_file_holds_the_exact_arrays(tmp_path):
    layer = from_functions(cat.batchnorm_forward, cat.sign_error, config={"bn_param": {}})
    inputs = _inputs()
    report = check_layer(layer, inputs, seed=11)
    path = write_replay(report, tmp_path / FILE_NAME, method="auto", mode="auto",
                        layer={"file": "x.py"})
    case = load_replay(path)
    assert list(case.inputs) == ["x", "gamma", "beta"] and case.seed == 11
    for k, v in inputs.items():
        assert case.inputs[k].dtype == np.float32 and np.array_equal(case.inputs[k], v)
    again = check_layer(layer, case.inputs, seed=case.seed, dout=case.dout, wrt=case.wrt)
    for a, b in zip(report.results, again.results, strict=True):
        assert np.array_equal(a.evidence.analytic, b.evidence.analytic)
        assert np.array_equal(a.evidence.estimate.value, b.evidence.estimate.value)
        assert a.worst == b.worst and a.max_abs_error == b.max_abs_error


@pytest.mark.parametrize(("content", "match"), [
    pytest.param(None, "must be an existing replay file", id="missing"),
    pytest.param(b"not a zip", "must be a gradcheck replay file", id="not-npz"),
    pytest.param("other-npz", "must be a gradcheck replay file", id="foreign-npz"),
])
def test_replay_input_errors(content, match, tmp_path, capsys):
    path = tmp_path / "case.npz"
    if content == "other-npz":
        np.savez(path, a=np.zeros(2))
    elif content is not None:
        path.write_bytes(content)
    code, _, err = _run(["replay", str(path)], capsys)
    assert code == 2
    assert match in err
