# ruff: noqa  (written from the deeplearning.ai regularization convention)
"""forward_propagation(X, parameters) -> (A3, cache), compute_cost(A3, Y), backward_propagation;
L2 (lambd) and dropout (keep_prob) variants. (tests/test_cli_conventions.py adds a training loop
at the end of a copy: a script that trains at import.)"""
import numpy as np


def initialize_parameters(layer_dims):
    np.random.seed(3)
    return {**{"W" + str(l): np.random.randn(layer_dims[l], layer_dims[l - 1]) * 0.5
               for l in range(1, len(layer_dims))},
            **{"b" + str(l): np.zeros((layer_dims[l], 1)) for l in range(1, len(layer_dims))}}


def forward_propagation(X, parameters):
    Z1 = parameters["W1"] @ X + parameters["b1"]
    A1 = np.maximum(0, Z1)
    Z2 = parameters["W2"] @ A1 + parameters["b2"]
    A2 = 1 / (1 + np.exp(-Z2))
    return A2, (Z1, A1, parameters["W1"], Z2, A2, parameters["W2"])


def compute_cost(A2, Y):
    m = Y.shape[1]
    return -np.sum(Y * np.log(A2) + (1 - Y) * np.log(1 - A2)) / m


def compute_cost_with_regularization(A2, Y, parameters, lambd):
    m = Y.shape[1]
    l2 = lambd / (2 * m) * (np.sum(np.square(parameters["W1"])) +
                            np.sum(np.square(parameters["W2"])))
    return compute_cost(A2, Y) + l2


def backward_propagation_with_regularization(X, Y, cache, lambd):
    m = X.shape[1]
    Z1, A1, W1, Z2, A2, W2 = cache
    dZ2 = A2 - Y
    dW2 = dZ2 @ A1.T / m + lambd * W2 / m
    db2 = np.sum(dZ2, axis=1, keepdims=True) / m
    dZ1 = (W2.T @ dZ2) * (A1 > 0)
    dW1 = dZ1 @ X.T / m + lambd * W1 / m
    db1 = np.sum(dZ1, axis=1, keepdims=True) / m
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}


def forward_propagation_with_dropout(X, parameters, keep_prob=0.5):
    Z1 = parameters["W1"] @ X + parameters["b1"]
    A1 = np.maximum(0, Z1)
    D1 = np.random.rand(*A1.shape) < keep_prob
    A1 = A1 * D1 / keep_prob
    Z2 = parameters["W2"] @ A1 + parameters["b2"]
    A2 = 1 / (1 + np.exp(-Z2))
    return A2, (Z1, D1, A1, parameters["W1"], Z2, A2, parameters["W2"])


def backward_propagation_with_dropout(X, Y, cache, keep_prob):
    m = X.shape[1]
    Z1, D1, A1, W1, Z2, A2, W2 = cache
    dZ2 = A2 - Y
    dW2 = dZ2 @ A1.T / m
    db2 = np.sum(dZ2, axis=1, keepdims=True) / m
    dA1 = (W2.T @ dZ2) * D1 / keep_prob
    dZ1 = dA1 * (Z1 > 0)
    return {"dW1": dZ1 @ X.T / m, "db1": np.sum(dZ1, axis=1, keepdims=True) / m,
            "dW2": dW2, "db2": db2}

