"""The forward check: correct forwards pass in every convention; each known mistake is named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck.errors import InvalidArgument
from gradcheck.forward_check import (
    RTOL,
    ForwardReport,
    check_forward,
    render_forward_report,
)

# ---------------------------------------------------------------------------------------------
# A course-style BatchNorm written from scratch, with switches for the mistakes people make

LAWS = {  # batch weight is momentum?, unbiased running var?, initial running var
    "torch": (True, True, 1.0),
    "keras": (False, False, 1.0),
    "cs231n": (False, False, 0.0),
}


def make_batchnorm(convention="cs231n", **bug):
    torch_weight, unbiased, init_var = LAWS[convention]
    torch_weight ^= bug.get("swap_momentum", False)
    unbiased ^= bug.get("flip_running_bias", False)
    init_var = bug.get("init_var", init_var)
    rng = np.random.default_rng(0)

    def stats(x, axes):
        if bug.get("random_half"):
            rows = rng.permutation(x.shape[0])[: x.shape[0] // 2]
            mu = x[rows].mean(axis=axes, keepdims=True)
        else:
            mu = x.mean(axis=axes, keepdims=True)
        v = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
        if bug.get("unbiased_train"):
            n = x.size // mu.size
            v = v * n / (n - 1)
        return mu, v

    def normalise(xc, v, eps):
        if bug.get("eps_outside"):
            return xc / (np.sqrt(v) + eps)
        if bug.get("divide_by_var"):
            return xc / (v + eps)
        return xc / np.sqrt(v + eps)

    def batchnorm_forward(x, gamma, beta, bn_param):
        mode, eps = bn_param["mode"], bn_param.get("eps", 1e-5)
        m = bn_param.get("momentum", 0.9)
        c = x.shape[1]
        axes = (1,) if bug.get("wrong_axis") else (0, *range(2, x.ndim))
        col = (1, c) + (1,) * (x.ndim - 2)
        rm = bn_param.get("running_mean", np.zeros(c))
        rv = bn_param.get("running_var", np.full(c, init_var))
        if mode == "train" or bug.get("test_batch_stats"):
            mu, v = stats(x, axes)
            xhat = normalise(x - mu, v, eps)
            if mode == "train" and not bug.get("no_update"):
                n = x.size // c
                bv = v.reshape(-1)[:c] * (n / (n - 1) if unbiased else 1.0)
                w = m if torch_weight else 1.0 - m
                rm = (1 - w) * rm + w * mu.reshape(-1)[:c]
                rv = (1 - w) * rv + w * bv
        else:
            xhat = normalise(x - rm.reshape(col), rv.reshape(col), eps)
        bn_param["running_mean"], bn_param["running_var"] = rm, rv
        g, b = gamma.reshape(col), beta.reshape(col)
        if bug.get("no_gamma"):
            g = 1.0
        if bug.get("swap_gamma_beta"):
            g, b = b, g
        return g * xhat + (0.0 if bug.get("no_beta") else b), None

    return batchnorm_forward


def layernorm_forward(x, gamma, beta, ln_param, *, bug=None):
    axes = (0,) if bug == "batch_axis" else tuple(range(1, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    v = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    if bug == "unbiased":
        n = x.size // mu.size
        v = v * n / (n - 1)
    s = np.sqrt(v) + ln_param["eps"] if bug == "eps_outside" else np.sqrt(v + ln_param["eps"])
    return gamma * (x - mu) / s + beta, None


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param, *, bug=None):
    n, c, h, w = x.shape
    xg = x.reshape(n, c // G, G, h, w).swapaxes(1, 2) if bug == "strided" else x.reshape(
        n, G, c // G, h, w)
    mu = xg.mean(axis=(2, 3, 4), keepdims=True)
    v = ((xg - mu) ** 2).mean(axis=(2, 3, 4), keepdims=True)
    xhat = (xg - mu) / np.sqrt(v + gn_param.get("eps", 1e-5))
    xhat = xhat.swapaxes(1, 2).reshape(x.shape) if bug == "strided" else xhat.reshape(x.shape)
    col = (1, c, 1, 1)
    return gamma.reshape(col) * xhat + beta.reshape(col), None


def _ln(bug):
    return lambda x, g, b, p: layernorm_forward(x, g, b, p, bug=bug)


def _gn(bug):
    return lambda x, g, b, G, p: spatial_groupnorm_forward(x, g, b, G, p, bug=bug)


# ---------------------------------------------------------------------------------------------
# No false alarms


@pytest.mark.parametrize("detect", [False, True], ids=["given", "detected"])
@pytest.mark.parametrize("shape", [None, (4, 3, 2, 2)], ids=["ND", "NCHW"])
@pytest.mark.parametrize("convention", list(LAWS))
def test_correct_batchnorm_passes_in_each_convention(convention, shape, detect):
    report = check_forward(make_batchnorm(convention), shape=shape,
                           convention=None if detect else convention)
    assert report.passed, render_forward_report(report)
    assert report.convention == convention
    assert report.convention_source == ("detected" if detect else "given")
    assert [f.quantity for f in report.findings] == [
        "train output", "test output", "running update", "initial running stats"]
    assert all(f.deviation <= RTOL for f in report.findings)


@pytest.mark.parametrize(("forward", "against", "kwargs"), [
    pytest.param(_ln(None), "layernorm", {}, id="layernorm-ND"),
    pytest.param(_ln(None), "layernorm", {"shape": (3, 4, 2, 2)}, id="layernorm-NCHW"),
    pytest.param(_ln(None), "layernorm", {"shape": (3, 4, 2, 2), "param_shape": (1, 4, 1, 1)},
                 id="layernorm-per-channel"),
    pytest.param(_gn(None), "groupnorm", {}, id="groupnorm"),
    pytest.param(_gn(None), "groupnorm", {"groups": 6}, id="instancenorm"),
    pytest.param(_gn(None), "groupnorm", {"param_shape": (6,), "groups": 3}, id="groupnorm-C"),
])
def test_correct_layer_and_group_norms_pass(forward, against, kwargs):
    report = check_forward(forward, against=against, **kwargs)
    assert report.passed, render_forward_report(report)
    assert report.convention is None


# ---------------------------------------------------------------------------------------------
# Every known mistake is detected and described

BN_BUGS = [
    pytest.param({"eps_outside": True}, "train output", "eps added outside the square root? "
                 "(that mistake, made on the same inputs, reproduces", id="eps-outside-sqrt"),
    pytest.param({"unbiased_train": True}, "train output", "the unbiased variance (n - 1)",
                 id="unbiased-variance-in-training"),
    pytest.param({"divide_by_var": True}, "train output",
                 "divided by the variance, not the standard deviation", id="divide-by-variance"),
    pytest.param({"wrong_axis": True}, "train output",
                 "statistics per sample over the features", id="wrong-axis"),
    pytest.param({"no_gamma": True}, "train output", "gamma not applied", id="gamma-missing"),
    pytest.param({"no_beta": True}, "train output", "beta not added", id="beta-missing"),
    pytest.param({"swap_gamma_beta": True}, "train output", "gamma and beta swapped",
                 id="gamma-beta-swapped"),
    pytest.param({"random_half": True}, "train output", "train output is random: two calls",
                 id="random-half-batch-mean"),
    pytest.param({"test_batch_stats": True}, "test output",
                 "batch statistics used in test mode", id="batch-stats-at-test"),
    pytest.param({"swap_momentum": True}, "running update", "momentum convention swapped",
                 id="momentum-swapped"),
    pytest.param({"flip_running_bias": True}, "running update",
                 "running_var uses the unbiased variance: the cs231n convention uses the biased "
                 "one", id="running-var-unbiased"),
    pytest.param({"no_update": True}, "running update", "running statistics not updated",
                 id="running-stats-not-updated"),
    pytest.param({"init_var": 1.0}, "initial running stats",
                 "running_var at 1: the cs231n convention starts them at 0 and 0",
                 id="running-var-starts-at-1"),
]


@pytest.mark.parametrize(("bug", "quantity", "words"), BN_BUGS)
def test_each_batchnorm_mistake_is_detected_and_described(bug, quantity, words):
    report = check_forward(make_batchnorm("cs231n", **bug), convention="cs231n")
    by_name = {f.quantity: f for f in report.findings}
    assert not report.passed
    assert not by_name[quantity].passed
    assert by_name[quantity].deviation > RTOL
    assert words in by_name[quantity].diagnosis, by_name[quantity].diagnosis


def test_the_issue_example_biased_running_var_under_torch():
    report = check_forward(make_batchnorm("torch", flip_running_bias=True), convention="torch")
    update = {f.quantity: f for f in report.findings}["running update"]
    assert "running_var uses the biased variance: the torch convention uses the unbiased one" \
        in update.diagnosis
    assert [f.quantity for f in report.findings if not f.passed] == ["running update"]


def test_eps_outside_the_square_root_is_measured_and_only_the_output_differs():
    report = check_forward(make_batchnorm("torch", eps_outside=True), convention="torch")
    failed = [f for f in report.findings if not f.passed]
    assert [f.quantity for f in failed] == ["train output", "test output"]
    # eps/s - eps/(2 s^2) relative at the designed spreads (0.35 to 2.8): a few 1e-6
    assert 1e-6 < failed[0].deviation < 1e-4
    assert failed[0].diagnosis.startswith(f"train output differs by {failed[0].deviation:.2g}")


def test_a_convention_mismatch_without_a_given_convention_finds_the_closest():
    report = check_forward(make_batchnorm("cs231n", flip_running_bias=True))
    assert report.convention_source == "closest"
    assert not report.passed


@pytest.mark.parametrize(("forward", "against", "kwargs", "words"), [
    pytest.param(_ln("eps_outside"), "layernorm", {}, "eps added outside the square root",
                 id="layernorm-eps-outside"),
    pytest.param(_ln("batch_axis"), "layernorm", {},
                 "statistics over the batch axis (a BatchNorm)", id="layernorm-batch-axis"),
    pytest.param(_ln("unbiased"), "layernorm", {"shape": (3, 4, 2, 2)},
                 "the unbiased variance", id="layernorm-unbiased"),
    pytest.param(_gn("strided"), "groupnorm", {"groups": 3},
                 "channels assigned to groups by stride", id="groupnorm-strided-groups"),
])
def test_layer_and_group_norm_mistakes_are_described(forward, against, kwargs, words):
    report = check_forward(forward, against=against, **kwargs)
    train = report.findings[0]
    assert not train.passed and words in train.diagnosis, train.diagnosis


def test_an_unknown_mistake_is_not_guessed():
    def forward(x, gamma, beta, bn_param):
        out, _ = make_batchnorm()(x, gamma, beta, bn_param)
        return out + 1e-3 * np.sin(7 * x), None

    train = check_forward(forward, convention="cs231n").findings[0]
    assert "no known mistake, alone or in a pair, explains it" in train.diagnosis
    assert "not an affine map of the correct xhat" in train.diagnosis


def test_two_mistakes_at_once_are_named_as_a_pair():
    """A test mode applying neither gamma nor beta: no single known mistake, the pair does."""
    def forward(x, gamma, beta, bn_param):
        if bn_param["mode"] == "train":
            return make_batchnorm()(x, gamma, beta, bn_param)
        rm, rv = bn_param["running_mean"], bn_param["running_var"]
        return (x - rm) / np.sqrt(rv + bn_param.get("eps", 1e-5)), None

    test = check_forward(forward, convention="cs231n").findings[1]
    assert test.quantity == "test output" and not test.passed
    assert "two mistakes at once: gamma not applied and beta not added?" in test.diagnosis, (
        test.diagnosis)


def test_float32_arithmetic_is_recognised_by_its_size():
    def forward(x, gamma, beta, bn_param):
        out, _ = make_batchnorm()(x.astype(np.float32), gamma.astype(np.float32),
                                  beta.astype(np.float32), bn_param)
        return out, None

    train = check_forward(forward, convention="cs231n").findings[0]
    assert not train.passed and 1e-8 < train.deviation < 1e-5
    assert "float32 epsilons with no per-group structure: float32 arithmetic" in train.diagnosis


def test_a_forward_that_raises_in_test_mode_is_a_finding_not_a_crash():
    def forward(x, gamma, beta, bn_param):
        if bn_param["mode"] == "test":
            raise NotImplementedError("later")
        return make_batchnorm()(x, gamma, beta, bn_param)

    test = check_forward(forward, convention="cs231n").findings[1]
    assert not test.passed and test.deviation == float("inf")
    assert test.diagnosis == "the forward raised NotImplementedError in test mode: later"


def test_running_stats_not_stored_in_bn_param():
    def forward(x, gamma, beta, bn_param):
        out = make_batchnorm()(x, gamma, beta, dict(bn_param))
        return out

    update, initial = check_forward(forward, convention="cs231n").findings[2:]
    assert "running statistics not updated (still the values passed in)?" in update.diagnosis
    assert initial.diagnosis == (
        "after training call 1, bn_param['running_mean'] is missing: the running statistics "
        "must be stored in bn_param, one per channel")


def test_report_is_json_ready():
    report = check_forward(make_batchnorm("keras"), convention="keras")
    assert isinstance(report, ForwardReport)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["passed"] is True and data["convention"] == "keras"
    assert [f["quantity"] for f in data["findings"]] == [
        "train output", "test output", "running update", "initial running stats"]


def _e(**kwargs):
    return lambda: check_forward(make_batchnorm(), **kwargs)


@pytest.mark.parametrize(("call", "message"), [
    pytest.param(_e(against="dropout"), "`against` must be one of batchnorm, layernorm, "
                 "groupnorm, got 'dropout'", id="against"),
    pytest.param(_e(convention="pytorch"), "`convention` must be one of 'torch', 'keras', "
                 "'cs231n'", id="convention"),
    pytest.param(_e(against="layernorm", convention="torch"), r"\(batchnorm only\)",
                 id="convention-layernorm"),
    pytest.param(_e(shape=(4,)), r"`shape` must be \(N, D\) or \(N, C, H, W\) for batchnorm",
                 id="shape"),
    pytest.param(_e(param_shape=(1, 4)), r"`param_shape` must be one of \(4,\)", id="param"),
    pytest.param(_e(against="groupnorm", groups=4), "`groups` must be a positive integer "
                 "dividing the 6 channels, got 4", id="groups"),
    pytest.param(_e(groups=2), "`groups` is for groupnorm", id="groups-bn"),
    pytest.param(lambda: check_forward(3), "`forward` must be callable", id="callable"),
])
def test_input_validation(call, message):
    with pytest.raises(InvalidArgument, match=message):
        call()


# ---------------------------------------------------------------------------------------------
# The command line: gradcheck check FILE.py --op batchnorm --against batchnorm

CLI_FILE = '''
import numpy as np

def _forward(x, gamma, beta, bn_param, swapped):
    eps, m = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    rm = bn_param.get("running_mean", np.zeros(x.shape[1]))
    rv = bn_param.get("running_var", np.zeros(x.shape[1]))
    if bn_param["mode"] == "train":
        mu = x.mean(axis=0)
        xc = x - mu
        var = (xc ** 2).mean(axis=0)
        w = m if swapped else 1 - m  # the batch's weight; swapped is torch's form
        bn_param["running_mean"] = (1 - w) * rm + w * mu
        bn_param["running_var"] = (1 - w) * rv + w * var
    else:
        xc, var = x - rm, rv
    std = np.sqrt(var + eps)
    xhat = xc / std
    return gamma * xhat + beta, (xhat, gamma, std)

def good_forward(x, gamma, beta, bn_param):
    return _forward(x, gamma, beta, bn_param, False)

def swapped_forward(x, gamma, beta, bn_param):
    return _forward(x, gamma, beta, bn_param, True)

def backward(dout, cache):
    xhat, gamma, std = cache
    dx = gamma / std * (dout - dout.mean(0) - xhat * (dout * xhat).mean(0))
    return dx, (dout * xhat).sum(0), dout.sum(0)
'''
CLI_ARGS = ["--shape", "x=6,3", "--shape", "gamma=3", "--shape", "beta=3",
            "--kwarg", 'bn_param={"mode": "train"}', "--backward", "backward"]


@pytest.fixture
def cli_file(tmp_path):
    path = tmp_path / "bn_layers.py"
    path.write_text(CLI_FILE)
    return str(path)


def _main(argv):
    from gradcheck.cli import main

    return main(argv)


@pytest.mark.parametrize(("forward", "code", "words"), [
    pytest.param("good_forward", 0, "forward check: PASS (4 of 4 match)", id="good"),
    pytest.param("swapped_forward", 1, "(momentum convention swapped)?", id="momentum-swapped"),
])
def test_cli_text_report_shows_the_forward_check(cli_file, capsys, forward, code, words):
    argv = ["check", cli_file, "--forward", forward, *CLI_ARGS, "--against", "batchnorm"]
    assert _main(argv) == code
    out = capsys.readouterr().out
    assert "PASS: 1 of 1 checks passed" in out  # the gradient verdict is unchanged
    assert "convention cs231n" in out and words in out


def test_cli_json_carries_the_findings(cli_file, capsys):
    argv = ["check", cli_file, "--forward", "swapped_forward", *CLI_ARGS, "--against",
            "batchnorm", "--convention", "cs231n", "--format", "json"]
    assert _main(argv) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is True  # the gradient verdict is unchanged
    forward = data["forward_check"]
    assert forward["passed"] is False and forward["convention_source"] == "given"
    assert [f["passed"] for f in forward["findings"]] == [True, True, False, True]
    assert "(momentum convention swapped)?" in forward["findings"][2]["diagnosis"]


def test_cli_against_needs_a_forward_function(cli_file, capsys):
    code = _main(["check", cli_file, "--layer", "Nothing", "--shape", "x=3,2",
                  "--against", "batchnorm"])
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_cli_without_against_is_unchanged(cli_file, capsys):
    assert _main(["check", cli_file, "--forward", "swapped_forward", *CLI_ARGS]) == 0
    assert "forward check" not in capsys.readouterr().out


GN_FILE = '''
import numpy as np

def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    n, c, h, w = x.shape
    xg = x.reshape(n, G, -1)
    mu = xg.mean(axis=2, keepdims=True)
    std = np.sqrt(((xg - mu) ** 2).mean(axis=2, keepdims=True) + gn_param.get("eps", 1e-5))
    xhat = ((xg - mu) / std).reshape(x.shape)
    return gamma * xhat + beta, (xhat, gamma, std, G)

def spatial_groupnorm_backward(dout, cache):
    xhat, gamma, std, G = cache
    n = xhat.shape[0]
    dxhat = (dout * gamma).reshape(n, G, -1)
    xh = xhat.reshape(n, G, -1)
    dx = (dxhat - dxhat.mean(2, keepdims=True) - xh * (dxhat * xh).mean(2, keepdims=True)) / std
    sums = (0, 2, 3)
    return (dx.reshape(xhat.shape), (dout * xhat).sum(sums, keepdims=True),
            dout.sum(sums, keepdims=True))
'''


def test_cli_groupnorm_takes_groups_and_parameter_shape_from_the_arguments(tmp_path, capsys):
    path = tmp_path / "gn_layers.py"
    path.write_text(GN_FILE)
    argv = ["check", str(path), "--op", "spatial_groupnorm", "--shape", "x=2,4,3,3",
            "--shape", "gamma=1,4,1,1", "--shape", "beta=1,4,1,1", "--kwarg", "G=2",
            "--kwarg", 'gn_param={"eps": 1e-5}', "--against", "groupnorm"]
    assert _main(argv) == 0
    out = capsys.readouterr().out
    assert "forward check against the reference groupnorm, x of shape (2, 4, 3, 3)" in out
    assert "forward check: PASS (2 of 2 match)" in out


@given(seed=st.integers(0, 2**16), n=st.integers(2, 12), c=st.integers(1, 5),
       convention=st.sampled_from(list(LAWS)), spatial=st.booleans())
@settings(deadline=None, max_examples=20)
def test_no_false_alarm_on_correct_batchnorms(seed, n, c, convention, spatial):
    shape = (n, c, 2, 3) if spatial else (n, c)
    report = check_forward(make_batchnorm(convention), shape=shape, seed=seed)
    assert report.passed and report.convention == convention, render_forward_report(report)


def test_cli_markdown_puts_the_findings_on_stderr(cli_file, capsys):
    argv = ["check", cli_file, "--forward", "swapped_forward", *CLI_ARGS, "--against",
            "batchnorm", "--format", "markdown"]
    assert _main(argv) == 1
    captured = capsys.readouterr()
    assert "forward check" not in captured.out
    assert "forward check: FAIL (3 of 4 match)" in captured.err
