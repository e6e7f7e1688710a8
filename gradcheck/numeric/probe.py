"""Whether the complex step can be trusted on a forward: a tracer and agreement tests."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.exceptions import ComplexWarning

from gradcheck.numeric._base import (
    _EPS,
    _F_ULPS,
    Estimate,
    _Evaluator,
    _Problem,
    _validate,
    _validate_noise,
    _validate_seed,
)
from gradcheck.numeric._base import (
    spread as input_spread,
)
from gradcheck.numeric.complex_step import _complex_steps, complex_step
from gradcheck.numeric.directional import directional
from gradcheck.numeric.richardson import _richardson_core, _richardson_steps, richardson

_PROBE_SAMPLES = 3
_PROBE_RTOL = 1e-9  # complex step and Richardson must agree to their bounds plus this
_QUICK_BOUND = 1e-8  # the quick comparison certifies only with a bound this tight, relative


# Operations that make the complex step wrong: they drop or mangle the imaginary part.
_NON_ANALYTIC_UFUNCS = frozenset({
    "absolute", "fabs", "sign", "signbit", "conjugate", "floor", "ceil", "rint", "trunc",
    "heaviside", "copysign", "remainder", "fmod", "floor_divide", "divmod", "modf",
})
# Operations NumPy evaluates on complex numbers by the lexicographic order (real part first):
# they select on the real parts and carry the imaginary part of what they select, so the
# complex step is exact for them except at exact ties of the real parts (kinks), where the sign
# of the step picks a side. They are recorded as piecewise, not as unsafe.
_PIECEWISE_UFUNCS = frozenset({
    "greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
    "maximum", "minimum", "fmax", "fmin", "clip",
})

_NON_ANALYTIC_FUNCTIONS: dict[Any, str] = {
    np.var: "np.var", np.std: "np.std", np.nanvar: "np.nanvar", np.nanstd: "np.nanstd",
    np.round: "np.round", np.around: "np.around", np.ptp: "np.ptp",
    np.linalg.norm: "np.linalg.norm", np.real: "np.real", np.abs: "np.abs",
    np.real_if_close: "np.real_if_close",
}
_PIECEWISE_FUNCTIONS: dict[Any, str] = {
    np.max: "np.max", np.min: "np.min", np.amax: "np.amax", np.amin: "np.amin",
    np.clip: "np.clip", np.sort: "np.sort", np.argmax: "np.argmax", np.argmin: "np.argmin",
    np.median: "np.median", np.percentile: "np.percentile", np.quantile: "np.quantile",
    np.where: "np.where", np.argsort: "np.argsort", np.partition: "np.partition",
}
# Copies that would strip the tracer: wrapped while the traced call runs, so tracing goes on.
_COPIES = ("asarray", "array", "asanyarray", "ascontiguousarray", "copy", "atleast_1d",
           "atleast_2d")


def _log_of(arrays: tuple[Any, ...]) -> list[str]:
    return next((a.log for a in arrays if isinstance(a, _Traced)), [])


def _untraced(arrays: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.view(np.ndarray) if isinstance(a, _Traced) else a for a in arrays)


def _traced(result: Any, log: list[str]) -> Any:
    """Wrap a ufunc result (array, NumPy scalar or tuple of them) so that tracing goes on."""
    if isinstance(result, tuple):
        return tuple(_traced(r, log) for r in result)
    if not isinstance(result, (np.ndarray, np.generic)):
        return result
    out = np.asarray(result).view(_Traced)
    out.log = log
    return out


class _Traced(np.ndarray):
    """An ndarray that records the non-analytic operations applied to it and to what derives
    from it (``__array_ufunc__``, ``__array_function__``); ``.real``, ``.imag`` and ``astype``
    keep tracing but are not recorded: they drop the imaginary part visibly, which checks (b)
    and (c) measure, and complex-step-safe code uses them legitimately (``mu.real`` for the
    running statistics). ``log`` holds ``"unsafe:name"`` and ``"piecewise:name"`` entries."""

    log: list[str]

    def __array_finalize__(self, obj: Any) -> None:
        self.log = getattr(obj, "log", [])

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out", ())
        log = _log_of(inputs + out)
        label = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        if ufunc.__name__ in _NON_ANALYTIC_UFUNCS:
            log.append(f"unsafe:{label}")
        elif ufunc.__name__ in _PIECEWISE_UFUNCS:
            log.append(f"piecewise:{label}")
        if out:
            kwargs["out"] = _untraced(out)
        result = getattr(ufunc, method)(*_untraced(inputs), **kwargs)
        if out:
            return out[0] if len(out) == 1 else out
        return _traced(result, log)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func in _NON_ANALYTIC_FUNCTIONS:
            self.log.append(f"unsafe:{_NON_ANALYTIC_FUNCTIONS[func]}")
        elif func in _PIECEWISE_FUNCTIONS:
            self.log.append(f"piecewise:{_PIECEWISE_FUNCTIONS[func]}")
        return super().__array_function__(func, types, args, kwargs)

    @property  # type: ignore[misc]
    def real(self) -> Any:  # type: ignore[override]
        return _traced(self.view(np.ndarray).real, self.log)

    @property  # type: ignore[misc]
    def imag(self) -> Any:  # type: ignore[override]
        return _traced(self.view(np.ndarray).imag, self.log)

    def astype(self, dtype: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return _traced(self.view(np.ndarray).astype(dtype, *args, **kwargs), self.log)


def _keeping_trace(copy: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(a: Any, *args: Any, **kwargs: Any) -> Any:
        result = copy(a, *args, **kwargs)
        if isinstance(a, _Traced) and isinstance(result, np.ndarray) \
                and not isinstance(result, _Traced):
            return _traced(result, a.log)
        return result

    return wrapper


@contextlib.contextmanager
def _copies_traced() -> Iterator[None]:
    """``np.asarray`` and friends keep the tracer for the duration of one traced call."""
    saved = {name: getattr(np, name) for name in _COPIES}
    try:
        for name, fn in saved.items():
            setattr(np, name, _keeping_trace(fn))
        yield
    finally:
        for name, fn in saved.items():
            setattr(np, name, fn)


def trace_log(value: Any) -> list[str] | None:
    """The log of operations recorded on a traced array (the probe's), or None for any other."""
    return value.log if isinstance(value, _Traced) else None


@contextlib.contextmanager
def tracing(arrays: dict[str, Any], names: Sequence[str]) -> Iterator[list[str]]:
    """Trace ``arrays[name]`` for each of ``names`` (in place in the dict) with one shared log,
    as the probe traces its input; yields the log. For a forward that runs elsewhere (a worker
    process) than the probe that asked for the trace."""
    log: list[str] = []
    for name in names:
        traced = np.asarray(arrays[name]).view(_Traced)
        traced.log = log
        arrays[name] = traced
    with warnings.catch_warnings(), np.errstate(all="ignore"), _copies_traced():
        warnings.simplefilter("ignore")
        yield log


def _perturbed(problem: _Problem, k: int) -> np.ndarray:
    arr = problem.x.astype(np.complex128)
    arr.flat[k] += 1j * _complex_steps(problem.x.flat[k : k + 1])[0]
    return arr


def _element(problem: _Problem, k: int) -> str:
    return str(tuple(int(i) for i in np.unravel_index(k, problem.x.shape)))


def _raised(problem: _Problem, exc: Exception) -> str:
    """Why a complex evaluation failed; re-raises if ``f`` fails on real input too."""
    _Evaluator(problem).at()  # a genuine error in f propagates unchanged from here
    return f"the forward raised {type(exc).__name__} on complex input ({exc})"


def _probe_first_call(problem: _Problem, k: int) -> str:
    """(a) raising on complex input and (b) dropping the imaginary part visibly."""
    return _complex_call(problem, _perturbed(problem, k))[0]


def _complex_call(problem: _Problem, point: np.ndarray) -> tuple[str, Any]:
    """``f`` at a complex ``point``: why the complex step cannot work there ((a), (b)), or ""
    and the value."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = np.asarray(problem.f(point))
        except Exception as exc:  # any error on complex input means "not complex-step safe"
            return _raised(problem, exc), None
    if any(issubclass(w.category, ComplexWarning) for w in caught):
        return ("the forward casts the perturbed input to a real dtype (ComplexWarning: "
                "the imaginary part is discarded)"), None
    if value.dtype.kind != "c":
        return ("the forward returned a real value for complex input: the imaginary part was "
                "dropped (.real, float() or a cast to a real dtype)"), None
    if value.ndim == 0 and not np.isfinite(value):
        return f"the forward returned {value.item()!r} for complex input", None
    return "", value


def _trace(problem: _Problem, k: int) -> list[str]:
    """(d) the non-analytic and piecewise operations ``f`` applies to its input."""
    probe = _perturbed(problem, k).view(_Traced)
    probe.log = []
    with warnings.catch_warnings(), np.errstate(all="ignore"), _copies_traced():
        warnings.simplefilter("ignore")
        try:
            problem.f(probe)
        except Exception:  # complex input stopped f (np.floor, an int cast): trace the rest
            # on the real input, so an operation after the failing one (a kink) is still known
            real = problem.x.copy(order="K").view(_Traced)
            real.log = []
            with contextlib.suppress(Exception):
                problem.f(real)
            return list(dict.fromkeys(probe.log + real.log))
    return list(dict.fromkeys(probe.log))


def _split(log: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The trace's piecewise and unsafe operation names, each once, in order."""
    def names(kind: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.split(":", 1)[1] for e in log if e.startswith(kind)))

    return names("piecewise:"), names("unsafe:")


def _unsafe_in(log: list[str]) -> str:
    unsafe = [entry.split(":", 1)[1] for entry in log if entry.startswith("unsafe:")]
    if not unsafe:
        return ""
    return (f"the forward calls {unsafe[0]} on the perturbed input (abs, sign, conj, rounding, "
            "np.var/np.std and norms drop or mangle the imaginary part)")


def _disagreement(problem: _Problem, sample: np.ndarray, cs: Estimate, ref: Estimate) -> str:
    """The first element where the complex step is off ``ref`` beyond both bounds + 1e-9."""
    for j, k in enumerate(sample):
        c, r = float(cs.value[j]), float(ref.value[j])
        bound = float(cs.error[j] + ref.error[j])
        where = f"element {_element(problem, int(k))}"
        if c == 0.0 and abs(r) > 2 * bound:
            return (f"the imaginary part is zero at {where} while finite differences give "
                    f"{r:.6g} (the imaginary part was dropped, e.g. by .real, abs or np.var)")
        if abs(c - r) > 2 * bound + _PROBE_RTOL * max(abs(c), abs(r)):
            return (f"complex step ({c:.12g}) and finite differences ({r:.12g} ± {bound:.1g}) "
                    f"disagree at {where} (np.var, abs or .real drop part of the imaginary part, "
                    "or the element sits on an exact tie of a max or comparison, where the two "
                    "differ by design)")
    return ""


def _scatter(problem: _Problem, sample: np.ndarray, noise: float | None,
             reference: Estimate) -> np.ndarray:
    """A second Richardson run on steps 3/4 as large: its difference from the first measures
    the error actually made (the ``noise`` given may miss the forward's conditioning)."""
    ev = _Evaluator(problem)
    xk = problem.x.flat[sample]
    again, _, _ = _richardson_core(
        lambda js, vs: ev.at_many(sample[js], vs), xk,
        0.75 * _richardson_steps(problem.x, sample),
        ev.at(), noise or 0.0,
    )
    return np.abs(again - reference.value)


def _terms_like(problem: _Problem, noise: float | None) -> np.ndarray | None:
    """The size of the derivatives to expect, from the noise level ``ε·Σ|g·out|·κ``: what
    lets the complex step keep its imaginary parts normal numbers at any output scale."""
    return None if not noise else np.full(problem.x.shape, noise / _EPS)


def _probe_agreement(problem: _Problem, sample: np.ndarray, noise: float | None) -> str:
    """(b) a silently zero imaginary part and (c) disagreement with Richardson's central
    differences, whose step follows the natural scale (the classic central step can exceed it,
    e.g. for BatchNorm with ``|mean| ≫ std``, and would blame correct code). A disagreement is
    confirmed with a second Richardson run, whose scatter widens the bound, before it counts:
    agreement never needs the second run, so the common case costs one run."""
    reference = richardson(problem.f, problem.x, indices=sample, noise=noise)
    try:
        cs = complex_step(problem.f, problem.x, indices=sample, terms=_terms_like(problem, noise))
    except Exception as exc:  # see _probe_first_call
        return _raised(problem, exc)
    if not _disagreement(problem, sample, cs, reference):
        return ""
    scatter = _scatter(problem, sample, noise, reference)
    return _disagreement(problem, sample, cs, replace(reference, error=reference.error + scatter))



def _dense_disagreement(problem: _Problem, rng: np.random.Generator,
                        noise: float | None) -> str:
    """(e) the complex step along one dense random direction (it touches every element, so an
    operation on one column of the output cannot hide from it) against Richardson's real
    differences along the same direction, confirmed on a second direction 3/4 as long."""
    spread = input_spread(problem.x)
    u = rng.standard_normal(problem.x.shape) * spread

    def along(scale: float) -> Callable[[Any], Any]:
        return lambda t: problem.f(problem.x + (t * scale) * u)

    try:
        cs = directional(along(1.0), method="complex",
                         terms=None if not noise else noise / _EPS)
    except Exception as exc:  # see _probe_first_call
        return _raised(problem, exc)
    real = directional(along(1.0), method="richardson", noise=noise)
    c, r = float(cs.value), float(real.value)
    bound = float(cs.error + real.error)
    if not (np.isfinite(r) and np.isfinite(bound)):
        return ""  # no real estimate along this direction: (a)-(c) decide
    if abs(c - r) <= 2 * bound + _PROBE_RTOL * max(abs(c), abs(r)):
        return ""
    again = directional(along(0.75), method="richardson", noise=noise)
    bound += abs(float(again.value) / 0.75 - r)
    if abs(c - r) <= 2 * bound + _PROBE_RTOL * max(abs(c), abs(r)):
        return ""
    return (f"along a random direction the complex step gives {c:.12g} and finite differences "
            f"{r:.12g} ± {bound:.1g}: part of the forward drops the imaginary part (abs, "
            ".real, a norm or a cast on some of the outputs), or the inputs sit on exact ties "
            "of a max or comparison, where the two differ by design)")


_QUICK_STEP = 2.0**-10  # along a direction of the input's spread: t's natural scale is 1


def _extrapolated(phi: Callable[[float], Any], noise: float,
                  h: float = _QUICK_STEP) -> tuple[float, float, float]:
    """``dφ/dt`` at 0 from central differences on steps h, 2h, 4h extrapolated once (fourth
    order), and its bound: the two extrapolations' difference (truncation), plus the rounding
    of ``φ`` (``noise + 8 ε |φ|``, amplified 1.5/h by the extrapolation, doubled). Returns the
    estimate, the bound and the truncation part of it."""
    steps = (h, -h, 2 * h, -2 * h, 4 * h, -4 * h)
    points = getattr(phi, "points", None)  # all six in one batch (one message to a worker)
    found = points(steps) if points is not None else [phi(t) for t in steps]
    values = {t: float(np.real(v)) for t, v in zip(steps, found, strict=True)}
    d = {k: (values[k * h] - values[-k * h]) / (2 * k * h) for k in (1, 2, 4)}
    first, second = (4 * d[1] - d[2]) / 3, (4 * d[2] - d[4]) / 3
    rounding = noise + _F_ULPS * _EPS * max(abs(v) for v in values.values())
    truncation = abs(first - second)
    return first, truncation + 3 * rounding / h + 4 * _EPS * abs(first), truncation


# The points of one batch along a line held at once: six of a 256x64 input are 0.8 MB; at a
# million elements they are evaluated one at a time, each made and freed.
_BATCH_BYTES = 8 << 20


class _Line:
    """``φ(t) = f(x + t u)``; ``points`` evaluates several ``t`` in one batch where ``f`` does
    (``f.batched``: a layer in a worker) and they fit :data:`_BATCH_BYTES`."""

    def __init__(self, problem: _Problem, u: np.ndarray) -> None:
        self.f, self.x, self.u = problem.f, problem.x, u
        batched = getattr(self.f, "batched", False) and 6 * self.x.nbytes <= _BATCH_BYTES
        self.points = self._points if batched else None

    def __call__(self, t: float) -> Any:
        return self.f(self.x + t * self.u)

    def _points(self, steps: Sequence[float]) -> list[Any]:
        many: Any = self.f  # the objective's batch protocol (see __init__)
        return list(many.points([self.x + t * self.u for t in steps]))


def _quick(problem: _Problem, rng: np.random.Generator, noise: float | None) -> tuple[str, bool]:
    """(a) and (b) on one complex call along a dense random direction, whose imaginary part is
    also the complex step along it; then extrapolated central differences along the same
    direction (six evaluations, or twelve when a second step is needed: a smaller one where
    the truncation dominates, a larger one where rounding does). Returns why the complex step
    is unsafe (or ""), and whether the two agree to a bound under :data:`_QUICK_BOUND`
    relative. When they do not (a
    disagreement, or a forward too noisy or too curved for these steps) the thorough tests
    decide."""
    spread = input_spread(problem.x)
    u = rng.standard_normal(problem.x.shape) * spread
    h = float(_complex_steps(np.zeros(1), None if not noise else noise / _EPS)[0])
    point = problem.x.astype(np.complex128)
    point.imag = h * u
    reason, value = _complex_call(problem, point)
    if reason or np.ndim(value) != 0:
        return reason, False
    c = float(np.imag(value)) / h
    step = _QUICK_STEP
    for _ in range(2):  # the first step, then one eighth or eight times it, whichever helps
        try:
            with np.errstate(all="ignore"):
                r, bound, truncation = _extrapolated(_Line(problem, u), noise or 0.0, step)
        except Exception:  # the thorough tests say why
            return "", False
        size = max(abs(c), abs(r))
        if not (np.isfinite(r) and np.isfinite(bound)):
            return "", False
        if bound <= _QUICK_BOUND * size:
            return "", abs(c - r) <= 2 * bound + _PROBE_RTOL * size
        step = step / 8 if truncation > bound / 2 else step * 8
    return "", False


@dataclass(frozen=True)
class Probe:
    """What :func:`probe` found: whether the complex step is exact for ``f`` at ``x``."""

    safe: bool
    reason: str  # "complex step unsafe: ..." when not safe; "" when safe
    piecewise: tuple[str, ...]  # operations exact away from ties (kinks possible there)
    unsafe: tuple[str, ...] = ()  # operations that break the complex step (abs, sign, var...)
    quick: bool = False  # safe by the quick comparison only (see :func:`probe`'s ``quick``)


def probe(f: Callable[[np.ndarray], Any], x: Any, *, seed: int = 0,
          noise: float | None = None, quick: bool = False) -> Probe:
    """Whether the complex step can be trusted on ``f`` at ``x``, why not, and which piecewise
    operations (max, comparisons, clip: exact for the complex step away from ties) it uses.

    Checks, in order: (d) ``f``, run once on an ndarray subclass that records the operations
    applied to arrays derived from its input (also through ``np.asarray``/``np.array`` copies,
    which are wrapped for that one call), uses one that drops or mangles the imaginary part
    (``abs``, ``sign``, ``conj``, rounding, ``np.var``/``np.std``, ``np.linalg.norm``); ``.real``
    and casts are followed but left to (b) and (c), as they are how safe code keeps side
    outputs such as running statistics real; comparisons, ``maximum``/``minimum``, ``np.max``,
    ``clip`` and sorting are recorded as piecewise (NumPy orders complex numbers by their real
    parts first, so they select exactly and carry the selected imaginary part);
    (a) ``f`` raises on complex input; (b) the imaginary part is dropped visibly (a
    ``ComplexWarning``, a real result, or ``Im f = 0`` where central differences see a slope);
    (c) the complex step disagrees with Richardson's central differences at three seeded
    elements beyond the two bounds plus 1e-9 relative (a disagreement is confirmed by a second
    run on steps 3/4 as large, whose scatter widens the bound); (e) the same comparison along one
    dense random direction, which no operation on part of the output can escape.

    Parameters
    ----------
    f : callable
        ``f(arr) -> scalar``.
    x : array of float
        Point of evaluation; never modified.
    seed : int
        Seeds the elements compared in (c) and the direction in (e).
    noise : float, optional
        Bound on the absolute rounding error of ``f`` near ``x``, for central differences.
    quick : bool
        Make (a), (b) and (e) on one dense complex call, against extrapolated central
        differences (seven evaluations in all, against 15 to 60 for (c) and (e)): agreement
        to a bound under 1e-8 relative makes the probe ``safe`` with ``quick=True``; anything else
        runs the full tests. A dropped part of the imaginary part below that bound can pass
        the quick test: a caller that would fail a gradient on a quick probe's word should
        probe again without ``quick``.

    Returns
    -------
    Probe

    Raises
    ------
    InvalidArgument
        As :func:`central`, and for a negative or non-integer ``seed``.

    Examples
    --------
    >>> x = np.array([1.0, -2.0, 3.0])
    >>> probe(lambda a: np.sum(a ** 3), x, quick=True).quick
    True
    >>> probe(lambda a: np.sum(np.maximum(a, 0) ** 2), x).piecewise
    ('np.maximum',)
    >>> probe(lambda a: np.sum(np.abs(a)), x).reason[:47]
    'complex step unsafe: the forward calls np.absol'
    """
    problem = _validate(f, x, None)
    noise = _validate_noise(noise)
    rng = np.random.default_rng(_validate_seed(seed))
    sample = np.sort(rng.choice(problem.x.size, min(_PROBE_SAMPLES, problem.x.size), replace=False))
    if sample.size == 0:
        return Probe(True, "", ())
    k = int(sample[0])
    log = _trace(problem, k)
    piecewise, unsafe = _split(log)
    reason = _unsafe_in(log)
    if not reason and quick:
        reason, agree = _quick(problem, np.random.default_rng(seed), noise)
        if agree:
            return Probe(True, "", piecewise, unsafe, quick=True)
    reason = (reason or _probe_first_call(problem, k) or _probe_agreement(problem, sample, noise)
              or _dense_disagreement(problem, rng, noise))
    return Probe(not reason, f"complex step unsafe: {reason}" if reason else "", piecewise,
                 unsafe)


def screen(f: Callable[[np.ndarray], Any], x: Any, *, seed: int = 0) -> Probe:
    """The two-call part of :func:`probe`: the traced call (d) and the first complex call (a),
    (b), without the agreement tests. For checks that probe the agreement once, jointly over all
    inputs, and screen each input alone (perturbing one input can take other code paths than
    perturbing all: an output array made real by a real input discards the imaginary part).

    Parameters
    ----------
    f : callable
        ``f(arr) -> scalar``.
    x : array of float
        Point of evaluation; never modified.
    seed : int
        Seeds the element perturbed.

    Returns
    -------
    Probe

    Examples
    --------
    >>> screen(lambda a: np.sum(a.real ** 2), np.ones(3)).safe
    False
    """
    problem = _validate(f, x, None)
    if problem.x.size == 0:
        return Probe(True, "", ())
    rng = np.random.default_rng(_validate_seed(seed))
    k = int(rng.integers(problem.x.size))
    log = _trace(problem, k)
    piecewise, unsafe = _split(log)
    reason = _unsafe_in(log) or _probe_first_call(problem, k)
    return Probe(not reason, f"complex step unsafe: {reason}" if reason else "", piecewise,
                 unsafe)


def operations(f: Callable[[np.ndarray], Any], x: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The piecewise and the unsafe operations ``f`` applies to its input (one traced call).

    Parameters
    ----------
    f : callable
        ``f(arr) -> scalar``.
    x : array of float
        Point of evaluation; never modified.

    Returns
    -------
    piecewise, unsafe : tuple of str

    Examples
    --------
    >>> operations(lambda a: np.sum(np.abs(np.maximum(a, 0))), np.ones(3))
    (('np.maximum',), ('np.absolute',))
    """
    problem = _validate(f, x, None)
    if problem.x.size == 0:
        return (), ()
    log = _trace(problem, 0)
    return _split(log)


def probe_complex_step(
    f: Callable[[np.ndarray], Any], x: Any, *, seed: int = 0, noise: float | None = None
) -> tuple[bool, str]:
    """Whether the complex step can be trusted on ``f`` at ``x``, and why not (:func:`probe`).

    Parameters
    ----------
    f : callable
        ``f(arr) -> scalar``.
    x : array of float
        Point of evaluation; never modified.
    seed : int
        Seeds the elements and the direction compared.
    noise : float, optional
        Bound on the absolute rounding error of ``f`` near ``x``, for central differences.

    Returns
    -------
    safe : bool
    reason : str
        ``"complex step unsafe: ..."`` naming the cause when not safe; ``""`` when safe.

    Raises
    ------
    InvalidArgument
        As :func:`central`, and for a negative or non-integer ``seed``.

    Examples
    --------
    >>> x = np.array([1.0, -2.0, 3.0])
    >>> probe_complex_step(lambda a: np.sum(a**2), x)
    (True, '')
    >>> safe, why = probe_complex_step(lambda a: np.sum(np.abs(a)), x)
    >>> safe, why[:52]
    (False, 'complex step unsafe: the forward calls np.absolute o')
    """
    found = probe(f, x, seed=seed, noise=noise)
    return found.safe, found.reason
