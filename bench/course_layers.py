"""Course-style BatchNorm as learners write it (CS231n ``layers.py``), for the issue-16 targets.

``batchnorm_forward(x, gamma, beta, bn_param) -> (out, cache)`` with the running statistics
written into ``bn_param``, ``batchnorm_backward(dout, cache) -> (dx, dgamma, dbeta)``, and the
spatial pair over ``(N, C, H, W)`` that transposes to ``(N*H*W, C)`` and reuses them. This file
imports nothing but NumPy: :mod:`bench.targets` copies it verbatim into a temporary directory and
runs ``gradcheck check`` on the copy, the way a learner runs it on their assignment.

Examples
--------
>>> x = np.arange(6.0).reshape(3, 2)
>>> out, cache = batchnorm_forward(x, np.ones(2), np.zeros(2), {"mode": "train"})
>>> np.round(out[:, 0], 3)
array([-1.225,  0.   ,  1.225])
>>> [g.shape for g in batchnorm_backward(np.ones((3, 2)), cache)]
[(3, 2), (2,), (2,)]
"""

from __future__ import annotations

from typing import Any

import numpy as np


def batchnorm_forward(x: Any, gamma: Any, beta: Any, bn_param: dict[str, Any]) -> Any:
    """Training mode uses the batch statistics and updates the running ones in ``bn_param``."""
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    running_mean = bn_param.get("running_mean", np.zeros(x.shape[1], dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(x.shape[1], dtype=x.dtype))
    if mode == "train":
        sample_mean = x.mean(axis=0)
        xc = x - sample_mean
        sample_var = (xc * xc).mean(axis=0)
        std = np.sqrt(sample_var + eps)
        xhat = xc / std
        out = gamma * xhat + beta
        cache = (xhat, gamma, std)
        running_mean = momentum * running_mean + (1 - momentum) * sample_mean
        running_var = momentum * running_var + (1 - momentum) * sample_var
    elif mode == "test":
        xhat = (x - running_mean) / np.sqrt(running_var + eps)
        out = gamma * xhat + beta
        cache = (xhat, gamma, np.sqrt(running_var + eps))
    else:
        raise ValueError(f'Invalid forward batchnorm mode "{mode}"')
    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, cache


def batchnorm_backward(dout: Any, cache: Any) -> Any:
    """The simplified (one-line) form of dx."""
    xhat, gamma, std = cache
    g = dout * gamma
    dx = (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0)) / std
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def spatial_batchnorm_forward(x: Any, gamma: Any, beta: Any, bn_param: dict[str, Any]) -> Any:
    """``(N, C, H, W)``: normalise every channel over N, H and W."""
    n, c, h, w = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(flat, gamma, beta, bn_param)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape)


def spatial_batchnorm_backward(dout: Any, cache: Any) -> Any:
    """The spatial backward: transpose, the vanilla backward, transpose back."""
    inner, (n, c, h, w) = cache
    flat = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward(flat, inner)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta
