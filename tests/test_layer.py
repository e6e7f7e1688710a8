"""Adapters: course-style functions, classes with dict attributes, plain callables."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.errors import InvalidArgument, LayerError
from gradcheck.layer import Layer, from_callables, from_class, from_functions
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
        pytest.param(lambda: from_class(BatchNorm(2)).parameters(), InvalidArgument,
                     "`params` names the attribute 'params', which must be a dict",
                     id="class-params-missing"),
    ],
)
def test_input_validation(call, error, match):
    with pytest.raises(error, match=match):
        call()
