"""Normalisation within groups of one sample: the machinery LayerNorm and GroupNorm share.

``x`` of shape ``(N, ...)`` is viewed (C order) as ``(N, G, M)``: sample ``i``, group ``g`` holds
``M`` consecutive elements of ``x[i]``. LayerNorm is ``G = 1``; GroupNorm puts ``C / G``
consecutive channels (with all their spatial positions) in each group; instance norm is
``G = C``. Per group (Ba, Kiros & Hinton 2016, arXiv 1607.06450; Wu & He 2018, arXiv 1803.08494)::

    mu = mean(x)     xc = x - mu     v = mean(xc * xc)     xhat = xc / sqrt(v + eps)
    y = gamma * xhat + beta          (gamma, beta broadcast against x, not against the groups)

Two-pass variance, float64 (complex128) accumulation, no ``abs``, no ``np.var``, no branches on
data: complex-step safe, as the reference BatchNorm. Because ``gamma`` may vary inside a group,
the backward goes through ``dxhat = dout * gamma``; with ``M`` elements per group:

*staged* (chain rule through ``mu`` and ``v``)::

    dv  = sum(dxhat * xc) * -1/2 * (v + eps)^(-3/2)
    dmu = -sum(dxhat) / sqrt(v + eps) + dv * mean(-2 xc)
    dx  = dxhat / sqrt(v + eps) + dv * 2 xc / M + dmu / M

*compact*::

    dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(v + eps)

``dgamma = sum(dout * xhat)`` and ``dbeta = sum(dout)`` over every axis along which ``gamma`` is
broadcast, in ``gamma``'s own shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.layers.batchnorm import _cast, _require_finite, _validate_array

BackwardForm = Literal["compact", "staged"]


@dataclass(frozen=True)
class GroupwiseCache:
    """What the backward needs; arrays are in the compute dtype (float64 or complex128).

    ``xc``, ``var`` and ``inv_std`` are in the grouped view ``(N, G, M)``; ``gamma`` is
    broadcastable to ``x``; ``param_shape`` is the shape the caller gave ``gamma`` in.
    """

    x: np.ndarray
    xc: np.ndarray
    var: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    eps: float
    param_shape: tuple[int, ...]
    x_dtype: np.dtype
    gamma_dtype: np.dtype
    beta_dtype: np.dtype

    @property
    def groups(self) -> int:
        return int(self.xc.shape[1])

    @property
    def xhat(self) -> np.ndarray:
        """``(x - mean) / sqrt(var + eps)`` in the shape of ``x``."""
        return (self.xc * self.inv_std).reshape(self.x.shape)


def param(
    name: str, value: Any, shapes: dict[tuple[int, ...], tuple[int, ...]], default: float,
    dtype: np.dtype, what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``(as given, broadcastable to x)``; ``shapes`` maps each accepted shape to its broadcast.

    The first accepted shape is the default's.
    """
    if value is None:
        arr = np.full(next(iter(shapes)), default, dtype=dtype.type(0).real.dtype)
    else:
        arr = _validate_array(name, value)
    if arr.shape not in shapes:
        accepted = " or ".join(str(s) for s in shapes)
        raise InvalidArgument(
            f"`{name}` must have shape {accepted} to match {what}, got shape {arr.shape}"
        )
    return arr, arr.reshape(shapes[arr.shape])


def normalise(
    x: np.ndarray, gamma: tuple[np.ndarray, np.ndarray], beta: tuple[np.ndarray, np.ndarray],
    groups: int, eps: float, unit: str,
) -> tuple[np.ndarray, GroupwiseCache]:
    """Forward on validated arrays; ``unit`` names a group in the error message."""
    size = x.size // (x.shape[0] * groups)
    if size <= 1:
        raise InvalidArgument(
            f"Expected more than 1 value per {unit}, got input size {x.shape}"
        )
    compute = np.result_type(x, gamma[0], beta[0], np.float64)
    xw = x.astype(compute, copy=False)
    xg = xw.reshape(x.shape[0], groups, size)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = np.mean(xg, axis=2, keepdims=True)
    if not np.all(np.isfinite(mean)):
        _require_finite("x", x)
        raise InvalidArgument(f"`x` is too large: its per-{unit} sum overflows")
    xc = xg - mean
    var = np.mean(xc * xc, axis=2, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    g = gamma[1].astype(compute, copy=False)
    out = (xc * inv_std).reshape(x.shape) * g
    out += beta[1].astype(compute, copy=False)
    out = out.astype(np.result_type(x, gamma[0], beta[0]), copy=False)
    cache = GroupwiseCache(
        xw, xc, var, inv_std, g, eps, gamma[0].shape, x.dtype, gamma[0].dtype, beta[0].dtype
    )
    return out, cache


def _validate_dout(dout: Any, cache: Any, cache_name: str) -> np.ndarray:
    if not isinstance(cache, GroupwiseCache):
        raise InvalidArgument(
            f"`cache` must be the {cache_name} from the forward, got {type(cache).__name__}"
        )
    d = _validate_array("dout", dout)
    if d.shape != cache.x.shape:
        raise InvalidArgument(f"`dout` must have shape {cache.x.shape}, got shape {d.shape}")
    return d.astype(np.result_type(d, cache.x), copy=False)


def _finish(cache: GroupwiseCache, d: np.ndarray, dx: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients by name in the caller's dtypes and ``gamma``'s shape."""
    axes = tuple(a for a in range(d.ndim) if cache.gamma.shape[a] == 1)
    dgamma = np.sum(d * cache.xhat, axis=axes, keepdims=True).reshape(cache.param_shape)
    dbeta = np.sum(d, axis=axes, keepdims=True).reshape(cache.param_shape)
    return {
        "x": _cast(dx.reshape(cache.x.shape), cache.x_dtype),
        "gamma": _cast(dgamma, cache.gamma_dtype),
        "beta": _cast(dbeta, cache.beta_dtype),
    }


def _dxhat(d: np.ndarray, cache: GroupwiseCache) -> np.ndarray:
    return (d * cache.gamma).reshape(cache.xc.shape)


def backward_staged(dout: Any, cache: Any, cache_name: str) -> dict[str, np.ndarray]:
    """Chain rule through ``mu`` and ``v`` (see the module docstring)."""
    d = _validate_dout(dout, cache, cache_name)
    dxhat, xc, inv_std = _dxhat(d, cache), cache.xc, cache.inv_std
    m = xc.shape[2]
    dvar = np.sum(dxhat * xc, axis=2, keepdims=True) * -0.5 * inv_std**3
    dmu = -np.sum(dxhat, axis=2, keepdims=True) * inv_std
    dmu = dmu + dvar * np.mean(-2.0 * xc, axis=2, keepdims=True)
    return _finish(cache, d, dxhat * inv_std + dvar * 2.0 * xc / m + dmu / m)


def backward_compact(dout: Any, cache: Any, cache_name: str) -> dict[str, np.ndarray]:
    """``(dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(v + eps)``."""
    d = _validate_dout(dout, cache, cache_name)
    dxhat = _dxhat(d, cache)
    xhat = cache.xc * cache.inv_std
    mean_d = np.mean(dxhat, axis=2, keepdims=True)
    mean_dx = np.mean(dxhat * xhat, axis=2, keepdims=True)
    return _finish(cache, d, cache.inv_std * (dxhat - mean_d - xhat * mean_dx))


def backward(
    dout: Any, cache: Any, form: Any, cache_name: str
) -> dict[str, np.ndarray]:
    """Dispatch on ``form`` with BatchNorm's message."""
    if form == "compact":
        return backward_compact(dout, cache, cache_name)
    if form == "staged":
        return backward_staged(dout, cache, cache_name)
    raise InvalidArgument(f"`form` must be 'compact' or 'staged', got {form!r}")


def check_form(backward_form: Any) -> BackwardForm:
    if backward_form not in ("compact", "staged"):
        raise InvalidArgument(
            f"`backward_form` must be 'compact' or 'staged', got {backward_form!r}"
        )
    return backward_form  # type: ignore[no-any-return]


def check_rank(x: np.ndarray) -> None:
    if x.ndim < 2 or x.ndim > 5:
        raise InvalidArgument(
            "`x` must be 2-D (N, D), 3-D (N, C, L), 4-D (N, C, H, W) or 5-D, "
            f"got shape {x.shape}"
        )
