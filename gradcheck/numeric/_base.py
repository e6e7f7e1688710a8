"""What every estimator shares: the Estimate, argument validation, counted evaluations."""

from __future__ import annotations

import cmath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument

_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).smallest_normal)  # added to every bound (subnormal results)
_CS_EXPONENT = -360  # complex step h = 2**-360 * max(1, |x|): O(h**3) terms underflow to 0 ...
_CS_IMAG_FLOOR = -900  # ... raised where h * (the derivative's scale) would fall below 2**-900
_CS_LOWEST = -960  # and never below this: the step itself must stay a normal number


def complex_step_size(xk: Any, scale: Any = None) -> np.ndarray:
    """``h = 2⁻³⁶⁰·max(1, |x_k|)`` rounded down to a power of two, at most ``2⁻⁶⁰·|x_k|`` for a
    tiny nonzero element, raised (by powers of two, to at most that) until ``h·scale ≥ 2⁻⁹⁰⁰``:
    a layer whose outputs are scaled by ``2^k`` then keeps its imaginary parts normal numbers
    (subnormals would lose the digits the
    estimate is made of), and a gradient's status does not depend on its units. ``scale`` is
    the size of the derivatives to expect (the terms a gradient sums), per element or one."""
    magnitude = np.abs(np.asarray(xk, dtype=np.float64))
    _, exponent = np.frexp(np.maximum(1.0, magnitude))
    _, own = np.frexp(np.where(magnitude > 0, magnitude, 1.0))
    # at most 2^-60 of the element itself: an input of 1e-172 beside inputs of 1 varies on its
    # own scale (a log, a reciprocal), and a step of 1e-109 would jump across it
    upper = np.maximum(np.minimum(exponent, own) - 1 - 60, _CS_LOWEST)
    steps = np.minimum(exponent - 1 + _CS_EXPONENT, upper)
    if scale is not None:
        size = np.asarray(scale, dtype=np.float64)
        _, e2 = np.frexp(np.where(size > 0, size, 1.0))
        raised = np.where(size > 0, _CS_IMAG_FLOOR - (e2 - 1), steps)
        steps = np.clip(raised, steps, upper)
    return np.ldexp(1.0, steps)
_CS_ROUNDING = 2.0**7  # complex-step rounding bound, in units of eps (see module docstring)
_F_ULPS = 2.0**3  # every evaluation of f is off by at least this many eps of |f|



@dataclass(frozen=True)
class Estimate:
    """A numerical derivative with a bound on its error.

    Attributes
    ----------
    value : ndarray of float64
        The estimate; shape ``x.shape``, or ``(len(indices),)`` when indices are given;
        0-d for :func:`directional`.
    error : ndarray of float64
        Per-element bound on ``|value - true derivative|``, same shape, ``>= 0``.
    nfev : int
        Evaluations of the function used.
    method : str
        ``"complex"``, ``"central"`` or ``"richardson"``.
    step : ndarray of float64
        Per-element step actually taken, same shape as ``value``.
    reason : str
        For ``method="auto"``: which method ran and why; ``""`` otherwise.
    """

    value: np.ndarray
    error: np.ndarray
    nfev: int
    method: str
    step: np.ndarray
    reason: str = ""


@dataclass(frozen=True)
class _Problem:
    """Validated arguments: a private float64 copy of ``x`` and the flat indices to estimate."""

    f: Callable[[np.ndarray], Any]
    x: np.ndarray
    idx: np.ndarray
    shape: tuple[int, ...]  # of the estimate


# --------------------------------------------------------------------------------- validation


def _validate_f(f: Any, name: str = "f") -> None:
    if not callable(f):
        raise InvalidArgument(f"`{name}` must be callable, got {type(f).__name__}")


def _validate_x(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise InvalidArgument(
            f"`x` must be a real floating array (float16, float32 or float64), got {arr.dtype}"
        )
    base = np.array(arr, dtype=np.float64, copy=True)
    if not np.all(np.isfinite(base)):
        bad = int(base.size - np.count_nonzero(np.isfinite(base)))
        raise InvalidArgument(f"`x` must be finite, got {bad} NaN or inf of {base.size} elements")
    base.flags.writeable = False
    return base


def _validate_indices(indices: Any, size: int) -> np.ndarray:
    if indices is None:
        return np.arange(size)
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu" or idx.ndim != 1:
        raise InvalidArgument(
            "`indices` must be a 1-D array of integer flat indices, "
            f"got dtype {idx.dtype} and shape {idx.shape}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = idx[(idx < 0) | (idx >= size)][0]
        raise InvalidArgument(
            f"`indices` must be flat indices in [0, {size}) for `x` of size {size}, got {bad}"
        )
    return idx.astype(np.intp)


def _validate_noise(noise: Any, shape: tuple[int, ...] | None = None) -> Any:
    """``None``, a float, or (with ``shape``) an array of per-element noise of that shape."""
    if noise is None:
        return None
    if isinstance(noise, np.ndarray) and noise.ndim > 0:
        arr = np.asarray(noise, dtype=np.float64)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise InvalidArgument("`noise` must hold non-negative finite floats")
        if shape is None:
            return float(np.max(arr, initial=0.0))
        try:
            return np.broadcast_to(arr, shape)
        except ValueError:
            raise InvalidArgument(
                f"`noise` must be a float or an array of `x`'s shape {shape}, got shape {arr.shape}"
            ) from None
    ok = isinstance(noise, (int, float, np.floating, np.integer)) and not isinstance(noise, bool)
    if not ok or not np.isfinite(noise) or noise < 0:
        raise InvalidArgument(f"`noise` must be a non-negative finite float or None, got {noise!r}")
    return float(noise)


def _noise_at(noise: Any, idx: np.ndarray) -> Any:
    """The noise of the elements ``idx`` (a float stays a float)."""
    if noise is None:
        return 0.0
    if isinstance(noise, np.ndarray):
        return np.asarray(noise).reshape(-1)[idx]
    return float(noise)


def spread(x: np.ndarray) -> float:
    """The scale of a whole input: its standard deviation, else its largest magnitude, else 1;
    computed on ``x`` divided by its largest magnitude, so inputs of 1e200 do not overflow."""
    x = np.asarray(x, dtype=np.float64)
    top = float(np.max(np.abs(x), initial=0.0))
    if top == 0.0 or not np.isfinite(top):
        return 1.0
    return top * float(np.std(x / top)) or top


def local_scale(x: np.ndarray) -> np.ndarray:
    """Per element, the scale on which the input varies: the smallest standard deviation of ``x``
    along any axis through the element (axes of length one skipped).

    For BatchNorm's ``(N, C)`` input the spread down a column is the channel's own standard
    deviation, which can be a million times smaller than the spread of the whole tensor when
    channels sit at different offsets; a step or noise model scaled to the whole tensor would
    then be a million times off for that channel. Elements with no spread get ``max(1, |x_k|)``.
    """
    x = np.asarray(x, dtype=np.float64)
    top = float(np.max(np.abs(x), initial=0.0))
    unit = top if np.isfinite(top) and top > 0 else 1.0  # std of x / unit: no overflow at 1e200
    scale = np.full(x.shape, np.inf)
    for axis, n in enumerate(x.shape):
        if n > 1:
            scale = np.minimum(scale, unit * np.std(x / unit, axis=axis, keepdims=True))
    fallback = np.maximum(1.0, np.abs(x))
    return np.where(np.isfinite(scale) & (scale > 0), scale, fallback)


def _validate(f: Any, x: Any, indices: Any) -> _Problem:
    _validate_f(f)
    base = _validate_x(x)
    idx = _validate_indices(indices, base.size)
    shape = base.shape if indices is None else (idx.size,)
    return _Problem(f, base, idx, shape)


def _as_scalar(value: Any, where: str, *, complex_ok: bool = False, name: str = "f") -> complex:
    """``value`` as a Python number; ``InvalidArgument`` unless it is a finite numeric scalar."""
    if isinstance(value, (float, complex, np.floating, np.complexfloating)):  # the common case
        number = complex(value)
        if cmath.isfinite(number) and (complex_ok or number.imag == 0):
            return number if complex_ok else complex(number.real)
    arr = np.asarray(value)
    if arr.ndim != 0 or arr.dtype.kind not in "iufc":
        raise InvalidArgument(
            f"`{name}` must return a numeric scalar, got {type(value).__name__} with shape "
            f"{arr.shape} and dtype {arr.dtype} {where}"
        )
    if not np.isfinite(arr):
        raise InvalidArgument(f"`{name}` must return a finite value, got {arr.item()!r} {where}")
    if arr.dtype.kind == "c" and not complex_ok and arr.imag != 0:
        raise InvalidArgument(
            f"`{name}` must return a real value for real input, got {arr.item()!r} {where}"
        )
    return complex(arr.item()) if complex_ok else complex(float(arr.real))


class _Evaluator:
    """Calls ``f`` on fresh copies of ``x`` (never on the caller's array) and counts the calls.

    ``f`` may offer ``f.many(base, ks, values)``: ``[f(base with base.flat[k] = v) ...]`` in one
    go (a layer behind a process boundary evaluates a whole stage per message); without it the
    points are evaluated one by one.
    """

    def __init__(self, problem: _Problem) -> None:
        self.f = problem.f
        self.x = problem.x
        self.nfev = 0

    def at(self, k: int | None = None, value: float = 0.0) -> float:
        """``f(x)`` with element ``k`` (a flat index) replaced by ``value``."""
        arr = self.x.copy(order="K")  # the caller's layout: a layer may depend on it
        if k is not None:
            arr.flat[k] = value
        self.nfev += 1
        where = "at `x`" if k is None else f"at `x` with element {k} perturbed"
        return float(_as_scalar(self.f(arr), where).real)

    def _many(self, base: np.ndarray, ks: np.ndarray, values: np.ndarray) -> list[Any]:
        """``f`` at ``base`` with ``base.flat[k] = v`` for each pair, as ``f`` returned them."""
        self.nfev += len(ks)
        batch = getattr(self.f, "many", None)
        if batch is not None:
            return list(batch(base, ks, values))
        found = []
        for k, v in zip(ks, values, strict=True):
            arr = base.copy(order="K")
            arr.flat[int(k)] = v
            found.append(self.f(arr))
        return found

    def at_many(self, ks: np.ndarray, values: np.ndarray, *, nan: bool = False) -> np.ndarray:
        """:meth:`at` for every pair (``nan``: NaN where ``f`` is not finite, as
        :meth:`at_or_nan`)."""
        ks, values = np.asarray(ks, dtype=np.intp), np.asarray(values, dtype=self.x.dtype)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            found = self._many(self.x, ks, values)
        out = np.empty(len(found))
        for i, (k, raw) in enumerate(zip(ks, found, strict=True)):
            where = f"at `x` with element {int(k)} perturbed"
            if nan:
                try:
                    out[i] = _as_scalar(raw, where).real
                except InvalidArgument as exc:
                    if "finite" not in str(exc):
                        raise
                    out[i] = np.nan
            else:
                out[i] = _as_scalar(raw, where).real
        return out

    def at_or_nan(self, k: int, value: float) -> float:
        """As :meth:`at`, but NaN when ``f`` is not finite there: a step too large for ``f``
        (e.g. one that makes a variance vanish), which the Richardson reruns shrink away."""
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return self.at(k, value)
        except InvalidArgument as exc:
            if "finite" not in str(exc):
                raise
            return float("nan")

    def imag_at(self, k: int, h: float, dtype: Any = np.complex128) -> complex:
        """``f(x + i h e_k)`` on a complex copy (complex128, or a wider ``dtype``)."""
        arr = self.x.astype(dtype)
        arr.flat[k] += 1j * h  # .flat: the C-order index for any layout (a Fortran copy
        # reshaped to 1-D would be a copy, and the step would be lost)
        self.nfev += 1
        return _as_scalar(self.f(arr), f"at `x + ih e_{k}`", complex_ok=True)

    def imag_many(self, ks: np.ndarray, hs: np.ndarray, dtype: Any = np.complex128
                  ) -> np.ndarray:
        """:meth:`imag_at` for every element ``ks[i]`` with step ``hs[i]``."""
        base = self.x.astype(dtype)
        ks = np.asarray(ks, dtype=np.intp)
        values = base.flat[ks] + 1j * np.asarray(hs)  # in base's dtype (a wider one stays)
        found = self._many(base, ks, values)
        return np.array([_as_scalar(r, f"at `x + ih e_{int(k)}`", complex_ok=True)
                         for k, r in zip(ks, found, strict=True)], dtype=np.complex128)


def one_by_one(evaluate: Callable[[int, float], float]) -> Callable[..., np.ndarray]:
    """A batched ``evaluate(js, values) -> array`` from a one-point ``evaluate(j, value)``."""
    def many(js: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.array([evaluate(int(j), float(v)) for j, v in zip(js, values, strict=True)],
                        dtype=np.float64)
    return many


def _finish(
    problem: _Problem, value: Any, error: Any, nfev: int, method: str, step: Any
) -> Estimate:
    def shaped(a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64).reshape(problem.shape)

    return Estimate(shaped(value), shaped(error), int(nfev), method, shaped(step))


def _validate_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgument(f"`seed` must be a non-negative integer, got {seed!r}")
    return int(seed)


def _validate_method(method: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(method, str) or method not in allowed:
        known = ", ".join(repr(m) for m in allowed)
        raise InvalidArgument(f"`method` must be one of {known}, got {method!r}")
    return method

