"""Non-analytic operations for the complex-step probe stress test of issue 11.

Each operation ``V`` (abs, norm, ``.real``, ``astype(float)``, ``conj`` after ``np.asarray``,
maximum, max, comparisons, sign·x, clip, round, var, sort, median, floor, a ``float()`` cast)
enters a layer through ``a = sin(x) + x`` as

* ``all``: ``out = a * V(a)`` (the operation touches every output), or
* ``col``: ``out = a`` except column ``j``, where ``out[:, j] = a[:, j] * V(a)[:, j]`` (only one
  column is non-analytic; the rest would fool a probe that samples a few elements).

Backwards: ``correct`` (the exact derivative); ``fooled``, the derivative a complex step gives on
this forward, computed by running that complex step, included only where it differs from the
correct one (abs, norm, real, astype, conj, sign·x, var); ``identity``, the op's derivative
treated as the identity (the "forgot the mask" bug; a row reduction's as the mean), where that
differs. A complex step that
raises (floor, ``float()``) or is exact (maximum, max, comparisons, clip, round, sort, median
away from ties) has no ``fooled`` variant.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from correct_layers import Case, Fn

__all__ = ["OPS", "probe_cases"]

SEEDS = 6
CLIP = 0.5
# These forwards leave mpmath silently (to float64), so the oracle runs them in long double.
_ORACLE = {"astype_float": {"precision": "longdouble"}, "float_cast": {"precision": "longdouble"}}


def _onehot_max(a, v):
    hot = np.zeros(a.shape)
    hot[np.arange(a.shape[0]), np.argmax(np.real(a), axis=1)] = 1.0
    return hot


def _sort_vjp(a, w):
    order = np.argsort(np.real(a), axis=1)
    out = np.zeros(a.shape, dtype=w.dtype)
    np.put_along_axis(out, order, w, axis=1)
    return out


def _median_vjp(a, w):
    d = a.shape[1]
    order = np.argsort(np.real(a), axis=1)
    mids = [d // 2] if d % 2 else [d // 2 - 1, d // 2]
    out = np.zeros(a.shape, dtype=w.dtype)
    for m in mids:
        np.put_along_axis(out, order[:, m:m + 1], w / len(mids), axis=1)
    return out


def _astype(a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        return a.astype(float)


def _float_cast(a):
    return a * 0 + float(a[0, 0])


def _float_cast_vjp(a, w):
    out = np.zeros(a.shape, dtype=w.dtype)
    out[0, 0] = w.sum()
    return out


# name: (V(a), vjp(a, w) = sum_i w_i dV_i/da, reduces over rows)
OPS: dict[str, tuple[Callable[[Any], Any], Callable[[Any, Any], Any], bool]] = {
    "abs": (np.abs, lambda a, w: w * np.sign(a), False),
    "linalg_norm": (lambda a: np.linalg.norm(a, axis=1, keepdims=True),
                    lambda a, w: w * a / np.linalg.norm(a, axis=1, keepdims=True), True),
    "real": (np.real, lambda a, w: w, False),
    "astype_float": (_astype, lambda a, w: w, False),
    "conj_asarray": (lambda a: np.conj(np.asarray(a)), lambda a, w: w, False),
    "maximum": (lambda a: np.maximum(a, 0), lambda a, w: w * (a > 0), False),
    "max": (lambda a: np.max(a, axis=1, keepdims=True),
            lambda a, w: w * _onehot_max(a, w), True),
    "where_gt": (lambda a: np.where(a > 0, a, 0.1 * a),
                 lambda a, w: w * np.where(a > 0, 1.0, 0.1), False),
    "sign_times_x": (lambda a: np.sign(a) * a, lambda a, w: w * np.sign(a), False),
    "clip": (lambda a: np.clip(a, -CLIP, CLIP), lambda a, w: w * ((a > -CLIP) & (a < CLIP)),
             False),
    "round": (lambda a: a - np.round(a), lambda a, w: w, False),
    "var": (lambda a: np.var(a, axis=1, keepdims=True),
            lambda a, w: w * 2 * (a - a.mean(axis=1, keepdims=True)) / a.shape[1], True),
    "sort": (lambda a: np.sort(a, axis=1), _sort_vjp, False),
    "median": (lambda a: np.median(a, axis=1, keepdims=True), _median_vjp, True),
    "floor": (lambda a: a - np.floor(a), lambda a, w: w, False),
    "float_cast": (_float_cast, _float_cast_vjp, False),
}


def _columns(reduces: bool, j: int | None):
    """Which column of V goes with output column j (a row reduction has one)."""
    return None if j is None else (0 if reduces else j)


def _forward(op: str, j: int | None) -> Callable[[Any], Any]:
    value = OPS[op][0]
    jj = _columns(OPS[op][2], j)

    def forward(x):
        a = np.sin(x) + x
        v = value(a)
        if j is None:
            out = a * v
        else:
            out = a.copy()
            out[:, j] = a[:, j] * v[:, jj]
        return out

    return forward


def _backward(op: str, j: int | None, kind: str) -> Callable[[Any, Any], Any]:
    value, vjp, reduces = OPS[op]
    jj = _columns(reduces, j)
    if kind == "identity":
        vjp = _identity_vjp(reduces)

    def backward(dout, x):
        a = np.sin(x) + x
        v = np.broadcast_to(value(a), a.shape) if not reduces else value(a)
        if j is None:
            w = dout * a
            da = dout * np.broadcast_to(v, a.shape) + vjp(a, w.sum(axis=1, keepdims=True)
                                                          if reduces else w)
        else:
            w = np.zeros(v.shape, dtype=dout.dtype)
            w[:, jj] = dout[:, j] * a[:, j]
            da = dout.copy()
            da[:, j] = dout[:, j] * v[:, jj]
            da = da + vjp(a, w)
        return {"x": da * (np.cos(x) + 1)}

    return backward


def _identity_vjp(reduces: bool) -> Callable[[Any, Any], Any]:
    """The bug: the op's derivative taken as the identity (a row reduction's as the mean)."""

    def vjp(a, w):
        return np.broadcast_to(w, a.shape) / a.shape[1] if reduces else w

    return vjp


def _complex_step(forward: Callable[[Any], Any], dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """What the complex step makes of ``<dout, forward(x)>``, element by element."""
    h = 1e-30
    grad = np.zeros(x.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)  # float(complex) drops Im
        for k in range(x.size):
            z = x.astype(complex)
            z.flat[k] += 1j * h
            grad.flat[k] = np.sum(dout * forward(z)).imag / h
    return grad


def _layer(op: str, j: int | None, kind: str) -> Fn:
    forward = _forward(op, j)
    if kind != "fooled":
        return Fn(f"{op}_{kind}", lambda x: (forward(x), x), _backward(op, j, kind))
    return Fn(f"{op}_fooled", lambda x: (forward(x), x),
              lambda dout, x: {"x": _complex_step(forward, dout, x)})


def _differs(a: Fn, b: Fn, x: np.ndarray) -> bool:
    """Do two backwards disagree on x (at a random dout)? Used to drop variants equal to the
    correct backward."""
    g = np.random.default_rng(1).standard_normal(x.shape)
    try:
        ga = a.backward(g, x)["x"]
        gb = b.backward(g, x)["x"]
    except TypeError:  # the complex step raised: there is no fooled estimate
        return False
    return bool(np.max(np.abs(ga - gb)) > 1e-6 * np.max(np.abs(ga)))


def probe_cases() -> list[Case]:
    """Every op, all/one column, 6 seeds, the correct backward and the wrong ones that differ."""
    cases = []
    for op in OPS:
        for seed in range(SEEDS):
            r = np.random.default_rng([seed, 31, *map(ord, op)])
            shape = ((8, 6), (10, 8), (6, 10))[seed % 3]
            x = 1.5 * r.standard_normal(shape)
            for variant, j in (("all", None), ("col", int(r.integers(0, shape[1])))):
                label = variant if j is None else f"col{j}"
                correct = _layer(op, j, "correct")
                cases.append(Case(op, f"{label}-correct-s{seed}", correct, {"x": x.copy()},
                                  oracle=_ORACLE.get(op, {})))
                for kind in ("fooled", "identity"):
                    wrong = _layer(op, j, kind)
                    if _differs(correct, wrong, x):
                        cases.append(Case(op, f"{label}-{kind}-s{seed}", wrong, {"x": x.copy()},
                                          bug=True, oracle=_ORACLE.get(op, {})))
    return cases
