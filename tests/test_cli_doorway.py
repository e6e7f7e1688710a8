"""The doorway, end to end: course-style files as their authors wrote them, one command each.

The files below are written into tmp_path: an assignment package (``course/assignment/layers.py``
and ``rnn_layers.py`` with ``from .layers import *`` and ``from ..utils import sigmoid``), three
framework classes and a parameter-dict network. Their backwards are textbook-correct, written
independently of gradcheck: they are the oracle. Mutants replace one function with a wrong one.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from gradcheck.cli import main

LAYERS = '''\
import numpy as np


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    return dout * (cache > 0)


def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc * xc).mean(axis=0)
    std = np.sqrt(var + eps)
    xhat = xc / std
    return gamma * xhat + beta, (xhat, gamma, std)


def batchnorm_backward(dout, cache):
    xhat, gamma, std = cache
    n = dout.shape[0]
    dxhat = dout * gamma
    dvar = np.sum(dxhat * xhat * std, axis=0) * -0.5 / std**3
    dmu = -np.sum(dxhat / std, axis=0) - 2 * dvar * np.mean(xhat * std, axis=0)
    dx = dxhat / std + dvar * 2 * xhat * std / n + dmu / n
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def batchnorm_backward_alt(dout, cache):
    xhat, gamma, std = cache
    g = dout * gamma
    dx = (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0)) / std
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    std = np.sqrt((xc * xc).mean(axis=1, keepdims=True) + eps)
    xhat = xc / std
    return gamma * xhat + beta, (xhat, gamma, std)


def layernorm_backward(dout, cache):
    xhat, gamma, std = cache
    g = dout * gamma
    dx = (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True)) / std
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    n, c, h, w = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(flat, gamma, beta, bn_param)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape)


def spatial_batchnorm_backward(dout, cache):
    inner, (n, c, h, w) = cache
    flat = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(flat, inner)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    eps = gn_param.get("eps", 1e-5)
    n, c, h, w = x.shape
    xg = x.reshape(n, G, -1)
    xc = xg - xg.mean(axis=2, keepdims=True)
    std = np.sqrt((xc * xc).mean(axis=2, keepdims=True) + eps)
    xhat = (xc / std).reshape(x.shape)
    return gamma * xhat + beta, (xhat, gamma, std, G)


def spatial_groupnorm_backward(dout, cache):
    xhat, gamma, std, G = cache
    n, c, h, w = dout.shape
    dgamma = np.sum(dout * xhat, axis=(0, 2, 3), keepdims=True)
    dbeta = np.sum(dout, axis=(0, 2, 3), keepdims=True)
    g = (dout * gamma).reshape(n, G, -1)
    xh = xhat.reshape(n, G, -1)
    dx = (g - g.mean(axis=2, keepdims=True) - xh * (g * xh).mean(axis=2, keepdims=True)) / std
    return dx.reshape(dout.shape), dgamma, dbeta


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = 1 + (h + 2 * pad - hh) // stride, 1 + (wd + 2 * pad - ww) // stride
    out = np.zeros((n, f, ho, wo), dtype=np.result_type(x, w))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + hh, j * stride:j * stride + ww]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    f, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            sl = (slice(None), slice(None), slice(i * stride, i * stride + hh),
                  slice(j * stride, j * stride + ww))
            dw += np.tensordot(dout[:, :, i, j], xp[sl], axes=([0], [0]))
            dxp[sl] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    dx = dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dx, dw, dout.sum(axis=(0, 2, 3))


def max_pool_forward_naive(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, h, w = x.shape
    ho, wo = 1 + (h - ph) // s, 1 + (w - pw) // s
    out = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + ph, j * s:j * s + pw]
            mask = win == win.max(axis=(2, 3), keepdims=True)
            d = dout[:, :, i, j][:, :, None, None]
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += mask * d
    return dx


def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])
    mask = None
    out = x
    if mode == "train":
        mask = (np.random.rand(*x.shape) < p) / p
        out = x * mask
    return out, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout * mask if dropout_param["mode"] == "train" else dout


def svm_loss(x, y):
    n = x.shape[0]
    correct = x[np.arange(n), y]
    margins = np.maximum(0, x - correct[:, None] + 1.0)
    margins[np.arange(n), y] = 0
    loss = np.sum(margins) / n
    num_pos = np.sum(margins > 0, axis=1)
    dx = np.zeros_like(x)
    dx[margins > 0] = 1
    dx[np.arange(n), y] -= num_pos
    return loss, dx / n


def softmax_loss(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    n = x.shape[0]
    loss = -np.sum(log_probs[np.arange(n), y]) / n
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n
'''

RNN_LAYERS = '''\
import numpy as np

from .layers import *  # noqa: F403  (the assignment's own convention)
from ..utils import sigmoid


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    n, t, _ = x.shape
    h, prev, caches = np.zeros((n, t, h0.shape[1]), dtype=np.result_type(x, h0, Wx)), h0, []
    for i in range(t):
        prev, c = rnn_step_forward(x[:, i], prev, Wx, Wh, b)
        h[:, i] = prev
        caches.append(c)
    return h, caches


def rnn_backward(dh, cache):
    n, t, _ = dh.shape
    x0, _, Wx, Wh, _ = cache[0]
    dx = np.zeros((n, t, x0.shape[1]))
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[0])
    dprev = np.zeros((n, Wh.shape[0]))
    for i in reversed(range(t)):
        dxi, dprev, dwx, dwh, dbi = rnn_step_backward(dh[:, i] + dprev, cache[i])
        dx[:, i] = dxi
        dWx, dWh, db = dWx + dwx, dWh + dwh, db + dbi
    return dx, dprev, dWx, dWh, db


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o, g = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H]), \
        np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tc = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tc ** 2)
    di, df, do, dg = dc * g, dc * prev_c, dnext_h * tc, dc * i
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)])
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    n, t, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((n, t, H), dtype=np.result_type(x, h0, Wx))
    prev_h, prev_c, caches = h0, np.zeros_like(h0), []
    for k in range(t):
        prev_h, prev_c, c = lstm_step_forward(x[:, k], prev_h, prev_c, Wx, Wh, b)
        h[:, k] = prev_h
        caches.append(c)
    return h, caches


def lstm_backward(dh, cache):
    n, t, H = dh.shape
    x0, _, _, Wx, Wh = cache[0][:5]
    dx = np.zeros((n, t, x0.shape[1]))
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H)
    dprev_h, dprev_c = np.zeros((n, H)), np.zeros((n, H))
    for k in reversed(range(t)):
        dxk, dprev_h, dprev_c, dwx, dwh, dbk = lstm_step_backward(dh[:, k] + dprev_h, dprev_c,
                                                                   cache[k])
        dx[:, k] = dxk
        dWx, dWh, db = dWx + dwx, dWh + dwh, db + dbk
    return dx, dprev_h, dWx, dWh, db


def word_embedding_forward(x, W):
    return W[x], (x, W.shape)


def word_embedding_backward(dout, cache):
    x, shape = cache
    dW = np.zeros(shape)
    np.add.at(dW, x, dout)
    return dW


def temporal_affine_forward(x, w, b):
    return x @ w + b, (x, w)


def temporal_affine_backward(dout, cache):
    x, w = cache
    n, t, d = x.shape
    dx = dout @ w.T
    dw = x.reshape(n * t, d).T @ dout.reshape(n * t, -1)
    return dx, dw, dout.sum(axis=(0, 1))


def temporal_softmax_loss(x, y, mask, verbose=False):
    n, t, v = x.shape
    xf, yf, mf = x.reshape(n * t, v), y.reshape(n * t), mask.reshape(n * t)
    shifted = xf - np.max(xf, axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -np.sum(mf * np.log(probs[np.arange(n * t), yf])) / n
    dx = probs.copy()
    dx[np.arange(n * t), yf] -= 1
    dx = dx / n * mf[:, None]
    return loss, dx.reshape(n, t, v)
'''

CLASSES = '''\
import numpy as np


class LazyDense:
    """Parameters created at the first forward; gradients accumulate until flushed."""

    def __init__(self, units=3):
        self.units, self.W, self.b, self.dW, self.db = units, None, None, None, None

    def forward(self, x):
        if self.W is None:
            rng = np.random.default_rng(0)
            self.W = rng.normal(size=(x.shape[1], self.units))
            self.b = np.zeros(self.units)
            self.dW, self.db = np.zeros_like(self.W), np.zeros_like(self.b)
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW += self.x.T @ dout
        self.db += dout.sum(axis=0)
        return dout @ self.W.T


class BatchNorm1d:
    """Parameters and their gradients as attributes, gamma = 1 and beta = 0 at the start."""

    def __init__(self, num_features=4, gamma_bug=False):
        self.gamma, self.beta = np.ones(num_features), np.zeros(num_features)
        self.running_mean = np.zeros(num_features)
        self.gamma_bug = gamma_bug

    def forward(self, x):
        mu = x.mean(axis=0)
        xc = x - mu
        self.std = np.sqrt((xc * xc).mean(axis=0) + 1e-5)
        self.xhat = xc / self.std
        self.running_mean = 0.9 * self.running_mean + 0.1 * mu
        return self.gamma * self.xhat + self.beta

    def backward(self, dout):
        self.dgamma = np.sum(dout * self.xhat, axis=0)
        self.dbeta = np.sum(dout, axis=0)
        g = dout if self.gamma_bug else dout * self.gamma
        return (g - g.mean(axis=0) - self.xhat * (g * self.xhat).mean(axis=0)) / self.std


class SGDDense:
    """params/grads dicts, and an optimizer step inside backward."""

    def __init__(self, d_in=4, d_out=3, lr=0.1):
        rng = np.random.default_rng(1)
        self.params = {"W": rng.normal(size=(d_in, d_out)), "b": np.zeros(d_out)}
        self.grads = {}
        self.lr = lr

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        dx = dout @ self.params["W"].T
        for k in self.params:
            self.params[k] -= self.lr * self.grads[k]
        return dx
'''

NETWORK = '''\
import numpy as np

rng = np.random.default_rng(3)
X = rng.normal(size=(7, 4))
Y = rng.integers(0, 3, size=7)
EPS = 1e-5


def initialize_parameters(n_x=4, n_h=5, n_y=3):
    r = np.random.default_rng(0)
    return {"W1": r.normal(size=(n_x, n_h)) * 0.5, "b1": np.zeros(n_h),
            "gamma1": np.ones(n_h), "beta1": np.zeros(n_h),
            "W2": r.normal(size=(n_h, n_y)) * 0.5, "b2": np.zeros(n_y)}


def forward_propagation(parameters):
    p = parameters
    Z1 = X @ p["W1"] + p["b1"]
    mu = Z1.mean(axis=0)
    Zc = Z1 - mu
    std = np.sqrt((Zc * Zc).mean(axis=0) + EPS)
    Zhat = Zc / std
    U1 = p["gamma1"] * Zhat + p["beta1"]
    A1 = np.tanh(U1)
    Z2 = A1 @ p["W2"] + p["b2"]
    shifted = Z2 - Z2.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    cost = -logp[np.arange(len(Y)), Y].mean()
    return cost, (Zhat, std, A1, logp, p)


def backward_propagation(cache):
    Zhat, std, A1, logp, p = cache
    m = len(Y)
    dZ2 = np.exp(logp)
    dZ2[np.arange(m), Y] -= 1
    dZ2 /= m
    dW2, db2 = A1.T @ dZ2, dZ2.sum(axis=0)
    dU1 = (dZ2 @ p["W2"].T) * (1 - A1 ** 2)
    dgamma1, dbeta1 = (dU1 * Zhat).sum(axis=0), dU1.sum(axis=0)
    g = dU1 * p["gamma1"]
    dZ1 = (g - g.mean(axis=0) - Zhat * (g * Zhat).mean(axis=0)) / std
    return {"dW1": X.T @ dZ1, "db1": dZ1.sum(axis=0), "dgamma1": dgamma1, "dbeta1": dbeta1,
            "dW2": dW2, "db2": db2, "dZ1": dZ1, "dA1": dU1}
'''

WRONG_ALT = textwrap.dedent('''
    def batchnorm_backward_alt(dout, cache):  # the mean of dout is missing
        xhat, gamma, std = cache
        g = dout * gamma
        dx = (g - xhat * (g * xhat).mean(axis=0)) / std
        return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)
''')

UNKNOWN_PAIR = textwrap.dedent('''
    def scale_forward(x, s):
        return x * s, (x, s)

    def scale_backward(dout, cache):
        x, s = cache
        return dout * s, (dout * x).sum(axis=0)
''')

# Every pair the whole-file run must find: (op, forward, backward), "(loss)" for a loss.
EXPECTED_PAIRS = [
    ("affine", "affine_forward", "affine_backward"),
    ("batchnorm", "batchnorm_forward", "batchnorm_backward"),
    ("batchnorm", "batchnorm_forward", "batchnorm_backward_alt"),
    ("conv", "conv_forward_naive", "conv_backward_naive"),
    ("dropout", "dropout_forward", "dropout_backward"),
    ("layernorm", "layernorm_forward", "layernorm_backward"),
    ("lstm", "lstm_forward", "lstm_backward"),
    ("lstm_step", "lstm_step_forward", "lstm_step_backward"),
    ("max_pool", "max_pool_forward_naive", "max_pool_backward_naive"),
    ("relu", "relu_forward", "relu_backward"),
    ("rnn", "rnn_forward", "rnn_backward"),
    ("rnn_step", "rnn_step_forward", "rnn_step_backward"),
    ("softmax_loss", "softmax_loss", "(loss)"),
    ("spatial_batchnorm", "spatial_batchnorm_forward", "spatial_batchnorm_backward"),
    ("spatial_groupnorm", "spatial_groupnorm_forward", "spatial_groupnorm_backward"),
    ("svm_loss", "svm_loss", "(loss)"),
    ("temporal_affine", "temporal_affine_forward", "temporal_affine_backward"),
    ("temporal_softmax_loss", "temporal_softmax_loss", "(loss)"),
    ("word_embedding", "word_embedding_forward", "word_embedding_backward"),
]


def _package(root, extra_layers=""):
    """course/utils.py, course/assignment/{layers,rnn_layers}.py, with __init__.py files."""
    pkg = root / "course" / "assignment"
    pkg.mkdir(parents=True)
    (root / "course" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (root / "course" / "utils.py").write_text(
        "import numpy as np\n\ndef sigmoid(x):\n    return 1 / (1 + np.exp(-x))\n")
    (pkg / "layers.py").write_text(LAYERS + extra_layers)
    (pkg / "rnn_layers.py").write_text(RNN_LAYERS)
    return pkg


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def _rows(doc):
    return {(r["case"], g["name"]): g["status"] for r in doc["reports"] for g in r["results"]}


def test_whole_file_checks_every_pair_with_the_registry(tmp_path, capsys):
    pkg = _package(tmp_path)
    assert main(["check", str(pkg / "rnn_layers.py"), "--format", "json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    cases = [r["case"] for r in doc["reports"]]
    expected = [f"{f} / {b}" if b != "(loss)" else f for _, f, b in EXPECTED_PAIRS]
    assert sorted(cases) == sorted(expected) and len({op for op, _, _ in EXPECTED_PAIRS}) >= 12
    assert doc["passed"] is True
    lstm = next(r for r in doc["reports"] if r["case"] == "lstm_step_forward / lstm_step_backward")
    assert [g["name"] for g in lstm["results"]] == ["x", "prev_h", "prev_c", "Wx", "Wh", "b"]
    for op, forward, backward in EXPECTED_PAIRS:  # the overview table names each function
        assert any(line.split()[:3] == [op, forward, backward]
                   for line in captured.err.splitlines()), (op, forward)


def test_a_wrong_alt_backward_fails_by_name(tmp_path, capsys):
    pkg = _package(tmp_path, extra_layers=WRONG_ALT)
    assert main(["check", str(pkg / "layers.py"), "--format", "json"]) == 1
    rows = _rows(_json(capsys))
    assert rows[("batchnorm_forward / batchnorm_backward_alt", "x")] == "fail"
    assert rows[("batchnorm_forward / batchnorm_backward", "x")] == "pass"


@pytest.mark.parametrize(("flags", "checked", "code"), [
    pytest.param(["--op", "batchnorm", "--backward", "batchnorm_backward_alt"],
                 ["batchnorm_forward / batchnorm_backward_alt"], 1, id="op-and-backward"),
    pytest.param(["--backward", "batchnorm_backward_alt"],
                 ["batchnorm_forward / batchnorm_backward_alt"], 1, id="backward-alone"),
    pytest.param(["--op", "batchnorm"], ["batchnorm_forward / batchnorm_backward",
                                         "batchnorm_forward / batchnorm_backward_alt"], 1,
                 id="op-checks-every-variant"),
    pytest.param(["--op", "batchnorm", "--forward", "batchnorm_forward", "--backward",
                  "batchnorm_backward"], ["batchnorm_forward / batchnorm_backward"], 0,
                 id="op-forward-and-backward"),
    pytest.param(["--op", "conv"], ["conv_forward_naive / conv_backward_naive"], 0,
                 id="op-with-suffixed-functions"),
])
def test_op_flags_check_the_functions_they_name(tmp_path, capsys, flags, checked, code):
    pkg = _package(tmp_path, extra_layers=WRONG_ALT)
    assert main(["check", str(pkg / "layers.py"), *flags, "--format", "json"]) == code
    doc = _json(capsys)
    assert [r["case"] for r in doc["reports"]] == checked


def test_unknown_pairs_are_skipped_with_the_flags_to_add(tmp_path, capsys):
    path = tmp_path / "mine.py"
    path.write_text("import numpy as np\n" + UNKNOWN_PAIR + textwrap.dedent('''
        def relu_forward(x):
            return np.maximum(0, x), x

        def relu_backward(dout, cache):
            return dout * (cache > 0)

        class Dense:
            def forward(self, x):
                return x

            def backward(self, dout):
                return dout
    '''))
    assert main(["check", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(ln for ln in lines if ln.startswith("scale "))
    assert "skipped" in line and "--shape x=D1,D2 --shape s=D1,D2" in line
    line = next(ln for ln in lines if ln.startswith("Dense "))
    assert "skipped" in line and "--layer Dense --shape x=N,D" in line
    assert main(["check", str(path), "--op", "scale", "--shape", "x=3,2", "--shape", "s=2"]) == 0


def test_a_whole_file_run_prints_one_table(tmp_path, capsys):
    """The report's table holds every checked gradient; what was not checked follows as lines,
    not as a second table of the same pairs (issue 24)."""
    path = tmp_path / "mine.py"
    path.write_text("import numpy as np\n" + UNKNOWN_PAIR + textwrap.dedent('''
        def relu_forward(x):
            return np.maximum(0, x), x

        def relu_backward(dout, cache):
            return dout * (cache > 0)

        def affine_forward(x, w, b):
            return x.reshape(x.shape[0], -1) @ w + b, (x, w, b)

        def affine_backward(dout, cache):
            x, w, b = cache
            dx = (dout @ w.T).reshape(x.shape)
            return dx, x.reshape(x.shape[0], -1).T @ dout, dout.sum(axis=0)
    '''))
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    tables = [ln for ln in out.splitlines() if set(ln.replace(" ", "")) == {"-"}]
    assert len(tables) == 1, out  # one header rule: one table
    assert not any(ln.split()[:3] == ["op", "forward", "backward"] for ln in out.splitlines())
    assert sum(ln.startswith("relu ") for ln in out.splitlines()) == 1  # dx
    assert sum(ln.startswith("affine ") for ln in out.splitlines()) == 3  # dx, dw, db
    [scale] = [ln for ln in out.splitlines() if ln.startswith("scale ")]
    assert "skipped: no shape" in scale


def test_explicit_flags_override_the_registry_and_infer_the_rest(tmp_path, capsys):
    pkg = _package(tmp_path)
    assert main(["check", str(pkg / "layers.py"), "--op", "batchnorm", "--shape", "x=9,3",
                 "--kwarg", 'bn_param={"mode": "train", "eps": 0.1}', "--format", "json"]) == 0
    doc = _json(capsys)
    assert all(r["shapes"] == {"x": [9, 3], "gamma": [3], "beta": [3]} for r in doc["reports"])


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--op", "affine", "--shape", "x=4,10"],
                 "cannot infer the shape of `w` (D1*D2, M) for affine: --shape x=4,10 is not "
                 "(N, D1, D2); add --shape w=", id="rank-differs"),
    pytest.param(["--op", "batchnorm", "--shape", "x=4,5", "--shape", "gamma=6"],
                 "`--shape` values disagree on D", id="disagree"),
    pytest.param(["--loss", "softmax_loss", "--int", "y=3"], "`--int` must look like "
                 "NAME=LOW:HIGH", id="int-syntax"),
    pytest.param(["--loss", "softmax_loss", "--int", "y=5:2"], "with LOW < HIGH", id="int-empty"),
    pytest.param(["--forward", "affine_forward", "--backward", "nothere"],
                 "backward 'nothere' is not a callable", id="missing-backward"),
    pytest.param(["--cost", "affine_forward"], "`--cost` needs `--grads NAME`", id="cost-alone"),
    pytest.param(["--op", "batchnorm", "--shape", "gama=5"], "`--shape gama` names no "
                 "parameter of the functions checked; their parameters are beta, bn_param, "
                 "gamma, x", id="typo-in-a-flag"),
    pytest.param(["--shape", "x=5,4", "--layer", "Nothing", "--grad", "W"],
                 "`--grad` must look like PARAM=LOCATION", id="grad-syntax"),
    pytest.param(["--op", "layernorm", "--forward", "batchnorm_forward"],
                 "no shape for `x`, `gamma`, `beta`: add --forward batchnorm_forward --backward "
                 "layernorm_backward --shape x=D1,D2 --shape gamma=D1,D2 --shape beta=D1,D2 "
                 "--kwarg bn_param=JSON", id="registry-entry-does-not-fit"),
])
def test_errors_name_the_input_and_the_flag(tmp_path, capsys, argv, message):
    pkg = _package(tmp_path)
    assert main(["check", str(pkg / "layers.py"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


LOSSES = textwrap.dedent('''
    import numpy as np

    def hinge(scores, labels, margin):
        n = scores.shape[0]
        m = np.maximum(0, scores - scores[np.arange(n), labels][:, None] + margin)
        m[np.arange(n), labels] = 0
        d = (m > 0).astype(float)
        d[np.arange(n), labels] = -d.sum(axis=1)
        return m.sum() / n, d / n

    def hinge_wrong(scores, labels, margin):
        loss, d = hinge(scores, labels, margin)
        return loss, 2 * d
''')


@pytest.mark.parametrize(("argv", "code"), [
    pytest.param(["--loss", "hinge", "--shape", "scores=7,4", "--int", "labels=0:4",
                  "--shape", "labels=7", "--kwarg", "margin=1.0"], 0, id="int-labels"),
    pytest.param(["--loss", "hinge", "--shape", "scores=3,4", "--kwarg", "labels=[0, 3, 1]",
                  "--kwarg", "margin=1.0"], 0, id="json-list-labels"),
    pytest.param(["--loss", "hinge_wrong", "--shape", "scores=7,4", "--int", "labels=0:4",
                  "--shape", "labels=7", "--kwarg", "margin=1.0"], 1, id="wrong-dx"),
])
def test_losses_in_the_loss_dx_convention(tmp_path, capsys, argv, code):
    path = tmp_path / "losses.py"
    path.write_text(LOSSES)
    assert main(["check", str(path), *argv, "--format", "json"]) == code
    doc = _json(capsys)
    assert [g["name"] for g in doc["results"]] == ["scores"]


@pytest.mark.parametrize(("target", "flags", "code", "words"), [
    pytest.param("LazyDense", [], 0, "gradients accumulate across backward calls (+=) in W, b",
                 id="lazy-accumulating"),
    pytest.param("BatchNorm1d", [], 0, None, id="attribute-gradients"),
    pytest.param("SGDDense", [], 1, "backward changed the parameters (`W` by up to",
                 id="optimizer-in-backward"),
])
def test_three_class_styles_load_with_one_flag(tmp_path, capsys, target, flags, code, words):
    path = tmp_path / "framework.py"
    path.write_text(CLASSES)
    assert main(["check", f"{path}:{target}", "--shape", "x=5,4", *flags,
                 "--format", "json"]) == code
    doc = _json(capsys)
    cases = [r["case"] for r in doc["reports"]]
    assert cases == ["initial parameters", "random parameters (seed 0)"]
    assert all(g["status"] == "pass" for r in doc["reports"] for g in r["results"])
    assert len(doc["reports"][0]["results"]) == 3  # dx and both parameters
    notes = " ".join(doc["reports"][0]["problems"] + doc["reports"][0]["warnings"])
    assert (words in notes) if words else not notes


def test_class_at_random_parameters_catches_a_dx_that_ignores_gamma(tmp_path, capsys):
    path = tmp_path / "framework.py"
    path.write_text(CLASSES)
    assert main(["check", str(path), "--layer", "BatchNorm1d", "--kwarg", "gamma_bug=true",
                 "--shape", "x=5,4", "--format", "json"]) == 1
    statuses = _rows(_json(capsys))
    assert statuses[("initial parameters", "x")] == "pass"  # gamma = 1 hides the bug
    assert statuses[("random parameters (seed 0)", "x")] == "fail"


def test_network_in_the_parameter_dict_convention(tmp_path, capsys):
    path = tmp_path / "net.py"
    path.write_text(NETWORK)
    assert main(["check", str(path), "--cost", "forward_propagation", "--grads",
                 "backward_propagation", "--parameters", "initialize_parameters",
                 "--format", "json"]) == 0
    statuses = {g["name"]: g["status"] for g in _json(capsys)["results"]}
    assert statuses == {"W1": "pass", "b1": "zero", "gamma1": "pass", "beta1": "pass",
                        "W2": "pass", "b2": "pass"}


def test_module_name_target_and_debug_names_the_import_root(tmp_path, capsys, monkeypatch):
    _package(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "course.assignment.rnn_layers:lstm_step_forward", "--debug",
                 "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["case"] == "lstm_step_forward / lstm_step_backward"
    assert "imported module course.assignment.rnn_layers" in captured.err
    assert main(["check", str(tmp_path / "course/assignment/rnn_layers.py"), "--op", "rnn_step",
                 "--debug"]) == 0
    err = capsys.readouterr().err
    assert f"module course.assignment.rnn_layers of its package, import root {tmp_path}" in err


def test_property_mode_takes_the_registry_settings(tmp_path, capsys):
    pkg = _package(tmp_path, extra_layers=WRONG_ALT)
    argv = ["check", str(pkg / "layers.py"), "--op", "batchnorm", "--shape", "x=N,D",
            "--shape", "gamma=D", "--shape", "beta=D", "--examples", "5"]
    assert main([*argv, "--backward", "batchnorm_backward"]) == 0
    assert main([*argv, "--backward", "batchnorm_backward_alt"]) == 1
    assert "smallest failing case" in capsys.readouterr().err


CLASSIFIERS = textwrap.dedent('''
    import numpy as np

    def svm_loss_naive(W, X, y, reg):
        dW = np.zeros(W.shape)
        loss = 0.0
        for i in range(X.shape[0]):
            scores = X[i].dot(W)
            for j in range(W.shape[1]):
                margin = scores[j] - scores[y[i]] + 1
                if j != y[i] and margin > 0:
                    loss += margin
                    dW[:, j] += X[i]
                    dW[:, y[i]] -= X[i]
        n = X.shape[0]
        return loss / n + reg * np.sum(W * W), dW / n + 2 * reg * W

    def softmax_loss_vectorized(W, X, y, reg):
        scores = X @ W
        scores = scores - scores.max(axis=1, keepdims=True)
        p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        n = X.shape[0]
        loss = -np.log(p[np.arange(n), y]).mean() + reg * np.sum(W * W)
        p[np.arange(n), y] -= 1
        return loss, X.T @ p / n + {reg_term}
''')


@pytest.mark.parametrize(("reg_term", "code"), [
    pytest.param("2 * reg * W", 0, id="correct"),
    pytest.param("reg * W", 1, id="regulariser-gradient-halved"),
])
def test_linear_classifier_losses_of_the_weights(tmp_path, capsys, reg_term, code):
    path = tmp_path / "linear_classifier.py"
    path.write_text(CLASSIFIERS.replace("{reg_term}", reg_term))
    assert main(["check", str(path), "--format", "json"]) == code
    statuses = _rows(_json(capsys))
    assert statuses[("svm_loss_naive", "W")] == "pass"
    assert statuses[("softmax_loss_vectorized", "W")] == ("pass" if code == 0 else "fail")


@pytest.mark.parametrize(("op", "old", "new", "failing"), [
    pytest.param("rnn_step", "(1 - next_h ** 2)", "(1 - next_h)", ["x", "prev_h", "Wx", "Wh", "b"],
                 id="rnn-wrong-tanh-derivative"),
    pytest.param("lstm_step", "dc * f, x.T @ da", "dc, x.T @ da", ["prev_c"],
                 id="lstm-dprev_c-without-forget-gate"),
])
def test_recurrent_mutants_fail_by_name(tmp_path, capsys, op, old, new, failing):
    pkg = _package(tmp_path)
    path = pkg / "rnn_layers.py"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    assert main(["check", str(path), "--op", op, "--format", "json"]) == 1
    doc = _json(capsys)
    assert [g["name"] for g in doc["results"] if g["status"] == "fail"] == failing


@pytest.mark.parametrize(("body", "code", "verdict", "note"), [
    pytest.param('raise ValueError("shapes\\nnot aligned")', 3, "ERROR", "shapes not aligned",
                 id="raises-folded-to-one-line"),
    pytest.param('raise NotImplementedError("TODO: implement the affine forward pass")', 0,
                 "not implemented", "affine_forward raises NotImplementedError (TODO: implement",
                 id="not-implemented"),
])
def test_a_pair_that_raises_is_listed_and_the_rest_still_run(tmp_path, capsys, body, code,
                                                              verdict, note):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent('''
        import numpy as np

        def relu_forward(x):
            return np.maximum(0, x), x

        def relu_backward(dout, cache):
            return dout * (cache > 0)

        def affine_forward(x, w, b):
            BODY

        def affine_backward(dout, cache):
            return None
    ''').replace("BODY", body))
    assert main(["check", str(path)]) == code  # by what was checked: relu
    captured = capsys.readouterr()
    assert ("1 of the 2 rows raised (affine" in captured.err) == (code == 3)
    lines = captured.out.splitlines()
    affine = next(ln for ln in lines if ln.startswith("affine "))
    assert verdict in affine and note in affine
    assert " pass " in next(ln for ln in lines if ln.startswith("relu "))
