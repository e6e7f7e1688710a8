"""Learners' mistakes beyond BatchNorm, written from scratch in the course's function convention.

Each op has a correct forward and backward (``forward(x, ..., param) -> (out, cache)``,
``backward(dout, cache) -> grads``; for the softmax loss, ``loss(x, y) -> (loss, dx)``), inputs
away from kinks and ties, and three shapes; each mistake changes one thing the way learners
are known to get it wrong (course forums, the cs231n and d2l exercises): the ReLU mask left out,
``W[idx] += d`` for an embedding, the recurrent path dropped, a kernel flipped, ...

``EXPECTED`` is written from the broken code, not from the diagnosis: {gradient: cause} for the
gradients the mistake breaks in a way the headline must name; any other failing gradient may only
carry one of those causes or none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Inputs = Callable[[tuple[int, ...], int], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Op:
    """One op: forward, correct backward (None for a loss), inputs, config and three shapes."""

    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any] | None
    inputs: Inputs
    shapes: tuple[tuple[int, ...], ...]
    config: Callable[[tuple[int, ...], int], dict[str, Any]] = lambda shape, seed: {}


@dataclass(frozen=True)
class Mistake:
    op: str
    expected: Mapping[str, str]
    backward: Callable[..., Any] | None = None
    forward: Callable[..., Any] | None = None  # a loss's mistakes are in its (loss, dx) function
    note: str = field(default="")


def _rng(shape: tuple[int, ...], seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, salt, *shape])


def _away(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values away from 0 (ReLU's kink) with distinct magnitudes (no max-pool ties)."""
    size = int(np.prod(shape))
    mags = rng.permutation(np.linspace(0.2, 2.0, size))
    return (rng.choice([-1.0, 1.0], size) * mags).reshape(shape)


# --- affine ------------------------------------------------------------------------------------


def affine_forward(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, _b = cache
    return (dout @ w.T).reshape(x.shape), x.reshape(x.shape[0], -1).T @ dout, dout.sum(0)


def affine_dw_transposed(dout, cache):
    dx, _, db = affine_backward(dout, cache)
    x = cache[0]
    return dx, dout.T @ x.reshape(x.shape[0], -1), db


def affine_db_mean(dout, cache):
    dx, dw, _ = affine_backward(dout, cache)
    return dx, dw, dout.mean(0)


def affine_dx_not_reshaped(dout, cache):
    _, dw, db = affine_backward(dout, cache)
    return dout @ cache[1].T, dw, db


def affine_dw_over_n(dout, cache):
    dx, dw, db = affine_backward(dout, cache)
    return dx, dw / dout.shape[0], db


def _affine_inputs(shape, seed):
    n, d1, d2, m = shape
    rng = _rng(shape, seed, 1)
    return {"x": rng.normal(size=(n, d1, d2)), "w": rng.normal(size=(d1 * d2, m)),
            "b": rng.normal(size=m)}


# --- ReLU and leaky ReLU ---------------------------------------------------------------------


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, x):
    return (dout * (x > 0),)


def relu_no_mask(dout, x):
    return (dout.copy(),)


def relu_mask_inverted(dout, x):
    return (dout * (x < 0),)


def leaky_forward(x):
    return np.where(x > 0, x, 0.01 * x), x


def leaky_backward(dout, x):
    return (np.where(x > 0, dout, 0.01 * dout),)


def leaky_negative_slope_sign(dout, x):
    return (np.where(x > 0, dout, -0.01 * dout),)


def _relu_inputs(shape, seed):
    return {"x": _away(_rng(shape, seed, 2), shape)}


# --- softmax cross-entropy (the loss convention) ----------------------------------------------


def _probs(x):
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True), z


def softmax_loss(x, y):
    p, z = _probs(x)
    n = x.shape[0]
    loss = -np.sum(z[np.arange(n), y] - np.log(np.exp(z).sum(axis=1))) / n
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def softmax_loss_no_mean(x, y):
    loss, dx = softmax_loss(x, y)
    return loss, dx * x.shape[0]


def softmax_loss_no_minus_one(x, y):
    loss, _ = softmax_loss(x, y)
    return loss, _probs(x)[0] / x.shape[0]


def softmax_loss_plus_one(x, y):
    loss, _ = softmax_loss(x, y)
    p, _z = _probs(x)
    dx = p.copy()
    dx[np.arange(x.shape[0]), y] += 1  # the one-hot term added where it is subtracted
    return loss, dx / x.shape[0]


def softmax_loss_sign(x, y):
    loss, dx = softmax_loss(x, y)
    return loss, -dx


def _softmax_inputs(shape, seed):
    return {"x": _rng(shape, seed, 3).normal(size=shape)}


def _softmax_config(shape, seed):
    return {"y": _rng(shape, seed, 4).integers(0, shape[1], shape[0])}


# --- softmax as a layer (its Jacobian is full within a row) -----------------------------------


def softmax_forward(x):
    y = _probs(x)[0]
    return y, y


def softmax_backward(dout, y):
    return (y * (dout - (dout * y).sum(axis=1, keepdims=True)),)


def softmax_diagonal_only(dout, y):
    """dy_i/dx_i = y_i(1 − y_i) taken for the whole Jacobian: the −y_i·y_j terms left out."""
    return (y * (1 - y) * dout,)


def softmax_reversed(dout, y):
    return (-softmax_backward(dout, y)[0],)


def relu_reversed(dout, x):
    return (-(dout * (x > 0)),)


def leaky_straight_through(dout, x):
    return (dout,)


# --- a quantiser, round(4x)/4 (its derivative is 0 between the steps) -------------------------


def quantise_forward(x):
    return np.round(4 * x) / 4, x


def quantise_backward(dout, x):
    return (np.zeros_like(dout),)


def quantise_straight_through(dout, x):
    """The straight-through estimator: right for training, not the derivative a check wants."""
    return (dout.copy(),)


def _quantise_inputs(shape, seed):
    rng = _rng(shape, seed, 14)  # a quarter-step from each jump: (k + u)/4 with |u| <= 0.3
    return {"x": (rng.integers(-8, 9, shape) + rng.uniform(-0.3, 0.3, shape)) / 4}


# --- convolution (stride 1, no padding) --------------------------------------------------------


def conv_forward(x, w, b):
    n, _c, h, wd = x.shape
    f, _, hh, ww = w.shape
    ho, wo = h - hh + 1, wd - ww + 1
    out = np.zeros((n, f, ho, wo), dtype=np.result_type(x, w, b))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, :, i:i + hh, j:j + ww]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b)


def conv_backward(dout, cache):
    x, w, _b = cache
    hh, ww = w.shape[2:]
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            g = dout[:, :, i, j]
            dx[:, :, i:i + hh, j:j + ww] += np.tensordot(g, w, axes=([1], [0]))
            dw += np.tensordot(g, x[:, :, i:i + hh, j:j + ww], axes=([0], [0]))
    return dx, dw, dout.sum(axis=(0, 2, 3))


def conv_db_batch_only(dout, cache):
    dx, dw, _ = conv_backward(dout, cache)
    return dx, dw, dout.sum(axis=0)


def conv_dw_flipped(dout, cache):
    dx, dw, db = conv_backward(dout, cache)
    return dx, dw[:, :, ::-1, ::-1], db


def conv_dw_over_n(dout, cache):
    dx, dw, db = conv_backward(dout, cache)
    return dx, dw / dout.shape[0], db


def _conv_inputs(shape, seed):
    n, c, h, f, k = shape
    rng = _rng(shape, seed, 5)
    return {"x": rng.normal(size=(n, c, h, h)), "w": rng.normal(size=(f, c, k, k)),
            "b": rng.normal(size=f)}


# --- max pooling (2 x 2, stride 2) ------------------------------------------------------------


def pool_forward(x):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, c, h // 2, w // 2, 4)
    return win.max(axis=-1), (x, win.argmax(axis=-1))


def _scatter(dout, x, arg, swap=False):
    dx = np.zeros_like(x)
    n, c, ho, wo = dout.shape
    for i in range(ho):
        for j in range(wo):
            r, s = (arg[:, :, i, j] % 2, arg[:, :, i, j] // 2) if swap else (
                arg[:, :, i, j] // 2, arg[:, :, i, j] % 2)
            nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
            dx[nn, cc, 2 * i + r, 2 * j + s] = dout[:, :, i, j]
    return dx


def pool_backward(dout, cache):
    x, arg = cache
    return (_scatter(dout, x, arg),)


def pool_to_whole_window(dout, cache):
    _x, _ = cache
    return (np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3),)


def pool_argmax_unravelled_wrong(dout, cache):
    x, arg = cache
    return (_scatter(dout, x, arg, swap=True),)


def _pool_inputs(shape, seed):
    return {"x": _away(_rng(shape, seed, 6), shape)}


# --- inverted dropout ------------------------------------------------------------------------


def dropout_forward(x, dropout_param):
    p = dropout_param["p"]
    mask = (np.random.default_rng(dropout_param["seed"]).random(x.shape) < p) / p
    return x * mask, (mask, p)


def dropout_backward(dout, cache):
    mask, _ = cache
    return (dout * mask,)


def dropout_mask_not_applied(dout, cache):
    return (dout / cache[1],)


def dropout_not_rescaled(dout, cache):
    mask, _ = cache
    return (dout * (mask > 0),)


def dropout_mask_inverted(dout, cache):
    mask, p = cache
    return (dout * (mask == 0) / p,)


def _dropout_inputs(shape, seed):
    return {"x": _rng(shape, seed, 7).normal(size=shape)}


def _dropout_config(shape, seed):
    return {"dropout_param": {"p": 0.6, "seed": 100 + seed}}


# --- a vanilla RNN over T steps ----------------------------------------------------------------


def rnn_forward(x, h0, Wx, Wh, b):
    n, t, _ = x.shape
    h, prev = np.zeros((n, t, h0.shape[1]), dtype=np.result_type(x, h0, Wx)), h0
    for k in range(t):
        prev = np.tanh(x[:, k] @ Wx + prev @ Wh + b)
        h[:, k] = prev
    return h, (x, h0, Wx, Wh, h)


def _rnn_back(dh, cache, *, carry=True, state=None):
    x, h0, Wx, Wh, h = cache
    _n, t, _ = x.shape
    dx, dWx, dWh = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh)
    db, dnext = np.zeros(Wh.shape[0]), np.zeros_like(h0)
    for k in reversed(range(t)):
        hk = h[:, k] if state is None else state(h, k)
        hp = h[:, k - 1] if k > 0 else h0
        da = (dh[:, k] + (dnext if carry else 0.0)) * (1 - hk**2)
        dx[:, k] = da @ Wx.T
        dWx += x[:, k].T @ da
        dWh += hp.T @ da
        db += da.sum(0)
        dnext = da @ Wh.T
    return dx, dnext, dWx, dWh, db


def rnn_backward(dh, cache):
    return _rnn_back(dh, cache)


def rnn_no_recurrent_path(dh, cache):
    return _rnn_back(dh, cache, carry=False)


def rnn_state_overwritten(dh, cache):
    """The cached states are one array overwritten each step: every step sees the last state."""
    return _rnn_back(dh, cache, state=lambda h, k: h[:, -1])


def rnn_dh0_missing(dh, cache):
    dx, _, dWx, dWh, db = _rnn_back(dh, cache)
    return dx, np.zeros_like(cache[1]), dWx, dWh, db


def _rnn_inputs(shape, seed):
    n, t, d, hd = shape
    rng = _rng(shape, seed, 8)
    return {"x": rng.normal(size=(n, t, d)), "h0": rng.normal(size=(n, hd)),
            "Wx": rng.normal(0, 0.4, (d, hd)), "Wh": rng.normal(0, 0.4, (hd, hd)),
            "b": rng.normal(0, 0.2, hd)}


# --- word embedding --------------------------------------------------------------------------


def embedding_forward(W, idx):
    return W[idx], (idx, W.shape)


def embedding_backward(dout, cache):
    idx, shape = cache
    dW = np.zeros(shape)
    np.add.at(dW, idx, dout)
    return (dW,)


def embedding_plain_index_add(dout, cache):
    idx, shape = cache
    dW = np.zeros(shape)
    dW[idx] += dout
    return (dW,)


def _embedding_inputs(shape, seed):
    _n, _t, v, d = shape
    return {"W": _rng(shape, seed, 9).normal(size=(v, d))}


def _embedding_config(shape, seed):
    n, t, v, _d = shape
    return {"idx": _rng(shape, seed, 10).integers(0, v, (n, t))}


# --- LayerNorm (statistics per sample over the features) --------------------------------------


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = xc / std
    return gamma * xhat + beta, (xc, var, std, xhat, gamma, eps)


def layernorm_backward(dout, cache):
    _xc, _var, std, xhat, gamma, _eps = cache
    g = dout * gamma
    dx = (g - g.mean(1, keepdims=True) - xhat * (g * xhat).mean(1, keepdims=True)) / std
    return dx, (dout * xhat).sum(0), dout.sum(0)


def layernorm_missing_mean(dout, cache):
    _xc, _var, std, xhat, gamma, _eps = cache
    g = dout * gamma
    dx = (g - xhat * (g * xhat).mean(1, keepdims=True)) / std
    return dx, (dout * xhat).sum(0), dout.sum(0)


def layernorm_missing_xhat(dout, cache):
    _xc, _var, std, xhat, gamma, _eps = cache
    g = dout * gamma
    dx = (g - g.mean(1, keepdims=True)) / std
    return dx, (dout * xhat).sum(0), dout.sum(0)


def layernorm_variance_path_d_minus_1(dout, cache):
    """The staged backward, its variance path divided by D − 1."""
    xc, var, std, xhat, gamma, eps = cache
    d = xc.shape[1]
    g = dout * gamma
    dvar = np.sum(g * xc, axis=1, keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmu = np.sum(-g / std, axis=1, keepdims=True)
    dx = g / std + dvar * 2.0 * xc / (d - 1) + dmu / d
    return dx, (dout * xhat).sum(0), dout.sum(0)


def layernorm_dgamma_wrong_axis(dout, cache):
    dx, _, dbeta = layernorm_backward(dout, cache)
    return dx, (dout * cache[3]).sum(1), dbeta


def _layernorm_inputs(shape, seed):
    n, d = shape
    rng = _rng(shape, seed, 11)
    return {"x": rng.normal(1.0, 2.0, size=(n, d)),
            "gamma": rng.choice([-1.0, 1.0], d) * rng.uniform(0.5, 2.0, d),
            "beta": rng.normal(size=d)}


def _layernorm_config(shape, seed):
    return {"ln_param": {"eps": 1e-3}}


# --- a two-layer network: affine - ReLU - affine - softmax, with L2 regularisation -------------


def net_forward(X, W1, b1, W2, b2, p):
    y, reg = p["y"], p["reg"]
    a = X @ W1 + b1
    h = np.maximum(a, 0)
    loss, dscores = softmax_loss(h @ W2 + b2, y)
    loss = loss + 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    return loss, (X, W1, W2, a, h, dscores, reg)


def _net_back(dout, cache, *, reg_scale=1.0, db2=None):
    X, W1, W2, a, h, ds, reg = cache
    ds = ds * dout
    dW2 = h.T @ ds + reg_scale * reg * W2 * dout
    dh = ds @ W2.T * (a > 0)
    dW1 = X.T @ dh + reg_scale * reg * W1 * dout
    return dh @ W1.T, dW1, dh.sum(0), dW2, ds.sum(0) if db2 is None else db2(ds)


def net_backward(dout, cache):
    return _net_back(dout, cache)


def net_no_regularisation(dout, cache):
    return _net_back(dout, cache, reg_scale=0.0)


def net_regularisation_doubled(dout, cache):
    """d(½·reg·W²)/dW written as 2·reg·W."""
    return _net_back(dout, cache, reg_scale=2.0)


def net_db2_not_summed(dout, cache):
    return _net_back(dout, cache, db2=lambda ds: ds)


def _net_inputs(shape, seed):
    n, d, hd, c = shape
    rng = _rng(shape, seed, 12)
    return {"X": rng.normal(size=(n, d)), "W1": rng.normal(0, 0.5, (d, hd)),
            "b1": rng.normal(0, 0.1, hd), "W2": rng.normal(0, 0.5, (hd, c)),
            "b2": rng.normal(0, 0.1, c)}


def _net_config(shape, seed):
    n, _d, _hd, c = shape
    return {"p": {"y": _rng(shape, seed, 13).integers(0, c, n), "reg": 0.3}}


OPS = {
    "affine": Op("affine", affine_forward, affine_backward, _affine_inputs,
                 ((4, 2, 3, 5), (3, 3, 2, 4), (6, 2, 2, 3))),
    "relu": Op("relu", relu_forward, relu_backward, _relu_inputs, ((4, 5), (3, 7), (6, 3))),
    "leaky-relu": Op("leaky-relu", leaky_forward, leaky_backward, _relu_inputs,
                     ((4, 5), (3, 7), (6, 3))),
    "softmax-loss": Op("softmax-loss", softmax_loss, None, _softmax_inputs,
                       ((4, 5), (6, 3), (3, 7)), _softmax_config),
    "softmax": Op("softmax", softmax_forward, softmax_backward, _softmax_inputs,
                  ((4, 5), (6, 3), (3, 7))),
    "quantise": Op("quantise", quantise_forward, quantise_backward, _quantise_inputs,
                   ((4, 5), (3, 7), (6, 3))),
    "conv": Op("conv", conv_forward, conv_backward, _conv_inputs,
               ((2, 2, 5, 3, 3), (3, 1, 4, 2, 2), (2, 3, 4, 2, 3))),
    "max-pool": Op("max-pool", pool_forward, pool_backward, _pool_inputs,
                   ((2, 2, 4, 4), (1, 3, 4, 6), (3, 1, 6, 4))),
    "dropout": Op("dropout", dropout_forward, dropout_backward, _dropout_inputs,
                  ((4, 6), (5, 3), (3, 8)), _dropout_config),
    "rnn": Op("rnn", rnn_forward, rnn_backward, _rnn_inputs,
              ((3, 4, 3, 4), (2, 5, 2, 3), (4, 3, 3, 3))),
    "embedding": Op("embedding", embedding_forward, embedding_backward, _embedding_inputs,
                    ((3, 4, 5, 3), (2, 6, 4, 2), (4, 3, 6, 3)), _embedding_config),
    "layernorm": Op("layernorm", layernorm_forward, layernorm_backward, _layernorm_inputs,
                    ((5, 4), (3, 6), (7, 5)), _layernorm_config),
    "two-layer-net": Op("two-layer-net", net_forward, net_backward, _net_inputs,
                        ((5, 4, 6, 3), (4, 3, 5, 4), (6, 5, 4, 3)), _net_config),
}

MISTAKES = {
    "affine-dw-transposed": Mistake("affine", {"w": "transposed"}, affine_dw_transposed),
    "affine-db-mean": Mistake("affine", {"b": "sum-vs-mean"}, affine_db_mean),
    "affine-dx-not-reshaped": Mistake("affine", {"x": "keepdims"}, affine_dx_not_reshaped),
    "affine-dw-over-n": Mistake("affine", {"w": "sum-vs-mean"}, affine_dw_over_n),
    "relu-mask-not-applied": Mistake("relu", {"x": "mask-not-applied"}, relu_no_mask),
    "relu-mask-inverted": Mistake("relu", {"x": "mask-inverted"}, relu_mask_inverted),
    "leaky-relu-slope-sign": Mistake("leaky-relu", {"x": "sign-subset"},
                                     leaky_negative_slope_sign),
    "relu-gradient-reversal": Mistake("relu", {"x": "sign"}, relu_reversed),
    "leaky-relu-straight-through": Mistake("leaky-relu", {"x": "straight-through"},
                                           leaky_straight_through),
    "softmax-jacobian-diagonal": Mistake("softmax", {"x": "jacobian-diagonal"},
                                         softmax_diagonal_only),
    "softmax-gradient-reversal": Mistake("softmax", {"x": "sign"}, softmax_reversed),
    "quantise-straight-through": Mistake("quantise", {"x": "straight-through"},
                                         quantise_straight_through),
    "softmax-loss-no-mean": Mistake("softmax-loss", {"x": "sum-vs-mean"},
                                    forward=softmax_loss_no_mean),
    "softmax-loss-no-minus-one": Mistake("softmax-loss", {"x": "one-hot"},
                                         forward=softmax_loss_no_minus_one),
    "softmax-loss-plus-one": Mistake("softmax-loss", {"x": "one-hot-sign"},
                                     forward=softmax_loss_plus_one),
    "softmax-loss-sign": Mistake("softmax-loss", {"x": "sign"}, forward=softmax_loss_sign),
    "conv-db-batch-only": Mistake("conv", {"b": "partly-summed"}, conv_db_batch_only),
    "conv-dw-flipped": Mistake("conv", {"w": "flipped"}, conv_dw_flipped),
    "conv-dw-over-n": Mistake("conv", {"w": "sum-vs-mean"}, conv_dw_over_n),
    "max-pool-whole-window": Mistake("max-pool", {"x": "mask-not-applied"},
                                     pool_to_whole_window),
    "max-pool-argmax-unravelled": Mistake("max-pool", {"x": "moved"},
                                          pool_argmax_unravelled_wrong),
    "dropout-mask-not-applied": Mistake("dropout", {"x": "mask-not-applied"},
                                        dropout_mask_not_applied),
    "dropout-not-rescaled": Mistake("dropout", {"x": "scale"}, dropout_not_rescaled),
    "dropout-mask-inverted": Mistake("dropout", {"x": "mask-inverted"}, dropout_mask_inverted),
    "rnn-no-recurrent-path": Mistake("rnn", {"x": "time-carry"}, rnn_no_recurrent_path),
    "rnn-state-overwritten": Mistake("rnn", {"x": "time-carry"}, rnn_state_overwritten),
    "rnn-dh0-missing": Mistake("rnn", {"h0": "zero"}, rnn_dh0_missing),
    "embedding-index-add": Mistake("embedding", {"W": "no-accumulation"},
                                   embedding_plain_index_add),
    "layernorm-missing-mean-term": Mistake("layernorm", {"x": "missing-mean-term"},
                                           layernorm_missing_mean),
    "layernorm-missing-xhat-term": Mistake("layernorm", {"x": "missing-xhat-term"},
                                           layernorm_missing_xhat),
    "layernorm-variance-path-d-1": Mistake("layernorm", {"x": "variance-path-count"},
                                           layernorm_variance_path_d_minus_1),
    "layernorm-dgamma-wrong-axis": Mistake("layernorm", {"gamma": "wrong-axis"},
                                           layernorm_dgamma_wrong_axis),
    "net-no-regularisation": Mistake("two-layer-net", {"W1": "regulariser",
                                                       "W2": "regulariser"},
                                     net_no_regularisation),
    "net-regularisation-doubled": Mistake("two-layer-net", {"W1": "regulariser",
                                                            "W2": "regulariser"},
                                          net_regularisation_doubled),
    "net-db2-not-summed": Mistake("two-layer-net", {"b2": "partly-summed"}, net_db2_not_summed),
}
