"""Pairing functions by name, the registry's shapes, and what each pair is fed."""

from __future__ import annotations

import types

import numpy as np
import pytest

from gradcheck.discover import Overrides, Pair, draw_fixed, find_pairs, plan
from gradcheck.doorway import FunctionInfo, Workshop
from gradcheck.errors import InvalidArgument
from gradcheck.registry import REGISTRY, lookup, resolve_shapes


def _signature(func):
    module = types.ModuleType("m")
    module.f = func
    info = Workshop(module).info()["functions"]["f"]
    return FunctionInfo(tuple(info["params"]), tuple(info["required"]))


@pytest.mark.parametrize(("names", "expected"), [
    pytest.param(["bn_forward", "bn_backward", "bn_backward_alt"],
                 [Pair("bn", "bn_forward", "bn_backward"),
                  Pair("bn", "bn_forward", "bn_backward_alt")], id="alt-pairs-with-forward"),
    pytest.param(["conv_forward_naive", "conv_backward_naive", "conv_forward_fast",
                  "conv_backward_fast"],
                 [Pair("conv", "conv_forward_fast", "conv_backward_fast"),
                  Pair("conv", "conv_forward_naive", "conv_backward_naive")],
                 id="suffix-pairs-with-suffix"),
    pytest.param(["svm_loss", "_private_forward", "_private_backward"],
                 [Pair("svm_loss", "svm_loss", "", kind="loss")], id="loss-and-private"),
    pytest.param(["x_backward"], [Pair("x", "", "x_backward",
                                       problem="no x_forward to pair it with")],
                 id="orphan-backward"),
    pytest.param(["y_forward"], [Pair("y", "y_forward", "", problem="no backward pairs with it")],
                 id="orphan-forward"),
])
def test_find_pairs(names, expected):
    assert find_pairs(names) == expected


@pytest.mark.parametrize(("op", "given", "expected"), [
    pytest.param("batchnorm", {}, {"x": (5, 4), "gamma": (4,), "beta": (4,)}, id="defaults"),
    pytest.param("batchnorm", {"x": (8, 10)}, {"x": (8, 10), "gamma": (10,), "beta": (10,)},
                 id="bound-from-x"),
    pytest.param("affine", {"x": (4, 3, 2)}, {"x": (4, 3, 2), "w": (6, 4), "b": (4,)},
                 id="product"),
    pytest.param("lstm_step", {"x": (2, 7)},
                 {"x": (2, 7), "prev_h": (2, 5), "prev_c": (2, 5), "Wx": (7, 20), "Wh": (5, 20),
                  "b": (20,)}, id="four-gates"),
    pytest.param("softmax_loss", {"x": (9, 3)}, {"x": (9, 3), "y": (9,)}, id="labels"),
])
def test_resolve_shapes(op, given, expected):
    assert resolve_shapes(REGISTRY[op], given) == expected


@pytest.mark.parametrize(("op", "given", "match"), [
    pytest.param("affine", {"x": (4, 10)}, r"cannot infer the shape of `w`.*add --shape w=",
                 id="rank"),
    pytest.param("batchnorm", {"x": (4, 5), "beta": (6,)}, "disagree on D", id="disagree"),
])
def test_resolve_shapes_errors(op, given, match):
    with pytest.raises(InvalidArgument, match=match):
        resolve_shapes(REGISTRY[op], given)


def test_every_registry_entry_resolves_with_an_odd_batch():
    for spec in REGISTRY.values():
        shapes = resolve_shapes(spec, {})
        assert set(shapes) == set(spec.inputs) | set(spec.ints) | set(spec.data)
        n = spec.sizes.get("N")
        assert n is not None and n % 2 == 1, spec.name


def softmax_loss(x, y):
    return 0.0, x


def renamed_batchnorm_forward(X, g, b, param):
    return X, None


def scale_forward(x, s, cfg=None):
    return x * s, None


@pytest.mark.parametrize(("pair", "func", "given", "shapes", "problem"), [
    pytest.param(Pair("softmax_loss", "softmax_loss", "", kind="loss"), softmax_loss,
                 Overrides(), {"x": (7, 5)}, "", id="registry-loss"),
    pytest.param(Pair("batchnorm", "f", "b"), renamed_batchnorm_forward, Overrides(), {},
                 "no shape for `X`, `g`, `b`: add --forward f --backward b --shape X=D1,D2 "
                 "--shape g=D1,D2 --shape b=D1,D2 --kwarg param=JSON", id="registry-does-not-fit"),
    pytest.param(Pair("scale", "scale_forward", "scale_backward"), scale_forward,
                 Overrides(shapes={"x": (3, 2), "s": (2,), "other": (4,)}),
                 {"x": (3, 2), "s": (2,)}, "", id="only-own-flags-apply"),
    pytest.param(Pair("scale", "scale_forward", "scale_backward"), scale_forward,
                 Overrides(ints={"s": (0, 3)}, shapes={"x": (3, 2)}), {},
                 "--int s needs a shape", id="int-without-shape"),
])
def test_plan(pair, func, given, shapes, problem):
    p = plan(pair, _signature(func), given)
    assert p.problem.startswith(problem) if problem else not p.problem
    if not problem:
        assert dict(p.shapes) == shapes


def test_plan_ints_come_from_their_range_and_overrides_win():
    p = plan(Pair("softmax_loss", "softmax_loss", "", kind="loss"), _signature(softmax_loss),
             Overrides(shapes={"x": (40, 3)}))
    y = draw_fixed(p, np.float64, seed=0)["y"]
    assert y.shape == (40,) and set(np.unique(y)) == {0, 1, 2}
    q = plan(p.pair, _signature(softmax_loss), Overrides(kwargs={"y": np.array([1, 1])}))
    assert "y" not in q.ints and q.config["y"].tolist() == [1, 1]


def test_lookup_needs_every_name_to_be_a_parameter():
    assert lookup("conv", ["x", "w", "b", "conv_param"]) is REGISTRY["conv"]
    assert lookup("conv", ["x", "w", "b"]) is None and lookup("nothing") is None
