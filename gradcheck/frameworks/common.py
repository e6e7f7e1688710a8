"""What the torch and JAX adapters share: argument names, dtypes, outputs, and the layer itself.

A framework layer speaks the :class:`~gradcheck.layer.Layer` protocol on NumPy arrays and runs
the user's code on tensors:

- ``forward(inputs)`` converts every array to a tensor of the same dtype (float32 stays
  float32, complex128 is passed as complex, so the engine's probe decides whether the complex
  step holds through the user's code), calls the code once without recording anything, and
  returns the output as NumPy with the inputs it ran on as the cache;
- ``backward(dout, cache)`` runs the code again on those inputs under the framework's own
  differentiation (``torch.autograd.grad``, ``jax.vjp``) and pulls ``dout`` back: the gradient
  the user's rule claims, whatever it is (a custom ``backward``, a ``custom_vjp`` rule, or a
  straight-through estimator that is deliberately not the gradient).

Running the forward again in ``backward`` keeps the numerical side, which calls the forward
thousands of times, free of graphs and tapes; the engine already requires a forward that is a
function of its inputs (it reports one that is not).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument, LayerError

__all__ = ["FrameworkLayer", "Ran", "argument_names", "check_dtype", "join_outputs",
           "record", "split_upstream"]

# NumPy dtypes both frameworks represent exactly (float16 too; no long double, no bfloat16).
_KINDS = "fciub"
_WIDEST = {"f": 8, "c": 16}

# The probe's tracer (gradcheck.numeric.probe) cannot see inside a framework, so the adapters
# tell it which operations the code ran, by the names torch functions and JAX primitives share:
# operations that drop or mangle an imaginary part make the complex step unsafe; operations with
# kinks or jumps make the forward piecewise (its noise is then not read as precision, and kinks
# are looked for); rounding is both.
_UNSAFE = frozenset({"abs", "absolute", "sign", "sgn", "round", "floor", "ceil", "trunc", "fix",
                     "frac", "fmod", "remainder", "rem", "copysign", "heaviside", "angle",
                     "var", "std", "var_mean", "std_mean", "norm", "vector_norm",
                     "signbit", "conj", "conj_physical"})
_PIECEWISE = frozenset({"abs", "absolute", "sign", "sgn", "round", "floor", "ceil", "trunc", "fix",
                        "frac", "fmod", "remainder", "rem", "copysign", "heaviside", "relu",
                        "relu6", "leaky_relu", "prelu", "rrelu", "hardtanh", "hardswish",
                        "hardsigmoid", "hardshrink", "softshrink", "threshold", "clamp", "clip",
                        "maximum", "minimum", "max", "min", "amax", "amin", "fmax", "fmin",
                        "reduce_max", "reduce_min", "argmax", "argmin", "where", "select_n",
                        "masked_fill", "gt", "lt", "ge", "le", "eq", "ne", "greater", "less",
                        "sort", "topk", "median", "quantile", "kthvalue", "cummax", "cummin",
                        "max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool2d"})


def record(log: list[str] | None, framework: str, op: str) -> None:
    """Add ``op`` (a torch function's or a JAX primitive's name) to the probe's trace ``log``
    when it is unsafe for the complex step or piecewise (nothing when ``log`` is None)."""
    if log is None:
        return
    name = op.strip("_")
    label = f"{framework}.{name}"
    if name in _UNSAFE and f"unsafe:{label}" not in log:
        log.append(f"unsafe:{label}")
    if name in _PIECEWISE and f"piecewise:{label}" not in log:
        log.append(f"piecewise:{label}")


def argument_names(func: Callable[..., Any], *, skip: int = 0) -> tuple[tuple[str, ...],
                                                                        tuple[str, ...]]:
    """The positional parameters of ``func`` (after the first ``skip``, e.g. ``ctx``), and
    those without a default.

    Raises
    ------
    InvalidArgument
        ``func`` takes ``*args`` (no names to bind arrays to) or has no readable signature.

    Examples
    --------
    >>> argument_names(lambda ctx, x, w, eps=1e-5: None, skip=1)
    (('x', 'w', 'eps'), ('x', 'w'))
    """
    try:
        params = list(inspect.signature(func).parameters.values())[skip:]
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"cannot read the arguments of {_label(func)}: {exc}") from None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        raise InvalidArgument(f"{_label(func)} takes *args: gradcheck binds inputs by name, so "
                              "its arguments must be named (def forward(ctx, x, weight))")
    named = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return (tuple(p.name for p in named),
            tuple(p.name for p in named if p.default is p.empty))


def _label(func: Any) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
               or type(func).__name__)


def join_outputs(outs: Sequence[np.ndarray]) -> np.ndarray:
    """One output, or several flattened into one array (the scalar the engine differentiates is
    then ``sum_i <g_i, out_i>``, as for a multi-output course layer)."""
    if len(outs) == 1:
        return outs[0]
    return np.concatenate([o.reshape(-1) for o in outs])


def split_upstream(dout: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """``dout`` cut back into one upstream gradient per output (:func:`join_outputs`)."""
    if len(shapes) == 1:
        return [np.asarray(dout).reshape(shapes[0])]
    sizes = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
    parts = np.split(np.asarray(dout).reshape(-1), sizes)
    return [p.reshape(s) for p, s in zip(parts, shapes, strict=True)]


class Ran:
    """The cache of one forward: the arrays it ran on and its outputs' shapes. The backward
    runs the code again on them; nothing in it changes, so a copy is the object itself."""

    def __init__(self, values: Mapping[str, Any], shapes: Sequence[tuple[int, ...]]) -> None:
        self.values, self.shapes = dict(values), [tuple(s) for s in shapes]

    def __deepcopy__(self, memo: dict[int, Any]) -> Ran:
        return self


class FrameworkLayer:
    """The protocol side of a framework adapter; subclasses say how to run the code.

    ``names`` are the code's positional arguments in order; ``config`` gives some of them fixed
    values (settings, integer labels: never differentiated). Every other argument is an input
    the caller passes by name.
    """

    framework = ""  # "torch", "jax": how messages name the framework

    def __init__(self, names: Sequence[str], required: Sequence[str],
                 config: Mapping[str, Any], name: str) -> None:
        unknown = [k for k in config if k not in names]
        if unknown:
            raise InvalidArgument(f"{name}: `config` names {unknown[0]!r}, which is not an "
                                  f"argument; its arguments are {', '.join(names) or 'none'}")
        self._names, self._required = tuple(names), tuple(required)
        self._config = dict(config)
        self.name = name
        self.notes: list[str] = []

    def required_inputs(self) -> tuple[tuple[str, ...], str]:
        """The arguments without a default that neither ``config`` nor the layer gives."""
        return (tuple(n for n in self._required if n not in self._config),
                f"arguments of {self.name} without a default")

    def parameters(self) -> dict[str, np.ndarray]:
        """Arrays the code owns (an ``nn.Module``'s weights), checked with the inputs."""
        return {}

    def state_owners(self) -> dict[str, Any]:
        """What a check protects from changes (the engine's hook): the objects holding state
        (an ``nn.Module``), not this adapter, whose compiled code cannot be copied."""
        return {}

    # --- what subclasses provide ----------------------------------------------------------

    def run(self, values: Mapping[str, Any], log: list[str] | None = None) -> list[Any]:
        """The code's outputs (NumPy) at ``values`` (every argument and parameter by name);
        with a ``log`` (the probe traces this call), the operations it ran go there
        (:func:`record`)."""
        raise NotImplementedError

    def pull(self, values: Mapping[str, Any], wrt: Sequence[str],
             upstream: Sequence[np.ndarray]) -> list[Any]:
        """The framework's vector-Jacobian product: the gradient of ``sum <upstream, out>``
        with respect to each of ``wrt`` (None for one the outputs do not depend on)."""
        raise NotImplementedError

    # --- the protocol ---------------------------------------------------------------------

    def _values(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        own = set(self.parameters())
        unknown = [k for k in inputs if k not in self._names and k not in own]
        if unknown:
            raise InvalidArgument(
                f"`inputs` has {unknown[0]!r}, which is not an argument of {self.name}; "
                f"expected names from {[*self._names, *sorted(own)]}")
        for key, value in inputs.items():
            check_dtype(key, np.asarray(value), self.framework)
        return {**self._config, **{k: np.array(v, copy=True) for k, v in inputs.items()}}

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Ran]:
        from gradcheck.numeric.probe import trace_log

        log = next((trace_log(v) for v in inputs.values() if trace_log(v) is not None), None)
        values = self._values(inputs)
        outs = [np.array(o, copy=True) for o in self.run(values, log)]
        return join_outputs(outs), Ran(values, [o.shape for o in outs])

    def backward(self, dout: np.ndarray, cache: Ran) -> dict[str, np.ndarray]:
        if not isinstance(cache, Ran):
            raise LayerError(f"{self.name}: backward needs the cache its forward returned")
        wrt = [k for k, v in cache.values.items() if k not in self._config
               and np.asarray(v).dtype.kind in "fc"]
        grads = self.pull(cache.values, wrt, split_upstream(dout, cache.shapes))
        found = {}
        for key, grad in zip(wrt, grads, strict=True):
            like = np.asarray(cache.values[key])
            # no dependence: the rule claims a zero gradient (a custom backward returning None)
            found[key] = np.zeros_like(like) if grad is None else np.array(grad, copy=True)
        return found


def check_dtype(name: str, value: np.ndarray, framework: str) -> None:
    """Refuse what the framework cannot hold without changing the values (long double: the
    engine's extended-precision confirmation then reports it could not run, rather than
    believing a float64 run was wider)."""
    kind, size = value.dtype.kind, value.dtype.itemsize
    if kind not in _KINDS or size > _WIDEST.get(kind, size):
        raise InvalidArgument(f"`{name}` has dtype {value.dtype}, which {framework} cannot "
                              "represent; use float16, float32 or float64 (or their complex "
                              "types)")
