"""What is wrong with a failing gradient, in words, from the error ``e = analytic - numeric``.

A failing check says *where* the analytic gradient is off; a learner needs to know *which term*
is wrong. This module fits ``e`` (over the compared elements) against a catalogue of causes and
states each cause with its evidence: the fraction of ``||e||²`` its prediction explains,
``1 - ||e - e_pred||² / ||e||²``. A cause is claimed only when it explains at least
:data:`THRESHOLD` of ``||e||²``, and never on a passing gradient.

Causes, layer-agnostic first:

- **scale**: ``analytic ≈ c × numeric``, naming ``c`` when it is -1, 0, 2, 1/2, N, 1/N, N/(N-1)
  or (N-1)/N (N the batch size, or the count each channel's statistics run over);
- **swapped**: the analytic gradient is another input's numerical gradient;
- **times an input**: ``analytic ≈ q × numeric`` or ``numeric / q`` for another input ``q``
  (broadcast along the axis it fits), e.g. an extra or a missing ``gamma``;
- **constant along an axis**: ``e`` is the same in every row of a column (a missing per-feature
  term, such as the mean of ``dout``);
- **proportional**: ``e ≈ c × q`` for the input itself, another input, ``dout`` or another
  gradient;
- **transposed**, **odd/even indices only**, **one channel**, **a few elements**;
- **shape**: the gradient's shape is its input's with an axis kept (``keepdims``), not summed, or
  summed over the wrong axis.

For normalisation layers (BatchNorm in training mode, over every axis but the feature axis),
the numerical ``dx`` is first matched to the known backward (its ``eps`` is fitted, since the
layer's configuration is not visible here) ::

    dx = gamma / s · (dout - mean(dout) - x̂ · mean(dout · x̂)),   s = sqrt(var + eps)
       = T0 - T1 - T2

and ``e`` is fitted against the terms: a missing ``T1`` (the mean of dout), a missing ``T2``
(the x̂·mean(dout·x̂) term, the variance path), ``T2`` with the wrong sign or doubled (``dvar``
without its ½), the means divided by the wrong count, the gamma factor missing, the variance
unbiased, ``eps`` outside the square root or a different ``eps``; ``dgamma`` computed with
``x - mean`` instead of ``x̂``. When none of those fits, the least-squares coefficients of
``e`` on ``T0, T1, T2`` are stated instead.

**Bug or noise.** For the worst failing element, :func:`step_sweep` evaluates central
differences over a range of steps: a discrepancy that stays constant as the step shrinks is a
bug; one that shrinks with the step was truncation error (numerical).

Examples
--------
>>> import numpy as np
>>> from gradcheck.check import check_grads
>>> report = check_grads(lambda x: np.sum(x**3), lambda x: -3 * x**2, np.array([1.0, 2.0, 3.0]))
>>> report.results[0].diagnosis.cause
'sign'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gradcheck.results import Diagnosis, Evidence, Finding, GradientResult, Sweep

__all__ = ["THRESHOLD", "attach", "diagnose", "step_sweep"]

THRESHOLD = 0.99  # a cause must explain this fraction of ||e||^2
CONCENTRATED = 0.9  # "a few elements" / "one channel" hold this fraction of ||e||^2
_BN_MATCH = 0.9999  # the numerical dx must follow the BatchNorm backward this closely
_TIE = 100.0  # findings whose unexplained part is within this factor of the best compete by rank
SWEEP_STEPS = tuple(10.0 ** -k for k in range(1, 9))


# --- the error and what explains it ----------------------------------------------------------


@dataclass(frozen=True)
class _Case:
    """The compared elements of one gradient: flat indices, analytic, numeric, e, the shape."""

    name: str
    shape: tuple[int, ...]
    idx: np.ndarray
    a: np.ndarray
    n: np.ndarray
    full: bool  # every element was compared

    @property
    def e(self) -> np.ndarray:
        return self.a - self.n

    def take(self, arr: np.ndarray) -> np.ndarray:
        full = arr if arr.shape == self.shape else np.broadcast_to(arr, self.shape)
        return full.reshape(-1)[self.idx]


def _case(ev: Evidence) -> _Case | None:
    if ev.estimate is None or ev.indices is None:
        return None
    a = np.asarray(ev.analytic, dtype=np.float64).reshape(-1)[ev.indices]
    n = np.asarray(ev.estimate.value, dtype=np.float64).reshape(-1)
    full = ev.indices.size == int(np.prod(ev.analytic.shape))
    return _Case(ev.name, tuple(ev.analytic.shape), ev.indices, a, n, full)


def _explained(e: np.ndarray, residual: np.ndarray) -> float:
    """``1 - ||residual||² / ||e||²``, clipped below at 0."""
    scale = float(np.max(np.abs(e), initial=0.0))  # scaled: errors of 1e-200 or 1e200 are errors
    if scale == 0.0 or not np.isfinite(scale):
        return 0.0
    e, residual = e / scale, residual / scale
    total = float(np.dot(e, e))
    return max(0.0, 1.0 - float(np.dot(residual, residual)) / total) if total > 0 else 0.0


def _predicts(case: _Case, a_pred: np.ndarray) -> float:
    """How much of ``e`` a predicted analytic gradient (at the compared elements) explains."""
    return _explained(case.e, case.a - a_pred)


def _fit(e: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    """Least-squares ``c`` in ``e ≈ c q`` and the fraction it explains."""
    qq = float(np.dot(q, q))
    if qq == 0 or not np.isfinite(qq):
        return 0.0, 0.0
    c = float(np.dot(e, q)) / qq
    return c, _explained(e, e - c * q)


def _align(q: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``q`` broadcast to ``shape``: as is, or a 1-D ``q`` along axis 1 or the last axis."""
    if q.shape == shape:
        return q
    if q.ndim == 1 and len(shape) >= 2:
        for axis in (1, len(shape) - 1):
            if shape[axis] == q.size:
                view = [1] * len(shape)
                view[axis] = q.size
                return np.broadcast_to(q.reshape(view), shape)
    return None


# --- layer-agnostic causes --------------------------------------------------------------------


def _counts(shape: tuple[int, ...], inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    """The batch size N and the per-channel count M that scale factors are named after."""
    big = max((v.shape for v in inputs.values()), key=len, default=shape)
    counts = {"N": int(big[0])} if big and big[0] > 1 else {}
    if len(big) > 2:
        counts["M"] = int(np.prod(big)) // int(big[1])
    return counts


def _named_scales(counts: Mapping[str, int]) -> list[tuple[float, str, str]]:
    named = [(-1.0, "sign", "analytic = -numeric: the sign is flipped"),
             (0.0, "zero", "the analytic gradient is zero: the backward never sets it"),
             (2.0, "scale", "analytic = 2 × numeric: a factor 2 too many (a ½ dropped)"),
             (0.5, "scale", "analytic = ½ × numeric: a factor ½ too many")]
    for sym, m in counts.items():
        what = "the batch size" if sym == "N" else "the count per channel"
        named += [(float(m), "sum-vs-mean", f"analytic = {sym} × numeric ({sym} = {m}, {what}): "
                                            "a sum where a mean belongs"),
                  (1.0 / m, "sum-vs-mean", f"analytic = numeric / {sym} ({sym} = {m}, {what}): "
                                           "a mean where a sum belongs"),
                  (m / (m - 1.0), "bessel", f"analytic = {sym}/({sym}-1) × numeric "
                                            f"({sym} = {m}): divided by {sym}-1, not {sym}"),
                  ((m - 1.0) / m, "bessel", f"analytic = ({sym}-1)/{sym} × numeric "
                                            f"({sym} = {m}): divided by {sym}, not {sym}-1")]
    return named


def _scale(case: _Case, counts: Mapping[str, int]) -> list[Finding]:
    nn = float(np.dot(case.n, case.n))
    if nn == 0:
        return []
    c = float(np.dot(case.a, case.n)) / nn
    explained = _explained(case.e, case.a - c * case.n)
    for value, cause, text in _named_scales(counts):
        if abs(c - value) <= 1e-3 * max(abs(value), 1e-3):
            return [Finding(cause, f"{text} (c = {c:.6g})", explained)]
    return [Finding("scale", f"analytic ≈ c × numeric with c = {c:.9g} (a relative error of "
                             f"{c - 1:+.3g} everywhere)", explained)]


def _swapped(case: _Case, others: Sequence[_Case]) -> list[Finding]:
    found = []
    for o in others:
        if o.shape == case.shape and np.array_equal(o.idx, case.idx):
            explained = _predicts(case, o.n)
            found.append(Finding("swapped", f"analytic d{case.name} equals the numerical "
                                            f"d{o.name}: the two gradients are swapped",
                                 explained))
    return found


def _quantities(case: _Case, inputs: Mapping[str, np.ndarray], dout: np.ndarray,
                others: Sequence[_Case]) -> list[tuple[str, np.ndarray]]:
    """Other quantities of the check, at this gradient's compared elements."""
    out = []
    for k, v in inputs.items():
        aligned = _align(np.asarray(v, dtype=np.float64), case.shape)
        if aligned is not None:
            out.append((f"`{k}`", case.take(aligned)))
    if dout.shape == case.shape:
        out.append(("dout", case.take(dout)))
    out += [(f"d{o.name} (numerical)", o.n) for o in others
            if o.shape == case.shape and np.array_equal(o.idx, case.idx)]
    return out


def _times_input(case: _Case, inputs: Mapping[str, np.ndarray]) -> list[Finding]:
    found = []
    for k, v in inputs.items():
        q = _align(np.asarray(v, dtype=np.float64), case.shape)
        if q is None or not np.any(q != 1):
            continue
        qv = case.take(q)
        found.append(Finding("times-input", f"analytic ≈ `{k}` × numeric: an extra factor "
                                            f"`{k}`", _predicts(case, qv * case.n)))
        if np.all(qv != 0):
            found.append(Finding("missing-factor", f"analytic ≈ numeric / `{k}`: the factor "
                                 f"`{k}` is missing", _predicts(case, case.n / qv)))
    return found


def _proportional(case: _Case, quantities: Sequence[tuple[str, np.ndarray]]) -> list[Finding]:
    found = []
    for label, q in quantities:
        c, explained = _fit(case.e, q)
        found.append(Finding("proportional", f"the error is proportional to {label}: "
                                             f"e ≈ {c:.4g} × {label}", explained))
    return found


def _grid(case: _Case) -> np.ndarray | None:
    return case.e.reshape(case.shape) if case.full and len(case.shape) >= 2 else None


def _constant_along(case: _Case) -> list[Finding]:
    """``e`` the same for every element of a feature: a function of one axis's index only."""
    e = _grid(case)
    if e is None:
        return []
    found = []
    for axis in range(e.ndim):
        others = tuple(k for k in range(e.ndim) if k != axis)
        if all(e.shape[k] < 2 for k in others):
            continue
        per_feature = np.mean(e, axis=others, keepdims=True)
        where = ("in every row of a column" if (e.ndim, axis) == (2, 1) else
                 f"at every position that shares its index along axis {axis}")
        found.append(Finding("constant-along-axis", f"the error is the same {where}: a missing "
                             f"or wrong per-feature term (one value per index of axis {axis})",
                             _explained(e.ravel(), (e - per_feature).ravel())))
    return found


def _transposed(case: _Case) -> list[Finding]:
    if not case.full or len(case.shape) != 2 or case.shape[0] != case.shape[1]:
        return []
    n = case.n.reshape(case.shape)
    return [Finding("transposed", "analytic = numericᵀ: the gradient is transposed",
                    _predicts(case, n.T.ravel()))]


def _parity(case: _Case) -> list[Finding]:
    e = _grid(case) if len(case.shape) >= 2 else (case.e if case.full else None)
    if e is None:
        return []
    found, total = [], float(np.sum(e * e))
    for axis in range(e.ndim):
        if e.shape[axis] < 3:
            continue
        for parity, word in ((0, "even"), (1, "odd")):
            part = np.take(e, np.arange(parity, e.shape[axis], 2), axis=axis)
            share = float(np.sum(part * part)) / total if total else 0.0
            found.append(Finding("parity", f"the error sits only at {word} indices of axis "
                                           f"{axis}", share))
    return found


def _concentrated(case: _Case) -> list[Finding]:
    e2 = case.e * case.e
    total = float(np.sum(e2))
    k = max(1, min(3, case.e.size // 10))
    if total == 0 or case.e.size < 10:
        return []
    top = np.argsort(-e2)[:k]
    where = ", ".join(str(tuple(int(i) for i in np.unravel_index(case.idx[t], case.shape)))
                      for t in top)
    found = [Finding("concentrated", f"the error sits in {k} element(s): {where}",
                     float(np.sum(e2[top])) / total)]
    if len(case.shape) >= 2 and case.shape[1] > 1:
        channel = np.unravel_index(case.idx, case.shape)[1]
        shares = np.bincount(channel, weights=e2, minlength=case.shape[1]) / total
        j = int(np.argmax(shares))
        found.append(Finding("one-channel", f"the error sits in one channel (index {j} of "
                                            "axis 1)", float(shares[j])))
    return found


# --- normalisation layers: the terms of the known backward ----------------------------------


@dataclass(frozen=True)
class _BN:
    """BatchNorm's training backward rebuilt from the check's inputs, ``dout`` and a fitted eps."""

    gamma: np.ndarray  # broadcast to x's shape
    g: np.ndarray
    axes: tuple[int, ...]
    count: int
    eps: float
    xc: np.ndarray  # x - mean(x)
    biased: np.ndarray  # mean(xc²), the biased variance

    def mean(self, a: np.ndarray) -> np.ndarray:
        return np.mean(a, axis=self.axes, keepdims=True)

    def var(self, unbiased: bool = False) -> np.ndarray:
        return self.biased * self.count / (self.count - 1) if unbiased else self.biased

    def dx(self, *, s: np.ndarray | None = None, xhat_s: np.ndarray | None = None,
           k: tuple[float, float, float] = (1.0, -1.0, -1.0), gamma: bool = True) -> np.ndarray:
        """``c0·T0 + c1·T1 + c2·T2`` with the 1/s scale and the x̂ built from ``xhat_s``."""
        std = np.sqrt(self.var() + self.eps)
        s = std if s is None else s
        xhat = self.xc / (std if xhat_s is None else xhat_s)
        factor = (self.gamma if gamma else 1.0) / s
        t0, t1, t2 = factor * self.g, factor * self.mean(self.g), factor * xhat * self.mean(
            self.g * xhat)
        return k[0] * t0 + k[1] * t1 + k[2] * t2

    def terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.dx(k=(1.0, 0.0, 0.0)), self.dx(k=(0.0, 1.0, 0.0)),
                self.dx(k=(0.0, 0.0, 1.0)))

    def xhat(self) -> np.ndarray:
        return self.xc / np.sqrt(self.var() + self.eps)

    def reduce(self, a: np.ndarray) -> np.ndarray:
        return np.sum(a, axis=self.axes)


def _fit_eps(make: Callable[[float], np.ndarray], target: np.ndarray) -> tuple[float, float]:
    """The eps (log-searched over 1e-12..10) whose prediction best matches ``target``."""
    def loss(log_eps: float) -> float:
        r = make(10.0 ** log_eps) - target
        return float(np.dot(r, r))

    from scipy.optimize import minimize_scalar  # only when a failing BatchNorm dx is fitted

    best = minimize_scalar(loss, bounds=(-12.0, 1.0), method="bounded",
                           options={"xatol": 1e-4})
    eps = 10.0 ** float(best.x)
    return eps, _explained(target, make(eps) - target)


def _bn_model(cases: Mapping[str, _Case], inputs: Mapping[str, np.ndarray],
              dout: np.ndarray) -> _BN | None:
    """A training-mode BatchNorm model, if the numerical dx (or dgamma) follows one."""
    x = inputs.get("x")
    if x is None or x.ndim < 2 or dout.shape != x.shape:
        return None
    gamma = inputs.get("gamma")
    g_aligned = _align(np.asarray(gamma, dtype=np.float64), x.shape) if gamma is not None else None
    if gamma is not None and g_aligned is None:
        return None
    feature = 1 if gamma is None or x.shape[1] == np.size(gamma) else x.ndim - 1
    axes = tuple(a for a in range(x.ndim) if a != feature)
    count = int(np.prod([x.shape[a] for a in axes]))
    if count < 2:
        return None
    x64 = np.asarray(x, dtype=np.float64)
    xc = x64 - np.mean(x64, axis=axes, keepdims=True)
    base = _BN(np.ones(x.shape) if g_aligned is None else g_aligned,
               np.asarray(dout, dtype=np.float64), axes, count, 0.0, xc,
               np.mean(xc * xc, axis=axes, keepdims=True))
    probe = cases.get("x") or cases.get("gamma")
    if probe is None:
        return None
    if probe.name == "x":
        def make(eps: float) -> np.ndarray:
            return probe.take(replace(base, eps=eps).dx())
    else:
        def make(eps: float) -> np.ndarray:
            bn = replace(base, eps=eps)
            return probe.take(bn.reduce(bn.g * bn.xhat()))
    eps, match = _fit_eps(make, probe.n)
    return replace(base, eps=eps) if match >= _BN_MATCH else None


def _bn_dx(case: _Case, bn: _BN) -> list[Finding]:
    take = case.take
    t0, t1, t2 = (take(t) for t in bn.terms())
    var, n = bn.var(), bn.count
    hyp = [
        ("missing-mean-term", "dx misses the mean-of-dout term −γ/σ·mean(dout)", t0 - t2),
        ("missing-xhat-term", "dx misses the x̂·mean(dout·x̂) term (the path through the "
                              "variance)", t0 - t1),
        ("xhat-term-sign", "the x̂·mean(dout·x̂) term has the wrong sign (+ where − belongs)",
         t0 - t1 + t2),
        ("mean-term-sign", "the mean-of-dout term has the wrong sign (+ where − belongs)",
         t0 + t1 - t2),
        ("variance-path-doubled", "the variance path is doubled: dvar lacks the ½ of "
                                  "d(var+eps)^(-½) = -½(var+eps)^(-3/2)", t0 - t1 - 2 * t2),
        ("gamma-missing", "dx lacks the factor gamma", take(bn.dx(gamma=False))),
        ("missing-inv-std", "dx lacks the factor 1/sqrt(var + eps)", take(bn.dx(s=np.ones_like(
            var)))),
        ("unbiased-variance", f"the backward uses the unbiased variance (divided by N-1 = "
                              f"{n - 1}); BatchNorm normalises with the biased one",
         take(bn.dx(s=np.sqrt(bn.var(unbiased=True) + bn.eps),
                    xhat_s=np.sqrt(bn.var(unbiased=True) + bn.eps)))),
        ("eps-outside-sqrt", "eps is outside the square root: sqrt(var) + eps where "
                             "sqrt(var + eps) belongs", take(bn.dx(s=np.sqrt(var) + bn.eps))),
    ]
    found = [Finding(cause, f"{text}; fitted against BatchNorm's backward (forward eps ≈ "
                            f"{bn.eps:.3g})", _predicts(case, pred)) for cause, text, pred in hyp]
    found += _bn_count(case, t0, t1, t2, n) + _bn_eps(case, bn)
    found.append(_bn_terms(case, t0, t1, t2))
    return found


def _bn_count(case: _Case, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray,
              n: int) -> list[Finding]:
    k, explained = _fit(case.a - t0, -(t1 + t2))
    if k <= 0 or abs(k - 1) < 1e-6 or abs(n / k - n) < 0.5:  # not a miscount by one or more
        return []
    m = n / k
    named = " (N - 1)" if abs(m - (n - 1)) < 1e-3 * n else ""
    return [Finding("count-in-means", f"the two mean terms are divided by {m:.4g}{named} "
                                      f"instead of N = {n} (the count each mean runs over)",
                    explained)]


def _bn_eps(case: _Case, bn: _BN) -> list[Finding]:
    def make(eps: float) -> np.ndarray:
        s = np.sqrt(bn.var() + eps)
        return case.take(bn.dx(s=s, xhat_s=s))

    eps, _ = _fit_eps(make, case.a)
    if abs(math.log10(eps / max(bn.eps, 1e-300))) < 0.05:
        return []
    return [Finding("wrong-eps", f"the backward uses eps ≈ {eps:.3g} but the forward "
                                 f"{bn.eps:.3g}: use the eps the forward cached",
                    _explained(case.e, case.a - make(eps)))]


def _bn_terms(case: _Case, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray) -> Finding:
    basis = np.stack([t0, t1, t2], axis=1)
    coef, *_ = np.linalg.lstsq(basis, case.e, rcond=None)
    text = ("e ≈ {:.3g}·T0 + {:.3g}·T1 + {:.3g}·T2 with T0 = γ/σ·dout, T1 = γ/σ·mean(dout), "
            "T2 = γ/σ·x̂·mean(dout·x̂) (dx = T0 - T1 - T2)").format(*coef)
    return Finding("term-fit", text, _explained(case.e, case.e - basis @ coef))


def _bn_param(case: _Case, bn: _BN) -> list[Finding]:
    if case.name != "gamma":
        return []
    pred = case.take(bn.reduce(bn.g * bn.xc))
    return [Finding("dgamma-uses-xc", "dgamma sums dout·(x - mean) where dout·x̂ belongs "
                                      "(x̂ = (x - mean)/sqrt(var + eps))", _predicts(case, pred))]


# --- shapes -------------------------------------------------------------------------------------


def _shape_findings(name: str, got: tuple[int, ...], want: tuple[int, ...],
                    inputs: Mapping[str, np.ndarray]) -> list[Finding]:
    if math.prod(got) == math.prod(want):
        return [Finding("keepdims", f"d{name} has shape {got} for `{name}` of shape {want}: "
                                    "the same numbers with an axis kept (keepdims=True) or "
                                    "reshaped; sum without keepdims", 1.0)]
    found = []
    for k, v in inputs.items():
        if k == name or v.ndim <= len(want):
            continue
        if got == v.shape:
            found.append(Finding("not-summed", f"d{name} has `{k}`'s shape {got}: it is not "
                                               f"summed over the batch axes", 1.0))
        for axis in range(v.ndim):
            rest = v.shape[:axis] + v.shape[axis + 1:]
            if got == rest and rest != want:
                found.append(Finding("wrong-axis", f"d{name} has shape {got}: summed over "
                                                   f"axis {axis} of `{k}` instead of the "
                                                   "batch axes", 1.0))
    return found[:1]


# --- bug or noise ---------------------------------------------------------------------------


def step_sweep(f: Callable[[np.ndarray], Any], x: np.ndarray, flat: int, analytic: float,
               budget: float, *, steps: Sequence[float] = SWEEP_STEPS) -> Sweep:
    """The discrepancy ``analytic - D(h)`` at one element over central-difference steps.

    ``D(h) = (f(x + h e_k) - f(x - h e_k)) / ((x_k + h) - (x_k - h))`` with
    ``h = step·max(1, |x_k|)``. A discrepancy that stays put while ``h`` falls over several
    decades is a bug in the analytic side; one that shrinks as ``h`` does (like ``h²``) was
    the truncation error of the numerical side.

    Parameters
    ----------
    f : callable
        The scalar objective ``L(x)``.
    x : ndarray
        The point (not modified).
    flat : int
        Flat index of the element.
    analytic : float
        The analytic derivative there.
    budget : float
        The element's error budget: what counts as agreement.
    steps : sequence of float
        Relative steps, largest first.

    Returns
    -------
    Sweep
        The steps, the discrepancies and the verdict in words.

    Examples
    --------
    >>> sw = step_sweep(lambda a: float(np.sum(a**3)), np.array([2.0]), 0, 12.5, 1e-8)
    >>> sw.verdict
    'bug'
    """
    x = np.asarray(x, dtype=np.float64)
    scale = max(1.0, abs(float(x.flat[flat])))
    hs, ds = [], []
    for rel in steps:
        plus, minus = x.copy(), x.copy()
        plus.flat[flat] += rel * scale
        minus.flat[flat] -= rel * scale
        taken = float(plus.flat[flat] - minus.flat[flat])
        d = (float(np.real(f(plus))) - float(np.real(f(minus)))) / taken
        hs.append(taken / 2)
        ds.append(analytic - d)
    verdict, text = _sweep_verdict(np.array(ds), steps, budget)
    return Sweep(tuple(int(i) for i in np.unravel_index(flat, x.shape)), tuple(hs), tuple(ds),
                 verdict, text)


def _plateau(d: np.ndarray) -> int | None:
    """The first of three consecutive steps whose discrepancies agree to 5 %."""
    for i in range(d.size - 2):
        part = d[i:i + 3]
        if np.all(np.sign(part) == np.sign(part[0])) and float(np.ptp(part)) <= 0.05 * float(
                np.min(np.abs(part))):
            return i
    return None


def _sweep_verdict(d: np.ndarray, steps: Sequence[float], budget: float) -> tuple[str, str]:
    mags = np.abs(d)
    i = _plateau(d)
    if i is not None and abs(float(d[i + 1])) > budget:
        return "bug", (f"the discrepancy stays at {d[i + 1]:.4g} from step {steps[i]:.0e} to "
                       f"{steps[i + 2]:.0e}: a bug, not numerical error")
    if float(np.min(mags)) <= budget:
        return "numerical", (f"the discrepancy shrinks to {np.min(mags):.3g} (within the budget "
                             f"{budget:.3g}) as the step changes: numerical error, not a bug")
    if mags[-1] < mags[0] * 1e-2:
        return "numerical", "the discrepancy shrinks with the step: numerical error"
    return "unclear", "the discrepancy changes with the step without settling: inconclusive"


# --- choosing and attaching -------------------------------------------------------------------

_RANK = {c: i for i, c in enumerate((
    "keepdims", "not-summed", "wrong-axis", "zero", "sign", "swapped", "sum-vs-mean", "bessel",
    "missing-mean-term", "missing-xhat-term", "xhat-term-sign", "mean-term-sign",
    "variance-path-doubled", "gamma-missing", "missing-inv-std", "unbiased-variance",
    "eps-outside-sqrt",
    "dgamma-uses-xc", "count-in-means", "wrong-eps", "scale", "missing-factor", "times-input",
    "transposed", "constant-along-axis", "proportional", "term-fit", "concentrated", "one-channel",
    "parity"))}


# Findings that only restate another in other words: never listed as an alternative.
_RESTATEMENTS = frozenset({"term-fit", "proportional", "parity", "concentrated", "one-channel"})


def _choose(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """Findings above their threshold, the best first: the lowest rank among the near-best."""
    def threshold(f: Finding) -> float:
        return CONCENTRATED if f.cause in ("concentrated", "one-channel") else THRESHOLD

    kept = [f for f in findings if f.explained >= threshold(f)]
    if not kept:
        return ()
    best = min(1.0 - f.explained for f in kept)
    near = [f for f in kept if 1.0 - f.explained <= max(_TIE * best, 1e-9)]
    first = min(near, key=lambda f: (_RANK.get(f.cause, 99), -f.explained))
    rest = sorted((f for f in kept if f is not first and f.cause not in _RESTATEMENTS),
                  key=lambda f: (-round(f.explained, 4), _RANK.get(f.cause, 99)))
    return (first, *[f for f in rest if f.text != first.text][:2])


def _findings(case: _Case, ev: Evidence, others: Sequence[_Case],
              bn: _BN | None) -> list[Finding]:
    counts = _counts(case.shape, ev.inputs)
    found = _scale(case, counts) + _swapped(case, others) + _times_input(case, ev.inputs)
    if bn is not None:
        found += _bn_dx(case, bn) if case.name == "x" else _bn_param(case, bn)
    found += _proportional(case, _quantities(case, ev.inputs, ev.dout, others))
    found += _constant_along(case) + _transposed(case) + _parity(case) + _concentrated(case)
    return found


def _worst_sweep(result: GradientResult, ev: Evidence) -> Sweep | None:
    if ev.objective is None or result.worst_index is None or not result.worst:
        return None
    flat = int(np.ravel_multi_index(result.worst_index, ev.analytic.shape))
    x = ev.inputs[ev.name]
    return step_sweep(ev.objective, x, flat, float(result.analytic_at_worst), result.budget)


def diagnose(result: GradientResult, others: Sequence[GradientResult] = (), *,
             sweep: bool = True) -> Diagnosis | None:
    """The causes a failing gradient's error is consistent with, best first, with evidence.

    Parameters
    ----------
    result : GradientResult
        A gradient of a check; it needs its ``evidence`` (attached by the checker).
    others : sequence of GradientResult
        The other gradients of the same check (for swapped gradients and the BatchNorm model).
    sweep : bool
        Also run :func:`step_sweep` on the worst element (a few evaluations of the layer).

    Returns
    -------
    Diagnosis or None
        ``None`` for a passing gradient or one without evidence; else the findings that
        explain at least :data:`THRESHOLD` of ``||e||²`` (possibly none) and the sweep.
    """
    ev = result.evidence
    if result.passed or result.status != "fail" or ev is None:
        return None
    case = _case(ev)
    if case is None:
        return Diagnosis(note="directional mode compares no single element; rerun with "
                              "--mode full for a diagnosis")
    peers = {o.name: c for o in (result, *others)
             if o.evidence is not None and (c := _case(o.evidence)) is not None}
    bn = _bn_model(peers, ev.inputs, ev.dout)
    rest = [c for k, c in peers.items() if k != case.name]
    chosen = _choose(_findings(case, ev, rest, bn))
    note = "" if chosen else (f"no single cause explains {THRESHOLD:.0%} of the error; "
                              "see the worst elements")
    return Diagnosis(chosen, _worst_sweep(result, ev) if sweep else None, note)


def _diagnose_shape(result: GradientResult, grads: Mapping[str, Any],
                    inputs: Mapping[str, np.ndarray]) -> Diagnosis | None:
    raw, x = grads.get(result.name), inputs.get(result.name)
    if raw is None or x is None:
        return None
    found = _shape_findings(result.name, tuple(np.shape(raw)), tuple(x.shape), inputs)
    return Diagnosis(tuple(found), None, "" if found else "no known shape mistake matches")


def attach(results: Sequence[GradientResult], grads: Mapping[str, Any],
           inputs: Mapping[str, np.ndarray]) -> list[GradientResult]:
    """Each failing gradient with its :class:`Diagnosis`; passing ones unchanged.

    Parameters
    ----------
    results : sequence of GradientResult
        One check's gradients, judged.
    grads : mapping
        The raw analytic gradients the backward returned (for shape mistakes).
    inputs : mapping
        The check's inputs.

    Returns
    -------
    list of GradientResult
    """
    out = []
    for r in results:
        if r.status == "shape":
            d = _diagnose_shape(r, grads, inputs)
        else:
            d = diagnose(r, [o for o in results if o is not r])
        out.append(r if d is None else replace(r, diagnosis=d))
    return out
