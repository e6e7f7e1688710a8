"""The reference GroupNorm and instance norm against per-group loops, a Jacobian, and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check_layer
from gradcheck.errors import InvalidArgument
from gradcheck.layers.groupnorm import (
    GroupNorm,
    InstanceNorm,
    groupnorm_backward,
    groupnorm_backward_compact,
    groupnorm_backward_staged,
    groupnorm_forward,
    instancenorm_forward,
)
from tests.norm_oracles import naive_backward, naive_forward, torch_reference

# (x shape, groups, gamma shape): PyTorch's (C,) and the course's (1, C, 1, 1), one group (a
# LayerNorm with per-channel affine), several, and one channel per group (instance norm).
LAYOUTS = [
    pytest.param((3, 6, 2, 3), 2, (6,), id="NCHW-G2-torch"),
    pytest.param((3, 6, 2, 3), 2, (1, 6, 1, 1), id="NCHW-G2-course"),
    pytest.param((3, 6, 2, 3), 1, (6,), id="NCHW-G1"),
    pytest.param((3, 6, 2, 3), 6, (1, 6, 1, 1), id="NCHW-instance"),
    pytest.param((4, 6), 3, (6,), id="NC-G3"),
    pytest.param((2, 6, 5), 3, (1, 6, 1), id="NCL-G3"),
]
FORMS = [pytest.param(groupnorm_backward_staged, id="staged"),
         pytest.param(groupnorm_backward_compact, id="compact")]


def _case(x_shape, p_shape, seed=11):
    rng = np.random.default_rng(seed)
    x = rng.normal(-4.0, 3.0, x_shape) * rng.uniform(0.5, 2.0, x_shape[:2] + (1,) *
                                                     (len(x_shape) - 2))
    gamma = rng.choice([-1.0, 1.0], p_shape) * rng.uniform(0.5, 2.0, p_shape)
    return x, gamma, rng.normal(0.0, 1.0, p_shape), rng.standard_normal(x_shape) - 0.2


def _broadcast(p, x_shape):
    return p.reshape((1, x_shape[1]) + (1,) * (len(x_shape) - 2))


@pytest.mark.parametrize(("x_shape", "groups", "p_shape"), LAYOUTS)
def test_forward_matches_naive_loops(x_shape, groups, p_shape):
    x, gamma, beta, _ = _case(x_shape, p_shape)
    out, _ = groupnorm_forward(x, gamma, beta, groups=groups, eps=1e-3)
    expected = naive_forward(x, _broadcast(gamma, x_shape), _broadcast(beta, x_shape), groups,
                             1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backward", FORMS)
@pytest.mark.parametrize(("x_shape", "groups", "p_shape"), LAYOUTS)
def test_backward_matches_explicit_jacobian(x_shape, groups, p_shape, backward):
    x, gamma, beta, dout = _case(x_shape, p_shape)
    grads = backward(dout, groupnorm_forward(x, gamma, beta, groups=groups, eps=1e-3)[1])
    dx, dgamma, dbeta = naive_backward(dout, x, _broadcast(gamma, x_shape), groups, 1e-3)
    np.testing.assert_allclose(grads["x"], dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["gamma"], dgamma.reshape(p_shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["beta"], dbeta.reshape(p_shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backward", FORMS)
@pytest.mark.parametrize(("x_shape", "groups", "p_shape"), LAYOUTS)
def test_forward_and_backward_match_pytorch(x_shape, groups, p_shape, backward):
    pytest.importorskip("torch")
    x, gamma, beta, dout = _case(x_shape, p_shape)
    out, cache = groupnorm_forward(x, gamma, beta, groups=groups, eps=1e-5)
    grads = backward(dout, cache)
    if groups == 1:
        t_out, t_dx, t_dgamma, t_dbeta = _torch_one_group(x, gamma, beta, dout)
    else:
        t_out, t_dx, t_dgamma, t_dbeta = torch_reference(
            x, _broadcast(gamma, x_shape), _broadcast(beta, x_shape), groups, 1e-5, dout
        )
    np.testing.assert_allclose(out, t_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["x"], t_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["gamma"], t_dgamma.reshape(p_shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["beta"], t_dbeta.reshape(p_shape), rtol=1e-12, atol=1e-12)


def _torch_one_group(x, gamma, beta, dout):
    """G = 1 through torch's group_norm kernel itself (torch_reference would use layer_norm)."""
    import torch

    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(gamma.reshape(-1), requires_grad=True)
    bt = torch.tensor(beta.reshape(-1), requires_grad=True)
    out = torch.nn.functional.group_norm(xt, 1, gt, bt, eps=1e-5)
    out.backward(torch.tensor(dout))
    return tuple(t.detach().numpy() for t in (out, xt.grad, gt.grad, bt.grad))


def test_instance_norm_matches_pytorch_instance_norm():
    torch = pytest.importorskip("torch")
    x, gamma, beta, _ = _case((3, 4, 3, 3), (4,))
    out, _ = instancenorm_forward(x, gamma, beta, eps=1e-5)
    expected = torch.nn.functional.instance_norm(
        torch.tensor(x), weight=torch.tensor(gamma), bias=torch.tensor(beta), eps=1e-5
    ).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_instance_norm_is_groupnorm_with_one_channel_per_group():
    x, gamma, beta, _ = _case((2, 3, 4, 2), (3,))
    np.testing.assert_array_equal(instancenorm_forward(x, gamma, beta)[0],
                                  groupnorm_forward(x, gamma, beta, groups=3)[0])
    assert InstanceNorm(3).groups == 3


@pytest.mark.parametrize("form", ["staged", "compact"])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_class_passes_the_complex_step_check(form, groups):
    rng = np.random.default_rng(5)
    layer = GroupNorm(groups, 4, backward_form=form)
    report = check_layer(layer, {"x": rng.normal(4.0, 3.0, (2, 4, 2, 2))}, method="complex")
    assert report.passed, report


def _e(fn, *args, **kwargs):
    return lambda: fn(*args, **kwargs)


X = np.arange(24.0).reshape(2, 4, 3) ** 1.5
VALIDATION = [
    pytest.param(_e(groupnorm_forward, X, groups=3),
                 "`groups` must divide the 4 channels of `x`, got 3", id="divide"),
    pytest.param(_e(groupnorm_forward, X, groups=0), "`groups` must be a positive integer",
                 id="groups"),
    pytest.param(_e(groupnorm_forward, X, np.ones((4, 1)), groups=2),
                 r"`gamma` must have shape \(4,\) or \(1, 4, 1\) to match the 4 channels of `x`, "
                 r"got shape \(4, 1\)", id="gamma-shape"),
    pytest.param(_e(groupnorm_forward, np.ones((3, 2)), groups=2),
                 r"Expected more than 1 value per group, got input size \(3, 2\)", id="one"),
    pytest.param(_e(groupnorm_forward, np.ones(3), groups=1), "`x` must be 2-D", id="rank"),
    pytest.param(_e(groupnorm_forward, X, groups=2, eps=float("nan")), "`eps` must be",
                 id="eps"),
    pytest.param(_e(groupnorm_backward, X, groupnorm_forward(X, groups=2)[1], form="x"),
                 "`form` must be 'compact' or 'staged', got 'x'", id="form"),
    pytest.param(_e(groupnorm_backward, X, object()), "`cache` must be the GroupNormCache",
                 id="cache"),
    pytest.param(_e(GroupNorm, 2, 0), "`num_channels` must be a positive integer", id="chan"),
    pytest.param(_e(GroupNorm, 3, 4), "`groups` must divide the 4 channels", id="cls-divide"),
]


@pytest.mark.parametrize(("call", "message"), VALIDATION)
def test_input_validation(call, message):
    with pytest.raises(InvalidArgument, match=message):
        call()
