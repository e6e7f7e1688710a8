"""Adapters: course-style functions, classes with dict attributes, plain callables."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from gradcheck._state import fingerprint as _fingerprint
from gradcheck.check import check_layer
from gradcheck.errors import InvalidArgument, LayerError
from gradcheck.layer import Layer, annotate, from_callables, from_class, from_functions
from gradcheck.layers.batchnorm import BatchNorm


def affine_forward(x, w, b):
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(0)


def test_function_adapter_maps_by_parameter_name():
    layer = from_functions(affine_forward, affine_backward)
    x, w, b = np.ones((2, 3)), np.ones((3, 4)), np.zeros(4)
    out, cache = layer.forward({"b": b, "x": x, "w": w})  # order of the dict does not matter
    grads = layer.backward(np.ones((2, 4)), cache)
    assert out.shape == (2, 4) and grads["w"].shape == (3, 4) and grads["b"].shape == (4,)
    assert layer.name == "affine"


def test_function_adapter_copies_config_for_every_call():
    def fwd(x, cfg):
        cfg["calls"] = cfg.get("calls", 0) + 1
        return x * 2, cfg["calls"]

    cfg = {}
    layer = from_functions(fwd, lambda d, c: d * 2, config={"cfg": cfg})
    assert layer.forward({"x": np.ones(2)})[1] == 1
    assert layer.forward({"x": np.ones(2)})[1] == 1 and cfg == {}


def test_class_adapter_never_touches_the_object():
    class Scale:
        def __init__(self):
            self.params, self.grads = {"w": np.array([2.0])}, {}

        def forward(self, x):
            self.x = x
            return x * self.params["w"]

        def backward(self, dout):
            self.grads["w"] = np.sum(dout * self.x, keepdims=True)
            return dout * self.params["w"]

    obj = Scale()
    layer = from_class(obj)
    out, cache = layer.forward({"x": np.array([3.0]), "w": np.array([5.0])})
    grads = layer.backward(np.array([1.0]), cache)
    assert out[0] == 15.0 and grads == {"x": np.array([5.0]), "w": np.array([3.0])}
    assert obj.grads == {} and not hasattr(obj, "x") and obj.params["w"][0] == 2.0


def test_reference_and_adapters_satisfy_the_protocol():
    assert isinstance(BatchNorm(2), Layer)
    assert isinstance(from_functions(affine_forward, affine_backward), Layer)
    assert isinstance(from_callables(np.sum, np.ones_like), Layer)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        pytest.param(lambda: from_functions(1, affine_backward), InvalidArgument,
                     "`forward` must be callable, got int", id="forward-not-callable"),
        pytest.param(lambda: from_functions(affine_forward, affine_backward, config=[1]),
                     InvalidArgument, "`config` must be a mapping", id="config-list"),
        pytest.param(lambda: from_class(object()), InvalidArgument,
                     "must have a callable `forward` method", id="class-no-forward"),
        pytest.param(lambda: from_class(BatchNorm(2), params=""), InvalidArgument,
                     "`params` must be a non-empty string", id="class-params-empty"),
        pytest.param(lambda: from_functions(affine_forward, affine_backward).forward({"z": 1}),
                     InvalidArgument, "'z', which is not a parameter of affine_forward",
                     id="unknown-input"),
        pytest.param(lambda: from_functions(affine_forward, lambda d, c: (1, 2, 3, 4)).backward(
            None, None), LayerError, "backward returned 4 gradients, but forward takes 3",
            id="too-many-grads"),
        pytest.param(lambda: from_class(BatchNorm(2), params="params"), InvalidArgument,
                     "`params` names the attribute 'params', which must be a dict or list",
                     id="class-params-missing"),
    ],
)
def test_input_validation(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- multi-output and losses -------------------------------------------------------------------


def two_forward(x, w):
    return x * w, np.sin(x), (x, w)


def two_backward(dy, dz, cache):
    x, w = cache
    return dy * w + dz * np.cos(x), (dy * x).sum(axis=0)


def two_backward_wrong(dy, dz, cache):  # forgets the second output's contribution
    x, w = cache
    return dy * w, (dy * x).sum(axis=0)


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = x.shape[0]
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return -np.log(p[np.arange(n), y]).mean(), dx / n


def softmax_loss_unscaled(x, y):
    loss, dx = softmax_loss(x, y)
    return loss, dx * x.shape[0]


def _inputs(rng):
    return {"x": rng.normal(size=(5, 3)), "w": rng.normal(size=3)}


@pytest.mark.parametrize(("backward", "statuses"), [
    pytest.param(two_backward, {"x": "pass", "w": "pass"}, id="correct"),
    pytest.param(two_backward_wrong, {"x": "fail", "w": "pass"}, id="second-output-dropped"),
])
def test_multi_output_layer(backward, statuses):
    report = check_layer(from_functions(two_forward, backward),
                         _inputs(np.random.default_rng(1)))
    assert {r.name: r.status for r in report.results} == statuses


def test_multi_output_backward_must_take_every_upstream_gradient():
    layer = from_functions(two_forward, affine_backward)
    with pytest.raises(LayerError, match="forward returned 2 outputs and a cache, so backward "
                                         "must take 2 upstream gradients"):
        layer.forward(_inputs(np.random.default_rng(0)))


@pytest.mark.parametrize(("loss", "status"), [
    pytest.param(softmax_loss, "pass", id="correct"),
    pytest.param(softmax_loss_unscaled, "fail", id="missing-1/N"),
])
def test_loss_convention(loss, status):
    y = np.array([0, 2, 1, 1, 0])
    layer = from_functions(loss, config={"y": y})
    report = check_layer(layer, {"x": np.random.default_rng(2).normal(size=(5, 3))})
    assert [(r.name, r.status) for r in report.results] == [("x", status)]
    assert y.tolist() == [0, 2, 1, 1, 0]


def test_loss_must_be_a_scalar():
    layer = from_functions(lambda x: (x, x))
    with pytest.raises(LayerError, match="the loss must be a scalar, got shape"):
        layer.forward({"x": np.ones(3)})


# --- class conventions ---------------------------------------------------------------------------


class LazyAccumulating:
    def __init__(self):
        self.W, self.dW = None, None

    def forward(self, x):
        if self.W is None:
            self.W = np.linspace(0.5, 1.5, x.shape[1])
            self.dW = np.zeros_like(self.W)
        self.x = x
        return x * self.W

    def backward(self, dout):
        self.dW += (dout * self.x).sum(axis=0)
        return dout * self.W


class ListParams:  # params/grads as lists, gradients written in place
    def __init__(self):
        self.params = [np.linspace(0.5, 1.5, 3), np.zeros(3)]
        self.grads = [np.zeros(3), np.zeros(3)]

    def forward(self, x):
        w, b = self.params
        self.x = x
        return x * w + b

    def backward(self, dout):
        self.grads[0][...] = (dout * self.x).sum(axis=0)
        self.grads[1][...] = dout.sum(axis=0)
        return dout * self.params[0]


class Parameter:
    def __init__(self, data):
        self.data, self.grad = data, np.zeros_like(data)


class ParameterObjects:
    def __init__(self):
        self.weight = Parameter(np.linspace(0.5, 1.5, 3))

    def forward(self, x):
        self.x = x
        return x * self.weight.data

    def backward(self, dout):
        self.weight.grad = (dout * self.x).sum(axis=0)
        return dout * self.weight.data


class OddNames:
    def __init__(self):
        self.scale = np.linspace(0.5, 1.5, 3)

    def forward(self, x):
        self.x = x
        return x * self.scale

    def backward(self, dout):
        self.scale_gradient = (dout * self.x).sum(axis=0)
        return dout * self.scale


class Stepping:
    def __init__(self):
        self.params, self.grads = {"w": np.linspace(0.5, 1.5, 3)}, {}

    def forward(self, x):
        self.x = x
        return x * self.params["w"]

    def backward(self, dout):
        self.grads["dw"] = (dout * self.x).sum(axis=0)
        dx = dout * self.params["w"]
        self.params["w"] -= 0.1 * self.grads["dw"]
        return dx


X = np.random.default_rng(5).normal(size=(4, 3))


@pytest.mark.parametrize(("obj", "options", "params", "words"), [
    pytest.param(LazyAccumulating(), {}, ["W"], "gradients accumulate", id="lazy-accumulating"),
    pytest.param(ListParams(), {}, ["params[0]", "params[1]"], "", id="lists-in-place"),
    pytest.param(ParameterObjects(), {}, ["weight"], "", id="parameter-objects"),
    pytest.param(OddNames(), {"names": {"scale": "scale_gradient"}}, ["scale"], "",
                 id="explicit-names"),
    pytest.param(Stepping(), {}, ["w"], "backward changed the parameters (`w` by up to",
                 id="optimizer-step"),
])
def test_class_conventions(obj, options, params, words):
    before = copy.deepcopy(vars(obj))
    layer = from_class(obj, example=X, **options)
    assert sorted(layer.parameters()) == params
    report = annotate(check_layer(layer, {"x": X}), layer)
    assert [r.status for r in report.results] == ["pass"] * (1 + len(params))
    text = " ".join(report.problems + report.warnings)
    assert (words in text) if words else not text
    assert report.passed is not bool(layer.problems)
    assert _fingerprint(vars(obj)) == _fingerprint(before)  # the object is never touched


def test_class_wrong_gradient_fails_by_name():
    class Wrong(ListParams):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads[1][...] *= 2
            return dx

    report = check_layer(from_class(Wrong(), example=X), {"x": X})
    assert {r.name: r.status for r in report.results} == {
        "x": "pass", "params[0]": "pass", "params[1]": "fail"}


def test_lazy_parameters_without_example_are_refused():
    with pytest.raises(InvalidArgument, match="creates parameters at its first forward: pass "
                                              "example="):
        check_layer(from_class(LazyAccumulating()), {"x": X})


def test_gradient_not_found_names_the_flag():
    class NoGrad(OddNames):
        def __init__(self):
            super().__init__()
            self.dscale = None  # declared, never written

    layer = from_class(NoGrad())
    out, cache = layer.forward({"x": X})
    with pytest.raises(LayerError, match=r"found no gradient of `scale`.*--grad NAME=LOCATION"):
        layer.backward(np.ones_like(out), cache)
