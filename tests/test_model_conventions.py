"""Course networks as their authors write them (our own code in the deeplearning.ai conventions:
examples in columns, ``parameters`` dicts, ``(cost, cache)`` or ``(AL, caches)``), checked through
from_network/check_network with data bound by name. Each convention has a correct network that
must pass and a wrong backward that must fail."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.check import check_layer
from gradcheck.errors import InvalidArgument
from gradcheck.model import check_network, find_networks, from_network

RNG = np.random.default_rng(23)
VALUES = {"X": RNG.normal(size=(4, 6)), "Y": (RNG.random((1, 6)) > 0.5).astype(float),
          "layer_dims": [4, 5, 3, 1], "lambd": 0.7, "keep_prob": 0.8}
PARAMS = {"W1", "b1", "W2", "b2", "W3", "b3"}


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def initialize_parameters_deep(layer_dims):
    parameters = {}
    for i in range(1, len(layer_dims)):
        parameters[f"W{i}"] = np.random.randn(layer_dims[i], layer_dims[i - 1]) * 0.5  # noqa: NPY002
        parameters[f"b{i}"] = np.random.randn(layer_dims[i], 1) * 0.1  # noqa: NPY002
    return parameters


def compute_cost(AL, Y):
    m = Y.shape[1]
    return float(-np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m)


# --- forward_propagation_n(X, Y, parameters) -> (cost, cache); backward_propagation_n -------------


def forward_propagation_n(X, Y, parameters):
    W1, b1, W2, b2, W3, b3 = (parameters[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    Z1 = W1 @ X + b1
    A1 = np.tanh(Z1)
    Z2 = W2 @ A1 + b2
    A2 = np.tanh(Z2)
    Z3 = W3 @ A2 + b3
    A3 = sigmoid(Z3)
    return compute_cost(A3, Y), (Z1, A1, W1, b1, Z2, A2, W2, b2, Z3, A3, W3, b3)


def backward_propagation_n(X, Y, cache, bug=""):
    m = X.shape[1]
    (_, A1, _, _, _, A2, W2, _, _, A3, W3, _) = cache
    dZ3 = A3 - Y
    dW3 = dZ3 @ A2.T / m
    db3 = dZ3.sum(axis=1, keepdims=True) / m
    dA2 = W3.T @ dZ3
    dZ2 = dA2 * (1 - A2**2)
    dW2 = dZ2 @ A1.T / m * (2 if bug == "dW2x2" else 1)
    db2 = dZ2.sum(axis=1, keepdims=True) / m
    dA1 = W2.T @ dZ2
    dZ1 = dA1 * (1 - A1**2)
    dW1 = dZ1 @ X.T / m
    db1 = dZ1.sum(axis=1, keepdims=True) * (4.0 if bug == "db1-4/m" else 1.0) / m
    return {"dZ3": dZ3, "dW3": dW3, "db3": db3, "dA2": dA2, "dZ2": dZ2, "dW2": dW2,
            "db2": db2, "dA1": dA1, "dZ1": dZ1, "dW1": dW1, "db1": db1}


@pytest.mark.parametrize(("bug", "failing"), [
    pytest.param("", [], id="correct"),
    pytest.param("dW2x2", ["W2"], id="dW2-twice"),
    pytest.param("db1-4/m", ["b1"], id="db1-4/m"),
])
def test_cost_and_cache_with_an_initialiser_taking_layer_dims(bug, failing):
    report = check_network(forward_propagation_n,
                           lambda X, Y, cache: backward_propagation_n(X, Y, cache, bug),
                           VALUES, init=initialize_parameters_deep)
    assert {r.name for r in report.results} == PARAMS
    assert [r.name for r in report.results if r.status == "fail"] == failing
    assert all(r.status == "pass" for r in report.results if r.name not in failing)


# --- L_model_forward(X, parameters) -> (AL, caches); compute_cost; L_model_backward --------------


def L_model_forward(X, parameters):
    caches, A, L = [], X, len(parameters) // 2
    for i in range(1, L + 1):
        Z = parameters[f"W{i}"] @ A + parameters[f"b{i}"]
        caches.append((A, parameters[f"W{i}"], Z))
        A = sigmoid(Z) if i == L else np.tanh(Z)
    return A, caches


def L_model_backward(AL, Y, caches, bug=""):
    grads, L, m = {}, len(caches), AL.shape[1]
    dA = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
    for i in reversed(range(1, L + 1)):
        A_prev, W, Z = caches[i - 1]
        dZ = dA * (sigmoid(Z) * (1 - sigmoid(Z)) if i == L else 1 - np.tanh(Z) ** 2)
        grads[f"dW{i}"] = dZ @ A_prev.T / (1 if bug == "no-1/m" else m)
        grads[f"db{i}"] = dZ.sum(axis=1, keepdims=True) / m
        dA = W.T @ dZ
        grads[f"dA{i - 1}"] = dA
    return grads


@pytest.mark.parametrize(("bug", "failing"), [
    pytest.param("", [], id="correct"),
    pytest.param("no-1/m", ["W1", "W2", "W3"], id="dW-without-1/m"),
])
def test_output_and_caches_with_a_separate_cost(bug, failing):
    def backward(AL, Y, caches):
        return L_model_backward(AL, Y, caches, bug)

    net = from_network(L_model_forward, backward, VALUES, cost=compute_cost,
                       init=initialize_parameters_deep, seed=3)
    report = check_layer(net, net.parameters())
    assert {r.name for r in report.results} == PARAMS
    assert sorted(r.name for r in report.results if r.status == "fail") == failing


# --- regularisation: lambd, and dropout with keep_prob -------------------------------------------


def forward_propagation(X, parameters):
    Z1 = parameters["W1"] @ X + parameters["b1"]
    A1 = np.tanh(Z1)
    Z2 = parameters["W2"] @ A1 + parameters["b2"]
    A2 = np.tanh(Z2)
    Z3 = parameters["W3"] @ A2 + parameters["b3"]
    A3 = sigmoid(Z3)
    return A3, (Z1, A1, Z2, A2, Z3, A3, parameters)


def compute_cost_with_regularization(A3, Y, parameters, lambd):
    m = Y.shape[1]
    l2 = sum(np.sum(np.square(parameters[f"W{i}"])) for i in (1, 2, 3))
    return compute_cost(A3, Y) + lambd / (2 * m) * l2


def _backward(X, Y, A1, A2, A3, p, masks=(None, None), keep_prob=1.0, lambd=0.0):
    m = X.shape[1]
    dZ3 = A3 - Y
    grads = {"dW3": dZ3 @ A2.T / m + lambd / m * p["W3"], "db3": dZ3.sum(1, keepdims=True) / m}
    dA2 = p["W3"].T @ dZ3
    if masks[1] is not None:
        dA2 = dA2 * masks[1] / keep_prob
    dZ2 = dA2 * (1 - A2**2)
    grads.update(dW2=dZ2 @ A1.T / m + lambd / m * p["W2"], db2=dZ2.sum(1, keepdims=True) / m)
    dA1 = p["W2"].T @ dZ2
    if masks[0] is not None:
        dA1 = dA1 * masks[0] / keep_prob
    dZ1 = dA1 * (1 - A1**2)
    grads.update(dW1=dZ1 @ X.T / m + lambd / m * p["W1"], db1=dZ1.sum(1, keepdims=True) / m)
    return grads


def backward_propagation_with_regularization(X, Y, cache, lambd):
    _, A1, _, A2, _, A3, p = cache
    return _backward(X, Y, A1, A2, A3, p, lambd=lambd)


def backward_propagation_with_regularization_wrong(X, Y, cache, lambd):
    _, A1, _, A2, _, A3, p = cache
    return _backward(X, Y, A1, A2, A3, p, lambd=lambd / 2)  # the 1/2 of the L2 cost kept


def forward_propagation_with_dropout(X, parameters, keep_prob=0.5):
    T1 = np.tanh(parameters["W1"] @ X + parameters["b1"])
    D1 = np.random.rand(*T1.shape) < keep_prob  # noqa: NPY002 - as the course draws it
    A1 = T1 * D1 / keep_prob
    T2 = np.tanh(parameters["W2"] @ A1 + parameters["b2"])
    D2 = np.random.rand(*T2.shape) < keep_prob  # noqa: NPY002
    A2 = T2 * D2 / keep_prob
    A3 = sigmoid(parameters["W3"] @ A2 + parameters["b3"])
    return A3, (A1, D1, A2, D2, A3, parameters, T1, T2)


def backward_propagation_with_dropout(X, Y, cache, keep_prob, bug=""):
    A1, D1, A2, D2, A3, p, T1, T2 = cache
    m = X.shape[1]
    dZ3 = A3 - Y
    grads = {"dW3": dZ3 @ A2.T / m, "db3": dZ3.sum(1, keepdims=True) / m}
    dA2 = p["W3"].T @ dZ3 * D2 / (1 if bug else keep_prob)
    dZ2 = dA2 * (1 - T2**2)
    grads.update(dW2=dZ2 @ A1.T / m, db2=dZ2.sum(1, keepdims=True) / m)
    dA1 = p["W2"].T @ dZ2 * D1 / keep_prob
    dZ1 = dA1 * (1 - T1**2)
    grads.update(dW1=dZ1 @ X.T / m, db1=dZ1.sum(1, keepdims=True) / m)
    return grads


@pytest.mark.parametrize(("forward", "cost", "backward", "failing"), [
    pytest.param(forward_propagation, compute_cost_with_regularization,
                 backward_propagation_with_regularization, [], id="l2"),
    pytest.param(forward_propagation, compute_cost_with_regularization,
                 backward_propagation_with_regularization_wrong, ["W1", "W2", "W3"],
                 id="l2-half-lambd"),
    pytest.param(forward_propagation_with_dropout, compute_cost,
                 backward_propagation_with_dropout, [], id="dropout"),
    pytest.param(forward_propagation_with_dropout, compute_cost,
                 lambda X, Y, cache, keep_prob: backward_propagation_with_dropout(
                     X, Y, cache, keep_prob, bug="no-1/keep_prob"), ["W1", "W2", "b1", "b2"],
                 id="dropout-without-1/keep_prob"),
])
def test_regularised_variants(forward, cost, backward, failing):
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    report = check_network(forward, backward, VALUES, cost=cost,
                           init=initialize_parameters_deep)
    assert sorted(r.name for r in report.results if r.status == "fail") == failing
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002 - restored


# --- one parameter: forward_propagation(x, theta) -> J, backward_propagation(x, theta) -> dtheta --


@pytest.mark.parametrize(("backward", "status"), [
    pytest.param(lambda x, theta: x, "pass", id="correct"),
    pytest.param(lambda x, theta: theta, "fail", id="dtheta-is-theta"),
])
def test_one_dimensional_theta(backward, status):
    report = check_network(lambda x, theta: theta * x, backward, {"x": 2.0, "theta": 4.0})
    assert [(r.name, r.status) for r in report.results] == [("theta", status)]


# --- recognising the sets, and errors ------------------------------------------------------------


def test_find_networks_recognises_every_set_in_a_module():
    found = find_networks(globals())
    assert {f["forward"]: (f["backward"], f["cost"], f["init"]) for f in found} == {
        "forward_propagation_n": ("backward_propagation_n", None, "initialize_parameters_deep"),
        "L_model_forward": ("L_model_backward", "compute_cost", "initialize_parameters_deep"),
        "forward_propagation_with_dropout": ("backward_propagation_with_dropout",
                                             "compute_cost", "initialize_parameters_deep"),
    }


@pytest.mark.parametrize(("call", "match"), [
    pytest.param(lambda: from_network(forward_propagation_n, backward_propagation_n,
                                      {"Y": VALUES["Y"]}, init=initialize_parameters_deep),
                 "initialize_parameters_deep needs `layer_dims`", id="init-argument"),
    pytest.param(lambda: check_network(forward_propagation_n, backward_propagation_n,
                                       {"Y": VALUES["Y"], "layer_dims": [4, 1]},
                                       init=initialize_parameters_deep),
                 "forward_propagation_n needs `X`: give it in `values`", id="data-missing"),
    pytest.param(lambda: from_network(forward_propagation_n, backward_propagation_n, VALUES),
                 "no starting `parameters`", id="no-parameters"),
    pytest.param(lambda: from_network(lambda a, b: a, backward_propagation_n, VALUES),
                 "no argument named like the parameters", id="no-parameters-argument"),
    pytest.param(lambda: from_network(L_model_forward, 3, VALUES), "`backward` must be callable",
                 id="backward-not-callable"),
])
def test_input_validation(call, match):
    with pytest.raises(InvalidArgument, match=match):
        call()


def test_an_output_without_a_cost_says_to_pass_one():
    from gradcheck.errors import LayerError

    net = from_network(L_model_forward, L_model_backward, VALUES,
                       init=initialize_parameters_deep)
    with pytest.raises(LayerError, match="pass cost=compute_cost"):
        net.forward(net.parameters())
