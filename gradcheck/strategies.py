"""Hypothesis strategies for gradient checks: hard BatchNorm cases, layer inputs, shapes.

Built on :mod:`hypothesis.extra.numpy`. Bounds are keyword-only ``min_*``/``max_*`` pairs,
validated when the strategy is built (:class:`~gradcheck.errors.InvalidArgument`, worded like
Hypothesis' own: ``"min_batch=5 is larger than max_batch=3"``).

:func:`batchnorm_cases` aims at the corners where BatchNorm code and gradient checks go wrong,
and draws them often rather than by luck: per-channel scale and mean offset are drawn
log-uniformly (std from 1e-3 to 1e3, ``|mean|/std`` up to 1e4, where cancellation in ``x - mu``
costs four digits), ``eps`` log-uniformly from 1e-8 to 1e-1 and exactly 0 a quarter of the time,
``N = 2`` (the smallest legal batch), float32 beside float64, ``(N, C, H, W)`` beside ``(N, D)``,
negative and near-zero ``gamma``. Each corner drawn is reported with :func:`hypothesis.event`, so
``pytest --hypothesis-show-statistics`` shows how often it came up.

Degenerate draws are made impossible rather than filtered: the standardised values behind ``x``
are strictly increasing in (drawn value, position), so every channel has at least two distinct
values and, after standardising, unit spread; ``x = mean + std * z`` then has exactly the drawn
per-channel mean and std up to rounding, and variance away from zero even with ``eps = 0``. The
upstream gradient ``dout`` is built the same way: all values distinct, never constant in a
channel (a constant one makes BatchNorm's ``dx`` identically zero and a gradient check vacuous).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple

import numpy as np

try:
    from hypothesis import event
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ModuleNotFoundError as exc:  # only hypothesis' absence gets the install hint
    if exc.name != "hypothesis":
        raise
    raise ImportError("gradcheck.strategies needs hypothesis: pip install 'gradcheck[property]'",
                      name=__name__) from exc

from gradcheck.errors import InvalidArgument

__all__ = ["BATCH", "LAYOUTS", "BatchNormCase", "batchnorm_cases", "layer_inputs",
           "symbolic_shapes"]

#: Layouts :func:`batchnorm_cases` can draw: ``(N, D)`` and channels-first ``(N, C, H, W)``.
LAYOUTS: tuple[str, ...] = ("ND", "NCHW")
#: The dimension name :func:`symbolic_shapes` treats as the batch (drawn >= 2).
BATCH = "N"

_MAX_SPATIAL = 3  # H and W in 1..3: spatial reduction without big arrays
_BASE = 3.0  # raw draws live in [-3, 3] before they are made distinct and standardised
_CONDITION_DECADES = 6.0  # |mean|/std is log-uniform over six decades below max_condition
_Width = Literal[16, 32, 64]
_SIZES: dict[np.dtype, _Width] = {np.dtype(np.float32): 32, np.dtype(np.float64): 64}
_WIDTHS: dict[np.dtype, _Width] = {np.dtype(np.float16): 16, **_SIZES}
_TINY = 1e-6  # gamma and beta below this in magnitude are drawn as exactly 0


class BatchNormCase(NamedTuple):
    """One drawn BatchNorm case; accepted by :func:`gradcheck.invariants.check_invariants`.

    ``x``, ``gamma``, ``beta``, ``dout`` have dtype ``dtype``; ``running_mean`` and
    ``running_var`` (for inference checks) are float64. ``mean`` and ``std`` are the drawn
    per-channel mean and standard deviation of ``x`` (float64, shape ``(C,)``) and ``condition``
    is ``max |mean| / std``.
    """

    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    dout: np.ndarray
    eps: float
    running_mean: np.ndarray
    running_var: np.ndarray
    layout: str
    dtype: np.dtype
    mean: np.ndarray
    std: np.ndarray
    condition: float
    channel_axis: int = 1

    @property
    def corners(self) -> tuple[str, ...]:
        """The corner labels this case hits (the same strings as its ``event()`` calls)."""
        hits = (
            ("condition>=1e3", self.condition >= 1e3),
            ("eps<=1e-7", 0 < self.eps <= 1e-7),
            ("eps=0", self.eps == 0),
            ("N=2", self.x.shape[0] == 2),
            ("float32", self.dtype == np.float32),
            ("NCHW", self.layout == "NCHW"),
        )
        return tuple(label for label, hit in hits if hit)


@dataclass(frozen=True)
class _CaseBounds:
    batch: tuple[int, int]
    channels: tuple[int, int]
    layouts: tuple[str, ...]
    sizes: tuple[_Width, ...]
    eps: tuple[float, float]
    allow_zero_eps: bool
    max_condition: float
    std: tuple[float, float]


# ---------------------------------------------------------------------------------------------
# Validation, worded like hypothesis' own


def _check_int(name: str, value: Any, floor: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"{name}={value!r} must be an integer")
    if value < floor:
        raise InvalidArgument(f"{name}={value} must be at least {floor}")
    return int(value)


def _check_float(name: str, value: Any, *, positive: bool) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise InvalidArgument(f"{name}={value!r} must be a finite {kind} number")
    return float(value)


def _order(name: str, low: float, high: float) -> tuple[Any, Any]:
    if low > high:
        raise InvalidArgument(f"min_{name}={low} is larger than max_{name}={high}")
    return low, high


def _int_range(name: str, low: Any, high: Any, floor: int) -> tuple[int, int]:
    return _order(name, _check_int(f"min_{name}", low, floor), _check_int(f"max_{name}", high, 1))


def _float_range(name: str, low: Any, high: Any) -> tuple[float, float]:
    low = _check_float(f"min_{name}", low, positive=True)
    return _order(name, low, _check_float(f"max_{name}", high, positive=True))


def _layouts(layouts: Any) -> tuple[str, ...]:
    chosen = (layouts,) if isinstance(layouts, str) else tuple(layouts)
    unknown = [x for x in chosen if x not in LAYOUTS]
    if unknown or not chosen:
        got = repr(unknown[0]) if unknown else "nothing"
        known = ", ".join(map(repr, LAYOUTS))
        raise InvalidArgument(f"layouts must contain only {known}, got {got}")
    return tuple(dict.fromkeys(chosen))


def _sizes(dtypes: Any) -> tuple[_Width, ...]:
    chosen = tuple(dtypes) if isinstance(dtypes, (tuple, list)) else (dtypes,)
    sizes: list[_Width] = []
    for dtype in chosen:
        try:
            sizes.append(_SIZES[np.dtype(dtype)])
        except (KeyError, TypeError):
            raise InvalidArgument(f"dtypes must be float32 or float64, got {dtype!r}") from None
    if not sizes:
        raise InvalidArgument("dtypes must name at least one of float32, float64, got nothing")
    return tuple(dict.fromkeys(sizes))


# ---------------------------------------------------------------------------------------------
# batchnorm_cases


def batchnorm_cases(
    *,
    min_batch: int = 2,
    max_batch: int = 8,
    min_channels: int = 1,
    max_channels: int = 4,
    layouts: Sequence[str] = LAYOUTS,
    dtypes: Sequence[Any] = (np.float64, np.float32),
    min_eps: float = 1e-8,
    max_eps: float = 1e-1,
    allow_zero_eps: bool = True,
    max_condition: float = 1e4,
    min_std: float = 1e-3,
    max_std: float = 1e3,
) -> st.SearchStrategy[BatchNormCase]:
    """BatchNorm inputs with ill-conditioned channels, tiny ``eps`` and small batches.

    Parameters
    ----------
    min_batch, max_batch : int
        Batch size ``N``; ``min_batch >= 2`` (training needs two values per channel).
    min_channels, max_channels : int
        Channels ``D`` or ``C``. ``NCHW`` cases have ``H, W`` in 1..3.
    layouts : sequence of {"ND", "NCHW"}
        Layouts to draw from; channels are on axis 1 in both.
    dtypes : sequence of dtype
        float32 and/or float64.
    min_eps, max_eps : float
        ``eps`` is drawn log-uniformly between them (positive).
    allow_zero_eps : bool
        Also draw ``eps = 0`` (a quarter of the time).
    max_condition : float
        Largest ``|mean| / std`` per channel; drawn log-uniformly over the six decades below it.
    min_std, max_std : float
        Per-channel standard deviation of ``x``, drawn log-uniformly.

    Returns
    -------
    SearchStrategy of BatchNormCase

    Raises
    ------
    InvalidArgument
        When the strategy is built: a bound of the wrong type or sign, ``min_* > max_*``,
        ``min_batch < 2``, an unknown layout or a dtype other than float32/float64.

    Examples
    --------
    >>> from hypothesis import find
    >>> case = find(batchnorm_cases(layouts=["NCHW"]), lambda c: c.condition >= 1e3)
    >>> case.x.ndim, case.x.shape[0] >= 2, case.condition >= 1e3
    (4, True, True)
    >>> batchnorm_cases(min_batch=5, max_batch=3)
    Traceback (most recent call last):
    ...
    gradcheck.errors.InvalidArgument: min_batch=5 is larger than max_batch=3
    """
    bounds = _CaseBounds(
        batch=_int_range("batch", min_batch, max_batch, 2),
        channels=_int_range("channels", min_channels, max_channels, 1),
        layouts=_layouts(layouts),
        sizes=_sizes(dtypes),
        eps=_float_range("eps", min_eps, max_eps),
        allow_zero_eps=bool(allow_zero_eps),
        max_condition=_check_float("max_condition", max_condition, positive=False),
        std=_float_range("std", min_std, max_std),
    )
    return _cases(bounds)


def _log_uniform(low: float, high: float) -> st.SearchStrategy[float]:
    """``10**e`` with ``e`` uniform in ``[log10 low, log10 high]``; the ends are drawn often."""
    if low == high:
        return st.just(low)
    exponents = st.floats(math.log10(low), math.log10(high))
    return exponents.map(lambda e: min(max(10.0**e, low), high))


def _signed(magnitudes: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    return st.tuples(st.sampled_from((1.0, -1.0)), magnitudes).map(lambda t: t[0] * t[1])


def _vector(draw: Any, elements: st.SearchStrategy[float], size: int) -> np.ndarray:
    return np.array(draw(st.lists(elements, min_size=size, max_size=size)), dtype=np.float64)


def _shape(draw: Any, bounds: _CaseBounds, layout: str) -> tuple[int, ...]:
    batch = draw(st.integers(*bounds.batch))
    channels = draw(st.integers(*bounds.channels))
    if layout == "ND":
        return (batch, channels)
    spatial = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=_MAX_SPATIAL)
    return (batch, channels, *draw(spatial))


def _raw(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    return draw(hnp.arrays(np.float64, shape, elements=st.floats(-_BASE, _BASE)))


def _distinct(raw: np.ndarray) -> np.ndarray:
    """Strictly increasing in (value, position): ``raw + rank / size``, all values distinct."""
    flat = raw.ravel()
    ranks = np.empty(flat.size)
    ranks[np.argsort(flat, kind="stable")] = np.arange(flat.size)
    return raw + ranks.reshape(raw.shape) / flat.size


def _standardise(w: np.ndarray) -> np.ndarray:
    """Per channel (axis 1): mean 0, biased std 1."""
    axes = (0, *range(2, w.ndim))
    centred = w - w.mean(axis=axes, keepdims=True)
    return centred / np.sqrt((centred * centred).mean(axis=axes, keepdims=True))


def _upstream(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    """An upstream gradient independent of ``x``: seeded Gaussian values plus a drawn part.

    Drawn alone, ``dout`` would shrink to the same ramp as ``x`` (both ``_distinct`` of an array
    of zeros), which is affine in ``x`` per channel, and BatchNorm's ``dx`` is then exactly zero:
    in about half of the draws the dx check carried no evidence.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    noise = np.random.default_rng(seed).standard_normal(shape)
    return noise + _raw(draw, shape) / _BASE


def _column(p: np.ndarray, ndim: int) -> np.ndarray:
    return p.reshape((1, -1) + (1,) * (ndim - 2))


def _eps(draw: Any, bounds: _CaseBounds) -> float:
    if bounds.allow_zero_eps and draw(st.integers(0, 3)) == 0:
        return 0.0
    return draw(_log_uniform(*bounds.eps))


@st.composite
def _gamma_values(draw: Any) -> float:
    """Signed, log-uniform in 1e-2..3; one in eight exactly 0, one in eight tiny (1e-6..1e-2)."""
    branch = draw(st.integers(0, 7))
    if branch == 6:
        return 0.0
    low, high = (_TINY, 1e-2) if branch == 7 else (1e-2, _BASE)
    return draw(_signed(_log_uniform(low, high)))


def _parameter_values() -> st.SearchStrategy[float]:
    """Values in [-3, 3] with no magnitude in (0, 1e-6): zero, or far from float32 underflow."""
    return st.floats(-_BASE, _BASE).map(lambda v: v if abs(v) >= _TINY else 0.0)


def _conditions(draw: Any, bounds: _CaseBounds, channels: int) -> np.ndarray:
    top = bounds.max_condition
    if top == 0:
        return np.zeros(channels)
    magnitudes = _log_uniform(top * 10.0**-_CONDITION_DECADES, top)
    return _vector(draw, _signed(magnitudes), channels)


def _running(draw: Any, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running statistics near the batch's: mean within one std, std within a decade."""
    offset = _vector(draw, st.floats(-1.0, 1.0), mean.size)
    spread = _vector(draw, _log_uniform(0.1, 10.0), mean.size)
    return mean + std * offset, (std * spread) ** 2


@st.composite
def _cases(draw: Any, bounds: _CaseBounds) -> BatchNormCase:
    layout = draw(st.sampled_from(bounds.layouts))
    dtype = draw(hnp.floating_dtypes(sizes=bounds.sizes, endianness="="))
    shape = _shape(draw, bounds, layout)
    channels, ndim = shape[1], len(shape)
    eps = _eps(draw, bounds)
    if eps == 0.0 and math.prod(shape) // channels == 2:
        # two values per channel and eps = 0: the output is ±1 whatever x is, so dx carries no
        # evidence; eps = 0 is still drawn for every larger batch
        eps = draw(_log_uniform(*bounds.eps))
    std = _vector(draw, _log_uniform(*bounds.std), channels)
    mean = _conditions(draw, bounds, channels) * std
    gamma = _vector(draw, _gamma_values(), channels)
    if not np.any(gamma):  # every channel at gamma = 0 would leave dx no evidence at all
        gamma[0] = draw(_signed(_log_uniform(1e-2, _BASE)))
    gamma = gamma.astype(dtype)
    beta = _vector(draw, _parameter_values(), channels).astype(dtype)
    running_mean, running_var = _running(draw, mean, std)
    z = _standardise(_distinct(_raw(draw, shape)))
    x = (_column(mean, ndim) + _column(std, ndim) * z).astype(dtype)
    dout = _upstream(draw, shape).astype(dtype)
    condition = float(np.max(np.abs(mean) / std))
    case = BatchNormCase(
        x, gamma, beta, dout, eps, running_mean, running_var, layout, np.dtype(dtype),
        mean, std, condition,
    )
    for label in case.corners:
        event(label)
    return case


# ---------------------------------------------------------------------------------------------
# layer_inputs


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InvalidArgument(f"dtype={dtype!r} must be a floating dtype") from None
    if dt not in _WIDTHS:
        raise InvalidArgument(f"dtype={dt} must be a floating dtype: float16, float32 or float64")
    return dt


def _inward(value: float, dt: np.dtype, *, up: bool) -> float:
    """``value`` rounded to ``dt``, then stepped ``up`` (a lower bound) or down (an upper bound)
    if rounding moved it out of the interval."""
    rounded = dt.type(value)
    if (float(rounded) < value) if up else (float(rounded) > value):
        rounded = np.nextafter(rounded, dt.type(np.inf if up else -np.inf))
    return float(rounded)


def _shape_of(name: Any, shape: Any) -> tuple[int, ...]:
    if not isinstance(name, str):
        raise InvalidArgument(f"input names must be strings, got {name!r}")
    if not isinstance(shape, (tuple, list)):
        raise InvalidArgument(f"shapes[{name!r}] must be a tuple of sizes, got {shape!r}")
    return tuple(_check_int(f"shapes[{name!r}] size", side, 0) for side in shape)


def layer_inputs(
    shapes: Mapping[str, Sequence[int]],
    *,
    dtype: Any = np.float64,
    min_value: float = -10.0,
    max_value: float = 10.0,
) -> st.SearchStrategy[dict[str, np.ndarray]]:
    """Finite arrays for a generic layer's inputs, one per name.

    Values lie in ``[min_value, max_value]`` (rounded inwards to ``dtype``) and are never NaN,
    infinite or subnormal.

    Parameters
    ----------
    shapes : mapping of str to tuple of int
        Input name to shape.
    dtype : floating dtype
        Of every array.
    min_value, max_value : float
        Bounds of the values.

    Returns
    -------
    SearchStrategy of dict[str, ndarray]

    Raises
    ------
    InvalidArgument
        No inputs, a bad shape, a non-floating dtype, or ``min_value > max_value``.

    Examples
    --------
    >>> from hypothesis import find
    >>> inputs = find(layer_inputs({"x": (2, 3), "w": (3,)}, dtype=np.float32), lambda d: True)
    >>> {name: (a.shape, a.dtype.name) for name, a in inputs.items()}
    {'x': ((2, 3), 'float32'), 'w': ((3,), 'float32')}
    """
    dt = _float_dtype(dtype)
    if not isinstance(shapes, Mapping) or not shapes:
        raise InvalidArgument(f"shapes must map at least one input name to a shape, got {shapes!r}")
    sizes = {name: _shape_of(name, shape) for name, shape in shapes.items()}
    low, high = _value_range(min_value, max_value)
    low, high = _inward(low, dt, up=True), _inward(high, dt, up=False)
    if low > high:
        raise InvalidArgument(f"no {dt} value lies in [{min_value}, {max_value}]")
    elements = st.floats(low, high, width=_WIDTHS[dt], allow_subnormal=False)
    return st.fixed_dictionaries(
        {name: hnp.arrays(dt, shape, elements=elements) for name, shape in sizes.items()}
    )


def _value_range(min_value: Any, max_value: Any) -> tuple[float, float]:
    for name, value in (("min_value", min_value), ("max_value", max_value)):
        ok = isinstance(value, (int, float, np.integer, np.floating))
        if not ok or isinstance(value, bool) or not math.isfinite(value):
            raise InvalidArgument(f"{name}={value!r} must be a finite number")
    return _order("value", float(min_value), float(max_value))


# ---------------------------------------------------------------------------------------------
# symbolic_shapes


def _dimension(name: str, dim: Any) -> str | int:
    if isinstance(dim, str) and dim.strip().isdigit():
        dim = int(dim)
    if isinstance(dim, str):
        if not dim.strip():
            raise InvalidArgument(f"spec[{name!r}] has an empty dimension name")
        return dim.strip()
    return _check_int(f"spec[{name!r}] size", dim, 1)


def _spec(spec: Any) -> dict[str, tuple[str | int, ...]]:
    if not isinstance(spec, Mapping) or not spec:
        raise InvalidArgument(f"spec must map at least one input name to dimensions, got {spec!r}")
    dims = {}
    for name, entry in spec.items():
        if not isinstance(name, str) or isinstance(entry, str) or not isinstance(entry, Sequence):
            raise InvalidArgument(
                f"spec[{name!r}] must be a sequence of dimension names or sizes, got {entry!r}"
            )
        dims[name] = tuple(_dimension(name, d) for d in entry)
    return dims


def _substitute(
    dims: Mapping[str, tuple[str | int, ...]], sizes: Mapping[str, int]
) -> dict[str, tuple[int, ...]]:
    return {
        name: tuple(sizes[d] if isinstance(d, str) else d for d in entry)
        for name, entry in dims.items()
    }


def symbolic_shapes(
    spec: Mapping[str, Sequence[str | int]],
    *,
    min_side: int = 1,
    max_side: int = 16,
) -> st.SearchStrategy[dict[str, tuple[int, ...]]]:
    """Shapes for named inputs whose dimensions are named; a name shared by inputs shares a size.

    ``{"x": ("N", "D"), "gamma": ("D",)}`` draws ``N`` and ``D`` once each. Integers (or digit
    strings, as a command line gives them) are fixed sizes. The batch dimension :data:`BATCH`
    (``"N"``) is drawn at least 2. Sizes are drawn uniformly-ish from ``[min_side, max_side]``, so
    both odd and even sizes come up.

    Parameters
    ----------
    spec : mapping of str to sequence of str or int
        Input name to its dimensions.
    min_side, max_side : int
        Bounds of every named dimension (``min_side >= 1``).

    Returns
    -------
    SearchStrategy of dict[str, tuple[int, ...]]

    Raises
    ------
    InvalidArgument
        An empty or malformed spec, ``min_side > max_side``, or ``max_side < 2`` with an ``N``.

    Examples
    --------
    >>> from hypothesis import find
    >>> shapes = find(symbolic_shapes({"x": ("N", "D"), "gamma": ("D",)}), lambda s: True)
    >>> shapes
    {'x': (2, 1), 'gamma': (1,)}
    """
    dims = _spec(spec)
    low, high = _int_range("side", min_side, max_side, 1)
    names = sorted({d for entry in dims.values() for d in entry if isinstance(d, str)})
    if BATCH in names and high < 2:
        raise InvalidArgument(f"dimension {BATCH!r} (the batch) needs max_side >= 2, got {high}")
    sizes = st.fixed_dictionaries(
        {d: st.integers(max(low, 2) if d == BATCH else low, high) for d in names}
    )
    return sizes.map(partial(_substitute, dims))
