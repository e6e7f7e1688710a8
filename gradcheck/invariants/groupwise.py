"""Identities every correct LayerNorm, GroupNorm or instance norm satisfies, on any such layer.

A layer is given as functions (:class:`NormFunctions`) with BatchNorm's signatures:
``forward(x, gamma, beta, eps) -> out`` and ``backward(dout, x, gamma, beta, eps) ->
(dx, dgamma, dbeta)``; a case is a :class:`NormInputs` whose ``groups`` says how each sample is
split (LayerNorm ``groups=1``, instance norm ``groups=C``). :mod:`gradcheck.invariants.layernorm`
and :mod:`gradcheck.invariants.groupnorm` adapt the references. Results, errors and the caller's
data are handled as in :mod:`gradcheck.invariants.batchnorm`.

Notation, per sample ``i`` and group ``g`` (its ``M`` values, C-order consecutive in ``x[i]``)::

    mu = mean(x)   v = mean((x - mu)**2)   s = sqrt(v + eps)   xhat = (x - mu) / s
    y = gamma * xhat + beta      (gamma, beta broadcast against x: per feature or per channel)

Sources: the definitions in Ba, Kiros & Hinton 2016 (arXiv 1607.06450, eq. 3-4: statistics per
training case, "no new dependencies between training cases"), Wu & He 2018 (arXiv 1803.08494,
eq. 1-3: statistics per sample and group of channels) and Ulyanov et al. 2016 (arXiv 1607.08022,
eq. 2: instance norm, one channel per group); PyTorch's ``layer_norm``/``group_norm``
documentation for the biased variance and where ``eps`` goes. Each identity below follows from
the definition; the backward ones from ``dx = (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) / s``
with ``dxhat = dout * gamma`` (derived in :mod:`gradcheck.layers._groupwise`): summing gives
``sum(dx) = 0``; multiplying by ``xhat`` and using ``sum(xhat) = 0``, ``sum(xhat**2) = M v/(v+eps)``
gives ``sum(dx xhat) = sum(dxhat xhat) eps / s**3``.

Error model (as BatchNorm's, per group): ``u`` the machine epsilon of the least precise dtype
involved, ``kappa = |mu| / s``, ``c = 10`` rounded operations per path, and::

    E = c u sqrt(M) (1 + kappa) max(|gamma| + |beta|)   error of one forward output
    G = c u (1 + kappa) ||dxhat||_2 / s                  error of one dx element
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.invariants._common import (
    _C,
    InvariantResult,
    _call,
    _default_dout,
    _eps,
    _float_array,
    _judge,
    _reports,
    _result,
    _unit,
    _Unusable,
)

__all__ = [
    "NORM_INVARIANTS",
    "NormFunctions",
    "NormInputs",
    "check_group_affine",
    "check_group_dx_sum_zero",
    "check_group_dx_xhat_identity",
    "check_group_independence",
    "check_group_moments",
    "check_group_param_grads",
    "check_group_shift_invariance",
    "check_norm_invariants",
]

Forward = Callable[[np.ndarray, np.ndarray, np.ndarray, float], Any]
Backward = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float], Any]


class NormInputs(NamedTuple):
    """One LayerNorm/GroupNorm case; ``None`` means the documented default.

    ``gamma``/``beta`` per channel ``(C,)`` (ones, zeros) unless given in another shape the layer
    accepts (``x.shape[1:]``, ``(1, *x.shape[1:])``, ``(1, C, 1, 1)``); ``dout`` a fixed
    non-constant upstream gradient; ``groups`` 1 for LayerNorm, ``C`` for instance norm.
    """

    x: Any
    gamma: Any = None
    beta: Any = None
    dout: Any = None
    eps: float = 1e-5
    groups: int = 1


@dataclass(frozen=True)
class NormFunctions:
    """A LayerNorm/GroupNorm as functions; the backward identities need ``backward``.

    ``forward(x, gamma, beta, eps) -> out``; ``backward(dout, x, gamma, beta, eps) ->
    (dx, dgamma, dbeta)`` with ``dgamma``/``dbeta`` in ``gamma``'s shape.
    """

    forward: Forward
    backward: Backward | None = None


@dataclass(frozen=True)
class _GCase:
    """Validated copies of a case plus float64 statistics per (sample, group)."""

    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    wide: tuple[int, ...]  # the shape gamma broadcasts as against x
    dout: np.ndarray
    eps: float
    groups: int
    mean: np.ndarray  # (N, G)
    var: np.ndarray

    @property
    def m(self) -> int:
        return self.x.size // (self.x.shape[0] * self.groups)

    @property
    def s(self) -> np.ndarray:
        return np.sqrt(self.var + self.eps)

    @property
    def kappa(self) -> np.ndarray:
        return np.abs(self.mean) / self.s

    def grouped(self, a: Any) -> np.ndarray:
        """``a`` (broadcastable to x) as a float64 ``(N, G, M)`` array."""
        full = np.broadcast_to(np.asarray(a, dtype=np.float64), self.x.shape)
        return full.reshape(self.x.shape[0], self.groups, -1)

    def param(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=np.float64).reshape(self.wide)

    def xhat(self) -> np.ndarray:
        return (self.grouped(self.x) - self.mean[..., None]) / self.s[..., None]

    def reduce_axes(self) -> tuple[int, ...]:
        return tuple(a for a, n in enumerate(self.wide) if n == 1)


def _wide_shape(name: str, arr: np.ndarray, x: np.ndarray) -> tuple[int, ...]:
    features, c = tuple(x.shape[1:]), x.shape[1]
    per_channel = (1, c) + (1,) * (x.ndim - 2)
    if arr.shape in (features, (1, *features)):
        return (1, *features)
    if arr.shape in ((c,), per_channel):
        return per_channel
    raise InvalidArgument(
        f"`{name}` must have shape ({c},), {per_channel}, {features} or {(1, *features)}, "
        f"got shape {arr.shape}"
    )


def _groups(groups: Any, x: np.ndarray) -> int:
    ok = isinstance(groups, (int, np.integer)) and not isinstance(groups, bool) and groups >= 1
    if not ok or x.shape[1] % groups:
        raise InvalidArgument(
            f"`groups` must be a positive integer dividing the {x.shape[1]} channels of x, "
            f"got {groups!r}"
        )
    return int(groups)


def _prepare(inputs: NormInputs) -> _GCase:
    x = _float_array("x", inputs.x)
    if x.ndim < 2:
        raise InvalidArgument(f"`x` must have a batch and a channel axis, got shape {x.shape}")
    groups = _groups(inputs.groups, x)
    c = x.shape[1]
    gamma = np.ones(c, x.dtype) if inputs.gamma is None else _float_array("gamma", inputs.gamma)
    beta = np.zeros(gamma.shape, x.dtype) if inputs.beta is None else _float_array(
        "beta", inputs.beta
    )
    wide = _wide_shape("gamma", gamma, x)
    if beta.shape != gamma.shape:
        raise InvalidArgument(f"`beta` must have gamma's shape {gamma.shape}, got {beta.shape}")
    eps = _eps(inputs.eps)
    dout = _default_dout(x) if inputs.dout is None else _float_array("dout", inputs.dout)
    if dout.shape != x.shape:
        raise InvalidArgument(f"`dout` must have the shape of x {x.shape}, got {dout.shape}")
    rows = x.astype(np.float64).reshape(x.shape[0], groups, -1)
    if rows.shape[2] < 2:
        raise InvalidArgument(f"`x` must have at least 2 values per group, got shape {x.shape}")
    mean = rows.mean(axis=2)
    centred = rows - mean[..., None]
    var = (centred * centred).mean(axis=2)
    if np.any(~(var + eps > 0)):
        raise InvalidArgument("`x`: variance + eps must be positive in every group, got 0")
    return _GCase(x, gamma, beta, wide, dout, eps, groups, mean, var)


def _forward(forward: Forward, case: _GCase, x: np.ndarray, gamma: Any = None,
             beta: Any = None) -> np.ndarray:
    g = case.gamma if gamma is None else gamma
    b = case.beta if beta is None else beta
    return _result("forward's output", _call("forward", forward, x, g, b, case.eps), case.x.shape)


def _backward(backward: Backward, case: _GCase) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grads = _call("backward", backward, case.dout, case.x, case.gamma, case.beta, case.eps)
    if not isinstance(grads, (tuple, list)) or len(grads) != 3:
        raise _Unusable(f"backward must return (dx, dgamma, dbeta), got {type(grads).__name__}")
    p = case.gamma.shape
    return (_result("dx", grads[0], case.x.shape), _result("dgamma", grads[1], p),
            _result("dbeta", grads[2], p))


def _size(case: _GCase) -> np.ndarray:
    """``max(|gamma| + |beta|)`` per (sample, group)."""
    return (np.abs(case.grouped(case.param(case.gamma))) +
            np.abs(case.grouped(case.param(case.beta)))).max(axis=2)


def _e(case: _GCase, u: float, kappa: np.ndarray | None = None, size: Any = None) -> np.ndarray:
    k = case.kappa if kappa is None else kappa
    scale = _size(case) if size is None else size
    return _C * u * np.sqrt(case.m) * (1.0 + k) * scale


def _g(case: _GCase, u: float) -> np.ndarray:
    dxhat = case.grouped(case.dout) * case.grouped(case.param(case.gamma))
    return _C * u * (1.0 + case.kappa) * np.linalg.norm(dxhat, axis=2) / case.s


def _floor(case: _GCase, *arrays: np.ndarray) -> float:
    eta = max(float(np.finfo(a.dtype).smallest_subnormal) for a in (case.x, *arrays))
    return _C * case.m * eta


@_reports("group_moments")
def check_group_moments(forward: Forward, inputs: NormInputs) -> InvariantResult:
    """With ``gamma = 1``, ``beta = 0``: per group mean 0 and biased variance ``v / (v + eps)``.

    The definition (Ba et al. eq. 3-4, Wu & He eq. 1-3). Catches ``eps`` outside the square
    root, an unbiased variance, statistics over the wrong axes. Tolerance per group: ``E`` for
    the mean, ``2 E + E**2`` for the variance (``|gamma| + |beta| = 1``).

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out``.
    inputs : NormInputs
        The case.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> from gradcheck.invariants.layernorm import layernorm_functions
    >>> x = np.array([[1.0, 2.0, 7.0], [3.0, 0.0, 4.0]])
    >>> check_group_moments(layernorm_functions().forward, NormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    out = _forward(forward, case, case.x, np.ones_like(case.gamma), np.zeros_like(case.beta))
    e = _e(case, _unit(case.x, out), size=1.0)
    rows = case.grouped(out)
    mean = rows.mean(axis=2)
    var = ((rows - mean[..., None]) ** 2).mean(axis=2)
    error = np.stack([mean, var - case.var / (case.var + case.eps)])
    return _judge("group_moments", error, np.stack([e, 2 * e + e * e]),
                  "rows mean, var - v/(v+eps); (row, sample, group)", _floor(case, out))


@_reports("group_affine")
def check_group_affine(forward: Forward, inputs: NormInputs) -> InvariantResult:
    """``out(gamma, beta) = gamma * out(1, 0) + beta`` elementwise: the affine map is applied last.

    The definition's ``y = gamma xhat + beta``; catches a missing, swapped or misshaped
    ``gamma``/``beta``. Tolerance per element: ``E`` of its group (with the case's parameters)
    plus ``|gamma| E`` at ``gamma = 1``.

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out``.
    inputs : NormInputs
        The case.

    Returns
    -------
    InvariantResult
    """
    case = _prepare(inputs)
    plain = _forward(forward, case, case.x, np.ones_like(case.gamma), np.zeros_like(case.beta))
    out = _forward(forward, case, case.x)
    u = _unit(case.x, out, plain)
    gamma, beta = case.grouped(case.param(case.gamma)), case.grouped(case.param(case.beta))
    error = case.grouped(out) - (gamma * case.grouped(plain) + beta)
    tol = _e(case, u)[..., None] + np.abs(gamma) * _e(case, u, size=1.0)[..., None]
    return _judge("group_affine", error, tol, "out - (gamma out(1, 0) + beta), (sample, group, k)",
                  _floor(case, out, plain))


@_reports("group_shift_invariance")
def check_group_shift_invariance(forward: Forward, inputs: NormInputs) -> InvariantResult:
    """``f(x + c) = f(x)`` for a constant ``c`` per (sample, group), to rounding.

    The statistics are per group (Wu & He eq. 1), so a per-group offset cancels in ``x - mu``.
    ``c = 3 s - mu`` moves every group to a well-conditioned mean, exposing one-pass variances
    and missing centring. Tolerance ``2 E`` with the larger ``kappa`` of the two.

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out``.
    inputs : NormInputs
        The case.

    Returns
    -------
    InvariantResult
    """
    case = _prepare(inputs)
    c = (3.0 * case.s - case.mean)[..., None]
    shifted = (case.grouped(case.x) + c).reshape(case.x.shape).astype(case.x.dtype)
    out, out_shifted = _forward(forward, case, case.x), _forward(forward, case, shifted)
    kappa = np.maximum(case.kappa, np.abs(case.mean + c[..., 0]) / case.s)
    tol = 2 * _e(case, _unit(case.x, out, out_shifted), kappa)
    error = case.grouped(out_shifted) - case.grouped(out)
    return _judge("group_shift_invariance", error, tol[..., None],
                  "f(x + c) - f(x), (sample, group, k)", _floor(case, out, out_shifted))


@_reports("group_independence")
def check_group_independence(forward: Forward, inputs: NormInputs) -> InvariantResult:
    """Changing one (sample, group) leaves every other group's output unchanged, bit for bit.

    Ba et al. §3: layer normalisation introduces no dependencies between training cases; Wu &
    He eq. 1: groups are normalised separately. The first sample's first group is replaced by
    ``2 x + 1``; an exact identity (tolerance 0).

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out``.
    inputs : NormInputs
        The case.

    Returns
    -------
    InvariantResult
    """
    case = _prepare(inputs)
    changed = case.x.reshape(case.x.shape[0], case.groups, -1).copy()
    changed[0, 0] = 2 * changed[0, 0] + 1
    out = _forward(forward, case, case.x)
    out_changed = _forward(forward, case, changed.reshape(case.x.shape))
    error = case.grouped(out_changed) - case.grouped(out)
    error[0, 0] = 0.0
    return _judge("group_independence", error, 0.0,
                  "other groups' output after changing (0, 0), (sample, group, k)")


@_reports("group_dx_sum_zero")
def check_group_dx_sum_zero(backward: Backward, inputs: NormInputs) -> InvariantResult:
    """``sum(dx) = 0`` per (sample, group).

    Derived in the module docstring. Tolerance ``sqrt(M) G``.

    Parameters
    ----------
    backward : callable
        ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``.
    inputs : NormInputs
        The case, with ``dout``.

    Returns
    -------
    InvariantResult
    """
    case = _prepare(inputs)
    dx = _backward(backward, case)[0]
    g = _g(case, _unit(case.x, case.dout, dx))
    return _judge("group_dx_sum_zero", case.grouped(dx).sum(axis=2), np.sqrt(case.m) * g,
                  "sum(dx), (sample, group)", _floor(case, dx))


@_reports("group_dx_xhat_identity")
def check_group_dx_xhat_identity(backward: Backward, inputs: NormInputs) -> InvariantResult:
    """``sum(dx * xhat) = sum(dout * gamma * xhat) * eps / s**3`` per (sample, group).

    Derived in the module docstring; ``xhat`` is computed independently in float64. With
    ``eps > 0`` it fixes the scale of ``dx``. Tolerance ``2 sqrt(M) G``.

    Parameters
    ----------
    backward : callable
        ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``.
    inputs : NormInputs
        The case, with ``dout``.

    Returns
    -------
    InvariantResult
    """
    case = _prepare(inputs)
    dx = _backward(backward, case)[0]
    xhat = case.xhat()
    dxhat = case.grouped(case.dout) * case.grouped(case.param(case.gamma))
    target = (dxhat * xhat).sum(axis=2) * case.eps / case.s**3
    error = (case.grouped(dx) * xhat).sum(axis=2) - target
    g = _g(case, _unit(case.x, case.dout, dx))
    return _judge("group_dx_xhat_identity", error, 2 * np.sqrt(case.m) * g,
                  "sum(dx xhat) - sum(dxhat xhat) eps/s^3, (sample, group)", _floor(case, dx))


@_reports("group_param_grads")
def check_group_param_grads(backward: Backward, inputs: NormInputs) -> InvariantResult:
    """``dgamma = sum(dout * xhat)`` and ``dbeta = sum(dout)`` over the axes gamma broadcasts on.

    ``xhat`` is computed independently in float64. Tolerance per parameter element:
    ``2 c u (1 + max kappa) sqrt(K) ||dout||_2`` over its ``K`` summed positions.

    Parameters
    ----------
    backward : callable
        ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``.
    inputs : NormInputs
        The case, with ``dout``.

    Returns
    -------
    InvariantResult
    """
    case = _prepare(inputs)
    _, dgamma, dbeta = _backward(backward, case)
    axes = case.reduce_axes()
    d = case.dout.astype(np.float64)
    xhat = case.xhat().reshape(case.x.shape)
    count = case.x.size // int(np.prod(case.wide))
    u = _unit(case.x, case.dout, dgamma, dbeta)
    norm = np.sqrt((d * d).sum(axis=axes, keepdims=True)).reshape(-1)
    tol = 2 * _C * u * (1 + float(case.kappa.max())) * np.sqrt(count) * norm
    error = np.stack([
        dgamma.reshape(-1) - (d * xhat).sum(axis=axes, keepdims=True).reshape(-1),
        dbeta.reshape(-1) - d.sum(axis=axes, keepdims=True).reshape(-1),
    ])
    return _judge("group_param_grads", error, np.stack([tol, tol]),
                  "rows dgamma - sum(dout xhat), dbeta - sum(dout); (row, parameter)",
                  _floor(case, dgamma, dbeta))


class _Entry(NamedTuple):
    needs: str
    run: Callable[[Any, NormInputs], InvariantResult]


_REGISTRY: Mapping[str, _Entry] = MappingProxyType({
    "group_moments": _Entry("forward", check_group_moments),
    "group_affine": _Entry("forward", check_group_affine),
    "group_shift_invariance": _Entry("forward", check_group_shift_invariance),
    "group_independence": _Entry("forward", check_group_independence),
    "group_dx_sum_zero": _Entry("backward", check_group_dx_sum_zero),
    "group_dx_xhat_identity": _Entry("backward", check_group_dx_xhat_identity),
    "group_param_grads": _Entry("backward", check_group_param_grads),
})

#: Names of every LayerNorm/GroupNorm invariant, in the order :func:`check_norm_invariants` runs.
NORM_INVARIANTS: tuple[str, ...] = tuple(_REGISTRY)


def _chosen(functions: NormFunctions, names: Iterable[str] | None) -> list[str]:
    if names is None:
        return [n for n, e in _REGISTRY.items() if getattr(functions, e.needs) is not None]
    if isinstance(names, str):
        raise InvalidArgument(f"`names` must be a sequence of names, got the string {names!r}")
    chosen = list(names)
    for name in chosen:
        if name not in _REGISTRY:
            known = ", ".join(NORM_INVARIANTS)
            raise InvalidArgument(f"unknown invariant {name!r}; known: {known}")
        if getattr(functions, _REGISTRY[name].needs) is None:
            raise InvalidArgument(
                f"invariant {name!r} needs `{_REGISTRY[name].needs}`, which is None"
            )
    return chosen


def check_norm_invariants(
    functions: NormFunctions, inputs: NormInputs, *, names: Sequence[str] | None = None
) -> list[InvariantResult]:
    """Check every LayerNorm/GroupNorm invariant the functions allow (or those in ``names``).

    Parameters
    ----------
    functions : NormFunctions
        The layer; the backward identities are skipped when ``backward`` is None.
    inputs : NormInputs
        The case; ``groups`` says how each sample is split.
    names : sequence of str, optional
        A subset of :data:`NORM_INVARIANTS`.

    Returns
    -------
    list of InvariantResult

    Raises
    ------
    InvalidArgument
        Bad inputs, an unknown name, or a name whose function is missing.

    Examples
    --------
    >>> from gradcheck.invariants.groupnorm import groupnorm_functions
    >>> x = np.arange(24.0).reshape(2, 4, 3) ** 1.5
    >>> results = check_norm_invariants(groupnorm_functions(2), NormInputs(x, groups=2))
    >>> len(results) == len(NORM_INVARIANTS), all(r.passed for r in results)
    (True, True)
    """
    chosen = _chosen(functions, names)
    _prepare(inputs)
    return [_REGISTRY[n].run(getattr(functions, _REGISTRY[n].needs), inputs) for n in chosen]
