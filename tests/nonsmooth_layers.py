"""Correct NON-SMOOTH layers for issue 11 (kinks, ties, a seeded random forward), and buggy ones.

Written from scratch in the course style (naive loops for max-pooling). Each correct backward is
the derivative of its forward wherever that exists, and at a kink a valid choice (inside the
closed interval of the one-sided derivatives, element by element; for max-pool ties also along
the direction that moves the tied elements together).

:func:`nonsmooth_cases` draws, for one seed, every layer at random inputs, at deliberate
near-kinks (inputs within 1e-6..1e-3 of the kink; two values of a pooling window within
1e-3..3e-2 of each other) and at exact kinks (ReLU/abs at 0, exact ties, integer-valued data;
``Case.kink`` names the input). :func:`nonsmooth_bugs` are wrong layers the checker must reject.
"""

from __future__ import annotations

import numpy as np
from correct_layers import Case, Fn

__all__ = ["nonsmooth_bugs", "nonsmooth_cases"]

POOL = 2  # 2x2 windows, stride 2
CLIP = (-1.0, 1.0)
LEAK = 0.01


# --- layers ----------------------------------------------------------------------------------


def relu_layer() -> Fn:
    return Fn("relu", lambda x: (np.maximum(0, x), x), lambda dout, x: {"x": dout * (x > 0)})


def relu_leaky_bug_layer() -> Fn:
    """BUG: the backward lets the gradient through at negative inputs."""
    return Fn("relu_bug", lambda x: (np.maximum(0, x), x), lambda dout, x: {"x": dout * 1.0})


def leaky_relu_layer() -> Fn:
    return Fn("leaky_relu", lambda x: (np.where(x > 0, x, LEAK * x), x),
              lambda dout, x: {"x": dout * np.where(x > 0, 1.0, LEAK)})


def abs_layer() -> Fn:
    return Fn("abs", lambda x: (np.abs(x), x), lambda dout, x: {"x": dout * np.sign(x)})


def clip_layer() -> Fn:
    lo, hi = CLIP
    return Fn("clip", lambda x: (np.clip(x, lo, hi), x),
              lambda dout, x: {"x": dout * ((x > lo) & (x < hi))})


def _pool_forward(x):
    n, c, h, w = x.shape
    out = np.zeros((n, c, h // POOL, w // POOL), dtype=x.dtype)
    for i in range(n):
        for j in range(c):
            for r in range(h // POOL):
                for s in range(w // POOL):
                    win = x[i, j, POOL * r:POOL * r + POOL, POOL * s:POOL * s + POOL]
                    out[i, j, r, s] = win.max()
    return out, x


def _pool_backward(rule: str):
    def backward(dout, x):
        n, c, h, w = x.shape
        dx = np.zeros_like(x)
        for i in range(n):
            for j in range(c):
                for r in range(h // POOL):
                    for s in range(w // POOL):
                        win = x[i, j, POOL * r:POOL * r + POOL, POOL * s:POOL * s + POOL]
                        dx[i, j, POOL * r:POOL * r + POOL, POOL * s:POOL * s + POOL] += (
                            dout[i, j, r, s] * _route(win, rule))
        return {"x": dx}

    return backward


def _route(win, rule: str):
    """Where a window's upstream gradient goes: first maximum, equal split, or (bug) every tie."""
    zeros = win * 0  # the window's own number type, so an equal split is exact in any precision
    mask = np.where(win == win.max(), zeros + 1, zeros)
    if rule == "first":
        first = np.zeros(win.size)
        first[int(np.argmax(win.reshape(-1)))] = 1.0  # argmax returns the first maximum
        return first.reshape(win.shape)
    if rule == "split":
        return mask / mask.sum()
    return mask  # "all": the full dout to every tied element (a bug at ties)


def maxpool_layer(rule: str) -> Fn:
    return Fn(f"max_pool_{rule}", _pool_forward, _pool_backward(rule))


def hinge_layer(labels: np.ndarray) -> Fn:
    """Multiclass SVM loss, mean over the batch, margin 1; labels fixed in the closure."""
    labels = np.array(labels, copy=True)

    def forward(x):
        n = x.shape[0]
        margins = np.maximum(0, x - x[np.arange(n), labels][:, None] + 1)
        margins[np.arange(n), labels] = 0
        return margins.sum() / n, (x, margins)

    def backward(dout, cache):
        x, margins = cache
        n = x.shape[0]
        binary = (margins > 0) * 1.0
        binary[np.arange(n), labels] = -binary.sum(axis=1)
        return {"x": binary * (dout / n)}

    return Fn("svm_hinge", forward, backward)


def dropout_layer(p: float, seed: int | None) -> Fn:
    """Inverted dropout; the mask comes from default_rng(seed) inside forward (None: a BUG)."""

    def forward(x):
        rng = np.random.default_rng(seed)
        mask = (rng.random(x.shape) < p) / p
        return x * mask, mask

    return Fn("dropout" if seed is not None else "dropout_unseeded", forward,
              lambda dout, mask: {"x": dout * mask})


# --- inputs ----------------------------------------------------------------------------------


def _near(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Signed offsets of size 1e-6 .. 1e-3 from a kink."""
    return r.choice([-1.0, 1.0], size=shape) * 10.0 ** r.uniform(-6.0, -3.0, shape)


def _integers(r: np.random.Generator, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    return r.integers(lo, hi + 1, shape).astype(np.float64)


def _pool_near_ties(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random windows where the runner-up sits 1e-3 .. 3e-2 below the maximum."""
    x = r.standard_normal(shape)
    n, c, h, w = shape
    for i, j, a, b in np.ndindex(n, c, h // POOL, w // POOL):
        win = x[i, j, POOL * a:POOL * a + POOL, POOL * b:POOL * b + POOL]
        flat = np.argsort(win.reshape(-1))
        top, second = np.unravel_index(flat[-1], win.shape), np.unravel_index(flat[-2], win.shape)
        win[second] = win[top] - 10.0 ** r.uniform(-3.0, np.log10(3e-2))
    return x


def _pool_exact_ties(r: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Integer data (ties are common) and one tie forced in the first window."""
    x = _integers(r, shape, 0, 3)
    x[0, 0, 0, 1] = x[0, 0, 0, 0] = x[0, 0, :POOL, :POOL].max()
    return x


def _hinge_scores(r: np.random.Generator, labels: np.ndarray, kind: str) -> np.ndarray:
    n, c = labels.size, 4
    if kind == "random":
        return r.standard_normal((n, c))
    if kind == "exact":
        x = _integers(r, (n, c), 0, 3)
        j = (labels[0] + 1) % c
        x[0, j] = x[0, labels[0]] - 1  # margin exactly zero
        return x
    x = r.standard_normal((n, c))
    rows = np.arange(n)
    others = (labels + 1 + r.integers(0, c - 1, n)) % c
    x[rows, others] = x[rows, labels] - 1 + _near(r, (n,))  # margins within 1e-3 of zero
    return x


# --- the catalogs ----------------------------------------------------------------------------


def _elementwise(seed: int) -> list[Case]:
    r = np.random.default_rng([seed, 11])
    shape = (4, 5)
    lo, hi = CLIP
    cases = []
    for family, make in (("relu", relu_layer), ("leaky_relu", leaky_relu_layer),
                         ("abs", abs_layer)):
        random, near = r.standard_normal(shape), _near(r, shape)
        at_kink = _integers(r, shape, -3, 3)
        at_kink.flat[0] = 0.0  # 20 integers in -3..3 miss 0 one time in 22: force the kink
        cases += [
            Case(family, f"random-s{seed}", make(), {"x": random}),
            Case(family, f"near-s{seed}", make(), {"x": near}),
            Case(family, f"exact-s{seed}", make(), {"x": at_kink},
                 kink=("x",), oracle={"kinks": True, "directions": ("ones",), "elements": 8}),
        ]
    bounds = r.choice([lo, hi], size=shape)
    exact = _integers(r, shape, -2, 2)
    exact.flat[0] = hi
    cases += [
        Case("clip", f"random-s{seed}", clip_layer(), {"x": 1.5 * r.standard_normal(shape)}),
        Case("clip", f"near-s{seed}", clip_layer(), {"x": bounds + _near(r, shape)}),
        Case("clip", f"exact-s{seed}", clip_layer(), {"x": exact}, kink=("x",),
             oracle={"kinks": True, "directions": (), "elements": 8}),
    ]
    return cases


def _pooling(seed: int) -> list[Case]:
    r = np.random.default_rng([seed, 12])
    shape = (2, 2, 4, 4)
    cases = []
    for rule in ("first", "split"):
        family = f"max_pool_{rule}"
        cases += [
            Case(family, f"random-s{seed}", maxpool_layer(rule), {"x": r.standard_normal(shape)}),
            Case(family, f"near-tie-s{seed}", maxpool_layer(rule),
                 {"x": _pool_near_ties(r, shape)}),
            Case(family, f"exact-tie-s{seed}", maxpool_layer(rule),
                 {"x": _pool_exact_ties(r, shape)}, kink=("x",),
                 oracle={"kinks": True, "directions": ("ones",), "elements": 8}),
        ]
    return cases


def _losses(seed: int) -> list[Case]:
    r = np.random.default_rng([seed, 13])
    labels = r.integers(0, 4, 5)
    cases = [
        Case("svm_hinge", f"{kind}-s{seed}", hinge_layer(labels),
             {"x": _hinge_scores(r, labels, kind)},
             kink=("x",) if kind == "exact" else (),
             oracle={"kinks": True, "directions": ("ones",), "elements": 8}
             if kind == "exact" else {})
        for kind in ("random", "near", "exact")
    ]
    p = (0.5, 0.7, 0.9)[seed % 3]
    cases.append(Case("dropout", f"p{p:g}-s{seed}", dropout_layer(p, seed),
                      {"x": r.standard_normal((6, 5))}))
    return cases


def nonsmooth_cases(seed: int) -> list[Case]:
    """The correct non-smooth layers for one seed: random, near-kink and exact-kink inputs."""
    return _elementwise(seed) + _pooling(seed) + _losses(seed)


def nonsmooth_bugs() -> list[Case]:
    """Wrong non-smooth layers: each must fail. ``expect`` is a word the report must contain."""
    cases: list[Case] = []
    shape = (2, 2, 4, 4)
    for seed in range(6):
        r = np.random.default_rng([seed, 21])
        cases.append(Case("max_pool_all_ties", f"exact-tie-s{seed}", maxpool_layer("all"),
                          {"x": _pool_exact_ties(r, shape)}, kink=("x",),
                          oracle={"kinks": True, "directions": ("ones",), "elements": 8},
                          bug=True))
        cases.append(Case("relu_through_negative", f"random-s{seed}", relu_leaky_bug_layer(),
                          {"x": r.standard_normal((4, 5))}, bug=True))
        cases.append(Case("dropout_unseeded", f"s{seed}", dropout_layer(0.5, None),
                          {"x": r.standard_normal((6, 5))}, expect="seed", bug=True))
    return cases

