"""Independent oracles for the group-wise norms: per-group loops in Python floats, and PyTorch.

Nothing here imports gradcheck: each group's statistics, output and explicit Jacobian
``d xhat_i / d x_j = (delta_ij - 1/M - xhat_i xhat_j / M) / s`` are computed element by element.
"""

from __future__ import annotations

import numpy as np


def _groups_of(x_shape, groups):
    """Flat indices (C order) of each (sample, group): sample i, group g holds M consecutive."""
    n = x_shape[0]
    per_sample = int(np.prod(x_shape[1:]))
    m = per_sample // groups
    return [[i * per_sample + g * m + k for k in range(m)] for i in range(n) for g in range(groups)]


def _param_index(flat, x_shape, param_b_shape):
    """Index into the broadcast-shaped parameter for the element at flat index ``flat``."""
    idx = np.unravel_index(flat, x_shape)
    return tuple(0 if size == 1 else int(i) for i, size in zip(idx, param_b_shape, strict=True))


def naive_forward(x, gamma_b, beta_b, groups, eps):
    """Output of the normalisation, computed one group at a time in Python floats."""
    flat_x = [float(v) for v in x.reshape(-1)]
    out = np.empty(x.size)
    for members in _groups_of(x.shape, groups):
        vals = [flat_x[k] for k in members]
        mu = sum(vals) / len(vals)
        var = sum((v - mu) ** 2 for v in vals) / len(vals)
        for k in members:
            p = _param_index(k, x.shape, gamma_b.shape)
            out[k] = float(gamma_b[p]) * (flat_x[k] - mu) / (var + eps) ** 0.5 + float(beta_b[p])
    return out.reshape(x.shape)


def naive_backward(dout, x, gamma_b, groups, eps):
    """(dx, dgamma, dbeta) through each group's explicit Jacobian; params in broadcast shape."""
    flat_x = [float(v) for v in x.reshape(-1)]
    flat_d = [float(v) for v in dout.reshape(-1)]
    dx = np.zeros(x.size)
    dgamma = np.zeros(gamma_b.shape)
    dbeta = np.zeros(gamma_b.shape)
    for members in _groups_of(x.shape, groups):
        m = len(members)
        vals = [flat_x[k] for k in members]
        mu = sum(vals) / m
        s = (sum((v - mu) ** 2 for v in vals) / m + eps) ** 0.5
        xhat = [(v - mu) / s for v in vals]
        params = [_param_index(k, x.shape, gamma_b.shape) for k in members]
        dxhat = [flat_d[k] * float(gamma_b[p]) for k, p in zip(members, params, strict=True)]
        for j, kj in enumerate(members):
            dx[kj] = sum(
                dxhat[i] * ((i == j) - 1.0 / m - xhat[i] * xhat[j] / m) / s for i in range(m)
            )
        for i, (k, p) in enumerate(zip(members, params, strict=True)):
            dgamma[p] += flat_d[k] * xhat[i]
            dbeta[p] += flat_d[k]
    return dx.reshape(x.shape), dgamma, dbeta


def torch_reference(x, gamma_b, beta_b, groups, eps, dout):
    """(out, dx, dgamma, dbeta) from PyTorch's group_norm / layer_norm and autograd, float64.

    ``groups == 1`` with elementwise parameters uses ``layer_norm``; otherwise ``group_norm``
    without affine, then the affine map, so every parameter layout goes through torch's kernels.
    """
    import torch

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    gt = torch.tensor(np.asarray(gamma_b), dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(np.asarray(beta_b), dtype=torch.float64, requires_grad=True)
    if groups == 1:
        normed = torch.nn.functional.layer_norm(xt, tuple(x.shape[1:]), eps=eps)
    else:
        normed = torch.nn.functional.group_norm(xt, groups, eps=eps)
    out = normed * gt + bt
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return tuple(t.detach().numpy() for t in (out, xt.grad, gt.grad, bt.grad))

