"""The scalar the numerical side differentiates, ``L(inputs) = <g, forward(inputs)>``, its noise
model, and the choice of engine.

``L`` is evaluated in float64 (complex128 for the complex step) on copies of the inputs; a
second objective in extended precision (long double, complex long double) confirms estimates
that would make an element fail (:mod:`gradcheck.tolerance`).

**Noise** of one evaluation of ``L`` near ``x``, per element ``k`` of the input differentiated::

    noise_k = ε · Σ|g·out| · max(κ_k, κ_other)

``κ_k = max(1, |x_k|) / s_k`` is the element's conditioning, with ``s_k`` its local scale
(:func:`gradcheck.numeric.local_scale`: a BatchNorm channel at offset 1e4 with spread 1e-3 loses
seven digits in ``x - mean``, its neighbour at offset 0 none); ``κ_other`` is the largest of the
other inputs' (they are held fixed, but their rounding enters every evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gradcheck import numeric
from gradcheck._engine.call import (
    Run,
    Spec,
    as_output,
    call_forward,
    call_forward_many,
    call_forward_points,
)
from gradcheck.errors import LayerError
from gradcheck.numeric import local_scale

_EPS = float(np.finfo(np.float64).eps)


def objective(spec: Spec, inputs: Mapping[str, np.ndarray], name: str, g: np.ndarray,
              copy_inputs: bool) -> Any:
    """``L(arr) = <g, forward(inputs with `name` = arr)>``, with ``L.many(base, ks, values)``
    for a batch of one-element changes (:class:`gradcheck.numeric` engines use it).

    The other inputs are shared read-only arrays (a forward that writes to them raises) unless
    the analytic pass caught the forward mutating its inputs; then each call gets copies.
    """
    return _Objective(spec, inputs, name, g, copy_inputs)


class _Objective:
    def __init__(self, spec: Spec, inputs: Mapping[str, np.ndarray], name: str, g: np.ndarray,
                 copy_inputs: bool) -> None:
        self.spec, self.name, self.g, self.copy_inputs = spec, name, g, copy_inputs
        self.others = {k: (v if copy_inputs else _read_only(v)) for k, v in inputs.items()}
        self.inner = _Inner(g.reshape(-1))
        self.context = f"numerical pass for `{name}`"

    def __call__(self, arr: np.ndarray) -> Any:
        local = ({k: v.copy(order="K") for k, v in self.others.items()} if self.copy_inputs
                 else dict(self.others))
        local[self.name] = arr  # in the inputs' order: the dict was made from them
        out, _ = call_forward(self.spec, local, self.context)
        return self._value(out)

    @property
    def batched(self) -> bool:
        """Whether the layer evaluates batches of points itself (one message to a worker)."""
        return getattr(self.spec.layer, "forward_many", None) is not None

    def points(self, arrs: Iterable[np.ndarray]) -> list[Any]:
        """``L`` at several values of the input: one batch where :attr:`batched`, else one by
        one."""
        if not self.batched:
            return [self(arr) for arr in arrs]
        local = [{**self.others, self.name: arr} for arr in arrs]
        outs = call_forward_points(self.spec, local, self.context, self.copy_inputs)
        return [self._value(out) for out in outs]

    def many(self, base: np.ndarray, ks: np.ndarray, values: np.ndarray) -> list[Any]:
        """``L`` at each one-element change, in batches whose outputs stay under
        :data:`_BATCH_BYTES` (each reduced to its value before the next batch: 256 outputs of
        a 1024x256 layer held at once took 1 GB), or in one batch for a layer whose outputs
        stream as they are read (``forward_perturbed``: a worker sizes its own messages)."""
        per = max(1, _BATCH_BYTES // max(1, self.g.size * 16))  # a complex128 output each
        if getattr(self.spec.layer, "forward_perturbed", None) is not None:
            per = max(1, len(ks))  # a layer that streams its outputs (a worker): one batch
        found: list[Any] = []
        for lo in range(0, len(ks), per):
            outs = call_forward_many(self.spec, self.others, self.name, base, ks[lo:lo + per],
                                     values[lo:lo + per], self.context, self.copy_inputs)
            found += [self._value(out) for out in outs]
        return found

    def _value(self, out: Any) -> Any:
        out = np.asarray(out)
        if out.shape != self.g.shape:
            raise LayerError(
                f"{self.spec.name}: forward returned shape {out.shape} in the numerical pass "
                f"for `{self.name}`, but {self.g.shape} in the analytic pass: the output shape "
                "must not depend on the input's values"
            )
        return self.inner(out.reshape(-1))


_BATCH_BYTES = 4 << 20  # outputs of one batch of one-element changes held at once

# Below this many elements BLAS computes a dot product in the calling thread (OpenBLAS threads
# its dot kernels only above 10000), and ``np.vdot`` beats any NumPy expression by 4x.
_BLAS_DOT_MAX = 8192


class _Inner:
    """``<g, out>`` for a real ``g``, never through a multithreaded BLAS.

    ``np.dot`` calls a multithreaded BLAS above 10000 elements, which on a loaded machine (or
    under pytest-xdist, two checks per two cores) was 50x slower than one thread for 16k
    elements. Below :data:`_BLAS_DOT_MAX` elements ``np.vdot`` runs single-threaded (on ``g``
    made complex once, for a complex ``out``); above it a product and NumPy's pairwise sum, in
    one pass for a complex ``out``. (``einsum`` needed two passes on strided views for a
    complex ``out``, and its dispatch alone cost more than a small layer's forward.)
    """

    def __init__(self, g: np.ndarray) -> None:
        self.g = g
        self._complex: np.ndarray | None = None

    def __call__(self, out: np.ndarray) -> Any:
        g = self.g
        if g.dtype != np.float64 or out.dtype not in (np.float64, np.complex128):
            return np.multiply(g, out).sum()  # long double, or a layer that casts
        if out.dtype == np.complex128:
            if out.size > _BLAS_DOT_MAX:
                return np.multiply(out, g).sum()
            if self._complex is None:
                self._complex = g.astype(np.complex128)
            return np.vdot(self._complex, out)  # conjugates the first: a real g is unchanged
        if out.size > _BLAS_DOT_MAX:
            return np.multiply(g, out).sum()
        return np.vdot(g, out)


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class Reference:
    """The float64 run every gradient's numerical side starts from (made once per check)."""

    inputs: dict[str, np.ndarray]
    g: np.ndarray
    out: np.ndarray
    total: float  # Σ|g·out|: the size of the terms one evaluation of L sums
    copy_inputs: bool  # the forward mutates its inputs: give each evaluation copies
    random: str = ""  # why the forward is not a function of its inputs, if it is not
    observed: float = 0.0  # the noise of one evaluation of L, measured (see observed_noise)
    confirmed: bool = False  # ... confirmed as noise on smaller steps (see Observed)
    signal: bool = False  # ... or shown to be the forward's own shape
    differs: str = ""  # why the float64 reference is not the function the layer computes
    # per input, made once: the local scale, the conditioning (see the module docstring) and
    # the natural size of an element's share of L (see gradcheck.tolerance)
    _scales: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    _kappas: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    _naturals: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def natural(self, name: str) -> np.ndarray:
        """``N_k``, flat: one element's share of ``L`` relative to its local scale."""
        if name not in self._naturals:
            share = self.total / max(1, self.out.size)
            self._naturals[name] = (share / self.scale(name)).reshape(-1)
        return self._naturals[name]

    def scale(self, name: str) -> np.ndarray:
        """:func:`gradcheck.numeric.local_scale` of input ``name``."""
        if name not in self._scales:
            self._scales[name] = local_scale(self.inputs[name])
        return self._scales[name]

    def conditioning(self, name: str) -> np.ndarray:
        """``κ_k = max(1, |x_k|) / s_k`` of input ``name``, per element."""
        if name not in self._kappas:
            x = self.inputs[name]
            self._kappas[name] = np.maximum(1.0, np.maximum(1.0, np.abs(x)) / self.scale(name))
        return self._kappas[name]


def reference(spec: Spec, run: Run) -> Reference:
    inputs64 = {k: v.astype(np.float64) for k, v in spec.inputs.items()}
    g64 = run.g.astype(np.float64)
    context = "float64 reference"
    mutates = any(p.startswith("forward modified its input") for p in run.problems)
    if run.out.dtype == np.float64 and not mutates and all(
            v.dtype == np.float64 for v in spec.inputs.values()):
        out64 = run.out  # the analytic pass ran on these very values
    else:
        out64 = as_output(spec, call_forward(spec, ref_inputs_copy(inputs64), context)[0], context)
    if out64.shape != g64.shape:
        raise LayerError(
            f"{spec.name}: forward returned shape {out64.shape} in float64, but {g64.shape} in "
            "the analytic pass: the output shape must not depend on the input's values or dtype"
        )
    total = float(np.sum(np.abs(g64 * out64)))
    again = as_output(spec, call_forward(spec, ref_inputs_copy(inputs64), context)[0], context)
    ref = Reference(inputs64, g64, out64, total, mutates, _randomness(out64, again))
    if ref.random:
        return ref
    seen = observed_noise(spec, ref)
    ref = replace(ref, observed=seen.sigma, confirmed=seen.confirmed, signal=seen.signal)
    return replace(ref, differs=_differs(spec, run, ref))


def _differs(spec: Spec, run: Run, ref: Reference) -> str:
    """Why the float64 reference computes another function than the layer in its own dtype
    (a ``finfo(x.dtype).eps`` guard, a dtype branch), or "": the numerical side differentiates
    the reference, so where it differs no discrepancy can be blamed on the backward."""
    if run.out.dtype == np.float64 or run.out.shape != ref.out.shape:
        return ""
    gap = abs(float(np.sum(ref.g * ref.out)) - float(np.sum(ref.g * run.out.astype(np.float64))))
    allowance = witness_allowance(spec, ref)
    if gap <= allowance:
        return ""
    return (f"the float64 run of the forward, which the numerical side differentiates, computes "
            f"another function than the layer's {run.out.dtype} run (<dout, out> moves by "
            f"{gap:.3g}, beyond the {allowance:.3g} rounding allows: a dtype-dependent constant, "
            "branch or eps guard?), so no discrepancy can be blamed on the backward")


# Noise is measured from differences of order 6 to 8 along one random direction, on steps of
# 2^-12 of each input's spread: large enough to cross many units in the last place of a float32
# or float16 intermediate (smaller steps see a quantised forward as constant), small enough that
# the smooth part's eighth difference stays far below float64's rounding for most layers. Where
# what it measures is far above float64's rounding, it is measured again on a 16 times smaller
# step. Independent noise does not shrink with the step, and a staircase about 4 times (the
# jumps crossed, as the square root); a kink's differences shrink 16 times or more, and a smooth
# part's 16^6 times (a forward periodic on the step's own scale): that one was signal, and is
# measured again lower, up to _NOISE_LEVELS times. What is left is measured once more on steps
# scaled by each element's own magnitude, which noise survives too (a staircase loosely: its
# smaller elements cross fewer steps); a function of an input's direction near the origin (a
# norm of 1e-9 under an eps clamp) or a pole crossed looks the same at every step above that
# magnitude but is smooth on it, and falls by ten orders or more: signal. Kinks within a step
# of the inputs keep their differences on one smaller step, so noise is confirmed (trusted where
# the forward has kinks) only when kept on two in a row. (Kinks at 1e-6 beside the inputs still
# pass this now and then: their elements are then inconclusive, never failed. A third step
# would lose a float32 intermediate's noise, which a max in the forward leaves a false alarm.)
_NOISE_STEP = 2.0**-12
_NOISE_POINTS = 9
_NOISE_ORDERS = (6, 7, 8)
_NOISE_SHRINK = 16.0
_NOISE_KEEPS = 1 / 4  # noise or a staircase: kept on the smaller step (a kink keeps 1/16)
_NOISE_SIGNAL = 1 / 64  # fell further than this on the smaller or the own step: signal
_NOISE_LEVELS = 3
_NOISE_KEPT = 1  # smaller steps after the first on which confirmed noise must be kept


@dataclass(frozen=True)
class Observed:
    """The forward's measured noise: one evaluation of ``L``'s deviation; whether a 16 times
    smaller step and one on the elements' own magnitudes confirmed it as noise, or showed it is
    the forward's own shape (a kink neither confirms nor shows)."""

    sigma: float = 0.0
    confirmed: bool = False
    signal: bool = False


def observed_noise(spec: Spec, ref: Reference) -> Observed:
    """The noise of one evaluation of ``L`` near the inputs, measured (Hamming's difference
    table, as in Moré & Wild's ECnoise): for independent noise of deviation ``σ``, the ``k``-th
    differences have ``E[(Δᵏf)²] = σ² (2k)!/(k!)²``; the median over orders 6, 7 and 8
    (8 forward calls per check; where the noise is in excess, 8 more per smaller step and 8 to
    test it on the elements' own magnitudes, at most 50 in all).

    This is what lets a float64 layer that computes in float32 or float16 inside be judged by
    its real precision rather than the one its inputs declare.
    """
    f, v = joint_objective(spec, ref)
    rng = np.random.default_rng([spec.seed, 0x6E6F6973])
    u, own = np.empty(v.size), np.empty(v.size)
    start = 0
    for name in spec.wrt:
        x = ref.inputs[name]
        s = numeric.spread(x)
        r = rng.uniform(-1.0, 1.0, x.size)
        u[start:start + x.size] = r * s
        own[start:start + x.size] = r * np.abs(x.reshape(-1))
        start += x.size
    centre = float(np.sum(ref.g * ref.out))
    excess = NOISE_EXCESS * max(float(np.max(noise_model(ref, k))) for k in spec.wrt)
    step = _NOISE_STEP
    sigma = _deviation_along(f, v, u, step, centre)
    for _ in range(_NOISE_LEVELS):
        if sigma is None or sigma <= excess:
            return Observed(sigma or 0.0)
        smaller = _deviation_along(f, v, u, step / _NOISE_SHRINK, None)
        if smaller is None:
            break
        step /= _NOISE_SHRINK
        if smaller >= _NOISE_SIGNAL * sigma:
            mine = _deviation_along(f, v, own, step, centre)
            if mine is None or mine < _NOISE_SIGNAL * smaller:
                return Observed(max(sigma, smaller), signal=True)
            return Observed(max(sigma, smaller),
                            confirmed=_keeps(f, v, u, step, centre, sigma, smaller))
        sigma = smaller
    return Observed(sigma or 0.0, signal=sigma is not None and sigma > excess)


def _keeps(f: Any, v: np.ndarray, u: np.ndarray, step: float, centre: float, sigma: float,
           smaller: float) -> bool:
    """Whether the noise is kept on two 16 times smaller steps in a row, each on a grid off the
    inputs: a kink within a step of them (offsets of 1e-6 to 1e-3 from a clip's bounds) gives
    differences of about its distance ``d`` on a grid through them at any step above ``d``."""
    for _ in range(_NOISE_KEPT):
        if smaller < _NOISE_KEEPS * sigma:
            return False
        step /= _NOISE_SHRINK
        found = _deviation_along(f, v, u, step, None)
        if found is None:
            return False
        sigma, smaller = smaller, found
    return smaller >= _NOISE_KEEPS * sigma


def _deviation_along(f: Any, v: np.ndarray, u: np.ndarray, step: float,
                     centre: float | None) -> float | None:
    """The deviation on the points ``v + j·step·u``, ``j = 0..8`` (``centre`` is ``L(v)``), or,
    without ``centre``, on ``j + 1/2``: a grid off the inputs, on which a kink within ``d`` of
    them gives differences of the step's size, not ``d``'s (9 calls)."""
    offsets = [j + (0.0 if centre is not None else 0.5) for j in range(_NOISE_POINTS)]
    ahead = offsets[1:] if centre is not None else offsets
    with np.errstate(all="ignore"):
        try:
            found = f.points(v + (j * step) * u for j in ahead)  # made one at a time
        except LayerError:
            return None
    first = [] if centre is None else [centre]
    return _deviation(np.array(first + [float(np.real(x)) for x in found]))


def _deviation(table: np.ndarray) -> float:
    top = float(np.max(np.abs(table)))
    if not np.all(np.isfinite(table)) or top == 0.0:
        return 0.0
    table = table / top  # scaled: squares of outputs near 1e200 must not overflow
    sigmas = []
    for k in _NOISE_ORDERS:
        diff = np.diff(table, n=k)
        gamma = math.factorial(k) ** 2 / math.factorial(2 * k)
        sigmas.append(math.sqrt(gamma * float(np.mean(diff * diff))))
    return top * float(np.median(sigmas))


def internal_precision(ref: Reference, names: Sequence[str], smooth: bool) -> float:
    """The unit roundoff the layer's forward shows, when it is far coarser than float64's
    (a float32 or float16 intermediate, a quantising offset) and can be trusted: else 0."""
    if not trusted(ref, smooth):
        return 0.0
    model = max(float(np.max(noise_model(ref, k))) for k in names)
    if ref.observed <= NOISE_EXCESS * model or ref.total == 0.0:
        return 0.0
    return ref.observed / ref.total


WITNESS_AGREEMENT = 64.0


def witness_allowance(spec: Spec, ref: Reference) -> float:
    """How far a wider-dtype run's ``<g, out>`` may be from the layer's own and still compute
    the same function: the layer dtype's rounding at the inputs' conditioning, and the measured
    noise, times :data:`WITNESS_AGREEMENT`."""
    layer_eps = float(np.finfo(np.result_type(*spec.inputs.values())).eps)
    kappa = max(float(np.max(_own_conditioning(ref, k))) for k in ref.inputs)
    return WITNESS_AGREEMENT * (layer_eps * ref.total * kappa + ref.observed)


def _own_conditioning(ref: Reference, name: str) -> np.ndarray:
    """``max(|x_k|, s_k) / s_k``: the conditioning of the inputs' own values, without the unit
    that :meth:`Reference.conditioning` assumes the forward may add (an input of 1e-4 whose rows
    are normalised with ``finfo(x.dtype).eps`` is well conditioned on its own scale, and a
    guard that changes with the dtype must show)."""
    x, s = np.abs(ref.inputs[name]), ref.scale(name)
    return np.maximum(x, s) / s


def _precision_note(ref: Reference, unit: float) -> str:
    like = ("float16 or bfloat16" if unit >= 2e-4 else "float32" if unit >= 1e-9
            else "a precision narrower than float64")
    return (f"the forward's measured noise ({ref.observed:.2g} in <dout, out>) is "
            f"{ref.observed / _EPS / ref.total:.3g} times what float64 arithmetic gives: this "
            f"layer computes in about {like} internally (unit roundoff ~{unit:.1g}), and the "
            "numerical side's bounds use the measured noise")


NOISE_EXCESS = 16.0
# A difference table of eight values estimates a deviation to within a factor of about two or
# three (Moré & Wild), and a quantised forward is a staircase rather than independent noise:
# the measured noise counts eight times.
OBSERVED_SAFETY = 8.0  # observed noise this many times the model's: the layer is less precise


def ref_inputs_copy(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fresh copies: a forward that modifies its inputs in place (reported elsewhere) must not
    make its second call see other values and look random."""
    return {k: v.copy(order="K") for k, v in inputs.items()}


def _randomness(first: np.ndarray, second: np.ndarray) -> str:
    """A forward whose two calls on the same inputs differ is not a function of its inputs:
    no numerical derivative of it means anything."""
    if first.shape == second.shape and np.array_equal(first, second):
        return ""
    diff = (float(np.max(np.abs(first - second))) if first.shape == second.shape
            else float("nan"))
    return (f"the forward is random: two calls on the same inputs returned outputs that differ "
            f"by up to {diff:.3g}, so its gradients cannot be checked; fix its seed (for "
            "example dropout_param['seed'], or a seeded np.random.default_rng inside the layer)")


def noise_model(ref: Reference, name: str) -> np.ndarray:
    """``noise_k`` of the module docstring, one per element of input ``name``."""
    others = [float(np.max(ref.conditioning(k))) for k in ref.inputs if k != name]
    kappa = np.maximum(ref.conditioning(name), max([1.0, *others]))
    return _EPS * ref.total * kappa


def trusted(ref: Reference, smooth: bool) -> bool:
    """Whether the measured noise is the layer's precision: confirmed on smaller steps, or, in a
    forward without kinks, not shown to be its shape (a quantised one looks flat on small steps,
    and nothing else there measures like noise)."""
    return ref.confirmed or (smooth and not ref.signal)


def noise(ref: Reference, name: str, smooth: bool = False) -> np.ndarray:
    """``noise_k``: the model's, or the measured noise where that is far larger (a layer that
    computes in a narrower dtype inside than its inputs declare) and can be :func:`trusted`
    (dense kinks near the inputs measure like noise on one step, and a larger step would cross
    them)."""
    model = noise_model(ref, name)
    if trusted(ref, smooth) and ref.observed > NOISE_EXCESS * float(np.max(model)):
        return np.maximum(model, OBSERVED_SAFETY * ref.observed)
    return model


@dataclass(frozen=True)
class Numeric:
    """What the numerical side needs for one gradient."""

    f: Any
    x: np.ndarray
    noise: np.ndarray
    method: str
    reason: str
    witness: Any  # the objective in extended precision, or None (no wider dtype here)
    piecewise: tuple[str, ...] = ()  # operations exact away from ties: kinks are possible
    nonsmooth: bool = False  # the forward uses operations with kinks (abs, max, comparisons)
    comparable: bool = True  # the reference computes the layer's function (Reference.differs)


class _Deferred:
    """An objective built on its first call (the wide one is needed only to confirm a failure,
    and building it copies every input to long double)."""

    def __init__(self, build: Any) -> None:
        self._build: Any = build
        self._f: Any = None

    def __call__(self, arr: np.ndarray) -> Any:
        if self._f is None:
            self._f = self._build()
        return self._f(arr)


def _witness_objective(spec: Spec, ref: Reference, name: str) -> Any:
    wide = np.dtype(np.longdouble)
    if np.finfo(wide).eps >= _EPS:
        return None

    def build() -> Any:
        inputs = {k: v.astype(wide) for k, v in ref.inputs.items()}
        return objective(spec, inputs, name, ref.g.astype(wide), copy_inputs=True)

    return _Deferred(build)


def joint_objective(spec: Spec, ref: Reference,
                    names: Sequence[str] | None = None) -> tuple[Any, np.ndarray]:
    """``L`` of the checked inputs (or ``names``) at once, as a function of their concatenation:
    one probe of it covers every input of the check (its dense direction moves them all), and
    one direction of it checks them all together."""
    names = list(spec.wrt if names is None else names)
    shapes = [ref.inputs[k].shape for k in names]
    bounds = np.cumsum([0] + [ref.inputs[k].size for k in names])
    fixed = {k: (v.copy(order="K") if ref.copy_inputs else _read_only(v))
             for k, v in ref.inputs.items()
             if k not in names}
    inner = _Inner(ref.g.reshape(-1))

    def local(v: np.ndarray) -> dict[str, np.ndarray]:
        found = dict(fixed)
        for k, shape, lo, hi in zip(names, shapes, bounds[:-1], bounds[1:], strict=True):
            found[k] = _laid_out(v[lo:hi].reshape(shape), ref.inputs[k])
        return found

    def value(out: Any) -> Any:
        out = np.asarray(out)
        if out.shape != ref.g.shape:
            raise LayerError(f"{spec.name}: forward returned shape {out.shape} in the joint "
                             f"numerical pass, but "
                             f"{ref.g.shape} in the analytic pass")
        return inner(out.reshape(-1))

    def f(v: np.ndarray) -> Any:
        return value(call_forward(spec, local(v), "joint numerical pass")[0])

    def points(vs: Iterable[np.ndarray]) -> list[Any]:
        """``f`` at several points: in one batch for a layer that evaluates batches itself (one
        message to a worker); else one by one, each point and its output freed before the next
        is made (nine outputs of 8M elements held at once took 0.6 GB)."""
        if getattr(spec.layer, "forward_many", None) is None:
            return [f(v) for v in vs]
        outs = call_forward_points(spec, [local(v) for v in vs], "joint numerical pass",
                                   ref.copy_inputs)
        return [value(out) for out in outs]

    f.points = points  # type: ignore[attr-defined]
    f.batched = getattr(spec.layer, "forward_many", None) is not None  # type: ignore[attr-defined]
    v = np.concatenate([ref.inputs[k].reshape(-1) for k in names])
    return f, v


def _laid_out(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``values`` in ``like``'s memory layout (a Fortran-ordered input stays Fortran-ordered: a
    layer that ravels with ``order="A"`` or reads ``.flags`` computes by its layout)."""
    if values.flags.c_contiguous and like.flags.c_contiguous:
        return values
    out = np.empty_like(like, dtype=values.dtype)
    out[...] = values
    return out


def probe_check(spec: Spec, ref: Reference, quick: bool = True) -> tuple[numeric.Probe, int]:
    """The complex-step probe, once per check, and the evaluations it used (``quick``: see
    :func:`gradcheck.numeric.probe`; a check probes again in full before it fails a gradient)."""
    f, v = joint_objective(spec, ref)
    counted = _Counted(f)
    level = max(float(np.max(noise(ref, k))) for k in spec.wrt)
    return numeric.probe(counted, v, seed=spec.seed, noise=level, quick=quick), counted.calls


class _Counted:
    def __init__(self, f: Any) -> None:
        self.f, self.calls = f, 0

    def __call__(self, arr: np.ndarray) -> Any:
        self.calls += 1
        return self.f(arr)


def trace_check(spec: Spec, ref: Reference) -> numeric.Probe:
    """The operations the forward applies to the inputs, traced once over all of them (a
    superset of what perturbing one input shows), for a check whose method is given."""
    f, v = joint_objective(spec, ref)
    piecewise, unsafe = numeric.operations(f, v)
    return numeric.Probe(True, "", piecewise, unsafe)


def nonsmooth(found: numeric.Probe) -> bool:
    """Whether the forward uses operations with kinks (max, comparisons, abs, rounding)."""
    return bool(found.piecewise or set(found.unsafe) & _KINKED)


def prepare(spec: Spec, ref: Reference, name: str, found: numeric.Probe | None = None,
            alone: bool = True) -> Numeric:
    """The numerical side of input ``name``; ``found`` is the check's probe or trace, and
    ``alone`` says the evaluations will perturb ``name`` alone (for ``method="auto"`` that takes
    a screen of ``name`` by itself: it can take other code paths than perturbing all inputs)."""
    x64 = ref.inputs[name]
    f = objective(spec, ref.inputs, name, ref.g, copy_inputs=ref.copy_inputs)
    noise_k = noise(ref, name)
    method, reason = spec.method, ""
    if found is None:
        if method == "auto":
            found = numeric.probe(f, x64, seed=spec.seed, noise=float(np.max(noise_k)))
        else:
            found = numeric.Probe(True, "", *numeric.operations(f, x64))
    elif method == "auto" and alone:
        found = _combined(found, numeric.screen(f, x64, seed=spec.seed))
    if method == "auto":
        method = "complex" if found.safe else "richardson"
        reason = _reason(found)
    smooth = not nonsmooth(found)
    inside = internal_precision(ref, [name], smooth)
    if inside:
        reason = "; ".join(filter(None, [reason, _precision_note(ref, inside)]))
    if ref.differs:
        reason = "; ".join(filter(None, [reason, ref.differs]))
    return Numeric(f, x64, noise(ref, name, smooth), method, reason,
                   _witness_objective(spec, ref, name), found.piecewise, not smooth,
                   not ref.differs)


# Non-analytic operations that also have kinks (np.var, casts and norms of nonzero vectors do not)
_KINKED = frozenset({"np.absolute", "np.fabs", "np.abs", "np.sign", "np.floor", "np.ceil",
                     "np.rint", "np.trunc", "np.round", "np.around", "np.ptp", "np.heaviside",
                     "np.remainder", "np.fmod", "np.copysign"})


def _combined(joint: numeric.Probe, alone: numeric.Probe) -> numeric.Probe:
    safe = joint.safe and alone.safe
    reason = alone.reason if not alone.safe else joint.reason
    piecewise = tuple(dict.fromkeys(joint.piecewise + alone.piecewise))
    unsafe = tuple(dict.fromkeys(joint.unsafe + alone.unsafe))
    return numeric.Probe(safe, reason, piecewise, unsafe, quick=joint.quick)


def _reason(found: numeric.Probe) -> str:
    if not found.safe:
        return f"auto: {found.reason}; used richardson"
    if found.piecewise:
        return (f"auto: the forward uses {', '.join(found.piecewise)}, which the complex step "
                "follows exactly away from ties (NumPy orders complex numbers by their real "
                "parts); ties are checked as kinks; used complex")
    where = ("along a dense direction" if found.quick
             else "at sampled elements and along a dense direction")
    return ("auto: the complex-step probe passed (no operation dropping the imaginary part, and "
            f"agreement with finite differences {where})")
