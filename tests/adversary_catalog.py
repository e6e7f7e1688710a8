# ruff: noqa: RUF059
# (the catalogue imitates course code: each backward unpacks the whole cache)
"""An adversarial catalogue of NumPy layers for gradcheck, written without reference to its engine.

Each :class:`Family` is a layer in the course convention (``forward(**inputs) -> (out, cache)``,
``backward(dout, cache) -> tuple`` of gradients in the order of the forward's array parameters),
an inputs factory ``make_inputs(rng)``, realistic bugs (``bugs``) and, where a selection or a
threshold admits more than one valid subgradient, further valid conventions (``alternates``).
:func:`cases` expands every family into :class:`Case` objects: the correct layer, its valid
alternates, the realistic bugs and four synthetic perturbations of the correct gradient (relative
sizes 1e-2, 1e-4, 1e-6, 1e-9; patterns one element, one slice, a uniform factor, seeded noise,
rotated across families and gradients).

Ground truth for every correct backward is independent of gradcheck: ``bench/adversary_truth.py``
(torch autograd in float64 or mpmath). ``bench/adversary.py`` measures gradcheck's verdicts.

Only numpy and scipy are imported here; the module imports in well under a second.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import linalg as sla
from scipy import special

Array = np.ndarray
Forward = Callable[..., tuple[Any, Any]]
Backward = Callable[[Any, Any], tuple[Array, ...]]
Inputs = Callable[[np.random.Generator], dict[str, Array]]

F16, F32, F64 = np.float16, np.float32, np.float64
SQRT_PI = math.sqrt(math.pi)
LN2 = math.log(2.0)


@dataclass(frozen=True)
class Family:
    name: str
    what: str                       # one line: what the layer is and why it is hard
    forward: Forward
    backward: Backward              # the correct backward
    make_inputs: Inputs
    bugs: dict[str, Backward]       # realistic mistakes
    alternates: dict[str, Backward] = field(default_factory=dict)  # other valid conventions
    consts: dict[str, Any] = field(default_factory=dict)  # constants the forward closes over
    truth_tol: float = 1e-12        # relative (inf-norm) agreement required with ground truth
    ties: bool = False              # truth also compares tie-group sums (selection ops)
    bug_notes: dict[str, str] = field(default_factory=dict)
    precision: tuple[str, ...] = ()  # bugs that are a loss of precision rather than of logic


@dataclass(frozen=True)
class Case:
    family: str
    name: str                       # "correct", "correct_<convention>", a bug name, "synth_..."
    kind: str                       # "correct" | "bug" | "precision" | "synthetic"
    forward: Forward
    backward: Backward
    make_inputs: Inputs
    correct_backward: Backward
    note: str = ""

    @property
    def is_correct(self) -> bool:
        return self.kind == "correct"


# ----------------------------------------------------------------------------------------------
# helpers


def _quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Silence floating-point warnings inside a backward (bugs such as 0/0 are by design).

    Forwards are left as users write them: their warnings (a cast that drops an imaginary part,
    log(0) in an np.where branch) are part of what a checker may observe."""

    @functools.wraps(fn)  # keeps the signature: adapters read the forward's parameter names
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return wrapped


def _revcumsum(a: Array, axis: int) -> Array:
    return np.flip(np.cumsum(np.flip(a, axis=axis), axis=axis), axis=axis)


def _complex_step_grads(forward: Forward, inputs: dict[str, Array], dout: Array,
                        h: float = 1e-30) -> tuple[Array, ...]:
    """What a naive complex step claims: imag(<dout, f(x + i h e_k)>) / h, element by element.

    Used as a *bug*: a backward that agrees with a fooled complex step (cholesky, slogdet and
    vdot do not continue analytically)."""
    grads = []
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, a in inputs.items():
            g = np.zeros(a.shape, dtype=np.float64)
            for idx in np.ndindex(a.shape):
                z = {k: np.array(v, dtype=np.complex128) for k, v in inputs.items()}
                z[name][idx] += 1j * h
                out, _ = forward(**z)
                g[idx] = np.sum(np.asarray(dout) * np.imag(out)) / h
            grads.append(g.astype(a.dtype))
    return tuple(grads)


def _group_split(x: Array, sel: Array) -> Array:
    """Spread a per-element weight `sel` equally over the elements of `x` equal within a row."""
    out = np.zeros_like(sel, dtype=np.float64)
    flat_x = x.reshape(-1, x.shape[-1])
    flat_s = sel.reshape(-1, x.shape[-1])
    flat_o = out.reshape(-1, x.shape[-1])
    for r in range(flat_x.shape[0]):
        for v in np.unique(flat_x[r]):
            m = flat_x[r] == v
            flat_o[r, m] = flat_s[r, m].sum() / m.sum()
    return out


# ----------------------------------------------------------------------------------------------
# 1. special functions in their tails


def erfc_tail() -> Family:
    def fwd(x):
        return special.erfc(x), (x,)

    def bwd(dout, c):
        (x,) = c
        return (dout * (-2.0 / SQRT_PI) * np.exp(-x * x),)

    def erf_sign(dout, c):
        (x,) = c
        return (dout * (2.0 / SQRT_PI) * np.exp(-x * x),)

    def missing_2(dout, c):
        (x,) = c
        return (dout * (-1.0 / SQRT_PI) * np.exp(-x * x),)

    def tail_zeroed(dout, c):  # "underflow guard": tails set to zero beyond 4
        (x,) = c
        return (np.where(x > 4.0, 0.0, dout * (-2.0 / SQRT_PI) * np.exp(-x * x)),)

    def make(rng):
        x = rng.uniform(-3.0, 26.0, size=(4, 5))
        x.flat[:6] = [0.0, 4.1, 5.0, 10.0, 26.5, 27.0]  # 27: erfc and its derivative subnormal
        return {"x": x}

    return Family("erfc_tail", "erfc for x in [-3, 27]: gradients from 1.1 down to subnormal "
                  "2e-317 in one tensor", fwd, _quiet(bwd), make,
                  {"erf_sign": _quiet(erf_sign), "missing_2": _quiet(missing_2),
                   "tail_zeroed": _quiet(tail_zeroed)})


def log_erfc_probit() -> Family:
    def fwd(x):
        pos = x > 0
        with np.errstate(divide="ignore"):  # the unused branch takes log(0) far out
            out = np.where(pos, np.log(special.erfcx(x)) - x * x, np.log(special.erfc(x)))
        return out, (x,)

    def bwd(dout, c):
        (x,) = c
        return (dout * (-2.0 / SQRT_PI) / special.erfcx(x),)

    def naive_ratio(dout, c):  # exp(-x^2)/erfc(x): 0/0 beyond x ~ 26.5
        (x,) = c
        return (dout * (-2.0 / SQRT_PI) * np.exp(-x * x) / special.erfc(x),)

    def asymptotic_2x(dout, c):  # leading asymptotic term -2x used for x > 5
        (x,) = c
        return (dout * np.where(x > 5.0, -2.0 * x, (-2.0 / SQRT_PI) / special.erfcx(x)),)

    def make(rng):
        x = rng.uniform(-4.0, 40.0, size=(3, 5))
        x.flat[:4] = [0.0, 5.5, 27.0, 40.0]
        return {"x": x}

    return Family("log_erfc_probit", "log erfc(x) via erfcx in the tail (log-probit); np.where "
                  "evaluates a -inf branch; slopes -2x far out", fwd, _quiet(bwd), make,
                  {"naive_ratio": _quiet(naive_ratio), "asymptotic_2x": _quiet(asymptotic_2x)})


def logaddexp_far() -> Family:
    def fwd(x, y):
        out = np.logaddexp(x, y)
        return out, (x, y, out)

    def bwd(dout, c):
        x, y, out = c
        return dout * np.exp(x - out), dout * np.exp(y - out)

    def alt_expit(dout, c):
        x, y, _ = c
        return dout * special.expit(x - y), dout * special.expit(y - x)

    def swapped(dout, c):
        x, y, _ = c
        return dout * special.expit(y - x), dout * special.expit(x - y)

    def hardmax(dout, c):
        x, y, _ = c
        return dout * (x >= y), dout * (y > x)

    def naive_ratio(dout, c):
        x, y, _ = c
        ex, ey = np.exp(x), np.exp(y)
        return dout * ex / (ex + ey), dout * ey / (ex + ey)

    def make(rng):
        x = rng.uniform(-1000.0, 1000.0, size=(2, 4))
        d = rng.uniform(-60.0, 60.0, size=(2, 4))
        d.flat[:6] = [-745.0, -720.0, 0.0, 1e-9, 700.0, 30.0]
        return {"x": x, "y": x + d}

    return Family("logaddexp_far", "logaddexp with |x|~1e3 and gaps up to 745: gradients "
                  "1 .. 5e-324 (subnormal), no complex loop", fwd, _quiet(bwd), make,
                  {"swapped": _quiet(swapped), "hardmax": _quiet(hardmax),
                   "naive_ratio": _quiet(naive_ratio)},
                  alternates={"correct_expit": _quiet(alt_expit)})


def softplus_threshold() -> Family:
    T = 20.0

    def fwd(x):
        return np.where(x > T, x, np.log1p(np.exp(x))), (x,)

    def bwd(dout, c):
        (x,) = c
        return (dout * np.where(x > T, 1.0, special.expit(x)),)

    def smooth_everywhere(dout, c):  # derivative of the other branch: off by e^-20 ~ 2e-9
        (x,) = c
        return (dout * special.expit(x),)

    def wrong_branch_zero(dout, c):
        (x,) = c
        return (dout * np.where(x > T, 0.0, special.expit(x)),)

    def log1p_chain_dropped(dout, c):  # d log1p(u) = 1/(1+u), the exp(x) factor forgotten
        (x,) = c
        return (dout * np.where(x > T, 1.0, 1.0 / (1.0 + np.exp(x))),)

    def make(rng):
        x = rng.uniform(-40.0, 40.0, size=(4, 5))
        x.flat[:6] = [19.99, 20.01, -19.99, 0.0, 30.0, -30.0]
        return {"x": x}

    return Family("softplus_threshold", "torch-style softplus with threshold 20 (a 2e-9 jump in "
                  "the forward); a bug of size e^-20 in the linear branch", fwd,
                  _quiet(bwd), make,
                  {"smooth_everywhere": _quiet(smooth_everywhere),
                   "wrong_branch_zero": _quiet(wrong_branch_zero),
                   "log1p_chain_dropped": _quiet(log1p_chain_dropped)},
                  precision=("smooth_everywhere",),
                  bug_notes={"smooth_everywhere": "expit(x) = 1 - 2e-9 where the branch is x"})


def log1mexp() -> Family:
    def fwd(a):
        with np.errstate(divide="ignore"):
            out = np.where(a < LN2, np.log(-np.expm1(-a)), np.log1p(-np.exp(-a)))
        return out, (a,)

    def bwd(dout, c):
        (a,) = c
        return (dout / np.expm1(a),)

    def cancellation(dout, c):  # 1 - exp(-a) loses digits for tiny a
        (a,) = c
        e = np.exp(-a)
        return (dout * e / (1.0 - e),)

    def asymptotic_inv_a(dout, c):  # 1/a for a < 1e-3: off by ~1/2 on values up to 1e10
        (a,) = c
        return (dout * np.where(a < 1e-3, 1.0 / a, 1.0 / np.expm1(a)),)

    def sign(dout, c):
        (a,) = c
        return (-dout / np.expm1(a),)

    def make(rng):
        a = 10.0 ** rng.uniform(-10.0, np.log10(50.0), size=(3, 5))
        a.flat[:4] = [1e-10, LN2, 50.0, 1e-3]
        return {"a": a}

    return Family("log1mexp", "log(1-exp(-a)) (Maechler): gradient 1/expm1(a) spans 1e10 .. 2e-22; "
                  "a precision bug of ~1e-7", fwd, _quiet(bwd), make,
                  {"cancellation": _quiet(cancellation),
                   "asymptotic_inv_a": _quiet(asymptotic_inv_a), "sign": _quiet(sign)},
                  precision=("cancellation", "asymptotic_inv_a"))


def lbeta_digamma() -> Family:
    def fwd(a, b):
        return special.gammaln(a) + special.gammaln(b) - special.gammaln(a + b), (a, b)

    def bwd(dout, c):
        a, b = c
        pab = special.psi(a + b)
        return dout * (special.psi(a) - pab), dout * (special.psi(b) - pab)

    def dropped_psi_ab(dout, c):
        a, b = c
        return dout * special.psi(a), dout * (special.psi(b) - special.psi(a + b))

    def log_for_digamma(dout, c):  # psi(a) ~ log(a) for "large" a
        a, b = c
        return dout * (np.log(a) - np.log(a + b)), dout * (special.psi(b) - special.psi(a + b))

    def swapped(dout, c):
        da, db = bwd(dout, c)
        return db, da

    def make(rng):
        return {"a": 10.0 ** rng.uniform(1.0, 3.0, size=(2, 4)),
                "b": rng.uniform(0.5, 5.0, size=(2, 4))}

    return Family("lbeta_digamma", "log Beta(a, b) with a up to 1e3: forward cancels ~6e3 to ~20, "
                  "no complex or long-double loop", fwd, _quiet(bwd), make,
                  {"dropped_psi_ab": _quiet(dropped_psi_ab),
                   "log_for_digamma": _quiet(log_for_digamma), "swapped": _quiet(swapped)},
                  precision=("log_for_digamma",),
                  truth_tol=1e-11)


def bce_logits_tf() -> Family:
    def fwd(x, t):
        out = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        return out, (x, t)

    def bwd(dout, c):
        x, t = c
        return dout * (special.expit(x) - t), -dout * x

    def dropped_sign(dout, c):  # d/dx log1p(exp(-|x|)) without sign(x)
        x, t = c
        return dout * ((x > 0) - t - special.expit(-np.abs(x))), -dout * x

    def dt_sign(dout, c):
        x, t = c
        return dout * (special.expit(x) - t), dout * x

    def log_term_dropped(dout, c):
        x, t = c
        return dout * ((x > 0) - t), -dout * x

    def make(rng):
        x = rng.uniform(-50.0, 50.0, size=(4, 5))
        x.flat[:5] = [0.0, 0.0, 1e-12, -1e-12, 37.0]
        return {"x": x, "t": rng.uniform(0.0, 1.0, size=(4, 5))}

    return Family("bce_logits_tf", "TF's BCE-with-logits max(x,0)-xt+log1p(exp(-|x|)): a smooth "
                  "function written with abs/max, evaluated exactly at 0", fwd,
                  _quiet(bwd), make,
                  {"dropped_sign": _quiet(dropped_sign), "dt_sign": _quiet(dt_sign),
                   "log_term_dropped": _quiet(log_term_dropped)})


def periodic_time_gate() -> Family:
    OMEGA = 0.7

    def fwd(w, t):
        s = special.expit(w)
        return s * np.sin(OMEGA * t), (w, t, s)

    def bwd(dout, c):
        w, t, s = c
        return dout * s * (1 - s) * np.sin(OMEGA * t), dout * s * OMEGA * np.cos(OMEGA * t)

    def missing_omega(dout, c):
        w, t, s = c
        return dout * s * (1 - s) * np.sin(OMEGA * t), dout * s * np.cos(OMEGA * t)

    def cos_sign(dout, c):
        w, t, s = c
        return dout * s * (1 - s) * np.sin(OMEGA * t), -dout * s * OMEGA * np.cos(OMEGA * t)

    def sigmoid_prime_as_s(dout, c):
        w, t, s = c
        return dout * s * np.sin(OMEGA * t), dout * s * OMEGA * np.cos(OMEGA * t)

    def make(rng):
        return {"w": rng.normal(0.0, 2.0, size=6), "t": rng.uniform(1e4, 1e5, size=6)}

    return Family("periodic_time_gate", "expit(w)*sin(0.7 t) with timestamps t ~ 1e4..1e5: period "
                  "9 vs element scale 1e5, and expit has no complex loop", fwd,
                  _quiet(bwd), make,
                  {"missing_omega": _quiet(missing_omega), "cos_sign": _quiet(cos_sign),
                   "sigmoid_prime_as_s": _quiet(sigmoid_prime_as_s)}, consts={"omega": OMEGA})


# ----------------------------------------------------------------------------------------------
# 2. mixed precision (float64 in and out, float32/float16 inside)


def mp_linear_f32() -> Family:
    def fwd(x, w, b):
        xf, wf, bf = x.astype(F32), w.astype(F32), b.astype(F32)
        return (xf @ wf + bf).astype(F64), (xf, wf)

    def bwd(dout, c):
        xf, wf = c
        d = dout.astype(F32)
        return (d @ wf.T).astype(F64), (xf.T @ d).astype(F64), d.sum(axis=0).astype(F64)

    def loss_scale_not_undone(dout, c):  # dynamic loss scaling: dw never unscaled
        xf, wf = c
        S = F32(1024.0)
        d = dout.astype(F32) * S
        return (d @ wf.T / S).astype(F64), (xf.T @ d).astype(F64), (d.sum(axis=0) / S).astype(F64)

    def fp16_backward(dout, c):
        xf, wf = c
        d = dout.astype(F16)
        return ((d @ wf.T.astype(F16)).astype(F64), (xf.T.astype(F16) @ d).astype(F64),
                d.sum(axis=0).astype(F64))

    def db_mean(dout, c):
        xf, wf = c
        d = dout.astype(F32)
        return (d @ wf.T).astype(F64), (xf.T @ d).astype(F64), d.mean(axis=0).astype(F64)

    def make(rng):
        return {"x": rng.normal(size=(2, 3)), "w": rng.normal(size=(3, 2)),
                "b": rng.normal(size=2)}

    return Family("mp_linear_f32", "autocast-style linear: float64 in/out, float32 matmul inside "
                  "(the cast drops the complex step's imaginary part)", fwd, _quiet(bwd),
                  make, {"loss_scale_not_undone": _quiet(loss_scale_not_undone),
                         "fp16_backward": _quiet(fp16_backward), "db_mean": _quiet(db_mean)},
                  precision=("fp16_backward",),
                  truth_tol=2e-6)


def mp_softmax_f32() -> Family:
    def fwd(x):
        z = x.astype(F32)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        return p.astype(F64), (p,)

    def bwd(dout, c):
        (p,) = c
        d = dout.astype(F32)
        return ((p * (d - (d * p).sum(axis=1, keepdims=True))).astype(F64),)

    def dropped_sum_term(dout, c):
        (p,) = c
        return ((p * dout.astype(F32)).astype(F64),)

    def sum_wrong_axis(dout, c):
        (p,) = c
        d = dout.astype(F32)
        return ((p * (d - (d * p).sum(axis=0, keepdims=True))).astype(F64),)

    def fp16_backward(dout, c):
        (p,) = c
        p16, d = p.astype(F16), dout.astype(F16)
        return ((p16 * (d - (d * p16).sum(axis=1, keepdims=True))).astype(F64),)

    def make(rng):
        return {"x": rng.normal(0.0, 3.0, size=(3, 5))}

    return Family("mp_softmax_f32", "softmax computed in float32 for float64 logits (autocast "
                  "op list): forward resolution 6e-8", fwd, _quiet(bwd), make,
                  {"dropped_sum_term": _quiet(dropped_sum_term),
                   "sum_wrong_axis": _quiet(sum_wrong_axis),
                   "fp16_backward": _quiet(fp16_backward)},
                  precision=("fp16_backward",),
                  truth_tol=2e-6)


def mp_layerscale_f16() -> Family:
    ALPHA = 0.01

    def fwd(x):
        h = np.tanh(x.astype(F16)).astype(F64)
        return x + ALPHA * h, (x,)

    def bwd(dout, c):
        (x,) = c
        t = np.tanh(x.astype(F32))
        return (dout * (F32(1.0) + F32(ALPHA) * (F32(1.0) - t * t)).astype(F64),)

    def forgot_residual(dout, c):
        (x,) = c
        t = np.tanh(x.astype(F32))
        return (dout * (F32(ALPHA) * (F32(1.0) - t * t)).astype(F64),)

    def wrong_layerscale(dout, c):
        (x,) = c
        t = np.tanh(x.astype(F32))
        return (dout * (F32(1.0) + F32(0.1) * (F32(1.0) - t * t)).astype(F64),)

    def tanh_prime_unsquared(dout, c):
        (x,) = c
        t = np.tanh(x.astype(F32))
        return (dout * (F32(1.0) + F32(ALPHA) * (F32(1.0) - t)).astype(F64),)

    def make(rng):
        return {"x": rng.normal(size=(3, 5))}

    return Family("mp_layerscale_f16", "x + 0.01*tanh(fp16(x)): the forward is a float16 "
                  "staircase on top of the identity; finite differences see steps", fwd,
                  _quiet(bwd), make,
                  {"forgot_residual": _quiet(forgot_residual),
                   "wrong_layerscale": _quiet(wrong_layerscale),
                   "tanh_prime_unsquared": _quiet(tanh_prime_unsquared)},
                  consts={"alpha": ALPHA}, truth_tol=2e-6)


# ----------------------------------------------------------------------------------------------
# 3. dtype-dependent code


def _normalize_fwd(x):
    eps = np.finfo(x.dtype).eps  # the guard depends on the dtype the layer is called with
    s = np.sqrt((x * x).sum(axis=1, keepdims=True) + eps)
    return x / s, (x, s)


def _normalize_bwd(dout, c):
    x, s = c
    return (dout / s - x * (dout * x).sum(axis=1, keepdims=True) / s ** 3,)


def _normalize_bugs():
    def eps_dropped_in_backward(dout, c):
        x, _ = c
        s = np.sqrt((x * x).sum(axis=1, keepdims=True))
        return (dout / s - x * (dout * x).sum(axis=1, keepdims=True) / s ** 3,)

    def missing_projection(dout, c):
        x, s = c
        return (dout / s,)

    def projection_sign(dout, c):
        x, s = c
        return (dout / s + x * (dout * x).sum(axis=1, keepdims=True) / s ** 3,)

    return {"eps_dropped_in_backward": _quiet(eps_dropped_in_backward),
            "missing_projection": _quiet(missing_projection),
            "projection_sign": _quiet(projection_sign)}


def dtype_eps_normalize() -> Family:
    def make(rng):
        x = rng.normal(size=(4, 6))
        return {"x": x * np.array([[1e-8], [3e-8], [1e-3], [1.0]])}

    return Family("dtype_eps_normalize", "x/sqrt(|x|^2 + finfo(x.dtype).eps) with rows of norm "
                  "1e-8: a wider dtype computes a different function", _normalize_fwd,
                  _quiet(_normalize_bwd), make, _normalize_bugs(), truth_tol=1e-12)


def dtype_eps_normalize_f32() -> Family:
    def make(rng):
        x = rng.normal(size=(4, 6))
        return {"x": (x * np.array([[2e-4], [5e-4], [1e-2], [1.0]])).astype(F32)}

    return Family("dtype_eps_normalize_f32", "the same guard on float32 inputs (eps 1.2e-7 vs "
                  "rows with |x|^2 ~ 1e-7); float64 re-runs change the function",
                  _normalize_fwd, _quiet(_normalize_bwd), make, _normalize_bugs(),
                  truth_tol=1e-5)


def dtype_promote_branch() -> Family:
    def fwd(x, w):
        if x.dtype != np.float64:  # "promote half, single (and anything else) to double"
            x = x.astype(np.float64)
        t = np.tanh(x)
        return t * w, (x, w, t)

    def bwd(dout, c):
        x, w, t = c
        return dout * w * (1 - t * t), (dout * t).sum(axis=0)

    def sech_not_squared(dout, c):
        x, w, t = c
        return dout * w / np.cosh(x), (dout * t).sum(axis=0)

    def dw_uses_x(dout, c):
        x, w, t = c
        return dout * w * (1 - t * t), (dout * x).sum(axis=0)

    def dx_zero(dout, c):  # what a complex step fooled by the cast reports
        x, w, t = c
        return np.zeros_like(x), (dout * t).sum(axis=0)

    def make(rng):
        return {"x": rng.normal(size=(3, 4)), "w": rng.normal(size=4)}

    return Family("dtype_promote_branch", "`if x.dtype != float64: x = x.astype(float64)`: complex "
                  "inputs lose their imaginary part, long double is cast down", fwd,
                  _quiet(bwd), make,
                  {"sech_not_squared": _quiet(sech_not_squared), "dw_uses_x": _quiet(dw_uses_x),
                   "dx_zero": _quiet(dx_zero)})


def log_clamp_tiny() -> Family:
    def fwd(x, w):
        lx = np.log(np.maximum(x, np.finfo(x.dtype).tiny))
        return w * lx, (x, w, lx)

    def bwd(dout, c):
        x, w, lx = c
        return dout * w / x, dout * lx

    def backward_guard_eps(dout, c):  # a "safe" reciprocal in backward only
        x, w, lx = c
        return dout * w / np.maximum(x, 1e-12), dout * lx

    def dx_missing_w(dout, c):
        x, w, lx = c
        return dout / x, dout * lx

    def make(rng):
        x = 10.0 ** rng.uniform(-300.0, 0.0, size=(3, 4))
        x.flat[:2] = [1e-300, 1e-13]
        return {"x": x, "w": rng.normal(size=(3, 4))}

    return Family("log_clamp_tiny", "w*log(max(x, finfo.tiny)) with x down to 1e-300: gradients up "
                  "to 1e300, the guard constant depends on the dtype", fwd, _quiet(bwd),
                  make, {"backward_guard_eps": _quiet(backward_guard_eps),
                         "dx_missing_w": _quiet(dx_missing_w)})


def gelu_tanh_f32() -> Family:
    K0, K1 = math.sqrt(2.0 / math.pi), 0.044715

    def fwd(x):
        k0, k1 = x.dtype.type(K0), x.dtype.type(K1)  # constants cast with the dtype
        u = k0 * (x + k1 * x ** 3)
        t = np.tanh(u)
        return x.dtype.type(0.5) * x * (1 + t), (x, t)

    def bwd(dout, c):
        x, t = c
        k0, k1 = x.dtype.type(K0), x.dtype.type(K1)
        du = k0 * (1 + 3 * k1 * x * x)
        return (dout * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du),)

    def missing_cubic(dout, c):
        x, t = c
        du = x.dtype.type(K0)
        return (dout * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du),)

    def exact_gelu_derivative(dout, c):  # erf-GELU's derivative for the tanh approximation
        x, t = c
        xd = x.astype(F64)
        g = special.ndtr(xd) + xd * np.exp(-0.5 * xd * xd) / math.sqrt(2 * math.pi)
        return ((dout * g).astype(x.dtype),)

    def half_dropped(dout, c):
        x, t = c
        k0, k1 = x.dtype.type(K0), x.dtype.type(K1)
        du = k0 * (1 + 3 * k1 * x * x)
        return (dout * (0.5 * (1 + t) + x * (1 - t * t) * du),)

    def make(rng):
        return {"x": rng.normal(0.0, 2.0, size=(4, 6)).astype(F32)}

    return Family("gelu_tanh_f32", "tanh-approximate GELU in float32 with x.dtype.type constants "
                  "(a float64 re-run changes them)", fwd, _quiet(bwd), make,
                  {"missing_cubic": _quiet(missing_cubic),
                   "exact_gelu_derivative": _quiet(exact_gelu_derivative),
                   "half_dropped": _quiet(half_dropped)}, truth_tol=2e-6)


# ----------------------------------------------------------------------------------------------
# 4. attention with masks


def _softmax_rows(s):
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - m)
    return e / e.sum(axis=-1, keepdims=True)


def _attn_back(dout, p, q, k, v, scale):
    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = ds @ k * scale
    dk = np.swapaxes(ds, -1, -2) @ q * scale
    return dq, dk, dv, ds, dp


def _attn_causal_family(name: str, T: int, d: int, dv_: int, dtype: Any, tol: float) -> Family:
    CAUSAL = np.tril(np.ones((T, T), dtype=bool))

    def fwd(q, k, v):
        scale = q.dtype.type(1.0 / math.sqrt(d)) if q.dtype.kind == "f" else 1.0 / math.sqrt(d)
        s = np.where(CAUSAL, q @ k.T * scale, -np.inf)
        p = _softmax_rows(s)
        return p @ v, (q, k, v, p, scale)

    def bwd(dout, c):
        q, k, v, p, scale = c
        dq, dk, dv, _, _ = _attn_back(dout, p, q, k, v, scale)
        return dq, dk, dv

    def dk_not_transposed(dout, c):
        q, k, v, p, scale = c
        dq, dk, dv, ds, _ = _attn_back(dout, p, q, k, v, scale)
        return dq, ds @ q * scale, dv

    def dk_missing_scale(dout, c):
        q, k, v, p, scale = c
        dq, dk, dv, _, _ = _attn_back(dout, p, q, k, v, scale)
        return dq, dk / scale, dv

    def no_rowsum(dout, c):
        q, k, v, p, scale = c
        dv = p.T @ dout
        ds = p * (dout @ v.T)
        return ds @ k * scale, ds.T @ q * scale, dv

    def dv_not_transposed(dout, c):
        q, k, v, p, scale = c
        dq, dk, dv, _, _ = _attn_back(dout, p, q, k, v, scale)
        return dq, dk, p @ dout

    def make(rng):
        return {"q": rng.normal(size=(T, d)).astype(dtype),
                "k": rng.normal(size=(T, d)).astype(dtype),
                "v": rng.normal(size=(T, dv_)).astype(dtype)}

    return Family(name, f"causal self-attention, -inf mask via np.where, T={T}, "
                  f"{np.dtype(dtype).name}",
                  fwd, _quiet(bwd), make,
                  {"dk_not_transposed": _quiet(dk_not_transposed),
                   "dk_missing_scale": _quiet(dk_missing_scale), "no_rowsum": _quiet(no_rowsum),
                   "dv_not_transposed": _quiet(dv_not_transposed)},
                  consts={"T": T, "d": d}, truth_tol=tol)


def attn_causal_neginf() -> Family:
    return _attn_causal_family("attn_causal_neginf", 5, 4, 5, F64, 1e-12)


def attn_causal_f32() -> Family:
    f = _attn_causal_family("attn_causal_f32", 6, 4, 3, F32, 1e-5)
    bugs = dict(f.bugs)
    bugs.pop("dv_not_transposed")  # (T, dv) differs from (T, T): only a shape error there
    return Family(f.name, f.what, f.forward, f.backward, f.make_inputs, bugs, consts=f.consts,
                  truth_tol=f.truth_tol)


def attn_padmask_1e9() -> Family:
    B, T, d = 2, 3, 2
    KEYMASK = np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)  # the second sequence is all padding
    ADD = np.where(KEYMASK, 0.0, -1e9)[:, None, :]
    scale = 1.0 / math.sqrt(d)

    def fwd(q, k, v):
        s = q @ np.swapaxes(k, -1, -2) * scale + ADD
        p = _softmax_rows(s)
        return p @ v, (q, k, v, p)

    def bwd(dout, c):
        q, k, v, p = c
        dq, dk, dv, _, _ = _attn_back(dout, p, q, k, v, scale)
        return dq, dk, dv

    def mask_on_query_axis(dout, c):  # the padding mask applied to ds along the wrong axis
        q, k, v, p = c
        dv = np.swapaxes(p, -1, -2) @ dout
        dp = dout @ np.swapaxes(v, -1, -2)
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True)) * KEYMASK[:, :, None]
        return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, dv

    def dq_missing_scale(dout, c):
        q, k, v, p = c
        dq, dk, dv, _, _ = _attn_back(dout, p, q, k, v, scale)
        return dq / scale, dk, dv

    def no_rowsum(dout, c):
        q, k, v, p = c
        dv = np.swapaxes(p, -1, -2) @ dout
        ds = p * (dout @ np.swapaxes(v, -1, -2))
        return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, dv

    def make(rng):
        return {"q": rng.normal(size=(B, T, d)), "k": rng.normal(size=(B, T, d)),
                "v": rng.normal(size=(B, T, d))}

    return Family("attn_padmask_1e9", "key-padding attention with an additive -1e9 mask and a "
                  "fully padded sequence (scores -1e9+s quantised to 1.2e-7)", fwd,
                  _quiet(bwd), make,
                  {"mask_on_query_axis": _quiet(mask_on_query_axis),
                   "dq_missing_scale": _quiet(dq_missing_scale), "no_rowsum": _quiet(no_rowsum)},
                  consts={"keymask": KEYMASK, "scale": scale})


# ----------------------------------------------------------------------------------------------
# 5. linear algebra


def linsolve() -> Family:
    def fwd(A, b):
        x = np.linalg.solve(A, b)
        return x, (A, x)

    def bwd(dout, c):
        A, x = c
        db = np.linalg.solve(A.T, dout)
        return -db @ x.T, db

    def dA_sign(dout, c):
        A, x = c
        db = np.linalg.solve(A.T, dout)
        return db @ x.T, db

    def db_not_transposed(dout, c):
        A, x = c
        db = np.linalg.solve(A, dout)
        return -db @ x.T, db

    def dA_transposed(dout, c):
        A, x = c
        db = np.linalg.solve(A.T, dout)
        return -x @ db.T, db

    def make(rng):
        return {"A": rng.normal(size=(4, 4)) + 3.0 * np.eye(4), "b": rng.normal(size=(4, 3))}

    return Family("linsolve", "x = solve(A, b): dA = -A^-T dout x^T, transposes everywhere; no "
                  "long-double linalg", fwd, _quiet(bwd), make,
                  {"dA_sign": _quiet(dA_sign), "db_not_transposed": _quiet(db_not_transposed),
                   "dA_transposed": _quiet(dA_transposed)})


def gp_cholesky_nll() -> Family:
    SIG2 = 0.5
    n = 3

    def fwd(Lr, y):
        K = Lr @ Lr.T + SIG2 * np.eye(n)
        L = np.linalg.cholesky(K)
        z = sla.solve_triangular(L, y, lower=True)
        nll = 0.5 * np.sum(z * z) + np.sum(np.log(np.diagonal(L)))
        return np.asarray(nll), (Lr, y, K, {"Lr": Lr, "y": y})

    def _parts(c):
        Lr, y, K, _ = c
        Kinv = np.linalg.inv(K)
        alpha = Kinv @ y
        dK = 0.5 * (Kinv - np.outer(alpha, alpha))
        return Lr, alpha, dK

    def bwd(dout, c):
        Lr, alpha, dK = _parts(c)
        return dout * 2.0 * dK @ Lr, dout * alpha

    def half_sym(dout, c):
        Lr, alpha, dK = _parts(c)
        return dout * dK @ Lr, dout * alpha

    def logdet_dropped(dout, c):
        Lr, alpha, _ = _parts(c)
        return dout * 2.0 * (-0.5 * np.outer(alpha, alpha)) @ Lr, dout * alpha

    def complex_step_fooled(dout, c):
        return _complex_step_grads(fwd_q, c[3], dout)

    fwd_q = fwd

    def make(rng):
        return {"Lr": rng.normal(size=(n, n)), "y": rng.normal(size=n)}

    return Family("gp_cholesky_nll", "Gaussian-process NLL through cholesky: LAPACK assumes a "
                  "Hermitian matrix, so a complex step is wrong for the log-det", fwd_q,
                  _quiet(bwd), make,
                  {"half_sym": _quiet(half_sym), "logdet_dropped": _quiet(logdet_dropped),
                   "complex_step_fooled": complex_step_fooled}, consts={"sig2": SIG2})


def slogdet_flow() -> Family:
    def fwd(W, x):
        z = x @ W
        _, logabs = np.linalg.slogdet(W)
        return 0.5 * (z * z).sum(axis=1) - logabs, (W, x, z, {"W": W, "x": x})

    def bwd(dout, c):
        W, x, z, _ = c
        dz = dout[:, None] * z
        return x.T @ dz - dout.sum() * np.linalg.inv(W).T, dz @ W.T

    def inv_not_transposed(dout, c):
        W, x, z, _ = c
        dz = dout[:, None] * z
        return x.T @ dz - dout.sum() * np.linalg.inv(W), dz @ W.T

    def logdet_sign(dout, c):
        W, x, z, _ = c
        dz = dout[:, None] * z
        return x.T @ dz + dout.sum() * np.linalg.inv(W).T, dz @ W.T

    fwd_q = fwd

    def complex_step_fooled(dout, c):
        return _complex_step_grads(fwd_q, c[3], dout)

    def make(rng):
        W = rng.normal(size=(3, 3)) + 1.5 * np.eye(3)
        if np.linalg.det(W) > 0:
            W[0] = -W[0]  # a negative determinant: slogdet's sign is -1
        return {"W": W, "x": rng.normal(size=(4, 3))}

    return Family("slogdet_flow", "1x1-conv flow NLL 0.5|xW|^2 - log|det W| (det < 0): slogdet "
                  "returns a real logabsdet for complex input", fwd_q, _quiet(bwd), make,
                  {"inv_not_transposed": _quiet(inv_not_transposed),
                   "logdet_sign": _quiet(logdet_sign), "complex_step_fooled": complex_step_fooled})


def batched_det() -> Family:
    def fwd(A):
        det = np.linalg.det(A)
        return det, (A, det)

    def bwd(dout, c):
        A, det = c
        return ((dout * det)[:, None, None] * np.swapaxes(np.linalg.inv(A), -1, -2),)

    def inv_not_transposed(dout, c):
        A, det = c
        return ((dout * det)[:, None, None] * np.linalg.inv(A),)

    def missing_det_factor(dout, c):
        A, det = c
        return (dout[:, None, None] * np.swapaxes(np.linalg.inv(A), -1, -2),)

    def broadcast_wrong_axis(dout, c):  # (dout*det)[None, None, :] broadcasts over columns
        A, det = c
        return ((dout * det)[None, None, :] * np.swapaxes(np.linalg.inv(A), -1, -2),)

    def make(rng):
        return {"A": rng.normal(size=(3, 3, 3)) + 1.0 * np.eye(3)}

    return Family("batched_det", "batched det(A): dA = det A^-T, batch broadcasting mistakes",
                  fwd, _quiet(bwd), make,
                  {"inv_not_transposed": _quiet(inv_not_transposed),
                   "missing_det_factor": _quiet(missing_det_factor),
                   "broadcast_wrong_axis": _quiet(broadcast_wrong_axis)})


def transpose_chain() -> Family:
    def fwd(A, X, B):
        return A.T @ X @ B, (A, X, B)

    def bwd(dout, c):
        A, X, B = c
        return X @ B @ dout.T, A @ dout @ B.T, X.T @ A @ dout

    def dX_transposed(dout, c):
        A, X, B = c
        return X @ B @ dout.T, B @ dout.T @ A.T, X.T @ A @ dout

    def dA_uses_XT(dout, c):
        A, X, B = c
        return X.T @ B @ dout.T, A @ dout @ B.T, X.T @ A @ dout

    def dB_uses_X(dout, c):
        A, X, B = c
        return X @ B @ dout.T, A @ dout @ B.T, X @ A @ dout

    def make(rng):
        return {"A": rng.normal(size=(4, 3)), "X": rng.normal(size=(4, 4)).T,  # Fortran-ordered
                "B": rng.normal(size=(4, 3))}

    return Family("transpose_chain", "A^T X B with a Fortran-ordered X: transposition bugs that "
                  "keep every shape", fwd, _quiet(bwd), make,
                  {"dX_transposed": _quiet(dX_transposed), "dA_uses_XT": _quiet(dA_uses_XT),
                   "dB_uses_X": _quiet(dB_uses_X)})


# ----------------------------------------------------------------------------------------------
# 6. FFT


def fft_circular_conv() -> Family:
    N = 8

    def fwd(x, k):
        return np.fft.irfft(np.fft.rfft(x, axis=-1) * np.fft.rfft(k), n=N, axis=-1), (x, k)

    def _corr(a, b):  # circular cross-correlation of a with b (both real)
        spec = np.fft.rfft(a, axis=-1) * np.conj(np.fft.rfft(b, axis=-1))
        return np.fft.irfft(spec, n=N, axis=-1)

    def bwd(dout, c):
        x, k = c
        return _corr(dout, k), _corr(dout, x).sum(axis=0)

    def no_conj(dout, c):
        x, k = c
        def conv(a, b):
            return np.fft.irfft(np.fft.rfft(a, axis=-1) * np.fft.rfft(b, axis=-1), n=N, axis=-1)

        return conv(dout, k), conv(dout, x).sum(axis=0)

    def roll_off_by_one(dout, c):
        dx, dk = bwd(dout, c)
        return np.roll(dx, 1, axis=-1), dk

    def dk_mean_over_batch(dout, c):
        x, k = c
        return _corr(dout, k), _corr(dout, x).mean(axis=0)

    def make(rng):
        return {"x": rng.normal(size=(2, N)), "k": rng.normal(size=N)}

    return Family("fft_circular_conv", "circular convolution via rfft/irfft (no complex loop): "
                  "correlation vs convolution, off-by-one rolls", fwd, _quiet(bwd), make,
                  {"no_conj": _quiet(no_conj), "roll_off_by_one": _quiet(roll_off_by_one),
                   "dk_mean_over_batch": _quiet(dk_mean_over_batch)}, consts={"N": N})


def rfft_power_spectrum() -> Family:
    N = 8

    def fwd(x):
        X = np.fft.rfft(x, axis=-1)
        return X.real ** 2 + X.imag ** 2, (x, X)

    def _back(G):
        full = np.zeros((*G.shape[:-1], N), dtype=np.complex128)
        full[..., : G.shape[-1]] = G
        return np.real(np.fft.ifft(full, axis=-1)) * N

    def bwd(dout, c):
        x, X = c
        return (_back(2.0 * dout * X),)

    def irfft_doubling(dout, c):  # irfft counts the interior bins twice
        x, X = c
        return (np.fft.irfft(2.0 * dout * X, n=N, axis=-1) * N,)

    def missing_2(dout, c):
        x, X = c
        return (_back(dout * X),)

    def conj_X(dout, c):
        x, X = c
        return (_back(2.0 * dout * np.conj(X)),)

    def make(rng):
        return {"x": rng.normal(size=(2, N))}

    return Family("rfft_power_spectrum", "|rfft(x)|^2 via .real/.imag: the half-spectrum's "
                  "interior bins count twice in the adjoint", fwd, _quiet(bwd), make,
                  {"irfft_doubling": _quiet(irfft_doubling), "missing_2": _quiet(missing_2),
                   "conj_X": _quiet(conj_X)}, consts={"N": N})


# ----------------------------------------------------------------------------------------------
# 7. cumulative ops


def cumsum_weighted() -> Family:
    def fwd(x, w):
        return np.cumsum(x * w, axis=1), (x, w)

    def bwd(dout, c):
        x, w = c
        r = _revcumsum(dout, 1)
        return r * w, (r * x).sum(axis=0)

    def forward_cumsum(dout, c):
        x, w = c
        r = np.cumsum(dout, axis=1)
        return r * w, (r * x).sum(axis=0)

    def exclusive(dout, c):
        x, w = c
        r = _revcumsum(dout, 1) - dout
        return r * w, (r * x).sum(axis=0)

    def wrong_axis(dout, c):
        x, w = c
        r = _revcumsum(dout, 0)
        return r * w, (r * x).sum(axis=0)

    def make(rng):
        return {"x": rng.normal(size=(3, 6)), "w": rng.normal(size=6)}

    return Family("cumsum_weighted", "cumsum(x*w, axis=1): reverse cumsum in backward",
                  fwd, _quiet(bwd), make,
                  {"forward_cumsum": _quiet(forward_cumsum), "exclusive": _quiet(exclusive),
                   "wrong_axis": _quiet(wrong_axis)})


def cumprod_zeros() -> Family:
    def fwd(x):
        out = np.cumprod(x, axis=1)
        return out, (x, out)

    def bwd(dout, c):
        x, _ = c
        n = x.shape[1]
        dx = np.zeros_like(x)
        for i in range(n):
            others = x.copy()
            others[:, i] = 1.0
            pref = np.cumprod(others, axis=1)  # prod_{k<=j, k != i} x_k
            dx[:, i] = (dout[:, i:] * pref[:, i:]).sum(axis=1)
        return (dx,)

    def divide_by_x(dout, c):
        x, out = c
        return (_revcumsum(dout * out, 1) / x,)

    def divide_by_x_guarded(dout, c):
        x, out = c
        return (np.where(x == 0, 0.0, _revcumsum(dout * out, 1) / np.where(x == 0, 1.0, x)),)

    def exclusive_off_by_one(dout, c):  # the j = i term forgotten
        x, _ = c
        n = x.shape[1]
        dx = np.zeros_like(x)
        for i in range(n):
            others = x.copy()
            others[:, i] = 1.0
            pref = np.cumprod(others, axis=1)
            dx[:, i] = (dout[:, i + 1:] * pref[:, i + 1:]).sum(axis=1)
        return (dx,)

    def make(rng):
        x = rng.uniform(-1.5, 1.5, size=(3, 6))
        x[0, 2] = 0.0
        x[1, 0] = 0.0
        x[2, 1] = 0.0
        x[2, 4] = 0.0
        return {"x": x}

    return Family("cumprod_zeros", "cumprod with exact zeros (one row has two): the textbook "
                  "out/x backward divides by zero", fwd, _quiet(bwd), make,
                  {"divide_by_x": _quiet(divide_by_x),
                   "divide_by_x_guarded": _quiet(divide_by_x_guarded),
                   "exclusive_off_by_one": _quiet(exclusive_off_by_one)})


def logcumsumexp() -> Family:
    def fwd(x):
        out = np.logaddexp.accumulate(x, axis=1)
        return out, (x, out)

    def _weights(x, out, mask):
        diff = np.where(mask, x[:, :, None] - out[:, None, :], -np.inf)
        return np.exp(diff)

    def _upper(n):
        return np.triu(np.ones((n, n), dtype=bool))  # [i, j]: j >= i

    def bwd(dout, c):
        x, out = c
        W = _weights(x, out, _upper(x.shape[1]))
        return ((W * dout[:, None, :]).sum(axis=2),)

    def mask_transposed(dout, c):
        x, out = c
        W = _weights(x, out, _upper(x.shape[1]).T)
        return ((W * dout[:, None, :]).sum(axis=2),)

    def missing_mask(dout, c):
        x, out = c
        W = np.exp(x[:, :, None] - out[:, None, :])
        return ((W * dout[:, None, :]).sum(axis=2),)

    def exclusive(dout, c):
        x, out = c
        W = _weights(x, out, np.triu(np.ones((x.shape[1],) * 2, dtype=bool), 1))
        return ((W * dout[:, None, :]).sum(axis=2),)

    def make(rng):
        x = rng.uniform(-300.0, 300.0, size=(3, 7))
        x[0] = np.sort(x[0])
        x[1] = -np.sort(-x[1])
        return {"x": x}

    return Family("logcumsumexp", "logaddexp.accumulate over values spread +-300: weights "
                  "exp(x_i - out_j) down to 1e-260; no complex loop", fwd, _quiet(bwd),
                  make, {"mask_transposed": _quiet(mask_transposed),
                         "missing_mask": _quiet(missing_mask), "exclusive": _quiet(exclusive)})


# ----------------------------------------------------------------------------------------------
# 8. sorting and selection (with k-way ties)


def _tied_rows(rng, rows: list[list[float]], shape: tuple[int, int]) -> Array:
    x = rng.normal(size=shape)
    for i, r in enumerate(rows):
        x[i] = rng.permutation(np.asarray(r, dtype=np.float64))
    return x


def sort_ties() -> Family:
    def fwd(x):
        idx = np.argsort(x, axis=1, kind="stable")
        return np.take_along_axis(x, idx, axis=1), (x, idx)

    def bwd(dout, c):
        x, idx = c
        dx = np.zeros_like(dout)
        np.put_along_axis(dx, idx, dout, axis=1)
        return (dx,)

    def split(dout, c):  # tied elements share their sorted positions' gradients equally
        x, _ = c
        (dx,) = bwd(dout, c)
        return (_group_split(x, dx),)

    def gather_instead_of_scatter(dout, c):
        x, idx = c
        return (np.take_along_axis(dout, idx, axis=1),)

    def ties_all_receive_sum(dout, c):
        x, _ = c
        (dx,) = bwd(dout, c)
        g = _group_split(x, dx)
        counts = (x[:, :, None] == x[:, None, :]).sum(axis=2)
        return (g * counts,)

    def descending_confusion(dout, c):
        x, idx = c
        dx = np.zeros_like(dout)
        np.put_along_axis(dx, idx, dout[:, ::-1], axis=1)
        return (dx,)

    def make(rng):
        return {"x": _tied_rows(rng, [[1, 1, 1, 0.5, 2, 2, -1], [0, 0, 0, 0, 3, -2, 1]], (3, 7))}

    return Family("sort_ties", "np.sort with 3- and 4-way ties: scatter by argsort; gather "
                  "instead of scatter; every tied element given the group's sum", fwd,
                  _quiet(bwd), make,
                  {"gather_instead_of_scatter": _quiet(gather_instead_of_scatter),
                   "ties_all_receive_sum": _quiet(ties_all_receive_sum),
                   "descending_confusion": _quiet(descending_confusion)},
                  alternates={"correct_split": _quiet(split)}, ties=True)


def topk_mean_ties() -> Family:
    K = 3

    def fwd(x):
        idx = np.argsort(-x, axis=1, kind="stable")[:, :K]
        return np.take_along_axis(x, idx, axis=1).mean(axis=1), (x, idx)

    def bwd(dout, c):
        x, idx = c
        dx = np.zeros_like(x)
        np.put_along_axis(dx, idx, np.repeat(dout[:, None] / K, K, axis=1), axis=1)
        return (dx,)

    def split(dout, c):  # strictly above the k-th value: 1/K; ties at it share the rest
        x, idx = c
        kth = np.take_along_axis(x, idx[:, -1:], axis=1)
        above = x > kth
        at = x == kth
        rest = (K - above.sum(axis=1, keepdims=True)) / at.sum(axis=1, keepdims=True)
        return (dout[:, None] * (above + at * rest) / K,)

    def all_ties_full(dout, c):
        x, idx = c
        kth = np.take_along_axis(x, idx[:, -1:], axis=1)
        return (dout[:, None] * (x >= kth) / K,)

    def divide_by_n(dout, c):
        x, idx = c
        dx = np.zeros_like(x)
        np.put_along_axis(dx, idx, np.repeat(dout[:, None] / x.shape[1], K, axis=1), axis=1)
        return (dx,)

    def bottom_k(dout, c):
        x, _ = c
        idx = np.argsort(x, axis=1, kind="stable")[:, :K]
        dx = np.zeros_like(x)
        np.put_along_axis(dx, idx, np.repeat(dout[:, None] / K, K, axis=1), axis=1)
        return (dx,)

    def make(rng):
        return {"x": _tied_rows(rng, [[5, 4, 3, 3, 3, 1], [2, 2, 2, 2, 0, 1]], (3, 6))}

    return Family("topk_mean_ties", "mean of the top 3 with a 3-way tie at the boundary and a "
                  "4-way tie at the top", fwd, _quiet(bwd), make,
                  {"all_ties_full": _quiet(all_ties_full), "divide_by_n": _quiet(divide_by_n),
                   "bottom_k": _quiet(bottom_k)}, alternates={"correct_split": _quiet(split)},
                  consts={"K": K}, ties=True)


def median_ties() -> Family:
    def fwd(x):
        idx = np.argsort(x, axis=1, kind="stable")[:, x.shape[1] // 2]
        return np.median(x, axis=1), (x, idx)

    def bwd(dout, c):
        x, idx = c
        dx = np.zeros_like(x)
        dx[np.arange(x.shape[0]), idx] = dout
        return (dx,)

    def split(dout, c):
        x, idx = c
        med = x[np.arange(x.shape[0]), idx][:, None]
        at = x == med
        return (dout[:, None] * at / at.sum(axis=1, keepdims=True),)

    def all_tied_full(dout, c):
        x, idx = c
        med = x[np.arange(x.shape[0]), idx][:, None]
        return (dout[:, None] * (x == med),)

    def rank_off_by_one(dout, c):
        x, _ = c
        idx = np.argsort(x, axis=1, kind="stable")[:, x.shape[1] // 2 - 1]
        dx = np.zeros_like(x)
        dx[np.arange(x.shape[0]), idx] = dout
        return (dx,)

    def mean_gradient(dout, c):
        x, _ = c
        return (np.repeat(dout[:, None] / x.shape[1], x.shape[1], axis=1),)

    def make(rng):
        return {"x": _tied_rows(rng, [[1, 2, 2, 2, 3, 0, 5], [4, 4, 4, 4, 4, 1, 9]], (3, 7))}

    return Family("median_ties", "np.median (odd rows) with a 3-way and a 5-way tie at the median",
                  fwd, _quiet(bwd), make,
                  {"all_tied_full": _quiet(all_tied_full),
                   "rank_off_by_one": _quiet(rank_off_by_one),
                   "mean_gradient": _quiet(mean_gradient)},
                  alternates={"correct_split": _quiet(split)}, ties=True)


def percentile_interp() -> Family:
    Q = 30.0

    def _pos(n):
        v = Q / 100.0 * (n - 1)
        lo = math.floor(v)
        return lo, v - lo

    def fwd(x):
        idx = np.argsort(x, axis=1, kind="stable")
        return np.percentile(x, Q, axis=1), (x, idx)

    def _scatter(x, idx, dout, w_lo, w_hi, lo):
        dx = np.zeros_like(x)
        r = np.arange(x.shape[0])
        dx[r, idx[:, lo]] += w_lo * dout
        dx[r, idx[:, lo + 1]] += w_hi * dout
        return dx

    def bwd(dout, c):
        x, idx = c
        lo, f = _pos(x.shape[1])
        return (_scatter(x, idx, dout, 1 - f, f, lo),)

    def split(dout, c):
        x, _ = c
        (dx,) = bwd(dout, c)
        return (_group_split(x, dx),)

    def weights_swapped(dout, c):
        x, idx = c
        lo, f = _pos(x.shape[1])
        return (_scatter(x, idx, dout, f, 1 - f, lo),)

    def nearest_rank(dout, c):
        x, idx = c
        lo, f = _pos(x.shape[1])
        return (_scatter(x, idx, dout, 1.0, 0.0, lo),)

    def all_tied_full(dout, c):
        x, idx = c
        (dx,) = bwd(dout, c)
        g = _group_split(x, dx)
        counts = (x[:, :, None] == x[:, None, :]).sum(axis=2)
        return (g * counts,)

    def make(rng):
        return {"x": _tied_rows(rng, [[0, 1, 1, 1, 2, 3, 4, 5]], (2, 8))}

    return Family("percentile_interp", "np.percentile(x, 30) (linear interpolation between ranks "
                  "2 and 3) with ties spanning both ranks", fwd, _quiet(bwd), make,
                  {"weights_swapped": _quiet(weights_swapped), "nearest_rank": _quiet(nearest_rank),
                   "all_tied_full": _quiet(all_tied_full)},
                  alternates={"correct_split": _quiet(split)}, consts={"q": Q}, ties=True)


def maxpool1d_overlap_ties() -> Family:
    W = 3

    def fwd(x):
        win = sliding_window_view(x, W, axis=1)  # (N, L, W), overlapping windows, stride 1
        arg = win.argmax(axis=-1)
        return win.max(axis=-1), (x, arg, win)

    def _idx(x, arg, offset=True):
        rows = np.repeat(np.arange(x.shape[0])[:, None], arg.shape[1], axis=1)
        cols = arg + (np.arange(arg.shape[1])[None, :] if offset else 0)
        return rows, cols

    def bwd(dout, c):
        x, arg, _ = c
        dx = np.zeros_like(x)
        np.add.at(dx, _idx(x, arg), dout)
        return (dx,)

    def split(dout, c):
        x, _, win = c
        m = win == win.max(axis=-1, keepdims=True)
        share = dout[..., None] * m / m.sum(axis=-1, keepdims=True)
        dx = np.zeros_like(x)
        for j in range(win.shape[1]):
            dx[:, j:j + W] += share[:, j]
        return (dx,)

    def assign_not_accumulate(dout, c):  # dx[rows, cols] += dout drops repeated indices
        x, arg, _ = c
        dx = np.zeros_like(x)
        dx[_idx(x, arg)] += dout
        return (dx,)

    def all_ties_full(dout, c):
        x, _, win = c
        m = win == win.max(axis=-1, keepdims=True)
        dx = np.zeros_like(x)
        for j in range(win.shape[1]):
            dx[:, j:j + W] += dout[:, j, None] * m[:, j]
        return (dx,)

    def window_offset_forgotten(dout, c):
        x, arg, _ = c
        dx = np.zeros_like(x)
        np.add.at(dx, _idx(x, arg, offset=False), dout)
        return (dx,)

    def make(rng):
        return {"x": _tied_rows(rng, [[1, 3, 3, 3, 2, 0, 0, 0, 1], [2, 2, 5, 5, 1, 5, 0, 2, 2]],
                                (2, 9))}

    return Family("maxpool1d_overlap_ties", "overlapping 1-D max-pool (window 3, stride 1) over "
                  "plateaus: np.add.at vs fancy +=, tie conventions", fwd, _quiet(bwd),
                  make, {"assign_not_accumulate": _quiet(assign_not_accumulate),
                         "all_ties_full": _quiet(all_ties_full),
                         "window_offset_forgotten": _quiet(window_offset_forgotten)},
                  alternates={"correct_split": _quiet(split)}, consts={"W": W}, ties=True)


def maximum_pair_ties() -> Family:
    def fwd(a, b):
        return np.maximum(a, b), (a, b)

    def bwd(dout, c):
        a, b = c
        return dout * (a >= b), dout * (a < b)

    def split(dout, c):
        a, b = c
        w = np.where(a > b, 1.0, np.where(a < b, 0.0, 0.5))
        return dout * w, dout * (1 - w)

    def b_wins(dout, c):
        a, b = c
        return dout * (a > b), dout * (a <= b)

    def both_full(dout, c):
        a, b = c
        return dout * (a >= b), dout * (b >= a)

    def neither_at_ties(dout, c):
        a, b = c
        return dout * (a > b), dout * (b > a)

    def swapped_masks(dout, c):
        a, b = c
        return dout * (a < b), dout * (a >= b)

    def make(rng):
        a = rng.normal(size=(3, 4))
        b = rng.normal(size=(3, 4))
        b.flat[::3] = a.flat[::3]
        return {"a": a, "b": b}

    return Family("maximum_pair_ties", "np.maximum(a, b) with a third of the elements tied; "
                  "both sides receiving the full dout is invalid", fwd, _quiet(bwd), make,
                  {"both_full": _quiet(both_full), "neither_at_ties": _quiet(neither_at_ties),
                   "swapped_masks": _quiet(swapped_masks)},
                  alternates={"correct_split": _quiet(split), "correct_b_wins": _quiet(b_wins)},
                  ties=True)


# ----------------------------------------------------------------------------------------------
# 9. masked np.where layers


def masked_token_ce() -> Family:
    MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool)
    TARGETS = np.array([[0, 3, 1, 4], [2, 2, 0, 1]])

    def fwd(logits):
        m = logits.max(axis=-1, keepdims=True)
        lse = m[..., 0] + np.log(np.exp(logits - m).sum(axis=-1))
        picked = np.take_along_axis(logits, TARGETS[..., None], axis=-1)[..., 0]
        nll = np.where(MASK, lse - picked, 0.0)
        return np.asarray(nll.sum() / MASK.sum()), (logits,)

    def _g(logits):
        p = _softmax_rows(logits)
        t = TARGETS[..., None]
        np.put_along_axis(p, t, np.take_along_axis(p, t, -1) - 1, -1)
        return p

    def bwd(dout, c):
        (logits,) = c
        return (dout * _g(logits) * MASK[..., None] / MASK.sum(),)

    def mean_over_all_tokens(dout, c):
        (logits,) = c
        return (dout * _g(logits) * MASK[..., None] / MASK.size,)

    def mask_forgotten_in_backward(dout, c):
        (logits,) = c
        return (dout * _g(logits) / MASK.sum(),)

    def targets_shifted(dout, c):  # next-token targets used one position off
        (logits,) = c
        p = _softmax_rows(logits)
        t = np.roll(TARGETS, 1, axis=1)
        np.put_along_axis(p, t[..., None], np.take_along_axis(p, t[..., None], -1) - 1, -1)
        return (dout * p * MASK[..., None] / MASK.sum(),)

    def make(rng):
        x = rng.normal(size=(2, 4, 5))
        x[1, 2:] = rng.normal(size=(2, 5)) * 1e3  # garbage logits at the padded positions
        return {"logits": x}

    return Family("masked_token_ce", "token cross-entropy averaged over valid tokens with "
                  "np.where; padded positions carry garbage logits ~1e3", fwd,
                  _quiet(bwd), make,
                  {"mean_over_all_tokens": _quiet(mean_over_all_tokens),
                   "mask_forgotten_in_backward": _quiet(mask_forgotten_in_backward),
                   "targets_shifted": _quiet(targets_shifted)},
                  consts={"mask": MASK, "targets": TARGETS})


def safe_norm_zero_rows() -> Family:
    def fwd(x):
        ss = (x * x).sum(axis=1)
        pos = ss > 0
        return np.where(pos, np.sqrt(np.where(pos, ss, 1.0)), 0.0), (x, ss)

    def bwd(dout, c):
        x, ss = c
        pos = ss > 0
        n = np.sqrt(np.where(pos, ss, 1.0))
        return (dout[:, None] * np.where(pos[:, None], x / n[:, None], 0.0),)

    def nan_at_zero_row(dout, c):
        x, ss = c
        return (dout[:, None] * x / np.sqrt(ss)[:, None],)

    def eps_in_backward_only(dout, c):
        x, ss = c
        return (dout[:, None] * x / (np.sqrt(ss)[:, None] + 1e-8),)

    def sq_norm_gradient(dout, c):
        x, ss = c
        return (dout[:, None] * 2.0 * x,)

    def make(rng):
        x = rng.normal(size=(4, 3))
        x[1] = 0.0
        x[3] *= 1e-3
        return {"x": x}

    return Family("safe_norm_zero_rows", "row norms with the double-where trick and an all-zero "
                  "row (a cone kink, subgradient 0)", fwd, _quiet(bwd), make,
                  {"nan_at_zero_row": _quiet(nan_at_zero_row),
                   "eps_in_backward_only": _quiet(eps_in_backward_only),
                   "sq_norm_gradient": _quiet(sq_norm_gradient)})


# ----------------------------------------------------------------------------------------------
# 10. piecewise forwards


def huber_smoothl1() -> Family:
    D = 0.5

    def fwd(pred, target):
        r = pred - target
        a = np.abs(r)
        return np.where(a <= D, 0.5 * r * r, D * (a - 0.5 * D)), (r,)

    def bwd(dout, c):
        (r,) = c
        g = dout * np.clip(r, -D, D)
        return g, -g

    def linear_branch_returns_r(dout, c):
        (r,) = c
        return dout * r, -dout * r

    def missing_delta(dout, c):
        (r,) = c
        g = dout * np.where(np.abs(r) <= D, r, np.sign(r))
        return g, -g

    def target_sign(dout, c):
        (r,) = c
        g = dout * np.clip(r, -D, D)
        return g, g

    def make(rng):
        t = np.round(rng.normal(size=(3, 4)) * 8) / 8  # multiples of 1/8: r = +-0.5 exactly
        r = rng.normal(size=(3, 4))
        r.flat[:4] = [0.5, -0.5, 0.0, 2.0]
        return {"pred": t + r, "target": t}

    return Family("huber_smoothl1", "Huber (delta 0.5) with residuals exactly at +-delta and 0 "
                  "(C1 joins, not kinks)", fwd, _quiet(bwd), make,
                  {"linear_branch_returns_r": _quiet(linear_branch_returns_r),
                   "missing_delta": _quiet(missing_delta), "target_sign": _quiet(target_sign)},
                  consts={"delta": D})


def leaky_hardtanh() -> Family:
    LEAK = 0.01

    def fwd(x):
        c = np.clip(x, -1.0, 1.0)
        return c + LEAK * (x - c), (x,)

    def bwd(dout, c):
        (x,) = c
        return (dout * np.where(np.abs(x) <= 1.0, 1.0, LEAK),)

    def strict(dout, c):
        (x,) = c
        return (dout * np.where(np.abs(x) < 1.0, 1.0, LEAK),)

    def both_masks_at_threshold(dout, c):  # 1 + LEAK at |x| = 1
        (x,) = c
        return (dout * ((np.abs(x) <= 1.0) * 1.0 + (np.abs(x) >= 1.0) * LEAK),)

    def leak_missing(dout, c):
        (x,) = c
        return (dout * (np.abs(x) <= 1.0),)

    def leak_inside(dout, c):
        (x,) = c
        return (dout * np.where(np.abs(x) <= 1.0, 1.0 + LEAK, LEAK),)

    def make(rng):
        x = rng.uniform(-2.5, 2.5, size=(3, 5))
        x.flat[:6] = [1.0, -1.0, 0.0, 1.0 + 1e-13, -1.0 - 1e-13, 1.0 - 1e-13]
        return {"x": x}

    return Family("leaky_hardtanh", "clip(x,-1,1) + 0.01*(x - clip): kinks at exactly +-1; the "
                  "bug 1.01 at the threshold only", fwd, _quiet(bwd), make,
                  {"both_masks_at_threshold": _quiet(both_masks_at_threshold),
                   "leak_missing": _quiet(leak_missing), "leak_inside": _quiet(leak_inside)},
                  alternates={"correct_strict": _quiet(strict)}, consts={"leak": LEAK})


# ----------------------------------------------------------------------------------------------
# 11. huge and tiny magnitudes


def tiny_scale_subnormal() -> Family:
    S = 2.0 ** -1040

    def fwd(x, w):
        t = np.tanh(x)
        return S * w * t, (w, t)

    def bwd(dout, c):
        w, t = c
        return dout * S * w * (1 - t * t), dout * S * t

    def scale_forgotten(dout, c):
        w, t = c
        return dout * w * (1 - t * t), dout * S * t

    def sech_not_squared(dout, c):
        w, t = c
        return dout * S * w * (1 - t), dout * S * t

    def make(rng):
        return {"x": rng.normal(size=(4, 5)), "w": rng.normal(size=(4, 5))}

    return Family("tiny_scale_subnormal", "2^-1040 * w * tanh(x): outputs and gradients ~1e-313, "
                  "subnormal (fewer than 36 significant bits)", fwd, _quiet(bwd), make,
                  {"scale_forgotten": _quiet(scale_forgotten),
                   "sech_not_squared": _quiet(sech_not_squared)}, consts={"S": S}, truth_tol=1e-9)


def homog_rational_tiny() -> Family:
    def fwd(x, y):
        q = x * x + y * y
        out = (x ** 3 + y ** 3) / q
        return out, (x, y, q, out)

    def bwd(dout, c):
        x, y, q, out = c
        return dout * (3 * x * x / q - out * 2 * x / q), dout * (3 * y * y / q - out * 2 * y / q)

    def q_squared_underflow(dout, c):  # textbook quotient rule: q**2 ~ 1e-400 underflows
        x, y, q, _ = c
        p = x ** 3 + y ** 3
        return (dout * (3 * x * x * q - p * 2 * x) / q ** 2,
                dout * (3 * y * y * q - p * 2 * y) / q ** 2)

    def quotient_rule_sign(dout, c):
        x, y, q, out = c
        return dout * (3 * x * x / q + out * 2 * x / q), dout * (3 * y * y / q + out * 2 * y / q)

    def dy_cross_term_dropped(dout, c):
        x, y, q, out = c
        return dout * (3 * x * x / q - out * 2 * x / q), dout * (3 * y * y / q)

    def make(rng):
        s = 2.0 ** -330
        return {"x": rng.normal(size=(3, 4)) * s, "y": rng.normal(size=(3, 4)) * s}

    return Family("homog_rational_tiny", "(x^3+y^3)/(x^2+y^2) at |x| ~ 1e-100: O(1) gradients from "
                  "tiny inputs; q^2 underflows in the textbook rule", fwd, _quiet(bwd), make,
                  {"q_squared_underflow": _quiet(q_squared_underflow),
                   "quotient_rule_sign": _quiet(quotient_rule_sign),
                   "dy_cross_term_dropped": _quiet(dy_cross_term_dropped)})


def poisson_nll_extreme() -> Family:
    Y = np.array([[0, 1, 3, 1e3, 1e300], [5, 0, 1e100, 2, 7], [1e6, 0, 0, 1, 1e-3],
                  [1e250, 1e200, 0, 42, 9]], dtype=np.float64)

    def fwd(eta):
        e = np.exp(eta)
        return e - Y * eta, (eta, e)

    def bwd(dout, c):
        eta, e = c
        return (dout * (e - Y),)

    def clamp_exp_for_stability(dout, c):
        eta, _ = c
        return (dout * (np.exp(np.minimum(eta, 50.0)) - Y),)

    def y_sign(dout, c):
        eta, e = c
        return (dout * (e + Y),)

    def make(rng):
        eta = rng.uniform(-700.0, 695.0, size=(4, 5))
        eta.flat[[4, 7, 15]] = [np.log(1e300) + 1e-3, np.log(1e100), np.log(1e250)]
        return {"eta": eta}

    return Family("poisson_nll_extreme", "Poisson NLL exp(eta) - y*eta with eta in [-700, 695]: "
                  "gradients 1e-304 .. 1e302 and cancellation at eta = log y", fwd,
                  _quiet(bwd), make,
                  {"clamp_exp_for_stability": _quiet(clamp_exp_for_stability),
                   "y_sign": _quiet(y_sign)}, consts={"Y": Y})


# ----------------------------------------------------------------------------------------------
# 12. layouts: Fortran order, (features, examples), strided views


def course_features_examples() -> Family:
    def fwd(X, W, b):
        A = np.tanh(W @ X + b)
        return A, (X, W, A)

    def bwd(dout, c):
        X, W, A = c
        dZ = dout * (1 - A * A)
        return W.T @ dZ, dZ @ X.T, dZ.sum(axis=1, keepdims=True)

    def course_1_over_m(dout, c):  # the course's cost is averaged; this layer is not
        X, W, A = c
        m = X.shape[1]
        dZ = dout * (1 - A * A)
        return W.T @ dZ, dZ @ X.T / m, dZ.sum(axis=1, keepdims=True) / m

    def dX_not_transposed(dout, c):
        X, W, A = c
        dZ = dout * (1 - A * A)
        return W @ dZ, dZ @ X.T, dZ.sum(axis=1, keepdims=True)

    def db_sum_axis0(dout, c):
        X, W, A = c
        dZ = dout * (1 - A * A)
        return W.T @ dZ, dZ @ X.T, np.sum(dZ, axis=0, keepdims=True)

    def make(rng):
        return {"X": rng.normal(size=(6, 4)).T,  # (features, examples), Fortran-ordered
                "W": rng.normal(size=(4, 4)) * 0.5, "b": rng.normal(size=(4, 1))}

    return Family("course_features_examples", "Ng-course layout: X is (features, examples) = "
                  "data.T (Fortran order), b of shape (n, 1)", fwd, _quiet(bwd), make,
                  {"course_1_over_m": _quiet(course_1_over_m),
                   "dX_not_transposed": _quiet(dX_not_transposed),
                   "db_sum_axis0": _quiet(db_sum_axis0)})


def strided_conv1d() -> Family:
    KS, DIL = 3, 2
    SPAN = (KS - 1) * DIL + 1

    def fwd(x, w):
        win = sliding_window_view(x, SPAN, axis=1)[:, :, ::DIL]  # (N, L, KS)
        return win @ w, (x, w, win)

    def bwd(dout, c):
        x, w, win = c
        L = dout.shape[1]
        dx = np.zeros(x.shape, dtype=np.result_type(x, dout))
        for k in range(KS):
            dx[:, k * DIL:k * DIL + L] += dout * w[k]
        return dx, np.einsum("nlk,nl->k", win, dout)

    def assign_not_accumulate(dout, c):
        x, w, win = c
        L = dout.shape[1]
        dx = np.zeros(x.shape, dtype=np.result_type(x, dout))
        cols = np.arange(L)[:, None] + DIL * np.arange(KS)[None, :]  # (L, KS), overlapping
        rows = np.arange(x.shape[0])[:, None, None]
        dx[rows, cols[None]] += dout[:, :, None] * w  # repeated (row, col) pairs: last write wins
        return dx, np.einsum("nlk,nl->k", win, dout)

    def dilation_forgotten(dout, c):
        x, w, win = c
        L = dout.shape[1]
        dx = np.zeros(x.shape, dtype=np.result_type(x, dout))
        for k in range(KS):
            dx[:, k:k + L] += dout * w[k]
        return dx, np.einsum("nlk,nl->k", win, dout)

    def kernel_flipped(dout, c):
        x, w, win = c
        dx, dw = bwd(dout, (x, w[::-1], win))
        return dx, dw

    def make(rng):
        big = rng.normal(size=(4, 22))
        k = rng.normal(size=KS)
        return {"x": big[::2, ::2], "w": k[::-1]}  # non-contiguous views, negative stride

    return Family("strided_conv1d", "dilated 1-D conv on strided views (x = big[::2, ::2], "
                  "w = k[::-1]); fancy-index += drops overlaps", fwd, _quiet(bwd), make,
                  {"assign_not_accumulate": _quiet(assign_not_accumulate),
                   "dilation_forgotten": _quiet(dilation_forgotten),
                   "kernel_flipped": _quiet(kernel_flipped)}, consts={"KS": KS, "DIL": DIL})


def ravel_order_A() -> Family:
    def fwd(x, w):
        order = "F" if (x.flags.f_contiguous and not x.flags.c_contiguous) else "C"
        flat = np.ravel(x, order="A")  # memory order: the function depends on the layout
        return np.cumsum(flat * w), (x, w, flat, order)

    def bwd(dout, c):
        x, w, flat, order = c
        r = _revcumsum(dout, 0)
        return (r * w).reshape(x.shape, order=order), r * flat

    def reshape_C(dout, c):
        x, w, flat, order = c
        r = _revcumsum(dout, 0)
        return (r * w).reshape(x.shape), r * flat

    def dw_uses_C_ravel(dout, c):
        x, w, flat, order = c
        r = _revcumsum(dout, 0)
        return (r * w).reshape(x.shape, order=order), r * x.ravel()

    def make(rng):
        return {"x": rng.normal(size=(4, 3)).T, "w": rng.normal(size=12)}

    return Family("ravel_order_A", "np.ravel(x, order='A') on a Fortran-ordered x: a layout-"
                  "dependent forward; checked copies must keep the layout", fwd,
                  _quiet(bwd), make,
                  {"reshape_C": _quiet(reshape_C), "dw_uses_C_ravel": _quiet(dw_uses_C_ravel)})


# ----------------------------------------------------------------------------------------------
# 13. normalisation, recurrent, distances, polynomials, physics, ...


def _rms_family(name: str, dtype: Any, tol: float) -> Family:
    EPS = 1e-6

    def fwd(x, g):
        r = np.sqrt((x * x).mean(axis=-1, keepdims=True) + x.dtype.type(EPS))
        xh = x / r
        return xh * g, (xh, r, g)

    def _dx(dxh, xh, r, denom):
        return (dxh - xh * (dxh * xh).sum(axis=-1, keepdims=True) / denom) / r

    def bwd(dout, c):
        xh, r, g = c
        dxh = dout * g
        return _dx(dxh, xh, r, xh.shape[-1]), (dout * xh).sum(axis=0)

    def sum_for_mean(dout, c):
        xh, r, g = c
        dxh = dout * g
        return _dx(dxh, xh, r, 1), (dout * xh).sum(axis=0)

    def missing_cross_term(dout, c):
        xh, r, g = c
        return dout * g / r, (dout * xh).sum(axis=0)

    def count_minus_one(dout, c):
        xh, r, g = c
        dxh = dout * g
        return _dx(dxh, xh, r, xh.shape[-1] - 1), (dout * xh).sum(axis=0)

    def make(rng):
        x = rng.normal(size=(4, 6))
        x[1] *= 1e-4  # eps matters on this row
        x[2] += 30.0  # large mean, small spread: RMS does not centre
        return {"x": x.astype(dtype), "g": rng.normal(1.0, 0.3, size=6).astype(dtype)}

    return Family(name, f"RMSNorm (eps 1e-6, a row of scale 1e-4, a row offset by 30), "
                  f"{np.dtype(dtype).name}", fwd, _quiet(bwd), make,
                  {"sum_for_mean": _quiet(sum_for_mean),
                   "missing_cross_term": _quiet(missing_cross_term),
                   "count_minus_one": _quiet(count_minus_one)}, consts={"eps": EPS}, truth_tol=tol)


def rmsnorm() -> Family:
    return _rms_family("rmsnorm", F64, 1e-12)


def rmsnorm_f32() -> Family:
    return _rms_family("rmsnorm_f32", F32, 1e-5)


def gru_cell() -> Family:
    H = 4

    def sig(a):
        return 1.0 / (1.0 + np.exp(-a))

    def fwd(x, h, Wx, Wh, b):
        gx = x @ Wx + b
        gh = h @ Wh
        r = sig(gx[:, :H] + gh[:, :H])
        z = sig(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * h, (x, h, Wx, Wh, r, z, n, gh)

    def _core(dout, c, z_sign=1.0, direct=True, variant=False):
        x, h, Wx, Wh, r, z, n, gh = c
        dn = dout * (1 - z)
        dz = z_sign * dout * (h - n)
        dan = dn * (1 - n * n)
        ghn = gh[:, 2 * H:]
        if variant:  # the other GRU: n = tanh(x Wn + (r*h) Un)
            dr = (dan @ Wh[:, 2 * H:].T) * h
        else:
            dr = dan * ghn
        dar = dr * r * (1 - r)
        daz = dz * z * (1 - z)
        dgx = np.concatenate([dar, daz, dan], axis=1)
        dgh = np.concatenate([dar, daz, dan * r], axis=1)
        dh = dgh @ Wh.T + (dout * z if direct else 0.0)
        return dgx @ Wx.T, dh, x.T @ dgx, h.T @ dgh, dgx.sum(axis=0)

    def bwd(dout, c):
        return _core(dout, c)

    def z_sign(dout, c):
        return _core(dout, c, z_sign=-1.0)

    def dh_missing_direct(dout, c):
        return _core(dout, c, direct=False)

    def r_variant_confused(dout, c):
        return _core(dout, c, variant=True)

    def make(rng):
        D = 3
        return {"x": rng.normal(size=(2, D)), "h": rng.normal(size=(2, H)),
                "Wx": rng.normal(size=(D, 3 * H)) * 0.5, "Wh": rng.normal(size=(H, 3 * H)) * 0.5,
                "b": rng.normal(size=3 * H) * 0.1}

    return Family("gru_cell", "PyTorch-convention GRU step (r gates h@Un): five gradients, the "
                  "other GRU variant as a bug", fwd, _quiet(bwd), make,
                  {"z_sign": _quiet(z_sign), "dh_missing_direct": _quiet(dh_missing_direct),
                   "r_variant_confused": _quiet(r_variant_confused)}, consts={"H": H})


def rnn_bptt() -> Family:
    def fwd(x, h0, Wx, Wh, b):
        T = x.shape[0]
        hs = []
        h = h0
        for t in range(T):
            h = np.tanh(x[t] @ Wx + h @ Wh + b)
            hs.append(h)
        H = np.stack(hs)
        return H, (x, h0, Wx, Wh, H)

    def _bptt(dout, c, truncate=False, wh_T=True, dh0_zero=False):
        x, h0, Wx, Wh, H = c
        T = x.shape[0]
        dx = np.zeros_like(x, dtype=np.result_type(x, dout))
        dWx = np.zeros(Wx.shape, dtype=dx.dtype)
        dWh = np.zeros(Wh.shape, dtype=dx.dtype)
        db = np.zeros(Wx.shape[1], dtype=dx.dtype)
        dnext = np.zeros(h0.shape, dtype=dx.dtype)
        for t in reversed(range(T)):
            dh = dout[t] + (0.0 if truncate else dnext)
            da = dh * (1 - H[t] ** 2)
            hp = H[t - 1] if t > 0 else h0
            dx[t] = da @ Wx.T
            dWx += x[t].T @ da
            dWh += hp.T @ da
            db += da.sum(axis=0)
            dnext = da @ (Wh.T if wh_T else Wh)
        dh0 = np.zeros_like(dnext) if dh0_zero else dnext
        return dx, dh0, dWx, dWh, db

    def bwd(dout, c):
        return _bptt(dout, c)

    def truncated(dout, c):
        return _bptt(dout, c, truncate=True)

    def wh_not_transposed(dout, c):
        return _bptt(dout, c, wh_T=False)

    def dh0_missing(dout, c):
        return _bptt(dout, c, dh0_zero=True)

    def make(rng):
        return {"x": rng.normal(size=(4, 2, 3)) * 0.5, "h0": rng.normal(size=(2, 4)) * 0.5,
                "Wx": rng.normal(size=(3, 4)) * 0.5, "Wh": rng.normal(size=(4, 4)) * 0.5,
                "b": rng.normal(size=4) * 0.1}

    return Family("rnn_bptt", "vanilla tanh RNN over 4 steps, outputs every h: BPTT through Wh",
                  fwd, _quiet(bwd), make,
                  {"truncated": _quiet(truncated), "wh_not_transposed": _quiet(wh_not_transposed),
                   "dh0_missing": _quiet(dh0_missing)})


def pairwise_dist_dups() -> Family:
    def fwd(x, y):
        diff = x[:, None, :] - y[None, :, :]
        d2 = (diff * diff).sum(axis=-1)
        pos = d2 > 0
        D = np.where(pos, np.sqrt(np.where(pos, d2, 1.0)), 0.0)
        return D, (diff, D, pos)

    def bwd(dout, c):
        diff, D, pos = c
        u = np.where(pos[..., None], diff / np.where(pos, D, 1.0)[..., None], 0.0)
        g = dout[..., None] * u
        return g.sum(axis=1), -g.sum(axis=0)

    def nan_at_duplicates(dout, c):
        diff, D, pos = c
        g = dout[..., None] * diff / D[..., None]
        return g.sum(axis=1), -g.sum(axis=0)

    def sqdist_gradient(dout, c):
        diff, D, pos = c
        g = dout[..., None] * 2.0 * diff
        return g.sum(axis=1), -g.sum(axis=0)

    def dy_sign(dout, c):
        dx, dy = bwd(dout, c)
        return dx, -dy

    def make(rng):
        x = rng.normal(size=(4, 3))
        y = rng.normal(size=(5, 3))
        y[0] = x[1]
        y[3] = x[2]
        return {"x": x, "y": y}

    return Family("pairwise_dist_dups", "Euclidean cdist with two exact duplicate pairs "
                  "(distance 0, a cone kink)", fwd, _quiet(bwd), make,
                  {"nan_at_duplicates": _quiet(nan_at_duplicates),
                   "sqdist_gradient": _quiet(sqdist_gradient), "dy_sign": _quiet(dy_sign)})


def rbf_kernel_expanded() -> Family:
    GAMMA = 10.0
    C = np.array([10.0, -8.0, 6.0])

    def fwd(x, y):
        d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T  # expanded form
        K = np.exp(-GAMMA * d2)
        return K, (x, y, K)

    def bwd(dout, c):
        x, y, K = c
        G = -2.0 * GAMMA * dout * K
        diff = x[:, None, :] - y[None, :, :]
        return (G[..., None] * diff).sum(1), -(G[..., None] * diff).sum(0)

    def missing_2(dout, c):
        x, y, K = c
        G = -GAMMA * dout * K
        diff = x[:, None, :] - y[None, :, :]
        return (G[..., None] * diff).sum(1), -(G[..., None] * diff).sum(0)

    def dy_sign(dout, c):
        dx, dy = bwd(dout, c)
        return dx, -dy

    def make(rng):
        return {"x": C + 0.1 * rng.normal(size=(4, 3)), "y": C + 0.1 * rng.normal(size=(3, 3))}

    return Family("rbf_kernel_expanded", "RBF kernel via |x|^2+|y|^2-2xy at |x|~14, spacing 0.1: "
                  "the forward cancels ~2 digits", fwd, _quiet(bwd), make,
                  {"missing_2": _quiet(missing_2), "dy_sign": _quiet(dy_sign)},
                  consts={"gamma": GAMMA}, truth_tol=1e-11)


def horner_root_cluster() -> Family:
    BASE = np.array([1.0, -5.0, 10.0, -10.0, 5.0, -1.0])  # (x - 1)^5, highest power first

    def fwd(c, x):
        return np.polyval(c, x), (c, x)

    def bwd(dout, cc):
        c, x = cc
        n = c.shape[0] - 1
        V = x[None, :] ** np.arange(n, -1, -1)[:, None]  # (n+1, M), polyval order
        return V @ dout, dout * np.polyval(np.polyder(c), x)

    def coefficient_order_reversed(dout, cc):
        dc, dx = bwd(dout, cc)
        return dc[::-1], dx

    def power_off_by_one(dout, cc):
        c, x = cc
        dc, _ = bwd(dout, cc)
        return dc, dout * x * np.polyval(np.polyder(c), x)

    def make(rng):
        c = BASE + 1e-3 * rng.normal(size=6)
        x = np.array([0.9, 0.95, 1.02, 1.1, 1.5, 2.0, 2.5, -0.5])
        return {"c": c, "x": x}

    return Family("horner_root_cluster", "np.polyval of ~(x-1)^5 near the 5-fold root: forward and "
                  "p' cancel; polyval's highest-first order", fwd, _quiet(bwd), make,
                  {"coefficient_order_reversed": _quiet(coefficient_order_reversed),
                   "power_off_by_one": _quiet(power_off_by_one)}, truth_tol=1e-12)


def lennard_jones() -> Family:
    def fwd(r):
        n = r.shape[0]
        i, j = np.triu_indices(n, 1)
        d = r[i] - r[j]
        rr = np.sqrt((d * d).sum(axis=1))
        s6 = rr ** -6
        E = (4.0 * (s6 * s6 - s6)).sum()
        return np.asarray(E), (r, i, j, d, rr)

    def _pair(c, p12=13, p6=7):
        r, i, j, d, rr = c
        dEdr = 4.0 * (-12.0 * rr ** -p12 + 6.0 * rr ** -p6)
        return dEdr[:, None] * d / rr[:, None]

    def bwd(dout, c):
        r, i, j, _, _ = c
        f = dout * _pair(c)
        g = np.zeros_like(r, dtype=np.result_type(r, f))
        np.add.at(g, i, f)
        np.add.at(g, j, -f)
        return (g,)

    def force_not_gradient(dout, c):
        (g,) = bwd(dout, c)
        return (-g,)

    def newton_third_law_forgotten(dout, c):
        r, i, j, _, _ = c
        f = dout * _pair(c)
        g = np.zeros_like(r, dtype=np.result_type(r, f))
        np.add.at(g, i, f)
        return (g,)

    def wrong_power(dout, c):
        r, i, j, _, _ = c
        f = dout * _pair(c, 12, 6)
        g = np.zeros_like(r, dtype=np.result_type(r, f))
        np.add.at(g, i, f)
        np.add.at(g, j, -f)
        return (g,)

    def make(rng):
        base = np.array([[0, 0, 0], [1.2, 0, 0], [0, 1.25, 0], [0, 0, 1.3], [1.2, 1.2, 0.9]], float)
        r = base + 0.02 * rng.normal(size=base.shape)
        r[1] = r[0] + np.array([2.0 ** (1 / 6), 0.0, 0.0])  # a pair exactly at the minimum
        r[4] = r[1] + np.array([0.0, 0.0, 0.9])              # a close, strongly repulsive pair
        return {"r": r}

    return Family("lennard_jones", "Lennard-Jones energy of 5 atoms: one pair at the force-free "
                  "distance, one at 0.9 sigma (forces ~1e2)", fwd, _quiet(bwd), make,
                  {"force_not_gradient": _quiet(force_not_gradient),
                   "newton_third_law_forgotten": _quiet(newton_third_law_forgotten),
                   "wrong_power": _quiet(wrong_power)})


def kl_gauss_vae() -> Family:
    def fwd(mu, lv):
        return 0.5 * (np.expm1(lv) + mu * mu - lv).sum(axis=1), (mu, lv)

    def bwd(dout, c):
        mu, lv = c
        return dout[:, None] * mu, dout[:, None] * 0.5 * np.expm1(lv)

    def exp_minus_one(dout, c):  # exp(lv) - 1: ~2e-10 relative for |lv| ~ 1e-6
        mu, lv = c
        return dout[:, None] * mu, dout[:, None] * 0.5 * (np.exp(lv) - 1.0)

    def missing_half(dout, c):
        mu, lv = c
        return dout[:, None] * mu, dout[:, None] * np.expm1(lv)

    def dlv_forgot_minus_one(dout, c):
        mu, lv = c
        return dout[:, None] * mu, dout[:, None] * 0.5 * np.exp(lv)

    def make(rng):
        return {"mu": rng.normal(size=(4, 5)), "lv": rng.normal(size=(4, 5)) * 1e-6}

    return Family("kl_gauss_vae", "VAE KL(N(mu, e^lv) || N(0,1)) with log-variances ~1e-6: forward "
                  "cancels to 1e-12; a 2e-10 precision bug", fwd, _quiet(bwd), make,
                  {"exp_minus_one": _quiet(exp_minus_one), "missing_half": _quiet(missing_half),
                   "dlv_forgot_minus_one": _quiet(dlv_forgot_minus_one)},
                  precision=("exp_minus_one",))


def embedding_repeated() -> Family:
    IDX = np.array([[0, 2, 2, 5, 1], [2, 0, 4, 4, 4]])

    def fwd(W):
        return W[IDX], (W,)

    def bwd(dout, c):
        (W,) = c
        dW = np.zeros(W.shape, dtype=np.result_type(W, dout))
        np.add.at(dW, IDX, dout)
        return (dW,)

    def fancy_plus_equal(dout, c):
        (W,) = c
        dW = np.zeros(W.shape, dtype=np.result_type(W, dout))
        dW[IDX] += dout
        return (dW,)

    def assign_last(dout, c):
        (W,) = c
        dW = np.zeros(W.shape, dtype=np.result_type(W, dout))
        dW[IDX] = dout
        return (dW,)

    def make(rng):
        return {"W": rng.normal(size=(6, 3))}

    return Family("embedding_repeated", "word embedding with repeated indices (one row unused): "
                  "dW[idx] += dout loses duplicates", fwd, _quiet(bwd), make,
                  {"fancy_plus_equal": _quiet(fancy_plus_equal),
                   "assign_last": _quiet(assign_last)},
                  consts={"idx": IDX})


def interp1d_coords() -> Family:
    L = 8

    def fwd(s, p):
        k = np.clip(np.floor(p).astype(int), 0, L - 2)
        f = p - k
        return (1 - f) * s[k] + f * s[k + 1], (s, p, k, f)

    def bwd(dout, c):
        s, p, k, f = c
        ds = np.zeros(s.shape, dtype=np.result_type(s, dout))
        np.add.at(ds, k, dout * (1 - f))
        np.add.at(ds, k + 1, dout * f)
        return ds, dout * (s[k + 1] - s[k])

    def ds_fancy_plus_equal(dout, c):
        s, p, k, f = c
        ds = np.zeros(s.shape, dtype=np.result_type(s, dout))
        ds[k] += dout * (1 - f)
        ds[k + 1] += dout * f
        return ds, dout * (s[k + 1] - s[k])

    def dp_sign(dout, c):
        ds, dp = bwd(dout, c)
        return ds, -dp

    def weights_swapped(dout, c):
        s, p, k, f = c
        ds = np.zeros(s.shape, dtype=np.result_type(s, dout))
        np.add.at(ds, k, dout * f)
        np.add.at(ds, k + 1, dout * (1 - f))
        return ds, dout * (s[k + 1] - s[k])

    def make(rng):
        p = rng.uniform(0.0, L - 1.0, size=6)
        p[:3] = [2.0, 4.0, 2.25]  # integer positions (kinks) and a shared cell
        return {"s": rng.normal(size=L), "p": p}

    return Family("interp1d_coords", "linear interpolation of a signal at learnable positions, "
                  "some exactly on grid points (one-sided slopes)", fwd, _quiet(bwd), make,
                  {"ds_fancy_plus_equal": _quiet(ds_fancy_plus_equal), "dp_sign": _quiet(dp_sign),
                   "weights_swapped": _quiet(weights_swapped)}, consts={"L": L})


def quad_vdot() -> Family:
    def fwd(x, A):
        return np.asarray(np.vdot(x, A @ x)), (x, A, {"x": x, "A": A})

    def bwd(dout, c):
        x, A, _ = c
        return dout * (A + A.T) @ x, dout * np.outer(x, x)

    def symmetric_assumed(dout, c):
        x, A, _ = c
        return dout * 2.0 * A @ x, dout * np.outer(x, x)

    fwd_q = fwd

    def complex_step_fooled(dout, c):
        return _complex_step_grads(fwd_q, c[2], dout)

    def make(rng):
        return {"x": rng.normal(size=6), "A": rng.normal(size=(6, 6))}

    return Family("quad_vdot", "energy np.vdot(x, A x): vdot conjugates its first argument, so "
                  "a complex step sees x^T (A - A^T) u", fwd_q, _quiet(bwd), make,
                  {"symmetric_assumed": _quiet(symmetric_assumed),
                   "complex_step_fooled": complex_step_fooled})


# ----------------------------------------------------------------------------------------------
# the catalogue

FAMILIES: tuple[Callable[[], Family], ...] = (
    erfc_tail, log_erfc_probit, logaddexp_far, softplus_threshold, log1mexp, lbeta_digamma,
    bce_logits_tf, periodic_time_gate,
    mp_linear_f32, mp_softmax_f32, mp_layerscale_f16,
    dtype_eps_normalize, dtype_eps_normalize_f32, dtype_promote_branch, log_clamp_tiny,
    gelu_tanh_f32,
    attn_causal_neginf, attn_padmask_1e9, attn_causal_f32,
    linsolve, gp_cholesky_nll, slogdet_flow, batched_det, transpose_chain,
    fft_circular_conv, rfft_power_spectrum,
    cumsum_weighted, cumprod_zeros, logcumsumexp,
    sort_ties, topk_mean_ties, median_ties, percentile_interp, maxpool1d_overlap_ties,
    maximum_pair_ties,
    masked_token_ce, safe_norm_zero_rows,
    huber_smoothl1, leaky_hardtanh,
    tiny_scale_subnormal, homog_rational_tiny, poisson_nll_extreme,
    course_features_examples, strided_conv1d, ravel_order_A,
    rmsnorm, rmsnorm_f32, gru_cell, rnn_bptt, pairwise_dist_dups, rbf_kernel_expanded,
    horner_root_cluster, lennard_jones, kl_gauss_vae, embedding_repeated, interp1d_coords,
    quad_vdot,
)

SYNTH_SIZES = (1e-2, 1e-4, 1e-6, 1e-9)
SYNTH_PATTERNS = ("element", "slice", "uniform", "noise")


def perturbed(correct: Backward, grad_index: int, pattern: str, rel: float,
              wide: bool = False) -> Backward:
    """The correct backward with gradient `grad_index` perturbed deterministically by `rel`
    (relative to its largest element; `uniform` multiplies by 1 + rel), computed in float64
    when `wide` (then cast back to the gradient's dtype)."""

    def backward(dout, cache):
        grads = list(correct(dout, cache))
        i = grad_index % len(grads)
        g = np.array(grads[i], copy=True)
        dtype = g.dtype
        if wide:
            g = g.astype(np.float64)
        scale = float(np.max(np.abs(g))) if g.size else 0.0
        if pattern == "uniform":
            g = g * (1.0 + rel)
        elif pattern == "element":
            g.flat[g.size // 2] += rel * scale
        elif pattern == "slice":
            if g.ndim >= 2:
                g[-1] += rel * scale
            else:
                g[: max(1, g.size // 3)] += rel * scale
        elif pattern == "noise":
            z = np.random.default_rng(12345).standard_normal(g.shape)
            g = g + rel * scale * z / max(float(np.max(np.abs(z))), 1e-300)
        else:
            raise ValueError(pattern)
        grads[i] = g.astype(dtype, copy=False)
        return tuple(grads)

    return backward


def built(makers: Sequence[Callable[[], Family]]) -> tuple[Family, ...]:
    """Every family of a catalogue, made once; their names must be unique."""
    out = tuple(make() for make in makers)
    names = [f.name for f in out]
    assert len(set(names)) == len(names), "family names must be unique"
    return out


def named(fams: Sequence[Family], name: str) -> Family:
    for f in fams:
        if f.name == name:
            return f
    raise KeyError(name)


# (family index, number of gradients) -> the synthetic perturbations: (rel, pattern, gradient)
SynthPlan = Callable[[int, int], list[tuple[float, str, int]]]


def catalog_cases(fams: Sequence[Family], plan: SynthPlan, wide: bool = False
                  ) -> tuple[Case, ...]:
    """A catalogue's cases: each family's correct backward, its alternates, its bugs, and the
    synthetic perturbations ``plan`` names (computed in float64 when ``wide``)."""
    out: list[Case] = []
    for fi, fam in enumerate(fams):
        out.append(Case(fam.name, "correct", "correct", fam.forward, fam.backward, fam.make_inputs,
                        fam.backward))
        for name, b in fam.alternates.items():
            out.append(Case(fam.name, name, "correct", fam.forward, b, fam.make_inputs,
                            fam.backward, "another valid convention at ties/thresholds"))
        for name, b in fam.bugs.items():
            kind = "precision" if name in fam.precision else "bug"
            out.append(Case(fam.name, name, kind, fam.forward, b, fam.make_inputs, fam.backward,
                            fam.bug_notes.get(name, "")))
        names = list(fam.make_inputs(np.random.default_rng(0)))
        for rel, pattern, gi in plan(fi, len(names)):
            out.append(Case(fam.name, f"synth_{pattern}_{rel:.0e}_d{names[gi]}", "synthetic",
                            fam.forward, perturbed(fam.backward, gi, pattern, rel, wide),
                            fam.make_inputs, fam.backward,
                            f"{pattern} perturbation of d{names[gi]}, relative {rel:.0e}"))
    return tuple(out)


def catalogue(makers: Sequence[Callable[[], Family]], plan: SynthPlan, wide: bool = False
              ) -> tuple[Callable[[], tuple[Family, ...]], Callable[[str], Family],
                         Callable[[], list[Case]]]:
    """A catalogue module's API, ``families, family, cases = catalogue(FAMILIES, _plan)``: its
    families and cases made once, on first use (:func:`built`, :func:`named`,
    :func:`catalog_cases`)."""
    @lru_cache(maxsize=1)
    def families() -> tuple[Family, ...]:
        return built(makers)

    def family(name: str) -> Family:
        return named(families(), name)

    @lru_cache(maxsize=1)
    def made() -> tuple[Case, ...]:
        return catalog_cases(families(), plan, wide)

    def cases() -> list[Case]:
        return list(made())

    return families, family, cases


def _plan(fi: int, n: int) -> list[tuple[float, str, int]]:
    return [(rel, SYNTH_PATTERNS[(j + fi) % len(SYNTH_PATTERNS)], (j + fi) % n)
            for j, rel in enumerate(SYNTH_SIZES)]


families, family, cases = catalogue(FAMILIES, _plan)
