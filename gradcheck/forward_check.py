"""Check a forward against the reference: the bugs a gradient check cannot see, in words.

A backward that is the exact derivative of a wrong forward passes every gradient check. This
module runs the user's course-style forward on designed inputs and compares, with the reference
(:mod:`gradcheck.layers`):

* the training output and the test-mode output (for BatchNorm, with given running statistics;
  LayerNorm and GroupNorm have no mode, so both must equal the reference);
* for BatchNorm, the running statistics written into ``bn_param`` over two training calls from
  given values, and the values they start from when ``bn_param`` has none, in the convention
  asked for (``torch``, ``keras``, ``cs231n``; see :mod:`gradcheck.layers.batchnorm`) or, when
  none is given, the one they follow (detected from what they do).

The user's functions are called as the course writes them: ``batchnorm_forward(x, gamma, beta,
bn_param)``, ``layernorm_forward(x, gamma, beta, ln_param)`` and
``spatial_groupnorm_forward(x, gamma, beta, G, gn_param)``, returning ``(out, cache)`` or ``out``.

**Diagnosis by evidence.** Every deviation is fitted against a catalogue of known mistakes, each
computed on the same inputs (eps outside the square root, no eps, the unbiased variance, dividing
by the variance, gamma or beta missing or swapped, statistics over the wrong axes, batch
statistics in test mode, the momentum convention swapped, running statistics not updated, the
wrong initial running variance, ...). A mistake *reproduces* the deviation when it matches the
user's values within the tolerance; otherwise the report says how much of the deviation (in the
2-norm) the closest mistake explains. Failing that, the output is fitted per statistics group as
an affine map of the correct ``xhat``: when that fits, the normalising mean or spread is wrong
(a mean over part of the batch, say); a forward that gives different outputs on the same input
is reported as random.

**Tolerance.** Values agree when ``max|user - reference| <= 1e-10 * max|reference|``: about
``10**5`` times the float64 rounding of these few operations at the designed inputs (conditioning
``|mean| / std <= 4``), and ``10**4`` times below the smallest mistake in the catalogue (eps
``1e-5`` at unit variance moves outputs by ``5e-6`` relative). A forward computing in float32
therefore deviates, and is reported as such.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.layers.batchnorm import (
    CONVENTIONS,
    RunningStats,
    batchnorm_forward,
    init_running_stats,
    update_running_stats,
)
from gradcheck.layers.groupnorm import groupnorm_forward
from gradcheck.layers.layernorm import layernorm_forward

__all__ = ["AGAINST", "RTOL", "Finding", "ForwardReport", "check_forward", "render_forward_report"]

#: The references a forward can be checked against.
AGAINST = ("batchnorm", "layernorm", "groupnorm")
#: Relative tolerance of every comparison (see the module docstring).
RTOL = 1e-10
_EXPLAINS = 0.9  # a mistake that explains less of the deviation than this is not offered
_DETECT = {"eps": 1e-5, "momentum": 0.9}  # bn_param when the convention is to be detected


@dataclass(frozen=True)
class Finding:
    """One quantity compared with the reference.

    ``deviation`` is ``max|user - reference| / max|reference|`` (``inf`` when the forward raised
    or returned something unusable); ``diagnosis`` says in words what differs and how well the
    offered explanation fits.
    """

    quantity: str
    passed: bool
    deviation: float
    tolerance: float
    diagnosis: str


@dataclass(frozen=True)
class ForwardReport:
    """The findings of one forward check; ``passed`` when every quantity matches."""

    against: str
    convention: str | None
    convention_source: str | None  # "given", "detected", "closest" or None (no running stats)
    shape: tuple[int, ...]
    findings: tuple[Finding, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (inf becomes None)."""
        data = asdict(self)
        data["passed"] = self.passed
        for f in data["findings"]:
            f["deviation"] = f["deviation"] if np.isfinite(f["deviation"]) else None
        return data


class _Unusable(Exception):
    """The user's forward raised or returned something that cannot be compared."""


@dataclass(frozen=True)
class _Case:
    kind: str
    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    eps: float
    groups: int
    momentum: float

    @property
    def wide(self) -> tuple[int, ...]:
        """The shape gamma broadcasts as against x."""
        if self.gamma.shape in (self.x.shape[1:], (1, *self.x.shape[1:])):
            return (1, *self.x.shape[1:])
        return (1, self.x.shape[1]) + (1,) * (self.x.ndim - 2)

    def affine(self, xhat: np.ndarray) -> np.ndarray:
        return self.gamma.reshape(self.wide) * xhat + self.beta.reshape(self.wide)

    def rows(self, a: np.ndarray) -> np.ndarray:
        """``a`` as one row per statistics group: channel (BatchNorm), sample, (sample, group)."""
        if self.kind == "batchnorm":
            return np.moveaxis(a, 1, 0).reshape(self.x.shape[1], -1)
        return a.reshape(self.x.shape[0] * self.groups, -1)

    @property
    def axes(self) -> tuple[int, ...]:
        return (0, *range(2, self.x.ndim)) if self.kind == "batchnorm" else tuple(
            range(1, self.x.ndim))


# ---------------------------------------------------------------------------------------------
# Inputs


def _shape(kind: str, shape: Any) -> tuple[int, ...]:
    default = {"batchnorm": (9, 4), "layernorm": (5, 7), "groupnorm": (3, 6, 2, 3)}[kind]
    if shape is None:
        return default
    ok = isinstance(shape, (tuple, list)) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape)
    dims = (2, 4) if kind != "groupnorm" else (4,)
    if not ok or len(shape) not in dims:
        expected = "(N, D) or (N, C, H, W)" if kind != "groupnorm" else "(N, C, H, W)"
        raise InvalidArgument(f"`shape` must be {expected} for {kind}, got {shape!r}")
    return tuple(int(d) for d in shape)


def _param_shape(kind: str, shape: tuple[int, ...], param_shape: Any) -> tuple[int, ...]:
    c = shape[1]
    course = (1, c) + (1,) * (len(shape) - 2)
    table: dict[str, list[tuple[int, ...]]] = {
        "batchnorm": [(c,)], "groupnorm": [(c,), course],
        "layernorm": [shape[1:], (1, *shape[1:]), (c,), course]}
    accepted = table[kind]
    if param_shape is None:
        return course if kind == "groupnorm" else accepted[0]
    if tuple(param_shape) not in accepted:
        raise InvalidArgument(
            f"`param_shape` must be one of {', '.join(map(str, dict.fromkeys(accepted)))} for "
            f"{kind} on x of shape {shape}, got {tuple(param_shape)!r}"
        )
    return tuple(param_shape)


def _groups(kind: str, shape: tuple[int, ...], groups: Any) -> int:
    if kind != "groupnorm":
        if groups is not None:
            raise InvalidArgument(f"`groups` is for groupnorm, got {groups!r} for {kind}")
        return 1
    g = 2 if groups is None and shape[1] % 2 == 0 else (1 if groups is None else groups)
    ok = isinstance(g, (int, np.integer)) and not isinstance(g, bool) and g >= 1
    if not ok or shape[1] % g:
        raise InvalidArgument(
            f"`groups` must be a positive integer dividing the {shape[1]} channels, got {groups!r}"
        )
    return int(g)


def _data(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Awkward but well-conditioned: per-channel and per-sample offsets and spreads."""
    rng = np.random.default_rng(seed)
    lead = (shape[0], shape[1]) + (1,) * (len(shape) - 2)
    spread = rng.uniform(0.5, 2.0, (1, shape[1], *lead[2:])) * rng.uniform(0.7, 1.4, (shape[0],
                                                                                     *lead[1:]))
    offset = rng.uniform(-2.0, 2.0, (1, shape[1], *lead[2:])) + rng.uniform(-1.0, 1.0,
                                                                            (shape[0], *lead[1:]))
    return rng.standard_normal(shape) * spread + offset


def _case(kind: str, shape: tuple[int, ...], p_shape: tuple[int, ...], groups: int,
          eps: float, momentum: float, seed: int) -> _Case:
    rng = np.random.default_rng([seed, 1])
    gamma = rng.choice([-1.0, 1.0], p_shape) * rng.uniform(0.5, 2.0, p_shape)
    beta = rng.uniform(0.5, 1.5, p_shape) * rng.choice([-1.0, 1.0], p_shape)
    return _Case(kind, _data(shape, seed), gamma, beta, eps, groups, momentum)


# ---------------------------------------------------------------------------------------------
# Calling the user's forward


def _call(forward: Callable[..., Any], case: _Case, x: np.ndarray, param: dict[str, Any],
          what: str) -> np.ndarray:
    args: list[Any] = [x.copy(), case.gamma.copy(), case.beta.copy()]
    if case.kind == "groupnorm":
        args.append(case.groups)
    try:
        result = forward(*args, param)
    except Exception as exc:
        raise _Unusable(f"the forward raised {type(exc).__name__} in {what}: {exc}") from exc
    out = np.asarray(result[0] if isinstance(result, (tuple, list)) else result)
    if out.shape != x.shape or out.dtype.kind != "f":
        raise _Unusable(
            f"the forward returned {out.dtype} of shape {out.shape} in {what}, expected floats "
            f"of shape {x.shape}"
        )
    return out.astype(np.float64)


def _param(case: _Case, mode: str, **extra: Any) -> dict[str, Any]:
    return {"mode": mode, "eps": case.eps, "momentum": case.momentum, **extra}


# ---------------------------------------------------------------------------------------------
# Judging and explaining


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), np.finfo(float).tiny))


def _reproduces(residual: float) -> str:
    within = "exactly" if residual == 0 else f"to {residual:.1g} relative"
    return f"that mistake, made on the same inputs, reproduces the values {within}"


def _pairs(ref: np.ndarray, mistakes: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Every two mistakes made together, their deviations from ``ref`` added."""
    usable = [(t, np.asarray(v, dtype=np.float64)) for t, v in mistakes]
    usable = [(t, v) for t, v in usable if v.shape == ref.shape and np.all(np.isfinite(v))]
    return [(f"two mistakes at once: {t1} and {t2}", v1 + v2 - ref)
            for (t1, v1), (t2, v2) in itertools.combinations(usable, 2)]


def _explain(user: np.ndarray, ref: np.ndarray, mistakes: Sequence[tuple[str, Any]]) -> str:
    """The mistake (or pair of mistakes) that best explains ``user - ref``, with how well."""
    single = _explain_one(user, ref, mistakes)
    if not single.startswith("no known"):
        return single
    pair = _explain_one(user, ref, _pairs(ref, mistakes))
    return single if pair.startswith("no known") else pair


def _explain_one(user: np.ndarray, ref: np.ndarray, mistakes: Sequence[tuple[str, Any]]) -> str:
    """The mistake that best explains ``user - ref``, with how well it does."""
    miss = float(np.linalg.norm(user - ref))
    best, best_share = "", -np.inf
    for text, value in mistakes:
        value = np.asarray(value, dtype=np.float64)
        if value.shape != user.shape or not np.all(np.isfinite(value)):
            continue
        if _relative(user, value) <= RTOL:
            return f"{text}? ({_reproduces(_relative(user, value))})"
        share = 1.0 - float(np.linalg.norm(user - value)) / miss
        if share > best_share:
            best, best_share = text, share
    if best_share >= _EXPLAINS:
        return f"{best}? (explains {100 * best_share:.0f}% of the deviation)"
    closest = f" (closest: {best}, {100 * max(best_share, 0.0):.0f}%)" if best else ""
    return f"no known mistake, alone or in a pair, explains it{closest}"


def _finding(quantity: str, user: np.ndarray, ref: np.ndarray,
             mistakes: Sequence[tuple[str, Any]], extra: Callable[[], str] | None = None
             ) -> Finding:
    dev = _relative(user, ref)
    if dev <= RTOL:
        return Finding(quantity, True, dev, RTOL, "matches the reference")
    text = _explain(user, ref, mistakes)
    if extra is not None and text.startswith("no known"):
        text = f"{text}; {extra()}"
    return Finding(quantity, False, dev, RTOL, f"{quantity} differs by {dev:.2g} relative: {text}")


def _broken(quantity: str, exc: _Unusable) -> Finding:
    return Finding(quantity, False, float("inf"), RTOL, str(exc))


# ---------------------------------------------------------------------------------------------
# Outputs and the mistakes that explain them


def _standardise(x: np.ndarray, view: tuple[int, ...], axes: tuple[int, ...], eps: float, *,
                 spread: str = "inside", ddof: int = 0) -> np.ndarray:
    """``xhat`` with statistics over ``axes`` of ``x.reshape(view)``, spread computed as named."""
    xv = x.reshape(view)
    mu = xv.mean(axis=axes, keepdims=True)
    xc = xv - mu
    n = xv.size // mu.size
    v = (xc * xc).mean(axis=axes, keepdims=True) * (n / (n - ddof))
    s = {"inside": np.sqrt(v + eps), "outside": np.sqrt(v) + eps, "none": np.sqrt(v),
         "variance": v + eps}[spread]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (xc / s).reshape(x.shape)


def _layout(case: _Case) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The correct statistics: the view of x and its axes."""
    if case.kind == "groupnorm":
        return (case.x.shape[0], case.groups, -1), (2,)
    return case.x.shape, case.axes


def _wrong_axes(case: _Case) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    x = case.x
    n, c = x.shape[:2]
    every = tuple(range(1, x.ndim))
    if case.kind == "batchnorm":
        if x.ndim == 2:
            return [("statistics per sample over the features (a LayerNorm), not per feature "
                     "over the batch", x.shape, (1,))]
        return [("statistics over the batch axis only, per (C, H, W) position, not over "
                 "(N, H, W)", x.shape, (0,)), ("statistics over (N, C, H, W) together, not per "
                 "channel", x.shape, tuple(range(x.ndim)))]
    if case.kind == "layernorm":
        out: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = [
            ("statistics over the batch axis (a BatchNorm), not over each sample's features",
                x.shape, (0,))]
        if x.ndim > 2:
            out.append(("statistics per channel (an instance norm), not over the whole sample",
                        x.shape, tuple(range(2, x.ndim))))
        return out
    g = case.groups
    return [
        ("channels assigned to groups by stride (reshape to (N, C/G, G, ...)), not in "
         "consecutive blocks", (n, c // g, g, -1), (1, 3)),
        ("statistics per channel (an instance norm), not per group", x.shape,
         tuple(range(2, x.ndim))),
        ("statistics over the whole sample (a LayerNorm), not per group", x.shape, every),
        ("statistics over the batch and the group's channels, not per sample",
         (n, g, -1), (0, 2)),
    ]


def _output_mistakes(case: _Case) -> list[tuple[str, np.ndarray]]:
    view, axes = _layout(case)
    x, eps = case.x, case.eps
    xhat = _standardise(x, view, axes, eps)
    wide = case.wide
    gamma, beta = case.gamma.reshape(wide), case.beta.reshape(wide)
    named = [
        ("eps added outside the square root", _standardise(x, view, axes, eps, spread="outside")),
        ("eps left out", _standardise(x, view, axes, eps, spread="none")),
        ("divided by the variance, not the standard deviation",
         _standardise(x, view, axes, eps, spread="variance")),
        ("the unbiased variance (n - 1), where the biased one is meant",
         _standardise(x, view, axes, eps, ddof=1)),
    ]
    named += [(t, _standardise(x, v, a, eps)) for t, v, a in _wrong_axes(case)]
    out = [(t, case.affine(h)) for t, h in named]
    return [*out, ("gamma not applied", xhat + beta), ("beta not added", gamma * xhat),
            ("gamma and beta swapped", beta * xhat + gamma)]


def _affine_fit(case: _Case, user: np.ndarray) -> str:
    """Whether each statistics group of ``user`` is an affine map of the correct ``xhat``.

    The fit is judged by how much of the deviation from ``xhat`` it leaves (under 0.1%: the
    map is affine). A structureless deviation of the size of float32 rounding is said to be so.
    """
    view, axes = _layout(case)
    xhat = case.rows(_standardise(case.x, view, axes, case.eps))
    wide = case.wide
    z = case.rows((user - case.beta.reshape(wide)) / case.gamma.reshape(wide))
    design = np.stack([xhat, np.ones_like(xhat)], axis=2)
    coef = np.stack([np.linalg.lstsq(d, r, rcond=None)[0] for d, r in zip(design, z,
                                                                           strict=True)])
    fit = coef[:, :1] * xhat + coef[:, 1:]
    left = float(np.max(np.abs(fit - z)) / max(float(np.max(np.abs(z - xhat))), 1e-300))
    if left > 1e-3:
        units = _relative(user, case.affine(_standardise(case.x, view, axes, case.eps))) / float(
            np.finfo(np.float32).eps)
        if units <= 100:
            return (f"the deviation is {units:.2g} float32 epsilons with no per-group structure: "
                    "float32 arithmetic (does the forward cast to float32?)")
        return ("not an affine map of the correct xhat within each statistics group (an affine "
                f"fit leaves {100 * left:.0f}% of the deviation): the statistics run over other "
                "elements, or the map is not elementwise")
    scale, shift = np.max(np.abs(coef[:, 0] - 1)), np.max(np.abs(coef[:, 1]))
    return (f"each statistics group is the correct xhat scaled by up to {scale:.2g} and "
            f"shifted by up to {shift:.2g} (the fit leaves {100 * left:.2g}% of the deviation): "
            "the mean or spread it normalises by is wrong, e.g. statistics over part of the batch")


def _reference_train(case: _Case, x: np.ndarray | None = None) -> np.ndarray:
    x = case.x if x is None else x
    if case.kind == "batchnorm":
        return batchnorm_forward(x, case.gamma.reshape(-1), case.beta.reshape(-1), eps=case.eps)[0]
    if case.kind == "layernorm":
        return layernorm_forward(x, case.gamma, case.beta, eps=case.eps)[0]
    return groupnorm_forward(x, case.gamma, case.beta, groups=case.groups, eps=case.eps)[0]


def _train_output(forward: Callable[..., Any], case: _Case) -> Finding:
    what = "training mode"
    try:
        user = _call(forward, case, case.x, _param(case, "train"), what)
        again = _call(forward, case, case.x, _param(case, "train"), what)
    except _Unusable as exc:
        return _broken("train output", exc)
    ref = _reference_train(case)
    if _relative(again, user) > RTOL:
        dev = _relative(user, ref)
        return Finding("train output", False, dev, RTOL,
                       f"train output is random: two calls on the same input differ by "
                       f"{_relative(again, user):.2g} relative (a random subset of the batch for "
                       f"the statistics?); {_affine_fit(case, user)}")
    return _finding("train output", user, ref, _output_mistakes(case),
                    lambda: _affine_fit(case, user))


def _running_for_test(case: _Case) -> tuple[np.ndarray, np.ndarray]:
    """Running statistics unlike the batch's, so batch statistics in test mode show."""
    rows = case.rows(case.x)
    return rows.mean(axis=1) + 0.75, rows.var(axis=1) * 1.7 + 0.2


def _test_output(forward: Callable[..., Any], case: _Case) -> Finding:
    if case.kind != "batchnorm":
        try:
            user = _call(forward, case, case.x, _param(case, "test"), "test mode")
        except _Unusable as exc:
            return _broken("test output", exc)
        return _finding("test output", user, _reference_train(case), _output_mistakes(case))
    rm, rv = _running_for_test(case)
    param = _param(case, "test", running_mean=rm.copy(), running_var=rv.copy())
    try:
        user = _call(forward, case, case.x, param, "test mode")
    except _Unusable as exc:
        return _broken("test output", exc)
    g, b = case.gamma.reshape(-1), case.beta.reshape(-1)
    ref = batchnorm_forward(case.x, g, b, training=False, eps=case.eps, running_mean=rm,
                            running_var=rv)[0]
    col = (1, -1) + (1,) * (case.x.ndim - 2)
    xc = case.x - rm.reshape(col)
    v = rv.reshape(col)
    mistakes = [
        ("batch statistics used in test mode, not the running ones", _reference_train(case)),
        ("eps added outside the square root", case.affine(xc / (np.sqrt(v) + case.eps))),
        ("eps left out", case.affine(xc / np.sqrt(v))),
        ("divided by running_var, not its square root", case.affine(xc / (v + case.eps))),
        ("gamma not applied", xc / np.sqrt(v + case.eps) + case.beta.reshape(case.wide)),
        ("beta not added", case.gamma.reshape(case.wide) * xc / np.sqrt(v + case.eps)),
    ]
    return _finding("test output", user, ref, mistakes)


# ---------------------------------------------------------------------------------------------
# Running statistics (BatchNorm)


@dataclass(frozen=True)
class _Law:
    """How a running statistic moves: batch weight ``m`` or ``1 - m``, (un)biased variance."""

    torch_weight: bool  # new = (1 - m) old + m batch
    unbiased: bool

    def describe(self) -> str:
        form = "(1 - m) * old + m * batch" if self.torch_weight else "m * old + (1 - m) * batch"
        return f"new = {form}, {'unbiased' if self.unbiased else 'biased'} variance"


def _law_of(convention: str) -> _Law:
    conv = CONVENTIONS[convention]
    return _Law(conv.batch_weight_is_momentum, conv.unbiased_running_var)


def _batches(case: _Case) -> list[np.ndarray]:
    return [case.x, 0.5 * case.x[::-1] + 1.0]


def _trajectory(case: _Case, law: _Law, start: RunningStats) -> np.ndarray:
    """Rows: mean after batch 1, var after 1, mean after 2, var after 2."""
    out, stats = [], start
    for batch in _batches(case):
        rows = case.rows(batch)
        mu = rows.mean(axis=1)
        var = ((rows - mu[:, None]) ** 2).mean(axis=1)
        n = rows.shape[1]
        w = case.momentum if law.torch_weight else 1.0 - case.momentum
        v = var * n / (n - 1) if law.unbiased else var
        stats = RunningStats((1 - w) * stats.mean + w * mu, (1 - w) * stats.var + w * v)
        out += [stats.mean, stats.var]
    return np.stack(out)


def _reference_trajectory(case: _Case, convention: str, start: RunningStats) -> np.ndarray:
    """The reference's running statistics (:func:`update_running_stats`), rows as above."""
    out, stats = [], start
    for batch in _batches(case):
        rows = case.rows(batch)
        mu = rows.mean(axis=1)
        var = ((rows - mu[:, None]) ** 2).mean(axis=1)
        stats = update_running_stats(stats, mu, var, rows.shape[1], convention=convention,
                                     momentum=case.momentum)
        out += [stats.mean, stats.var]
    return np.stack(out)


def _start(case: _Case) -> RunningStats:
    c = case.x.shape[1]
    return RunningStats(0.3 * np.arange(1, c + 1), 2.0 + 0.25 * np.arange(c))


def _user_trajectory(forward: Callable[..., Any], case: _Case, start: RunningStats | None
                     ) -> np.ndarray:
    extra = {} if start is None else {"running_mean": start.mean.copy(),
                                      "running_var": start.var.copy()}
    param = _param(case, "train", **extra)
    out = []
    for k, batch in enumerate(_batches(case)[: 2 if start is not None else 1], 1):
        _call(forward, case, batch, param, f"training call {k}")
        for key in ("running_mean", "running_var"):
            value = np.asarray(param.get(key, np.nan), dtype=np.float64)
            if key not in param or value.shape != (case.x.shape[1],):
                raise _Unusable(
                    f"after training call {k}, bn_param[{key!r}] is "
                    f"{'missing' if key not in param else f'of shape {value.shape}'}: the "
                    f"running statistics must be stored in bn_param, one per channel"
                )
            out.append(value)
    return np.stack(out)


def _law_difference(target: _Law, found: _Law, convention: str) -> str:
    parts = []
    if found.torch_weight != target.torch_weight:
        parts.append(f"the running statistics move as {found.describe().split(',')[0]}: the "
                     f"{convention} convention uses {target.describe().split(',')[0]} "
                     "(momentum convention swapped)")
    if found.unbiased != target.unbiased:
        have, want = ("unbiased", "biased") if found.unbiased else ("biased", "unbiased")
        parts.append(f"running_var uses the {have} variance: the {convention} convention uses "
                     f"the {want} one")
    return "; ".join(parts)


_LAWS = [_Law(w, u) for w, u in itertools.product((True, False), (True, False))]


def _match_law(case: _Case, user: np.ndarray, start: RunningStats) -> _Law | None:
    for law in _LAWS:
        if _relative(user, _trajectory(case, law, start)) <= RTOL:
            return law
    return None


def _running_update(user: np.ndarray, case: _Case, convention: str) -> Finding:
    start, target = _start(case), _law_of(convention)
    ref = _reference_trajectory(case, convention, start)
    dev = _relative(user, ref)
    if dev <= RTOL:
        return Finding("running update", True, dev, RTOL,
                       f"matches the {convention} convention ({target.describe()})")
    found = _match_law(case, user, start)
    if found is not None:
        residual = _relative(user, _trajectory(case, found, start))
        text = f"{_law_difference(target, found, convention)}? ({_reproduces(residual)})"
    else:
        frozen = np.stack([start.mean, start.var] * 2)
        mistakes = [("running statistics not updated (still the values passed in)", frozen)]
        mistakes += [(_law_difference(target, law, convention), _trajectory(case, law, start))
                     for law in _LAWS if law != target]
        text = _explain(user, ref, mistakes)
        if "reproduces" not in text:
            rows = case.rows(case.x)
            w = (user[0] - start.mean) / (rows.mean(axis=1) - start.mean)
            text += f"; measured batch weight of running_mean: {_value(w)}"
    return Finding("running update", False, dev, RTOL,
                   f"running statistics differ by {dev:.2g} relative: {text}")


def _first_update(case: _Case, init: RunningStats, law: _Law) -> np.ndarray:
    """(mean, var) after one training call from ``init`` under ``law``."""
    return _trajectory(case, law, init)[:2]


def _initial(forward: Callable[..., Any], case: _Case, convention: str, law: _Law) -> Finding:
    """Running statistics when bn_param has none: where did they start?

    The start is inferred from the first update under the law the updates were found to follow
    (``law``): ``start = (new - w batch) / (1 - w)``.
    """
    user = _user_trajectory(forward, case, None)
    init = init_running_stats(case.x.shape[1], convention)
    ref = _reference_trajectory(case, convention, init)[:2]
    dev = _relative(user, ref if law == _law_of(convention) else _first_update(case, init, law))
    if dev <= RTOL:
        return Finding("initial running stats", True, dev, RTOL,
                       f"start at mean {init.mean[0]:g}, var {init.var[0]:g} as in {convention}")
    w = case.momentum if law.torch_weight else 1.0 - case.momentum
    if w == 1.0:
        return Finding("initial running stats", False, dev, RTOL,
                       "differ, and with batch weight 1 the start cannot be inferred")
    batch = _first_update(case, RunningStats(np.zeros(init.mean.shape), np.zeros(init.var.shape)),
                          law)  # = w * batch statistics
    start_mean, start_var = (user - batch) / (1 - w)
    return Finding("initial running stats", False, dev, RTOL,
                   f"initial running statistics differ by {dev:.2g} relative: running_mean "
                   f"starts at {_value(start_mean)} and running_var at {_value(start_var)}: the "
                   f"{convention} convention starts them at {init.mean[0]:g} and "
                   f"{init.var[0]:g} (inferred from the first update)")


def _value(a: np.ndarray) -> str:
    """One number if every channel agrees, else the range."""
    lo, hi = float(np.min(a)), float(np.max(a))
    return f"{lo:.4g}" if abs(hi - lo) <= 1e-9 * max(1.0, abs(lo)) else f"{lo:.4g}..{hi:.4g}"


def _detect(forward: Callable[..., Any], case: _Case) -> tuple[str, str]:
    """The convention the running statistics follow ("detected"), or the closest ("closest").

    A convention scores one point each for its batch weight, its variance estimator and its
    initial running statistics matching what the forward does.
    """
    try:
        law = _match_law(case, _user_trajectory(forward, case, _start(case)), _start(case))
        first = _user_trajectory(forward, case, None)
    except _Unusable:
        return "cs231n", "closest"
    scores = {}
    for name in CONVENTIONS:
        conv_law = _law_of(name)
        if law is None:
            scores[name] = 0
            continue
        init = init_running_stats(case.x.shape[1], name)
        scores[name] = int(law.torch_weight == conv_law.torch_weight) + int(
            law.unbiased == conv_law.unbiased) + int(
            _relative(first, _first_update(case, init, law)) <= RTOL)
    best = max(scores, key=lambda k: scores[k])
    return best, "detected" if scores[best] == 3 else "closest"


def _running(forward: Callable[..., Any], case: _Case, convention: str) -> list[Finding]:
    try:
        user = _user_trajectory(forward, case, _start(case))
    except _Unusable as exc:
        return [_broken("running update", exc)]
    update = _running_update(user, case, convention)
    law = _match_law(case, user, _start(case)) or _law_of(convention)
    try:
        return [update, _initial(forward, case, convention, law)]
    except _Unusable as exc:
        return [update, _broken("initial running stats", exc)]


# ---------------------------------------------------------------------------------------------
# The public entry points


def check_forward(
    forward: Callable[..., Any],
    *,
    against: str = "batchnorm",
    shape: Sequence[int] | None = None,
    param_shape: Sequence[int] | None = None,
    convention: str | None = None,
    groups: int | None = None,
    seed: int = 0,
) -> ForwardReport:
    """Compare a course-style forward with the reference, and say in words what differs.

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, bn_param)`` (batchnorm), ``forward(x, gamma, beta, ln_param)``
        (layernorm) or ``forward(x, gamma, beta, G, gn_param)`` (groupnorm), returning
        ``(out, cache)`` or ``out``; batchnorm writes its running statistics into ``bn_param``.
    against : {"batchnorm", "layernorm", "groupnorm"}
        The reference.
    shape : sequence of int, optional
        Shape of ``x``: ``(N, D)`` or ``(N, C, H, W)``; default ``(9, 4)``, ``(5, 7)`` and
        ``(3, 6, 2, 3)``.
    param_shape : sequence of int, optional
        Shape of ``gamma``/``beta``: ``(C,)`` for batchnorm; ``(C,)`` or ``(1, C, 1, 1)``
        (default) for groupnorm; ``x.shape[1:]`` (default), its keepdims form, ``(C,)`` or
        ``(1, C, 1, 1)`` for layernorm.
    convention : {"torch", "keras", "cs231n"}, optional
        The running-statistics convention the batchnorm forward is meant to follow (its eps and
        momentum go into ``bn_param``); detected from what the running statistics do when
        omitted (then eps ``1e-5`` and momentum ``0.9``).
    groups : int, optional
        ``G`` for groupnorm (default 2, or 1 for an odd number of channels).
    seed : int
        Seed of the designed inputs.

    Returns
    -------
    ForwardReport
        One :class:`Finding` per quantity; ``passed`` when all match.

    Raises
    ------
    InvalidArgument
        An unknown reference or convention, or shapes the reference does not take.

    Examples
    --------
    >>> def layernorm_forward(x, gamma, beta, ln_param):
    ...     mu = x.mean(axis=1, keepdims=True)
    ...     var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    ...     return gamma * (x - mu) / (np.sqrt(var) + ln_param["eps"]) + beta, None
    >>> report = check_forward(layernorm_forward, against="layernorm")
    >>> report.passed
    False
    >>> print(report.findings[0].diagnosis)
    train output differs by ... relative: eps added outside the square root? (that mistake, made on
    the same inputs, reproduces the values ...)
    """
    if against not in AGAINST:
        raise InvalidArgument(f"`against` must be one of {', '.join(AGAINST)}, got {against!r}")
    if not callable(forward):
        raise InvalidArgument(f"`forward` must be callable, got {type(forward).__name__}")
    if convention is not None and (against != "batchnorm" or convention not in CONVENTIONS):
        known = ", ".join(repr(k) for k in CONVENTIONS)
        raise InvalidArgument(
            f"`convention` must be one of {known} (batchnorm only), got {convention!r}"
        )
    x_shape = _shape(against, shape)
    p_shape = _param_shape(against, x_shape, param_shape)
    g = _groups(against, x_shape, groups)
    settings: Mapping[str, float] = _DETECT if convention is None else {
        # every convention in the table has a numeric default momentum (None is an option)
        "eps": CONVENTIONS[convention].eps, "momentum": float(CONVENTIONS[convention].momentum
                                                             or 0.0)}
    case = _case(against, x_shape, p_shape, g, settings["eps"], settings["momentum"], seed)
    findings = [_train_output(forward, case), _test_output(forward, case)]
    if against != "batchnorm":
        return ForwardReport(against, None, None, x_shape, tuple(findings))
    name, source = (convention, "given") if convention is not None else _detect(forward, case)
    findings += _running(forward, case, name)
    return ForwardReport(against, name, source, x_shape, tuple(findings))


def render_forward_report(report: ForwardReport) -> str:
    """The findings as text: a heading, one line per quantity, a verdict.

    Parameters
    ----------
    report : ForwardReport
        From :func:`check_forward`.

    Returns
    -------
    str

    Examples
    --------
    >>> def layernorm_forward(x, gamma, beta, ln_param):
    ...     mu = x.mean(axis=1, keepdims=True)
    ...     xc = x - mu
    ...     return gamma * xc / np.sqrt((xc * xc).mean(axis=1, keepdims=True) + 1e-5) + beta, None
    >>> print(render_forward_report(check_forward(layernorm_forward, against="layernorm")))
    forward check against the reference layernorm, x of shape (5, 7)
      ok       train output: matches the reference
      ok       test output: matches the reference
    forward check: PASS (2 of 2 match)
    """
    conv = "" if report.convention is None else (
        f", convention {report.convention} ({report.convention_source})")
    lines = [f"forward check against the reference {report.against}, x of shape "
             f"{report.shape}{conv}"]
    for f in report.findings:
        mark = "ok" if f.passed else "DIFFERS"
        text = f.diagnosis if f.diagnosis.startswith(f.quantity) else (
            f"{f.quantity}: {f.diagnosis}")
        lines.append(f"  {mark:<8} {text}")
    good = sum(f.passed for f in report.findings)
    verdict = "PASS" if report.passed else "FAIL"
    lines.append(f"forward check: {verdict} ({good} of {len(report.findings)} match)")
    return "\n".join(lines)
