# ruff: noqa: RUF059, E501, B023
# (the catalogue imitates user code: short names, long formulas, closures over loop variables)
"""A third, independent adversarial catalogue of NumPy layers for gradcheck.

Same data model as ``tests/adversary_catalog.py`` (``Family``/``Case``, ``families()``,
``cases()``), so ``bench/adversary.py --catalog adversary3_catalog`` runs it. Written without
reference to gradcheck's engine. Every correct backward was checked independently of gradcheck:
against mpmath central differences at 50 digits of the same formula re-expressed in mpmath for
the special-function / extreme-magnitude families, and against Richardson-extrapolated float64
differences of the forward elsewhere (see :func:`truth_fd`).

Themes (all different from the first two catalogues): masked/empty reductions (all-masked
log-sum-exp, reduceat's empty-segment quirk, duplicate gather indices), online/compensated
algorithms (Welford, Kahan, float32 pairwise sums), LAPACK routines that read one triangle
(cholesky, solve_triangular), degenerate spectra, polar coordinates at the origin and near the
atan2 cut, series-vs-closed-form derivatives (exprel, Legendre at +-1), splines at knots, padding
modes (wrap / reflect), ceil-mode pooling, pixel shuffle, max-plus dynamic programming, STE pairs,
dtype mixes and extreme scales (1e160 / 1e-160), clamp thresholds hit exactly.

Only numpy and scipy are imported at module level.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import linalg as sla
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adversary_catalog import Family, _quiet, catalogue

Array = np.ndarray
Backward = Callable[[Any, Any], tuple[Array, ...]]
sig = special.expit


def _fam(name, what, fwd, bwd, make, bugs, alternates=None, **kw):
    return Family(name, what, fwd, _quiet(bwd), make, {k: _quiet(v) for k, v in bugs.items()},
                  alternates={k: _quiet(v) for k, v in (alternates or {}).items()}, **kw)


# ----------------------------------------------------------------------------------------------
# 1. masked / empty reductions, scatter and gather


def masked_lse_allmasked() -> Family:
    M = np.array([[1, 1, 0, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0]], bool)

    def fwd(x):
        xm = np.where(M, x, -np.inf)
        m = np.max(xm, axis=1, keepdims=True)
        ms = np.where(np.isfinite(m), m, 0.0)
        e = np.where(M, np.exp(xm - ms), 0.0)
        s = e.sum(1, keepdims=True)
        ss = np.where(s > 0, s, 1.0)
        out = np.where(M.any(1), (np.log(ss) + ms)[:, 0], 0.0)
        return out, (x, e / ss)

    def bwd(d, c):
        x, p = c
        return (d[:, None] * p,)

    def unmasked(d, c):  # softmax over the whole row, mask forgotten in backward
        x, p = c
        e = np.exp(x - x.max(1, keepdims=True))
        return (d[:, None] * e / e.sum(1, keepdims=True),)

    def empty_uniform(d, c):  # "nan fix": the all-masked row gets a uniform softmax
        x, p = c
        q = np.where(M.any(1, keepdims=True), p, 1.0 / x.shape[1])
        return (d[:, None] * q,)

    def mask_after_renorm(d, c):  # softmax over all entries, then mask applied (no renorm)
        x, p = c
        e = np.exp(x - x.max(1, keepdims=True))
        return (d[:, None] * M * e / e.sum(1, keepdims=True),)

    def make(rng):
        x = rng.normal(size=(4, 5))
        x[0] += 700.0
        x[0, 2] = 760.0  # masked out but would dominate
        return {"x": x}

    return _fam("masked_lse_allmasked", "masked log-sum-exp near 700 with an all-masked row "
                "(defined as 0) and a single-entry row: masked entries must get exactly 0",
                fwd, bwd, make, {"unmasked": unmasked, "empty_uniform": empty_uniform,
                                 "mask_after_renorm": mask_after_renorm})


def reduceat_empty_segment() -> Family:
    IDX = np.array([0, 3, 3, 7])

    def fwd(x):
        t = np.tanh(x)
        return np.add.reduceat(t, IDX, axis=0), (x, t)

    def seg_grad(d, c, mode):
        x, t = c
        n = x.shape[0]
        g = np.zeros_like(x)
        ends = [*list(IDX[1:]), n]
        for s, (a, b) in enumerate(zip(IDX, ends, strict=False)):
            if mode == "intended" and b <= a:
                continue
            if b <= a:  # reduceat quirk: an empty segment returns x[a]
                g[a] += d[s]
            else:
                g[a:(b + 1 if mode == "inclusive" else b)] += d[s]
        return (g * (1 - t * t),)

    def make(rng):
        return {"x": rng.normal(size=(10, 3))}

    return _fam("reduceat_empty_segment", "np.add.reduceat with a repeated offset: the 'empty' "
                "segment returns x[i] (not 0), so its gradient is not empty", fwd,
                lambda d, c: seg_grad(d, c, "true"), make,
                {"empty_is_zero": lambda d, c: seg_grad(d, c, "intended"),
                 "inclusive_end": lambda d, c: seg_grad(d, c, "inclusive"),
                 "tanh_deriv_missing": lambda d, c: (seg_grad(d, c, "true")[0] / (1 - c[1] ** 2),)})


def take_along_dups() -> Family:
    IDX = np.array([[0, 0, 3, 5, 0], [2, 2, 2, 1, 4], [5, 4, 3, 2, 1], [1, 1, 5, 5, 1]])

    def fwd(x):
        g = np.take_along_axis(x, IDX, axis=1)
        return g * g, (x, g)

    def bwd(d, c):
        x, g = c
        dx = np.zeros_like(x)
        rows = np.arange(x.shape[0])[:, None]
        np.add.at(dx, (rows, IDX), 2 * g * d)
        return (dx,)

    def put_overwrite(d, c):
        x, g = c
        dx = np.zeros_like(x)
        np.put_along_axis(dx, IDX, 2 * g * d, axis=1)
        return (dx,)

    def fancy_iadd(d, c):
        x, g = c
        dx = np.zeros_like(x)
        rows = np.arange(x.shape[0])[:, None]
        dx[rows, IDX] += 2 * g * d
        return (dx,)

    def first_only(d, c):  # dedup by np.unique(return_index) and keep the first occurrence's grad
        x, g = c
        dx = np.zeros_like(x)
        for r in range(x.shape[0]):
            u, first = np.unique(IDX[r], return_index=True)
            dx[r, u] = (2 * g * d)[r, first]
        return (dx,)

    def make(rng):
        return {"x": rng.normal(size=(4, 6))}

    return _fam("take_along_dups", "take_along_axis gather with duplicate indices (a row "
                "gathers the same column 3x): the backward must accumulate (np.add.at)", fwd,
                bwd, make, {"put_overwrite": put_overwrite, "fancy_iadd": fancy_iadd,
                            "first_only": first_only})


def einsum_diag_trace() -> Family:
    def fwd(A, B):
        return np.einsum("iij,kk->ij", A, B), (A, B)

    def grads(d, c, full_b=False, bcast_a=False, no_tr=False):
        A, B = c
        tr = 1.0 if no_tr else np.trace(B)
        dA = np.zeros_like(A)
        n = A.shape[0]
        if bcast_a:
            dA += (d * tr)[:, None, :]
        else:
            dA[np.arange(n), np.arange(n)] = d * tr
        s = np.sum(d * np.einsum("iij->ij", A))
        dB = np.full_like(B, s) if full_b else np.eye(B.shape[0]) * s
        return dA, dB

    def make(rng):
        return {"A": rng.normal(size=(3, 3, 2)), "B": rng.normal(size=(4, 4))}

    return _fam("einsum_diag_trace", "einsum('iij,kk->ij'): repeated labels take a diagonal and a "
                "trace; gradients live only on the diagonals", fwd, grads, make,
                {"dB_full": lambda d, c: grads(d, c, full_b=True),
                 "dA_broadcast": lambda d, c: grads(d, c, bcast_a=True),
                 "trace_factor_missing": lambda d, c: grads(d, c, no_tr=True)})


# ----------------------------------------------------------------------------------------------
# 2. online / compensated / float32 summation


def welford_var() -> Family:
    def fwd(x):
        n = x.shape[1]
        mean = np.zeros(x.shape[0], dtype=x.dtype)
        M2 = np.zeros(x.shape[0], dtype=x.dtype)
        for k in range(n):
            xk = x[:, k]
            dl = xk - mean
            mean = mean + dl / (k + 1)
            M2 = M2 + dl * (xk - mean)
        return M2 / (n - 1), (x, mean)

    def bwd(d, c):
        x, mean = c
        n = x.shape[1]
        return (d[:, None] * 2.0 * (x - mean[:, None]) / (n - 1),)

    def biased(d, c):
        x, mean = c
        n = x.shape[1]
        return (d[:, None] * 2.0 * (x - mean[:, None]) / n,)

    def f32_centre(d, c):  # centring done in float32 ("it's only a gradient")
        x, mean = c
        n = x.shape[1]
        xc = x.astype(np.float32) - mean.astype(np.float32)[:, None]
        return (d[:, None] * 2.0 * xc.astype(np.float64) / (n - 1),)

    def sign(d, c):
        return (-bwd(d, c)[0],)

    def split_terms(d, c):  # 2x/(n-1) - 2 mean/(n-1): cancels at the -3e6 offset
        x, mean = c
        n = x.shape[1]
        return (d[:, None] * (2.0 * x / (n - 1) - 2.0 * mean[:, None] / (n - 1)),)

    def make(rng):
        x = 1e-2 * rng.normal(size=(4, 6))
        x[0] += 1e4
        x[2] += -3e6
        x[3] = 0.125  # a constant row: variance 0, gradient exactly 0
        return {"x": x}

    return _fam("welford_var", "Welford online variance per row, offsets 1e4 and -3e6 with "
                "spread 1e-2, and a constant row (gradient exactly 0)", fwd, bwd, make,
                {"biased_n": biased, "f32_centre": f32_centre, "sign": sign,
                 "split_terms": split_terms},
                precision=("f32_centre", "split_terms"))


def kahan_dot_scalar() -> Family:
    def fwd(x, w):
        s = 0.0
        comp = 0.0
        for xi, wi in zip(x, w, strict=False):
            y = xi * wi - comp
            t = s + y
            comp = (t - s) - y
            s = t
        return np.array(s), (x, w)

    def bwd(d, c):
        x, w = c
        return d * w, d * x

    def swapped(d, c):
        x, w = c
        return d * x, d * w

    def last_dropped(d, c):  # off-by-one: range(len(x) - 1) in the backward loop
        x, w = c
        dx, dw = np.zeros_like(x), np.zeros_like(w)
        for i in range(len(x) - 1):
            dx[i], dw[i] = d * w[i], d * x[i]
        return dx, dw

    def make(rng):
        x = rng.normal(size=48)
        x[::6] *= 1e8  # products cancel: the sum is O(1) while terms are O(1e8)
        x[1::6] = -x[::6]
        w = rng.normal(size=48)
        w[1::6] = w[::6]
        return {"x": x, "w": w}

    return _fam("kahan_dot_scalar", "Kahan-compensated dot product to a 0-d scalar; terms of 1e8 "
                "cancel pairwise, so the sum is O(1): FD of a cancelling sum", fwd, bwd, make,
                {"swapped": swapped, "last_dropped": last_dropped})


def pairwise_sum_f32() -> Family:
    def fwd(x, w):
        return np.sum(x * x * w), (x, w)

    def bwd(d, c):
        x, w = c
        return (2 * d * x * w).astype(np.float32), (d * x * x).astype(np.float32)

    def missing_2(d, c):
        x, w = c
        return (d * x * w).astype(np.float32), (d * x * x).astype(np.float32)

    def w_transposed(d, c):
        x, w = c
        return (2 * d * x * w.T).astype(np.float32), (d * x * x).astype(np.float32)

    def dw_f16(d, c):
        x, w = c
        return (2 * d * x * w).astype(np.float32), (d * (x * x).astype(np.float16)).astype(np.float32)

    def make(rng):
        x = rng.normal(size=(24, 24)).astype(np.float32)
        w = (rng.uniform(0.5, 1.5, size=(24, 24))).astype(np.float32)
        return {"x": x, "w": w}

    return _fam("pairwise_sum_f32", "float32 scalar sum over 576 weighted squares (numpy pairwise "
                "summation): the scalar's rounding is ~1e-5 relative of the output", fwd, bwd,
                make, {"missing_2": missing_2, "w_transposed": w_transposed, "dw_f16": dw_f16},
                precision=("dw_f16",), truth_tol=1e-5)


def mse_scalar_batch() -> Family:
    def fwd(X, w):
        r = X @ w - np.sin(np.arange(X.shape[0]))
        return np.array(0.5 * np.mean(r * r)), (X, w, r)

    def bwd(d, c):
        X, w, r = c
        N = X.shape[0]
        return d * np.outer(r, w) / N, d * X.T @ r / N

    def sum_not_mean(d, c):
        X, w, r = c
        return d * np.outer(r, w), d * X.T @ r

    def dX_not_averaged(d, c):
        X, w, r = c
        return d * np.outer(r, w), d * X.T @ r / X.shape[0]

    def last_row_skipped(d, c):  # batch loop with range(N - 1)
        X, w, r = c
        dX, dw = bwd(d, c)
        dX = dX.copy()
        dX[-1] = 0
        return dX, dw - d * X[-1] * r[-1] / X.shape[0]

    def make(rng):
        return {"X": rng.normal(size=(160, 3)), "w": rng.normal(size=3)}

    return _fam("mse_scalar_batch", "0.5*mean squared residual over a batch of 160 to a 0-d "
                "scalar: each dX element is O(1/N), one skipped row is a 1/N-size error", fwd,
                bwd, make, {"sum_not_mean": sum_not_mean, "dX_not_averaged": dX_not_averaged,
                            "last_row_skipped": last_row_skipped})


# ----------------------------------------------------------------------------------------------
# 3. linear algebra: one-triangle reads, degenerate spectra, reflections


def cholesky_lower_read() -> Family:
    def fwd(A):
        L = np.linalg.cholesky(A)  # reads the lower triangle only
        return L, (A, L)

    def phi(X, half=True):
        P = np.tril(X)
        if half:
            P[np.diag_indices_from(P)] *= 0.5
        return P

    def sym_grad(d, c, half=True):
        A, L = c
        P = phi(L.T @ d, half)
        Li = sla.solve_triangular(L, np.eye(L.shape[0]), lower=True)
        S = Li.T @ P @ Li
        return 0.5 * (S + S.T)

    def lower(G):
        return np.tril(2 * G) - np.diag(np.diag(G))

    def bwd(d, c):
        return (lower(sym_grad(d, c)),)

    def symmetric(d, c):  # what torch returns: the symmetric gradient
        return (sym_grad(d, c),)

    def no_half(d, c):
        return (lower(sym_grad(d, c, half=False)),)

    def upper_read(d, c):  # assumes the upper triangle is read
        G = sym_grad(d, c)
        return (np.triu(2 * G) - np.diag(np.diag(G)),)

    def make(rng):
        B = rng.normal(size=(4, 4))
        S = B @ B.T + 2 * np.eye(4)
        A = np.tril(S) + np.triu(rng.normal(size=(4, 4)) * 5, 1)  # junk above the diagonal
        return {"A": A}

    return _fam("cholesky_lower_read", "L = np.linalg.cholesky(A) with junk above the diagonal: "
                "LAPACK reads the lower triangle, so dA is lower (2x off-diagonal), upper 0",
                fwd, bwd, make, {"symmetric_grad": symmetric, "no_half_diag": no_half,
                                 "upper_read": upper_read})


def trisolve_lower_junk() -> Family:
    def fwd(L, b):
        x = sla.solve_triangular(L, b, lower=True)
        return x, (L, b, x)

    def bwd(d, c, tril=True, trans=True, sign=1.0):
        L, b, x = c
        db = sla.solve_triangular(L, d, lower=True, trans="T" if trans else "N")
        dL = -sign * db @ x.T
        return (np.tril(dL) if tril else dL), db

    def make(rng):
        L = np.tril(rng.normal(size=(4, 4))) + np.diag([2.0, -1.5, 3.0, 1.2])
        L += np.triu(rng.normal(size=(4, 4)), 1)  # never read
        return {"L": L, "b": rng.normal(size=(4, 3))}

    return _fam("trisolve_lower_junk", "scipy solve_triangular(lower=True) with junk in the upper "
                "triangle: dL must be tril(-L^-T dx x^T)", fwd, bwd, make,
                {"no_tril": lambda d, c: bwd(d, c, tril=False),
                 "trans_missing": lambda d, c: bwd(d, c, trans=False),
                 "dL_sign": lambda d, c: bwd(d, c, sign=-1.0)})


def eigh_spectral_degenerate() -> Family:
    def fwd(A):
        S = 0.5 * (A + A.T)
        lam, V = np.linalg.eigh(S)
        out = np.array([np.sum(np.exp(lam)), np.sum(np.log1p(lam * lam))])
        return out, (A, lam, V)

    def grads(d, c, order="VDVt", upper=False, fprime=None):
        A, lam, V = c
        fp = d[0] * np.exp(lam) + d[1] * 2 * lam / (1 + lam * lam)
        if fprime == "nolog":
            fp = d[0] * np.exp(lam) + d[1] * 2 * lam
        G = V @ np.diag(fp) @ V.T if order == "VDVt" else V.T @ np.diag(fp) @ V
        if upper:
            G = np.triu(2 * G) - np.diag(np.diag(G))
        return (G,)

    def make(rng):
        Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
        A = Q @ np.diag([1.0, 1.0, 1.0, -2.0, 0.5]) @ Q.T  # triple eigenvalue
        return {"A": A}

    return _fam("eigh_spectral_degenerate", "spectral functions sum exp(l), sum log(1+l^2) of "
                "sym(A) with a triple eigenvalue: differentiable although eigenvectors are not",
                fwd, grads, make,
                {"VtDV": lambda d, c: grads(d, c, order="VtDV"),
                 "upper_triangle": lambda d, c: grads(d, c, upper=True),
                 "log1p_deriv_wrong": lambda d, c: grads(d, c, fprime="nolog")})


def householder_reflect() -> Family:
    def fwd(v, x):
        s = v @ v
        a = v @ x
        return x - (2.0 / s) * np.outer(v, a), (v, x, s, a)

    def grads(d, c, t2=True, t3=True, dxsign=1.0):
        v, x, s, a = c
        dx = d - dxsign * (2.0 / s) * np.outer(v, v @ d)
        dv = -(2.0 / s) * (d @ a)
        if t2:
            dv = dv - (2.0 / s) * (x @ (d.T @ v))
        if t3:
            dv = dv + (4.0 / s**2) * (v @ d @ a) * v
        return dv, dx

    def make(rng):
        return {"v": rng.normal(size=5) * 3.0, "x": rng.normal(size=(5, 3))}

    return _fam("householder_reflect", "Householder reflection x - 2 v v^T x / v^T v: the "
                "gradient in v is scale-free (orthogonal to v); dropping 1/|v|^2's derivative",
                fwd, grads, make,
                {"unit_v_assumed": lambda d, c: grads(d, c, t3=False),
                 "second_term_missing": lambda d, c: grads(d, c, t2=False),
                 "dx_sign": lambda d, c: grads(d, c, dxsign=-1.0)})


# ----------------------------------------------------------------------------------------------
# 4. elementwise special forms: polar, exprel, Legendre, splines


def polar_hypot_atan2() -> Family:
    NZ = np.array([0.0, 1, 1, 1, 1, 1, 0, 1])

    def fwd(x, y):
        r = np.hypot(x, y)
        th = np.arctan2(y, x) * NZ
        return np.stack([r, th]), (x, y, r)

    def grads(d, c, naive=False, swap=False):
        x, y, r = c
        if naive:
            r = np.sqrt(x * x + y * y)
        rs = np.where(r > 0, r, 1.0)
        ux, uy = np.where(r > 0, x / rs, 0.0), np.where(r > 0, y / rs, 0.0)
        tx, ty = -uy / rs * NZ, ux / rs * NZ
        if swap:
            tx, ty = -tx, -ty
        return d[0] * ux + d[1] * tx, d[0] * uy + d[1] * ty

    def origin_nan(d, c):
        x, y, r = c
        return d[0] * x / r - d[1] * y / r / r * NZ, d[0] * y / r + d[1] * x / r / r * NZ

    def make(rng):
        x = rng.uniform(0.5, 3.0, size=8) * rng.choice([-1.0, 1.0], size=8)
        y = rng.uniform(0.5, 3.0, size=8) * rng.choice([-1.0, 1.0], size=8)
        x[0] = y[0] = 0.0          # the origin: r is a cone, theta masked out
        x[6], y[6] = 1e200, -3e200  # r only: x^2 + y^2 overflows
        x[3] = 0.0                  # on the y axis
        return {"x": x, "y": y}

    return _fam("polar_hypot_atan2", "(hypot, atan2) features with a point at the origin (cone "
                "kink), one on an axis and one at 1e200 (x^2+y^2 overflows)", fwd,
                lambda d, c: grads(d, c), make,
                {"naive_sqrt": lambda d, c: grads(d, c, naive=True),
                 "atan2_sign": lambda d, c: grads(d, c, swap=True),
                 "origin_nan": origin_nan})


def atan2_near_cut() -> Family:
    def fwd(x, y):
        return np.arctan2(y, x), (x, y)

    def bwd(d, c):
        x, y = c
        r2 = x * x + y * y
        return -d * y / r2, d * x / r2

    def swap(d, c):
        x, y = c
        r2 = x * x + y * y
        return d * y / r2, -d * x / r2

    def make(rng):
        x = rng.uniform(-2, 2, size=6)
        y = rng.uniform(-2, 2, size=6)
        x[0], y[0] = -1.0, 1e-300   # 1e-300 above the branch cut on the negative x axis
        x[1], y[1] = -2.0, -5e-301  # just below it
        return {"x": x, "y": y}

    return _fam("atan2_near_cut", "atan2 at points 1e-300 from its branch cut on the negative x "
                "axis: differentiable there (d/dy = 1/x) but a jump of 2 pi lies within any step",
                fwd, bwd, make, {"atan2_sign": swap})


def exprel_series() -> Family:
    def fwd(x):
        return special.exprel(x), (x,)

    def deriv(x, cut=1e-2):
        small = np.abs(x) < cut
        xs = np.where(small, x, 0.0)
        ser = 0.5 + xs * (1 / 3 + xs * (1 / 8 + xs * (1 / 30 + xs * (1 / 144 + xs / 840))))
        xl = np.where(small, 1.0, x)
        big = (xl * np.exp(xl) - np.expm1(xl)) / (xl * xl)
        return np.where(small, ser, big)

    def bwd(d, c):
        (x,) = c
        return (d * deriv(x),)

    def naive(d, c):  # closed form everywhere, x == 0 patched
        (x,) = c
        xl = np.where(x == 0, 1.0, x)
        g = (xl * np.exp(xl) - np.expm1(xl)) / (xl * xl)
        return (d * np.where(x == 0, 0.5, g),)

    def const_half(d, c):  # "derivative is 1/2 near 0"
        (x,) = c
        return (d * np.where(np.abs(x) < 1e-3, 0.5, deriv(x)),)

    def x_not_squared(d, c):
        (x,) = c
        xl = np.where(np.abs(x) < 1e-2, 1.0, x)
        return (d * np.where(np.abs(x) < 1e-2, deriv(x), (xl * np.exp(xl) - np.expm1(xl)) / xl),)

    def make(rng):
        x = rng.uniform(-4.0, 2.5, size=12)
        x[:7] = [0.0, 1e-13, -3e-15, 2e-9, 9e-4, -7e-4, 1.5e-2]
        return {"x": x}

    return _fam("exprel_series", "exprel(x) = expm1(x)/x at 0, -3e-15, 1e-13, 1e-9, 1e-3: the closed-form "
                "derivative cancels (relative error eps/x), a series is needed", fwd, bwd, make,
                {"naive_closed_form": naive, "const_half_near_0": const_half,
                 "x_not_squared": x_not_squared},
                precision=("naive_closed_form", "const_half_near_0"))


def legendre_endpoints() -> Family:
    N = 7

    def P_all(x):
        P = [np.ones_like(x), x]
        for n in range(1, N - 1):
            P.append(((2 * n + 1) * x * P[n] - n * P[n - 1]) / (n + 1))
        return P

    def fwd(x):
        P = P_all(x)
        return np.stack(P, axis=1), (x, P)

    def dP_rec(x, P):
        dP = [np.zeros_like(x), np.ones_like(x)]
        for n in range(1, N - 1):
            dP.append(x * dP[n] + (n + 1) * P[n])
        return dP

    def bwd(d, c):
        x, P = c
        dP = dP_rec(x, P)
        return (sum(d[:, n] * dP[n] for n in range(N)),)

    def div_formula(x, P, signed=True):
        dP = [np.zeros_like(x), np.ones_like(x)]
        end = np.abs(x) == 1.0
        den = np.where(end, 1.0, x * x - 1.0)
        for n in range(2, N):
            at_end = n * (n + 1) / 2.0 * (np.sign(x) ** (n + 1) if signed else 1.0)
            dP.append(np.where(end, at_end, n * (x * P[n] - P[n - 1]) / den))
        return dP

    def endpoint_sign(d, c):
        x, P = c
        dP = div_formula(x, P, signed=False)
        return (sum(d[:, n] * dP[n] for n in range(N)),)

    def near_end(d, c):
        x, P = c
        dP = div_formula(x, P)
        return (sum(d[:, n] * dP[n] for n in range(N)),)

    def col_shift(d, c):  # zip(d.T[1:], dP) off by one
        x, P = c
        dP = dP_rec(x, P)
        return (sum(d[:, n + 1] * dP[n] for n in range(N - 1)),)

    def make(rng):
        x = rng.uniform(-1, 1, size=10)
        x[:6] = [-1.0, 1.0, 0.0, 1 - 1e-12, -1 + 1e-10, 0.5]
        return {"x": x}

    return _fam("legendre_endpoints", "Legendre features P_0..P_6 at x = +-1 and 1-1e-12: the "
                "(x^2-1) derivative formula is 0/0 at the ends and cancels next to them",
                fwd, bwd, make, {"endpoint_sign": endpoint_sign, "near_endpoint_formula": near_end,
                                 "column_shift": col_shift},
                precision=("near_endpoint_formula",))


def bspline_quadratic() -> Family:
    H = 0.5

    def fwd(x, c):
        t = x / H
        i = np.floor(t).astype(int)
        u = t - i
        b = np.stack([(1 - u) ** 2 / 2, (-2 * u * u + 2 * u + 1) / 2, u * u / 2], axis=1)
        out = b[:, 0] * c[i] + b[:, 1] * c[i + 1] + b[:, 2] * c[i + 2]
        return out, (x, c, i, u, b)

    def grads(d, cc, invh=True, overwrite=False, rev=False):
        x, c, i, u, b = cc
        db = np.stack([u - 1, 1 - 2 * u, u], axis=1)
        if rev:
            db = db[:, ::-1]
        dx = d * (db[:, 0] * c[i] + db[:, 1] * c[i + 1] + db[:, 2] * c[i + 2])
        if invh:
            dx = dx / H
        dc = np.zeros_like(c)
        for k in range(3):
            if overwrite:
                dc[i + k] = d * b[:, k]
            else:
                np.add.at(dc, i + k, d * b[:, k])
        return dx, dc

    def make(rng):
        x = rng.uniform(0.0, 3.99, size=9)
        x[:4] = [0.5, 1.0, 2.0, 3.5]  # exactly on knots (C1 there)
        x[4] = x[5] - 0.01            # two points in one span
        return {"x": x, "c": rng.normal(size=10)}

    return _fam("bspline_quadratic", "uniform quadratic B-spline (h = 0.5) at learnable points, "
                "some exactly on knots (the span index jumps, the derivative is continuous)", fwd,
                grads, make,
                {"missing_inv_h": lambda d, c: grads(d, c, invh=False),
                 "dc_overwrite": lambda d, c: grads(d, c, overwrite=True),
                 "basis_reversed": lambda d, c: grads(d, c, rev=True)})


# ----------------------------------------------------------------------------------------------
# 5. piecewise and selection layers


def _entmax15(X):
    Xs = X / 2.0
    Xs = Xs - Xs.max(axis=1, keepdims=True)
    srt = -np.sort(-Xs, axis=1)
    d = X.shape[1]
    rho = np.arange(1, d + 1)
    mean = np.cumsum(srt, 1) / rho
    mean_sq = np.cumsum(srt * srt, 1) / rho
    ss = rho * (mean_sq - mean * mean)
    delta = (1 - ss) / rho
    tau = mean - np.sqrt(np.clip(delta, 0, None))
    k = np.sum(tau <= srt, axis=1)
    ts = tau[np.arange(X.shape[0]), k - 1][:, None]
    return np.clip(Xs - ts, 0, None) ** 2


def entmax15_exact() -> Family:
    def fwd(x):
        Y = _entmax15(x)
        return Y, (x, Y)

    def bwd(d, c):
        x, Y = c
        g = np.sqrt(Y)
        dx = d * g
        q = dx.sum(1, keepdims=True) / g.sum(1, keepdims=True)
        return (dx - q * g,)

    def sparsemax_bwd(d, c):
        x, Y = c
        s = (Y > 0).astype(float)
        return (s * (d - (d * s).sum(1, keepdims=True) / s.sum(1, keepdims=True)),)

    def no_projection(d, c):
        x, Y = c
        return (d * np.sqrt(Y),)

    def softmax_bwd(d, c):
        x, Y = c
        return (Y * (d - (Y * d).sum(1, keepdims=True)),)

    def make(rng):
        return {"x": rng.normal(size=(4, 6)) * 2.0}

    return _fam("entmax15_exact", "exact sort-based 1.5-entmax (sparse, piecewise smooth): "
                "backward weights by sqrt(p), not the support indicator", fwd, bwd, make,
                {"sparsemax_bwd": sparsemax_bwd, "no_projection": no_projection,
                 "softmax_bwd": softmax_bwd})


def ste_round_pair() -> Family:
    def fwd(x, w):
        q = np.round(x)
        return w * q + x * x, (x, w, q)

    def bwd(d, c):
        x, w, q = c
        return 2 * x * d, q * d

    def ste(d, c):  # straight-through estimator: not the gradient of this forward
        x, w, q = c
        return 2 * x * d + w * d, q * d

    def ste_clipped(d, c):
        x, w, q = c
        return 2 * x * d + np.where(np.abs(x) <= 1, w * d, 0.0), q * d

    def dw_unrounded(d, c):
        x, w, q = c
        return 2 * x * d, x * d

    def make(rng):
        x = rng.uniform(-3, 3, size=10)
        frac = x - np.floor(x)
        x = np.where(np.abs(frac - 0.5) < 0.1, x + 0.25, x)  # keep away from the jumps
        x[:3] = [-2.0, 0.0, 1.0]  # integer-valued: round is locally flat
        return {"x": x, "w": rng.normal(size=10)}

    return _fam("ste_round_pair", "w*round(x) + x^2 (no stop-gradient trick in NumPy): the true "
                "dx ignores round; a straight-through backward is a bug here", fwd, bwd, make,
                {"ste_identity": ste, "ste_clipped": ste_clipped, "dw_unrounded": dw_unrounded})


def hard_attention_argmax() -> Family:
    def fwd(S, V):
        idx = np.argmax(S, axis=1)
        m = S[np.arange(S.shape[0]), idx]
        return V[idx] * m[:, None], (S, V, idx, m)

    def grads(d, c, overwrite=False, ds=True, soft=False):
        S, V, idx, m = c
        dV = np.zeros_like(V)
        if overwrite:
            dV[idx] = d * m[:, None]
        else:
            np.add.at(dV, idx, d * m[:, None])
        dS = np.zeros_like(S)
        if ds:
            dS[np.arange(S.shape[0]), idx] = np.sum(d * V[idx], axis=1)
        if soft:
            p = np.exp(S - S.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            gm = np.sum(d * V[idx], axis=1)[:, None]
            dS = p * gm + dS
        return dS, dV

    def make(rng):
        S = rng.normal(size=(5, 4))
        S[1, 2] = S[3, 2] = 3.0  # two queries pick the same value row
        S[4, 2] = 2.5
        return {"S": S, "V": rng.normal(size=(4, 3))}

    return _fam("hard_attention_argmax", "hard attention V[argmax S] * max S with three queries on "
                "one row: dV accumulates, dS is nonzero only at the argmax", fwd, grads, make,
                {"dV_overwrite": lambda d, c: grads(d, c, overwrite=True),
                 "dS_missing": lambda d, c: grads(d, c, ds=False),
                 "softmax_surrogate": lambda d, c: grads(d, c, soft=True)})


def pinball_ties() -> Family:
    TAU = 0.3

    def fwd(pred, y):
        r = pred - y
        return np.where(r >= 0, TAU * r, (TAU - 1) * r), (pred, y, r)

    def grads(d, c, at0=TAU, swap=False):
        pred, y, r = c
        t = (1 - TAU) if swap else TAU
        g = np.where(r > 0, t, np.where(r < 0, t - 1, at0 if not swap else 1 - at0))
        return d * g, -d * g

    def make(rng):
        y = rng.integers(-3, 4, size=(3, 4)).astype(float)
        pred = y + rng.normal(size=(3, 4))
        pred[0] = y[0]  # exact ties: r == 0
        pred[1, :2] = y[1, :2]
        return {"pred": pred, "y": y}

    return _fam("pinball_ties", "quantile (pinball) loss, tau 0.3, with exact ties pred == y on "
                "integer values: every value in [tau-1, tau] is a valid subgradient there", fwd,
                grads, make,
                {"tau_swapped": lambda d, c: grads(d, c, swap=True),
                 "no_dy": lambda d, c: (grads(d, c)[0], np.zeros_like(c[1]))},
                alternates={"correct_left": lambda d, c: grads(d, c, at0=TAU - 1),
                            "correct_zero": lambda d, c: grads(d, c, at0=0.0)})


def cummax_plateau() -> Family:
    def fwd(x):
        return np.maximum.accumulate(x, axis=1), (x,)

    def route(x, last=False):
        arg = np.zeros(x.shape, dtype=int)
        for r in range(x.shape[0]):
            best = 0
            for j in range(x.shape[1]):
                if x[r, j] > x[r, best] or (last and x[r, j] == x[r, best]):
                    best = j
                arg[r, j] = best
        return arg

    def grads(d, c, last=False):
        (x,) = c
        arg = route(x, last)
        dx = np.zeros_like(x)
        for r in range(x.shape[0]):
            np.add.at(dx[r], arg[r], d[r])
        return (dx,)

    def identity(d, c):
        (x,) = c
        return (d * (x == np.maximum.accumulate(x, axis=1)),)

    def global_argmax(d, c):
        (x,) = c
        dx = np.zeros_like(x)
        dx[np.arange(x.shape[0]), np.argmax(x, 1)] = d.sum(1)
        return (dx,)

    def make(rng):
        x = rng.normal(size=(3, 8))
        x[0] = [1, 3, 3, 2, 3, 0, 4, 4]  # plateaus and repeated running max
        x[1, 3] = x[1, 1] = x[1].max() + 1.0
        return {"x": x}

    return _fam("cummax_plateau", "running maximum with repeated maxima (plateaus): at ties the "
                "first or latest maximiser are both valid routes", fwd, grads, make,
                {"identity_mask": identity, "global_argmax": global_argmax},
                alternates={"correct_latest": lambda d, c: grads(d, c, last=True)}, ties=True)


def abs_times_param_kinks() -> Family:
    def fwd(x, y):
        return np.abs(x) * y + np.maximum(x - 1.0, 0.0), (x, y)

    def grads(d, c, y_missing=False, conv=0.0):
        x, y = c
        sx = np.sign(x)
        g = (sx if y_missing else sx * y) + np.where(x > 1, 1.0, np.where(x == 1, conv, 0.0))
        return d * g, d * np.abs(x)

    def dy_signed(d, c):
        x, y = c
        return grads(d, c)[0], d * x

    def make(rng):
        x = rng.integers(-2, 4, size=(4, 3)).astype(float)
        x[0] = [0.0, 1.0, 0.0]
        x[3] = rng.normal(size=3) * 2
        return {"x": x, "y": rng.normal(size=(4, 3))}

    return _fam("abs_times_param_kinks", "|x|*y + relu(x-1) on integer-valued x (kinks at 0 and 1 "
                "hit exactly) while dy = |x| is smooth", fwd, grads, make,
                {"y_missing": lambda d, c: grads(d, c, y_missing=True), "dy_signed": dy_signed},
                alternates={"correct_relu_one": lambda d, c: grads(d, c, conv=1.0)})


def logit_clip_bounds() -> Family:
    EPS = 1e-3

    def fwd(p):
        c = np.clip(p, EPS, 1 - EPS)
        return np.log(c / (1 - c)), (p, c)

    def grads(d, cc, inclusive=True, ignore=False, one_over_p=False):
        p, c = cc
        inside = (p >= EPS) & (p <= 1 - EPS) if inclusive else (p > EPS) & (p < 1 - EPS)
        if ignore:
            inside = np.ones_like(p, bool)
        g = 1 / c if one_over_p else 1 / (c * (1 - c))
        return (d * np.where(inside, g, 0.0),)

    def make(rng):
        p = rng.uniform(0.01, 0.99, size=10)
        p[:5] = [0.0, EPS, 1 - EPS, 1.0, 2e-4]
        return {"p": p}

    return _fam("logit_clip_bounds", "logit(clip(p, 1e-3, 1-1e-3)) with p exactly at both clip "
                "bounds (one-sided), at 0 and 1 and inside the clamp (flat)", fwd, grads, make,
                {"clip_ignored": lambda d, c: grads(d, c, ignore=True),
                 "one_over_p": lambda d, c: grads(d, c, one_over_p=True)},
                alternates={"correct_exclusive": lambda d, c: grads(d, c, inclusive=False)})


def gem_pool_clamped() -> Family:
    EPS = 1e-6

    def fwd(x, p):
        c = np.maximum(x, EPS)
        m = np.mean(c ** p[0], axis=-1)
        y = m ** (1 / p[0])
        return y, (x, p, c, m, y)

    def grads(d, cc, outer=True, clamp=True, nmiss=False):
        x, p, c, m, y = cc
        pv = p[0]
        n = x.shape[-1]
        dx = (d * y ** (1 - pv))[..., None] * (c if clamp else x) ** (pv - 1) / (1 if nmiss else n)
        if clamp:
            dx = dx * (x > EPS)
        dm_dp = np.mean(c ** pv * np.log(c), axis=-1)
        dlogy = dm_dp / (pv * m) - (np.log(m) / pv**2 if outer else 0.0)
        dp = np.array([np.sum(d * y * dlogy)])
        return dx, dp

    def make(rng):
        x = rng.uniform(0.0, 2.0, size=(2, 3, 6))
        x[0, 0, :3] = [0.0, 1e-8, -0.5]  # clamped: flat within 1e-6 of 0
        return {"x": x, "p": np.array([3.0])}

    return _fam("gem_pool_clamped", "GeM pooling (mean clamp(x,1e-6)^p)^(1/p) with learnable p and "
                "entries at 0 and 1e-8 (flat, 1e-6 from a kink)", fwd, grads, make,
                {"dp_outer_missing": lambda d, c: grads(d, c, outer=False),
                 "pow_of_raw_x": lambda d, c: grads(d, c, clamp=False),
                 "n_missing": lambda d, c: grads(d, c, nmiss=True)})


# ----------------------------------------------------------------------------------------------
# 6. layout, dtype and scale


def f32_x_f64_w() -> Family:
    def fwd(x, W, b):
        h = np.tanh(x @ W + b)  # promotes to float64
        return h, (x, W, b, h)

    def grads(d, c, wt=True, mean_b=False, f16=False):
        x, W, b, h = c
        g = d * (1 - h * h)
        dx = g @ (W.T if wt else W)
        dx = dx.astype(np.float16 if f16 else np.float32).astype(np.float32)
        db = g.mean(0) if mean_b else g.sum(0)
        return dx, x.astype(np.float64).T @ g, db

    def make(rng):
        return {"x": rng.normal(size=(5, 3)).astype(np.float32),
                "W": rng.normal(size=(3, 3)), "b": rng.normal(size=3)}

    return _fam("f32_x_f64_w", "tanh(x W + b) with float32 activations and float64 parameters: "
                "dx is float32, the output float64", fwd, grads, make,
                {"W_not_transposed": lambda d, c: grads(d, c, wt=False),
                 "db_mean": lambda d, c: grads(d, c, mean_b=True),
                 "dx_via_f16": lambda d, c: grads(d, c, f16=True)},
                precision=("dx_via_f16",), truth_tol=1e-6)


def normalize_extreme_scale() -> Family:
    def safe_norm(x):
        s = np.max(np.abs(x), axis=1, keepdims=True)
        return s * np.sqrt(np.sum((x / s) ** 2, axis=1, keepdims=True))

    def fwd(a, b):
        na, nb = safe_norm(a), safe_norm(b)
        return np.concatenate([a / na, b / nb]), (a, b, na, nb)

    def one(d, x, n, proj=True):
        u = x / n
        return (d - (u * np.sum(u * d, 1, keepdims=True) if proj else 0.0)) / n

    def grads(d, c, naive=False, proj=True):
        a, b, na, nb = c
        if naive:
            na = np.sqrt(np.sum(a * a, 1, keepdims=True))
            nb = np.sqrt(np.sum(b * b, 1, keepdims=True))
        k = a.shape[0]
        return one(d[:k], a, na, proj), one(d[k:], b, nb, proj)

    def make(rng):
        return {"a": rng.normal(size=(3, 4)) * 1e160, "b": rng.normal(size=(3, 4)) * 1e-160}

    return _fam("normalize_extreme_scale", "row normalisation of a ~1e160 and b ~1e-160 (squares "
                "overflow / underflow; forward rescales): gradients ~1e-160 and ~1e160", fwd,
                grads, make, {"naive_norm": lambda d, c: grads(d, c, naive=True),
                              "projection_missing": lambda d, c: grads(d, c, proj=False)})


def reshape_order_F() -> Family:
    def fwd(x, W):
        X2 = x.reshape(4, 6, order="F")
        h = np.tanh(X2 @ W)
        return h, (x, W, X2, h)

    def grads(d, c, order="F", wT=True):
        x, W, X2, h = c
        g = d * (1 - h * h)
        dX2 = g @ (W.T if wT else W[::-1].T)
        return dX2.reshape(x.shape, order=order), X2.T @ g

    def make(rng):
        return {"x": np.asfortranarray(rng.normal(size=(3, 4, 2))), "W": rng.normal(size=(6, 2))}

    return _fam("reshape_order_F", "x.reshape(4, 6, order='F') of a Fortran-ordered input: the "
                "backward must reshape back with order='F' as well", fwd, grads, make,
                {"reshape_back_C": lambda d, c: grads(d, c, order="C"),
                 "W_rows_reversed": lambda d, c: grads(d, c, wT=False)})


# ----------------------------------------------------------------------------------------------
# 7. padding modes, pooling, shuffles


def _pad_conv_family(name, mode, bad_modes, what):
    P, K = 2, 5

    def fwd(x, w):
        xp = np.pad(x, ((0, 0), (P, P)), mode=mode)
        L = x.shape[1]
        out = sum(w[k] * xp[:, k:k + L] for k in range(K))
        return out, (x, w, xp)

    def grads(d, c, fold_mode=mode, flipw=False):
        x, w, xp = c
        L = x.shape[1]
        dxp = np.zeros_like(xp)
        for k in range(K):
            dxp[:, k:k + L] += w[K - 1 - k if flipw else k] * d
        idx = np.pad(np.arange(L), P, mode=fold_mode)
        dx = np.zeros_like(x)
        np.add.at(dx.T, idx, dxp.T)
        dw = np.array([np.sum(d * xp[:, k:k + L]) for k in range(K)])
        return dx, dw

    def crop(d, c):
        x, w, xp = c
        dx, dw = grads(d, c)
        L = x.shape[1]
        dxp = np.zeros_like(xp)
        for k in range(K):
            dxp[:, k:k + L] += w[k] * d
        return dxp[:, P:P + L], dw

    bugs = {f"fold_as_{m}": (lambda m: lambda d, c: grads(d, c, fold_mode=m))(m) for m in bad_modes}
    bugs["crop_no_fold"] = crop
    bugs["w_flipped_in_dx"] = lambda d, c: grads(d, c, flipw=True)

    def make(rng):
        return {"x": rng.normal(size=(2, 7)), "w": rng.normal(size=K)}

    return _fam(name, what, fwd, grads, make, bugs)


def circular_pad_conv1d() -> Family:
    return _pad_conv_family("circular_pad_conv1d", "wrap", ("reflect",),
                            "conv1d (k 5) over np.pad(mode='wrap', 2): padded cells fold back onto "
                            "the opposite end")


def reflect_pad_conv1d() -> Family:
    return _pad_conv_family("reflect_pad_conv1d", "reflect", ("symmetric", "edge"),
                            "conv1d (k 5) over np.pad(mode='reflect', 2): reflect excludes the edge "
                            "sample, symmetric includes it; a one-cell shift in the fold")


def avgpool_ceil_partial() -> Family:
    K, S = 3, 2

    def windows(L):
        nw = -(-(L - K) // S) + 1  # ceil mode
        return [(s, min(s + K, L)) for s in range(0, S * nw, S)]

    def fwd(x):
        W = windows(x.shape[1])
        return np.stack([x[:, a:b].mean(1) for a, b in W], axis=1), (x, W)

    def grads(d, c, full_div=False, drop_last=False, overwrite=False):
        x, W = c
        dx = np.zeros_like(x)
        for j, (a, b) in enumerate(W):
            if drop_last and j == len(W) - 1:
                continue
            v = d[:, j:j + 1] / (K if full_div else b - a)
            if overwrite:
                dx[:, a:b] = v
            else:
                dx[:, a:b] += v
        return (dx,)

    def make(rng):
        return {"x": rng.normal(size=(3, 8))}

    return _fam("avgpool_ceil_partial", "avg-pool k3 s2 in ceil mode on length 8: the last window "
                "holds 2 elements (divisor 2), overlapping windows share an element", fwd, grads,
                make, {"full_divisor": lambda d, c: grads(d, c, full_div=True),
                       "partial_window_dropped": lambda d, c: grads(d, c, drop_last=True),
                       "overlap_overwrite": lambda d, c: grads(d, c, overwrite=True)})


def pixel_shuffle() -> Family:
    R = 2

    def fwd(x):
        N, C, H, W = x.shape
        c = C // (R * R)
        y = x.reshape(N, c, R, R, H, W).transpose(0, 1, 4, 2, 5, 3).reshape(N, c, H * R, W * R)
        return np.tanh(y), (x, np.tanh(y))

    def grads(d, cc, perm=(0, 1, 3, 5, 2, 4)):
        x, t = cc
        N, C, H, W = x.shape
        c = C // (R * R)
        g = (d * (1 - t * t)).reshape(N, c, H, R, W, R).transpose(perm)
        return (g.reshape(x.shape),)

    def forward_perm(d, cc):  # the forward's own view applied to dout
        x, t = cc
        N, C, H, W = x.shape
        g = (d * (1 - t * t)).reshape(N, C // (R * R), R, R, H, W).transpose(0, 1, 4, 2, 5, 3)
        return (g.reshape(x.shape),)

    def make(rng):
        return {"x": rng.normal(size=(1, 8, 2, 3))}

    return _fam("pixel_shuffle", "depth-to-space (pixel shuffle r=2) then tanh: the backward is "
                "the inverse permutation; swapping the two r axes is a silent transpose", fwd,
                grads, make,
                {"r_axes_swapped": lambda d, c: grads(d, c, perm=(0, 1, 5, 3, 2, 4)),
                 "forward_perm_reused": forward_perm})


# ----------------------------------------------------------------------------------------------
# 8. dynamic programming, mixtures, gated units, features


def viterbi_maxplus() -> Family:
    def fwd(E, A):
        T, K = E.shape
        s = E[0].copy()
        bp = np.zeros((T, K), dtype=int)
        for t in range(1, T):
            cand = s[:, None] + A  # from i to j
            bp[t] = np.argmax(cand, axis=0)
            s = cand[bp[t], np.arange(K)] + E[t]
        z = [int(np.argmax(s))]
        for t in range(T - 1, 0, -1):
            z.append(int(bp[t, z[-1]]))
        z = z[::-1]
        return np.array(s.max()), (E, A, z)

    def grads(d, c, transpose=False, drop_last=False, greedy=False):
        E, A, z = c
        if greedy:
            z = list(np.argmax(E, axis=1))
        dE, dA = np.zeros_like(E), np.zeros_like(A)
        T = E.shape[0]
        for t in range(T - 1 if drop_last else T):
            dE[t, z[t]] += d
        for t in range(1, T):
            if transpose:
                dA[z[t], z[t - 1]] += d
            else:
                dA[z[t - 1], z[t]] += d
        return dE, dA

    def make(rng):
        return {"E": rng.normal(size=(6, 3)), "A": rng.normal(size=(3, 3))}

    return _fam("viterbi_maxplus", "Viterbi best-path score (max-plus DP with backpointers): the "
                "gradient is the indicator of the best path", fwd, grads, make,
                {"A_transposed": lambda d, c: grads(d, c, transpose=True),
                 "last_step_dropped": lambda d, c: grads(d, c, drop_last=True),
                 "greedy_path": lambda d, c: grads(d, c, greedy=True)})


def gmm_logpdf_far() -> Family:
    def fwd(x, mu, ls, pi):
        lw = pi - special.logsumexp(pi)
        z = (x[:, None] - mu[None]) / np.exp(ls)[None]
        lc = lw[None] - 0.5 * z * z - ls[None] - 0.5 * np.log(2 * np.pi)
        out = special.logsumexp(lc, axis=1)
        r = np.exp(lc - out[:, None])
        return out, (x, mu, ls, pi, z, r, lc)

    def grads(d, c, noshift=False, ls_m1=True, pi_soft=True):
        x, mu, ls, pi, z, r, lc = c
        if noshift:
            e = np.exp(lc)
            r = np.nan_to_num(e / e.sum(1, keepdims=True))
        sg = np.exp(ls)
        dr = d[:, None] * r
        dx = -np.sum(dr * z / sg[None], axis=1)
        dmu = np.sum(dr * z / sg[None], axis=0)
        dls = np.sum(dr * (z * z - (1.0 if ls_m1 else 0.0)), axis=0)
        w = np.exp(pi - special.logsumexp(pi))
        dpi = np.sum(dr, axis=0) - (np.sum(d) * w if pi_soft else 0.0)
        return dx, dmu, dls, dpi

    def make(rng):
        x = rng.normal(size=6) * 2
        x[0], x[1] = 80.0, -70.0  # tens of sigmas from every component
        return {"x": x, "mu": np.array([-1.0, 0.5, 2.0]), "ls": rng.normal(size=3) * 0.3,
                "pi": rng.normal(size=3)}

    return _fam("gmm_logpdf_far", "1-D Gaussian-mixture log-density with points 40 sigma out "
                "(component densities underflow; responsibilities need the shift)", fwd, grads,
                make, {"unshifted_resp": lambda d, c: grads(d, c, noshift=True),
                       "dls_minus1_missing": lambda d, c: grads(d, c, ls_m1=False),
                       "dpi_softmax_term_missing": lambda d, c: grads(d, c, pi_soft=False)})


def swiglu() -> Family:
    def fwd(x, W1, W2):
        a, b = x @ W1, x @ W2
        s = sig(a)
        h = a * s * b
        return h, (x, W1, W2, a, b, s)

    def grads(d, c, mode="ok"):
        x, W1, W2, a, b, s = c
        dsilu = s if mode == "sigmoid_only" else s * (1 + a * (1 - s))
        da = d * b * dsilu
        db = d * a * s
        if mode == "no_b_path":
            db = np.zeros_like(db)
        dx = da @ W1.T + db @ W2.T
        return dx, x.T @ da, x.T @ db

    def make(rng):
        x = rng.normal(size=(3, 4))
        x[0] *= 8.0  # saturating pre-activations
        return {"x": x, "W1": rng.normal(size=(4, 5)), "W2": rng.normal(size=(4, 5))}

    return _fam("swiglu", "SwiGLU silu(xW1) * xW2 with one row of saturating pre-activations", fwd,
                grads, make,
                {"silu_grad_as_sigmoid": lambda d, c: grads(d, c, "sigmoid_only"),
                 "value_path_missing": lambda d, c: grads(d, c, "no_b_path")})


def fourier_features_hf() -> Family:
    def fwd(x, B):
        z = 2 * np.pi * x @ B
        return np.concatenate([np.sin(z), np.cos(z)], axis=1), (x, B, z)

    def grads(d, c, two_pi=True, cos_sign=-1.0):
        x, B, z = c
        k = B.shape[1]
        g = np.cos(z) * d[:, :k] + cos_sign * np.sin(z) * d[:, k:]
        if two_pi:
            g = 2 * np.pi * g
        return g @ B.T, x.T @ g

    def make(rng):
        B = rng.normal(size=(2, 4)) * 30.0
        B[0, 0] = 300.0  # ~1900 rad per unit of x
        return {"x": rng.uniform(0, 1, size=(5, 2)), "B": B}

    return _fam("fourier_features_hf", "random Fourier features sin/cos(2 pi x B) with |B| up to "
                "300: curvature ~ 4e6 per unit^2 in x", fwd, grads, make,
                {"missing_2pi": lambda d, c: grads(d, c, two_pi=False),
                 "cos_deriv_sign": lambda d, c: grads(d, c, cos_sign=1.0)})


def squareplus_tails() -> Family:
    BB = 4.0

    def fwd(x):
        r = np.sqrt(x * x + BB)
        out = np.where(x >= 0, 0.5 * (x + r), 0.5 * BB / np.where(x >= 0, 1.0, r - x))
        return out, (x, r)

    def grads(d, c, naive=False, half=True):
        x, r = c
        if naive:
            g = 1 + x / r
        else:
            g = np.where(x >= 0, 1 + x / r, BB / (r * np.where(x >= 0, 1.0, r - x)))
        return (d * (0.5 * g if half else g),)

    def make(rng):
        x = rng.normal(size=10) * 3
        x[:4] = [-1e8, -3e4, 0.0, 1e6]
        return {"x": x}

    return _fam("squareplus_tails", "squareplus (x + sqrt(x^2+4))/2 written stably for x << 0 "
                "(x = -1e8: derivative 2e-16, the naive 1 + x/r rounds to 0)", fwd, grads, make,
                {"naive_one_plus": lambda d, c: grads(d, c, naive=True),
                 "missing_half": lambda d, c: grads(d, c, half=False)},
                precision=("naive_one_plus",))


def huge_feature_affine() -> Family:
    def fwd(x, w, b):
        return x * w + b, (x, w, b)

    def grads(d, c, elem=False, db_rev=False):
        x, w, b = c
        dx = d * w
        if elem:
            dx = dx.copy()
            dx[1, 2] = 0.5 * dx[1, 2]  # one element halved
        return dx, d * x, (d[::-1].copy() if db_rev else d.copy())

    def make(rng):
        x = rng.normal(size=(3, 4))
        x[0, 0] = 3e155  # one raw, unnormalised feature (x^2 overflows float64)
        return {"x": x, "w": rng.normal(size=(3, 4)), "b": rng.normal(size=(3, 4))}

    return _fam("huge_feature_affine", "elementwise x*w + b where one x element is 3e155 (its "
                "square overflows float64) and the others are O(1)", fwd, grads, make,
                {"dx_one_element_halved": lambda d, c: grads(d, c, elem=True),
                 "db_rows_reversed": lambda d, c: grads(d, c, db_rev=True),
                 "dx_sign": lambda d, c: (-grads(d, c)[0], *grads(d, c)[1:])})


def softmax_ce_unshifted() -> Family:
    Y = np.array([0, 2, 1, 3])

    def fwd(z):
        m = z.max(1, keepdims=True)
        lse = (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
        return lse - z[np.arange(4), Y], (z, np.exp(z - m[:, :1]) / np.exp(z - m).sum(1, keepdims=True))

    def onehot():
        o = np.zeros((4, 4))
        o[np.arange(4), Y] = 1
        return o

    def bwd(d, c):
        z, p = c
        return (d[:, None] * (p - onehot()),)

    def unshifted_nan_to_num(d, c):  # exp overflows in float64 (inf/inf), NaN "fixed" to 0
        z, p = c
        e = np.exp(z)
        return (d[:, None] * (np.nan_to_num(e / e.sum(1, keepdims=True)) - onehot()),)

    def unshifted(d, c):
        z, p = c
        e = np.exp(z)
        return (d[:, None] * (e / e.sum(1, keepdims=True) - onehot()),)

    def make(rng):
        z = rng.normal(size=(4, 4)) * 2
        z[0] += 800.0  # logits of an unnormalised head: exp overflows float64, not longdouble
        z[2] -= 760.0  # all exp underflow to 0: 0/0
        return {"z": z}

    return _fam("softmax_ce_unshifted", "softmax cross-entropy with a row of logits ~800 and one "
                "~-760: exp overflows/underflows in float64 but not in longdouble", fwd, bwd,
                make, {"unshifted_nan_to_num": unshifted_nan_to_num, "unshifted": unshifted})


def softmax_f32_unshifted() -> Family:
    def fwd(z, v):
        m = z.max(1, keepdims=True)
        e = np.exp(z - m)
        p = e / e.sum(1, keepdims=True)
        return p @ v, (z, v, p)

    def bwd(d, c, unshift=False):
        z, v, p = c
        if unshift:
            e = np.exp(z)
            p = np.nan_to_num(e / e.sum(1, keepdims=True))
        dp = d @ v.T
        dz = p * (dp - (p * dp).sum(1, keepdims=True))
        return dz.astype(np.float32), (p.T @ d).astype(np.float32)

    def make(rng):
        z = (rng.normal(size=(3, 5)) * 2).astype(np.float32)
        z[1] += np.float32(92.0)  # exp(92) overflows float32 (max ~3.4e38), fine in float64
        return {"z": z, "v": rng.normal(size=(5, 2)).astype(np.float32)}

    return _fam("softmax_f32_unshifted", "float32 attention-style softmax(z) @ v with one row of "
                "logits ~92: exp overflows float32 only", fwd, bwd, make,
                {"unshifted_nan_to_num": lambda d, c: bwd(d, c, unshift=True)}, truth_tol=1e-5)


def broadcast_readonly_input() -> Family:
    def fwd(x, w):
        t = np.tanh(x)
        return t * w, (x, w, t)

    def grads(d, c, row=False):
        x, w, t = c
        dx = d * w * (1 - t * t)
        if row:  # "x is really one row": gradient summed over the broadcast axis, then spread
            dx = np.broadcast_to(dx.sum(0, keepdims=True), dx.shape).copy()
        return dx, d * t

    def make(rng):
        x = np.broadcast_to(rng.normal(size=5), (4, 5))  # zero-stride, read-only view
        w = rng.normal(size=(5, 4)).T  # a transposed (Fortran-ordered) view
        return {"x": x, "w": w}

    return _fam("broadcast_readonly_input", "x passed as a read-only zero-stride np.broadcast_to "
                "view and w as a transposed view: every element is an independent input", fwd,
                grads, make, {"row_summed": lambda d, c: grads(d, c, row=True),
                              "dw_untransposed": lambda d, c: (grads(d, c)[0], np.ascontiguousarray(
                                  (d * c[2]).T).reshape(d.shape))})

def lse_pool_800() -> Family:
    def fwd(x):
        m = x.max(1, keepdims=True)
        return (m + np.log(np.exp(x - m).sum(1, keepdims=True)))[:, 0], (x,)

    def bwd(d, c):
        (x,) = c
        e = np.exp(x - x.max(1, keepdims=True))
        return (d[:, None] * e / e.sum(1, keepdims=True),)

    def unshifted_nan_to_num(d, c):  # exp(800) = inf in float64: inf/inf -> NaN -> 0
        (x,) = c
        e = np.exp(x)
        return (d[:, None] * np.nan_to_num(e / e.sum(1, keepdims=True)),)

    def uniform_fallback(d, c):  # NaN rows replaced by a uniform 1/n
        (x,) = c
        e = np.exp(x)
        p = e / e.sum(1, keepdims=True)
        p = np.where(np.isnan(p), 1.0 / x.shape[1], p)
        return (d[:, None] * p,)

    def make(rng):
        x = rng.normal(size=(2, 4)) + 800.0  # LogSumExp pooling of unnormalised scores
        return {"x": x}

    return _fam("lse_pool_800", "LogSumExp pooling of scores ~800: a backward without the max "
                "shift overflows in float64 only (exact in longdouble)", fwd, bwd, make,
                {"unshifted_nan_to_num": unshifted_nan_to_num,
                 "uniform_fallback": uniform_fallback})

# ----------------------------------------------------------------------------------------------
# the catalogue

FAMILIES: tuple[Callable[[], Family], ...] = (
    masked_lse_allmasked, reduceat_empty_segment, take_along_dups, einsum_diag_trace,
    welford_var, kahan_dot_scalar, pairwise_sum_f32, mse_scalar_batch,
    cholesky_lower_read, trisolve_lower_junk, eigh_spectral_degenerate, householder_reflect,
    polar_hypot_atan2, atan2_near_cut, exprel_series, legendre_endpoints, bspline_quadratic,
    entmax15_exact, ste_round_pair, hard_attention_argmax, pinball_ties, cummax_plateau,
    abs_times_param_kinks, logit_clip_bounds, gem_pool_clamped,
    f32_x_f64_w, normalize_extreme_scale, reshape_order_F,
    circular_pad_conv1d, reflect_pad_conv1d, avgpool_ceil_partial, pixel_shuffle,
    viterbi_maxplus, gmm_logpdf_far, swiglu, fourier_features_hf, squareplus_tails,
    huge_feature_affine, softmax_ce_unshifted, softmax_f32_unshifted, broadcast_readonly_input,
    lse_pool_800,
)

SYNTH_SIZES = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-9)
SYNTH_PATTERNS = ("element", "slice", "uniform", "noise")
SYNTH_PER_FAMILY = 3


def _plan(fi: int, n: int) -> list[tuple[float, str, int]]:
    return [(SYNTH_SIZES[(3 * j + fi) % len(SYNTH_SIZES)],
             SYNTH_PATTERNS[(j + fi) % len(SYNTH_PATTERNS)], (j + fi) % n)
            for j in range(SYNTH_PER_FAMILY)]


families, family, cases = catalogue(FAMILIES, _plan, wide=True)


# ----------------------------------------------------------------------------------------------
# What this catalogue found (bench/adversary.py --catalog adversary3_catalog --seeds 1; the full
# table is reports/adversary3.txt). Ground truth for each: the analytic formula, checked against
# 50-digit mpmath or Richardson float64 differences of the forward (per output element).
#
# 1. A backward that is wrong only in float64 passes with detectable = nan: gmm_logpdf_far/
#    unshifted_resp (size 1.0, all modes), softmax_ce_unshifted/unshifted_nan_to_num (0.66),
#    lse_pool_800/unshifted_nan_to_num (all-zero gradient reported 'zero': "no effect"),
#    exprel_series/naive_closed_form (1e-2; the worst elements are dropped from the comparison
#    although max_abs_error > budget). All three are exact in longdouble (no overflow/underflow,
#    less cancellation), and the float64/longdouble disagreement of the backward seems to be taken
#    as its rounding noise (budget = 4x the error, err/budget = 0.25).
# 2. One input element above ~1.34e154 (its square overflows): detectable = nan and status pass
#    for wrong gradients (huge_feature_affine/dx_one_element_halved, normalize_extreme_scale/
#    projection_missing), 'zero' ("b has no effect on the output") for a bias that moves 11 of
#    12 outputs exactly; mode='directional' raises InvalidArgument ("`phi` must return a finite
#    value, got nan at t=0.0") on finite, correct layers (polar_hypot_atan2 too).
# 3. atan2_near_cut/atan2_sign passes (detectable nan) in directional mode, where the correct
#    backward is reported 'kink': every direction crosses the cut, no evidence, yet 'pass'.
