"""Normalisation layers (BatchNorm, LayerNorm): the terms of the known backward, each fitted.

When the numerical ``dx`` (or ``dgamma``) follows a normalisation's backward with statistics over
some axes (all but the feature axis: BatchNorm; all but the batch axis: LayerNorm), the layer's
``eps`` is fitted (the configuration is not visible here) and ::

    dx = gamma / s · (dout - mean(dout) - x̂ · mean(dout · x̂)),   s = sqrt(var + eps)
       = T0 - T1 - T2

The error is then measured against each term: ``e ≈ −(k − 1)·T`` for ``T`` = T1, T2 or
T1 + T2 says the term is ``k`` times what it should be; ``k`` is named by meaning (0: missing,
−1: the sign, 2, N/(N−1): divided by N−1 where the forward divides by N, ...) or stated as
measured. Whole-layer mistakes are predicted outright: gamma or 1/σ missing, the unbiased
variance, eps outside the square root, another eps, ``dgamma`` from ``x − mean``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from gradcheck.diagnosis.factors import Count, name_factor, times
from gradcheck.diagnosis.fitting import Candidate, Case, align, candidate, explained
from gradcheck.diagnosis.search import bounded_minimum

__all__ = ["MATCH", "NormModel", "norm_candidates", "norm_model"]

MATCH = 0.9999  # the numerical dx must follow the normalisation's backward this closely


@dataclass(frozen=True)
class NormModel:
    """A normalisation's training backward rebuilt from the inputs, ``dout`` and a fitted eps."""

    gamma: np.ndarray  # broadcast to x's shape
    g: np.ndarray
    axes: tuple[int, ...]  # the statistics' axes
    param_axes: tuple[int, ...]  # the axes dgamma and dbeta sum over
    count: Count
    eps: float
    xc: np.ndarray  # x - mean(x)
    biased: np.ndarray  # mean(xc²), the biased variance

    def mean(self, a: np.ndarray) -> np.ndarray:
        return np.mean(a, axis=self.axes, keepdims=True)

    def var(self, unbiased: bool = False) -> np.ndarray:
        m = self.count.value
        return self.biased * m / (m - 1) if unbiased else self.biased

    def dx(self, *, s: np.ndarray | None = None, xhat_s: np.ndarray | None = None,
           k: tuple[float, float, float] = (1.0, -1.0, -1.0), gamma: bool = True) -> np.ndarray:
        """``c0·T0 + c1·T1 + c2·T2`` with the 1/s scale and the x̂ built from ``xhat_s``."""
        std = np.sqrt(self.var() + self.eps)
        s = std if s is None else s
        xhat = self.xc / (std if xhat_s is None else xhat_s)
        g = self.g * self.gamma if gamma else self.g  # dxhat: γ inside the means (LayerNorm)
        t0, t1, t2 = g / s, self.mean(g) / s, xhat * self.mean(g * xhat) / s
        return k[0] * t0 + k[1] * t1 + k[2] * t2

    def terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.dx(k=(1.0, 0.0, 0.0)), self.dx(k=(0.0, 1.0, 0.0)),
                self.dx(k=(0.0, 0.0, 1.0)))

    def xhat(self) -> np.ndarray:
        return self.xc / np.sqrt(self.var() + self.eps)

    def reduce(self, a: np.ndarray) -> np.ndarray:
        return np.sum(a, axis=self.param_axes)


def _fit_eps(make: Callable[[float], np.ndarray], target: np.ndarray) -> tuple[float, float]:
    """The eps (log-searched over 1e-12..10) whose prediction best matches ``target``."""
    def loss(log_eps: float) -> float:
        r = make(10.0 ** log_eps) - target
        return float(np.dot(r, r))

    eps = 10.0 ** bounded_minimum(loss, -12.0, 1.0, xatol=1e-4)
    return eps, explained(target, make(eps) - target)


def _layouts(x: np.ndarray, gamma: np.ndarray | None
             ) -> list[tuple[tuple[int, ...], tuple[int, ...], Count]]:
    """(statistics axes, parameter axes, count) of BatchNorm, then LayerNorm."""
    size = gamma.size if gamma is not None else x.shape[1]
    feature = 1 if x.shape[1] == size else x.ndim - 1
    bn = tuple(a for a in range(x.ndim) if a != feature)
    m = int(np.prod([x.shape[a] for a in bn]))
    sym = ("N", "the batch size") if x.ndim == 2 else ("M", "the values per channel, N·H·W")
    out = [(bn, bn, Count(sym[0], m, sym[1]))]
    ln = tuple(range(1, x.ndim))
    m = int(np.prod(x.shape[1:]))
    out.append((ln, (0,), Count("D", m, "the features per sample")))
    return [t for t in out if t[2].value >= 2]


def norm_model(cases: Mapping[str, Case], inputs: Mapping[str, np.ndarray],
               dout: np.ndarray) -> NormModel | None:
    """A training-mode normalisation model, if the numerical dx (or dgamma) follows one."""
    x = inputs.get("x")
    probe = cases.get("x") or cases.get("gamma")
    if x is None or x.ndim < 2 or dout.shape != x.shape or probe is None:
        return None
    gamma = inputs.get("gamma")
    g_aligned = align(np.asarray(gamma, dtype=np.float64), x.shape) if gamma is not None else None
    if gamma is not None and g_aligned is None:
        return None
    x64 = np.asarray(x, dtype=np.float64)
    for axes, param_axes, count in _layouts(x64, None if gamma is None else np.asarray(gamma)):
        xc = x64 - np.mean(x64, axis=axes, keepdims=True)
        base = NormModel(np.ones(x.shape) if g_aligned is None else g_aligned,
                         np.asarray(dout, dtype=np.float64), axes, param_axes, count, 0.0, xc,
                         np.mean(xc * xc, axis=axes, keepdims=True))
        eps, match = _fit_eps(_maker(base, probe), probe.n)
        if match >= MATCH:
            return replace(base, eps=eps)
    return None


def _maker(base: NormModel, probe: Case) -> Callable[[float], np.ndarray]:
    if probe.name == "x":
        return lambda eps: probe.take(replace(base, eps=eps).dx())

    def make(eps: float) -> np.ndarray:
        bn = replace(base, eps=eps)
        return probe.take(bn.reduce(bn.g * bn.xhat()))
    return make


# --- dx: the terms --------------------------------------------------------------------------

_TERMS = {
    "T1": ("the mean(dout) term γ/σ·mean(dout)", "mean", "the mean's"),
    "T2": ("the x̂·mean(dout·x̂) term", "xhat", "the variance's"),
    "T1+T2": ("the two mean terms, γ/σ·mean(dout) and x̂·mean(dout·x̂),", "means", "their"),
}


def _term_text(g: str, which: str, k: float, count: Count) -> tuple[str, str]:
    """(cause, headline) for a term that is ``k`` times what it should be."""
    term, tag, whose = _TERMS[which]
    f = name_factor(k, [count])
    kind = f.kind if f is not None else ""
    s, m = count.symbol, count.value
    if kind == "zero":
        return (f"missing-{tag}-term", f"{g} misses {term}" + (
            " (the path through the variance)" if which == "T2" else
            " (the path through the mean)" if which == "T1" else ""))
    if kind == "sign":
        return f"{tag}-term-sign", f"{g}: {term} has the wrong sign (+ where − belongs)"
    if kind == "two" and which == "T2":
        return ("variance-path-doubled", f"{g}: {term} is ×2, as measured: the likely line is "
                                         "dvar, whose −½·(var+eps)^(−3/2) lost its ½")
    if kind in ("bessel", "inverse-bessel") and f is not None:
        by, other = (f"{s}−1", s) if kind == "bessel" else (s, f"{s}−1")
        cause = {"T1": "mean-path-count", "T2": "variance-path-count",
                 "T1+T2": "count-in-means"}[which]
        return cause, (f"{g}: {term} {'is' if which != 'T1+T2' else 'are'} {k:.4g} × too "
                       f"{'large' if k > 1 else 'small'} at {s} = {m}, which is {f.label}: "
                       f"{whose} backward divides by {by} where the forward divides by {other}")
    named = f", which is {f.label} ({s} = {m})" if f is not None and f.count else ""
    return "term-scale", (f"{g}: {term} {'are' if which == 'T1+T2' else 'is'} {times(k)} "
                          f"what it should be, as measured{named}")


def _combo(coefs: np.ndarray, names: tuple[str, ...]) -> str:
    big = float(np.max(np.abs(coefs))) if coefs.size else 0.0
    parts = [(c, n) for c, n in zip(coefs, names, strict=True) if abs(c) > 1e-6 * big]
    if not parts:
        return "0"
    text = f"{parts[0][0]:.4g}·{parts[0][1]}"
    for c, n in parts[1:]:
        text += f" {'−' if c < 0 else '+'} {abs(c):.4g}·{n}"
    return text.replace("-", "−")


def _evidence(case: Case, t: tuple[np.ndarray, ...], model: NormModel) -> str:
    basis = np.stack(t, axis=1)
    coef, *_ = np.linalg.lstsq(basis, case.e, rcond=None)
    return (f"least squares: e ≈ {_combo(coef, ('T0', 'T1', 'T2'))} where dx = T0 − T1 − T2, "
            "T0 = γ/σ·dout, T1 = γ/σ·mean(dout), T2 = γ/σ·x̂·mean(dout·x̂) "
            f"(statistics over axes {model.axes}, forward eps ≈ {model.eps:.3g})")


def _terms(case: Case, t0: np.ndarray, t1: np.ndarray, t2: np.ndarray, model: NormModel,
           evidence: str) -> list[Candidate]:
    found = []
    for which, q in (("T1", t1), ("T2", t2), ("T1+T2", t1 + t2)):
        qq = float(np.dot(q, q))
        if qq == 0:
            continue
        k = 1.0 - float(np.dot(case.e, q)) / qq  # e ≈ −(k − 1)·q
        cause, text = _term_text(case.grad, which, k, model.count)
        found.append(candidate(case, cause, text, t0 - t1 - t2 - (k - 1.0) * q, evidence))
    return found


def _dx(case: Case, model: NormModel) -> list[Candidate]:
    take = case.take
    t0, t1, t2 = (take(t) for t in model.terms())
    var, c = model.var(), model.count
    evidence = _evidence(case, (t0, t1, t2), model)
    unbiased = np.sqrt(model.var(unbiased=True) + model.eps)
    whole = [
        ("gamma-missing", f"{case.grad} lacks the factor gamma (dxhat = dout·γ)",
         take(model.dx(gamma=False))),
        ("missing-inv-std", f"{case.grad} lacks the factor 1/sqrt(var + eps)",
         take(model.dx(s=np.ones_like(var)))),
        ("unbiased-variance", f"{case.grad} uses the unbiased variance (divided by {c.symbol}−1 "
                              f"= {c.value - 1}) where the forward normalises with the biased "
                              f"one (divided by {c.symbol})",
         take(model.dx(s=unbiased, xhat_s=unbiased))),
        ("eps-outside-sqrt", f"{case.grad}: eps is outside the square root, sqrt(var) + eps "
                             "where sqrt(var + eps) belongs", take(model.dx(s=np.sqrt(var)
                                                                           + model.eps))),
    ]
    found = [candidate(case, cause, text, pred, evidence) for cause, text, pred in whole]
    return found + _terms(case, t0, t1, t2, model, evidence) + _eps(case, model)


def _eps(case: Case, model: NormModel) -> list[Candidate]:
    def make(eps: float) -> np.ndarray:
        s = np.sqrt(model.var() + eps)
        return case.take(model.dx(s=s, xhat_s=s))

    eps, _ = _fit_eps(make, case.a)
    if abs(math.log10(eps / max(model.eps, 1e-300))) < 0.05:
        return []
    return [candidate(case, "wrong-eps", f"{case.grad} uses eps ≈ {eps:.3g} where the forward "
                                         f"used {model.eps:.3g}: use the eps the forward "
                                         "cached", make(eps),
                      "eps fitted to the analytic gradient and to the numerical one")]


def _param(case: Case, model: NormModel) -> list[Candidate]:
    if case.name != "gamma":
        return []
    pred = case.take(model.reduce(model.g * model.xc))
    return [candidate(case, "dgamma-uses-xc", f"{case.grad} sums dout·(x − mean) where dout·x̂ "
                                              "belongs (x̂ = (x − mean)/sqrt(var + eps))", pred,
                      "predicted from the inputs and dout")]


def norm_candidates(case: Case, model: NormModel) -> list[Candidate]:
    """The normalisation's causes for ``dx`` or ``dgamma``."""
    return _dx(case, model) if case.name == "x" else _param(case, model)

