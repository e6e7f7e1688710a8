"""The command line, in process: exit codes, output formats, a file nobody wrote for us."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from gradcheck.cli import main

COURSE_FILE = textwrap.dedent(
    '''
    import numpy as np

    def batchnorm_forward(x, gamma, beta, bn_param):
        mode = bn_param["mode"]
        eps = bn_param.get("eps", 1e-5)
        mu = x.mean(axis=0)
        xc = x - mu
        var = (xc ** 2).mean(axis=0)
        xhat = xc / np.sqrt(var + eps)
        bn_param["running_mean"] = 0.9 * bn_param.get("running_mean", 0) + 0.1 * mu
        return gamma * xhat + beta, (xhat, gamma, np.sqrt(var + eps))

    def batchnorm_backward(dout, cache):
        xhat, gamma, std = cache
        dx = gamma / std * (dout - dout.mean(0) - xhat * (dout * xhat).mean(0))
        return dx, (dout * xhat).sum(0), dout.sum(0)

    def broken_backward(dout, cache):
        xhat, gamma, std = cache
        dx = gamma / std * (dout - xhat * (dout * xhat).mean(0))  # mean term missing
        return dx, (dout * xhat).sum(0), dout.sum(0)

    class Affine:
        def __init__(self, d):
            self.params = {"w": np.linspace(0.5, 2.0, d), "b": np.zeros(d)}
            self.grads = {}
        def forward(self, x):
            self.x = x
            return x * self.params["w"] + self.params["b"]
        def backward(self, dout):
            self.grads["w"] = (dout * self.x).sum(0)
            self.grads["b"] = dout.sum(0)
            return dout * self.params["w"]
    '''
)

BN_ARGS = ["--shape", "x=4,5", "--shape", "gamma=5", "--shape", "beta=5",
           "--kwarg", 'bn_param={"mode": "train"}']


@pytest.fixture
def layer_file(tmp_path):
    path = tmp_path / "my_layers.py"
    path.write_text(COURSE_FILE)
    return str(path)


def test_correct_layer_exits_0(layer_file, capsys):
    assert main(["check", layer_file, "--op", "batchnorm", *BN_ARGS]) == 0
    out = capsys.readouterr().out
    assert "dx" in out and "dgamma" in out and "pass" in out


def test_broken_layer_exits_1(layer_file, capsys):
    code = main(["check", layer_file, "--forward", "batchnorm_forward",
                 "--backward", "broken_backward", *BN_ARGS])
    assert code == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("backward,expected", [("batchnorm_backward", True),
                                                ("broken_backward", False)])
def test_json_output_has_stable_keys(layer_file, capsys, backward, expected):
    main(["check", layer_file, "--forward", "batchnorm_forward", "--backward", backward,
          *BN_ARGS, "--format", "json", "--seed", "3"])
    doc = json.loads(capsys.readouterr().out)
    assert {"passed", "layer", "method", "seed", "dtype", "results"} <= set(doc)
    assert doc["passed"] is expected and doc["seed"] == 3 and doc["dtype"] == "float64"
    keys = {"name", "passed", "max_abs_error", "max_rel_error", "budget", "worst_index",
            "analytic_at_worst", "numeric_at_worst", "nfev"}
    assert [r["name"] for r in doc["results"]] == ["x", "gamma", "beta"]
    assert all(keys <= set(r) for r in doc["results"])


def test_class_layer(layer_file):
    assert main(["check", layer_file, "--layer", "Affine", "--kwarg", "d=3",
                 "--shape", "x=4,3", "--format", "markdown"]) == 0


def test_float32_and_out_dir(layer_file, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["check", layer_file, "--op", "batchnorm", *BN_ARGS, "--dtype", "float32",
                 "--out", str(out)]) == 0
    assert (out / "results.json").is_file() and (out / "summary.md").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["check", "missing.py", "--op", "bn", "--shape", "x=2,2"],
                     "must be an existing file", id="missing-file"),
        pytest.param(["check", "{file}", "--op", "nothere", "--shape", "x=2,2"],
                     "'nothere_forward' is not a callable", id="missing-op"),
        pytest.param(["check", "{file}", "--op", "batchnorm", "--shape", "x4,5"],
                     "`--shape` must look like NAME=D1,D2", id="bad-shape"),
        pytest.param(["check", "{file}", "--op", "custom", "--forward", "batchnorm_forward",
                      "--backward", "broken_backward"], "no shape for `x`, `gamma`, `beta`",
                     id="no-shape"),  # an op the registry does not know needs --shape
        pytest.param(["check", "{file}", "--forward", "broken_backward", "--shape", "x=2,2"],
                     "found no backward for broken_backward", id="forward-alone"),
        pytest.param(["check", "{file}", "--op", "batchnorm", "--method", "magic"],
                     "invalid choice", id="bad-method"),
        pytest.param(["frobnicate"], "invalid choice", id="bad-command"),
    ],
)
def test_usage_and_input_errors_exit_2(layer_file, capsys, argv, message):
    argv = [a.replace("{file}", layer_file) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_layer_that_raises_exits_3(layer_file, capsys):
    assert main(["check", layer_file, "--op", "batchnorm", *BN_ARGS[:6],
                 "--kwarg", "bn_param={}"]) == 3
    err = capsys.readouterr().err
    assert "batchnorm: forward raised KeyError" in err and "Traceback" not in err


def test_debug_shows_traceback(layer_file, capsys):
    assert main(["check", layer_file, "--op", "batchnorm", *BN_ARGS[:6], "--kwarg", "bn_param={}",
                 "--debug"]) == 3
    assert "Traceback" in capsys.readouterr().err


# What only failures and the other formats need; a passing check's text report loads none of
# it, so `gradcheck check --in-process` starts faster (issue 16's T5). Behind the worker (the
# default) gradcheck loads all it may need before the layer's file runs (issue 22), while the
# worker's interpreter starts.
REPORT_ONLY = ("tabulate", "gradcheck._html", "gradcheck._svg")
_LOADED = ("import json, sys\nfrom gradcheck.cli import main\ncode = main(sys.argv[1:])\n"
           f"print(json.dumps([code, [m for m in {REPORT_ONLY!r} if m in sys.modules]]))")


@pytest.mark.parametrize("options, code, loaded", [
    pytest.param(["--op", "batchnorm"], 0, [], id="passing-text-loads-none"),
    pytest.param(["--forward", "batchnorm_forward", "--backward", "broken_backward"], 1,
                 ["tabulate"], id="failing-text-tabulates-its-worst-elements"),
    pytest.param(["--op", "batchnorm", "--format", "markdown"], 0, ["tabulate"], id="markdown"),
    pytest.param(["--op", "batchnorm", "--format", "html"], 0,
                 ["gradcheck._html", "gradcheck._svg"], id="html"),
])
def test_report_modules_load_only_when_needed(layer_file, options, code, loaded):
    done = subprocess.run([sys.executable, "-c", _LOADED, "check", layer_file, *options,
                           *BN_ARGS, "--in-process"], capture_output=True, text=True,
                          check=False)
    assert json.loads(done.stdout.splitlines()[-1]) == [code, loaded], done.stderr


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "gradcheck" in capsys.readouterr().out
