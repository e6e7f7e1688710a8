"""The reference LayerNorm against per-sample loops, an explicit Jacobian, and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check_layer
from gradcheck.errors import InvalidArgument
from gradcheck.layers.layernorm import (
    LayerNorm,
    layernorm_backward,
    layernorm_backward_compact,
    layernorm_backward_staged,
    layernorm_forward,
)
from tests.norm_oracles import naive_backward, naive_forward, torch_reference

# (x shape, gamma shape, the shape gamma broadcasts as): PyTorch's elementwise weight, the
# keepdims form, and per channel in the course's (1, C, 1, 1) and PyTorch-like (C,) shapes.
LAYOUTS = [
    pytest.param((5, 6), (6,), (1, 6), id="ND-feature"),
    pytest.param((5, 6), (1, 6), (1, 6), id="ND-keepdims"),
    pytest.param((3, 4, 3, 2), (4, 3, 2), (1, 4, 3, 2), id="NCHW-elementwise"),
    pytest.param((3, 4, 3, 2), (1, 4, 3, 2), (1, 4, 3, 2), id="NCHW-keepdims"),
    pytest.param((3, 4, 3, 2), (4,), (1, 4, 1, 1), id="NCHW-channel"),
    pytest.param((3, 4, 3, 2), (1, 4, 1, 1), (1, 4, 1, 1), id="NCHW-course"),
]
FORMS = [pytest.param(layernorm_backward_staged, id="staged"),
         pytest.param(layernorm_backward_compact, id="compact")]


def _case(x_shape, gamma_shape, seed=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, x_shape) * rng.uniform(0.5, 2.0, (x_shape[0],) + (1,) *
                                                    (len(x_shape) - 1))
    gamma = rng.choice([-1.0, 1.0], gamma_shape) * rng.uniform(0.5, 2.0, gamma_shape)
    return x, gamma, rng.normal(0.0, 1.0, gamma_shape), rng.standard_normal(x_shape) + 0.3


@pytest.mark.parametrize(("x_shape", "p_shape", "b_shape"), LAYOUTS)
def test_forward_matches_naive_loops(x_shape, p_shape, b_shape):
    x, gamma, beta, _ = _case(x_shape, p_shape)
    out, _ = layernorm_forward(x, gamma, beta, eps=1e-3)
    expected = naive_forward(x, gamma.reshape(b_shape), beta.reshape(b_shape), 1, 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backward", FORMS)
@pytest.mark.parametrize(("x_shape", "p_shape", "b_shape"), LAYOUTS)
def test_backward_matches_explicit_jacobian(x_shape, p_shape, b_shape, backward):
    x, gamma, beta, dout = _case(x_shape, p_shape)
    grads = backward(dout, layernorm_forward(x, gamma, beta, eps=1e-3)[1])
    dx, dgamma, dbeta = naive_backward(dout, x, gamma.reshape(b_shape), 1, 1e-3)
    np.testing.assert_allclose(grads["x"], dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["gamma"], dgamma.reshape(p_shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["beta"], dbeta.reshape(p_shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backward", FORMS)
@pytest.mark.parametrize(("x_shape", "p_shape", "b_shape"), LAYOUTS)
def test_forward_and_backward_match_pytorch(x_shape, p_shape, b_shape, backward):
    pytest.importorskip("torch")
    x, gamma, beta, dout = _case(x_shape, p_shape)
    out, cache = layernorm_forward(x, gamma, beta, eps=1e-5)
    grads = backward(dout, cache)
    t_out, t_dx, t_dgamma, t_dbeta = torch_reference(
        x, gamma.reshape(b_shape), beta.reshape(b_shape), 1, 1e-5, dout
    )
    np.testing.assert_allclose(out, t_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["x"], t_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["gamma"], t_dgamma.reshape(p_shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["beta"], t_dbeta.reshape(p_shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", ["staged", "compact"])
@pytest.mark.parametrize(("normalized_shape", "x_shape"), [
    pytest.param(5, (4, 5), id="ND"), pytest.param((3, 2, 2), (3, 3, 2, 2), id="NCHW"),
])
def test_class_passes_the_complex_step_check(form, normalized_shape, x_shape):
    rng = np.random.default_rng(3)
    layer = LayerNorm(normalized_shape, backward_form=form)
    report = check_layer(layer, {"x": rng.normal(4.0, 3.0, x_shape)}, method="complex")
    assert report.passed, report
    assert {r.name for r in report.results} == {"x", "gamma", "beta"}


def test_float32_keeps_its_dtype_and_statistics_are_float64():
    x = (np.arange(12.0).reshape(3, 4) * 1e3 + 1e7).astype(np.float32)
    out, cache = layernorm_forward(x, np.ones(4, np.float32), np.zeros(4, np.float32))
    assert out.dtype == np.float32 and cache.xc.dtype == np.float64
    grads = layernorm_backward(np.ones_like(x), cache)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}


def test_constant_sample_gives_beta():
    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    beta = np.array([0.5, -1.0, 3.0])
    out, _ = layernorm_forward(x, None, beta, eps=1e-5)
    np.testing.assert_array_equal(out[0], beta)


def _e(fn, *args, **kwargs):
    return lambda: fn(*args, **kwargs)


X = np.ones((3, 4)) + np.arange(4.0)
VALIDATION = [
    pytest.param(_e(layernorm_forward, np.ones(4)), r"`x` must be 2-D \(N, D\).*got shape \(4,\)",
                 id="rank"),
    pytest.param(_e(layernorm_forward, X.astype(int)), "`x` must have a floating dtype", id="int"),
    pytest.param(_e(layernorm_forward, X, np.ones(3)),
                 r"`gamma` must have shape \(4,\) or \(1, 4\) to match x of shape \(3, 4\), "
                 r"got shape \(3,\)", id="gamma-shape"),
    pytest.param(_e(layernorm_forward, np.ones((2, 3, 2)), None, np.ones(2)),
                 r"`beta` must have shape \(3, 2\) or \(1, 3, 2\) or \(3,\) or \(1, 3, 1\)",
                 id="beta-shape"),
    pytest.param(_e(layernorm_forward, X, eps=-1.0), "`eps` must be a non-negative", id="eps"),
    pytest.param(_e(layernorm_forward, np.ones((3, 1))),
                 r"Expected more than 1 value per sample, got input size \(3, 1\)", id="one"),
    pytest.param(_e(layernorm_forward, X * np.inf), "`x` must be finite", id="inf"),
    pytest.param(_e(layernorm_backward, X, None), "`cache` must be the LayerNormCache",
                 id="cache"),
    pytest.param(_e(layernorm_backward, np.ones((3, 3)), layernorm_forward(X)[1]),
                 r"`dout` must have shape \(3, 4\), got shape \(3, 3\)", id="dout"),
    pytest.param(_e(layernorm_backward, X, layernorm_forward(X)[1], form="fast"),
                 "`form` must be 'compact' or 'staged', got 'fast'", id="form"),
    pytest.param(_e(LayerNorm, 0), "`normalized_shape` must be a positive integer", id="shape"),
    pytest.param(_e(LayerNorm, 3, backward_form="x"), "`backward_form` must be", id="bform"),
]


@pytest.mark.parametrize(("call", "message"), VALIDATION)
def test_input_validation(call, message):
    with pytest.raises(InvalidArgument, match=message):
        call()


def test_caller_arrays_are_not_modified():
    x, gamma, beta, dout = _case((4, 5), (5,))
    copies = [a.copy() for a in (x, gamma, beta, dout)]
    for form in ("staged", "compact"):
        layernorm_backward(dout, layernorm_forward(x, gamma, beta)[1], form=form)
    for before, after in zip(copies, (x, gamma, beta, dout), strict=True):
        np.testing.assert_array_equal(before, after)
