"""Calling the layer under test: validated arguments, the analytic pass, and the checks that
keep the caller's data and the layer's state safe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck import numeric
from gradcheck._state import fingerprint, safe_deepcopy
from gradcheck.errors import GradcheckError, InvalidArgument, LayerError
from gradcheck.layer import input_order, layer_name, merge_parameters
from gradcheck.tolerance import Tolerance

MODES = ("auto", "full", "sampled", "directional")
# Our random streams are keyed by (seed, _STREAM), so they never coincide with a caller's
# default_rng(seed) data: a dout equal to (x - mean)/std would make BatchNorm's dx vanish.
_STREAM = 0x67726164


@dataclass(frozen=True)
class _Spec:
    """Validated arguments of one check."""

    layer: Any
    name: str
    inputs: dict[str, np.ndarray]
    wrt: list[str]
    method: str
    mode: str
    seed: int
    tolerance: Tolerance
    dout: np.ndarray | None


@dataclass
class _Run:
    """The analytic side of one check."""

    out: np.ndarray
    g: np.ndarray
    grads: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- validation ---------------------------------------------------------------------------


def _as_input(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.array(value, copy=True)
    except Exception as exc:
        raise InvalidArgument(
            f"`inputs[{name!r}]` must be array-like, got {type(value).__name__}"
        ) from exc
    if arr.dtype.kind != "f":
        raise InvalidArgument(
            f"`inputs[{name!r}]` must have a floating dtype (float32 or float64), got {arr.dtype}"
        )
    if arr.size == 0:
        raise InvalidArgument(f"`inputs[{name!r}]` must not be empty, got shape {arr.shape}")
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise InvalidArgument(f"`inputs[{name!r}]` must be finite, got {bad} NaN or inf")
    return arr


def _validate(layer: Any, inputs: Any, method: str, mode: str, seed: Any,
              tolerance: Any, dout: Any, wrt: Any) -> _Spec:
    for attr in ("forward", "backward"):
        if not callable(getattr(layer, attr, None)):
            raise InvalidArgument(
                f"`layer` must have callable `forward` and `backward` (see gradcheck.layer), "
                f"got {type(layer).__name__}; wrap functions with from_functions or from_class"
            )
    if not isinstance(inputs, Mapping) or not inputs:
        raise InvalidArgument(
            f"`inputs` must be a non-empty mapping of name to array, got {inputs!r:.60}"
        )
    if method not in numeric.METHODS:
        raise InvalidArgument(f"`method` must be one of {numeric.METHODS}, got {method!r}")
    if mode not in MODES:
        raise InvalidArgument(f"`mode` must be one of {MODES}, got {mode!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidArgument(f"`seed` must be a non-negative integer, got {seed!r}")
    tol = _tolerance(tolerance)
    arrays = {str(k): _as_input(str(k), v) for k, v in merge_parameters(layer, inputs).items()}
    names = input_order(arrays, wrt)
    return _Spec(layer, layer_name(layer), arrays, names, method, mode, int(seed), tol,
                 None if dout is None else _as_input("dout", dout))


def _tolerance(tolerance: Any) -> Tolerance:
    if tolerance is None:
        return Tolerance()
    if isinstance(tolerance, Tolerance):
        return tolerance
    if isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool):
        return Tolerance(rtol=float(tolerance))
    raise InvalidArgument(f"`tolerance` must be a Tolerance or a float rtol, got {tolerance!r}")


def _warn_dtypes(spec: _Spec) -> list[str]:
    low = [f"`{k}` ({v.dtype})" for k, v in spec.inputs.items() if v.dtype != np.float64]
    if not low:
        return []
    return [f"inputs {', '.join(low)} are not float64: judged under their own dtype's budgets "
            "against a float64 numerical reference"]


# --- calling the layer ----------------------------------------------------------------------


def _forward(spec: _Spec, inputs: Mapping[str, np.ndarray], context: str) -> tuple[Any, Any]:
    try:
        result = spec.layer.forward(inputs)
    except GradcheckError:
        raise
    except Exception as exc:
        raise LayerError(
            f"{spec.name}: forward raised {type(exc).__name__}: {exc} ({context})"
        ) from exc
    if not isinstance(result, tuple) or len(result) != 2:
        raise LayerError(
            f"{spec.name}: forward must return (out, cache), got {type(result).__name__}"
        )
    return result


def _output(spec: _Spec, out: Any, context: str) -> np.ndarray:
    arr = np.asarray(out)
    if arr.dtype.kind not in "fc":
        raise LayerError(
            f"{spec.name}: forward returned {arr.dtype} output, expected floats ({context})"
        )
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise LayerError(
            f"{spec.name}: forward returned {bad} NaN or inf of {arr.size} outputs ({context})"
        )
    return arr


def _backward(spec: _Spec, dout: np.ndarray, cache: Any, run: _Run) -> dict[str, Any]:
    d = dout.copy()
    before = fingerprint(cache)
    work = safe_deepcopy(cache)
    try:
        grads = spec.layer.backward(d, work)
    except GradcheckError:
        raise
    except Exception as exc:
        raise LayerError(f"{spec.name}: backward raised {type(exc).__name__}: {exc}") from exc
    if not np.array_equal(d, dout):
        run.problems.append("backward modified `dout` in place")
    if work is not cache and fingerprint(work) != before:
        run.problems.append(
            "backward modified the cache in place (a second call sees other values)"
        )
    if not isinstance(grads, Mapping):
        raise LayerError(
            f"{spec.name}: backward must return gradients by name, got {type(grads).__name__}"
        )
    return dict(grads)


def _upstream(spec: _Spec, out: np.ndarray, run_warnings: list[str]) -> np.ndarray:
    if spec.dout is None:
        g = np.random.default_rng([spec.seed, _STREAM]).standard_normal(out.shape)
        return g.astype(out.dtype)
    if spec.dout.shape != out.shape:
        raise InvalidArgument(
            f"`dout` must have the output's shape {out.shape}, got shape {spec.dout.shape}"
        )
    if spec.dout.size > 1 and np.all(spec.dout == spec.dout.flat[0]):
        run_warnings.append(
            "`dout` is constant: for normalising layers (BatchNorm) dx is then identically zero "
            "and its check is vacuous; leave `dout` unset for a random one"
        )
    return spec.dout.astype(out.dtype)


def _analytic(spec: _Spec) -> _Run:
    inputs = {k: v.copy() for k, v in spec.inputs.items()}
    out_raw, cache = _forward(spec, inputs, "analytic pass")
    out = _output(spec, out_raw, "analytic pass")
    run = _Run(out=out, g=np.empty(0), grads={})
    for k, v in inputs.items():
        if not np.array_equal(v, spec.inputs[k]):
            run.problems.append(f"forward modified its input `{k}` in place")
    run.warnings.extend(_warn_dtypes(spec))
    run.g = _upstream(spec, out, run.warnings)
    first = _backward(spec, run.g, cache, run)
    second = _backward(spec, run.g, cache, run)
    run.grads = first
    _compare_repeats(spec, first, second, run)
    run.problems[:] = list(dict.fromkeys(run.problems))
    return run


def _compare_repeats(spec: _Spec, first: dict[str, Any], second: dict[str, Any], run: _Run) -> None:
    for name in spec.wrt:
        a, b = first.get(name), second.get(name)
        if a is None or b is None:
            continue
        a, b = np.asarray(a), np.asarray(b)
        if a.shape == b.shape and not np.array_equal(a, b, equal_nan=True):
            diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            run.problems.append(
                f"backward is not deterministic: `{name}` differs by up to {diff:.3g} between "
                "two calls with the same dout and cache"
            )


def _snapshot(layer: Any) -> tuple[str, Any]:
    state = getattr(layer, "__dict__", None)
    return fingerprint(state), safe_deepcopy(state)


def _restore(layer: Any, snapshot: tuple[str, Any]) -> str:
    digest, saved = snapshot
    state = getattr(layer, "__dict__", None)
    if state is None or fingerprint(state) == digest:
        return ""
    changed = sorted(k for k in set(state) | set(saved)
                     if fingerprint(state.get(k)) != fingerprint(saved.get(k)))
    state.clear()
    state.update(saved)
    return "attributes " + ", ".join(changed)


def _with_context(exc: GradcheckError, spec: _Spec) -> GradcheckError:
    shapes = ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in spec.inputs.items())
    text = str(exc)
    prefix = "" if text.startswith(spec.name) else f"{spec.name}: "
    return type(exc)(f"{prefix}{text} [inputs: {shapes}]")

