"""A catalog of CORRECT layers for issue 10, written from scratch, and an independent oracle.

Every layer here has a NumPy forward and a hand-written backward that is the exact derivative of
that forward (in exact arithmetic). None of it goes through gradcheck: the layers are what a
learner would write, and :func:`oracle` verifies each one against a numerical derivative of the
*same forward* evaluated in 60-digit arithmetic (``mpmath`` object arrays; ``np.longdouble`` where
the forward cannot run on them), so that a false alarm of the checker on this catalog is the
checker's fault and not a wrong entry.

:func:`correct_cases` returns the catalog, seeded and deterministic. ``Case.named`` marks the
cases issue 10 names explicitly; ``Case.zero`` lists the inputs whose gradient is exactly zero in
exact arithmetic (the checker should report them as status ``"zero"``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck import from_functions

__all__ = ["Case", "Fn", "correct_cases", "oracle", "verify"]


@dataclass(frozen=True, eq=False)
class Case:
    """One catalog entry: a layer, its inputs and what the checker should say about it.

    ``dout`` is passed to ``check_layer`` when set; ``bug`` marks a wrong layer. ``zero`` names
    inputs whose gradient is
    exactly zero; ``kink`` names inputs evaluated at a non-differentiable point on purpose;
    ``expect`` (bug cases) is a word the report must contain; ``options`` are extra keyword
    arguments of ``check_layer``; ``oracle`` those of :func:`oracle` (one-sided judgement at
    kinks, tie-keeping directions); ``named`` marks cases the issue names explicitly.
    """

    family: str
    id: str
    layer: Any
    inputs: dict[str, np.ndarray]
    dout: np.ndarray | None = None
    named: bool = False
    zero: tuple[str, ...] = ()
    kink: tuple[str, ...] = ()
    expect: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    oracle: dict[str, Any] = field(default_factory=dict)  # keyword arguments of :func:`oracle`
    bug: bool = False  # a wrong backward: the checker must reject it

    @property
    def key(self) -> str:
        return f"{self.family}-{self.id}"


class Fn:
    """A layer from ``forward(**inputs) -> (out, cache)`` and ``backward(dout, cache) -> dict``."""

    def __init__(self, name: str, forward: Callable[..., Any],
                 backward: Callable[..., Any]) -> None:
        self.name, self._forward, self._backward = name, forward, backward

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        return self._forward(**inputs)

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        return self._backward(dout, cache)

    def __repr__(self) -> str:
        return f"Fn({self.name})"


def _rng(*key: int | str) -> np.random.Generator:
    words = [k % 2**32 if isinstance(k, int) else sum(map(ord, k)) for k in key]
    return np.random.default_rng(words)


# --- affine ----------------------------------------------------------------------------------


def affine_forward(x, w, b):
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


# --- BatchNorm in four forward styles, two backward forms ----------------------------------


def _bn_finish(x, mu, var, gamma, beta, eps):
    std = np.sqrt(var + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (xhat, std, gamma)


def bn_forward_npvar(x, gamma, beta, bn_param):
    return _bn_finish(x, x.mean(axis=0), np.var(x, axis=0), gamma, beta, bn_param["eps"])


def bn_forward_npstd(x, gamma, beta, bn_param):
    return _bn_finish(x, x.mean(axis=0), np.std(x, axis=0) ** 2, gamma, beta, bn_param["eps"])


def bn_forward_twopass(x, gamma, beta, bn_param):
    mu = x.mean(axis=0)
    xc = x - mu
    return _bn_finish(x, mu, (xc * xc).mean(axis=0), gamma, beta, bn_param["eps"])


def bn_forward_ex2(x, gamma, beta, bn_param):
    mu = x.mean(axis=0)
    return _bn_finish(x, mu, (x * x).mean(axis=0) - mu * mu, gamma, beta, bn_param["eps"])


def bn_backward_compact(dout, cache):
    xhat, std, gamma = cache
    n = xhat.shape[0]
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dx = gamma / (n * std) * (n * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def bn_backward_staged(dout, cache):
    xhat, std, gamma = cache
    n = xhat.shape[0]
    xc = xhat * std
    dxhat = dout * gamma
    dvar = (dxhat * xc).sum(axis=0) * -0.5 / (std * std * std)
    dmu = -(dxhat / std).sum(axis=0) - 2.0 * dvar * xc.mean(axis=0)
    dx = dxhat / std + dvar * 2.0 * xc / n + dmu / n
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


BN_STYLES = {
    "npvar": bn_forward_npvar, "npstd": bn_forward_npstd,
    "twopass": bn_forward_twopass, "ex2": bn_forward_ex2,
}


def _bn_layer(style: str, backward: Callable[..., Any], eps: float = 1e-5) -> Any:
    return from_functions(BN_STYLES[style], backward, config={"bn_param": {"eps": eps}},
                          name=f"bn_{style}")


def _bn_x(rng: np.random.Generator, n: int, d: int, ratio: float, dtype: Any = np.float64):
    """Channels with |mean|/std spread over 1..ratio and stds over 0.03..100 (shuffled)."""
    ratios = rng.permutation(np.logspace(0.0, np.log10(ratio), d))
    stds = rng.permutation(np.logspace(np.log10(0.03), 2.0, d))
    means = ratios * stds * rng.choice([-1.0, 1.0], size=d)
    return (means + stds * rng.standard_normal((n, d))).astype(dtype)


# --- normalisations over rows and groups -----------------------------------------------------


def _ln_core(z, eps):
    mu = z.mean(axis=-1, keepdims=True)
    zc = z - mu
    std = np.sqrt((zc * zc).mean(axis=-1, keepdims=True) + eps)
    return zc / std, std


def _ln_back(dxhat, xhat, std):
    m = xhat.shape[-1]
    return (dxhat - dxhat.sum(axis=-1, keepdims=True) / m
            - xhat * (dxhat * xhat).sum(axis=-1, keepdims=True) / m) / std


def layernorm_layer(eps: float = 1e-5) -> Fn:
    def forward(x, gamma, beta):
        xhat, std = _ln_core(x, eps)
        return gamma * xhat + beta, (xhat, std, gamma)

    def backward(dout, cache):
        xhat, std, gamma = cache
        return {"x": _ln_back(dout * gamma, xhat, std), "gamma": (dout * xhat).sum(axis=0),
                "beta": dout.sum(axis=0)}

    return Fn("layernorm", forward, backward)


def shift_layernorm_layer(gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> Fn:
    """LayerNorm(x + s) with a per-row shift s of shape (N, 1): ds is exactly zero."""

    def forward(x, s):
        xhat, std = _ln_core(x + s, eps)
        return gamma * xhat + beta, (xhat, std)

    def backward(dout, cache):
        xhat, std = cache
        dz = _ln_back(dout * gamma, xhat, std)
        return {"x": dz, "s": dz.sum(axis=1, keepdims=True)}

    return Fn("shift_layernorm", forward, backward)


def groupnorm_layer(groups: int, eps: float = 1e-5) -> Fn:
    def forward(x, gamma, beta):
        n, c, h, w = x.shape
        xhat_g, std = _ln_core(x.reshape(n, groups, -1), eps)
        xhat = xhat_g.reshape(n, c, h, w)
        return gamma[None, :, None, None] * xhat + beta[None, :, None, None], (xhat, std, gamma)

    def backward(dout, cache):
        xhat, std, gamma = cache
        n, c, h, w = xhat.shape
        dxhat = (dout * gamma[None, :, None, None]).reshape(n, groups, -1)
        dx = _ln_back(dxhat, xhat.reshape(n, groups, -1), std).reshape(n, c, h, w)
        return {"x": dx, "gamma": (dout * xhat).sum(axis=(0, 2, 3)),
                "beta": dout.sum(axis=(0, 2, 3))}

    return Fn("groupnorm", forward, backward)


# --- softmax family --------------------------------------------------------------------------


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_layer() -> Fn:
    def forward(x):
        y = _softmax(x)
        return y, y

    def backward(dout, y):
        return {"x": y * (dout - (dout * y).sum(axis=1, keepdims=True))}

    return Fn("softmax", forward, backward)


def shift_softmax_layer() -> Fn:
    def forward(x, s):
        y = _softmax(x + s)
        return y, y

    def backward(dout, y):
        dz = y * (dout - (dout * y).sum(axis=1, keepdims=True))
        return {"x": dz, "s": dz.sum(axis=1, keepdims=True)}

    return Fn("shift_softmax", forward, backward)


def log_softmax_layer() -> Fn:
    def forward(x):
        z = x - x.max(axis=1, keepdims=True)
        out = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return out, out

    def backward(dout, out):
        return {"x": dout - np.exp(out) * dout.sum(axis=1, keepdims=True)}

    return Fn("log_softmax", forward, backward)


def cross_entropy_layer(labels: np.ndarray) -> Fn:
    """Mean softmax cross-entropy; the labels are fixed in the closure, logits the only input."""
    labels = np.array(labels, copy=True)

    def forward(x):
        n = x.shape[0]
        z = x - x.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -logp[np.arange(n), labels].sum() / n, np.exp(logp)

    def backward(dout, p):
        n = p.shape[0]
        d = p.copy()
        d[np.arange(n), labels] -= 1
        return {"x": d * (dout / n)}

    return Fn("cross_entropy", forward, backward)


# --- element-wise ----------------------------------------------------------------------------


def tanh_layer() -> Fn:
    def forward(x):
        y = np.tanh(x)
        return y, y

    return Fn("tanh", forward, lambda dout, y: {"x": dout * (1 - y * y)})


def sigmoid_layer() -> Fn:
    def forward(x):
        y = 1 / (1 + np.exp(-x))
        return y, y

    return Fn("sigmoid", forward, lambda dout, y: {"x": dout * y * (1 - y)})


def exp_layer() -> Fn:
    def forward(x):
        y = np.exp(x)
        return y, y

    return Fn("exp", forward, lambda dout, y: {"x": dout * y})


def log_layer() -> Fn:
    return Fn("log", lambda x: (np.log(x), x), lambda dout, x: {"x": dout / x})


def scaled_affine_layer(c: float) -> Fn:
    """c * (x @ w): huge or tiny outputs."""

    def forward(x, w):
        return c * (x @ w), (x, w)

    def backward(dout, cache):
        x, w = cache
        return {"x": c * (dout @ w.T), "w": c * (x.T @ dout)}

    return Fn(f"scaled_affine_{c:g}", forward, backward)


def scaled_tanh_layer(c: float) -> Fn:
    """c * tanh(x) * w with a per-column weight."""

    def forward(x, w):
        y = np.tanh(x)
        return c * y * w, (y, w)

    def backward(dout, cache):
        y, w = cache
        return {"x": c * dout * w * (1 - y * y), "w": c * (dout * y).sum(axis=0)}

    return Fn(f"scaled_tanh_{c:g}", forward, backward)


def sin_plus_y_layer() -> Fn:
    def forward(x, y):
        return np.sin(x) + y, x

    return Fn("sin_plus_y", forward, lambda dout, x: {"x": dout * np.cos(x), "y": dout})


def channel_scale_layer() -> Fn:
    """w * x**2 / 2 with per-channel scales of x and w spread over 1e-3 .. 1e3."""

    def forward(x, w):
        return w * x * x / 2, (x, w)

    def backward(dout, cache):
        x, w = cache
        return {"x": dout * w * x, "w": (dout * x * x / 2).sum(axis=0)}

    return Fn("channel_scale", forward, backward)


def mlp_layer() -> Fn:
    """tanh(x @ W1 + b1) @ W2 + b2."""

    def forward(x, w1, b1, w2, b2):
        h = np.tanh(x @ w1 + b1)
        return h @ w2 + b2, (x, w1, w2, h)

    def backward(dout, cache):
        x, w1, w2, h = cache
        dh = dout @ w2.T
        da = dh * (1 - h * h)
        return {"x": da @ w1.T, "w1": x.T @ da, "b1": da.sum(axis=0), "w2": h.T @ dout,
                "b2": dout.sum(axis=0)}

    return Fn("mlp", forward, backward)


def affine_bn_layer(eps: float = 1e-5) -> Fn:
    """BatchNorm(x @ w + b): the bias before a normalisation is redundant, db is exactly zero."""

    def forward(x, w, b, gamma, beta):
        a = x @ w + b
        out, bn_cache = bn_forward_twopass(a, gamma, beta, {"eps": eps})
        return out, (x, w, bn_cache)

    def backward(dout, cache):
        x, w, bn_cache = cache
        da, dgamma, dbeta = bn_backward_compact(dout, bn_cache)
        return {"x": da @ w.T, "w": x.T @ da, "b": da.sum(axis=0), "gamma": dgamma,
                "beta": dbeta}

    return Fn("affine_bn", forward, backward)


# --- the catalog -----------------------------------------------------------------------------

SHAPES_2D = ((2, 3), (5, 4), (16, 6), (64, 3))


def _affine_cases() -> list[Case]:
    cases = []
    for n, d, m in ((2, 3, 4), (5, 4, 3), (16, 8, 5), (64, 3, 2)):
        for scale in (1.0, 1e3, 1e-3):
            for seed in range(2):
                r = _rng("affine", n, d, seed, int(np.log10(scale)) + 10)
                inputs = {"x": scale * r.standard_normal((n, d)) + scale * r.normal(size=d),
                          "w": r.standard_normal((d, m)) / scale,
                          "b": r.standard_normal(m)}
                cases.append(Case("affine", f"{n}x{d}x{m}-s{scale:g}-{seed}",
                                  from_functions(affine_forward, affine_backward), inputs))
    return cases


def _affine_bn_cases() -> list[Case]:
    cases = []
    for n, d, m in ((4, 3, 2), (8, 5, 4), (32, 4, 6), (64, 2, 3)):
        for seed in range(3):
            r = _rng("affine_bn", n, d, seed)
            inputs = {"x": r.normal(2.0, 3.0, (n, d)), "w": r.standard_normal((d, m)),
                      "b": r.normal(5.0, 2.0, m), "gamma": r.uniform(0.5, 2.0, m),
                      "beta": r.standard_normal(m)}
            cases.append(Case("affine_bn", f"{n}x{d}x{m}-{seed}", affine_bn_layer(), inputs,
                              named=True, zero=("b",)))
    return cases


def _bn_cases() -> list[Case]:
    cases = []
    backs = (bn_backward_compact, bn_backward_staged)
    for style in BN_STYLES:
        ratios = (1.0, 30.0, 1e3) if style == "ex2" else (1.0, 1e3, 1e6)
        for ratio in ratios:
            for n in (2, 8, 64):
                for seed in range(2):
                    r = _rng("bn", style, n, seed, int(np.log10(ratio)))
                    d = 5
                    inputs = {"x": _bn_x(r, n, d, ratio), "gamma": r.uniform(0.5, 2.0, d),
                              "beta": r.standard_normal(d)}
                    back = backs[seed % 2]
                    cases.append(Case(f"bn_{style}",
                                      f"r{ratio:g}-n{n}-{back.__name__[12:]}-{seed}",
                                      _bn_layer(style, back), inputs, named=True))
    return cases


def _bn_const_dout_cases() -> list[Case]:
    """Constant user dout: dx and dgamma are exactly zero (sum of xhat is zero)."""
    cases = []
    for style in BN_STYLES:
        for n, seed in ((8, 0), (32, 1)):
            r = _rng("bn_const", style, n, seed)
            d = 4
            inputs = {"x": r.normal(1.0, 2.0, (n, d)), "gamma": r.uniform(0.5, 2.0, d),
                      "beta": r.standard_normal(d)}
            cases.append(Case("bn_const_dout", f"{style}-n{n}-{seed}",
                              _bn_layer(style, bn_backward_compact), inputs,
                              dout=np.full((n, d), 0.7), named=True, zero=("x", "gamma")))
    return cases


def _norm_cases() -> list[Case]:
    cases = []
    for n, d in SHAPES_2D:
        for offset in (0.0, 1e3):
            for seed in range(2):
                r = _rng("ln", n, d, seed, int(offset))
                x = offset * r.standard_normal((n, 1)) + r.standard_normal((n, d)) * r.uniform(
                    0.05, 20.0, (n, 1))
                inputs = {"x": x, "gamma": r.uniform(0.5, 2.0, d), "beta": r.standard_normal(d)}
                cases.append(Case("layernorm", f"{n}x{d}-o{offset:g}-{seed}", layernorm_layer(),
                                  inputs))
    for n, d in SHAPES_2D:
        for seed in range(2):
            r = _rng("sln", n, d, seed)
            layer = shift_layernorm_layer(r.uniform(0.5, 2.0, d), r.standard_normal(d))
            inputs = {"x": r.normal(0.0, 2.0, (n, d)), "s": r.normal(3.0, 5.0, (n, 1))}
            cases.append(Case("shift_layernorm", f"{n}x{d}-{seed}", layer, inputs, named=True,
                              zero=("s",)))
    for (n, c, h, w), g in (((2, 4, 3, 3), 2), ((3, 6, 2, 2), 3), ((2, 4, 2, 3), 1),
                            ((4, 8, 2, 2), 4)):
        for seed in range(2):
            r = _rng("gn", n, c, seed)
            x = r.normal(1.0, 3.0, (n, c, h, w)) * r.uniform(0.1, 10.0, (1, c, 1, 1))
            inputs = {"x": x, "gamma": r.uniform(0.5, 2.0, c), "beta": r.standard_normal(c)}
            cases.append(Case("groupnorm", f"{n}x{c}x{h}x{w}-g{g}-{seed}", groupnorm_layer(g),
                              inputs))
    return cases


def _softmax_cases() -> list[Case]:
    cases = []
    for n, d in SHAPES_2D:
        for scale in (1.0, 10.0, 30.0):
            for seed in range(2):
                r = _rng("sm", n, d, seed, int(scale))
                x = scale * r.standard_normal((n, d)) + r.normal(0, 100.0, (n, 1))
                cases.append(Case("softmax", f"{n}x{d}-s{scale:g}-{seed}", softmax_layer(),
                                  {"x": x}))
    for n, d in SHAPES_2D:
        for seed in range(2):
            r = _rng("ssm", n, d, seed)
            inputs = {"x": r.normal(0.0, 2.0, (n, d)), "s": r.normal(0.0, 10.0, (n, 1))}
            cases.append(Case("shift_softmax", f"{n}x{d}-{seed}", shift_softmax_layer(), inputs,
                              named=True, zero=("s",)))
    for n, d in SHAPES_2D:
        for scale in (1.0, 10.0, 30.0):
            r = _rng("lsm", n, d, int(scale))
            cases.append(Case("log_softmax", f"{n}x{d}-s{scale:g}", log_softmax_layer(),
                              {"x": scale * r.standard_normal((n, d))}))
    for n, d in SHAPES_2D:
        for scale in (1.0, 5.0, 20.0):
            r = _rng("ce", n, d, int(scale))
            labels = r.integers(0, d, n)
            cases.append(Case("cross_entropy", f"{n}x{d}-s{scale:g}", cross_entropy_layer(labels),
                              {"x": scale * r.standard_normal((n, d))}))
    return cases


def _saturated_x(r: np.random.Generator, shape: tuple[int, ...], sign: float) -> np.ndarray:
    return sign * r.uniform(8.0, 18.0, shape)


def _activation_cases() -> list[Case]:
    cases = []
    for fam, make in (("tanh_saturated", tanh_layer), ("sigmoid_saturated", sigmoid_layer)):
        for shape in ((4, 3), (16, 4), (64, 2)):
            for sign in (1.0, -1.0):
                for seed in range(2):
                    r = _rng(fam, shape[0], seed, int(sign))
                    cases.append(Case(fam, f"{shape[0]}x{shape[1]}-{'pos' if sign > 0 else 'neg'}"
                                      f"-{seed}", make(), {"x": _saturated_x(r, shape, sign)},
                                      named=True))
    for fam, make in (("tanh_mixed", tanh_layer), ("sigmoid_mixed", sigmoid_layer)):
        for scale in (0.5, 3.0, 10.0, 20.0):
            for seed in range(2):
                r = _rng(fam, seed, int(scale))
                cases.append(Case(fam, f"s{scale:g}-{seed}", make(),
                                  {"x": scale * r.standard_normal((8, 5))}))
    return cases


def _float32_cases() -> list[Case]:
    f32 = np.float32
    cases = []
    for seed in range(3):
        r = _rng("f32", seed)
        n, d = (4, 8, 32)[seed], 3
        x = r.normal(1.0, 2.0, (n, d)).astype(f32)
        cases += [
            Case("float32", f"affine-{seed}", from_functions(affine_forward, affine_backward),
                 {"x": x, "w": r.standard_normal((d, 4)).astype(f32),
                  "b": r.standard_normal(4).astype(f32)}, named=True),
            Case("float32", f"bn_twopass-{seed}", _bn_layer("twopass", bn_backward_compact),
                 {"x": _bn_x(r, max(n, 4), d, 10.0, f32), "gamma": r.uniform(0.5, 2, d).astype(f32),
                  "beta": r.standard_normal(d).astype(f32)}, named=True),
            Case("float32", f"bn_npvar-{seed}", _bn_layer("npvar", bn_backward_staged),
                 {"x": _bn_x(r, max(n, 4), d, 3.0, f32), "gamma": r.uniform(0.5, 2, d).astype(f32),
                  "beta": r.standard_normal(d).astype(f32)}, named=True),
            Case("float32", f"softmax-{seed}", softmax_layer(),
                 {"x": (3 * r.standard_normal((n, 5))).astype(f32)}, named=True),
            Case("float32", f"tanh-{seed}", tanh_layer(),
                 {"x": (2 * r.standard_normal((n, 4))).astype(f32)}, named=True),
            Case("float32", f"layernorm-{seed}", layernorm_layer(),
                 {"x": r.normal(0.0, 3.0, (n, 6)).astype(f32),
                  "gamma": r.uniform(0.5, 2, 6).astype(f32),
                  "beta": r.standard_normal(6).astype(f32)}, named=True),
            Case("float32", f"cross_entropy-{seed}", cross_entropy_layer(r.integers(0, 5, n)),
                 {"x": (2 * r.standard_normal((n, 5))).astype(f32)}, named=True),
        ]
    return cases


def _scale_cases() -> list[Case]:
    cases = []
    for fam, scales in (("huge", (1e150, 1e8)), ("tiny", (1e-150, 1e-8))):
        for c in scales:
            for seed in range(3):
                r = _rng(fam, seed, int(np.log10(c)) + 200)
                n = (3, 8, 20)[seed]
                cases.append(Case(fam, f"affine-c{c:g}-{seed}", scaled_affine_layer(c),
                                  {"x": r.standard_normal((n, 4)), "w": r.standard_normal((4, 3))},
                                  named=True))
                cases.append(Case(fam, f"tanh-c{c:g}-{seed}", scaled_tanh_layer(c),
                                  {"x": 2 * r.standard_normal((n, 3)),
                                   "w": r.standard_normal(3)}, named=True))
    return cases


def _misc_cases() -> list[Case]:
    cases = []
    for n, d in ((4, 3), (16, 4), (64, 2), (8, 8)):
        for seed in range(2):
            r = _rng("siny", n, d, seed)
            inputs = {"x": r.standard_normal((n, d)), "y": 1e6 * r.standard_normal((n, d))}
            cases.append(Case("sin_plus_y", f"{n}x{d}-{seed}", sin_plus_y_layer(), inputs,
                              named=True))
    for n, d in ((4, 7), (16, 7), (32, 4)):
        for seed in range(4):
            r = _rng("chs", n, d, seed)
            xs = r.permutation(np.logspace(-3, 3, d))
            ws = r.permutation(np.logspace(-3, 3, d))
            inputs = {"x": xs * r.standard_normal((n, d)), "w": ws * r.uniform(0.5, 2.0, d)}
            cases.append(Case("channel_scale", f"{n}x{d}-{seed}", channel_scale_layer(), inputs,
                              named=True))
    for lo, hi in ((-5.0, 5.0), (-30.0, 30.0), (-1.0, 1.0), (10.0, 50.0)):
        for seed in range(2):
            r = _rng("exp", seed, int(hi))
            cases.append(Case("exp", f"{lo:g}..{hi:g}-{seed}", exp_layer(),
                              {"x": r.uniform(lo, hi, (6, 4))}))
    for lo, hi in ((-3, 3), (-1, 1), (0, 6), (-8, -2)):
        for seed in range(2):
            r = _rng("log", seed, hi + 10)
            cases.append(Case("log", f"1e{lo}..1e{hi}-{seed}", log_layer(),
                              {"x": 10.0 ** r.uniform(lo, hi, (6, 4))}))
    for n, d, h, m in ((2, 3, 4, 2), (8, 4, 6, 3), (16, 5, 8, 4)):
        for seed in range(4):
            r = _rng("mlp", n, seed)
            inputs = {"x": r.standard_normal((n, d)), "w1": r.standard_normal((d, h)) / np.sqrt(d),
                      "b1": 0.1 * r.standard_normal(h), "w2": r.standard_normal((h, m)),
                      "b2": r.standard_normal(m)}
            cases.append(Case("mlp", f"{n}x{d}x{h}x{m}-{seed}", mlp_layer(), inputs))
    return cases


@functools.lru_cache(maxsize=1)
def _cached() -> tuple[Case, ...]:
    return tuple(_affine_cases() + _affine_bn_cases() + _bn_cases() + _bn_const_dout_cases()
                 + _norm_cases() + _softmax_cases() + _activation_cases() + _float32_cases()
                 + _scale_cases() + _misc_cases())


def correct_cases() -> list[Case]:
    """The catalog of correct layers (seeded: the same cases on every call)."""
    return list(_cached())


# --- the oracle ------------------------------------------------------------------------------

DPS = 60


def _mp():
    import mpmath

    mpmath.mp.dps = DPS
    # NumPy's object loops call x.exp(), x.log(), ...: give mpf those methods. (mpf.exp is
    # otherwise a read-only property, the binary exponent, which mpmath itself never reads.)
    if not getattr(mpmath.mpf, "_gradcheck_catalog", False):
        for name in ("exp", "log", "tanh", "sin", "cos"):
            setattr(mpmath.mpf, name, _method(getattr(mpmath, name)))
        mpmath.mpf._gradcheck_catalog = True
    return mpmath


def _method(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda self: fn(self)


def _to_mp(a: Any) -> np.ndarray:
    mpmath = _mp()
    arr = np.asarray(a, dtype=np.float64)
    flat = np.empty(arr.size, dtype=object)
    flat[:] = [mpmath.mpf(float(v)) for v in arr.reshape(-1)]
    return flat.reshape(arr.shape)


@dataclass(frozen=True)
class OracleRow:
    """One comparison: along a direction or at one element."""

    name: str
    where: str
    analytic: float
    numeric: float
    error: float
    allowed: float

    @property
    def ok(self) -> bool:
        return self.error <= self.allowed


def _objective(layer: Any, inputs: dict[str, Any], g: Any) -> Callable[[str, Any], Any]:
    def f(name: str, value: Any) -> Any:
        out, _ = layer.forward({**inputs, name: value})
        return np.sum(g * np.asarray(out))

    return f


def _precise(layer: Any, inputs: dict[str, np.ndarray], g: np.ndarray, precision: str = "auto"):
    """Run forward and backward in 60-digit arithmetic, else in long double.

    ``precision="longdouble"`` for forwards that silently leave mpmath (``astype(float)``,
    ``float(x)``): they would drop a 1e-25 perturbation just as they drop an imaginary part.
    """
    try:
        if precision == "longdouble":
            raise TypeError("long double requested")
        mp_inputs = {k: _to_mp(v) for k, v in inputs.items()}
        out, cache = layer.forward(dict(mp_inputs))
        if np.asarray(out).dtype != object:
            raise TypeError("forward left mpmath")
        grads = layer.backward(_to_mp(g), cache)
        if any(np.asarray(grads[k]).dtype != object for k in inputs):
            raise TypeError("backward left mpmath")
        return mp_inputs, _to_mp(g), grads, "mp"
    except (TypeError, AttributeError, ValueError):
        ld = {k: np.asarray(v, dtype=np.longdouble) for k, v in inputs.items()}
        gl = np.asarray(g, dtype=np.longdouble)
        _, cache = layer.forward(dict(ld))
        return ld, gl, layer.backward(gl, cache), "longdouble"


def _derivative(f: Callable[[str, Any], Any], name: str, x: Any, u: Any, kind: str,
                side: int = 0) -> tuple[Any, float]:
    """d/dt f(x + t u) at 0 and its rounding bound: central (side 0) or one-sided (+1/-1)."""
    scale = float(np.max(np.abs(np.asarray(x, dtype=np.float64)))) + 1e-300
    if kind == "mp":
        h = _mp().mpf(10) ** -25 * max(scale, 1e-30)
        tiny = _mp().mpf(10) ** (-DPS + 5)
    else:
        h, tiny = np.longdouble(1e-5) * max(scale, 1.0), np.finfo(np.longdouble).eps * 100
    if side == 0:
        hi, lo = f(name, x + h * u), f(name, x - h * u)
        d = (hi - lo) / (2 * h)
        if kind != "mp":  # Richardson on a half step: truncation O(h^4)
            d2 = (f(name, x + h / 2 * u) - f(name, x - h / 2 * u)) / h
            d = (4 * d2 - d) / 3
    else:
        hi, lo = (f(name, x + h * u), f(name, x)) if side > 0 else (f(name, x), f(name, x - h * u))
        d = (hi - lo) / h
    bound = float(tiny * (abs(hi) + abs(lo)) / h)
    return d, bound


def oracle(layer: Any, inputs: Mapping[str, np.ndarray], dout: np.ndarray | None = None, *,
           elements: int = 3, seed: int = 0, rtol: float | None = None,
           kinks: bool = False, directions: tuple[str, ...] = ("random",),
           precision: str = "auto") -> list[OracleRow]:
    """Compare a layer's backward with a high-precision numerical derivative of its forward.

    In 60-digit arithmetic (mpmath object arrays) both the analytic side (the backward run on
    them) and the numerical side (central differences with h = 1e-25 |x|) are exact to ~1e-30,
    so ``rtol`` defaults to 1e-20; in the long-double fallback to 1e-7. Directions: "random"
    (dense Gaussian) and "ones" (shift every element together: keeps ties in max-pooling).
    With ``kinks`` the elements are judged one-sidedly: the analytic value must lie in the closed
    interval of the left and right derivatives.
    """
    base = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    out64, _ = layer.forward(dict(base))
    r = np.random.default_rng([seed, 7])
    g = np.asarray(dout, dtype=np.float64) if dout is not None else r.standard_normal(
        np.shape(out64))
    p_inputs, p_g, grads, kind = _precise(layer, base, g, precision)
    tol = rtol if rtol is not None else (1e-20 if kind == "mp" else 1e-7)
    f = _objective(layer, p_inputs, p_g)
    rows = []
    for name, x in p_inputs.items():
        a = np.asarray(grads[name])
        for label in directions:
            u = r.standard_normal(x.shape) if label == "random" else np.ones(x.shape)
            uu = u.astype(object) if kind == "mp" else u.astype(np.longdouble)
            rows.append(_compare(f, name, x, a, uu, label, kind, tol, kinks))
        for k in r.choice(x.size, size=min(elements, x.size), replace=False):
            e = np.zeros(x.size)
            e[k] = 1.0
            e = e.reshape(x.shape)
            ue = e.astype(object) if kind == "mp" else e.astype(np.longdouble)
            idx = tuple(int(i) for i in np.unravel_index(k, x.shape))
            rows.append(_compare(f, name, x, a, ue, f"element {idx}", kind, tol, kinks))
    return rows


def _compare(f, name, x, a, u, label, kind, tol, kinks) -> OracleRow:
    claimed = np.sum(a * u)
    size = float(np.sum(np.abs(np.asarray(a * u, dtype=np.float64))))
    if not kinks:
        n, bound = _derivative(f, name, x, u, kind)
        err = float(abs(claimed - n))
        return OracleRow(name, label, float(claimed), float(n), err,
                         tol * max(size, float(abs(n))) + bound)
    right, b1 = _derivative(f, name, x, u, kind, +1)
    left, b2 = _derivative(f, name, x, u, kind, -1)
    lo, hi = min(left, right), max(left, right)
    err = float(max(lo - claimed, claimed - hi, 0))
    return OracleRow(name, f"{label} [{float(left):.6g}, {float(right):.6g}]", float(claimed),
                     float((left + right) / 2), err,
                     tol * max(size, float(abs(hi)), float(abs(lo))) + b1 + b2)


def float64_backward_error(case: Case) -> dict[str, float]:
    """How far the case's own-dtype backward is from the 60-digit one (relative, max element):
    the rounding the checker's analytic budget must allow for."""
    inputs = {k: np.array(v, copy=True) for k, v in case.inputs.items()}
    out, cache = case.layer.forward(dict(inputs))
    r = np.random.default_rng([0, 7])
    g = case.dout if case.dout is not None else r.standard_normal(np.shape(out))
    own = case.layer.backward(np.asarray(g, dtype=np.asarray(out).dtype), cache)
    base = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    _, _, exact, _ = _precise(case.layer, base, np.asarray(g, dtype=np.float64))
    result = {}
    for k in inputs:
        e = np.asarray(exact[k], dtype=np.float64)
        diff = np.abs(np.asarray(own[k], dtype=np.float64) - e)
        scale = float(np.max(np.abs(e), initial=0.0))
        result[k] = float(np.max(diff, initial=0.0)) / scale if scale else float(np.max(diff))
    return result


def verify(case: Case, *, seed: int = 0) -> list[OracleRow]:
    """The oracle's rows that disagree with ``case``'s backward (empty for a correct case)."""
    rows = oracle(case.layer, case.inputs, case.dout, seed=seed, **case.oracle)
    return [r for r in rows if not r.ok]
