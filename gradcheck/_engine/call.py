"""Calling the layer under test: validated arguments, the analytic pass, and the checks that
keep the caller's data and the layer's state safe."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck import _guard, numeric
from gradcheck._state import Snapshot, restore, safe_deepcopy, same, snapshot
from gradcheck.errors import GradcheckError, InvalidArgument, LayerError
from gradcheck.kinds import MODES
from gradcheck.layer import input_order, layer_name, merge_parameters
from gradcheck.tolerance import Tolerance

# Our random streams are keyed by (seed, STREAM), so they never coincide with a caller's
# default_rng(seed) data: a dout equal to (x - mean)/std would make BatchNorm's dx vanish.
STREAM = 0x67726164


@dataclass(frozen=True)
class Spec:
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
    # The output's shape from the first forward; a later forward must match it.
    seen: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Run:
    """The analytic side of one check."""

    out: np.ndarray
    g: np.ndarray
    grads: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- validation ---------------------------------------------------------------------------


_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _as_input(label: str, value: Any) -> np.ndarray:
    """A float32/float64 copy of ``value``; ``label`` is how the message names it."""
    try:
        arr = np.array(value, copy=True)
    except Exception as exc:
        raise InvalidArgument(f"{label} must be array-like, got {type(value).__name__}") from exc
    if arr.dtype not in _FLOATS:
        got = f"{arr.dtype}" if arr.dtype != object else f"{type(value).__name__} of objects"
        raise InvalidArgument(
            f"{label} must have a floating dtype (float16, float32 or float64), got {got}"
        )
    if arr.size == 0:
        raise InvalidArgument(f"{label} must not be empty, got shape {arr.shape}")
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise InvalidArgument(f"{label} must be finite, got {bad} NaN or inf")
    return arr


def _validate_wrt(wrt: Any) -> Sequence[str] | str | None:
    if wrt is None or isinstance(wrt, str):
        return wrt
    if not isinstance(wrt, (Sequence, set, frozenset)) or isinstance(wrt, bytes):
        raise InvalidArgument(
            f"`wrt` must be an input name or a list of input names, got {type(wrt).__name__} "
            f"{wrt!r:.40}"
        )
    names = list(wrt)
    if not names:
        raise InvalidArgument("`wrt` must name at least one input, got an empty list: "
                              "nothing would be checked (leave it unset to check every input)")
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise InvalidArgument(f"`wrt` must hold input names (str), got {bad[0]!r}")
    return names


def _require_inputs(layer: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """The inputs an adapter's forward needs must be there: named in the user's terms.

    An adapter says which with ``required_inputs() -> (names, why)`` (or None).
    """
    hook = getattr(layer, "required_inputs", None)
    required = hook() if callable(hook) else None
    if not required:
        return
    names, why = required
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InvalidArgument(f"`inputs` must include {', '.join(map(repr, missing))}: {why}, "
                              f"got {', '.join(map(repr, arrays))}")


def validate_check(layer: Any, inputs: Any, method: str, mode: str, seed: Any,
              tolerance: Any, dout: Any, wrt: Any) -> Spec:
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
    wrt = _validate_wrt(wrt)
    arrays = {str(k): _as_input(f"`inputs[{str(k)!r}]`", v)
              for k, v in merge_parameters(layer, inputs).items()}
    _require_inputs(layer, arrays)
    names = input_order(arrays, wrt)
    return Spec(layer, layer_name(layer), arrays, names, method, mode, int(seed), tol,
                 None if dout is None else _as_input("`dout`", dout))


def _tolerance(tolerance: Any) -> Tolerance:
    if tolerance is None:
        return Tolerance()
    if isinstance(tolerance, Tolerance):
        return tolerance
    if isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool):
        return Tolerance(rtol=float(tolerance))
    raise InvalidArgument(f"`tolerance` must be a Tolerance or a float rtol, got {tolerance!r}")


def _warn_dtypes(spec: Spec) -> list[str]:
    low = [f"`{k}` ({v.dtype})" for k, v in spec.inputs.items() if v.dtype != np.float64]
    if not low:
        return []
    return [f"inputs {', '.join(low)} are not float64: judged under their own dtype's budgets "
            "against a float64 numerical reference"]


# --- calling the layer ----------------------------------------------------------------------


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # gradcheck/


def copy_failure(exc: BaseException) -> bool:
    """Did gradcheck's own ``copy.deepcopy`` of the layer fail (not the user's code)?"""
    if hasattr(exc, "copy_failure"):  # seen in the worker's traceback (gradcheck.worker)
        return bool(exc.copy_failure)
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [i for i, f in enumerate(frames) if os.path.abspath(f.filename).startswith(_PACKAGE)]
    after = frames[ours[-1] + 1:] if ours else []
    return bool(after) and os.path.basename(after[0].filename) == "copy.py"


def raised_here(exc: BaseException) -> bool:
    """Was ``exc`` raised by gradcheck's adapter itself (no frame of the user's code)?"""
    if hasattr(exc, "raised_here"):  # seen in the worker's traceback (gradcheck.worker)
        return bool(exc.raised_here)
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(_PACKAGE)


def _is_key_error(exc: BaseException) -> bool:
    return isinstance(exc, KeyError) or (type(exc).__name__ == "KeyError" and hasattr(
        exc, "raised_here"))


def _forward_error(spec: Spec, exc: Exception, context: str) -> LayerError:
    if copy_failure(exc):
        return LayerError(
            f"{spec.name}: gradcheck could not copy the layer to call it safely "
            f"({type(exc).__name__}: {exc}); the adapter copies the object (from_class) or the "
            "config (from_functions) for every call, and something in it cannot be copied "
            f"(a lock, an open file) ({context})"
        )
    if _is_key_error(exc) and raised_here(exc):
        return LayerError(f"{spec.name}: the layer expects an input named {exc}, which `inputs` "
                          f"does not have ({', '.join(spec.inputs)}) ({context})")
    if raised_here(exc):  # the adapter could not use what the user's forward returned
        return LayerError(f"{spec.name}: gradcheck could not use what the forward returned "
                          f"({type(exc).__name__}: {exc}); a forward returns (out, cache), or "
                          f"(out1, out2, ..., cache) with array outputs ({context})")
    return LayerError(f"{spec.name}: forward raised {type(exc).__name__}: {exc} ({context})")


def _call(spec: Spec, phase: str, fn: Any, *args: Any) -> Any:
    """Call into the layer: sys.exit and the time limit are reported with the phase."""
    _guard.raise_if_expired()
    try:
        return fn(*args)
    except SystemExit as exc:
        raise LayerError(f"{spec.name}: {_guard.exit_message(exc, phase)}") from None
    except _guard.Overrun as exc:
        exc.phase = exc.phase or phase
        raise


def call_forward(spec: Spec, inputs: Mapping[str, np.ndarray], context: str) -> tuple[Any, Any]:
    return _forward_result(spec, _guarded(spec, context, spec.layer.forward, inputs), context)


def _guarded(spec: Spec, context: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` calling the layer's forward (once, or a batch of it): ``sys.exit``, the
    time limit and the layer's exceptions named with the phase. This runs once per numerical
    evaluation, so the phase is formatted only on the way out."""
    _guard.raise_if_expired()
    try:
        return fn(*args)
    except GradcheckError:
        raise
    except SystemExit as exc:
        phase = f"forward ({context})"
        raise LayerError(f"{spec.name}: {_guard.exit_message(exc, phase)}") from None
    except _guard.Overrun as exc:
        exc.phase = exc.phase or f"forward ({context})"
        raise
    except Exception as exc:
        raise _forward_error(spec, exc, context) from exc


def _forward_result(spec: Spec, result: Any, context: str) -> tuple[Any, Any]:
    if not isinstance(result, tuple) or len(result) != 2:
        got = "None (a missing `return`?)" if result is None else _describe(result)
        raise LayerError(f"{spec.name}: forward must return (out, cache), got {got}")
    _same_shape(spec, result[0], context)
    return result


def call_forward_many(spec: Spec, inputs: Mapping[str, np.ndarray], name: str,
                      base: np.ndarray, ks: np.ndarray, values: np.ndarray, context: str,
                      fresh: bool) -> Iterable[Any]:
    """The forward's outputs at ``inputs`` with ``inputs[name] = base`` changed at one flat
    index ``ks[i]`` to ``values[i]``, for each ``i`` (``fresh``: the other inputs copied for
    every call, else passed as they are), in order; iterate them once.

    A layer may evaluate the batch itself with ``forward_perturbed(inputs, name, base, ks,
    values, fresh) -> iterable of the forward's results`` (a layer in a worker process: one
    message per batch, read as the outputs are used, so a stage's outputs are never all held at
    once); otherwise the points are evaluated here one by one.
    """
    hook = getattr(spec.layer, "forward_perturbed", None)
    if hook is None:
        outs = []
        for k, v in zip(ks, values, strict=True):
            arr = base.copy(order="K")
            arr.flat[int(k)] = v
            local = {n: (a.copy(order="K") if fresh else a) for n, a in inputs.items()}
            local[name] = arr
            outs.append(call_forward(spec, local, context)[0])
        return outs
    return _streamed(spec, context, _guarded(spec, context, hook, inputs, name, base, ks,
                                             values, fresh))


_END = object()


def _streamed(spec: Spec, context: str, results: Iterable[Any]) -> Iterator[Any]:
    """A hook's results as it produces them, each checked and its errors named as a forward's."""
    found = iter(results)
    while (result := _guarded(spec, context, next, found, _END)) is not _END:
        yield _forward_result(spec, result, context)[0]


def call_forward_points(spec: Spec, points: Sequence[Mapping[str, np.ndarray]], context: str,
                        fresh: bool) -> list[Any]:
    """The forward's outputs at each of ``points`` (whole sets of inputs). A layer may evaluate
    them itself with ``forward_many(points, fresh) -> [forward's result, ...]`` (one message for
    a layer in a worker); otherwise they are evaluated here one by one."""
    hook = getattr(spec.layer, "forward_many", None)
    if hook is None:
        return [call_forward(spec, p, context)[0] for p in points]
    results = _guarded(spec, context, hook, list(points), fresh)
    return [_forward_result(spec, r, context)[0] for r in results]


def _same_shape(spec: Spec, out: Any, context: str) -> None:
    """Every forward on inputs of the same shapes must give an output of the same shape."""
    try:
        shape = out.shape if isinstance(out, np.ndarray) else np.shape(out)
    except Exception:  # not array-like: _output says so
        return
    first = spec.seen.setdefault("out", shape)
    if shape != first:
        raise LayerError(f"{spec.name}: forward's output changed shape between calls on inputs "
                         f"of the same shapes: {first} first, then {shape} ({context})")


def _describe(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    shape = getattr(value, "shape", None)
    return type(value).__name__ if shape is None else f"{type(value).__name__} of shape {shape}"


def _is_none(out: Any) -> bool:
    """None itself, or None wrapped by ``np.asarray`` (what from_callables makes of ``f``'s)."""
    return out is None or (isinstance(out, np.ndarray) and out.dtype == object
                           and out.shape == () and out.item() is None)


def as_output(spec: Spec, out: Any, context: str) -> np.ndarray:
    if _is_none(out):
        raise LayerError(f"{spec.name}: forward returned None as its output, expected a float "
                         f"array (a missing `return`?) ({context})")
    arr = np.array(out, copy=True)  # ours from now on: a buffer the layer reuses cannot change it
    if arr.dtype.kind not in "fc":
        raise LayerError(
            f"{spec.name}: forward returned {_describe(out)} with dtype {arr.dtype} as its output, "
            f"expected floats ({context})"
        )
    if getattr(spec.layer, "scalar_output", False) and arr.size != 1:
        raise InvalidArgument(f"`f` must return a scalar (check_grads checks the gradient of a "
                              f"scalar function), got an array of shape {arr.shape}")
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise LayerError(
            f"{spec.name}: forward returned {bad} NaN or inf of {arr.size} outputs ({context})"
        )
    return arr


def _backward(spec: Spec, dout: np.ndarray, cache: Any, run: Run) -> dict[str, Any]:
    d = dout.copy()
    work = safe_deepcopy(cache)  # the backward gets a copy; the original shows what it changed
    try:
        grads = _call(spec, "backward", spec.layer.backward, d, work)
    except GradcheckError:
        raise
    except Exception as exc:
        raise _backward_error(spec, exc) from exc
    if not np.array_equal(d, dout):
        run.problems.append("backward modified `dout` in place")
    if work is not cache and not same(cache, work):
        run.problems.append(
            "backward modified the cache in place (a second call sees other values)"
        )
    if not isinstance(grads, Mapping):
        raise LayerError(
            f"{spec.name}: backward must return gradients by name, got {type(grads).__name__}"
        )
    return {name: _gradient(spec, name, grads) if name in spec.wrt else value
            for name, value in grads.items()}


def _backward_error(spec: Spec, exc: Exception) -> LayerError:
    if getattr(spec.layer, "scalar_output", False) and raised_here(exc):  # dout * grad(x)
        return LayerError(f"{spec.name}: `grad` must return an array shaped like x; using what "
                          f"it returned raised {type(exc).__name__}: {exc}")
    return LayerError(f"{spec.name}: backward raised {type(exc).__name__}: {exc}")


def _gradient(spec: Spec, name: str, grads: Mapping[str, Any]) -> np.ndarray:
    """One gradient the check will judge, as a real float array, or a LayerError saying why not."""
    value, shape = grads[name], spec.inputs[name].shape
    what = f"{spec.name}: backward returned"
    if value is None:
        raise LayerError(f"{what} None for d{name}, expected an array of shape {shape}")
    if isinstance(value, Mapping):
        raise LayerError(f"{what} a dict for d{name}, expected an array of shape {shape}; a "
                         "course-style backward returns a tuple (dx, dgamma, ...) in the order "
                         "of the forward's parameters")
    try:
        arr = np.array(value, copy=True)  # ours: a buffer the backward reuses cannot change it
    except Exception as exc:
        raise LayerError(f"{what} {_describe(value)} for d{name}, expected an array of shape "
                         f"{shape}") from exc
    if arr.dtype.kind not in "fc":
        raise LayerError(f"{what} {_describe(value)} with dtype {arr.dtype} for d{name}, "
                         f"expected a float array of shape {shape}")
    if arr.dtype.kind == "c":
        imag = float(np.max(np.abs(arr.imag), initial=0.0))
        if imag != 0 or not np.isfinite(imag):
            raise LayerError(f"{what} a complex d{name} with a non-zero imaginary part (up to "
                             f"{imag:.3g}); the gradient of a real input is real")
        arr = arr.real.copy()
    return arr


def _upstream(spec: Spec, out: np.ndarray, run_warnings: list[str]) -> np.ndarray:
    if spec.dout is None:
        g = np.random.default_rng([spec.seed, STREAM]).standard_normal(out.shape)
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


def analytic_pass(spec: Spec) -> Run:
    inputs = {k: v.copy(order="K") for k, v in spec.inputs.items()}
    out_raw, cache = call_forward(spec, inputs, "analytic pass")
    out = as_output(spec, out_raw, "analytic pass")
    run = Run(out=out, g=np.empty(0), grads={})
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


def _compare_repeats(spec: Spec, first: dict[str, Any], second: dict[str, Any], run: Run) -> None:
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


def _owners(layer: Any) -> dict[str, Any]:
    """Whose attributes a check protects: the layer, or what its ``state_owners()`` names (the
    object a from_class adapter wraps; nothing for a layer that lives in a worker)."""
    hook = getattr(layer, "state_owners", None)
    return dict(hook()) if callable(hook) else {"": layer}


def snapshot_state(layer: Any) -> dict[str, Snapshot]:
    return {prefix: snapshot(obj) for prefix, obj in _owners(layer).items()}


def restore_state(layer: Any, snaps: Mapping[str, Snapshot]) -> list[str]:
    """Put the layer's attributes back; returns the warnings to report (restored, uncopyable)."""
    changed, uncopyable = [], []
    for prefix, obj in _owners(layer).items():
        changed += [prefix + name for name in restore(obj, snaps[prefix])]
        uncopyable += [prefix + name for name in snaps[prefix].uncopyable]
    notes = []
    if changed:
        notes.append(f"the layer's state changed during the check (attributes "
                     f"{', '.join(changed)}); restored")
    if uncopyable:
        notes.append(f"attributes {', '.join(uncopyable)} cannot be copied (a lock, an open file "
                     "or similar), so they were left alone: a change to them would not be undone")
    return notes


def with_context(exc: GradcheckError, spec: Spec) -> GradcheckError:
    shapes = ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in spec.inputs.items())
    text = str(exc)
    prefix = "" if text.startswith(spec.name) else f"{spec.name}: "
    return type(exc)(f"{prefix}{text} [inputs: {shapes}]")

