"""Tests of gradcheck.invariants: no false alarms on correct BatchNorms; every invariant can fail.

Besides the reference, a second, independent BatchNorm is written here in the course style and
computes in the input's own dtype (float32 stays float32), as a student's would. The broken
BatchNorms are small edits of it.
"""

from __future__ import annotations

import inspect
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings

from gradcheck import invariants as inv
from gradcheck.errors import InvalidArgument, LayerError
from gradcheck.strategies import batchnorm_cases

# ---------------------------------------------------------------------------------------------
# An independent BatchNorm: (x, gamma, beta, eps) functions, channels on axis 1, own dtype


def _axes(x):
    return (0, *range(2, x.ndim))


def _col(p, x):
    return np.reshape(p, (1, -1) + (1,) * (x.ndim - 2))


def _mean(a):
    return a.mean(axis=_axes(a), keepdims=True)


def _moments(x):
    mu = _mean(x)
    xc = x - mu
    return mu, _mean(xc * xc)


def _affine(xhat, gamma, beta):
    return _col(gamma, xhat) * xhat + _col(beta, xhat)


def bn_forward(x, gamma, beta, eps):
    mu, v = _moments(x)
    return _affine((x - mu) / np.sqrt(v + eps), gamma, beta)


def _parts(x, gamma, eps):
    mu, v = _moments(x)
    return (x - mu) / np.sqrt(v + eps), _col(gamma, x) / np.sqrt(v + eps)


def bn_backward(dout, x, gamma, beta, eps):
    xhat, k = _parts(x, gamma, eps)
    dx = k * (dout - _mean(dout) - xhat * _mean(dout * xhat))
    return dx, (dout * xhat).sum(axis=_axes(x)), dout.sum(axis=_axes(x))


def bn_eval(x, gamma, beta, eps, running_mean, running_var):
    xhat = (x - _col(running_mean, x)) / np.sqrt(_col(running_var, x) + eps)
    return _affine(xhat, gamma, beta)


def ema_running(batches, *, batch_weight, unbiased, init_var):
    """Running statistics with a fixed batch weight (torch m, keras/cs231n 1 - m)."""
    channels = batches[0].shape[1]
    mean, var = np.zeros(channels), np.full(channels, init_var)
    for batch in batches:
        mu, v = (a.reshape(-1) for a in _moments(batch.astype(np.float64)))
        n = batch.size // channels
        v = v * n / (n - 1) if unbiased else v
        mean = (1 - batch_weight) * mean + batch_weight * mu
        var = (1 - batch_weight) * var + batch_weight * v
    return mean, var


# The same BatchNorm in the course convention, with cs231n running statistics kept in bn_param.


def course_forward(x, gamma, beta, bn_param):
    eps, m = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    zeros = np.zeros(x.shape[1], x.dtype)
    rm, rv = bn_param.get("running_mean", zeros), bn_param.get("running_var", zeros)
    if bn_param["mode"] == "test":
        return bn_eval(x, gamma, beta, eps, rm, rv), None
    mu, v = _moments(x)
    bn_param["running_mean"] = m * rm + (1 - m) * mu.reshape(-1)
    bn_param["running_var"] = m * rv + (1 - m) * v.reshape(-1)
    return bn_forward(x, gamma, beta, eps), (x, gamma, beta, eps)


def course_backward(dout, cache):
    return bn_backward(dout, *cache)


# ---------------------------------------------------------------------------------------------
# Broken BatchNorms: one bug each


def fwd_unbiased_variance(x, gamma, beta, eps):
    mu, v = _moments(x)
    n = x.size // x.shape[1]
    return _affine((x - mu) / np.sqrt(v * n / (n - 1) + eps), gamma, beta)


def fwd_np_var_ddof1(x, gamma, beta, eps):
    v = np.var(x, axis=_axes(x), ddof=1, keepdims=True)
    return _affine((x - _mean(x)) / np.sqrt(v + eps), gamma, beta)


def fwd_eps_outside_sqrt(x, gamma, beta, eps):
    mu, v = _moments(x)
    return _affine((x - mu) / (np.sqrt(v) + eps), gamma, beta)


def fwd_ignores_beta(x, gamma, beta, eps):
    return bn_forward(x, gamma, np.zeros_like(beta), eps)


def fwd_no_centring(x, gamma, beta, eps):
    return _affine(x / np.sqrt(_moments(x)[1] + eps), gamma, beta)


def fwd_one_pass_variance(x, gamma, beta, eps):
    mu = _mean(x)
    return _affine((x - mu) / np.sqrt(_mean(x * x) - mu * mu + eps), gamma, beta)


def fwd_reshape_not_transpose(x, gamma, beta, eps):
    rows = x.reshape(x.shape[1], -1)  # bug: mixes batch and channels for (N, C, H, W)
    xc = rows - rows.mean(axis=1, keepdims=True)
    xhat = xc / np.sqrt((xc * xc).mean(axis=1, keepdims=True) + eps)
    return _affine(xhat.reshape(x.shape), gamma, beta)


def fwd_layer_norm(x, gamma, beta, eps):
    xc = x - x.mean(axis=1, keepdims=True)  # statistics over the channels of each sample
    return _affine(xc / np.sqrt((xc * xc).mean(axis=1, keepdims=True) + eps), gamma, beta)


def bwd_no_mean_term(dout, x, gamma, beta, eps):
    xhat, k = _parts(x, gamma, eps)
    return k * (dout - xhat * _mean(dout * xhat)), *bn_backward(dout, x, gamma, beta, eps)[1:]


def bwd_no_xhat_term(dout, x, gamma, beta, eps):
    k = _parts(x, gamma, eps)[1]
    return k * (dout - _mean(dout)), *bn_backward(dout, x, gamma, beta, eps)[1:]


def bwd_mean_dout_for_mean_dout_xhat(dout, x, gamma, beta, eps):
    xhat, k = _parts(x, gamma, eps)
    dx = k * (dout - _mean(dout) - xhat * _mean(dout))
    return dx, *bn_backward(dout, x, gamma, beta, eps)[1:]


def bwd_dx_plus_beta(dout, x, gamma, beta, eps):
    dx, dgamma, dbeta = bn_backward(dout, x, gamma, beta, eps)
    return dx + _col(beta, x), dgamma, dbeta


def bwd_ignores_gamma(dout, x, gamma, beta, eps):
    dx = bn_backward(dout, x, np.ones_like(gamma), beta, eps)[0]
    return dx, *bn_backward(dout, x, gamma, beta, eps)[1:]


def bwd_dx_times_1001(dout, x, gamma, beta, eps):
    dx, dgamma, dbeta = bn_backward(dout, x, gamma, beta, eps)
    return dx * 1.001, dgamma, dbeta


def bwd_dgamma_wrong_axis(dout, x, gamma, beta, eps):
    dx, _, dbeta = bn_backward(dout, x, gamma, beta, eps)
    return dx, (dout * _parts(x, gamma, eps)[0]).sum(axis=1), dbeta


def bwd_dgamma_batch_axis_only(dout, x, gamma, beta, eps):
    dx, _, dbeta = bn_backward(dout, x, gamma, beta, eps)
    return dx, (dout * _parts(x, gamma, eps)[0]).sum(axis=0), dbeta


def bwd_swapped(dout, x, gamma, beta, eps):
    dx, dgamma, dbeta = bn_backward(dout, x, gamma, beta, eps)
    return dx, dbeta, dgamma


def bwd_dbeta_mean(dout, x, gamma, beta, eps):
    dx, dgamma, _ = bn_backward(dout, x, gamma, beta, eps)
    return dx, dgamma, dout.mean(axis=_axes(x))


def eval_batch_stats(x, gamma, beta, eps, running_mean, running_var):
    return bn_forward(x, gamma, beta, eps)


# ---------------------------------------------------------------------------------------------
# Fixed cases and tables


def _inputs(shape, *, eps=0.1, mean=0.0, seed=1):
    rng = np.random.default_rng(seed)
    channels = shape[1]
    return inv.BatchNormInputs(
        mean + 2.0 * rng.standard_normal(shape),
        gamma=np.linspace(1.5, -0.8, channels),
        beta=np.linspace(0.5, -1.0, channels),
        dout=rng.standard_normal(shape) + 0.5,
        eps=eps,
    )


ND = _inputs((6, 3))
NCHW = _inputs((3, 2, 2, 3))
SQUARE = _inputs((4, 4))
ILL = _inputs((6, 3), mean=1e4)  # |mean| / std about 5e3

INDEPENDENT = inv.BatchNormFunctions(
    bn_forward, bn_backward, bn_eval,
    partial(ema_running, batch_weight=0.1, unbiased=True, init_var=1.0), convention="torch",
)

CORRECT = [
    pytest.param(inv.reference_functions(), id="reference-compact"),
    pytest.param(inv.reference_functions(form="staged"), id="reference-staged"),
    pytest.param(inv.course_functions(course_forward, course_backward), id="course-native-dtype"),
    pytest.param(INDEPENDENT, id="independent-torch-running"),
]

RUNNING_CONVENTIONS = [
    pytest.param("torch", "default", id="torch"),
    pytest.param("torch", None, id="torch-cumulative"),
    pytest.param("torch", 0.3, id="torch-momentum-0.3"),
    pytest.param("keras", "default", id="keras"),
    pytest.param("cs231n", "default", id="cs231n"),
]


def _forward_only(forward):
    return inv.BatchNormFunctions(forward)


def _with_backward(backward):
    return inv.BatchNormFunctions(bn_forward, backward)


def _with_running(convention, momentum="default", **law):
    run = partial(ema_running, **law) if law else inv.reference_functions().running_stats
    return inv.BatchNormFunctions(
        bn_forward, running_stats=run, convention=convention, momentum=momentum
    )


MUTANTS = [
    pytest.param(_forward_only(fwd_unbiased_variance), ND, "output_variance",
                 id="unbiased-variance"),
    pytest.param(_forward_only(fwd_np_var_ddof1), ND, "output_variance", id="np.var-ddof-1"),
    pytest.param(_forward_only(fwd_eps_outside_sqrt), ND, "scale_covariance",
                 id="eps-outside-sqrt"),
    pytest.param(_forward_only(fwd_eps_outside_sqrt), ND, "output_variance",
                 id="eps-outside-sqrt-variance"),
    pytest.param(_forward_only(fwd_ignores_beta), ND, "output_mean", id="ignores-beta"),
    pytest.param(_forward_only(fwd_ignores_beta), ND, "odd_symmetry", id="ignores-beta-odd"),
    pytest.param(_forward_only(fwd_no_centring), ND, "shift_invariance", id="no-centring"),
    pytest.param(_forward_only(fwd_no_centring), ND, "output_mean", id="no-centring-mean"),
    pytest.param(_forward_only(fwd_one_pass_variance), ILL, "shift_invariance",
                 id="one-pass-variance-ill-conditioned"),
    pytest.param(_forward_only(fwd_reshape_not_transpose), NCHW, "channel_independence",
                 id="reshape-not-transpose"),
    pytest.param(_forward_only(fwd_reshape_not_transpose), NCHW, "batch_permutation",
                 id="reshape-not-transpose-permutation"),
    pytest.param(_forward_only(fwd_layer_norm), ND, "channel_independence", id="layer-norm-axis"),
    pytest.param(_with_backward(bwd_no_mean_term), ND, "dx_sum_zero", id="dx-missing-mean-term"),
    pytest.param(_with_backward(bwd_no_xhat_term), ND, "dx_xhat_identity",
                 id="dx-missing-xhat-term"),
    pytest.param(_with_backward(bwd_mean_dout_for_mean_dout_xhat), ND, "jacobian_symmetry",
                 id="dx-mean-dout-for-mean-dout-xhat"),
    pytest.param(_with_backward(bwd_dx_plus_beta), ND, "dx_linear_in_dout", id="dx-plus-beta"),
    pytest.param(_with_backward(bwd_ignores_gamma), ND, "dx_proportional_to_gamma",
                 id="dx-ignores-gamma"),
    pytest.param(_with_backward(bwd_dx_times_1001), ND, "dx_xhat_identity", id="dx-times-1.001"),
    pytest.param(_with_backward(bwd_dgamma_wrong_axis), SQUARE, "dgamma_identity",
                 id="dgamma-wrong-axis"),
    pytest.param(_with_backward(bwd_dgamma_batch_axis_only), NCHW, "dgamma_identity",
                 id="dgamma-wrong-shape"),
    pytest.param(_with_backward(bwd_swapped), ND, "dgamma_identity", id="dgamma-dbeta-swapped"),
    pytest.param(_with_backward(bwd_swapped), ND, "dbeta_identity",
                 id="dgamma-dbeta-swapped-dbeta"),
    pytest.param(_with_backward(bwd_dbeta_mean), ND, "dbeta_identity", id="dbeta-mean-not-sum"),
    pytest.param(inv.BatchNormFunctions(bn_forward, forward_eval=eval_batch_stats), ND,
                 "inference_affine", id="inference-uses-batch-stats"),
    pytest.param(_with_running("torch", batch_weight=0.1, unbiased=False, init_var=1.0), ND,
                 "running_stats", id="torch-biased-running-var"),
    pytest.param(_with_running("keras", batch_weight=0.99, unbiased=False, init_var=1.0), ND,
                 "running_stats", id="keras-momentum-weights-swapped"),
    pytest.param(_with_running("cs231n", batch_weight=0.1, unbiased=False, init_var=1.0), ND,
                 "running_stats", id="cs231n-running-var-starts-at-1"),
    pytest.param(_with_running("torch", momentum=None), ND, "running_stats",
                 id="torch-cumulative-as-ema"),
]


# ---------------------------------------------------------------------------------------------
# No false alarms


@pytest.mark.parametrize("functions", CORRECT)
@given(case=batchnorm_cases())
@settings(deadline=None)
def test_invariants_hold_for_correct_batchnorms(functions, case):
    failed = [r for r in inv.check_invariants(functions, case) if not r.passed]
    assert not failed, "\n".join(f"{r.name}: {r.detail}" for r in failed)


@pytest.mark.parametrize(("convention", "momentum"), RUNNING_CONVENTIONS)
@given(case=batchnorm_cases())
@settings(deadline=None)
def test_reference_running_stats_follow_each_convention(convention, momentum, case):
    functions = inv.reference_functions(convention=convention, momentum=momentum)
    result = inv.check_invariants(functions, case, names=["running_stats"])[0]
    assert result.passed, result.detail


@pytest.mark.parametrize("functions", CORRECT)
@pytest.mark.parametrize(
    "inputs", [pytest.param(c, id=i) for c, i in
               ((ND, "ND"), (NCHW, "NCHW"), (SQUARE, "square"), (ILL, "ill-conditioned"))]
)
def test_correct_batchnorms_pass_the_mutant_cases(functions, inputs):
    results = inv.check_invariants(functions, inputs)
    assert [r.name for r in results] == list(inv.INVARIANTS)
    assert all(r.passed for r in results), [r for r in results if not r.passed]


# ---------------------------------------------------------------------------------------------
# Every invariant can fail


@pytest.mark.parametrize(("functions", "inputs", "name"), MUTANTS)
def test_each_broken_batchnorm_is_rejected(functions, inputs, name):
    result = inv.check_invariants(functions, inputs, names=[name])[0]
    assert result.name == name
    assert not result.passed
    assert not result.max_error <= result.tolerance
    assert "FAILS" in result.detail or "must be" in result.detail


def test_every_invariant_rejects_some_mutant():
    assert {p.values[2] for p in MUTANTS} == set(inv.INVARIANTS)


def test_wrongly_shaped_gradient_is_a_failed_result_with_the_reason():
    functions = _with_backward(bwd_dgamma_batch_axis_only)
    result = inv.check_dgamma_identity(functions.backward, NCHW)
    assert not result.passed
    assert result.detail == "dgamma must be a real float array of shape (2,), got float64 of " \
        "shape (2, 2, 3)"


def test_the_reference_passes_where_an_ill_conditioned_one_pass_variance_fails():
    ok = inv.check_shift_invariance(inv.reference_functions().forward, ILL)
    bad = inv.check_shift_invariance(fwd_one_pass_variance, ILL)
    assert ok.passed and not bad.passed
    assert ok.tolerance < 1e-8  # the tolerance grows with |mean|/std, but stays a rounding bound


# ---------------------------------------------------------------------------------------------
# The mathematics behind the invariants, checked without any backward under test


def _jacobian(backward, inputs):
    """Rows dx(e_k) = J^T e_k, from the backward."""
    x = np.asarray(inputs.x, dtype=np.float64)
    rows = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = 1.0
        rows.append(backward(e.reshape(x.shape), x, inputs.gamma, inputs.beta, inputs.eps)[0])
    return np.array(rows).reshape(x.size, x.size).T


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_the_training_jacobian_is_symmetric_for_any_gamma_and_eps(eps):
    inputs = inv.BatchNormInputs(
        np.array([[1.0, -2.0], [3.0, 7.0], [4.0, 0.5], [-1.0, 2.0]]),
        gamma=np.array([2.5, -0.3]), beta=np.array([1.0, 4.0]), eps=eps,
    )
    jac = _jacobian(inv.reference_functions().backward, inputs)
    np.testing.assert_allclose(jac, jac.T, rtol=0, atol=1e-14 * np.abs(jac).max())


def test_dx_xhat_identity_by_central_differences():
    inputs = _inputs((5, 2), eps=0.3)
    x, d = inputs.x, inputs.dout
    h = 1e-5
    dx = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[k] = h
        plus = np.sum(d * bn_forward(x + step, inputs.gamma, inputs.beta, inputs.eps))
        minus = np.sum(d * bn_forward(x - step, inputs.gamma, inputs.beta, inputs.eps))
        dx[k] = (plus - minus) / (2 * h)
    mu, v = x.mean(axis=0), x.var(axis=0)
    xhat = (x - mu) / np.sqrt(v + inputs.eps)
    dgamma = (d * xhat).sum(axis=0)
    expected = inputs.gamma * dgamma * inputs.eps / (v + inputs.eps) ** 1.5
    np.testing.assert_allclose((dx * xhat).sum(axis=0), expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Behaviour: safety, reporting, arguments


def _mutating_forward(x, gamma, beta, bn_param):
    """Correct, but writes into its arguments as some students' code does."""
    param = dict(bn_param)
    out, cache = course_forward(x.copy(), gamma.copy(), beta.copy(), param)
    if bn_param["mode"] == "train":
        bn_param.setdefault("running_mean", np.zeros(x.shape[1]))[...] = param["running_mean"]
        bn_param["running_var"] = param["running_var"]
    x -= 1.0
    gamma *= 2.0
    bn_param["eps"] = 123.0
    return out, cache


def _mutating_backward(dout, cache):
    grads = course_backward(dout, cache)
    dout *= 0.0
    return grads


def test_caller_arrays_and_dicts_are_never_modified():
    x, gamma, beta, dout = (np.array(a, copy=True) for a in ND[:4])
    bn_param = {"momentum": 0.9, "running_mean": np.zeros(3)}
    functions = inv.course_functions(_mutating_forward, _mutating_backward, bn_param=bn_param)
    inputs = inv.BatchNormInputs(x, gamma, beta, dout, eps=ND.eps)
    results = inv.check_invariants(functions, inputs)
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    for before, after in zip(ND[:4], (x, gamma, beta, dout), strict=True):
        np.testing.assert_array_equal(before, after)
    assert bn_param.keys() == {"momentum", "running_mean"}
    np.testing.assert_array_equal(bn_param["running_mean"], np.zeros(3))


def _raising_forward(x, gamma, beta, eps):
    raise ValueError("shapes do not match")


def test_a_layer_that_raises_gives_layer_error_naming_the_phase():
    with pytest.raises(LayerError, match=r"`forward` raised ValueError: shapes do not match"):
        inv.check_output_mean(_raising_forward, ND)


def test_channel_independence_is_vacuous_with_one_channel_and_says_so():
    one_channel = inv.BatchNormInputs(np.arange(4.0)[:, None])
    result = inv.check_channel_independence(bn_forward, one_channel)
    assert result.passed and result.detail == "vacuous: one channel"


def test_defaults_fill_gamma_beta_dout_and_running_stats():
    results = inv.check_invariants(INDEPENDENT, inv.BatchNormInputs(ND.x))
    assert all(r.passed for r in results)


def test_check_invariants_skips_what_the_functions_cannot_do():
    names = [r.name for r in inv.check_invariants(_forward_only(bn_forward), ND)]
    assert names == [n for n in inv.INVARIANTS if n in {
        "output_mean", "output_variance", "shift_invariance", "scale_covariance",
        "odd_symmetry", "batch_permutation", "channel_independence"}]


def test_tolerances_scale_with_conditioning():
    well = inv.check_output_mean(bn_forward, ND)
    ill = inv.check_output_mean(bn_forward, ILL)
    assert ill.tolerance > 100 * well.tolerance


X = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])


def _e(function, *args, **kwargs):
    return partial(function, *args, **kwargs)


VALIDATION = [
    pytest.param(_e(inv.check_output_mean, bn_forward, inv.BatchNormInputs(X.astype(int))),
                 "`x` must have a real floating dtype", id="x-integer"),
    pytest.param(_e(inv.check_output_mean, bn_forward, inv.BatchNormInputs(X * np.nan)),
                 "`x` must be finite", id="x-nan"),
    pytest.param(_e(inv.check_output_mean, bn_forward, inv.BatchNormInputs(X[0])),
                 "`x` must have a batch and a channel axis", id="x-1d"),
    pytest.param(_e(inv.check_output_mean, bn_forward, inv.BatchNormInputs(X[:1])),
                 "at least 2 values per channel", id="x-one-row"),
    pytest.param(_e(inv.check_output_mean, bn_forward, inv.BatchNormInputs(X, channel_axis=0)),
                 "`channel_axis` must be a non-batch axis", id="channel-axis-0"),
    pytest.param(_e(inv.check_output_mean, bn_forward, inv.BatchNormInputs(X, np.ones(3))),
                 r"`gamma` must have shape \(2,\), got shape \(3,\)", id="gamma-shape"),
    pytest.param(_e(inv.check_dx_sum_zero, bn_backward, inv.BatchNormInputs(X, dout=X.T)),
                 r"`dout` must have the shape of x \(3, 2\)", id="dout-shape"),
    pytest.param(_e(inv.check_output_mean, bn_forward, inv.BatchNormInputs(X, eps=-1.0)),
                 "`eps` must be a non-negative finite float", id="eps-negative"),
    pytest.param(_e(inv.check_output_mean, bn_forward,
                    inv.BatchNormInputs(np.array([[1.0, 2.0], [3.0, 2.0]]), eps=0.0)),
                 r"`x`: variance \+ eps must be positive in every channel, got 0.0 in channel 1",
                 id="constant-channel-eps-0"),
    pytest.param(_e(inv.check_inference_affine, bn_eval,
                    inv.BatchNormInputs(X, running_var=np.array([1.0, -1.0]), eps=0.5)),
                 "`running_var`: variance", id="running-var-negative"),
    pytest.param(_e(inv.check_scale_covariance, bn_forward, ND, scale=3.0),
                 "`scale` must be a non-zero power of two, got 3.0", id="scale-not-power-of-two"),
    pytest.param(_e(inv.check_scale_covariance, bn_forward, ND, scale=2.0**600),
                 "overflow", id="scale-overflows"),
    pytest.param(_e(inv.check_batch_permutation, bn_forward, ND, permutation=[0, 0, 1, 2, 3, 4]),
                 r"`permutation` must be a permutation of range\(6\)", id="permutation"),
    pytest.param(_e(inv.check_channel_independence, bn_forward, ND, channel=3),
                 r"`channel` must be in \[0, 2\], got 3", id="channel"),
    pytest.param(_e(inv.check_dx_proportional_to_gamma, bn_backward, ND, factor=0.0),
                 "`factor` must be a finite non-zero number", id="factor-zero"),
    pytest.param(_e(inv.check_shift_invariance, bn_forward, ND, shift=np.ones(2)),
                 r"`shift` must have shape \(3,\)", id="shift-shape"),
    pytest.param(_e(inv.check_invariants, INDEPENDENT, ND, names=["bogus"]),
                 "unknown invariant 'bogus'", id="names-unknown"),
    pytest.param(_e(inv.check_invariants, INDEPENDENT, ND, names="output_mean"),
                 "`names` must be a sequence of names", id="names-string"),
    pytest.param(_e(inv.check_invariants, _forward_only(bn_forward), ND, names=["dx_sum_zero"]),
                 "invariant 'dx_sum_zero' needs `backward`, which is None", id="names-missing"),
    pytest.param(_e(inv.check_running_stats, INDEPENDENT.running_stats, ND, convention="jax"),
                 "`convention` must be one of 'torch', 'keras', 'cs231n', got 'jax'",
                 id="convention"),
    pytest.param(_e(inv.reference_functions, convention="keras", momentum=None),
                 "`momentum=None` .* is a torch convention, got 'keras'", id="momentum-none-keras"),
    pytest.param(_e(inv.course_functions, course_forward, momentum=2.0),
                 "`momentum` must be 'default', None or in \\[0, 1\\], got 2.0", id="momentum-2"),
    pytest.param(_e(inv.reference_functions, form="fast"),
                 "`form` must be 'compact' or 'staged', got 'fast'", id="form"),
]


@pytest.mark.parametrize(("call", "message"), VALIDATION)
def test_input_validation(call, message):
    with pytest.raises(InvalidArgument, match=message):
        call()


def _documented(function):
    doc = inspect.getdoc(function) or ""
    params = doc.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
    return {p.strip() for line in params.splitlines() if not line.startswith(" ")
            for p in line.split(":")[0].split(",")}


@pytest.mark.parametrize(
    "function", [getattr(inv, n) for n in inv.__all__ if callable(getattr(inv, n))
                 and not isinstance(getattr(inv, n), type)],
    ids=lambda f: f.__name__,
)
def test_every_parameter_is_documented(function):
    assert _documented(function) == set(inspect.signature(function).parameters)
