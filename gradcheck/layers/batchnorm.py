"""Reference batch normalisation in NumPy: forward, two independent backwards, running statistics.

Training mode (Ioffe & Szegedy 2015, arXiv 1502.03167, Algorithm 1) normalises with the batch
mean and the **biased** batch variance over every axis but the channel axis::

    mu = mean(x)          xc = x - mu          v = mean(xc * xc)
    xhat = xc / sqrt(v + eps)                  y = gamma * xhat + beta

The variance is computed in two passes as ``mean(xc * xc)``: never ``np.var`` (it drops the
imaginary part and so breaks the complex-step derivative) and never ``E[x^2] - E[x]^2`` (it cancels
catastrophically when ``|mean| >> std``). Statistics are accumulated in float64 (complex128 for
complex input) whatever the input dtype; the output has the input's dtype. There are no branches
on data, no ``abs`` and no ``.real``, so the forward is complex-step safe.

Inference mode is the elementwise affine map ``y = gamma * (x - running_mean) /
sqrt(running_var + eps) + beta``.

Running statistics follow one of three conventions (:data:`CONVENTIONS`):

``torch`` (default; PyTorch ``torch.nn.BatchNorm1d/2d`` documentation)
    eps 1e-5, momentum 0.1, ``new = (1 - m) * old + m * batch``; the running variance is updated
    with the **unbiased** batch variance ``v * n / (n - 1)``; running_mean starts at 0 and
    running_var at 1; ``momentum=None`` gives the cumulative moving average
    (``m = 1 / num_batches_tracked``).
``keras`` (Keras ``BatchNormalization`` documentation)
    eps 1e-3, momentum 0.99, ``new = m * old + (1 - m) * batch``, biased variance;
    moving_mean starts at 0 and moving_variance at 1.
``cs231n`` (the Stanford CS231n assignment convention)
    eps 1e-5, momentum 0.9, ``new = m * old + (1 - m) * batch``, biased variance; running_mean
    and running_var both start at 0.

The backward returns ``dx``, ``dgamma = sum(dout * xhat)`` and ``dbeta = sum(dout)`` over the
reduction axes, in two forms derived independently:

*staged*, the paper's chain rule through ``mu`` and ``v``::

    dxhat = dout * gamma
    dv    = sum(dxhat * xc) * -1/2 * (v + eps)^(-3/2)
    dmu   = -sum(dxhat) / sqrt(v + eps) + dv * mean(-2 xc)
    dx    = dxhat / sqrt(v + eps) + dv * 2 xc / n + dmu / n

*compact*, the same derivative simplified::

    dx = gamma / sqrt(v + eps) * (dout - mean(dout) - xhat * mean(dout * xhat))

In inference mode both reduce to ``dx = dout * gamma / sqrt(running_var + eps)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gradcheck.errors import InvalidArgument

__all__ = [
    "CONVENTIONS",
    "BatchNorm",
    "BatchNormCache",
    "Convention",
    "RunningStats",
    "batchnorm_backward",
    "batchnorm_backward_compact",
    "batchnorm_backward_staged",
    "batchnorm_forward",
    "init_running_stats",
    "update_running_stats",
]

BackwardForm = Literal["compact", "staged"]


@dataclass(frozen=True)
class Convention:
    """How a framework initialises and updates the running statistics."""

    name: str
    eps: float
    momentum: float | None
    batch_weight_is_momentum: bool  # torch: new = (1-m) old + m batch; keras/cs231n: the reverse
    unbiased_running_var: bool
    running_var_init: float


CONVENTIONS: Mapping[str, Convention] = {
    "torch": Convention("torch", 1e-5, 0.1, True, True, 1.0),
    "keras": Convention("keras", 1e-3, 0.99, False, False, 1.0),
    "cs231n": Convention("cs231n", 1e-5, 0.9, False, False, 0.0),
}

_DEFAULT = object()  # "use the convention's momentum"; None already means cumulative average


@dataclass(frozen=True)
class RunningStats:
    """Running mean and variance of one BatchNorm layer, and how many batches fed them."""

    mean: np.ndarray
    var: np.ndarray
    num_batches_tracked: int = 0


@dataclass(frozen=True)
class BatchNormCache:
    """What the backward needs; arrays are in the compute dtype (float64 or complex128)."""

    x: np.ndarray
    xc: np.ndarray  # x - mean
    mean: np.ndarray  # batch mean (training) or running mean (inference), broadcastable to x
    var: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray  # broadcastable to x
    axes: tuple[int, ...]
    training: bool
    eps: float
    x_dtype: np.dtype
    gamma_dtype: np.dtype
    beta_dtype: np.dtype

    @property
    def xhat(self) -> np.ndarray:
        """``(x - mean) / sqrt(var + eps)``, made when a backward asks (forwards run far more
        often than backwards inside a gradient check, and each array they make costs)."""
        return self.xc * self.inv_std


def get_convention(convention: str) -> Convention:
    """Look up a convention by name, with a message that lists the known ones."""
    try:
        return CONVENTIONS[convention]
    except (KeyError, TypeError):
        known = ", ".join(repr(k) for k in CONVENTIONS)
        raise InvalidArgument(
            f"`convention` must be one of {known}, got {convention!r}"
        ) from None


def _validate_array(name: str, a: Any, *, finite: bool = True) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fc":
        raise InvalidArgument(
            f"`{name}` must have a floating dtype (float32 or float64), got {arr.dtype}"
        )
    if finite:
        _require_finite(name, arr)
    return arr


def _require_finite(name: str, arr: np.ndarray) -> None:
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise InvalidArgument(
            f"`{name}` must be finite, got {bad} NaN or inf of {arr.size} elements"
        )


def _channel_axis(x: np.ndarray, channel_axis: int) -> int:
    if x.ndim < 2 or x.ndim > 5:
        raise InvalidArgument(
            "`x` must be 2-D (N, D), 3-D (N, C, L), 4-D (N, C, H, W) or 5-D, "
            f"got shape {x.shape}"
        )
    if not isinstance(channel_axis, (int, np.integer)) or not -x.ndim <= channel_axis < x.ndim:
        raise InvalidArgument(
            f"`channel_axis` must be an integer in [{-x.ndim}, {x.ndim - 1}], got {channel_axis!r}"
        )
    axis = int(channel_axis) % x.ndim
    if axis == 0:
        raise InvalidArgument("`channel_axis` must not be the batch axis 0, got 0")
    return axis


def _param(name: str, value: Any, channels: int, default: float, dtype: np.dtype) -> np.ndarray:
    if value is None:
        return np.full(channels, default, dtype=dtype.type(0).real.dtype)
    arr = _validate_array(name, value)
    if arr.shape != (channels,):
        raise InvalidArgument(
            f"`{name}` must have shape ({channels},) to match the {channels} channels of `x`, "
            f"got shape {arr.shape}"
        )
    return arr


def _validate_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise InvalidArgument(f"`eps` must be a non-negative float, got {eps!r}")
    if not np.isfinite(eps) or eps < 0:
        raise InvalidArgument(f"`eps` must be a non-negative finite float, got {eps!r}")
    return float(eps)


def _broadcast(p: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = p.shape[0]
    return p.reshape(shape)


def batchnorm_forward(
    x: Any,
    gamma: Any = None,
    beta: Any = None,
    *,
    training: bool = True,
    eps: float = 1e-5,
    running_mean: Any = None,
    running_var: Any = None,
    channel_axis: int = 1,
) -> tuple[np.ndarray, BatchNormCache]:
    """Normalise ``x`` per channel; a pure function that updates nothing.

    Parameters
    ----------
    x : array, shape (N, C, ...)
        Input; statistics run over every axis but ``channel_axis`` (1, or -1 for channels-last).
    gamma, beta : array, shape (C,), optional
        Scale and shift; ones and zeros when omitted.
    training : bool
        Batch statistics when true; ``running_mean``/``running_var`` (required) when false.
    eps : float
        Added to the variance inside the square root; 0 is allowed.
    running_mean, running_var : array, shape (C,), optional
        The statistics inference mode normalises with (see :class:`BatchNorm` for updating them).
    channel_axis : int
        1 (channels-first, the default) or -1 (channels-last).

    Returns
    -------
    out : array
        Same shape as ``x``, dtype ``result_type(x, gamma, beta)``.
    cache : BatchNormCache
        Feed to :func:`batchnorm_backward`.

    Raises
    ------
    InvalidArgument
        Wrong shapes, dtypes, non-finite values, negative ``eps``.
    ValueError
        Training with one value per channel (as PyTorch).

    Examples
    --------
    >>> out, _ = batchnorm_forward(np.array([[1.0, 10.0], [3.0, 30.0]]), eps=0.0)
    >>> out
    array([[-1., -1.],
           [ 1.,  1.]])
    """
    # In training, a NaN or inf anywhere in x shows in its channel's mean: check the C means
    # instead of all of x (the forward runs thousands of times inside a gradient check).
    x = _validate_array("x", x, finite=not training)
    axis = _channel_axis(x, channel_axis)
    channels = x.shape[axis]
    gamma_arr = _param("gamma", gamma, channels, 1.0, x.dtype)
    beta_arr = _param("beta", beta, channels, 0.0, x.dtype)
    eps = _validate_eps(eps)
    axes = tuple(a for a in range(x.ndim) if a != axis)
    compute = np.result_type(x, gamma_arr, beta_arr, np.float64)
    xw = x.astype(compute, copy=False)
    if training:
        count = x.size // channels
        if count <= 1:
            raise InvalidArgument(
                f"Expected more than 1 value per channel when training, got input size {x.shape}"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            mean = np.mean(xw, axis=axes, keepdims=True)
        if not np.all(np.isfinite(mean)):
            _require_finite("x", x)
            raise InvalidArgument("`x` is too large: its per-channel sum overflows")
        xc = xw - mean
        var = np.mean(xc * xc, axis=axes, keepdims=True)
    else:
        mean, var = _running_for_inference(running_mean, running_var, channels, x.ndim, axis)
        xc = xw - mean
    inv_std = 1.0 / np.sqrt(var + eps)
    g = _broadcast(gamma_arr.astype(compute, copy=False), x.ndim, axis)
    b = _broadcast(beta_arr.astype(compute, copy=False), x.ndim, axis)
    out = xc * (g * inv_std)  # = gamma * xhat, with one array made instead of two
    out += b
    out = out.astype(np.result_type(x, gamma_arr, beta_arr), copy=False)
    cache = BatchNormCache(
        xw, xc, mean, var, inv_std, g, axes, bool(training), eps,
        x.dtype, gamma_arr.dtype, beta_arr.dtype,
    )
    return out, cache


def _running_for_inference(
    running_mean: Any, running_var: Any, channels: int, ndim: int, axis: int
) -> tuple[np.ndarray, np.ndarray]:
    if running_mean is None or running_var is None:
        raise InvalidArgument(
            "`running_mean` and `running_var` are required when training=False, got None"
        )
    rm = _param("running_mean", running_mean, channels, 0.0, np.dtype(np.float64))
    rv = _param("running_var", running_var, channels, 1.0, np.dtype(np.float64))
    if np.any(np.real(rv) < 0):
        raise InvalidArgument(f"`running_var` must be non-negative, got min {np.min(rv.real)!r}")
    return _broadcast(rm, ndim, axis), _broadcast(rv, ndim, axis)


def _validate_dout(dout: Any, cache: BatchNormCache) -> np.ndarray:
    if not isinstance(cache, BatchNormCache):
        raise InvalidArgument(
            f"`cache` must be the BatchNormCache from batchnorm_forward, got {type(cache).__name__}"
        )
    d = _validate_array("dout", dout)
    if d.shape != cache.x.shape:
        raise InvalidArgument(f"`dout` must have shape {cache.x.shape}, got shape {d.shape}")
    return d.astype(np.result_type(d, cache.x), copy=False)


def _cast(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the caller's dtype, except that a complex (complex-step) result stays complex."""
    return a if np.iscomplexobj(a) else a.astype(dtype, copy=False)


def _finish(
    cache: BatchNormCache, dx: np.ndarray, dgamma: np.ndarray, dbeta: np.ndarray
) -> dict[str, np.ndarray]:
    """Gradients by name in the caller's dtypes; parameter gradients have shape (C,)."""
    return {
        "x": _cast(dx, cache.x_dtype),
        "gamma": _cast(dgamma.reshape(-1), cache.gamma_dtype),
        "beta": _cast(dbeta.reshape(-1), cache.beta_dtype),
    }


def _param_grads(d: np.ndarray, cache: BatchNormCache) -> tuple[np.ndarray, np.ndarray]:
    return np.sum(d * cache.xhat, axis=cache.axes), np.sum(d, axis=cache.axes)


def batchnorm_backward_staged(dout: Any, cache: BatchNormCache) -> dict[str, np.ndarray]:
    """Backward by the paper's chain rule through ``mu`` and ``v`` (see the module docstring)."""
    d = _validate_dout(dout, cache)
    dgamma, dbeta = _param_grads(d, cache)
    dxhat = d * cache.gamma
    if not cache.training:
        return _finish(cache, dxhat * cache.inv_std, dgamma, dbeta)
    n = cache.x.size // cache.gamma.size
    xc = cache.xc
    dvar = np.sum(dxhat * xc, axis=cache.axes, keepdims=True) * -0.5 * cache.inv_std**3
    dmu = -np.sum(dxhat, axis=cache.axes, keepdims=True) * cache.inv_std
    dmu = dmu + dvar * np.mean(-2.0 * xc, axis=cache.axes, keepdims=True)
    dx = dxhat * cache.inv_std + dvar * 2.0 * xc / n + dmu / n
    return _finish(cache, dx, dgamma, dbeta)


def batchnorm_backward_compact(dout: Any, cache: BatchNormCache) -> dict[str, np.ndarray]:
    """Backward by the simplified formula ``gamma/s * (g - mean(g) - xhat * mean(g * xhat))``."""
    d = _validate_dout(dout, cache)
    dgamma, dbeta = _param_grads(d, cache)
    scale = cache.gamma * cache.inv_std
    if not cache.training:
        return _finish(cache, d * scale, dgamma, dbeta)
    mean_d = np.mean(d, axis=cache.axes, keepdims=True)
    mean_dx = np.mean(d * cache.xhat, axis=cache.axes, keepdims=True)
    return _finish(cache, scale * (d - mean_d - cache.xhat * mean_dx), dgamma, dbeta)


def batchnorm_backward(
    dout: Any, cache: BatchNormCache, *, form: BackwardForm = "compact"
) -> dict[str, np.ndarray]:
    """Gradients ``{"x": dx, "gamma": dgamma, "beta": dbeta}`` of ``<dout, out>``.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 0.0]])
    >>> out, cache = batchnorm_forward(x)
    >>> grads = batchnorm_backward(np.ones_like(x), cache)
    >>> np.allclose(grads["x"], 0.0), grads["beta"]
    (True, array([3., 3.]))
    """
    if form == "compact":
        return batchnorm_backward_compact(dout, cache)
    if form == "staged":
        return batchnorm_backward_staged(dout, cache)
    raise InvalidArgument(f"`form` must be 'compact' or 'staged', got {form!r}")


def init_running_stats(num_channels: int, convention: str = "torch") -> RunningStats:
    """Running statistics as the convention initialises them."""
    conv = get_convention(convention)
    if isinstance(num_channels, bool) or not isinstance(num_channels, (int, np.integer)) or (
        num_channels < 1
    ):
        raise InvalidArgument(f"`num_channels` must be a positive integer, got {num_channels!r}")
    return RunningStats(
        np.zeros(num_channels), np.full(num_channels, conv.running_var_init), 0
    )


def _momentum(conv: Convention, momentum: Any) -> float | None:
    m = conv.momentum if momentum is _DEFAULT else momentum
    if m is None:
        if conv.name != "torch":
            raise InvalidArgument(
                f"`momentum=None` (cumulative average) is a torch convention, got {conv.name!r}"
            )
        return None
    if isinstance(m, bool) or not isinstance(m, (int, float, np.floating)) or not 0 <= m <= 1:
        raise InvalidArgument(f"`momentum` must be a float in [0, 1] or None, got {m!r}")
    return float(m)


def update_running_stats(
    stats: RunningStats,
    batch_mean: np.ndarray,
    batch_var: np.ndarray,
    count: int,
    *,
    convention: str = "torch",
    momentum: Any = _DEFAULT,
) -> RunningStats:
    """New running statistics after one training batch (pure: ``stats`` is not modified).

    ``batch_var`` is the biased batch variance over ``count`` values per channel; the torch
    convention converts it to the unbiased one.
    """
    conv = get_convention(convention)
    m = _momentum(conv, momentum)
    tracked = stats.num_batches_tracked + 1
    var = batch_var * (count / (count - 1)) if conv.unbiased_running_var else batch_var
    if m is None:
        w = 1.0 / tracked  # cumulative moving average
    else:
        w = m if conv.batch_weight_is_momentum else 1.0 - m
    new_mean = (1.0 - w) * stats.mean + w * batch_mean
    new_var = (1.0 - w) * stats.var + w * var
    return RunningStats(new_mean, new_var, tracked)


class BatchNorm:
    """A BatchNorm layer with state: parameters, running statistics and a mode.

    ``forward``/``backward`` implement gradcheck's ``Layer`` protocol (inputs ``x``, ``gamma``,
    ``beta`` by name) and are pure; ``__call__`` is the training step that also updates the
    running statistics.

    Examples
    --------
    >>> bn = BatchNorm(2, convention="torch")
    >>> _ = bn(np.array([[0.0, 1.0], [2.0, 5.0]]))
    >>> bn.running.mean, bn.running.var
    (array([0.1, 0.3]), array([1.1, 1.7]))
    """

    def __init__(
        self,
        num_channels: int,
        *,
        convention: str = "torch",
        eps: float | None = None,
        momentum: Any = _DEFAULT,
        channel_axis: int = 1,
        backward_form: BackwardForm = "compact",
    ) -> None:
        conv = get_convention(convention)
        self.convention = conv.name
        self.eps = _validate_eps(conv.eps if eps is None else eps)
        _momentum(conv, momentum)
        self.momentum = momentum
        self.channel_axis = channel_axis
        if backward_form not in ("compact", "staged"):
            raise InvalidArgument(
                f"`backward_form` must be 'compact' or 'staged', got {backward_form!r}"
            )
        self.backward_form: BackwardForm = backward_form
        self.running = init_running_stats(num_channels, conv.name)
        self.gamma = np.ones(num_channels)
        self.beta = np.zeros(num_channels)
        self.training = True

    def __repr__(self) -> str:
        mode = "train" if self.training else "eval"
        return (
            f"BatchNorm({self.gamma.shape[0]}, convention={self.convention!r}, eps={self.eps}, "
            f"{mode}, backward={self.backward_form!r})"
        )

    @property
    def name(self) -> str:
        mode = "train" if self.training else "eval"
        return f"BatchNorm[{self.convention}, {mode}, {self.backward_form}]"

    def parameters(self) -> dict[str, np.ndarray]:
        """Copies of ``gamma`` and ``beta``, checked along with ``x``."""
        return {"gamma": self.gamma.copy(), "beta": self.beta.copy()}

    def forward(self, inputs: Mapping[str, Any]) -> tuple[np.ndarray, BatchNormCache]:
        """Pure forward in the current mode; ``inputs`` holds ``x`` and optionally the params."""
        return batchnorm_forward(
            inputs["x"],
            inputs.get("gamma", self.gamma),
            inputs.get("beta", self.beta),
            training=self.training,
            eps=self.eps,
            running_mean=self.running.mean,
            running_var=self.running.var,
            channel_axis=self.channel_axis,
        )

    def backward(self, dout: Any, cache: BatchNormCache) -> dict[str, np.ndarray]:
        """Gradients by name, in the form chosen at construction."""
        return batchnorm_backward(dout, cache, form=self.backward_form)

    def __call__(self, x: Any) -> np.ndarray:
        """Forward in the current mode; in training, also update the running statistics."""
        out, cache = self.forward({"x": x})
        if self.training:
            self.running = update_running_stats(
                self.running,
                np.real(cache.mean).reshape(-1),
                np.real(cache.var).reshape(-1),
                cache.x.size // cache.gamma.size,
                convention=self.convention,
                momentum=self.momentum,
            )
        return out
