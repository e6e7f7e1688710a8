"""A learner's BatchNorm: the staged backward divides the variance path by N - 1 (a real mistake).

    gradcheck check examples/batchnorm_variance_n_minus_1.py
"""

import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc * xc).mean(axis=0)
    std = np.sqrt(var + eps)
    xhat = xc / std
    return gamma * xhat + beta, (xc, var, std, xhat, gamma, eps)


def batchnorm_backward(dout, cache):
    xc, var, std, xhat, gamma, eps = cache
    n = dout.shape[0]
    dxhat = dout * gamma
    dvar = np.sum(dxhat * xc, axis=0) * -0.5 * (var + eps) ** -1.5
    dmu = np.sum(-dxhat / std, axis=0)
    dx = dxhat / std + dvar * 2.0 * xc / (n - 1) + dmu / n  # the forward divides by n
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)
