"""gradcheck.frameworks: torch and JAX rules checked through their own differentiation.

The rules below are written from their formulas, independently of gradcheck: correct ones must
pass (or, where no wider dtype exists, never fail), planted bugs and deliberately-not-the-
gradient rules (straight-through, gradient reversal) must fail. Small shapes: the whole file
runs in a few seconds.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gradcheck
from gradcheck import kinds
from gradcheck.errors import InvalidArgument

X = np.random.default_rng(7).normal(size=(4, 6))


def test_import_gradcheck_loads_no_framework():
    code = ("import sys, gradcheck, gradcheck.frameworks, gradcheck.cli, gradcheck.doorway; "
            "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_detect_without_frameworks_is_empty():
    from gradcheck.frameworks import detect

    assert detect(np.sum) == "" and detect(object) == ""


# --- torch ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_rules():
    torch = pytest.importorskip("torch")

    class Swish(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * torch.sigmoid(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            s = torch.sigmoid(x)
            return g * s * (1 + x * (1 - s))

    def planted(factor, where):
        class Planted(Swish):
            @staticmethod
            def backward(ctx, g):
                d = Swish.backward(ctx, g).clone()
                d[where] *= factor
                return d
        return Planted

    class Ste(torch.autograd.Function):  # sign(x) forward, identity backward
        @staticmethod
        def forward(ctx, x):
            return torch.sign(x)

        @staticmethod
        def backward(ctx, g):
            return g

    class Reverse(torch.autograd.Function):  # gradient reversal (DANN)
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return -g

    class Affine(torch.autograd.Function):  # two inputs, one with a setting
        @staticmethod
        def forward(ctx, x, w, scale=1.0):
            ctx.save_for_backward(x, w)
            ctx.scale = scale
            return scale * x @ w

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return ctx.scale * g @ w.T, ctx.scale * x.T @ g, None

    return {"swish": Swish, "one element": planted(1 + 1e-6, (0, 0)),
            "one channel": planted(1 + 1e-3, (slice(None), 2)), "ste": Ste,
            "reverse": Reverse, "affine": Affine}


def _torch_check(rule, x=X, **inputs):
    from gradcheck.frameworks import torch_layer

    return gradcheck.check_layer(torch_layer(rule), {"x": x, **inputs})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_torch_correct_rule_never_fails(torch_rules, dtype):
    report = _torch_check(torch_rules["swish"], X.astype(dtype))
    assert report.verdict != kinds.FAIL, report
    if dtype == np.float32:  # its float64 run is the witness: a pass, no false alarm
        assert report.verdict == kinds.PASS, report


@pytest.mark.parametrize("bug", ["one element", "one channel"])
def test_torch_planted_bug_fails(torch_rules, bug):
    report = _torch_check(torch_rules[bug])
    assert report.verdict == kinds.FAIL, report


@pytest.mark.parametrize("rule", ["ste", "reverse"])
def test_torch_deliberately_not_the_gradient_fails(torch_rules, rule):
    report = _torch_check(torch_rules[rule])
    assert report.verdict == kinds.FAIL, report


def test_torch_two_inputs_and_a_setting(torch_rules):
    from gradcheck.frameworks import torch_layer

    layer = torch_layer(torch_rules["affine"], config={"scale": 2.0})
    w = np.random.default_rng(1).normal(size=(6, 3))
    report = gradcheck.check_layer(layer, {"x": X, "w": w})
    assert report.passed, report
    assert [r.name for r in report.results] == ["x", "w"]
    assert report.results[0].method == kinds.COMPLEX  # matmul takes complex tensors


def test_torch_module_parameters_checked_and_state_kept():
    torch = pytest.importorskip("torch")
    from gradcheck.frameworks import torch_layer

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.BatchNorm1d(3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    report = gradcheck.check_layer(torch_layer(net), {"input": X.astype(np.float32)})
    assert report.verdict != kinds.FAIL, report
    assert {r.name for r in report.results} == {"input", "0.weight", "0.bias", "1.weight",
                                                "1.bias"}
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_torch_dtype_kept_and_long_double_refused(torch_rules):
    from gradcheck.frameworks import torch_layer

    layer = torch_layer(torch_rules["swish"])
    out, _ = layer.forward({"x": X.astype(np.float32)})
    assert out.dtype == np.float32
    if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps:
        with pytest.raises(InvalidArgument, match="torch cannot represent"):
            layer.forward({"x": X.astype(np.longdouble)})
    with pytest.raises(InvalidArgument, match="not an argument of Swish"):
        layer.forward({"y": X})


# --- JAX --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jax_rules():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def swish_rule(factor):
        @jax.custom_vjp
        def swish(x):
            return x * jax.nn.sigmoid(x)

        def fwd(x):
            return swish(x), x

        def bwd(x, g):
            s = jax.nn.sigmoid(x)
            d = g * s * (1 + x * (1 - s))
            return (d.at[0, 0].multiply(factor),)

        swish.defvjp(fwd, bwd)
        return swish

    @jax.custom_vjp
    def ste(x):
        return jnp.round(x * 4) / 4

    ste.defvjp(lambda x: (ste(x), None), lambda _, g: (g,))
    return {"swish": swish_rule(1.0), "bug": swish_rule(1 + 1e-6), "ste": ste}


@pytest.mark.parametrize(("rule", "dtype", "verdict"), [
    pytest.param("swish", np.float64, kinds.PASS, id="correct-float64"),
    pytest.param("swish", np.float32, kinds.PASS, id="correct-float32"),
    pytest.param("bug", np.float64, kinds.FAIL, id="planted-1e-6"),
    pytest.param("ste", np.float64, kinds.FAIL, id="straight-through"),
])
def test_jax_rules(jax_rules, rule, dtype, verdict):
    from gradcheck.frameworks import jax_layer

    layer = jax_layer(jax_rules[rule])
    report = gradcheck.check_layer(layer, {"x": X.astype(dtype)})
    assert report.verdict == verdict, report
    assert layer.forward({"x": X.astype(dtype)})[0].dtype == dtype


# --- the command line -------------------------------------------------------------------------

OPS = '''\
import torch


class Swish(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad_output * s * (1 + x * (1 - s)){bug}


class Scaled(torch.nn.Module):
    def __init__(self, features):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.linspace(0.5, 1.5, features))

    def forward(self, x):
        return Swish.apply(x) * self.scale
'''


@pytest.mark.parametrize(("bug", "extra", "code"), [
    pytest.param("", [], 0, id="worker"),
    pytest.param(" * 1.001", ["--in-process"], 1, id="bug-in-process"),
])
def test_cli_detects_an_autograd_function(tmp_path, capsys, bug, extra, code):
    pytest.importorskip("torch")
    from gradcheck.cli import main

    path = tmp_path / "my_ops.py"
    path.write_text(textwrap.dedent(OPS).replace("{bug}", bug))
    assert main(["check", f"{path}:Swish", "--shape", "x=4,6", *extra]) == code
    assert "torch.autograd.Function" in capsys.readouterr().out


def test_cli_module_class_with_constructor_arguments(tmp_path, capsys):
    pytest.importorskip("torch")
    from gradcheck.cli import main

    path = tmp_path / "my_ops.py"
    path.write_text(OPS.replace("{bug}", ""))
    args = ["check", str(path), "--layer", "Scaled", "--kwarg", "features=6", "--shape",
            "x=4,6", "--in-process", "--format", "json"]
    assert main(args) == 0
    assert '"name": "scale"' in capsys.readouterr().out
    assert main(["check", f"{path}:Scaled", "--kwarg", "features=6", "--in-process"]) == 2
    assert "needs the shapes of its inputs" in capsys.readouterr().err


def test_cli_replays_a_framework_failure(tmp_path, capsys):
    pytest.importorskip("torch")
    from gradcheck.cli import main

    path = tmp_path / "my_ops.py"
    path.write_text(OPS.replace("{bug}", " * 1.001"))
    out = tmp_path / "out"
    assert main(["check", f"{path}:Swish", "--shape", "x=4,6", "--out", str(out),
                 "--in-process"]) == 1
    assert main(["replay", str(out / "replay.npz"), "--in-process", "-q"]) == 1
    assert "Swish [torch.autograd.Function]  dx        FAIL" in capsys.readouterr().out


JAX_OPS = '''\
import jax


@jax.custom_vjp
def swish(x):
    return x * jax.nn.sigmoid(x)


def swish_fwd(x):
    return swish(x), x


def swish_bwd(x, g):
    s = jax.nn.sigmoid(x)
    return (g * s * (1 + x * (1 - s)){bug},)


swish.defvjp(swish_fwd, swish_bwd)
'''


@pytest.mark.parametrize(("bug", "code"), [("", 0), (" * 1.01", 1)])
def test_cli_detects_a_custom_vjp(tmp_path, capsys, bug, code):
    pytest.importorskip("jax")
    from gradcheck.cli import main

    path = tmp_path / "jax_ops.py"
    path.write_text(JAX_OPS.replace("{bug}", bug))
    assert main(["check", f"{path}:swish", "--shape", "x=4,6", "--dtype", "float32",
                 "--in-process"]) == code
    assert "swish [jax function]" in capsys.readouterr().out


def test_the_pytest_fixture_takes_a_framework_layer(torch_rules, check_gradients):
    from gradcheck.frameworks import torch_layer

    check_gradients(torch_layer(torch_rules["swish"]), {"x": X})
    with pytest.raises(AssertionError, match=r"dx: .* over budget"):
        check_gradients(torch_layer(torch_rules["one channel"]), {"x": X})


def test_a_whole_file_run_says_how_to_check_each_target(tmp_path, capsys):
    pytest.importorskip("torch")
    from gradcheck.cli import main

    path = tmp_path / "my_ops.py"
    path.write_text(OPS.replace("{bug}", ""))
    assert main(["check", str(path), "--in-process"]) == 2
    out = capsys.readouterr().out
    assert f"{path}:Swish --shape x=D1,D2" in out
    assert f"{path}:Scaled --kwarg features=VALUE --shape x=D1,D2" in out
