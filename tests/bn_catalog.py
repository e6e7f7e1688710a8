"""Course-style BatchNorm layers as learners write them: correct formulations and broken backwards.

Every function here is written from scratch (not through gradcheck's reference), in the
``batchnorm_forward(x, gamma, beta, bn_param)`` / ``batchnorm_backward(dout, cache)`` convention,
for (N, D) inputs. The forward is shared; the catalog varies the backward.
"""

from __future__ import annotations

import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    """Training forward that also writes running statistics into ``bn_param`` (cs231n style)."""
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    n, d = x.shape
    running_mean = bn_param.get("running_mean", np.zeros(d, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(d, dtype=x.dtype))
    mu = x.sum(axis=0) / n
    xc = x - mu
    var = (xc * xc).sum(axis=0) / n
    std = np.sqrt(var + eps)
    xhat = xc / std
    out = gamma * xhat + beta
    bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mu.real
    bn_param["running_var"] = momentum * running_var + (1 - momentum) * var.real
    return out, (x, xc, xhat, var, std, gamma, eps)


def batchnorm_forward_npvar(x, gamma, beta, bn_param):
    """The same forward written with ``x.var``: correct, but not complex-step safe."""
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    std = np.sqrt(var + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (x, x - mu, xhat, var, std, gamma, eps)


# --- correct backwards ------------------------------------------------------------------------


def backward_staged(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    n = x.shape[0]
    dxhat = dout * gamma
    dvar = np.sum(dxhat * xc, axis=0) * -0.5 * (var + eps) ** -1.5
    dmu = np.sum(-dxhat / std, axis=0) + dvar * np.mean(-2.0 * xc, axis=0)
    dx = dxhat / std + dvar * 2.0 * xc / n + dmu / n
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def backward_compact(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    n = x.shape[0]
    dx = gamma / (n * std) * (n * dout - dout.sum(axis=0) - xhat * (dout * xhat).sum(axis=0))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def backward_in_x(dout, cache):
    """Written with x and the variance, never xhat."""
    x, _, _, var, _, gamma, eps = cache
    n = x.shape[0]
    mu = x.mean(axis=0)
    inv = (var + eps) ** -0.5
    dx = (gamma * inv / n) * (
        n * dout - dout.sum(axis=0) - (x - mu) * inv**2 * (dout * (x - mu)).sum(axis=0)
    )
    return dx, (dout * (x - mu) * inv).sum(axis=0), dout.sum(axis=0)


class BatchNormClass:
    """A layer object in the params/grads style, with running statistics."""

    def __init__(self, num_features, eps=1e-5, momentum=0.9):
        self.params = {"gamma": np.ones(num_features), "beta": np.zeros(num_features)}
        self.grads = {}
        self.bn_param = {"eps": eps, "momentum": momentum}
        self.cache = None

    def forward(self, x):
        out, self.cache = batchnorm_forward(x, self.params["gamma"], self.params["beta"],
                                            self.bn_param)
        return out

    def backward(self, dout):
        dx, self.grads["gamma"], self.grads["beta"] = backward_compact(dout, self.cache)
        return dx


# --- broken backwards: each a mistake learners make ---------------------------------------------


def missing_mean_term(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    dx = gamma / std * (dout - xhat * np.mean(dout * xhat, axis=0))
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def missing_xhat_term(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    dx = gamma / std * (dout - np.mean(dout, axis=0))
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def unbiased_variance(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    n = x.shape[0]
    std_u = np.sqrt(var * n / (n - 1) + eps)
    xhat_u = xc / std_u
    dx = gamma / std_u * (dout - dout.mean(0) - xhat_u * (dout * xhat_u).mean(0))
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def eps_outside_sqrt(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    s = np.sqrt(var) + eps
    dx = gamma / s * (dout - dout.mean(0) - xhat * (dout * xhat).mean(0))
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def gamma_missing_from_dx(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    dx = 1.0 / std * (dout - dout.mean(0) - xhat * (dout * xhat).mean(0))
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def dgamma_wrong_axis(dout, cache):
    dx, _, dbeta = backward_compact(dout, cache)
    xhat = cache[2]
    return dx, np.sum(dout * xhat, axis=1), dbeta


def dbeta_as_mean(dout, cache):
    dx, dgamma, _ = backward_compact(dout, cache)
    return dx, dgamma, np.mean(dout, axis=0)


def swapped_dgamma_dbeta(dout, cache):
    dx, dgamma, dbeta = backward_compact(dout, cache)
    return dx, dbeta, dgamma


def dx_off_by_1e6(dout, cache):
    dx, dgamma, dbeta = backward_compact(dout, cache)
    return dx * (1 + 1e-6), dgamma, dbeta


def dgamma_times_gamma(dout, cache):
    """Visible only when gamma != 1."""
    dx, _, dbeta = backward_compact(dout, cache)
    xhat, gamma = cache[2], cache[5]
    return dx, np.sum(dout * xhat * gamma, axis=0), dbeta


def odd_batch_bug(dout, cache):
    """Averages over an even count (n rounded down to even): right only when N is even."""
    x, xc, xhat, var, std, gamma, eps = cache
    n_even = (x.shape[0] // 2) * 2
    mean_d = dout.sum(0) / n_even
    mean_dx = (dout * xhat).sum(0) / n_even
    dx = gamma / std * (dout - mean_d - xhat * mean_dx)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def mutates_dout(dout, cache):
    """Right numbers, but scales the caller's dout in place."""
    dx, dgamma, dbeta = backward_compact(dout.copy(), cache)
    dout *= 2.0
    return dx, dgamma, dbeta


def mutates_cache(dout, cache):
    """Right numbers the first time; rescales the cached xhat, so a second call is wrong."""
    result = backward_compact(dout, cache)
    cache[2][...] *= 1.5
    return result


def dvar_missing_half(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    n = x.shape[0]
    dxhat = dout * gamma
    dvar = np.sum(dxhat * xc, axis=0) * -1.0 * (var + eps) ** -1.5
    dmu = np.sum(-dxhat / std, axis=0)
    dx = dxhat / std + dvar * 2.0 * xc / n + dmu / n
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def dropped_variance_path(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    n = x.shape[0]
    dxhat = dout * gamma
    dmu = np.sum(-dxhat / std, axis=0)
    dx = dxhat / std + dmu / n
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def dgamma_with_xc(dout, cache):
    dx, _, dbeta = backward_compact(dout, cache)
    return dx, np.sum(dout * cache[1], axis=0), dbeta


def sign_error(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    dx = gamma / std * (dout - dout.mean(0) + xhat * (dout * xhat).mean(0))
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def dbeta_keepdims(dout, cache):
    dx, dgamma, _ = backward_compact(dout, cache)
    return dx, dgamma, np.sum(dout, axis=0, keepdims=True)


def dbeta_not_summed(dout, cache):
    dx, dgamma, _ = backward_compact(dout, cache)
    return dx, dgamma, dout


def n_minus_one_in_means(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    n = x.shape[0]
    dx = gamma / std * (dout - dout.sum(0) / (n - 1) - xhat * (dout * xhat).sum(0) / (n - 1))
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def wrong_eps(dout, cache):
    """Hard-codes the default eps instead of the one the forward used."""
    x, xc, xhat, var, std, gamma, eps = cache
    s = np.sqrt(var + 1e-5)
    dx = gamma / s * (dout - dout.mean(0) - xc / s * (dout * xc / s).mean(0))
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def dx_sign_flipped(dout, cache):
    dx, dgamma, dbeta = backward_compact(dout, cache)
    return -dx, dgamma, dbeta


def mean_term_sign(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    dx = gamma / std * (dout + dout.mean(0) - xhat * (dout * xhat).mean(0))
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def missing_inv_std(dout, cache):
    x, xc, xhat, var, std, gamma, eps = cache
    dx = gamma * (dout - dout.mean(0) - xhat * (dout * xhat).mean(0))
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def dgamma_as_mean(dout, cache):
    dx, _, dbeta = backward_compact(dout, cache)
    return dx, np.mean(dout * cache[2], axis=0), dbeta


CORRECT = {
    "staged": backward_staged,
    "compact": backward_compact,
    "in-terms-of-x": backward_in_x,
}

BROKEN = {
    "missing-mean-term": missing_mean_term,
    "missing-xhat-term": missing_xhat_term,
    "unbiased-variance": unbiased_variance,
    "eps-outside-sqrt": eps_outside_sqrt,
    "gamma-missing-from-dx": gamma_missing_from_dx,
    "dgamma-wrong-axis": dgamma_wrong_axis,
    "dbeta-as-mean": dbeta_as_mean,
    "swapped-dgamma-dbeta": swapped_dgamma_dbeta,
    "dx-times-1+1e-6": dx_off_by_1e6,
    "dgamma-times-gamma": dgamma_times_gamma,
    "odd-batch-only": odd_batch_bug,
    "mutates-dout": mutates_dout,
    "mutates-cache": mutates_cache,
    "dvar-missing-half": dvar_missing_half,
    "dropped-variance-path": dropped_variance_path,
    "dgamma-with-xc": dgamma_with_xc,
    "sign-error": sign_error,
    "dbeta-keepdims": dbeta_keepdims,
    "dbeta-not-summed": dbeta_not_summed,
    "n-minus-one-in-means": n_minus_one_in_means,
    "wrong-eps": wrong_eps,
    "dx-sign-flipped": dx_sign_flipped,
    "mean-term-sign": mean_term_sign,
    "missing-inv-std": missing_inv_std,
    "dgamma-as-mean": dgamma_as_mean,
}

# What each broken backward gets wrong: {name: {gradient: cause}} in gradcheck.diagnosis's
# vocabulary, written from the code above (not from the diagnosis). Two pairs are one mistake in
# disguise for odd N: "odd-batch-only" divides by N rounded down to even, which is N - 1, and
# "dropped-variance-path" drops exactly the x̂·mean(dout·x̂) term. The two mutating backwards
# return the right numbers: the check names them as problems, there is no gradient to diagnose.
EXPECTED = {
    "missing-mean-term": {"x": "missing-mean-term"},
    "missing-xhat-term": {"x": "missing-xhat-term"},
    "unbiased-variance": {"x": "unbiased-variance"},
    "eps-outside-sqrt": {"x": "eps-outside-sqrt"},
    "gamma-missing-from-dx": {"x": "gamma-missing"},
    "dgamma-wrong-axis": {"gamma": "wrong-axis"},
    "dbeta-as-mean": {"beta": "sum-vs-mean"},
    "swapped-dgamma-dbeta": {"gamma": "swapped", "beta": "swapped"},
    "dx-times-1+1e-6": {"x": "scale"},
    "dgamma-times-gamma": {"gamma": "times-input"},
    "odd-batch-only": {"x": "count-in-means"},
    "mutates-dout": {},
    "mutates-cache": {},
    "dvar-missing-half": {"x": "variance-path-doubled"},
    "dropped-variance-path": {"x": "missing-xhat-term"},
    "dgamma-with-xc": {"gamma": "dgamma-uses-xc"},
    "sign-error": {"x": "xhat-term-sign"},
    "dbeta-keepdims": {"beta": "keepdims"},
    "dbeta-not-summed": {"beta": "not-summed"},
    "n-minus-one-in-means": {"x": "count-in-means"},
    "wrong-eps": {"x": "wrong-eps"},
    "dx-sign-flipped": {"x": "sign"},
    "mean-term-sign": {"x": "mean-term-sign"},
    "missing-inv-std": {"x": "missing-inv-std"},
    "dgamma-as-mean": {"gamma": "sum-vs-mean"},
}


# --- beyond BatchNorm: elementwise and matrix functions with one mistake each ----------------
# (f, wrong gradient, x, expected cause), for gradcheck.check_grads.

_A = np.arange(1.0, 17.0).reshape(4, 4) / 7.0
_X2 = np.linspace(-1.3, 2.1, 16).reshape(4, 4)
_X1 = np.linspace(-2.0, 3.0, 12)
_XR = np.linspace(0.2, 2.6, 18).reshape(6, 3)

GENERIC = {
    "transposed": (lambda x: np.sum(_A * x**2), lambda x: (2 * _A * x).T, _X2, "transposed"),
    "odd-indices-only": (lambda x: np.sum(np.sin(x)),
                         lambda x: np.cos(x) + np.where(np.arange(x.size) % 2 == 1, 0.3, 0.0),
                         _X1, "parity"),
    "one-element": (lambda x: np.sum(np.exp(x)),
                    lambda x: np.exp(x) + (np.arange(x.size) == 7) * 2.0, _X1, "concentrated"),
    "per-column-offset": (lambda x: 0.5 * np.sum(x**2),
                          lambda x: x + np.array([0.1, -0.2, 0.3]), _XR, "constant-along-axis"),
    "plus-input": (lambda x: np.sum(np.sin(x)), lambda x: np.cos(x) + 0.1 * x, _X1,
                   "regulariser"),
    "times-two": (lambda x: np.sum(x**3), lambda x: 6 * x**2, _X1, "scale"),
}
