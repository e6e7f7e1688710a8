# ruff: noqa: RUF059, E731, E741, E501, B023, F841
# (the catalogue imitates user code: short names, long formulas, closures over loop variables)
"""A second, independent adversarial catalogue of NumPy layers for gradcheck.

Same data model as ``tests/adversary_catalog.py`` (``Family``/``Case``, ``families()``,
``cases()``) so ``bench/adversary.py --catalog adversary2_catalog`` and
``bench/adversary_truth.py --catalog adversary2_catalog`` run it. Written without reference to
gradcheck's engine. Ground truth is independent of gradcheck: :func:`truth_torch` re-expresses
every forward in torch (float64 autograd), :func:`truth_mp` uses mpmath where torch's own
derivative formulas lose precision; :func:`truth_kinks` gives the valid intervals at exact kinks.

Only numpy and scipy are imported at module level (torch/mpmath only inside the truth helpers).
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import linalg as sla
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adversary_catalog import Family, _quiet, _revcumsum, catalogue

Array = np.ndarray
Backward = Callable[[Any, Any], tuple[Array, ...]]
sig = special.expit


def _fam(name, what, fwd, bwd, make, bugs, **kw):
    return Family(name, what, fwd, _quiet(bwd), make, {k: _quiet(v) for k, v in bugs.items()},
                  **kw)


# ----------------------------------------------------------------------------------------------
# 1. convolutions


def conv2d_im2col() -> Family:
    S, P, KH, KW = 2, 1, 3, 3

    def cols_of(xp, OH, OW):
        N, C = xp.shape[:2]
        cols = np.empty((N, C, KH, KW, OH, OW), dtype=xp.dtype)
        for i in range(KH):
            for j in range(KW):
                cols[:, :, i, j] = xp[:, :, i:i + S * (OH - 1) + 1:S, j:j + S * (OW - 1) + 1:S]
        return cols

    def fwd(x, w, b):
        N, C, H, W = x.shape
        OH, OW = (H + 2 * P - KH) // S + 1, (W + 2 * P - KW) // S + 1
        xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
        cols = cols_of(xp, OH, OW)
        out = np.einsum("fckl,ncklhw->nfhw", w, cols) + b[None, :, None, None]
        return out, (x, w, b, cols, xp.shape)

    def col2im(dcols, shape, overwrite=False):
        dxp = np.zeros(shape, dtype=dcols.dtype)
        OH, OW = dcols.shape[-2:]
        for i in range(KH):
            for j in range(KW):
                sl = (slice(None), slice(None), slice(i, i + S * (OH - 1) + 1, S),
                      slice(j, j + S * (OW - 1) + 1, S))
                if overwrite:
                    dxp[sl] = dcols[:, :, i, j]
                else:
                    dxp[sl] += dcols[:, :, i, j]
        return dxp

    def grads(dout, c, overwrite=False, crop0=False, flip=False):
        x, w, b, cols, xs = c
        dw = np.einsum("nfhw,ncklhw->fckl", dout, cols)
        if flip:
            dw = dw[:, :, ::-1, ::-1]
        dcols = np.einsum("fckl,nfhw->ncklhw", w, dout)
        dxp = col2im(dcols, xs, overwrite)
        H, W = x.shape[2:]
        dx = dxp[:, :, :H, :W] if crop0 else dxp[:, :, P:P + H, P:P + W]
        return dx, dw, dout.sum(axis=(0, 2, 3))

    def make(rng):
        return {"x": rng.normal(size=(2, 2, 6, 6)), "w": rng.normal(size=(3, 2, 3, 3)),
                "b": rng.normal(size=3)}

    return _fam("conv2d_im2col", "conv2d stride 2 pad 1 via im2col/col2im: overlapping windows "
                "must accumulate; pad offset in the crop", fwd, grads, make,
                {"col2im_overwrite": lambda d, c: grads(d, c, overwrite=True),
                 "crop_ignores_pad": lambda d, c: grads(d, c, crop0=True),
                 "dw_flipped": lambda d, c: grads(d, c, flip=True)})


def conv_transpose1d() -> Family:
    S, P = 2, 1

    def fwd(x, w):
        N, C, L = x.shape
        K = w.shape[2]
        full = np.zeros((N, w.shape[1], (L - 1) * S + K), dtype=np.result_type(x, w))
        for k in range(K):
            full[:, :, k:k + S * (L - 1) + 1:S] += np.einsum("ncl,co->nol", x, w[:, :, k])
        Lo = (L - 1) * S - 2 * P + K
        return full[:, :, P:P + Lo], (x, w, full.shape)

    def grads(dout, c, off=P, flipk=False):
        x, w, fs = c
        L, K = x.shape[2], w.shape[2]
        dfull = np.zeros(fs, dtype=dout.dtype)
        dfull[:, :, off:off + dout.shape[2]] = dout
        dx = np.zeros_like(x, dtype=dout.dtype)
        dw = np.zeros_like(w, dtype=dout.dtype)
        for k in range(K):
            seg = dfull[:, :, k:k + S * (L - 1) + 1:S]
            kk = K - 1 - k if flipk else k
            dx += np.einsum("nol,co->ncl", seg, w[:, :, kk])
            dw[:, :, k] = np.einsum("ncl,nol->co", x, seg)
        return dx, dw

    def make(rng):
        return {"x": rng.normal(size=(2, 3, 5)), "w": rng.normal(size=(3, 2, 4))}

    return _fam("conv_transpose1d", "transposed conv1d stride 2 padding 1 (scatter-add forward): "
                "padding crops both ends; a kernel flip or a crop offset keeps every shape",
                fwd, grads, make,
                {"crop_offset_zero": lambda d, c: grads(d, c, off=0),
                 "dx_kernel_flipped": lambda d, c: grads(d, c, flipk=True)})


def depthwise_dilated() -> Family:
    D, K = 2, 3
    P = D * (K - 1) // 2

    def fwd(x, w):
        N, C, H, W = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
        out = np.zeros((N, C, H, W), dtype=np.result_type(x, w))
        for k in range(K):
            for l in range(K):
                out += w[None, :, 0, k, l, None, None] * xp[:, :, k * D:k * D + H, l * D:l * D + W]
        return out, (x, w, xp)

    def grads(dout, c, shared=False, flip=False, nodil=False):
        x, w, xp = c
        N, C, H, W = x.shape
        dxp = np.zeros(xp.shape, dtype=dout.dtype)
        dw = np.zeros_like(w, dtype=dout.dtype)
        for k in range(K):
            for l in range(K):
                dd = 1 if nodil else D
                ks, ls = (K - 1 - k, K - 1 - l) if flip else (k, l)
                dxp[:, :, k * dd:k * dd + H, l * dd:l * dd + W] += (
                    w[None, :, 0, ks, ls, None, None] * dout)
                dw[:, 0, k, l] = np.sum(dout * xp[:, :, k * D:k * D + H, l * D:l * D + W],
                                        axis=(0, 2, 3))
        if shared:
            dw = np.broadcast_to(dw.sum(0, keepdims=True), dw.shape).copy()
        return dxp[:, :, P:P + H, P:P + W], dw

    def make(rng):
        return {"x": rng.normal(size=(2, 3, 5, 5)), "w": rng.normal(size=(3, 1, 3, 3))}

    return _fam("depthwise_dilated", "depthwise conv2d, dilation 2, 'same' padding: per-channel "
                "kernels, dilation and kernel flip mistakes keep shapes", fwd, grads, make,
                {"dw_summed_over_channels": lambda d, c: grads(d, c, shared=True),
                 "dx_kernel_flipped": lambda d, c: grads(d, c, flip=True),
                 "dx_dilation_forgotten": lambda d, c: grads(d, c, nodil=True)})


# ----------------------------------------------------------------------------------------------
# 2. normalisation layers


def _groupnorm_family(name, dtype, tol):
    G, EPS = 3, 1e-5

    def fwd(x, gamma, beta):
        N, C, L = x.shape
        xg = x.reshape(N, G, -1)
        mu = xg.mean(-1, keepdims=True)
        xc = xg - mu
        var = (xc * xc).mean(-1, keepdims=True)
        inv = 1.0 / np.sqrt(var + x.real.dtype.type(EPS))
        xh = (xc * inv).reshape(N, C, L)
        return xh * gamma[None, :, None] + beta[None, :, None], (xh, inv, gamma, x.shape)

    def grads(dout, c, ddof=0, no_mean_term=False, no_eps=False, xc_var=None):
        xh, inv, gamma, shp = c
        N, C, L = shp
        dgamma = (dout * xh).sum((0, 2))
        dbeta = dout.sum((0, 2))
        dxh = (dout * gamma[None, :, None]).reshape(N, G, -1)
        xhg = xh.reshape(N, G, -1)
        M = xhg.shape[-1]
        if no_eps:
            var = (xhg / inv) ** 2
            inv = 1.0 / np.sqrt(var.mean(-1, keepdims=True))
        m1 = dxh.mean(-1, keepdims=True)
        m2 = (dxh * xhg).sum(-1, keepdims=True) / (M - ddof)
        dx = inv * (dxh - (0 if no_mean_term else m1) - xhg * m2)
        return dx.reshape(shp).astype(dtype), dgamma.astype(dtype), dbeta.astype(dtype)

    def make(rng):
        x = rng.normal(size=(3, 6, 2))
        x[0, 0:2] = 0.3 + 1e-3 * rng.normal(size=(2, 2))   # a group with var ~ eps/10
        x[1, 2:4] = -1.0 + 3e-3 * rng.normal(size=(2, 2))
        return {"x": x.astype(dtype), "gamma": rng.normal(size=6).astype(dtype),
                "beta": rng.normal(size=6).astype(dtype)}

    return _fam(name, f"GroupNorm G=3 on (3,6,2) ({np.dtype(dtype).name}): 4 elements per group, "
                "groups with variance below eps (eps dominates the gradient)", fwd, grads, make,
                {"unbiased_in_backward": lambda d, c: grads(d, c, ddof=1),
                 "mean_term_dropped": lambda d, c: grads(d, c, no_mean_term=True),
                 "eps_dropped_in_backward": lambda d, c: grads(d, c, no_eps=True)},
                truth_tol=tol)


def groupnorm_tiny_var() -> Family:
    return _groupnorm_family("groupnorm_tiny_var", np.float64, 1e-12)


def groupnorm_tiny_var_f32() -> Family:
    return _groupnorm_family("groupnorm_tiny_var_f32", np.float32, 2e-5)


def layernorm_eps_outside() -> Family:
    EPS = 1e-3

    def fwd(x, g, b):
        mu = x.mean(1, keepdims=True)
        xc = x - mu
        s = np.sqrt((xc * xc).mean(1, keepdims=True))
        d = s + EPS
        return xc / d * g + b, (xc, s, d, g)

    def bwd(dout, c):
        xc, s, d, g = c
        M = xc.shape[1]
        gd = dout * g
        dd = -(gd * xc).sum(1, keepdims=True) / d ** 2
        dx = (gd - gd.mean(1, keepdims=True)) / d + dd * xc / (M * s)
        return dx, (dout * xc / d).sum(0), dout.sum(0)

    def eps_inside_backward(dout, c):
        xc, s, d, g = c
        inv = 1.0 / np.sqrt(s ** 2 + EPS)
        xh = xc * inv
        gd = dout * g
        dx = inv * (gd - gd.mean(1, keepdims=True) - xh * (gd * xh).mean(1, keepdims=True))
        return dx, (dout * xc / d).sum(0), dout.sum(0)

    def std_constant(dout, c):
        xc, s, d, g = c
        gd = dout * g
        return (gd - gd.mean(1, keepdims=True)) / d, (dout * xc / d).sum(0), dout.sum(0)

    def eps_ignored_in_chain(dout, c):
        xc, s, d, g = c
        M = xc.shape[1]
        gd = dout * g
        dd = -(gd * xc).sum(1, keepdims=True) / s ** 2
        dx = (gd - gd.mean(1, keepdims=True)) / d + dd * xc / (M * s)
        return dx, (dout * xc / d).sum(0), dout.sum(0)

    def make(rng):
        x = rng.normal(size=(5, 6))
        x[1] = 2.0 + 1e-3 * rng.normal(size=6)
        x[3] = -0.5 + 1e-2 * rng.normal(size=6)
        return {"x": x, "g": rng.normal(size=6), "b": rng.normal(size=6)}

    return _fam("layernorm_eps_outside", "LayerNorm (x-mu)/(std+eps), eps=1e-3 outside the sqrt, "
                "rows with std ~ eps: the copy-pasted eps-inside backward is close but wrong",
                fwd, bwd, make,
                {"eps_inside_backward": eps_inside_backward, "std_constant": std_constant,
                 "d_denominator_as_std": eps_ignored_in_chain})


def batch_renorm() -> Family:
    EPS, RMAX, DMAX = 1e-5, 1.5, 0.5
    MU_R = np.array([0.0, 1.5, -0.2, 0.1])
    SIG_R = np.array([1.0, 1.0, 0.4, 3.0])

    def fwd(x, gamma, beta):
        mu = x.mean(0)
        xc = x - mu
        sigma = np.sqrt((xc * xc).mean(0) + EPS)
        rr = sigma / SIG_R
        r = np.clip(rr, 1 / RMAX, RMAX)
        dd = (mu - MU_R) / SIG_R
        d = np.clip(dd, -DMAX, DMAX)
        xh = xc / sigma * r + d
        rcl = (rr.real < 1 / RMAX) | (rr.real > RMAX)
        dcl = np.abs(dd.real) > DMAX
        return gamma * xh + beta, (xc, sigma, r, rcl, dcl, xh, gamma)

    def bwd(dout, c):
        xc, sigma, r, rcl, dcl, xh, gamma = c
        N = xc.shape[0]
        dxh = dout * gamma
        s = np.where(rcl, r / sigma, 1.0 / SIG_R)
        ds_dsig = np.where(rcl, -r / sigma ** 2, 0.0)
        dd_dmu = np.where(dcl, 0.0, 1.0 / SIG_R)
        dmu = -dxh.sum(0) * s + dxh.sum(0) * dd_dmu
        dsig = (dxh * xc).sum(0) * ds_dsig
        dx = dxh * s + dmu / N + dsig * xc / (N * sigma)
        return dx, (dout * xh).sum(0), dout.sum(0)

    def paper_stopgrad(dout, c):
        xc, sigma, r, rcl, dcl, xh, gamma = c
        x0 = xc / sigma
        dxh = dout * gamma
        dx = r / sigma * (dxh - dxh.mean(0) - x0 * (dxh * x0).mean(0))
        return dx, (dout * xh).sum(0), dout.sum(0)

    def clip_ignored(dout, c):
        xc, sigma, r, rcl, dcl, xh, gamma = c
        N = xc.shape[0]
        return (dout * gamma / SIG_R, (dout * xh).sum(0), dout.sum(0))

    def make(rng):
        x = rng.normal(size=(8, 4)) * np.array([1.0, 0.3, 1.0, 1.0]) + np.array([0.0, 1.4, 0.5, 0.0])
        return {"x": x, "gamma": rng.normal(size=4), "beta": rng.normal(size=4)}

    return _fam("batch_renorm", "Batch Renormalization with r, d clipped: the true derivative of "
                "the forward (r, d depend on the batch) vs the paper's stop-gradient backward",
                fwd, bwd, make, {"paper_stopgrad": paper_stopgrad, "clip_ignored": clip_ignored})


def weight_norm() -> Family:
    def fwd(x, v, g):
        nv = np.sqrt((v * v).sum(1, keepdims=True))
        w = g[:, None] * v / nv
        return x @ w.T, (x, v, g, nv, w)

    def grads(dout, c, noproj=False, axis0=False, dg_v=False):
        x, v, g, nv, w = c
        dw = dout.T @ x
        if axis0:
            nv = np.sqrt((v * v).sum(0, keepdims=True))
        vh = v / nv
        dg = (dw * (v if dg_v else vh)).sum(1)
        proj = 0 if noproj else vh * (dw * vh).sum(1, keepdims=True)
        dv = g[:, None] / nv * (dw - proj)
        return dout @ w, dv, dg

    def make(rng):
        return {"x": rng.normal(size=(4, 3)), "v": rng.normal(size=(5, 3)) * 3,
                "g": rng.normal(size=5)}

    return _fam("weight_norm", "weight normalisation w = g v/||v|| (rows): the projection term, "
                "the norm's axis (broadcasts to the same shape)", fwd, grads, make,
                {"projection_dropped": lambda d, c: grads(d, c, noproj=True),
                 "norm_axis0_backward": lambda d, c: grads(d, c, axis0=True),
                 "dg_uses_v": lambda d, c: grads(d, c, dg_v=True)})


def spectral_norm_power() -> Family:
    ITERS = 2
    U0 = np.array([0.6, -0.3, 0.5, 0.55])

    def fwd(x, W):
        u = U0.astype(W.dtype)
        hist = []
        for _ in range(ITERS):
            av = W.T @ u
            v = av / np.sqrt(np.sum(av * av))
            au = W @ v
            un = au / np.sqrt(np.sum(au * au))
            hist.append((u, av, v, au, un))
            u = un
        sigma = u @ W @ v
        Wn = W / sigma
        return x @ Wn.T, (x, W, Wn, sigma, hist, u, v)

    def grads(dout, c, stop=False, sigma_const=False):
        x, W, Wn, sigma, hist, u, v = c
        dWn = dout.T @ x
        dx = dout @ Wn
        dW = dWn / sigma
        if sigma_const:
            return dx, dW
        dsig = -np.sum(dWn * W) / sigma ** 2
        dW = dW + dsig * np.outer(u, v)
        if stop:
            return dx, dW
        du = dsig * (W @ v)
        dv = dsig * (W.T @ u)
        for it in reversed(range(ITERS)):
            up, av, vv, au, un = hist[it]
            nau = np.sqrt(np.sum(au * au))
            dau = (du - un * np.dot(un, du)) / nau
            dW = dW + np.outer(dau, vv)
            dv = dv + W.T @ dau
            nav = np.sqrt(np.sum(av * av))
            dav = (dv - vv * np.dot(vv, dv)) / nav
            dW = dW + np.outer(up, dav)
            du = W @ dav
            dv = np.zeros_like(dv)
        return dx, dW

    def make(rng):
        return {"x": rng.normal(size=(5, 3)), "W": rng.normal(size=(4, 3))}

    return _fam("spectral_norm_power", "spectral norm W/sigma with sigma from 2 fixed power "
                "iterations, differentiated through the iterations; torch-style stop-gradient "
                "on u, v is a bug here", fwd, grads, make,
                {"stopgrad_uv": lambda d, c: grads(d, c, stop=True),
                 "sigma_constant": lambda d, c: grads(d, c, sigma_const=True)})


# ----------------------------------------------------------------------------------------------
# 3. softmax-like maps, attention, sequence models


def sparsemax() -> Family:
    def fwd(z):
        zs = -np.sort(-z.real, axis=1)
        cs = np.cumsum(zs, axis=1)
        k = np.arange(1, z.shape[1] + 1)
        supp = 1 + k * zs > cs
        kz = supp.sum(1)
        idx = kz - 1
        # tau from the support, recomputed on z itself so a complex step carries through
        order = np.argsort(-z.real, axis=1)
        zsorted = np.take_along_axis(z, order, axis=1)
        csz = np.cumsum(zsorted, axis=1)
        tau = (np.take_along_axis(csz, idx[:, None], axis=1) - 1) / kz[:, None]
        p = np.where(z.real > tau.real, z - tau, 0)
        return p, (p.real > 0,)

    def bwd(dout, c):
        (S,) = c
        n = S.sum(1, keepdims=True)
        return (S * (dout - (dout * S).sum(1, keepdims=True) / n),)

    def no_centering(dout, c):
        (S,) = c
        return (S * dout,)

    def softmax_jacobian(dout, c):
        (S,) = c
        n = S.sum(1, keepdims=True)
        p = S / n
        return (p * (dout - (p * dout).sum(1, keepdims=True)),)

    def divide_by_width(dout, c):
        (S,) = c
        return (S * (dout - (dout * S).sum(1, keepdims=True) / S.shape[1]),)

    def make(rng):
        return {"z": rng.normal(size=(4, 6)) * np.array([[0.3], [1.0], [2.0], [0.05]])}

    return _fam("sparsemax", "sparsemax (Euclidean projection on the simplex): piecewise linear, "
                "support sizes 1..6, the Jacobian centres dout over the support only",
                fwd, bwd, make,
                {"no_centering": no_centering, "softmax_jacobian": softmax_jacobian,
                 "divide_by_width": divide_by_width})


def _smax(s):
    s = s - s.real.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_temperature() -> Family:
    def fwd(x, T):
        p = _smax(x / T)
        return p, (x, T, p)

    def grads(dout, c, sign=1.0, dx_noT=False, dT_pow=2):
        x, T, p = c
        g = p * (dout - (p * dout).sum(1, keepdims=True))
        dx = g if dx_noT else g / T
        dT = -sign * (g * x).sum(1, keepdims=True) / T ** dT_pow
        return dx, dT

    def make(rng):
        T = np.array([[0.05], [1.0], [3e3], [0.2]])
        return {"x": rng.normal(size=(4, 5)) * np.array([[1.0], [1.0], [1.0], [30.0]]), "T": T}

    return _fam("softmax_temperature", "softmax(x/T) with a learnable per-row T in {0.05, 1, 3e3, "
                "0.2}: saturated rows (gradients ~e^-40) next to near-uniform ones (dT ~1e-8)",
                fwd, grads, make,
                {"dT_sign": lambda d, c: grads(d, c, sign=-1.0),
                 "dx_missing_1_over_T": lambda d, c: grads(d, c, dx_noT=True),
                 "dT_missing_one_T": lambda d, c: grads(d, c, dT_pow=1)})


def gumbel_softmax_fixed() -> Family:
    TAU = 0.3
    NOISE = -np.log(-np.log(np.random.default_rng(7).uniform(1e-9, 1.0, size=(4, 5))))

    def fwd(logits):
        p = _smax((logits + NOISE) / TAU)
        return p, (logits, p)

    def grads(dout, c, nonoise=False, notau=False):
        logits, p = c
        if nonoise:
            p = _smax(logits / TAU)
        g = p * (dout - (p * dout).sum(1, keepdims=True))
        return (g if notau else g / TAU,)

    def make(rng):
        return {"logits": rng.normal(size=(4, 5))}

    return _fam("gumbel_softmax_fixed", "Gumbel-softmax, tau=0.3, with fixed noise: a backward "
                "that recomputes the softmax without the noise", fwd, grads, make,
                {"recompute_without_noise": lambda d, c: grads(d, c, nonoise=True),
                 "tau_forgotten": lambda d, c: grads(d, c, notau=True)},
                consts={"noise": NOISE, "tau": TAU})


def _lse(a, axis):
    m = a.real.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(a - m).sum(axis))


def hmm_forward_log() -> Family:
    def fwd(E, A, pi):
        B, T, S = E.shape
        alphas = [pi[None, :] + E[:, 0]]
        for t in range(1, T):
            alphas.append(_lse(alphas[-1][:, :, None] + A[None], 1) + E[:, t])
        out = _lse(alphas[-1], 1)
        return out, (alphas, A, E.shape)

    def grads(dout, c, wrong_axis=False, post=False):
        alphas, A, (B, T, S) = c
        dE = np.zeros((B, T, S))
        dA = np.zeros_like(A)
        da = dout[:, None] * np.exp(alphas[-1] - _lse(alphas[-1], 1)[:, None])
        for t in range(T - 1, 0, -1):
            dE[:, t] = da
            M = alphas[t - 1][:, :, None] + A[None]
            if wrong_axis:
                W = np.exp(M - _lse(M, 2)[:, :, None])
            elif post:
                W = np.exp(M - alphas[t][:, None, :])
            else:
                W = np.exp(M - _lse(M, 1)[:, None, :])
            dM = da[:, None, :] * W
            dA += dM.sum(0)
            da = dM.sum(2)
        dE[:, 0] = da
        return dE, dA, da.sum(0)

    def make(rng):
        A = rng.normal(size=(4, 4))
        A[0, 3] = A[3, 0] = -1e4   # forbidden transitions, CTC style
        return {"E": rng.normal(size=(2, 6, 4)) * 3 - 2, "A": A, "pi": rng.normal(size=4)}

    return _fam("hmm_forward_log", "HMM/CTC-style forward algorithm in log space (logsumexp "
                "recursions over 6 steps, -1e4 forbidden transitions): backward is the "
                "forward-backward posterior", fwd, grads, make,
                {"softmax_wrong_axis": lambda d, c: grads(d, c, wrong_axis=True),
                 "normalise_by_post_emission_alpha": lambda d, c: grads(d, c, post=True)})


def lstm_peephole() -> Family:
    H = 5

    def fwd(x, h, c, Wx, Wh, b, P):
        a = x @ Wx + h @ Wh + b
        ai, af, ag, ao = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        i = sig(ai + P[0] * c)
        f = sig(af + P[1] * c)
        g = np.tanh(ag)
        cn = f * c + i * g
        o = sig(ao + P[2] * cn)
        tc = np.tanh(cn)
        hn = o * tc
        return np.concatenate([hn, cn], axis=1), (x, h, c, Wx, Wh, P, i, f, g, o, cn, tc)

    def grads(dout, cc, po_uses_c=False, no_o_peep=False, no_c_peeps=False):
        x, h, c, Wx, Wh, P, i, f, g, o, cn, tc = cc
        dh, dce = dout[:, :H], dout[:, H:]
        do = dh * tc
        dao = do * o * (1 - o)
        dcn = dce + dh * o * (1 - tc ** 2) + (0 if no_o_peep else dao * P[2])
        dai = dcn * g * i * (1 - i)
        daf = dcn * c * f * (1 - f)
        dag = dcn * i * (1 - g ** 2)
        dc = dcn * f + (0 if no_c_peeps else dai * P[0] + daf * P[1])
        dP = np.stack([(dai * c).sum(0), (daf * c).sum(0), (dao * (c if po_uses_c else cn)).sum(0)])
        da = np.concatenate([dai, daf, dag, dao], axis=1)
        return da @ Wx.T, da @ Wh.T, dc, x.T @ da, h.T @ da, da.sum(0), dP

    def make(rng):
        return {"x": rng.normal(size=(3, 4)), "h": rng.normal(size=(3, H)),
                "c": rng.normal(size=(3, H)) * 2, "Wx": rng.normal(size=(4, 4 * H)) * 0.5,
                "Wh": rng.normal(size=(H, 4 * H)) * 0.5, "b": rng.normal(size=4 * H),
                "P": rng.normal(size=(3, H))}

    return _fam("lstm_peephole", "LSTM cell with peepholes (the output gate peeks at the new "
                "cell state): 7 gradients, paths through c and c'", fwd, grads, make,
                {"output_peephole_uses_old_c": lambda d, c: grads(d, c, po_uses_c=True),
                 "output_peephole_path_dropped": lambda d, c: grads(d, c, no_o_peep=True),
                 "dc_misses_peepholes": lambda d, c: grads(d, c, no_c_peeps=True)})


def _attn_core_bwd(dout, p, qq, kk, v, scale):
    dv = p.swapaxes(-1, -2) @ dout
    dp = dout @ v.swapaxes(-1, -2)
    ds = p * (dp - (p * dp).sum(-1, keepdims=True))
    return ds @ kk * scale, ds.swapaxes(-1, -2) @ qq * scale, dv, ds


def attn_rotary() -> Family:
    T, d, OFF = 5, 4, 1000
    theta = 10000.0 ** (-np.arange(0, d, 2) / d)
    ang = (OFF + np.arange(T))[:, None] * theta[None, :]
    COS, SIN = np.cos(ang), np.sin(ang)

    def rope(a, sgn=1.0, cos=COS, sin=SIN):
        a0, a1 = a[:, 0::2], a[:, 1::2]
        out = np.empty_like(a)
        out[:, 0::2] = a0 * cos - sgn * a1 * sin
        out[:, 1::2] = sgn * a0 * sin + a1 * cos
        return out

    def fwd(q, k, v):
        qr, kr = rope(q), rope(k)
        p = _smax(qr @ kr.T / math.sqrt(d))
        return p @ v, (qr, kr, v, p)

    def grads(dout, c, mode="inverse"):
        qr, kr, v, p = c
        dqr, dkr, dv, _ = _attn_core_bwd(dout, p, qr, kr, v, 1 / math.sqrt(d))
        if mode == "inverse":
            return rope(dqr, -1.0), rope(dkr, -1.0), dv
        if mode == "forward":
            return rope(dqr), rope(dkr), dv
        if mode == "none":
            return dqr, dkr, dv
        a2 = (OFF + 1 + np.arange(T))[:, None] * theta[None, :]
        return (rope(dqr, -1.0, np.cos(a2), np.sin(a2)), rope(dkr, -1.0, np.cos(a2), np.sin(a2)),
                dv)

    def make(rng):
        return {"q": rng.normal(size=(T, d)), "k": rng.normal(size=(T, d)),
                "v": rng.normal(size=(T, 3))}

    return _fam("attn_rotary", "attention with rotary embeddings at positions 1000..1004: the "
                "backward must rotate by -angle", fwd, grads, make,
                {"rotate_forward_again": lambda d_, c: grads(d_, c, "forward"),
                 "no_unrotate": lambda d_, c: grads(d_, c, "none"),
                 "position_off_by_one": lambda d_, c: grads(d_, c, "shift")},
                consts={"cos": COS, "sin": SIN, "d": d})


def attn_alibi() -> Family:
    Hh, T, d = 2, 5, 4
    DIST = np.abs(np.arange(T)[:, None] - np.arange(T)[None, :]).astype(float)

    def fwd(q, k, v, m):
        sc = 1 / math.sqrt(d)
        s = q @ k.swapaxes(-1, -2) * sc - m[:, None, None] * DIST
        p = _smax(s)
        return p @ v, (q, k, v, p)

    def grads(dout, c, dm_sign=-1.0, dm_scaled=False, dq_noscale=False):
        q, k, v, p = c
        sc = 1 / math.sqrt(d)
        dq, dk, dv, ds = _attn_core_bwd(dout, p, q, k, v, sc)
        dm = dm_sign * (ds * DIST).sum((1, 2)) * (sc if dm_scaled else 1.0)
        if dq_noscale:
            dq = dq / sc
        return dq, dk, dv, dm

    def make(rng):
        return {"q": rng.normal(size=(Hh, T, d)), "k": rng.normal(size=(Hh, T, d)),
                "v": rng.normal(size=(Hh, T, 3)), "m": np.array([0.5, 0.0625])}

    return _fam("attn_alibi", "multi-head attention with ALiBi linear biases and learnable "
                "slopes m (gradient through the bias only)", fwd, grads, make,
                {"dm_sign": lambda d_, c: grads(d_, c, dm_sign=1.0),
                 "dm_scaled_by_1_over_sqrt_d": lambda d_, c: grads(d_, c, dm_scaled=True),
                 "dq_missing_scale": lambda d_, c: grads(d_, c, dq_noscale=True)})


# ----------------------------------------------------------------------------------------------
# 4. losses and geometry


def focal_loss() -> Family:
    GAMMA = 2.0
    TGT = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 0], dtype=float)

    def fwd(x):
        z = (2 * TGT - 1) * x
        logp = -np.logaddexp(0, -z) if not np.iscomplexobj(z) else -np.log1p(np.exp(-z))
        q = sig(-z) if not np.iscomplexobj(z) else 1 / (1 + np.exp(z))
        return -(q ** GAMMA) * logp, (z, q, logp)

    def grads(dout, c, frozen=False, nosign=False):
        z, q, logp = c
        p = 1 - q
        dz = -q ** (GAMMA + 1) if frozen else GAMMA * p * q ** GAMMA * logp - q ** (GAMMA + 1)
        return (dout * dz * (1.0 if nosign else (2 * TGT - 1)),)

    def make(rng):
        x = rng.normal(size=10) * 4
        x[0], x[5] = 40.0, -35.0   # confident and right, so the loss is ~e^-120
        x[2] = -25.0               # confident and wrong
        return {"x": x}

    return _fam("focal_loss", "binary focal loss (gamma=2) on logits up to |40|: the modulating "
                "factor's own derivative; gradients from 25 down to 1e-50",
                fwd, grads, make,
                {"modulating_factor_frozen": lambda d, c: grads(d, c, frozen=True),
                 "target_sign_forgotten": lambda d, c: grads(d, c, nosign=True)},
                consts={"tgt": TGT, "gamma": GAMMA})


def triplet_margin_zero() -> Family:
    M = 1.0

    def fwd(a, p, n):
        z = ((a - p) ** 2).sum(1) - ((a - n) ** 2).sum(1) + M
        return np.asarray(np.maximum(z, 0).mean() if not np.iscomplexobj(z)
                          else np.where(z.real > 0, z, 0).mean()), (a, p, n, z)

    def grads(dout, c, two=2.0, dn_sign=1.0, by_active=False):
        a, p, n, z = c
        act = (z > 0).astype(float)[:, None]
        den = max(act.sum(), 1.0) if by_active else len(z)
        s = dout * act / den
        return (s * two * (n - p), -s * two * (a - p), dn_sign * s * two * (a - n))

    def make(rng):
        a = rng.integers(-2, 3, size=(8, 3)).astype(float)
        p = a + rng.integers(-1, 2, size=(8, 3))
        n = a + rng.integers(-2, 3, size=(8, 3))
        a[0], p[0], n[0] = [0, 0, 0], [1, 0, 0], [1, 1, 0]   # exactly on the hinge: 1 - 2 + 1
        a[1], p[1], n[1] = [1, 1, 1], [1, 2, 1], [2, 2, 1]
        return {"a": a, "p": p, "n": n}

    return _fam("triplet_margin_zero", "triplet loss with squared distances on integer "
                "coordinates: several triplets sit exactly on the hinge (z == 0)",
                fwd, grads, make,
                {"factor_two_dropped": lambda d, c: grads(d, c, two=1.0),
                 "dn_sign": lambda d, c: grads(d, c, dn_sign=-1.0),
                 "mean_over_active": lambda d, c: grads(d, c, by_active=True)},
                consts={"margin": M})


def cosine_sim_eps() -> Family:
    EPS = 1e-8

    def fwd(x, y):
        nx = np.sqrt((x * x).sum(1))
        ny = np.sqrt((y * y).sum(1))
        den = np.where((nx * ny).real > EPS, nx * ny, EPS)
        num = (x * y).sum(1)
        return num / den, (x, y, nx, ny, den, num)

    def grads(dout, c, unclamped=False, eps_add=False):
        x, y, nx, ny, den, num = c
        cl = ((nx * ny) > EPS)
        if unclamped:
            cl = np.ones_like(cl)
        if eps_add:
            den = nx * ny + EPS
        g = (dout / den)[:, None]
        cs = (num / den)[:, None]
        dx = g * y - np.where(cl[:, None], g * cs * den[:, None] * x / np.maximum(nx, 1e-300)[:, None] ** 2 * 1.0, 0)
        dy = g * x - np.where(cl[:, None], g * cs * den[:, None] * y / np.maximum(ny, 1e-300)[:, None] ** 2, 0)
        return dx, dy

    def make(rng):
        x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
        x[1] *= 1e-9          # ||x|| ||y|| < eps: the clamp is active
        y[3] *= 3e-5
        x[3] *= 3e-5          # 1e-9 .. just under the clamp
        x[4] *= 1e-3          # active but near
        return {"x": x, "y": y}

    return _fam("cosine_sim_eps", "cosine similarity x.y/max(|x||y|, 1e-8) with rows under the "
                "clamp: there the gradient is y/eps, no norm terms", fwd, grads, make,
                {"unclamped_backward": lambda d, c: grads(d, c, unclamped=True),
                 "eps_added_in_backward": lambda d, c: grads(d, c, eps_add=True)},
                precision=("eps_added_in_backward",))


def chamfer_dups() -> Family:
    def fwd(P, Q):
        d = P[:, None, :] - Q[None, :, :]
        d2 = (d * d).sum(-1)
        i_pq = np.argmin(d2.real, axis=1)
        i_qp = np.argmin(d2.real, axis=0)
        a = d2[np.arange(len(P)), i_pq].mean()
        b = d2[i_qp, np.arange(len(Q))].mean()
        return np.asarray(a + b), (P, Q, i_pq, i_qp)

    def grads(dout, c, fancy=False, one_way=False, two=2.0):
        P, Q, i_pq, i_qp = c
        nP, nQ = len(P), len(Q)
        dP = np.zeros_like(P)
        dQ = np.zeros_like(Q)
        g1 = two * (P - Q[i_pq]) / nP * dout
        dP += g1
        if fancy:
            dQ[i_pq] -= g1
        else:
            np.add.at(dQ, i_pq, -g1)
        if not one_way:
            g2 = two * (Q - P[i_qp]) / nQ * dout
            dQ += g2
            if fancy:
                dP[i_qp] -= g2
            else:
                np.add.at(dP, i_qp, -g2)
        return dP, dQ

    def make(rng):
        P = rng.normal(size=(6, 2))
        Q = rng.normal(size=(7, 2))
        Q[4] = Q[1]                 # a duplicated target point: an argmin tie
        P[3] = P[0]                 # a duplicated source point
        P[5] = Q[2]                 # a point exactly on a target (distance 0)
        return {"P": P, "Q": Q}

    return _fam("chamfer_dups", "Chamfer distance with duplicated points (argmin ties) and a "
                "zero distance: scatter with fancy-index -= drops repeated indices",
                fwd, grads, make,
                {"fancy_index_scatter": lambda d, c: grads(d, c, fancy=True),
                 "one_direction_only": lambda d, c: grads(d, c, one_way=True),
                 "factor_two_dropped": lambda d, c: grads(d, c, two=1.0)})


def coulomb_softened() -> Family:
    S2 = 0.01

    def fwd(r, q):
        i, j = np.triu_indices(len(q), 1)
        d = r[i] - r[j]
        inv = 1 / np.sqrt((d * d).sum(1) + S2)
        return np.asarray((q[i] * q[j] * inv).sum()), (r, q, i, j, d, inv)

    def grads(dout, c, double=False, dq_half=False, sign=1.0):
        r, q, i, j, d, inv = c
        f = (dout * q[i] * q[j] * inv ** 3)[:, None] * d   # -dE/d(r_i)
        dr = np.zeros_like(r)
        np.add.at(dr, i, -sign * f)
        np.add.at(dr, j, sign * f)
        dq = np.zeros_like(q)
        np.add.at(dq, i, dout * q[j] * inv)
        if not dq_half:
            np.add.at(dq, j, dout * q[i] * inv)
        if double:
            dr = 2 * dr
        return dr, dq

    def make(rng):
        r = rng.normal(size=(6, 3))
        r[4] = r[1]                        # coincident particles: only the softening holds
        r[5] = r[0] + np.array([1e3, 0, 0])  # far away: its force is ~1e-6 of the rest
        return {"r": r, "q": rng.choice([-1.0, 1.0], size=6) * rng.uniform(0.5, 2, size=6)}

    return _fam("coulomb_softened", "softened Coulomb energy with coincident and far particles: "
                "pair bookkeeping (double counting, one-sided dq, force sign)", fwd, grads, make,
                {"forces_double_counted": lambda d, c: grads(d, c, double=True),
                 "dq_one_sided": lambda d, c: grads(d, c, dq_half=True),
                 "force_sign": lambda d, c: grads(d, c, sign=-1.0)})


def sinkhorn_fixed() -> Family:
    EPS, IT = 0.5, 5
    a = np.full(4, 1 / 4)
    b = np.full(5, 1 / 5)

    def fwd(C):
        K = np.exp(-C / EPS)
        v = np.ones(5, dtype=K.dtype)
        hist = []
        for _ in range(IT):
            u = a / (K @ v)
            vn = b / (K.T @ u)
            hist.append((v, u, vn))
            v = vn
        P = u[:, None] * K * v[None, :]
        return P, (K, hist, u, v)

    def grads(dout, c, envelope=False, dC_sign=-1.0):
        K, hist, u, v = c
        dK = dout * np.outer(u, v)
        if not envelope:
            du = (dout * K) @ v
            dv = (dout * K).T @ u
            for vp, uu, vn in reversed(hist):
                s = K.T @ uu
                ds = -dv * vn / s
                dK += np.outer(uu, ds)
                du = du + K @ ds
                rr = K @ vp
                dr = -du * uu / rr
                dK += np.outer(dr, vp)
                dv = K.T @ dr
                du = np.zeros_like(du)
        return (dK * K * dC_sign / EPS,)

    def make(rng):
        return {"C": rng.uniform(0, 2, size=(4, 5))}

    return _fam("sinkhorn_fixed", "entropic OT plan after 5 unrolled Sinkhorn iterations "
                "(P output): the implicit/envelope shortcut treats the scalings as constants",
                fwd, grads, make,
                {"envelope_scalings_constant": lambda d, c: grads(d, c, envelope=True),
                 "dC_sign": lambda d, c: grads(d, c, dC_sign=1.0)})


def bilinear_sample_int() -> Family:
    Hh, Ww = 5, 6

    def idx(coords):
        cx, cy = coords[:, 0].real, coords[:, 1].real
        x0 = np.clip(np.floor(cx), 0, Ww - 2).astype(int)
        y0 = np.clip(np.floor(cy), 0, Hh - 2).astype(int)
        return x0, y0

    def fwd(img, coords):
        x0, y0 = idx(coords)
        fx, fy = coords[:, 0] - x0, coords[:, 1] - y0
        v00, v01 = img[y0, x0], img[y0, x0 + 1]
        v10, v11 = img[y0 + 1, x0], img[y0 + 1, x0 + 1]
        out = (1 - fy) * ((1 - fx) * v00 + fx * v01) + fy * ((1 - fx) * v10 + fx * v11)
        return out, (img, coords, x0, y0, fx, fy)

    def grads(dout, c, fancy=False, swap=False, sign=1.0):
        img, coords, x0, y0, fx, fy = c
        dimg = np.zeros_like(img)
        parts = [((y0, x0), (1 - fy) * (1 - fx)), ((y0, x0 + 1), (1 - fy) * fx),
                 ((y0 + 1, x0), fy * (1 - fx)), ((y0 + 1, x0 + 1), fy * fx)]
        for (yy, xx), wgt in parts:
            if fancy:
                dimg[yy, xx] += dout * wgt
            else:
                np.add.at(dimg, (yy, xx), dout * wgt)
        v00, v01 = img[y0, x0], img[y0, x0 + 1]
        v10, v11 = img[y0 + 1, x0], img[y0 + 1, x0 + 1]
        gx = sign * ((1 - fy) * (v01 - v00) + fy * (v11 - v10))
        gy = sign * ((1 - fx) * (v10 - v00) + fx * (v11 - v01))
        if swap:
            gx = sign * ((1 - fx) * (v01 - v00) + fx * (v11 - v10))
        return dimg, np.stack([dout * gx, dout * gy], axis=1)

    def make(rng):
        coords = np.stack([rng.uniform(0, Ww - 1, 8), rng.uniform(0, Hh - 1, 8)], axis=1)
        coords[0] = [2.0, 3.0]          # exactly on a grid point
        coords[1] = [Ww - 1.0, 1.5]     # on the right border (clamped cell, fx = 1)
        coords[2] = [0.0, 0.0]
        coords[5] = [1.25, 2.5]
        coords[6] = [1.75, 2.25]        # the same cell as coords[5]
        return {"img": rng.normal(size=(Hh, Ww)), "coords": coords}

    return _fam("bilinear_sample_int", "bilinear sampling with coordinates on grid points and "
                "the border (kinks of floor), two samples in one cell", fwd, grads, make,
                {"fancy_index_scatter": lambda d, c: grads(d, c, fancy=True),
                 "dx_uses_fx_weights": lambda d, c: grads(d, c, swap=True),
                 "coord_grad_sign": lambda d, c: grads(d, c, sign=-1.0)})


def masked_mean_empty() -> Family:
    MASK = np.array([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1]],
                    dtype=bool)

    def fwd(x):
        cnt = np.maximum(MASK.sum(1), 1)
        return np.where(MASK, x, 0).sum(1) / cnt, (cnt,)

    def grads(dout, c, nomask=False, epsb=False, rawdiv=False):
        (cnt,) = c
        if rawdiv:
            cnt = MASK.sum(1)
        if epsb:
            cnt = MASK.sum(1) + 1e-9
        g = np.broadcast_to((dout / cnt)[:, None], MASK.shape)
        return (g.copy() if nomask else MASK * g,)

    def make(rng):
        return {"x": rng.normal(size=(5, 4))}

    return _fam("masked_mean_empty", "masked mean over rows with an all-masked row (count "
                "clamped to 1)", fwd, grads, make,
                {"mask_not_applied": lambda d, c: grads(d, c, nomask=True),
                 "count_plus_1e-9": lambda d, c: grads(d, c, epsb=True),
                 "unclamped_count_nan": lambda d, c: grads(d, c, rawdiv=True)},
                consts={"mask": MASK}, precision=("count_plus_1e-9",))


# ----------------------------------------------------------------------------------------------
# 5. linear algebra


def chol_logdet_nearsing() -> Family:
    DELTA = 1e-6

    def fwd(A):
        K = A @ A.T + DELTA * np.eye(A.shape[0])
        L = np.linalg.cholesky(K)
        return np.asarray(2 * np.log(np.diag(L)).sum()), (A, L)

    def grads(dout, c, two=2.0, pinv=False):
        A, L = c
        if pinv:
            return (dout * two * np.linalg.pinv(A @ A.T, rcond=1e-12) @ A,)
        return (dout * two * sla.cho_solve((L, True), A),)

    def make(rng):
        return {"A": rng.normal(size=(5, 3))}

    return _fam("chol_logdet_nearsing", "logdet(A A^T + 1e-6 I) through cholesky, A 5x3 (rank 3: "
                "K has condition ~1e7): pinv of A A^T ignores delta, a 1e-6-relative error",
                fwd, grads, make,
                {"factor_two_dropped": lambda d, c: grads(d, c, two=1.0),
                 "pinv_ignores_delta": lambda d, c: grads(d, c, pinv=True)},
                consts={"delta": DELTA}, precision=("pinv_ignores_delta",), truth_tol=1e-9)


def expm_layer() -> Family:
    def fwd(A):
        return sla.expm(A), (A,)

    def grads(dout, c, commute=False, noT=False):
        (A,) = c
        n = A.shape[0]
        if commute:
            return (dout @ sla.expm(A).T,)
        At = A if noT else A.T
        big = np.zeros((2 * n, 2 * n))
        big[:n, :n] = At
        big[n:, n:] = At
        big[:n, n:] = dout
        return (sla.expm(big)[:n, n:],)

    def make(rng):
        return {"A": rng.normal(size=(4, 4)) * 0.8}

    return _fam("expm_layer", "matrix exponential via scipy.linalg.expm; gradient by the "
                "block-triangular Frechet trick (expm of [[A^T, G], [0, A^T]])", fwd, grads, make,
                {"commuting_assumption": lambda d, c: grads(d, c, commute=True),
                 "block_without_transpose": lambda d, c: grads(d, c, noT=True)},
                truth_tol=1e-11)


def sqrtm_spd() -> Family:
    def fwd(B):
        S = B @ B.T + 0.5 * np.eye(B.shape[0])
        lam, Q = np.linalg.eigh(S)
        X = (Q * np.sqrt(lam)) @ Q.T
        return X, (B, X)

    def grads(dout, c, commute=False, nosym=False):
        B, X = c
        dS = 0.5 * np.linalg.solve(X, dout) if commute else sla.solve_sylvester(X, X, dout)
        return ((2 * dS if nosym else dS + dS.T) @ B,)

    def make(rng):
        return {"B": rng.normal(size=(4, 4))}

    return _fam("sqrtm_spd", "matrix square root of B B^T + 0.5 I via eigh; adjoint = Sylvester "
                "solve X Y + Y X = G", fwd, grads, make,
                {"commuting_assumption": lambda d, c: grads(d, c, commute=True),
                 "not_symmetrised": lambda d, c: grads(d, c, nosym=True)}, truth_tol=1e-10)


def eigh_top_projector() -> Family:
    def fwd(X):
        S = 0.5 * (X + X.T)
        lam, Q = np.linalg.eigh(S)
        v = Q[:, -1]
        return np.outer(v, v), (lam, Q)

    def grads(dout, c, flip=False, nosym=False):
        lam, Q = c
        v = Q[:, -1]
        dv = (dout + dout.T) @ v
        dS = np.zeros_like(Q)
        for j in range(len(lam) - 1):
            gap = (lam[j] - lam[-1]) if flip else (lam[-1] - lam[j])
            dS += (Q[:, j] @ dv) / gap * np.outer(Q[:, j], v)
        return (dS if nosym else 0.5 * (dS + dS.T),)

    def make(rng):
        Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
        S = (Q * np.array([-1.0, 0.5, 2.999, 3.0])) @ Q.T
        K = rng.normal(size=(4, 4))
        return {"X": S + 0.3 * (K - K.T)}

    return _fam("eigh_top_projector", "top-eigenvector projector v v^T of sym(X) with an "
                "eigen-gap of 1e-3 (gradients ~1e3): gap sign and symmetrisation", fwd, grads,
                make, {"gap_sign": lambda d, c: grads(d, c, flip=True),
                       "not_symmetrised": lambda d, c: grads(d, c, nosym=True)},
                truth_tol=1e-9)


def qr_layer() -> Family:
    def fwd(A):
        Q, R = np.linalg.qr(A)
        return np.concatenate([Q, R], axis=0), (A, Q, R)

    def grads(dout, c, triu=False, no_dR=False):
        A, Q, R = c
        m, n = A.shape
        dQ, dR = dout[:m], dout[m:]
        if no_dR:
            dR = np.zeros_like(dR)
        M = R @ dR.T - dQ.T @ Q
        if triu:
            cl = np.triu(M) + np.triu(M, 1).T
        else:
            cl = np.tril(M) + np.tril(M, -1).T
        return (sla.solve_triangular(R, (dQ + Q @ cl).T, lower=False).T,)

    def make(rng):
        return {"A": rng.normal(size=(5, 3))}

    return _fam("qr_layer", "reduced QR (output [Q; R]): copyltu of R dR^T - dQ^T Q, then a "
                "triangular solve", fwd, grads, make,
                {"copyltu_from_upper": lambda d, c: grads(d, c, triu=True),
                 "dR_dropped": lambda d, c: grads(d, c, no_dR=True)}, truth_tol=1e-11)


def pinv_lstsq() -> Family:
    def fwd(A, B):
        Ap = np.linalg.pinv(A)
        return Ap @ B, (A, B, Ap)

    def grads(dout, c, noproj=False):
        A, B, Ap = c
        Gp = dout @ B.T
        dA = -Ap.T @ Gp @ Ap.T
        if not noproj:
            dA = dA + (np.eye(A.shape[0]) - A @ Ap) @ Gp.T @ Ap @ Ap.T
        return dA, Ap.T @ dout

    def make(rng):
        A = rng.normal(size=(6, 3))
        A[:, 2] = A[:, 1] + 0.05 * rng.normal(size=6)   # ill-conditioned columns
        return {"A": A, "B": rng.normal(size=(6, 2))}

    return _fam("pinv_lstsq", "X = pinv(A) B with nearly collinear columns (cond ~100): the "
                "pinv derivative's projection term (I - A A^+) is what inverse-style code drops",
                fwd, grads, make, {"projection_term_dropped": lambda d, c: grads(d, c, noproj=True)},
                truth_tol=1e-9)


# ----------------------------------------------------------------------------------------------
# 6. special functions and polynomial bases


def chebyshev_ends() -> Family:
    NK = 7

    def Ts(x):
        T = [np.ones_like(x), x]
        for _ in range(2, NK):
            T.append(2 * x * T[-1] - T[-2])
        return T

    def Us(x):
        U = [np.ones_like(x), 2 * x]
        for _ in range(2, NK):
            U.append(2 * x * U[-1] - U[-2])
        return U

    def fwd(x, c):
        T = Ts(x)
        return sum(c[k] * T[k] for k in range(NK)), (x, c, T)

    def grads(dout, cc, trig=False, offby1=False):
        x, c, T = cc
        dc = np.array([np.sum(dout * T[k]) for k in range(NK)])
        if trig:
            th = np.arccos(np.clip(x, -1, 1))
            dT = [np.nan_to_num(k * np.sin(k * th) / np.sin(th)) for k in range(NK)]
        else:
            U = Us(x)
            dT = [np.zeros_like(x)] + [k * U[k if offby1 else k - 1] for k in range(1, NK)]
        return dout * sum(c[k] * dT[k] for k in range(NK)), dc

    def make(rng):
        x = np.array([-1.0, 1.0, 0.0, 1 - 1e-12, -1 + 1e-9, 0.3, -0.7, 0.999])
        return {"x": x, "c": rng.normal(size=NK)}

    return _fam("chebyshev_ends", "Chebyshev series sum c_k T_k(x) on [-1, 1] with x = +-1 "
                "exactly: the trig derivative k sin(k t)/sin t is 0/0 there (nan_to_num -> 0, "
                "true k^2) and cancels near the ends", fwd, grads, make,
                {"trig_derivative_nan_to_num": lambda d, c: grads(d, c, trig=True),
                 "U_index_off_by_one": lambda d, c: grads(d, c, offby1=True)})


def gammaln_digamma() -> Family:
    def fwd(x, w):
        return w * special.gammaln(x) + special.digamma(x), (x, w)

    def grads(dout, c, shift=False, stirling=False):
        x, w = c
        dg = special.digamma(x + 1 if shift else x)
        tri = 1 / x + 1 / (2 * x * x) if stirling else special.polygamma(1, x)
        return dout * (w * dg + tri), dout * special.gammaln(x)

    def make(rng):
        x = np.array([-2.5, -0.3, 1e-5, 0.5, 1.0, 2.0, 7.3, 1e5])
        return {"x": x, "w": rng.normal(size=8)}

    return _fam("gammaln_digamma", "w*gammaln(x) + digamma(x) for x in {-2.5, -0.3, 1e-5, .., "
                "1e5}: log|Gamma| on the negative axis, trigamma 1e10 at 1e-5", fwd, grads, make,
                {"digamma_shifted": lambda d, c: grads(d, c, shift=True),
                 "trigamma_asymptotic": lambda d, c: grads(d, c, stirling=True)})


def i0e_kink() -> Family:
    def fwd(x):
        return special.i0e(x), (x,)

    def grads(dout, c, nosign=False, unscaled=False):
        (x,) = c
        if unscaled:
            return (dout * (special.i1(x) - np.sign(x) * special.i0(x)) * np.exp(-np.abs(x)),)
        s = 1.0 if nosign else np.sign(x)
        return (dout * (special.i1e(x) - s * special.i0e(x)),)

    def make(rng):
        x = np.array([0.0, -1e-8, 1e-8, 0.7, -3.0, 50.0, -700.0, 800.0])
        return {"x": x}

    return _fam("i0e_kink", "exponentially scaled Bessel i0e: a kink at 0 (slopes -1/+1), "
                "arguments up to 800 where the unscaled formula overflows", fwd, grads, make,
                {"sign_forgotten": lambda d, c: grads(d, c, nosign=True),
                 "unscaled_formula": lambda d, c: grads(d, c, unscaled=True)})


def ndtri_tail() -> Family:
    def fwd(p):
        y = special.ndtri(p)
        return y, (p, y)

    def grads(dout, c, mirror=False, pdf_of_p=False):
        p, y = c
        if mirror:
            y = -special.ndtri(1 - p)
        if pdf_of_p:
            return (dout * math.sqrt(2 * math.pi) * np.exp(p * p / 2),)
        return (dout * math.sqrt(2 * math.pi) * np.exp(y * y / 2),)

    def make(rng):
        return {"p": np.array([1e-30, 1e-10, 0.01, 0.3, 0.5, 0.77, 1 - 1e-6, 1 - 1e-12])}

    return _fam("ndtri_tail", "inverse normal CDF for p in [1e-30, 1-1e-12]: gradient "
                "sqrt(2 pi) exp(y^2/2) from 2.5 to 1e31; the mirrored -ndtri(1-p) hits ndtri(1)",
                fwd, grads, make,
                {"mirrored_tail": lambda d, c: grads(d, c, mirror=True),
                 "pdf_of_p": lambda d, c: grads(d, c, pdf_of_p=True)})


def sinc_zero() -> Family:
    def fwd(x):
        return np.sinc(x), (x,)

    def grads(dout, c, naive=False, nopi=False):
        (x,) = c
        with np.errstate(all="ignore"):
            if nopi:
                g = np.where(x == 0, 0.0, (np.cos(x) - np.sinc(x)) / x)
            elif naive:
                g = np.nan_to_num((np.cos(np.pi * x) - np.sinc(x)) / x)
            else:
                big = np.abs(x) > 1e-3
                xs = np.where(big, x, 1.0)
                p2 = np.pi ** 2
                g = np.where(big, (np.cos(np.pi * xs) - np.sinc(xs)) / xs,
                             -p2 * x / 3 + p2 * p2 * x ** 3 / 30 - p2 ** 3 * x ** 5 / 840)
        return (dout * g,)

    def make(rng):
        return {"x": np.array([0.0, 1e-9, -3e-7, 1e-3, 0.5, 1.0, -2.0, 3.7])}

    return _fam("sinc_zero", "normalised sinc at 0, 1e-9 and the integer zeros: the closed-form "
                "derivative is 0/0 at 0 and cancels near it (needs a series)", fwd, grads, make,
                {"naive_cancellation": lambda d, c: grads(d, c, naive=True),
                 "pi_dropped_in_cos": lambda d, c: grads(d, c, nopi=True)},
                precision=("naive_cancellation",))


def rational_pau() -> Family:
    def fwd(x, a, b):
        P = a[0] + a[1] * x + a[2] * x ** 2 + a[3] * x ** 3
        s = b[0] * x + b[1] * x ** 2
        Q = 1 + np.abs(s) if not np.iscomplexobj(s) else 1 + np.where(s.real >= 0, s, -s)
        return P / Q, (x, a, b, P, s, Q)

    def grads(dout, c, nosign=False, db_shift=False):
        x, a, b, P, s, Q = c
        sg = np.ones_like(s) if nosign else np.sign(s)
        dP = a[1] + 2 * a[2] * x + 3 * a[3] * x ** 2
        ds = b[0] + 2 * b[1] * x
        dx = dout * (dP / Q - P * sg * ds / Q ** 2)
        da = np.array([np.sum(dout * x ** k / Q) for k in range(4)])
        pw = (2, 3) if db_shift else (1, 2)
        db = np.array([np.sum(-dout * P * sg * x ** k / Q ** 2) for k in pw])
        return dx, da, db

    def make(rng):
        x = np.concatenate([[0.0, -2.0, 2.5], rng.normal(size=7) * 2])
        return {"x": x, "a": rng.normal(size=4), "b": rng.normal(size=2)}

    return _fam("rational_pau", "safe Pade activation P(x)/(1+|b1 x + b2 x^2|) with x = 0 exactly "
                "(a kink of |.| unless a0 = 0)", fwd, grads, make,
                {"abs_derivative_as_identity": lambda d, c: grads(d, c, nosign=True),
                 "db_power_shifted": lambda d, c: grads(d, c, db_shift=True)})


def logsigmoid_three_ways() -> Family:
    def fwd(x):
        return -np.logaddexp(0, -x), (x,)

    def one_minus(dout, c):
        (x,) = c
        return (dout * (1 - sig(x)),)

    def overflow(dout, c):
        (x,) = c
        e = np.exp(-x)
        return (dout * e / (1 + e),)

    def wrong_sign(dout, c):
        (x,) = c
        return (dout * sig(x),)

    def bwd(dout, c):
        (x,) = c
        return (dout * sig(-x),)

    def make(rng):
        x = np.array([-800.0, -40.0, -1.0, 0.0, 0.5, 20.0, 40.0, 700.0]) + rng.normal(size=8) * 0.1
        return {"x": x}

    return _fam("logsigmoid_three_ways", "log-sigmoid on [-800, 700]: 1 - sigmoid(x) rounds the "
                "tail to 0, exp(-x)/(1+exp(-x)) is inf/inf = nan at -800", fwd, bwd, make,
                {"one_minus_sigmoid": one_minus, "overflowing_ratio": overflow,
                 "sigmoid_sign": wrong_sign}, precision=("one_minus_sigmoid",))


def fake_quant_lsq() -> Family:
    QN, QP = -8, 7

    def fwd(x, s):
        q = np.clip(np.round(x.real / s.real), QN, QP)
        return s * q, (x, s, q)

    def ste(dout, c):
        x, s, q = c
        inr = (x / s >= QN) & (x / s <= QP)
        return dout * inr, np.array([np.sum(dout * q)])

    def lsq(dout, c):
        x, s, q = c
        inr = (x / s >= QN) & (x / s <= QP)
        return dout * 0.0, np.array([np.sum(dout * np.where(inr, q - x / s, q))])

    def bwd(dout, c):
        x, s, q = c
        return np.zeros_like(x), np.array([np.sum(dout * q)])

    def make(rng):
        s = 0.25
        x = rng.normal(size=12) * 1.2
        x[0], x[1] = 3.0, -2.6            # clipped
        u = x / s
        fr = u - np.floor(u)
        x = np.where(np.abs(fr - 0.5) < 0.1, (np.floor(u) + 0.2) * s, x)  # away from .5 jumps
        return {"x": x, "s": np.array([s])}

    return _fam("fake_quant_lsq", "fake quantisation s*clip(round(x/s)): dx is zero almost "
                "everywhere, ds = q; straight-through (STE) and LSQ gradients are not the "
                "derivative and count as bugs here", fwd, bwd, make,
                {"straight_through_dx": ste, "lsq_ds": lsq})


# ----------------------------------------------------------------------------------------------
# 7. dtypes, layouts, broadcasting, caches


def f16_swish() -> Family:
    def fwd(x):
        xf = x.astype(np.float32) if not np.iscomplexobj(x) else x
        y = xf * sig(xf) if not np.iscomplexobj(xf) else xf / (1 + np.exp(-xf))
        return (y.astype(np.float16) if not np.iscomplexobj(y) else y), (x,)

    def grads(dout, c, noprod=False, half=False):
        (x,) = c
        xf = x.astype(np.float16 if half else np.float32)
        s = sig(xf)
        g = s if noprod else s + xf * s * (1 - s)
        return ((dout.astype(g.dtype) * g).astype(np.float16),)

    def make(rng):
        return {"x": (rng.normal(size=(4, 5)) * 3).astype(np.float16)}

    return _fam("f16_swish", "swish on float16 inputs, computed in float32 and returned as "
                "float16 (outputs carry 5e-4 relative rounding)", fwd, grads, make,
                {"missing_product_rule": lambda d, c: grads(d, c, noprod=True)},
                truth_tol=1.5e-3)


def longdouble_const() -> Family:
    C = np.longdouble(1) / np.longdouble(3)

    def fwd(x, w):
        y = np.sin(x * w) * C            # a long double constant promotes the output
        return y, (x, w)

    def grads(dout, c, noinner=False, ld=False):
        x, w = c
        k = C if ld else 1.0 / 3.0
        g = np.cos(x * w) * k * dout
        dx = g if noinner else g * w
        return dx.astype(x.dtype), (g * x).sum(0).astype(w.dtype)

    def make(rng):
        return {"x": rng.normal(size=(4, 3)) * 2, "w": rng.normal(size=3)}

    return _fam("longdouble_const", "sin(x w) times a np.longdouble constant: the output is "
                "long double for float64 inputs", fwd, grads, make,
                {"chain_rule_inner_dropped": lambda d, c: grads(d, c, noinner=True)})


def mixed_magnitudes() -> Family:
    SC = np.array([1e8, 1.0, 1e-8, 1e-4])

    def fwd(X, w, b):
        z = X @ w + b
        y = np.logaddexp(0, z) if not np.iscomplexobj(z) else np.log1p(np.exp(z))
        return y, (X, w, z)

    def grads(dout, c, decay=False, sign=False, f32=False):
        X, w, z = c
        g = dout * sig(-z if sign else z)
        Xb = X.astype(np.float32).astype(np.float64) if f32 else X
        dw = Xb.T @ g
        if decay:
            dw = dw + 1e-4 * w
        return np.outer(g, w), dw, np.array([g.sum()])

    def make(rng):
        return {"X": rng.normal(size=(6, 4)) * SC, "w": rng.normal(size=4) / SC,
                "b": rng.normal(size=1)}

    return _fam("mixed_magnitudes", "softplus(X w + b) with feature scales 1e8 .. 1e-8 and "
                "weights inversely scaled: dX and dw span 16 orders of magnitude", fwd, grads,
                make,
                {"weight_decay_in_backward_only": lambda d, c: grads(d, c, decay=True),
                 "sigmoid_sign": lambda d, c: grads(d, c, sign=True),
                 "features_cast_to_float32": lambda d, c: grads(d, c, f32=True)},
                precision=("features_cast_to_float32",))


def negative_stride_views() -> Family:
    def fwd(x, w):
        xr = x[:, ::-1]
        return np.cumsum(xr * w, axis=1), (x, w)

    def grads(dout, c, noflip=False, dw_unflipped=False):
        x, w = c
        g = _revcumsum(dout, 1)
        dx = g * w
        dx = dx if noflip else dx[:, ::-1]
        dw = (g * (x if dw_unflipped else x[:, ::-1])).sum(0)
        return dx, dw

    def make(rng):
        base = rng.normal(size=(4, 10))
        wb = rng.normal(size=10)
        return {"x": base[:, ::-2][:, :5] if False else base[::-1, ::-2],
                "w": wb[::-2]}

    return _fam("negative_stride_views", "cumsum(x[:, ::-1] * w) where x and w are themselves "
                "negative-stride views (base[::-1, ::-2], wb[::-2])", fwd, grads, make,
                {"dx_not_flipped_back": lambda d, c: grads(d, c, noflip=True),
                 "dw_with_unflipped_x": lambda d, c: grads(d, c, dw_unflipped=True)})


def broadcast_square() -> Family:
    def fwd(x, g, b):
        y = np.tanh(x * g + b)
        return y, (x, g, y)

    def grads(dout, c, db_ax=0, dx_col=False, dg_ax=0):
        x, g, y = c
        dz = dout * (1 - y * y)
        dx = dz * (g[:, None] if dx_col else g)
        return dx, (dz * x).sum(dg_ax), dz.sum(db_ax)

    def make(rng):
        return {"x": rng.normal(size=(4, 4)), "g": rng.normal(size=4), "b": rng.normal(size=4)}

    return _fam("broadcast_square", "tanh(x*g + b) with N == D = 4: reductions over the wrong "
                "axis and column-broadcast gains keep every shape", fwd, grads, make,
                {"db_wrong_axis": lambda d, c: grads(d, c, db_ax=1),
                 "dx_gain_as_column": lambda d, c: grads(d, c, dx_col=True),
                 "dg_wrong_axis": lambda d, c: grads(d, c, dg_ax=1)})


_LAST: dict[str, Any] = {}


def cache_hygiene() -> Family:
    def fwd(x, W):
        _LAST["x"], _LAST["W"] = x, W
        y = np.tanh(x @ W)
        return y, {"x": x, "W": W, "y": y}

    def bwd(dout, c):
        dz = dout * (1 - c["y"] ** 2)
        return dz @ c["W"].T, c["x"].T @ dz

    def stale_global(dout, c):
        x, W = _LAST["x"], _LAST["W"]
        y = np.tanh(x @ W)
        dz = dout * (1 - y ** 2)
        return np.real(dz @ W.T), np.real(x.T @ dz)

    def mutates_cache(dout, c):
        dz = dout * (1 - c["y"] ** 2)
        out = dz @ c["W"].T, c["x"].T @ dz
        c["y"] *= 0.5           # "free" the activation in place
        return out

    def mutates_dout(dout, c):
        dout *= (1 - c["y"] ** 2)
        return dout @ c["W"].T, c["x"].T @ dout

    def make(rng):
        return {"x": rng.normal(size=(4, 3)), "W": rng.normal(size=(3, 5))}

    return Family("cache_hygiene", "tanh(x W) whose backward reads a module-level 'last "
                  "forward' cache, mutates its cache or mutates dout in place",
                  fwd, _quiet(bwd), make,
                  {"stale_global_cache": stale_global, "mutates_cache": mutates_cache,
                   "mutates_dout": mutates_dout})


def huge_batch_tiny_dim() -> Family:
    N = 4000
    TG = (np.random.default_rng(3).uniform(size=N) < 0.3).astype(float)

    def fwd(x, w, b):
        z = x[:, 0] * w[0] + b[0]
        l = np.logaddexp(0, z) - TG * z if not np.iscomplexobj(z) else np.log1p(np.exp(z)) - TG * z
        return np.asarray(l.mean()), (x, w, z)

    def grads(dout, c, summed=False, f32=False, db_sum=False):
        x, w, z = c
        r = (sig(z) - TG) * dout / (1 if summed else N)
        if f32:
            dw = np.array([np.sum((r * x[:, 0]).astype(np.float32), dtype=np.float32)],
                          dtype=np.float64)
        else:
            dw = np.array([np.sum(r * x[:, 0])])
        db = np.array([np.sum(r) * (N if db_sum else 1)])
        return (r * w[0])[:, None], dw, db

    def make(rng):
        return {"x": rng.normal(size=(N, 1)) * 3 + 1, "w": np.array([0.7]), "b": np.array([-0.2])}

    return _fam("huge_batch_tiny_dim", "mean BCE of a 1-feature logistic regression over 4000 "
                "samples: dw, db are 4000-term sums with cancellation; dx entries are 1e-4",
                fwd, grads, make,
                {"sum_not_mean": lambda d, c: grads(d, c, summed=True),
                 "dw_accumulated_in_float32": lambda d, c: grads(d, c, f32=True),
                 "db_missing_1_over_N": lambda d, c: grads(d, c, db_sum=True)},
                consts={"targets": TG}, precision=("dw_accumulated_in_float32",))


# ----------------------------------------------------------------------------------------------
# the catalogue

FAMILIES: tuple[Callable[[], Family], ...] = (
    conv2d_im2col, conv_transpose1d, depthwise_dilated,
    groupnorm_tiny_var, groupnorm_tiny_var_f32, layernorm_eps_outside, batch_renorm, weight_norm,
    spectral_norm_power,
    sparsemax, softmax_temperature, gumbel_softmax_fixed, hmm_forward_log, lstm_peephole,
    attn_rotary, attn_alibi,
    focal_loss, triplet_margin_zero, cosine_sim_eps, chamfer_dups, coulomb_softened,
    sinkhorn_fixed, bilinear_sample_int, masked_mean_empty,
    chol_logdet_nearsing, expm_layer, sqrtm_spd, eigh_top_projector, qr_layer, pinv_lstsq,
    chebyshev_ends, gammaln_digamma, i0e_kink, ndtri_tail, sinc_zero, rational_pau,
    logsigmoid_three_ways, fake_quant_lsq,
    f16_swish, longdouble_const, mixed_magnitudes, negative_stride_views, broadcast_square,
    cache_hygiene, huge_batch_tiny_dim,
)

SYNTH_SIZES = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-9)
SYNTH_PATTERNS = ("element", "slice", "uniform", "noise")
SYNTH_PER_FAMILY = 4


def _plan(fi: int, n: int) -> list[tuple[float, str, int]]:
    return [(SYNTH_SIZES[(2 * j + fi) % len(SYNTH_SIZES)],
             SYNTH_PATTERNS[(j + fi) % len(SYNTH_PATTERNS)], (j + 2 * fi) % n)
            for j in range(SYNTH_PER_FAMILY)]


families, family, cases = catalogue(FAMILIES, _plan, wide=True)


# ----------------------------------------------------------------------------------------------
# ground truth (used by bench/adversary_truth.py --catalog adversary2_catalog); torch and mpmath
# are imported only here


def truth_torch() -> dict[str, Callable[[Family, dict, dict], Any]]:
    """family -> fn(family, numpy inputs, float64 torch leaf tensors) -> output tensor: every
    forward re-expressed in torch from its definition (not from the NumPy code)."""
    import torch
    import torch.nn.functional as F

    def tt(a):
        return torch.tensor(np.asarray(a, dtype=np.float64))

    def gn(f, n, t):
        return F.group_norm(t["x"], 3, t["gamma"], t["beta"], eps=1e-5)

    def ln_out(f, n, t):
        x = t["x"]
        xc = x - x.mean(1, keepdim=True)
        s = torch.sqrt((xc * xc).mean(1, keepdim=True))
        return xc / (s + 1e-3) * t["g"] + t["b"]

    def brn(f, n, t):
        x = t["x"]
        mu = x.mean(0)
        sg = torch.sqrt(x.var(0, unbiased=False) + 1e-5)
        sr, mr = tt([1.0, 1.0, 0.4, 3.0]), tt([0.0, 1.5, -0.2, 0.1])
        r = torch.clamp(sg / sr, 1 / 1.5, 1.5)
        d = torch.clamp((mu - mr) / sr, -0.5, 0.5)
        return t["gamma"] * ((x - mu) / sg * r + d) + t["beta"]

    def wn(f, n, t):
        v = t["v"]
        w = t["g"][:, None] * v / v.norm(dim=1, keepdim=True)
        return t["x"] @ w.T

    def sn(f, n, t):
        W = t["W"]
        u = tt([0.6, -0.3, 0.5, 0.55])
        for _ in range(2):
            v = W.T @ u
            v = v / v.norm()
            u = W @ v
            u = u / u.norm()
        return t["x"] @ (W / (u @ W @ v)).T

    def spmax(f, n, t):
        z = t["z"]
        zs, _ = torch.sort(z, dim=1, descending=True)
        cs = torch.cumsum(zs, 1)
        k = torch.arange(1, z.shape[1] + 1, dtype=z.dtype)
        kz = ((1 + k * zs) > cs).sum(1)
        tau = (cs.gather(1, (kz - 1)[:, None]) - 1) / kz[:, None].to(z.dtype)
        return torch.clamp(z - tau, min=0)

    def hmm(f, n, t):
        E, A, pi = t["E"], t["A"], t["pi"]
        al = pi[None] + E[:, 0]
        for s in range(1, E.shape[1]):
            al = torch.logsumexp(al[:, :, None] + A[None], 1) + E[:, s]
        return torch.logsumexp(al, 1)

    def lstm(f, n, t):
        H = 5
        a = t["x"] @ t["Wx"] + t["h"] @ t["Wh"] + t["b"]
        c, P = t["c"], t["P"]
        i = torch.sigmoid(a[:, :H] + P[0] * c)
        fg = torch.sigmoid(a[:, H:2 * H] + P[1] * c)
        cn = fg * c + i * torch.tanh(a[:, 2 * H:3 * H])
        o = torch.sigmoid(a[:, 3 * H:] + P[2] * cn)
        return torch.cat([o * torch.tanh(cn), cn], 1)

    def rope(f, n, t):
        d = 4
        pos = 1000 + torch.arange(5, dtype=torch.float64)
        theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        ang = pos[:, None] * theta[None]
        cos, sin = torch.cos(ang), torch.sin(ang)

        def rot(a):
            a0, a1 = a[:, 0::2], a[:, 1::2]
            return torch.stack([a0 * cos - a1 * sin, a0 * sin + a1 * cos], -1).reshape(a.shape)

        p = torch.softmax(rot(t["q"]) @ rot(t["k"]).T / 2.0, -1)
        return p @ t["v"]

    def alibi(f, n, t):
        T_ = 5
        dist = (torch.arange(T_)[:, None] - torch.arange(T_)[None]).abs().to(torch.float64)
        s = t["q"] @ t["k"].transpose(-1, -2) / 2.0 - t["m"][:, None, None] * dist
        return torch.softmax(s, -1) @ t["v"]

    def focal(f, n, t):
        z = (2 * tt(f.consts["tgt"]) - 1) * t["x"]
        return -(torch.sigmoid(-z) ** 2) * F.logsigmoid(z)

    def triplet(f, n, t):
        a, p, q = t["a"], t["p"], t["n"]
        z = ((a - p) ** 2).sum(1) - ((a - q) ** 2).sum(1) + 1.0
        return torch.relu(z).mean()

    def cossim(f, n, t):
        x, y = t["x"], t["y"]
        return (x * y).sum(1) / torch.clamp(x.norm(dim=1) * y.norm(dim=1), min=1e-8)

    def chamfer(f, n, t):
        P, Q = t["P"], t["Q"]
        d2 = ((P[:, None] - Q[None]) ** 2).sum(-1)
        i1 = torch.tensor(np.argmin(n_d2(n), 1))   # the tie convention of the layer (first)
        i2 = torch.tensor(np.argmin(n_d2(n), 0))
        return d2[torch.arange(len(P)), i1].mean() + d2[i2, torch.arange(len(Q))].mean()

    def n_d2(n):
        return ((n["P"][:, None] - n["Q"][None]) ** 2).sum(-1)

    def coul(f, n, t):
        r, q = t["r"], t["q"]
        i, j = np.triu_indices(len(n["q"]), 1)
        d = r[i] - r[j]
        return (q[i] * q[j] / torch.sqrt((d * d).sum(1) + 0.01)).sum()

    def sink(f, n, t):
        K = torch.exp(-t["C"] / 0.5)
        a, b = torch.full((4,), 0.25), torch.full((5,), 0.2)
        v = torch.ones(5)
        for _ in range(5):
            u = a / (K @ v)
            v = b / (K.T @ u)
        return u[:, None] * K * v[None]

    def bilin(f, n, t):
        img, co = t["img"], t["coords"]
        H_, W_ = img.shape
        x0 = torch.tensor(np.clip(np.floor(n["coords"][:, 0]), 0, W_ - 2).astype(int))
        y0 = torch.tensor(np.clip(np.floor(n["coords"][:, 1]), 0, H_ - 2).astype(int))
        fx, fy = co[:, 0] - x0, co[:, 1] - y0
        return ((1 - fy) * ((1 - fx) * img[y0, x0] + fx * img[y0, x0 + 1])
                + fy * ((1 - fx) * img[y0 + 1, x0] + fx * img[y0 + 1, x0 + 1]))

    def mmean(f, n, t):
        m = torch.tensor(f.consts["mask"])
        return torch.where(m, t["x"], 0.0).sum(1) / torch.clamp(m.sum(1), min=1)

    def chol(f, n, t):
        A = t["A"]
        L = torch.linalg.cholesky(A @ A.T + 1e-6 * torch.eye(A.shape[0]))
        return 2 * torch.log(torch.diagonal(L)).sum()

    def sqrtm(f, n, t):
        B = t["B"]
        lam, Q = torch.linalg.eigh(B @ B.T + 0.5 * torch.eye(4))
        return (Q * torch.sqrt(lam)) @ Q.T

    def topproj(f, n, t):
        X = t["X"]
        lam, Q = torch.linalg.eigh(0.5 * (X + X.T))
        v = Q[:, -1]
        return torch.outer(v, v)

    def qr(f, n, t):
        Q, R = torch.linalg.qr(t["A"])
        return torch.cat([Q, R], 0)

    def cheb(f, n, t):
        x, c = t["x"], t["c"]
        T = [torch.ones_like(x), x]
        for _ in range(2, 7):
            T.append(2 * x * T[-1] - T[-2])
        return sum(c[k] * T[k] for k in range(7))

    def pau(f, n, t):
        x, a, b = t["x"], t["a"], t["b"]
        return ((a[0] + a[1] * x + a[2] * x ** 2 + a[3] * x ** 3)
                / (1 + torch.abs(b[0] * x + b[1] * x ** 2)))

    def fq(f, n, t):
        x, s = t["x"], t["s"]
        return s * torch.clamp(torch.round(x / s), -8, 7)

    def swish(f, n, t):
        return t["x"] * torch.sigmoid(t["x"])

    def hb(f, n, t):
        z = t["x"][:, 0] * t["w"][0] + t["b"][0]
        return (F.softplus(z) - tt(f.consts["targets"]) * z).mean()

    return {
        "conv2d_im2col": lambda f, n, t: F.conv2d(t["x"], t["w"], t["b"], stride=2, padding=1),
        "conv_transpose1d": lambda f, n, t: F.conv_transpose1d(t["x"], t["w"], stride=2,
                                                               padding=1),
        "depthwise_dilated": lambda f, n, t: F.conv2d(t["x"], t["w"], dilation=2, padding=2,
                                                      groups=3),
        "groupnorm_tiny_var": gn, "groupnorm_tiny_var_f32": gn,
        "layernorm_eps_outside": ln_out, "batch_renorm": brn, "weight_norm": wn,
        "spectral_norm_power": sn, "sparsemax": spmax,
        "softmax_temperature": lambda f, n, t: torch.softmax(t["x"] / t["T"], 1),
        "gumbel_softmax_fixed": lambda f, n, t: torch.softmax(
            (t["logits"] + tt(f.consts["noise"])) / f.consts["tau"], 1),
        "hmm_forward_log": hmm, "lstm_peephole": lstm, "attn_rotary": rope, "attn_alibi": alibi,
        "focal_loss": focal, "triplet_margin_zero": triplet, "cosine_sim_eps": cossim,
        "chamfer_dups": chamfer, "coulomb_softened": coul, "sinkhorn_fixed": sink,
        "bilinear_sample_int": bilin, "masked_mean_empty": mmean,
        "chol_logdet_nearsing": chol,
        "expm_layer": lambda f, n, t: torch.linalg.matrix_exp(t["A"]),
        "sqrtm_spd": sqrtm, "eigh_top_projector": topproj, "qr_layer": qr,
        "pinv_lstsq": lambda f, n, t: torch.linalg.pinv(t["A"]) @ t["B"],
        "chebyshev_ends": cheb,
        "i0e_kink": lambda f, n, t: torch.special.i0e(t["x"]),
        "rational_pau": pau,
        "logsigmoid_three_ways": lambda f, n, t: F.logsigmoid(t["x"]),
        "fake_quant_lsq": fq, "f16_swish": swish,
        "longdouble_const": lambda f, n, t: torch.sin(t["x"] * t["w"]) / 3.0,
        "mixed_magnitudes": lambda f, n, t: F.softplus(t["X"] @ t["w"] + t["b"], threshold=1e9),
        "negative_stride_views": lambda f, n, t: torch.cumsum(torch.flip(t["x"], [1]) * t["w"], 1),
        "broadcast_square": lambda f, n, t: torch.tanh(t["x"] * t["g"] + t["b"]),
        "cache_hygiene": lambda f, n, t: torch.tanh(t["x"] @ t["W"]),
        "huge_batch_tiny_dim": hb,
    }


def truth_mp() -> dict[str, Callable[[Family, dict, Array], tuple[Array, ...]]]:
    """family -> fn(family, numpy inputs, dout) -> gradients, from mpmath at 60 digits:
    mp.diff of the function itself, or the inverse-function theorem for ndtri."""
    import mpmath as mp

    def elementwise(fn):
        def run(fam, inputs, dout):
            x = inputs[next(iter(inputs))]
            g = np.empty(x.shape)
            with mp.workdps(60):
                for idx in np.ndindex(x.shape):
                    g[idx] = float(mp.diff(fn, mp.mpf(float(x[idx]))) * mp.mpf(float(dout[idx])))
            return (g,)
        return run

    def gam(fam, inputs, dout):
        x, w = inputs["x"], inputs["w"]
        dx, dw = np.empty(x.shape), np.empty(w.shape)
        with mp.workdps(60):
            for i in range(len(x)):
                xv, wv, d = mp.mpf(float(x[i])), mp.mpf(float(w[i])), mp.mpf(float(dout[i]))
                f = lambda v: wv * mp.log(abs(mp.gamma(v))) + mp.digamma(v)
                dx[i] = float(d * mp.diff(f, xv))
                dw[i] = float(d * mp.log(abs(mp.gamma(xv))))
        return dx, dw

    def ndtri(fam, inputs, dout):
        p = inputs["p"]
        g = np.empty(p.shape)
        with mp.workdps(80):
            for i in range(len(p)):
                pv = mp.mpf(float(p[i]))
                y = mp.findroot(lambda v: mp.ncdf(v) - pv, mp.mpf(float(special.ndtri(p[i]))))
                g[i] = float(mp.mpf(float(dout[i])) / mp.npdf(y))
        return (g,)

    return {"sinc_zero": elementwise(lambda v: mp.sinc(mp.pi * v)),
            "gammaln_digamma": gam, "ndtri_tail": ndtri}


def truth_kinks() -> dict[str, Callable[[Family, dict, Array], list]]:
    """family -> fn(family, inputs, dout) -> per gradient (mask of kink elements, lo, hi): the
    interval of valid values there (the truth takes any value inside it)."""

    def triplet(fam, inputs, dout):
        a, p, n = inputs["a"], inputs["p"], inputs["n"]
        z = ((a - p) ** 2).sum(1) - ((a - n) ** 2).sum(1) + 1.0
        m = np.broadcast_to((z == 0)[:, None], a.shape)
        s = dout / len(z)
        out = []
        for full in (s * 2 * (n - p), -s * 2 * (a - p), s * 2 * (a - n)):
            out.append((m, np.minimum(0, full), np.maximum(0, full)))
        return out

    return {"triplet_margin_zero": triplet}
