"""Tests of the LayerNorm/GroupNorm invariants: no false alarms, and every invariant can fail."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradcheck import invariants as inv
from gradcheck.errors import InvalidArgument, LayerError

# ---------------------------------------------------------------------------------------------
# An independent group norm: (x, gamma, beta, eps) functions, own reshapes, own formula


def _wide(p, x):
    p = np.asarray(p)
    if p.shape in (x.shape[1:], (1, *x.shape[1:])):
        return p.reshape((1, *x.shape[1:]))
    return p.reshape((1, x.shape[1]) + (1,) * (x.ndim - 2))


def _stats(x, groups, one_pass=False):
    xg = x.reshape(x.shape[0], groups, -1)
    mu = xg.mean(axis=2, keepdims=True)
    v = (xg * xg).mean(axis=2, keepdims=True) - mu * mu if one_pass else (
        ((xg - mu) ** 2).mean(axis=2, keepdims=True))
    return xg, mu, v


def gn_forward(x, gamma, beta, eps, *, groups, eps_outside=False, one_pass=False,
               ignore_gamma=False):
    xg, mu, v = _stats(x, groups, one_pass)
    s = np.sqrt(v) + eps if eps_outside else np.sqrt(v + eps)
    xhat = ((xg - mu) / s).reshape(x.shape)
    return (xhat if ignore_gamma else _wide(gamma, x) * xhat) + _wide(beta, x)


def gn_batch_stats(x, gamma, beta, eps):
    """A LayerNorm that normalises over the batch axis too (a BatchNorm in disguise)."""
    mu = x.mean(axis=0, keepdims=True).mean()
    return _wide(gamma, x) * (x - mu) / np.sqrt(((x - mu) ** 2).mean() + eps) + _wide(beta, x)


def _sum_to(a, p, x):
    axes = tuple(i for i, n in enumerate(_wide(p, x).shape) if n == 1)
    return a.sum(axis=axes, keepdims=True).reshape(np.shape(p))


def gn_backward(dout, x, gamma, beta, eps, *, groups, drop_mean=False, scale=1.0, swap=False):
    xg, mu, v = _stats(x, groups)
    s = np.sqrt(v + eps)
    xhat = (xg - mu) / s
    dxhat = (dout * _wide(gamma, x)).reshape(xg.shape)
    mean_term = 0.0 if drop_mean else dxhat.mean(axis=2, keepdims=True)
    dx = (dxhat - mean_term - xhat * (dxhat * xhat).mean(axis=2, keepdims=True)) / s
    dgamma = _sum_to(dout * xhat.reshape(x.shape), gamma, x)
    dbeta = _sum_to(dout, gamma, x)
    if swap:
        dgamma, dbeta = dbeta, dgamma
    return scale * dx.reshape(x.shape), dgamma, dbeta


def _independent(groups, **broken):
    fwd = {k: v for k, v in broken.items() if k in ("eps_outside", "one_pass", "ignore_gamma")}
    bwd = {k: v for k, v in broken.items() if k not in fwd}
    return inv.NormFunctions(partial(gn_forward, groups=groups, **fwd),
                             partial(gn_backward, groups=groups, **bwd))


# ---------------------------------------------------------------------------------------------
# Cases


@st.composite
def norm_cases(draw):
    """A LayerNorm/GroupNorm case: layout, groups dividing C, gamma layout, awkward values."""
    n, groups, per_group = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    spatial = draw(st.sampled_from([(), (2,), (2, 3)]))
    c = groups * per_group
    if per_group == 1 and not spatial:
        spatial = (2,)  # at least two values per group
    shape = (n, c, *spatial)
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    values = st.floats(-1.0, 1.0, width=32, allow_subnormal=False)
    x = draw(arrays(np.float64, shape, elements=values, unique=True))
    x = (x * draw(st.sampled_from([1e-2, 1.0, 30.0])) + draw(st.sampled_from([0.0, 5.0, -1e3])))
    layouts = [(c,), (1, c) + (1,) * len(spatial)]
    if groups == 1:
        layouts.append(shape[1:])
    p_shape = draw(st.sampled_from(layouts))
    gamma = draw(arrays(np.float64, p_shape, elements=st.floats(0.25, 4.0))) * draw(
        st.sampled_from([1.0, -1.0]))
    beta = draw(arrays(np.float64, p_shape, elements=st.floats(-3.0, 3.0)))
    x = x.astype(dtype)
    spread = x.astype(np.float64).reshape(n, groups, -1).std(axis=2).min()
    eps = draw(st.sampled_from([0.0, 1e-5, 1e-3, 0.1])) if spread > 1e-4 else 1e-3
    return inv.NormInputs(x, gamma.astype(dtype), beta.astype(dtype), None, eps, groups)


def _refs(case):
    """The references that accept the case's gamma layout, and the independent norm."""
    forms = ("compact", "staged")
    ln = [inv.layernorm_functions(form=f) for f in forms] if case.groups == 1 else []
    per_channel = case.gamma.size == case.x.shape[1]
    gn = [inv.groupnorm_functions(case.groups, form=f) for f in forms]
    return ln + (gn if per_channel else []) + [_independent(case.groups)]


@given(case=norm_cases())
@settings(deadline=None)
def test_invariants_hold_for_correct_norms(case):
    for functions in _refs(case):
        failed = [r for r in inv.check_norm_invariants(functions, case) if not r.passed]
        assert not failed, "\n".join(f"{r.name}: {r.detail}" for r in failed)


def test_instance_norm_reference_passes():
    x = np.random.default_rng(2).normal(3.0, 2.0, (2, 3, 4, 2))
    results = inv.check_norm_invariants(inv.groupnorm_functions(None), inv.NormInputs(x, groups=3))
    assert [r.name for r in results] == list(inv.NORM_INVARIANTS)
    assert all(r.passed for r in results), results


# ---------------------------------------------------------------------------------------------
# Every invariant can fail

_RNG = np.random.default_rng(4)
NCHW = inv.NormInputs(_RNG.normal(2.0, 1.5, (3, 4, 2, 3)), _RNG.uniform(0.5, 2.0, 4),
                      _RNG.normal(0.0, 1.0, 4), None, 0.1, 2)
ILL = NCHW._replace(x=NCHW.x * 1e-3 + 1e4, eps=1e-8)
MUTANTS = [
    pytest.param(_independent(2, eps_outside=True), NCHW, "group_moments", id="eps-outside-sqrt"),
    pytest.param(_independent(2, ignore_gamma=True), NCHW, "group_affine", id="gamma-ignored"),
    pytest.param(_independent(2, one_pass=True), ILL, "group_shift_invariance",
                 id="one-pass-variance"),
    pytest.param(inv.NormFunctions(gn_batch_stats), NCHW._replace(groups=1),
                 "group_independence", id="batch-statistics"),
    pytest.param(_independent(2, drop_mean=True), NCHW, "group_dx_sum_zero", id="dx-no-mean"),
    pytest.param(_independent(2, scale=1.001), NCHW, "group_dx_xhat_identity", id="dx-x1.001"),
    pytest.param(_independent(2, swap=True), NCHW, "group_param_grads", id="dgamma-dbeta-swap"),
]


@pytest.mark.parametrize(("functions", "inputs", "name"), MUTANTS)
def test_each_broken_norm_is_rejected(functions, inputs, name):
    result = inv.check_norm_invariants(functions, inputs, names=[name])[0]
    assert result.name == name
    assert not result.passed
    assert "FAILS" in result.detail


def test_every_invariant_rejects_some_mutant():
    assert {p.values[2] for p in MUTANTS} == set(inv.NORM_INVARIANTS)


def test_a_wrongly_shaped_result_is_a_failed_result_with_the_reason():
    result = inv.check_group_moments(lambda x, g, b, e: x[0], NCHW)
    assert not result.passed
    assert result.detail.startswith("forward's output must be a real float array of shape")


def _e(fn, *args, **kwargs):
    return lambda: fn(*args, **kwargs)


GOOD = inv.layernorm_functions()
VALIDATION = [
    pytest.param(_e(inv.check_group_moments, GOOD.forward, NCHW._replace(groups=3)),
                 "`groups` must be a positive integer dividing the 4 channels", id="groups"),
    pytest.param(_e(inv.check_group_moments, GOOD.forward, NCHW._replace(gamma=np.ones(5))),
                 r"`gamma` must have shape \(4,\), \(1, 4, 1, 1\), \(4, 2, 3\)", id="gamma"),
    pytest.param(_e(inv.check_group_moments, GOOD.forward, NCHW._replace(beta=np.ones(3))),
                 r"`beta` must have gamma's shape \(4,\)", id="beta"),
    pytest.param(_e(inv.check_group_moments, GOOD.forward, NCHW._replace(x=np.ones(3))),
                 "`x` must have a batch and a channel axis", id="rank"),
    pytest.param(_e(inv.check_group_moments, GOOD.forward, inv.NormInputs(np.ones((2, 1)))),
                 "at least 2 values per group", id="one"),
    pytest.param(_e(inv.check_group_moments, GOOD.forward, NCHW._replace(eps=-1.0)),
                 "`eps` must be", id="eps"),
    pytest.param(_e(inv.check_norm_invariants, GOOD, NCHW, names=["bogus"]),
                 "unknown invariant 'bogus'", id="name"),
    pytest.param(_e(inv.check_norm_invariants, inv.NormFunctions(GOOD.forward), NCHW,
                    names=["group_dx_sum_zero"]), "needs `backward`, which is None", id="needs"),
    pytest.param(_e(inv.layernorm_functions, form="fast"), "`form` must be", id="form"),
    pytest.param(_e(inv.groupnorm_functions, 0), "`groups` must be a positive integer or None",
                 id="ref-groups"),
]


@pytest.mark.parametrize(("call", "message"), VALIDATION)
def test_input_validation(call, message):
    with pytest.raises(InvalidArgument, match=message):
        call()


def test_a_raising_layer_is_a_layer_error():
    def boom(x, gamma, beta, eps):
        raise RuntimeError("nope")

    with pytest.raises(LayerError, match="`forward` raised RuntimeError: nope"):
        inv.check_group_moments(boom, NCHW)
