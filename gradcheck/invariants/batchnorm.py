"""Identities every correct BatchNorm satisfies, checked on any BatchNorm-like layer.

A layer is given as plain functions (:class:`BatchNormFunctions`): a training ``forward``, a
``backward``, an inference ``forward_eval`` and a ``running_stats`` tracker, any of them optional.
:func:`reference_functions` adapts the reference BatchNorm and :func:`course_functions` adapts the
course convention ``batchnorm_forward(x, gamma, beta, bn_param) -> (out, cache)``,
``batchnorm_backward(dout, cache) -> (dx, dgamma, dbeta)``. Each ``check_*`` function runs the one
function it needs on a :class:`BatchNormInputs` (or a :class:`gradcheck.strategies.BatchNormCase`)
and returns an :class:`InvariantResult`. A failed identity, a wrongly shaped or non-finite result is
``passed=False``, never an exception; :class:`~gradcheck.errors.InvalidArgument` means bad
arguments, :class:`~gradcheck.errors.LayerError` means the layer raised. The caller's arrays and
dicts are never modified: every call into the layer gets fresh copies.

Notation, per channel over its ``n = x.size / C`` values::

    mu = mean(x)    v = mean((x - mu)**2)    s = sqrt(v + eps)    xhat = (x - mu) / s
    y = gamma * xhat + beta                  g = dout             dx = J^T g

Derivations
-----------
*Jacobian.* ``dmu/dx_j = 1/n`` and ``ds/dx_j = (x_j - mu) / (n s)``, so
``d xhat_i / d x_j = (delta_ij - 1/n - xhat_i xhat_j / n) / s`` and, per channel,
``J = gamma / s * (I - 1 1^T / n - xhat xhat^T / n)``: symmetric for every ``eps`` and every
``gamma``, because BatchNorm's ``gamma`` is constant within a channel, and ``J`` is block diagonal
across channels. (An affine map varying inside a channel, as in LayerNorm's elementwise weight,
would make it ``diag(gamma) K``: not symmetric.) In inference mode ``J`` is diagonal.

*Backward.* ``dx = gamma / s * (g - mean(g) - xhat * mean(g * xhat))``. With ``sum(xhat) = 0`` and
``sum(xhat**2) = n v / (v + eps)``: ``sum(dx) = 0`` and, writing ``dgamma = sum(g * xhat)``,
``sum(dx * xhat) = gamma / s * (dgamma - v / (v + eps) * dgamma)
= gamma * dgamma * eps / (v + eps)**1.5``. With ``eps = 0``, ``dx`` is orthogonal to ``1`` and to
``xhat``. These two sums pin down the scale of ``dx`` only when ``eps > 0``.

*Scale covariance.* For ``a = 2**k``, ``mu``, ``x - mu`` scale by ``a``, ``v`` by ``a**2`` and
``a**2 v + eps = a**2 (v + eps / a**2)``, so ``BN_eps(a x) = BN_{eps/a**2}(x)``. Multiplying by a
power of two commutes with rounding, and ``sqrt`` of a power of four is exact, so every step of the
forward (sums, ``/n``, ``x - mu``, squares, ``+ eps``, ``sqrt``, division) agrees up to the factor:
the identity holds bit for bit, for any ``gamma`` and ``beta``, in training mode, as long as no
intermediate overflows or becomes subnormal.

*Odd symmetry.* Negation commutes with rounding, so with ``beta = 0`` a forward built from sums,
products, quotients and square roots gives ``BN(-x) = -BN(x)`` bit for bit. With ``beta != 0``,
``BN(x) + BN(-x) = 2 beta`` holds to the rounding of the final addition only.

Error model
-----------
``u`` is the machine epsilon of the less precise of ``x``'s dtype and the layer's result dtype.
``kappa = |mu| / s`` is the conditioning of the centring: an error ``u |mu|`` in the mean is an
error ``u kappa`` in every ``xhat``. ``c = 10`` bounds the number of rounded operations on the
path from an input to an output (forward: mean, subtract, square, mean, add ``eps``, square root,
divide, scale, shift, cast; the backward's compact formula has as many), each contributing at most
``u`` relative to the path's scale. ``sqrt(n)`` covers sums of ``n`` rounding errors (random-walk
model) and ``|xhat| <= sqrt(n - 1)``. Every tolerance that is not exact also gets an absolute
``c n eta`` for underflow, ``eta`` the smallest subnormal of the dtype (it matters only for tiny
``gamma``). Per channel::

    E = c u sqrt(n) (1 + kappa) (|gamma| + |beta|)      error of one forward output
    G = c u (1 + kappa) |gamma| / s ||g||_2             error of one dx element

Each ``check_*`` docstring states its tolerance in these terms. No constant is tuned to a test:
over 1000 drawn cases (:func:`gradcheck.strategies.batchnorm_cases`) the reference, both backward
forms, and a course-style BatchNorm computing in float32 used at most 12% of any tolerance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.invariants._common import (
    _C,
    InvariantResult,
    _call,
    _copy,
    _default_dout,
    _eps,
    _float_array,
    _judge,
    _moments,
    _reports,
    _result,
    _unit,
    _Unusable,
)
from gradcheck.layers.batchnorm import BatchNorm, batchnorm_backward, batchnorm_forward

__all__ = [
    "INVARIANTS",
    "BatchNormData",
    "BatchNormFunctions",
    "BatchNormInputs",
    "InvariantResult",
    "check_batch_permutation",
    "check_channel_independence",
    "check_dbeta_identity",
    "check_dgamma_identity",
    "check_dx_linear_in_dout",
    "check_dx_proportional_to_gamma",
    "check_dx_sum_zero",
    "check_dx_xhat_identity",
    "check_inference_affine",
    "check_invariants",
    "check_jacobian_symmetry",
    "check_odd_symmetry",
    "check_output_mean",
    "check_output_variance",
    "check_running_stats",
    "check_scale_covariance",
    "check_shift_invariance",
    "course_functions",
    "reference_functions",
]

_LINEAR = (2.0, -0.5)  # dx(a d1 + b d2) = a dx(d1) + b dx(d2); 1 - a - b != 0 also catches offsets

Forward = Callable[[np.ndarray, np.ndarray, np.ndarray, float], Any]
Backward = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float], Any]
EvalForward = Callable[
    [np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, np.ndarray], Any
]
RunningStats = Callable[[list[np.ndarray]], Any]




class BatchNormData(Protocol):
    """What the checks read from a case: :class:`BatchNormInputs` or a drawn ``BatchNormCase``."""

    @property
    def x(self) -> Any: ...
    @property
    def gamma(self) -> Any: ...
    @property
    def beta(self) -> Any: ...
    @property
    def dout(self) -> Any: ...
    @property
    def eps(self) -> float: ...
    @property
    def channel_axis(self) -> int: ...
    @property
    def running_mean(self) -> Any: ...
    @property
    def running_var(self) -> Any: ...


class BatchNormInputs(NamedTuple):
    """One BatchNorm case; ``None`` means the documented default.

    ``gamma`` ones, ``beta`` zeros, ``dout`` a fixed non-constant upstream gradient (standard
    normal, seed 0, plus 0.5), ``running_mean``/``running_var`` the batch mean and biased variance
    of ``x`` (used by the inference check).
    """

    x: Any
    gamma: Any = None
    beta: Any = None
    dout: Any = None
    eps: float = 1e-5
    channel_axis: int = 1
    running_mean: Any = None
    running_var: Any = None


@dataclass(frozen=True)
class BatchNormFunctions:
    """A BatchNorm layer as functions; the checks needing a missing one are skipped.

    ``forward(x, gamma, beta, eps) -> out`` (training mode, updates nothing the caller sees);
    ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``;
    ``forward_eval(x, gamma, beta, eps, running_mean, running_var) -> out``;
    ``running_stats(batches) -> (running_mean, running_var)`` after training a fresh layer on
    ``batches`` in order, under ``convention`` (``"torch"``, ``"keras"``, ``"cs231n"``) with
    ``momentum`` (``"default"`` for the convention's, ``None`` for torch's cumulative average).
    """

    forward: Forward
    backward: Backward | None = None
    forward_eval: EvalForward | None = None
    running_stats: RunningStats | None = None
    convention: str = "torch"
    momentum: float | str | None = "default"


# ---------------------------------------------------------------------------------------------
# Validation and per-channel views


@dataclass(frozen=True)
class _Case:
    """Validated copies of the inputs plus float64 batch statistics per channel."""

    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    dout: np.ndarray
    eps: float
    axis: int
    running_mean: np.ndarray
    running_var: np.ndarray
    mean: np.ndarray
    var: np.ndarray

    @property
    def channels(self) -> int:
        return self.x.shape[self.axis]

    @property
    def n(self) -> int:
        return self.x.size // self.channels

    @property
    def s(self) -> np.ndarray:
        return np.sqrt(self.var + self.eps)

    @property
    def kappa(self) -> np.ndarray:
        return np.abs(self.mean) / self.s

    def rows(self, a: np.ndarray) -> np.ndarray:
        """``a`` (shaped like ``x``) as a float64 ``(C, n)`` matrix, one row per channel."""
        return np.moveaxis(np.asarray(a, dtype=np.float64), self.axis, 0).reshape(
            self.channels, -1
        )

    def column(self, p: Any) -> np.ndarray:
        """A per-channel vector shaped to broadcast against ``x``."""
        shape = [1] * self.x.ndim
        shape[self.axis] = -1
        return np.reshape(p, shape)

    def xhat(self) -> np.ndarray:
        return (self.rows(self.x) - self.mean[:, None]) / self.s[:, None]






def _axis(x: np.ndarray, channel_axis: Any) -> int:
    if x.ndim < 2:
        raise InvalidArgument(f"`x` must have a batch and a channel axis, got shape {x.shape}")
    ok = isinstance(channel_axis, (int, np.integer)) and not isinstance(channel_axis, bool)
    if not ok or not -x.ndim <= channel_axis < x.ndim or channel_axis % x.ndim == 0:
        raise InvalidArgument(
            f"`channel_axis` must be a non-batch axis of x (1 to {x.ndim - 1}, or negative), "
            f"got {channel_axis!r}"
        )
    return int(channel_axis) % x.ndim


def _vector(name: str, value: Any, channels: int, default: np.ndarray) -> np.ndarray:
    if value is None:
        return default
    arr = _float_array(name, value)
    if arr.shape != (channels,):
        raise InvalidArgument(f"`{name}` must have shape ({channels},), got shape {arr.shape}")
    return arr






def _dout(dout: Any, x: np.ndarray) -> np.ndarray:
    if dout is None:
        return _default_dout(x)
    arr = _float_array("dout", dout)
    if arr.shape != x.shape:
        raise InvalidArgument(f"`dout` must have the shape of x {x.shape}, got {arr.shape}")
    return arr




def _prepare(inputs: BatchNormData) -> _Case:
    """Validate and copy ``inputs``; compute the batch statistics the tolerances need."""
    x = _float_array("x", inputs.x)
    axis = _axis(x, inputs.channel_axis)
    c = x.shape[axis]
    gamma = _vector("gamma", inputs.gamma, c, np.ones(c, x.dtype))
    beta = _vector("beta", inputs.beta, c, np.zeros(c, x.dtype))
    eps = _eps(inputs.eps)
    rows = np.moveaxis(x.astype(np.float64), axis, 0).reshape(c, -1)
    if rows.shape[1] < 2:
        raise InvalidArgument(f"`x` must have at least 2 values per channel, got shape {x.shape}")
    mean, var = _moments(rows)
    _positive("x", var + eps, eps)
    rm = _vector("running_mean", inputs.running_mean, c, mean)
    rv = _vector("running_var", inputs.running_var, c, var)
    _positive("running_var", rv + eps, eps)
    return _Case(x, gamma, beta, _dout(inputs.dout, x), eps, axis, rm, rv, mean, var)


def _positive(name: str, v_plus_eps: np.ndarray, eps: float) -> None:
    bad = np.flatnonzero(~(v_plus_eps > 0))
    if bad.size:
        raise InvalidArgument(
            f"`{name}`: variance + eps must be positive in every channel, got "
            f"{float(v_plus_eps[bad[0]])!r} in channel {bad[0]} (eps={eps}); "
            "BatchNorm is undefined there"
        )


# ---------------------------------------------------------------------------------------------
# Calling the layer








def _forward(
    forward: Forward, case: _Case, x: np.ndarray, beta: Any = None, eps: float | None = None
) -> np.ndarray:
    beta = case.beta if beta is None else beta
    out = _call("forward", forward, x, case.gamma, beta, case.eps if eps is None else eps)
    return _result("forward's output", out, case.x.shape)


def _backward(
    backward: Backward, case: _Case, dout: np.ndarray, gamma: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gamma = case.gamma if gamma is None else gamma
    grads = _call("backward", backward, dout, case.x, gamma, case.beta, case.eps)
    if not isinstance(grads, (tuple, list)) or len(grads) != 3:
        raise _Unusable(f"backward must return (dx, dgamma, dbeta), got {type(grads).__name__}")
    c = (case.channels,)
    return (
        _result("dx", grads[0], case.x.shape),
        _result("dgamma", grads[1], c),
        _result("dbeta", grads[2], c),
    )






def _underflow(case: _Case, *arrays: np.ndarray) -> float:
    """``c n eta``: the absolute error budget for results in the subnormal range."""
    eta = max(float(np.finfo(a.dtype).smallest_subnormal) for a in (case.x, *arrays))
    return _C * case.n * eta




def _forward_scale(case: _Case, u: float, kappa: np.ndarray | None = None) -> np.ndarray:
    """``E`` per channel (see the module docstring)."""
    k = case.kappa if kappa is None else kappa
    size = np.abs(case.gamma.astype(np.float64)) + np.abs(case.beta.astype(np.float64))
    return _C * u * np.sqrt(case.n) * (1.0 + k) * size


def _backward_scale(case: _Case, u: float, dout: np.ndarray) -> np.ndarray:
    """``G`` per channel for upstream gradient ``dout`` (see the module docstring)."""
    gamma = np.abs(case.gamma.astype(np.float64))
    norm = np.linalg.norm(case.rows(dout), axis=1)
    return _C * u * (1.0 + case.kappa) * gamma / case.s * norm


# ---------------------------------------------------------------------------------------------
# Forward identities


@_reports("output_mean")
def check_output_mean(forward: Forward, inputs: BatchNormData) -> InvariantResult:
    """Training output has per-channel mean ``beta``.

    Tolerance per channel: ``E = c u sqrt(n) (1 + kappa) (|gamma| + |beta|)``.

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out`` in training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> inputs = BatchNormInputs(x, beta=np.array([0.5, -1.0]))
    >>> check_output_mean(reference_functions().forward, inputs).passed
    True
    """
    case = _prepare(inputs)
    out = _forward(forward, case, case.x)
    u = _unit(case.x, out)
    error = case.rows(out).mean(axis=1) - case.beta
    return _judge(
        "output_mean", error, _forward_scale(case, u), "mean(out) - beta per channel",
        _underflow(case, out),
    )


@_reports("output_variance")
def check_output_variance(forward: Forward, inputs: BatchNormData) -> InvariantResult:
    """Training output has biased per-channel variance ``gamma**2 * v / (v + eps)``.

    Tolerance per channel: ``2 |gamma| E + E**2`` (a perturbation ``d`` of each output, ``|d| <=
    E``, moves the variance by at most ``2 std(out) E + E**2``).

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out`` in training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_output_variance(reference_functions().forward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    out = _forward(forward, case, case.x)
    e = _forward_scale(case, _unit(case.x, out))
    target = case.gamma.astype(np.float64) ** 2 * case.var / (case.var + case.eps)
    error = _moments(case.rows(out))[1] - target
    gamma = np.abs(case.gamma.astype(np.float64))
    return _judge(
        "output_variance", error, 2 * gamma * e + e * e, "var(out) - gamma^2 v/(v+eps)",
        _underflow(case, out),
    )


@_reports("shift_invariance")
def check_shift_invariance(
    forward: Forward, inputs: BatchNormData, *, shift: Any = None
) -> InvariantResult:
    """``BN(x + c) = BN(x)`` for a per-channel constant ``c``, to rounding.

    The default ``c = 3 s - mu`` moves every channel's mean to ``3 s``: an ill-conditioned input
    becomes a well-conditioned one, which exposes one-pass variances and missing centring.
    ``x + c`` is rounded to ``x``'s dtype; that rounding is at most ``u/2 |x + c|`` per element,
    below ``E / c``.

    Tolerance per element: ``2 E(kappa_max)`` with ``kappa_max = max(kappa(x), kappa(x + c))``.

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out`` in training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.
    shift : array of shape (C,), optional
        The constant ``c`` per channel.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_shift_invariance(reference_functions().forward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    c = _vector("shift", shift, case.channels, 3.0 * case.s - case.mean)
    shifted = (case.x + case.column(c)).astype(case.x.dtype)
    out, out_shifted = _forward(forward, case, case.x), _forward(forward, case, shifted)
    kappa = np.maximum(case.kappa, np.abs(case.mean + c) / case.s)
    tol = 2 * _forward_scale(case, _unit(case.x, out, out_shifted), kappa)
    error = case.rows(out_shifted) - case.rows(out)
    return _judge(
        "shift_invariance", error, tol[:, None], "BN(x + c) - BN(x), (channel, i)",
        _underflow(case, out, out_shifted),
    )


def _power_of_two(name: str, value: Any) -> float:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value == 0 or np.frexp(abs(value))[0] != 0.5:
        raise InvalidArgument(f"`{name}` must be a non-zero power of two, got {value!r}")
    return float(value)


def _check_scale_range(case: _Case, scale: float) -> None:
    """The precondition of exact scale covariance: no overflow, no subnormal eps."""
    info = np.finfo(case.x.dtype)
    peak = scale * float(np.max(np.abs(case.x)))
    if not peak * peak * case.n < float(info.max):
        raise InvalidArgument(
            f"`scale`={scale} makes (scale * x)**2 overflow {case.x.dtype}; use a smaller scale"
        )
    if 0 < case.eps / scale**2 < float(info.tiny):
        raise InvalidArgument(f"`scale`={scale} makes eps / scale**2 subnormal; use a smaller one")


@_reports("scale_covariance")
def check_scale_covariance(
    forward: Forward, inputs: BatchNormData, *, scale: float = 8.0
) -> InvariantResult:
    """``BN_eps(a x) = BN_{eps/a**2}(x)`` bit for bit, for ``a`` a power of two.

    Precondition (see the module docstring): training mode, and neither ``a x``, its squares nor
    ``eps / a**2`` overflow or become subnormal in ``x``'s dtype; ``gamma`` and ``beta`` may be
    anything. Exposes ``eps`` added outside the square root.

    Tolerance: 0 (exact).

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out`` in training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.
    scale : float
        ``a``, a power of two (default 8).

    Returns
    -------
    InvariantResult

    Raises
    ------
    InvalidArgument
        ``scale`` is not a power of two or breaks the precondition.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_scale_covariance(reference_functions().forward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    a = _power_of_two("scale", scale)
    _check_scale_range(case, a)
    scaled = case.x * case.x.dtype.type(a)
    out_scaled = _forward(forward, case, scaled)
    out = _forward(forward, case, case.x, eps=case.eps / (a * a))
    error = case.rows(out_scaled) - case.rows(out)
    return _judge("scale_covariance", error, 0.0, "BN_eps(a x) - BN_{eps/a^2}(x), bit for bit")


@_reports("odd_symmetry")
def check_odd_symmetry(forward: Forward, inputs: BatchNormData) -> InvariantResult:
    """``BN(-x) = -BN(x)`` bit for bit with ``beta = 0``; ``BN(-x) + BN(x) = 2 beta`` to rounding.

    Tolerance: 0 for the ``beta = 0`` part (exact, see the module docstring); ``2 E`` per element
    with the given ``beta``. The index of the worst element is ``(part, channel, i)`` with part 0
    the given ``beta`` and part 1 ``beta = 0``.

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out`` in training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> inputs = BatchNormInputs(x, beta=np.array([0.5, -1.0]))
    >>> check_odd_symmetry(reference_functions().forward, inputs).passed
    True
    """
    case = _prepare(inputs)
    zero = np.zeros_like(case.beta)
    outs = [
        _forward(forward, case, sign * case.x, beta=b)
        for b in (case.beta, zero)
        for sign in (case.x.dtype.type(1), case.x.dtype.type(-1))
    ]
    rows = [case.rows(o) for o in outs]
    with_beta = rows[0] + rows[1] - 2 * case.beta.astype(np.float64)[:, None]
    tol = 2 * _forward_scale(case, _unit(case.x, *outs))[:, None] + _underflow(case, *outs)
    error = np.stack([with_beta, rows[2] + rows[3]])
    tolerance = np.stack([np.broadcast_to(tol, with_beta.shape), np.zeros_like(with_beta)])
    return _judge("odd_symmetry", error, tolerance, "BN(x) + BN(-x) - 2 beta, (part, channel, i)")


def _permutation(permutation: Any, size: int) -> np.ndarray:
    if permutation is None:
        return np.arange(size)[::-1].copy()
    perm = np.asarray(permutation)
    if perm.shape != (size,) or perm.dtype.kind not in "iu" or not np.array_equal(
        np.sort(perm), np.arange(size)
    ):
        raise InvalidArgument(
            f"`permutation` must be a permutation of range({size}), got {permutation!r}"
        )
    return perm


@_reports("batch_permutation")
def check_batch_permutation(
    forward: Forward, inputs: BatchNormData, *, permutation: Any = None
) -> InvariantResult:
    """``BN(x[p]) = BN(x)[p]`` for a permutation ``p`` of the batch, to rounding.

    Only the summation order changes. Default ``p``: the batch reversed.

    Tolerance per element: ``2 E``.

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out`` in training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.
    permutation : sequence of int, optional
        A permutation of ``range(N)``.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_batch_permutation(reference_functions().forward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    perm = _permutation(permutation, case.x.shape[0])
    out, out_perm = _forward(forward, case, case.x), _forward(forward, case, case.x[perm])
    tol = 2 * _forward_scale(case, _unit(case.x, out, out_perm))
    error = case.rows(out_perm) - case.rows(out[perm])
    return _judge(
        "batch_permutation", error, tol[:, None], "BN(x[p]) - BN(x)[p], (channel, i)",
        _underflow(case, out, out_perm),
    )


@_reports("channel_independence")
def check_channel_independence(
    forward: Forward, inputs: BatchNormData, *, channel: int = 0
) -> InvariantResult:
    """Changing one channel's input leaves every other channel's output unchanged, bit for bit.

    Channel ``k`` is replaced by ``M - 3 x_k`` with ``M = 1 + 4 max|x_k|``, which differs from
    ``x_k`` everywhere and changes its mean, scale and sign. With one channel the check is vacuous
    and says so.

    Tolerance: 0 (exact).

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, eps) -> out`` in training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.
    channel : int
        ``k``, the channel to change.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_channel_independence(reference_functions().forward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    if not isinstance(channel, (int, np.integer)) or not 0 <= channel < case.channels:
        raise InvalidArgument(f"`channel` must be in [0, {case.channels - 1}], got {channel!r}")
    if case.channels == 1:
        return InvariantResult("channel_independence", True, 0.0, 0.0, "vacuous: one channel")
    changed = case.x.copy()
    index = (slice(None),) * case.axis + (channel,)
    changed[index] = 1 + 4 * np.max(np.abs(changed[index])) - 3 * changed[index]
    error = case.rows(_forward(forward, case, changed)) - case.rows(_forward(forward, case, case.x))
    error[channel] = 0.0
    return _judge(
        "channel_independence", error, 0.0, f"other channels after changing {channel}, bit for bit"
    )


# ---------------------------------------------------------------------------------------------
# Backward identities


@_reports("dx_sum_zero")
def check_dx_sum_zero(backward: Backward, inputs: BatchNormData) -> InvariantResult:
    """``sum(dx) = 0`` per channel (training).

    Tolerance per channel: ``sqrt(n) G``.

    Parameters
    ----------
    backward : callable
        ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)`` in training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case, with ``dout``.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_dx_sum_zero(reference_functions().backward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    dx = _backward(backward, case, case.dout)[0]
    g = _backward_scale(case, _unit(case.x, case.dout, dx), case.dout)
    return _judge(
        "dx_sum_zero", case.rows(dx).sum(axis=1), np.sqrt(case.n) * g, "sum(dx)",
        _underflow(case, dx),
    )


@_reports("dx_xhat_identity")
def check_dx_xhat_identity(backward: Backward, inputs: BatchNormData) -> InvariantResult:
    """``sum(dx * xhat) = gamma * dgamma * eps / (v + eps)**1.5`` per channel (training).

    ``xhat`` and ``dgamma = sum(dout * xhat)`` are computed independently in float64, so only
    ``dx`` is under test. Derived in the module docstring; with ``eps > 0`` it fixes the scale of
    ``dx``.

    Tolerance per channel: ``2 sqrt(n) G``.

    Parameters
    ----------
    backward : callable
        ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``, training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_dx_xhat_identity(reference_functions().backward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    dx = _backward(backward, case, case.dout)[0]
    xhat = case.xhat()
    dgamma = (case.rows(case.dout) * xhat).sum(axis=1)
    target = case.gamma.astype(np.float64) * dgamma * case.eps / case.s**3
    error = (case.rows(dx) * xhat).sum(axis=1) - target
    g = _backward_scale(case, _unit(case.x, case.dout, dx), case.dout)
    return _judge(
        "dx_xhat_identity", error, 2 * np.sqrt(case.n) * g, "sum(dx xhat) - gamma dgamma eps/s^3",
        _underflow(case, dx),
    )


@_reports("dgamma_identity")
def check_dgamma_identity(backward: Backward, inputs: BatchNormData) -> InvariantResult:
    """``dgamma = sum(dout * xhat)`` per channel, ``xhat`` computed independently in float64.

    Tolerance per channel: ``2 c u (1 + kappa) sqrt(n) ||dout||_2``.

    Parameters
    ----------
    backward : callable
        ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``, training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_dgamma_identity(reference_functions().backward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    dgamma = _backward(backward, case, case.dout)[1]
    d = case.rows(case.dout)
    u = _unit(case.x, case.dout, dgamma)
    tol = 2 * _C * u * (1 + case.kappa) * np.sqrt(case.n) * np.linalg.norm(d, axis=1)
    error = dgamma - (d * case.xhat()).sum(axis=1)
    return _judge(
        "dgamma_identity", error, tol, "dgamma - sum(dout xhat)", _underflow(case, dgamma)
    )


@_reports("dbeta_identity")
def check_dbeta_identity(backward: Backward, inputs: BatchNormData) -> InvariantResult:
    """``dbeta = sum(dout)`` per channel.

    Tolerance per channel: ``2 c u sqrt(n) ||dout||_2``.

    Parameters
    ----------
    backward : callable
        ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``, training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_dbeta_identity(reference_functions().backward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    dbeta = _backward(backward, case, case.dout)[2]
    d = case.rows(case.dout)
    tol = 2 * _C * _unit(case.x, case.dout, dbeta) * np.sqrt(case.n) * np.linalg.norm(d, axis=1)
    return _judge(
        "dbeta_identity", dbeta - d.sum(axis=1), tol, "dbeta - sum(dout)",
        _underflow(case, dbeta),
    )


def _direction(case: _Case, seed: int) -> np.ndarray:
    """A second upstream gradient, seeded standard normal, in ``dout``'s dtype."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(case.x.shape).astype(case.dout.dtype)


@_reports("dx_linear_in_dout")
def check_dx_linear_in_dout(
    backward: Backward, inputs: BatchNormData, *, seed: int = 0
) -> InvariantResult:
    """``dx(a d1 + b d2) = a dx(d1) + b dx(d2)`` with ``a = 2``, ``b = -1/2``.

    ``d1 = dout`` and ``d2`` a standard normal direction drawn from ``seed``. Since
    ``1 - a - b != 0``, a ``dx`` with a term that does not scale with ``dout`` fails too.

    Tolerance per element: ``2 (|a| G(d1) + |b| G(d2))``.

    Parameters
    ----------
    backward : callable
        ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``, training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.
    seed : int
        Seed of the second direction.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_dx_linear_in_dout(reference_functions().backward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    a, b = _LINEAR
    d1, d2 = case.dout, _direction(case, seed)
    mixed = (a * d1.astype(np.float64) + b * d2).astype(d1.dtype)
    dxs = [_backward(backward, case, d)[0] for d in (mixed, d1, d2)]
    error = case.rows(dxs[0]) - a * case.rows(dxs[1]) - b * case.rows(dxs[2])
    u = _unit(case.x, d1, *dxs)
    tol = 2 * (abs(a) * _backward_scale(case, u, d1) + abs(b) * _backward_scale(case, u, d2))
    return _judge(
        "dx_linear_in_dout", error, tol[:, None], "dx(a d1 + b d2) - a dx(d1) - b dx(d2)",
        _underflow(case, *dxs),
    )


@_reports("dx_proportional_to_gamma")
def check_dx_proportional_to_gamma(
    backward: Backward, inputs: BatchNormData, *, factor: float = -2.0
) -> InvariantResult:
    """``dx`` at ``factor * gamma`` equals ``factor * dx`` at ``gamma``.

    Tolerance per element: ``2 |factor| G``.

    Parameters
    ----------
    backward : callable
        ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``, training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.
    factor : float
        A finite non-zero scalar (default -2: exact in floating point, and the sign flip exposes
        ``|gamma|`` or ``gamma**2``).

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> fns = reference_functions()
    >>> check_dx_proportional_to_gamma(fns.backward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    if not isinstance(factor, (int, float, np.number)) or not np.isfinite(factor) or factor == 0:
        raise InvalidArgument(f"`factor` must be a finite non-zero number, got {factor!r}")
    scaled_gamma = (case.gamma * factor).astype(case.gamma.dtype)
    dx_scaled = _backward(backward, case, case.dout, gamma=scaled_gamma)[0]
    dx = _backward(backward, case, case.dout)[0]
    error = case.rows(dx_scaled) - factor * case.rows(dx)
    g = _backward_scale(case, _unit(case.x, case.dout, dx, dx_scaled), case.dout)
    tol = 2 * abs(factor) * g
    return _judge(
        "dx_proportional_to_gamma", error, tol[:, None], "dx(s gamma) - s dx(gamma)",
        _underflow(case, dx, dx_scaled),
    )


@_reports("jacobian_symmetry")
def check_jacobian_symmetry(
    backward: Backward, inputs: BatchNormData, *, seed: int = 0
) -> InvariantResult:
    """``<J^T u, w> = <u, J^T w>`` per channel: the training Jacobian ``d out / d x`` is symmetric.

    Uses the backward only (``J^T u = dx(u)``), with ``u = dout`` and ``w`` standard normal
    drawn from ``seed``. Holds for every ``eps`` and ``gamma`` because ``gamma`` is constant per
    channel (derivation in the module docstring).

    Tolerance per channel: ``sqrt(n) (G(u) ||w||_2 + G(w) ||u||_2)``: the inner product
    ``<dx(u), w>`` is off by at most ``max|dx error| ||w||_1 <= sqrt(n) G(u) ||w||_2``, and
    likewise the other.

    Parameters
    ----------
    backward : callable
        ``backward(dout, x, gamma, beta, eps) -> (dx, dgamma, dbeta)``, training mode.
    inputs : BatchNormInputs or BatchNormCase
        The case; see :class:`BatchNormInputs`.
    seed : int
        Seed of the second direction.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_jacobian_symmetry(reference_functions().backward, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    u_dir, w_dir = case.dout, _direction(case, seed)
    jt_u = _backward(backward, case, u_dir)[0]
    jt_w = _backward(backward, case, w_dir)[0]
    u_rows, w_rows = case.rows(u_dir), case.rows(w_dir)
    error = (case.rows(jt_u) * w_rows).sum(axis=1) - (u_rows * case.rows(jt_w)).sum(axis=1)
    u = _unit(case.x, u_dir, jt_u, jt_w)
    norm = np.linalg.norm
    g_u, g_w = _backward_scale(case, u, u_dir), _backward_scale(case, u, w_dir)
    tol = np.sqrt(case.n) * (g_u * norm(w_rows, axis=1) + g_w * norm(u_rows, axis=1))
    return _judge(
        "jacobian_symmetry", error, tol, "<J^T u, w> - <u, J^T w>", _underflow(case, jt_u, jt_w)
    )


# ---------------------------------------------------------------------------------------------
# Inference mode and running statistics


@_reports("inference_affine")
def check_inference_affine(forward_eval: EvalForward, inputs: BatchNormData) -> InvariantResult:
    """Inference is an elementwise affine map: ``out(x1 + x2) - out(x2) = out(x1) - out(0)``.

    ``x1 = x``, ``x2`` = ``x`` with the batch reversed, with ``inputs.running_mean`` and
    ``running_var`` (default: the batch statistics of ``x``). Exposes batch statistics used in
    inference.

    Tolerance per element: with ``A = |gamma| / sqrt(running_var + eps)`` and each evaluation at
    ``z`` off by at most ``c u (A (|z| + |running_mean|) + |beta|)``, the sum of the four:
    ``c u (A (|x1 + x2| + |x1| + |x2| + 4 |running_mean|) + 4 |beta|)``.

    Parameters
    ----------
    forward_eval : callable
        ``forward_eval(x, gamma, beta, eps, running_mean, running_var) -> out``.
    inputs : BatchNormInputs or BatchNormCase
        The case.

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_inference_affine(reference_functions().forward_eval, BatchNormInputs(x)).passed
    True
    """
    case = _prepare(inputs)
    x1, x2 = case.x, np.flip(case.x, axis=0)
    points = ((x1 + x2).astype(x1.dtype), x2, x1, np.zeros_like(x1))
    outs = [_eval(forward_eval, case, z) for z in points]
    rows = [case.rows(o) for o in outs]
    error = rows[0] - rows[1] - rows[2] + rows[3]
    scale = np.abs(case.gamma.astype(np.float64)) / np.sqrt(case.running_var + case.eps)
    size = sum(np.abs(case.rows(z)) for z in points[:3]) + 4 * np.abs(case.running_mean)[:, None]
    tol = _C * _unit(case.x, *outs) * (scale[:, None] * size + 4 * np.abs(case.beta)[:, None])
    return _judge(
        "inference_affine", error, tol, "out(x1+x2) - out(x2) - out(x1) + out(0)",
        _underflow(case, *outs),
    )


def _eval(forward_eval: EvalForward, case: _Case, x: np.ndarray) -> np.ndarray:
    out = _call(
        "forward_eval", forward_eval, x, case.gamma, case.beta, case.eps,
        case.running_mean, case.running_var,
    )
    return _result("forward_eval's output", out, case.x.shape)


class _Law(NamedTuple):
    """A running-statistics convention, restated from the frameworks' documentation.

    Kept apart from the reference's own table on purpose: this is the oracle.
    """

    momentum: float | None
    batch_weight_is_momentum: bool  # torch: new = (1-m) old + m batch; keras/cs231n: reversed
    unbiased: bool
    init_var: float

    def weight(self, k: int) -> float:
        """Weight of the ``k``-th batch (1-based) in the update."""
        if self.momentum is None:
            return 1.0 / k  # torch momentum=None: cumulative (arithmetic) average
        return self.momentum if self.batch_weight_is_momentum else 1.0 - self.momentum


_LAWS: Mapping[str, _Law] = MappingProxyType({
    "torch": _Law(0.1, True, True, 1.0),  # torch.nn.BatchNorm{1,2}d
    "keras": _Law(0.99, False, False, 1.0),  # keras.layers.BatchNormalization
    "cs231n": _Law(0.9, False, False, 0.0),  # CS231n assignment 2
})


def _law(convention: Any, momentum: Any) -> _Law:
    if convention not in _LAWS:
        known = ", ".join(map(repr, _LAWS))
        raise InvalidArgument(f"`convention` must be one of {known}, got {convention!r}")
    law = _LAWS[convention]
    if isinstance(momentum, str) and momentum == "default":
        return law
    if momentum is None:
        if convention != "torch":
            raise InvalidArgument(
                f"`momentum=None` (cumulative average) is a torch convention, got {convention!r}"
            )
        return law._replace(momentum=None)
    ok = isinstance(momentum, (int, float, np.floating)) and not isinstance(momentum, bool)
    if not ok or not 0 <= momentum <= 1:
        raise InvalidArgument(f"`momentum` must be 'default', None or in [0, 1], got {momentum!r}")
    return law._replace(momentum=float(momentum))


def _training_batches(case: _Case) -> list[np.ndarray]:
    """Three batches with different means and variances, derived from ``x``."""
    x = case.x.astype(np.float64)
    offset = case.column(case.s)
    batches = (x, 0.5 * np.flip(x, axis=0) + offset, 3.0 * offset - 2.0 * x)
    return [b.astype(case.x.dtype) for b in batches]


def _law_trajectory(
    law: _Law, case: _Case, batches: list[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expected (running_mean, running_var) after each batch, in float64."""
    mean, var = np.zeros(case.channels), np.full(case.channels, law.init_var)
    trajectory = []
    for k, batch in enumerate(batches, start=1):
        mu, v = _moments(case.rows(batch))
        v = v * case.n / (case.n - 1) if law.unbiased else v
        w = law.weight(k)
        mean, var = (1 - w) * mean + w * mu, (1 - w) * var + w * v
        trajectory.append((mean, var))
    return trajectory


def _running_tolerance(
    law: _Law, case: _Case, batches: list[np.ndarray], u: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: ``c u (K + sqrt(n)) max|batch|`` for means, ``c u (K + sqrt(n)(1 + kappa))
    max(init_var, max unbiased v)`` for variances (two-pass variance; second-order ``(u kappa)**2``
    is smaller than the first-order term for any representable input)."""
    k = len(batches)
    stats = [_moments(case.rows(b)) for b in batches]
    peak = np.max([np.max(np.abs(case.rows(b)), axis=1) for b in batches], axis=0)
    var_peak = np.max([v * case.n / (case.n - 1) for _, v in stats], axis=0)
    var_peak = np.maximum(var_peak, law.init_var)
    kappa = np.max([np.abs(m) / np.sqrt(v + case.eps) for m, v in stats], axis=0)
    root = np.sqrt(case.n)
    return _C * u * (k + root) * peak, _C * u * (k + root * (1 + kappa)) * var_peak


@_reports("running_stats")
def check_running_stats(
    running_stats: RunningStats,
    inputs: BatchNormData,
    *,
    convention: str = "torch",
    momentum: float | str | None = "default",
) -> InvariantResult:
    """Running mean and variance follow the convention's law after each of three batches.

    The laws (restated independently of the reference): ``torch`` ``new = (1-m) old + m batch``
    with the unbiased batch variance ``v n/(n-1)``, running_var starting at 1, ``momentum=None`` the
    arithmetic mean of the batch statistics; ``keras`` ``new = m old + (1-m) batch``, biased, starts
    at 1; ``cs231n`` the same with running_var starting at 0. Running means start at 0. The initial
    values are checked through the first update. Batches: ``x``, ``x`` reversed / 2 + ``s``,
    ``3 s - 2 x``.

    Tolerance per channel: ``c u (K + sqrt(n)) max|batch|`` for means and
    ``c u (K + sqrt(n) (1 + kappa)) max(init_var, v n/(n-1))`` for variances, ``K = 3`` updates.
    The worst index is ``(row, channel)`` with rows mean 1, var 1, mean 2, ...

    Parameters
    ----------
    running_stats : callable
        ``running_stats(batches) -> (running_mean, running_var)`` after training a fresh layer
        on ``batches``.
    inputs : BatchNormInputs or BatchNormCase
        The case.
    convention : {"torch", "keras", "cs231n"}
    momentum : float, None or "default"

    Returns
    -------
    InvariantResult

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> fns = reference_functions(convention="keras")
    >>> check_running_stats(fns.running_stats, BatchNormInputs(x), convention="keras").passed
    True
    """
    law = _law(convention, momentum)
    case = _prepare(inputs)
    batches = _training_batches(case)
    errors, tolerances = [], []
    for k, (mean, var) in enumerate(_law_trajectory(law, case, batches), start=1):
        got = _call("running_stats", running_stats, batches[:k])
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise _Unusable("running_stats must return (running_mean, running_var)")
        got_mean = _result("running_mean", got[0], (case.channels,))
        got_var = _result("running_var", got[1], (case.channels,))
        tol_mean, tol_var = _running_tolerance(law, case, batches[:k], _unit(case.x, *got))
        errors += [got_mean - mean, got_var - var]
        tolerances += [tol_mean, tol_var]
    what = f"{convention} law, rows mean/var after batch 1..{len(batches)}, (row, channel)"
    return _judge("running_stats", np.stack(errors), np.stack(tolerances), what, _underflow(case))


# ---------------------------------------------------------------------------------------------
# All at once


class _Entry(NamedTuple):
    needs: str
    run: Callable[[BatchNormFunctions, BatchNormData, int], InvariantResult]


_REGISTRY: Mapping[str, _Entry] = MappingProxyType({
    "output_mean": _Entry("forward", lambda f, i, s: check_output_mean(f.forward, i)),
    "output_variance": _Entry("forward", lambda f, i, s: check_output_variance(f.forward, i)),
    "shift_invariance": _Entry("forward", lambda f, i, s: check_shift_invariance(f.forward, i)),
    "scale_covariance": _Entry("forward", lambda f, i, s: check_scale_covariance(f.forward, i)),
    "odd_symmetry": _Entry("forward", lambda f, i, s: check_odd_symmetry(f.forward, i)),
    "batch_permutation": _Entry(
        "forward", lambda f, i, s: check_batch_permutation(f.forward, i)
    ),
    "channel_independence": _Entry(
        "forward", lambda f, i, s: check_channel_independence(f.forward, i)
    ),
    "dx_sum_zero": _Entry("backward", lambda f, i, s: check_dx_sum_zero(f.backward, i)),
    "dx_xhat_identity": _Entry(
        "backward", lambda f, i, s: check_dx_xhat_identity(f.backward, i)
    ),
    "dgamma_identity": _Entry("backward", lambda f, i, s: check_dgamma_identity(f.backward, i)),
    "dbeta_identity": _Entry("backward", lambda f, i, s: check_dbeta_identity(f.backward, i)),
    "dx_linear_in_dout": _Entry(
        "backward", lambda f, i, s: check_dx_linear_in_dout(f.backward, i, seed=s)
    ),
    "dx_proportional_to_gamma": _Entry(
        "backward", lambda f, i, s: check_dx_proportional_to_gamma(f.backward, i)
    ),
    "jacobian_symmetry": _Entry(
        "backward", lambda f, i, s: check_jacobian_symmetry(f.backward, i, seed=s)
    ),
    "inference_affine": _Entry(
        "forward_eval", lambda f, i, s: check_inference_affine(f.forward_eval, i)
    ),
    "running_stats": _Entry(
        "running_stats",
        lambda f, i, s: check_running_stats(
            f.running_stats, i, convention=f.convention, momentum=f.momentum
        ),
    ),
})

#: Names of every invariant, in the order :func:`check_invariants` runs them.
INVARIANTS: tuple[str, ...] = tuple(_REGISTRY)


def _chosen(functions: BatchNormFunctions, names: Iterable[str] | None) -> list[str]:
    if names is None:
        return [n for n, e in _REGISTRY.items() if getattr(functions, e.needs) is not None]
    if isinstance(names, str):
        raise InvalidArgument(f"`names` must be a sequence of names, got the string {names!r}")
    chosen = list(names)
    for name in chosen:
        if name not in _REGISTRY:
            raise InvalidArgument(f"unknown invariant {name!r}; known: {', '.join(INVARIANTS)}")
        if getattr(functions, _REGISTRY[name].needs) is None:
            raise InvalidArgument(
                f"invariant {name!r} needs `{_REGISTRY[name].needs}`, which is None"
            )
    return chosen


def check_invariants(
    functions: BatchNormFunctions,
    inputs: BatchNormData,
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
) -> list[InvariantResult]:
    """Check every invariant the given functions allow (or those in ``names``), in order.

    Parameters
    ----------
    functions : BatchNormFunctions
        The layer; invariants needing a function that is ``None`` are skipped.
    inputs : BatchNormInputs or BatchNormCase
        The case.
    names : sequence of str, optional
        A subset of :data:`INVARIANTS`.
    seed : int
        Seed of the auxiliary directions (linearity, Jacobian symmetry).

    Returns
    -------
    list of InvariantResult

    Raises
    ------
    InvalidArgument
        Bad inputs, an unknown name, or a name whose function is missing.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> results = check_invariants(reference_functions(), BatchNormInputs(x))
    >>> len(results) == len(INVARIANTS), all(r.passed for r in results)
    (True, True)
    """
    chosen = _chosen(functions, names)
    _prepare(inputs)
    return [_REGISTRY[name].run(functions, inputs, seed) for name in chosen]


# ---------------------------------------------------------------------------------------------
# Adapters


def _reference_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, *, channel_axis: int
) -> np.ndarray:
    return batchnorm_forward(x, gamma, beta, eps=eps, channel_axis=channel_axis)[0]


def _reference_backward(
    dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
    *, form: str, channel_axis: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cache = batchnorm_forward(x, gamma, beta, eps=eps, channel_axis=channel_axis)[1]
    grads = batchnorm_backward(dout, cache, form=form)  # type: ignore[arg-type]
    return grads["x"], grads["gamma"], grads["beta"]


def _reference_eval(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
    running_mean: np.ndarray, running_var: np.ndarray, *, channel_axis: int,
) -> np.ndarray:
    return batchnorm_forward(
        x, gamma, beta, training=False, eps=eps, running_mean=running_mean,
        running_var=running_var, channel_axis=channel_axis,
    )[0]


def _reference_running(
    batches: list[np.ndarray], *, convention: str, momentum: Any, channel_axis: int
) -> tuple[np.ndarray, np.ndarray]:
    extra = {} if isinstance(momentum, str) else {"momentum": momentum}
    layer = BatchNorm(
        batches[0].shape[channel_axis], convention=convention, channel_axis=channel_axis, **extra
    )
    for batch in batches:
        layer(batch)
    return layer.running.mean, layer.running.var


def reference_functions(
    *,
    form: str = "compact",
    convention: str = "torch",
    momentum: float | str | None = "default",
    channel_axis: int = 1,
) -> BatchNormFunctions:
    """The reference BatchNorm (:mod:`gradcheck.layers.batchnorm`) as :class:`BatchNormFunctions`.

    Parameters
    ----------
    form : {"compact", "staged"}
        Which backward.
    convention : {"torch", "keras", "cs231n"}
        Running-statistics convention.
    momentum : float, None or "default"
        ``"default"`` is the convention's; ``None`` is torch's cumulative average.
    channel_axis : int
        Passed to the reference; must match the inputs' ``channel_axis``.

    Returns
    -------
    BatchNormFunctions

    Examples
    --------
    >>> fns = reference_functions(form="staged")
    >>> fns.forward(np.array([[1.0], [3.0]]), np.ones(1), np.zeros(1), 0.0)
    array([[-1.],
           [ 1.]])
    """
    if form not in ("compact", "staged"):
        raise InvalidArgument(f"`form` must be 'compact' or 'staged', got {form!r}")
    _law(convention, momentum)
    return BatchNormFunctions(
        forward=functools.partial(_reference_forward, channel_axis=channel_axis),
        backward=functools.partial(_reference_backward, form=form, channel_axis=channel_axis),
        forward_eval=functools.partial(_reference_eval, channel_axis=channel_axis),
        running_stats=functools.partial(
            _reference_running, convention=convention, momentum=momentum,
            channel_axis=channel_axis,
        ),
        convention=convention,
        momentum=momentum,
    )


def _bn_param(base: Mapping[str, Any], **updates: Any) -> dict[str, Any]:
    """A fresh ``bn_param`` for one call: arrays in ``base`` are copied too."""
    return {**{k: _copy(v) for k, v in base.items()}, **updates}


def _course_forward(
    forward: Callable[..., Any], base: Mapping[str, Any],
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
) -> Any:
    return forward(x, gamma, beta, _bn_param(base, mode="train", eps=eps))[0]


def _course_backward(
    forward: Callable[..., Any], backward: Callable[..., Any], base: Mapping[str, Any],
    dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
) -> Any:
    cache = forward(x, gamma, beta, _bn_param(base, mode="train", eps=eps))[1]
    return backward(dout, cache)


def _course_eval(
    forward: Callable[..., Any], base: Mapping[str, Any],
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
    running_mean: np.ndarray, running_var: np.ndarray,
) -> Any:
    param = _bn_param(
        base, mode="test", eps=eps, running_mean=running_mean, running_var=running_var
    )
    return forward(x, gamma, beta, param)[0]


def _course_running(
    forward: Callable[..., Any], base: Mapping[str, Any], batches: list[np.ndarray]
) -> tuple[Any, Any]:
    param = _bn_param(base, mode="train")
    channels, dtype = batches[0].shape[1], batches[0].dtype
    for batch in batches:
        forward(batch, np.ones(channels, dtype), np.zeros(channels, dtype), param)
    return param.get("running_mean"), param.get("running_var")


def course_functions(
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None = None,
    *,
    convention: str = "cs231n",
    momentum: float | str | None = "default",
    bn_param: Mapping[str, Any] | None = None,
) -> BatchNormFunctions:
    """Adapt course-style ``forward(x, gamma, beta, bn_param) -> (out, cache)`` and
    ``backward(dout, cache) -> (dx, dgamma, dbeta)``.

    Every call gets a fresh copy of ``bn_param`` with ``mode`` ("train"/"test") and ``eps`` set,
    and copies of the arrays, so neither the caller's dict nor their arrays change. Inference
    passes ``running_mean``/``running_var`` in the dict; the running statistics are read back
    from the dict after the training calls. Channels are on axis 1 (``(N, D)``, or
    ``(N, C, H, W)`` for a spatial version).

    Parameters
    ----------
    forward, backward : callable
        The student's functions; ``backward`` may be omitted.
    convention : {"torch", "keras", "cs231n"}
        The running-statistics law the functions are meant to follow.
    momentum : float, None or "default"
        Written into ``bn_param["momentum"]``; ``"default"`` keeps ``bn_param``'s own
        ``momentum`` if it has one, else uses the convention's.
    bn_param : mapping, optional
        Extra entries for every call.

    Returns
    -------
    BatchNormFunctions

    Examples
    --------
    >>> def forward(x, gamma, beta, bn_param):
    ...     xc = x - x.mean(axis=0)
    ...     xhat = xc / np.sqrt((xc * xc).mean(axis=0) + bn_param["eps"])
    ...     return gamma * xhat + beta, None
    >>> fns = course_functions(forward)
    >>> x = np.array([[1.0, 2.0], [3.0, 7.0], [4.0, 0.0]])
    >>> check_output_variance(fns.forward, BatchNormInputs(x)).passed
    True
    """
    base = dict(bn_param or {})
    if isinstance(momentum, str) and momentum == "default" and "momentum" in base:
        momentum = base["momentum"]
    law = _law(convention, momentum)
    base["momentum"] = law.momentum
    frozen = MappingProxyType(base)
    return BatchNormFunctions(
        forward=functools.partial(_course_forward, forward, frozen),
        backward=None if backward is None else functools.partial(
            _course_backward, forward, backward, frozen
        ),
        forward_eval=functools.partial(_course_eval, forward, frozen),
        running_stats=functools.partial(_course_running, forward, frozen),
        convention=convention,
        momentum=law.momentum,
    )
