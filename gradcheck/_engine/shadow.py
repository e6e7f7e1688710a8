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

import math
import warnings
from collections.abc import Mapping
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


def _run(spec: Spec, dtype: np.dtype, g: np.ndarray, extra: list[np.ndarray]
         ) -> tuple[dict[str, Any], list[dict[str, Any]], np.ndarray]:
    """Forward once in ``dtype``, then backward with ``g`` and with each upstream in ``extra``;
    also the forward's output."""
    inputs = {k: v.astype(dtype) for k, v in spec.inputs.items()}
    out, cache = _quiet_call(spec.layer.forward, inputs)
    if np.asarray(out).shape != g.shape:
        raise ValueError("output shape differs from the analytic pass")
    main = _owned(_quiet_call(spec.layer.backward, g.astype(dtype), safe_deepcopy(cache)))
    # each call's arrays copied before the next: a backward may return one buffer every time
    others = [_owned(_quiet_call(spec.layer.backward, e.astype(dtype), safe_deepcopy(cache)))
              for e in extra]
    if not isinstance(main, Mapping):
        raise TypeError("backward did not return gradients by name")
    return dict(main), [dict(o) if isinstance(o, Mapping) else {} for o in others], np.asarray(out)


def _owned(grads: Any) -> Any:
    if not isinstance(grads, Mapping):
        return grads
    return {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
            for k, v in grads.items()}


def _signed_upstreams(spec: Spec, g: np.ndarray) -> list[np.ndarray]:
    rng = np.random.default_rng([spec.seed, STREAM, 0x7465726D])
    return [g * rng.choice([-1.0, 1.0], size=g.shape) for _ in range(TERM_DRAWS)]


def _terms(spec: Spec, draws: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    terms = {}
    for name in spec.wrt:
        shape = spec.inputs[name].shape
        arrays = [np.asarray(d.get(name)) for d in draws if d.get(name) is not None]
        arrays = [a for a in arrays if a.shape == shape and a.dtype.kind in "fc"]
        if len(arrays) == len(draws) and arrays:
            squares = [np.square(np.abs(a).astype(np.longdouble)) for a in arrays]
            rms = np.sqrt(np.mean(squares, axis=0)).astype(np.float64)
            terms[name] = np.where(np.isfinite(rms), rms, 0.0)
    return terms


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
    wide = np.longdouble
    gap = abs(float(np.sum(run.g.astype(wide) * out.astype(wide)))
              - float(np.sum(run.g.astype(wide) * run.out.astype(wide))))
    return gap if gap > allowance else 0.0


def _linearity(spec: Spec, run: Run) -> dict[str, np.ndarray]:
    """``|B(c₂·g) - 2 B(c·g) + B(g)| / 2`` per gradient, ``c₂ = 2c - 1``, in the layer's own
    dtype (empty where it fails): the second difference along the scale of ``g``, zero for any
    backward affine in ``g`` (a term that ignores ``dout`` is a bug to find, not rounding)."""
    c = LINEAR_FACTOR
    try:
        grads, (far,), _ = _run(spec, np.dtype(np.result_type(*spec.inputs.values())),
                                run.g * c, [run.g * (2 * c - 1)])
    except Exception:
        return {}
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


def measure(spec: Spec, run: Run, allowance: float = math.inf) -> Shadow:
    """The witness gradients, the term magnitudes and the backward's linearity of one check
    (never raises); a witness whose forward disagrees with the layer's by more than
    ``allowance`` in ``<g, out>`` is discarded, and the note says why."""
    return replace(_measure(spec, run, allowance), linearity=_linearity(spec, run))


def _measure(spec: Spec, run: Run, allowance: float) -> Shadow:
    layer_dtype = np.result_type(*spec.inputs.values())
    wide = witness_dtype(layer_dtype)
    extra = _signed_upstreams(spec, run.g.astype(np.float64))
    note = ""
    if wide is not None:
        try:
            grads, draws, out = _run(spec, wide, run.g, extra)
            gap = _same_function(run, out, allowance) if out.shape == run.out.shape else 0.0
            if gap:
                note = (f"the witness was discarded: in {wide} the forward computes another "
                        f"function (<dout, out> moves by {gap:.3g}, beyond the {allowance:.3g} "
                        "rounding allows: a dtype-dependent constant, branch or eps guard?)")
                return Shadow({}, _terms(spec, draws), "", note, differs=True)
            witness = _witnesses(spec, grads, wide)
            missing = [n for n in spec.wrt if n not in witness]
            if missing:
                note = (f"{', '.join(f'd{n}' for n in missing)} did not come back in {wide} "
                        "(the layer casts to a narrower dtype)")
            return Shadow(witness, _terms(spec, draws), str(wide), note)
        except Exception as exc:  # any failure in the wider dtype only means: no witness
            note = f"the layer raised {type(exc).__name__} in {wide}: {exc}"[:200]
    else:
        note = "no floating dtype wider than the layer's is available on this machine"
    try:
        _, draws, _ = _run(spec, np.dtype(layer_dtype), run.g, extra)
        terms = _terms(spec, draws)
    except Exception:
        terms = {}
    return Shadow({}, terms, "", note)


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
