"""Ground truth for tests/adversary_catalog.py, independent of gradcheck.

Every correct backward (and every alternate valid convention) of the adversarial catalogue is
compared with torch autograd in float64 on the same forward re-expressed in torch, or, for special
functions in their tails and the root-cluster polynomial, with mpmath at 60 digits
(``mpmath.diff`` of the function, not of a derivative formula). Selection ops with exact ties are
compared twice: on tie-free jittered inputs element by element, and on the tied inputs through
the sum of the gradient over each group of tied elements (the same for every valid subgradient
convention). Prints, per family, the worst relative deviation ``||numpy - truth||_inf /
||truth||_inf`` over seeds and gradients, the tolerance, and the measured size of every bug.

    .venv/bin/python bench/adversary_truth.py [--seeds 3] [--family SUBSTR] [--json PATH]

Needs torch (``pip install torch==2.13.0``) and mpmath. Exit code 1 if any family is over its
tolerance.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import adversary_catalog as ac  # noqa: E402
import mpmath as mp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_default_dtype(torch.float64)
mp.mp.dps = 60

T = torch.Tensor


def _t(a: np.ndarray) -> T:
    return torch.tensor(np.ascontiguousarray(a), dtype=torch.float64, requires_grad=True)


# ----------------------------------------------------------------------------------------------
# forwards re-expressed in torch (float64), keyed by family; each takes (family, numpy inputs,
# torch inputs) and returns the output tensor


def _softmax_attn(q, k, v, scale, mask=None, add=None):
    s = q @ k.transpose(-1, -2) * scale
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    if add is not None:
        s = s + add
    return torch.softmax(s, dim=-1) @ v


def _normalize(fam, npi, t):
    eps = float(np.finfo(npi["x"].dtype).eps)
    x = t["x"]
    return x / torch.sqrt((x * x).sum(1, keepdim=True) + eps)


def _gru(fam, npi, t):
    H = fam.consts["H"]
    x, h, Wx, Wh, b = t["x"], t["h"], t["Wx"], t["Wh"], t["b"]
    gx, gh = x @ Wx + b, h @ Wh
    r = torch.sigmoid(gx[:, :H] + gh[:, :H])
    z = torch.sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = torch.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h


def _rnn(fam, npi, t):
    x, h, Wx, Wh, b = t["x"], t["h0"], t["Wx"], t["Wh"], t["b"]
    hs = []
    for i in range(x.shape[0]):
        h = torch.tanh(x[i] @ Wx + h @ Wh + b)
        hs.append(h)
    return torch.stack(hs)


def _gp(fam, npi, t):
    Lr, y = t["Lr"], t["y"]
    n = Lr.shape[0]
    K = Lr @ Lr.T + fam.consts["sig2"] * torch.eye(n)
    L = torch.linalg.cholesky(K)
    z = torch.linalg.solve_triangular(L, y[:, None], upper=False)[:, 0]
    return 0.5 * (z * z).sum() + torch.log(torch.diagonal(L)).sum()


def _slogdet(fam, npi, t):
    W, x = t["W"], t["x"]
    z = x @ W
    return 0.5 * (z * z).sum(1) - torch.linalg.slogdet(W)[1]


def _ce(fam, npi, t):
    mask = torch.tensor(fam.consts["mask"])
    tg = torch.tensor(fam.consts["targets"])
    lg = t["logits"]
    nll = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1), reduction="none")
    nll = nll.reshape(tg.shape)
    return torch.where(mask, nll, torch.zeros_like(nll)).sum() / mask.sum()


def _safe_norm(fam, npi, t):
    x = t["x"]
    ss = (x * x).sum(1)
    pos = ss > 0
    safe = torch.sqrt(torch.where(pos, ss, torch.ones_like(ss)))
    return torch.where(pos, safe, torch.zeros_like(ss))


def _pairdist(fam, npi, t):
    d = t["x"][:, None, :] - t["y"][None, :, :]
    d2 = (d * d).sum(-1)
    pos = d2 > 0
    safe = torch.sqrt(torch.where(pos, d2, torch.ones_like(d2)))
    return torch.where(pos, safe, torch.zeros_like(d2))


def _huber(fam, npi, t):
    D = fam.consts["delta"]
    r = t["pred"] - t["target"]
    a = r.abs()
    return torch.where(a <= D, 0.5 * r * r, D * (a - 0.5 * D))


def _lj(fam, npi, t):
    r = t["r"]
    i, j = np.triu_indices(r.shape[0], 1)
    d = r[i] - r[j]
    rr = torch.sqrt((d * d).sum(1))
    s6 = rr ** -6
    return (4.0 * (s6 * s6 - s6)).sum()


def _interp(fam, npi, t):
    L = fam.consts["L"]
    s, p = t["s"], t["p"]
    k = torch.clamp(torch.floor(p.detach()).long(), 0, L - 2)
    f = p - k.to(p.dtype)
    return (1 - f) * s[k] + f * s[k + 1]


def _ravel(fam, npi, t):
    x = t["x"]
    a = npi["x"]
    flat = x.T.reshape(-1) if (a.flags.f_contiguous and not a.flags.c_contiguous) else x.reshape(-1)
    return torch.cumsum(flat * t["w"], 0)


def _attn_causal(fam, npi, t):
    T_ = fam.consts["T"]
    mask = torch.tril(torch.ones(T_, T_, dtype=torch.bool))
    return _softmax_attn(t["q"], t["k"], t["v"], 1.0 / math.sqrt(fam.consts["d"]), mask=mask)


def _attn_pad(fam, npi, t):
    add = torch.tensor(np.where(fam.consts["keymask"], 0.0, -1e9)[:, None, :])
    return _softmax_attn(t["q"], t["k"], t["v"], fam.consts["scale"], add=add)


def _rms(fam, npi, t):
    x, g = t["x"], t["g"]
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + fam.consts["eps"]) * g


TINY = float(np.finfo(np.float64).tiny)


def _power(X):
    return X.real ** 2 + X.imag ** 2


def _leaky_hardtanh(fam, npi, t):
    c = torch.clamp(t["x"], -1.0, 1.0)
    return c + fam.consts["leak"] * (t["x"] - c)


def _gelu(fam, npi, t):
    x = t["x"]
    k0, k1 = math.sqrt(2.0 / math.pi), 0.044715
    return 0.5 * x * (1 + torch.tanh(k0 * (x + k1 * x ** 3)))


TORCH: dict[str, Callable[[Any, dict, dict], T]] = {
    "logaddexp_far": lambda f, n, t: torch.logaddexp(t["x"], t["y"]),
    "softplus_threshold": lambda f, n, t: F.softplus(t["x"], beta=1.0, threshold=20.0),
    "lbeta_digamma": lambda f, n, t: (torch.lgamma(t["a"]) + torch.lgamma(t["b"])
                                      - torch.lgamma(t["a"] + t["b"])),
    "bce_logits_tf": lambda f, n, t: (torch.logaddexp(torch.zeros_like(t["x"]), t["x"])
                                      - t["x"] * t["t"]),
    "periodic_time_gate": lambda f, n, t: (torch.sigmoid(t["w"])
                                           * torch.sin(f.consts["omega"] * t["t"])),
    "mp_linear_f32": lambda f, n, t: t["x"] @ t["w"] + t["b"],
    "mp_softmax_f32": lambda f, n, t: torch.softmax(t["x"], dim=1),
    "mp_layerscale_f16": lambda f, n, t: t["x"] + f.consts["alpha"] * torch.tanh(t["x"]),
    "dtype_eps_normalize": _normalize,
    "dtype_eps_normalize_f32": _normalize,
    "dtype_promote_branch": lambda f, n, t: torch.tanh(t["x"]) * t["w"],
    "log_clamp_tiny": lambda f, n, t: t["w"] * torch.log(torch.clamp(t["x"], min=TINY)),
    "gelu_tanh_f32": _gelu,
    "attn_causal_neginf": _attn_causal,
    "attn_causal_f32": _attn_causal,
    "attn_padmask_1e9": _attn_pad,
    "linsolve": lambda f, n, t: torch.linalg.solve(t["A"], t["b"]),
    "gp_cholesky_nll": _gp,
    "slogdet_flow": _slogdet,
    "batched_det": lambda f, n, t: torch.linalg.det(t["A"]),
    "transpose_chain": lambda f, n, t: t["A"].T @ t["X"] @ t["B"],
    "fft_circular_conv": lambda f, n, t: torch.fft.irfft(
        torch.fft.rfft(t["x"], dim=-1) * torch.fft.rfft(t["k"]), n=f.consts["N"], dim=-1),
    "rfft_power_spectrum": lambda f, n, t: _power(torch.fft.rfft(t["x"], dim=-1)),
    "cumsum_weighted": lambda f, n, t: torch.cumsum(t["x"] * t["w"], 1),
    "cumprod_zeros": lambda f, n, t: torch.cumprod(t["x"], 1),
    "logcumsumexp": lambda f, n, t: torch.logcumsumexp(t["x"], 1),
    "sort_ties": lambda f, n, t: torch.sort(t["x"], dim=1).values,
    "topk_mean_ties": lambda f, n, t: torch.topk(t["x"], f.consts["K"], dim=1).values.mean(1),
    "median_ties": lambda f, n, t: torch.median(t["x"], dim=1).values,
    "percentile_interp": lambda f, n, t: torch.quantile(t["x"], f.consts["q"] / 100.0, dim=1),
    "maxpool1d_overlap_ties": lambda f, n, t: F.max_pool1d(t["x"][:, None, :], f.consts["W"],
                                                           stride=1)[:, 0],
    "maximum_pair_ties": lambda f, n, t: torch.maximum(t["a"], t["b"]),
    "masked_token_ce": _ce,
    "safe_norm_zero_rows": _safe_norm,
    "huber_smoothl1": _huber,
    "leaky_hardtanh": _leaky_hardtanh,
    "tiny_scale_subnormal": lambda f, n, t: t["w"] * torch.tanh(t["x"]),  # unscaled; see _scale
    "homog_rational_tiny": lambda f, n, t: ((t["x"] ** 3 + t["y"] ** 3)
                                            / (t["x"] ** 2 + t["y"] ** 2)),
    "poisson_nll_extreme": lambda f, n, t: (torch.exp(t["eta"])
                                            - torch.tensor(f.consts["Y"]) * t["eta"]),
    "course_features_examples": lambda f, n, t: torch.tanh(t["W"] @ t["X"] + t["b"]),
    "strided_conv1d": lambda f, n, t: F.conv1d(t["x"][:, None, :], t["w"][None, None, :],
                                               dilation=f.consts["DIL"])[:, 0],
    "ravel_order_A": _ravel,
    "rmsnorm": _rms,
    "rmsnorm_f32": _rms,
    "gru_cell": _gru,
    "rnn_bptt": _rnn,
    "pairwise_dist_dups": _pairdist,
    "rbf_kernel_expanded": lambda f, n, t: torch.exp(
        -f.consts["gamma"] * ((t["x"][:, None, :] - t["y"][None, :, :]) ** 2).sum(-1)),
    "lennard_jones": _lj,
    "kl_gauss_vae": lambda f, n, t: 0.5 * (torch.expm1(t["lv"]) + t["mu"] ** 2 - t["lv"]).sum(1),
    "embedding_repeated": lambda f, n, t: t["W"][torch.tensor(f.consts["idx"])],
    "interp1d_coords": _interp,
    "quad_vdot": lambda f, n, t: t["x"] @ (t["A"] @ t["x"]),
}

# input rescalings that keep the truth exact and out of under/overflow:
# (scale applied to inputs, scale applied to the resulting gradients)
RESCALE = {"homog_rational_tiny": (2.0 ** 330, 1.0), "tiny_scale_subnormal": (1.0, 2.0 ** -1040)}

# elementwise special functions: mpmath, differentiated numerically at 60 digits
MP_ELEMENTWISE: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "erfc_tail": ("x", lambda v: mp.erfc(v)),
    "log_erfc_probit": ("x", lambda v: mp.log(mp.erfc(v))),
    "log1mexp": ("a", lambda v: mp.log(1 - mp.exp(-v))),
}


def _mp_elementwise(fam, inputs, dout):
    name, f = MP_ELEMENTWISE[fam.name]
    x = inputs[name]
    g = np.empty(x.shape)
    for idx in np.ndindex(x.shape):
        g[idx] = float(mp.diff(f, mp.mpf(float(x[idx]))) * mp.mpf(float(dout[idx])))
    return (g,)


def _mp_horner(fam, inputs, dout):
    c, x = inputs["c"], inputs["x"]
    cm = [mp.mpf(float(v)) for v in c]
    n = len(cm) - 1

    def p(t):
        return sum(cm[k] * t ** (n - k) for k in range(n + 1))

    dc = np.array([float(sum(mp.mpf(float(dout[i])) * mp.mpf(float(x[i])) ** (n - k)
                             for i in range(len(x)))) for k in range(n + 1)])
    dx = np.array([float(mp.diff(p, mp.mpf(float(x[i]))) * mp.mpf(float(dout[i])))
                   for i in range(len(x))])
    return dc, dx


def _mp_kl(fam, inputs, dout):
    # torch's autograd of expm1(lv) - lv cancels (exp(lv) - 1 in the backward): mpmath instead
    mu, lv = inputs["mu"], inputs["lv"]
    f = lambda v: (mp.exp(v) - 1 - v) / 2  # noqa: E731
    dmu = np.empty(mu.shape)
    dlv = np.empty(lv.shape)
    for i, j in np.ndindex(mu.shape):
        d = mp.mpf(float(dout[i]))
        dmu[i, j] = float(d * mp.diff(lambda v: v * v / 2, mp.mpf(float(mu[i, j]))))
        dlv[i, j] = float(d * mp.diff(f, mp.mpf(float(lv[i, j]))))
    return dmu, dlv


MP_CUSTOM = {"horner_root_cluster": _mp_horner, "kl_gauss_vae": _mp_kl}

# where a kink admits an interval of valid values, the truth checks membership there and equality
# elsewhere: family -> fn(inputs, dout) -> per gradient (mask of kink elements, lo, hi)
def _hardtanh_kinks(fam, inputs, dout):
    x = inputs["x"]
    at = np.abs(x) == 1.0
    a, b = fam.consts["leak"] * dout, 1.0 * dout
    return [(at, np.minimum(a, b), np.maximum(a, b))]


KINKS = {"leaky_hardtanh": _hardtanh_kinks}


def truth(fam: ac.Family, inputs: dict[str, np.ndarray],
          dout: np.ndarray) -> tuple[np.ndarray, ...]:
    """The gradient of <dout, forward(inputs)> from torch or mpmath, as float64 arrays."""
    if fam.name in MP_ELEMENTWISE:
        return _mp_elementwise(fam, inputs, dout)
    if fam.name in MP_CUSTOM:
        return MP_CUSTOM[fam.name](fam, inputs, dout)
    s_in, s_out = RESCALE.get(fam.name, (1.0, 1.0))
    npi = {k: np.asarray(v, dtype=np.float64) * s_in for k, v in inputs.items()}
    t = {k: _t(v) for k, v in npi.items()}
    out = TORCH[fam.name](fam, inputs, t)  # the original arrays: their dtype and layout
    g = torch.autograd.grad(out, list(t.values()), torch.tensor(np.asarray(dout, dtype=np.float64)),
                            allow_unused=True)
    return tuple((np.zeros(v.shape) if gi is None else gi.detach().numpy()) * s_out
                 for gi, v in zip(g, npi.values(), strict=True))


# ----------------------------------------------------------------------------------------------
# comparisons


def rel_inf(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    d = float(np.max(np.abs(a - b))) if a.size else 0.0
    if not math.isfinite(d):
        return math.inf
    n = float(np.max(np.abs(b))) if b.size else 0.0
    if n == 0.0:
        return 0.0 if d == 0.0 else math.inf
    return d / n


def _group_sums(fam: ac.Family, inputs: dict[str, np.ndarray], grads: tuple) -> list[np.ndarray]:
    """Sums of the gradient over each group of exactly tied elements (same for every valid
    subgradient convention)."""
    if fam.name == "maximum_pair_ties":
        a, b = inputs["a"], inputs["b"]
        da, db = (np.asarray(g, dtype=np.float64) for g in grads)
        tie = a == b
        return [np.where(tie, da + db, da), np.where(tie, 0.0, db)]
    x = inputs["x"]
    (dx,) = grads
    dx = np.asarray(dx, dtype=np.float64)
    out = []
    for r in range(x.shape[0]):
        for v in np.unique(x[r]):
            out.append(dx[r][x[r] == v].sum())
    return [np.array(out)]


def _jitter(inputs: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for k, v in inputs.items():
        ramp = 1 + np.arange(v.size).reshape(v.shape) / v.size
        out[k] = v + 1e-6 * ramp * rng.standard_normal(v.shape)
    return out


def _dout(out: Any, dtype: Any, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(rng.normal(size=np.shape(out))).astype(dtype)


def _layer_dtype(inputs: dict[str, np.ndarray]) -> Any:
    return next(iter(inputs.values())).dtype


def check_family(fam: ac.Family, seeds: int) -> dict[str, Any]:
    devs: dict[str, float] = {}
    tie_devs: dict[str, float] = {}
    bug_sizes: dict[str, float] = {}
    convs = {"correct": fam.backward, **fam.alternates}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        inputs = fam.make_inputs(rng)
        dt = _layer_dtype(inputs)
        variants = [("", inputs)]
        if fam.ties:
            variants = [("jitter", _jitter(inputs, np.random.default_rng(100 + seed)))]
        for _, inp in variants:
            out, cache = fam.forward(**inp)
            dout = _dout(out, np.asarray(out).dtype, np.random.default_rng(1000 + seed))
            tg = truth(fam, inp, dout)
            kinks = KINKS[fam.name](fam, inp, dout) if fam.name in KINKS else None
            for name, b in convs.items():
                got = b(dout, cache)
                if kinks is not None:  # valid where inside the interval: take the truth's value
                    got = tuple(np.where(m & (g >= lo) & (g <= hi), t, g)
                                for g, t, (m, lo, hi) in zip(got, tg, kinks, strict=True))
                d = max(rel_inf(g, t) for g, t in zip(got, tg, strict=True))
                devs[name] = max(devs.get(name, 0.0), d)
        if fam.ties:  # the tied inputs themselves, through group sums
            out, cache = fam.forward(**inputs)
            dout = _dout(out, np.asarray(out).dtype, np.random.default_rng(1000 + seed))
            tg = _group_sums(fam, inputs, truth(fam, inputs, dout))
            for name, b in convs.items():
                got = _group_sums(fam, inputs, b(dout, cache))
                d = max(rel_inf(g, t) for g, t in zip(got, tg, strict=True))
                tie_devs[name] = max(tie_devs.get(name, 0.0), d)
        # the size of every bug against the correct backward on these inputs
        out, cache = fam.forward(**inputs)
        dout = _dout(out, np.asarray(out).dtype, np.random.default_rng(1000 + seed))
        ref = fam.backward(dout, cache)
        for name, b in fam.bugs.items():
            with np.errstate(all="ignore"):
                got = b(dout, cache)
            d = max(rel_inf(g, r) for g, r in zip(got, ref, strict=True))
            bug_sizes[name] = max(bug_sizes.get(name, 0.0), d)
        del dt
    worst = max(list(devs.values()) + list(tie_devs.values()))
    mp_source = fam.name in MP_ELEMENTWISE or fam.name in MP_CUSTOM
    return {"family": fam.name,
            "dtype": str(_layer_dtype(fam.make_inputs(np.random.default_rng(0)))),
            "source": "mpmath" if mp_source else "torch",
            "kink_intervals": fam.name in KINKS,
            "deviation": devs, "tie_group_deviation": tie_devs, "worst": worst,
            "tol": fam.truth_tol, "ok": worst <= fam.truth_tol, "bug_sizes": bug_sizes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--family", default="")
    ap.add_argument("--json", default=None)
    ap.add_argument("--catalog", default="adversary_catalog",
                    help="catalogue module under tests/ (default adversary_catalog); another one "
                         "brings its own truth_torch()/truth_mp()/truth_kinks()")
    args = ap.parse_args(argv)
    if args.catalog != "adversary_catalog":
        import importlib

        global ac
        ac = importlib.import_module(args.catalog)
        TORCH.update(getattr(ac, "truth_torch", dict)())
        MP_CUSTOM.update(getattr(ac, "truth_mp", dict)())
        KINKS.update(getattr(ac, "truth_kinks", dict)())
    rows = []
    t0 = time.time()
    print(f"{'family':26s} {'dtype':8s} {'source':7s} {'worst dev':>10s} {'tol':>8s}  ok   "
          f"conventions / tie-group devs; bug sizes (min)")
    for fam in ac.families():
        if args.family not in fam.name:
            continue
        r = check_family(fam, args.seeds)
        rows.append(r)
        conv = ", ".join(f"{k}={v:.1e}" for k, v in r["deviation"].items())
        ties = ", ".join(f"{k}={v:.1e}" for k, v in r["tie_group_deviation"].items())
        small = min(r["bug_sizes"].values()) if r["bug_sizes"] else float("nan")
        print(f"{fam.name:26s} {r['dtype']:8s} {r['source']:7s} {r['worst']:10.2e} "
              f"{r['tol']:8.0e}  "
              f"{'ok ' if r['ok'] else 'BAD'}  {conv}" + (f" | ties: {ties}" if ties else "")
              + f"; smallest bug {small:.1e}")
    bad = [r["family"] for r in rows if not r["ok"]]
    zero_bugs = [(r["family"], b) for r in rows for b, s in r["bug_sizes"].items() if s == 0.0]
    print(f"\n{len(rows)} families, {sum(len(r['deviation']) for r in rows)} correct conventions; "
          f"over tolerance: {bad or 'none'}; bugs identical to the correct backward: "
          f"{zero_bugs or 'none'}; {time.time() - t0:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
