"""Second runs of the analytic side that measure its rounding (see :mod:`gradcheck.tolerance`).

The *witness* re-runs the layer's forward and backward in a wider dtype on the same values; the
*terms* run applies the backward to the upstream gradient with random signs, whose result has
the magnitude of the terms each element of the gradient sums; the *linearity* run applies it,
in the layer's own dtype, to the upstream gradient times ``c = 1 + 2⁻⁷ + 2⁻¹⁰`` and ``2c - 1``:
a backward is linear in it, so the second difference of the three is the rounding the backward
actually has (a float64 layer whose backward computes in float16 inside, or returns float16,
shows it here, where the witness runs the same casts and sees none). All are measurements, made
once per check and only when a verdict needs them (:class:`Lazy`), and all fail soft: a layer that
cannot run in the wider dtype (a SciPy function, a cast back to float64, an error) simply has no
witness for those gradients, and the verdict says what it could not measure.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gradcheck._engine.call import STREAM, Run, Spec
from gradcheck._state import safe_deepcopy
from gradcheck.tolerance import witness_dtype

TERM_DRAWS = 4  # random-sign backwards whose RMS is the term magnitude
LINEAR_FACTOR = 1.0 + 2.0**-7 + 2.0**-10  # c and 2c - 1 are exact in float16: c·g rounds once


@dataclass(frozen=True)
class Shadow:
    """What the second runs measured, per gradient name."""

    witness: Mapping[str, np.ndarray] = field(default_factory=dict)  # in the witness dtype
    terms: Mapping[str, np.ndarray] = field(default_factory=dict)  # float64, >= 0
    dtype: str = ""  # the witness dtype, "" when none ran
    note: str = ""  # why some gradient has no witness
    differs: bool = False  # the wider dtype computes another function: no wide run is trusted
    linearity: Mapping[str, np.ndarray] = field(default_factory=dict)  # float64, >= 0


def _quiet_call(fn: Any, *args: Any) -> Any:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args)


def _run(spec: Spec, dtype: np.dtype, g: np.ndarray, extra: Iterable[np.ndarray],
         on_out: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    """Forward once in ``dtype``, then backward with ``g`` and with each upstream in ``extra``;
    also ``on_out`` of the forward's output, applied at once: neither the output nor the
    inputs in ``dtype`` are held through the backwards, and the last backward gets the cache
    itself (no call reads it after), three fewer arrays at the peak of a long double witness."""
    inputs = {k: v.astype(dtype) for k, v in spec.inputs.items()}
    out, cache = _quiet_call(spec.layer.forward, inputs)
    del inputs
    out = np.asarray(out)
    if out.shape != g.shape:
        raise ValueError("output shape differs from the analytic pass")
    seen = on_out(out) if on_out is not None else None
    del out
    found = []
    for (e, fresh), last in _with_last(itertools.chain([(g, False)], ((e, True) for e in extra))):
        given = cache if last else safe_deepcopy(cache)
        upstream = e if fresh and e.dtype == dtype else e.astype(dtype)  # extra: made for it
        # each call's arrays copied before the next: a backward may return one buffer every time
        found.append(_owned(_quiet_call(spec.layer.backward, upstream, given)))
        del given, upstream, e
    main, others = found[0], found[1:]
    if not isinstance(main, Mapping):
        raise TypeError("backward did not return gradients by name")
    return dict(main), [dict(o) if isinstance(o, Mapping) else {} for o in others], seen


def _with_last(items: Iterable[Any]) -> Iterator[tuple[Any, bool]]:
    """Each item and whether it is the last (one item looked ahead)."""
    it = iter(items)
    previous = next(it)
    for item in it:
        yield previous, False
        previous = item
    yield previous, True


def _owned(grads: Any) -> Any:
    if not isinstance(grads, Mapping):
        return grads
    return {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
            for k, v in grads.items()}


def _signed_upstreams(spec: Spec, g: np.ndarray) -> Iterator[np.ndarray]:
    """The term draws' upstreams, made one at a time as the backwards take them."""
    rng = np.random.default_rng([spec.seed, STREAM, 0x7465726D])
    for _ in range(TERM_DRAWS):
        yield g * rng.choice([-1.0, 1.0], size=g.shape)


def _terms(spec: Spec, draws: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    terms = {}
    for name in spec.wrt:
        shape = spec.inputs[name].shape
        arrays = [np.asarray(d.get(name)) for d in draws if d.get(name) is not None]
        arrays = [a for a in arrays if a.shape == shape and a.dtype.kind in "fc"]
        if len(arrays) == len(draws) and arrays:
            rms = _rms(arrays)
            terms[name] = np.where(np.isfinite(rms), rms, 0.0)
    return terms


_SQUARES_SAFE = (1e-290, 1e300)  # a sum of squares in here lost nothing to float64's range


def _rms(arrays: list[np.ndarray]) -> np.ndarray:
    """The root mean square of ``arrays``, element by element, in float64: one accumulator,
    one temporary (a stack of long double squares was 8 times the gradient's memory); the
    elements whose squares leave float64's range (under 1e-145 or over 1e150) again in long
    double."""
    flat = [a.reshape(-1) for a in arrays]  # 1-D: a 0-d gradient's abs is a scalar
    total = np.zeros(flat[0].size, dtype=np.float64)
    with np.errstate(all="ignore"):
        for a in flat:
            square = np.abs(a).astype(np.float64, copy=False)
            np.multiply(square, square, out=square)
            total += square
        rms = np.sqrt(total / len(flat))
        outside = ~((total > _SQUARES_SAFE[0]) & (total < _SQUARES_SAFE[1]))
        if outside.any():
            wide = [np.abs(a[outside]).astype(np.longdouble) for a in flat]
            rms[outside] = np.sqrt(sum(w * w for w in wide) / len(flat)).astype(np.float64)
    return rms.reshape(arrays[0].shape)


def _witnesses(spec: Spec, grads: dict[str, Any], dtype: np.dtype) -> dict[str, np.ndarray]:
    found = {}
    for name in spec.wrt:
        arr = np.asarray(grads.get(name)) if grads.get(name) is not None else None
        if arr is not None and arr.dtype == dtype and arr.shape == spec.inputs[name].shape \
                and np.all(np.isfinite(arr)):
            found[name] = arr
    return found


def _same_function(run: Run, out: np.ndarray, allowance: float) -> float:
    """How far the wider run's ``<g, out>`` is from the layer's own, when beyond what rounding
    allows (then the wider run computes another function: a dtype-dependent constant or branch,
    ``np.finfo(x.dtype).eps`` as a guard); 0 when it agrees."""
    g, own, wide = run.g.reshape(-1), run.out.reshape(-1), out.reshape(-1)
    total = np.longdouble(0.0)
    for lo in range(0, g.size, _BLOCK):  # in blocks: long double copies of the whole were 4x g
        part = slice(lo, lo + _BLOCK)
        gw = g[part].astype(np.longdouble)
        total += np.sum(gw * wide[part].astype(np.longdouble)) - np.sum(gw * own[part])
    gap = abs(float(total))
    return gap if gap > allowance else 0.0


_BLOCK = 1 << 16  # elements per block of the long double sums


def _second_difference(spec: Spec, run: Run, grads: dict[str, Any],
                       far: dict[str, Any]) -> dict[str, np.ndarray]:
    """``|B(c₂·g) - 2 B(c·g) + B(g)| / 2`` per gradient, ``c₂ = 2c - 1``, in the layer's own
    dtype: the second difference along the scale of ``g``, zero for any backward affine in
    ``g`` (a term that ignores ``dout`` is a bug to find, not rounding)."""
    found = {}
    for name in spec.wrt:
        arrays = [run.grads.get(name), grads.get(name), far.get(name)]
        if any(a is None for a in arrays):
            continue
        a, b, d = (np.asarray(v) for v in arrays)
        kinds = {a.dtype.kind, b.dtype.kind, d.dtype.kind}
        if not (a.shape == b.shape == d.shape) or kinds != {"f"}:
            continue
        gap = np.abs(d.astype(np.float64) - 2 * b.astype(np.float64) + a.astype(np.float64)) / 2
        found[name] = np.where(np.isfinite(gap), gap, 0.0)
    return found


def _own(spec: Spec, run: Run, extra: Iterable[np.ndarray]
         ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]] | None]:
    """The run in the layer's own dtype: its linearity (:func:`_second_difference`) and, with
    ``extra`` upstreams, the term draws (``None`` when it failed)."""
    c = LINEAR_FACTOR
    try:
        grads, others, _ = _run(spec, np.dtype(np.result_type(*spec.inputs.values())),
                                run.g * c, itertools.chain([run.g * (2 * c - 1)], extra))
    except Exception:
        return {}, None
    return _second_difference(spec, run, grads, others[0]), others[1:]


def measure(spec: Spec, run: Run, allowance: float = math.inf) -> Shadow:
    """The witness gradients, the term magnitudes and the backward's linearity of one check
    (never raises); a witness whose forward disagrees with the layer's by more than
    ``allowance`` in ``<g, out>`` is discarded, and the note says why.

    The terms are magnitudes, for which float64's range and precision suffice: they are drawn
    in the run that computes in float64 (the witness of a narrower layer, the layer's own run
    of a float64 one: four long double backwards were a third of a check at 1M elements), or,
    with no witness, in the layer's own dtype.
    """
    layer_dtype = np.dtype(np.result_type(*spec.inputs.values()))
    g64 = np.asarray(run.g, dtype=np.float64)
    on_witness = layer_dtype.itemsize < 8
    found = _witness(spec, run, allowance, _signed_upstreams(spec, g64) if on_witness else [])
    if found.terms or (on_witness and found.dtype):
        linearity, _ = _own(spec, run, [])
        return replace(found, linearity=linearity)
    linearity, draws = _own(spec, run, _signed_upstreams(spec, g64))
    return replace(found, linearity=linearity, terms=_terms(spec, draws) if draws else {})


def _witness(spec: Spec, run: Run, allowance: float, extra: Iterable[np.ndarray]) -> Shadow:
    """The witness run (with the term draws ``extra``, when given), or a note why none."""
    wide = witness_dtype(np.result_type(*spec.inputs.values()))
    if wide is None:
        return Shadow(note="no floating dtype wider than the layer's is available on this machine")
    try:
        grads, draws, gap = _run(spec, wide, run.g, extra, lambda out: _same_function(
            run, out, allowance) if out.shape == run.out.shape else 0.0)
    except Exception as exc:  # any failure in the wider dtype only means: no witness
        return Shadow(note=f"the layer raised {type(exc).__name__} in {wide}: {exc}"[:200])
    terms = _terms(spec, draws) if draws else {}
    if gap:
        note = (f"the witness was discarded: in {wide} the forward computes another "
                f"function (<dout, out> moves by {gap:.3g}, beyond the {allowance:.3g} "
                "rounding allows: a dtype-dependent constant, branch or eps guard?)")
        return Shadow({}, terms, "", note, differs=True)
    witness = _witnesses(spec, grads, wide)
    missing = [n for n in spec.wrt if n not in witness]
    note = (f"{', '.join(f'd{n}' for n in missing)} did not come back in {wide} "
            "(the layer casts to a narrower dtype)") if missing else ""
    return Shadow(witness, terms, str(wide), note)


EMPTY = Shadow()


class Lazy:
    """The check's :func:`measure`, run on the first :meth:`get`: a verdict that holds under the
    budget without the measured rounding (which only widens it) never pays for the second runs."""

    def __init__(self, spec: Spec, run: Run, allowance: float = math.inf) -> None:
        self._spec, self._run, self._allowance = spec, run, allowance
        self._shadow: Shadow | None = None

    def get(self) -> Shadow:
        if self._shadow is None:
            self._shadow = measure(self._spec, self._run, self._allowance)
        return self._shadow

    @property
    def measured(self) -> bool:
        return self._shadow is not None
