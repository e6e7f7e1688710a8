"""check_model: whole networks in the parameter-dict convention of the deep-learning courses."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check_model
from gradcheck.errors import InvalidArgument, LayerError

RNG = np.random.default_rng(3)
X = RNG.normal(size=(7, 4))
Y = RNG.integers(0, 3, size=7)
EPS = 1e-5


def initialize_parameters():
    r = np.random.default_rng(0)
    return {"W1": r.normal(size=(4, 5)) * 0.5, "b1": np.zeros(5), "gamma1": r.uniform(0.5, 2, 5),
            "beta1": r.normal(size=5), "W2": r.normal(size=(5, 3)) * 0.5, "b2": np.zeros(3)}


def forward_propagation(p):
    """Affine -> BatchNorm -> tanh -> affine -> softmax cross-entropy, with a cache."""
    Z1 = X @ p["W1"] + p["b1"]  # b1 is redundant: BatchNorm subtracts the mean
    Zc = Z1 - Z1.mean(axis=0)
    std = np.sqrt((Zc * Zc).mean(axis=0) + EPS)
    Zhat = Zc / std
    A1 = np.tanh(p["gamma1"] * Zhat + p["beta1"])
    Z2 = A1 @ p["W2"] + p["b2"]
    shifted = Z2 - Z2.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(Y)), Y].mean(), (Zhat, std, A1, logp, p)


def backward_propagation(cache, bug=""):
    Zhat, std, A1, logp, p = cache
    dZ2 = np.exp(logp)
    dZ2[np.arange(len(Y)), Y] -= 1
    dZ2 /= len(Y)
    dU1 = (dZ2 @ p["W2"].T) * (1 - A1**2)
    g = dU1 * p["gamma1"]
    dZ1 = (g - g.mean(axis=0) - Zhat * (g * Zhat).mean(axis=0)) / std
    grads = {"dW1": X.T @ dZ1, "db1": dZ1.sum(axis=0), "dgamma1": (dU1 * Zhat).sum(axis=0),
             "dbeta1": dU1.sum(axis=0), "dW2": A1.T @ dZ2, "db2": dZ2.sum(axis=0),
             "dZ1": dZ1, "dA1": dU1}  # intermediate gradients, as the courses return them
    if bug == "dgamma-without-xhat":
        grads["dgamma1"] = dU1.sum(axis=0)
    if bug == "dbeta-named-beta":
        grads["beta1"] = grads.pop("dbeta1") * 1.01
    return grads


def test_redundant_bias_before_batchnorm_is_zero_not_a_failure():
    report = check_model(forward_propagation, backward_propagation, initialize_parameters())
    assert {r.name: r.status for r in report.results} == {
        "W1": "pass", "b1": "zero", "gamma1": "pass", "beta1": "pass", "W2": "pass", "b2": "pass"}
    assert report.passed


@pytest.mark.parametrize(("bug", "failing"), [
    pytest.param("dgamma-without-xhat", "gamma1", id="dgamma-without-xhat"),
    pytest.param("dbeta-named-beta", "beta1", id="plain-name-wins-over-d-name"),
])
def test_a_wrong_parameter_gradient_fails_by_name(bug, failing):
    report = check_model(forward_propagation, lambda c: backward_propagation(c, bug),
                         initialize_parameters())
    assert [r.name for r in report.results if r.status == "fail"] == [failing]


def test_gradients_given_as_a_dict_and_cost_without_cache():
    params = {k: v for k, v in initialize_parameters().items() if k != "b1"}

    def cost(p):
        return forward_propagation({**p, "b1": np.zeros(5)})[0]

    grads = backward_propagation(forward_propagation({**params, "b1": np.zeros(5)})[1])
    report = check_model(cost, grads, params)
    assert report.passed and [r.name for r in report.results] == list(params)


@pytest.mark.parametrize(("args", "error", "match"), [
    pytest.param((1, {}, {"W": np.ones(2)}), InvalidArgument, "`cost` must be callable",
                 id="cost"),
    pytest.param((np.sum, 3, {"W": np.ones(2)}), InvalidArgument, "`grads` must be callable",
                 id="grads"),
    pytest.param((np.sum, {}, {}), InvalidArgument, "`parameters` must be a non-empty dict",
                 id="parameters"),
    pytest.param((lambda p: p["W"].sum(), {"dV": np.ones(2)}, {"W": np.ones(2)}), LayerError,
                 "the gradients have neither 'W' nor 'dW'", id="missing-gradient"),
    pytest.param((lambda p: p["W"], {"dW": np.ones(2)}, {"W": np.ones(2)}), LayerError,
                 "cost must return a scalar", id="cost-not-scalar"),
])
def test_input_validation(args, error, match):
    with pytest.raises(error, match=match):
        check_model(*args)
