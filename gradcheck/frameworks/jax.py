"""JAX code as a layer: a function with a ``custom_vjp`` or ``custom_jvp`` rule (or any function
of arrays, jitted or not), its gradients taken with ``jax.vjp``.

Importing this module turns on ``jax_enable_x64`` (``jax.config.update``): without it JAX
silently computes float64 inputs in float32, and the check, the engine's float64 reference and
the float32 rule's float64 witness would all be float32. The setting is global to the process:
code that relies on JAX's float32 default sees float64 arrays where it passes Python floats.

The forward runs on inputs of the dtype given (float32 stays float32), and on complex inputs
where the engine's probe asks for the complex step; a rule whose primal does not accept them
raises or drops the imaginary part, and the probe falls back to real differences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from gradcheck.errors import InvalidArgument, LayerError
from gradcheck.frameworks.common import FrameworkLayer, argument_names, record

__all__ = ["JaxLayer", "jax_layer"]

jax.config.update("jax_enable_x64", True)


def _array(value: Any) -> Any:
    return jax.numpy.asarray(value) if isinstance(value, np.ndarray) else value


def _trace(call: Callable[[], Any], log: list[str]) -> None:
    """The primitives ``call`` runs (into sub-jaxprs: a custom_vjp's primal, jit, scan), into
    the probe's log (common.record)."""
    try:
        closed = jax.make_jaxpr(call)()
    except Exception:  # the call itself will raise, with its own message
        return
    stack = [closed.jaxpr]
    while stack:
        for eqn in stack.pop().eqns:
            record(log, "jax", eqn.primitive.name)
            for value in eqn.params.values():
                for inner in value if isinstance(value, (tuple, list)) else (value,):
                    inner = getattr(inner, "jaxpr", inner)
                    if hasattr(inner, "eqns"):
                        stack.append(inner)


def _outputs(result: Any, name: str) -> list[Any]:
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not outs or not all(hasattr(o, "shape") and hasattr(o, "dtype") for o in outs):
        raise LayerError(f"{name}: the code must return an array or a tuple of arrays, got "
                         f"{type(result).__name__}")
    return outs


class JaxLayer(FrameworkLayer):
    """A function of JAX arrays as a layer."""

    framework = "jax"

    def __init__(self, func: Callable[..., Any], names: Sequence[str], required: Sequence[str],
                 config: Mapping[str, Any], name: str) -> None:
        super().__init__(names, required, config, name)
        self._func = func

    def _call(self, values: Mapping[str, Any]) -> Any:
        return self._func(*[values[n] for n in self._names if n in values])

    def run(self, values: Mapping[str, Any], log: list[str] | None = None) -> list[Any]:
        arrays = {k: _array(v) for k, v in values.items()}
        if log is not None:
            _trace(lambda: self._call(arrays), log)
        return [np.asarray(o) for o in _outputs(self._call(arrays), self.name)]

    def pull(self, values: Mapping[str, Any], wrt: Sequence[str],
             upstream: Sequence[np.ndarray]) -> list[Any]:
        arrays = {k: _array(v) for k, v in values.items()}
        multi = []

        def along(*moved: Any) -> Any:
            result = self._call({**arrays, **dict(zip(wrt, moved, strict=True))})
            multi.append(isinstance(result, (tuple, list)))
            return tuple(result) if multi[-1] else result

        outs, vjp = jax.vjp(along, *[arrays[k] for k in wrt])
        shaped = [jax.numpy.asarray(u, dtype=o.dtype)
                  for o, u in zip(_outputs(outs, self.name), upstream, strict=True)]
        grads = vjp(tuple(shaped) if multi[-1] else shaped[0])
        return [np.asarray(g) for g in grads]


def jax_layer(func: Callable[..., Any], *, config: Mapping[str, Any] | None = None,
              name: str | None = None) -> JaxLayer:
    """Adapt a JAX function: its gradients are taken with ``jax.vjp`` (a ``custom_vjp`` or
    ``custom_jvp`` rule is what is checked).

    Parameters
    ----------
    func : callable
        ``func(x, w, ...) -> array`` (or a tuple of arrays); inputs are named after its
        arguments.
    config : mapping, optional
        Arguments that are not differentiated (settings, integer labels), by name.
    name : str, optional
        For reports; by default the function's name.

    Returns
    -------
    JaxLayer
        A :class:`~gradcheck.layer.Layer` for :func:`gradcheck.check_layer`.

    Raises
    ------
    InvalidArgument
        ``func`` is not callable, takes ``*args``, or ``config`` names no argument of it.

    Examples
    --------
    >>> @jax.custom_vjp
    ... def cube(x):
    ...     return x ** 3
    >>> cube.defvjp(lambda x: (x ** 3, x), lambda x, g: (3 * x ** 2 * g,))
    >>> import gradcheck
    >>> gradcheck.check_layer(jax_layer(cube), {"x": np.linspace(-1, 1, 6)}).verdict
    'pass'
    """
    if not callable(func):
        raise InvalidArgument(f"`func` must be a function of JAX arrays, got "
                              f"{type(func).__name__}")
    if config is not None and not isinstance(config, Mapping):
        raise InvalidArgument(f"`config` must be a mapping of name to value, got {config!r}")
    names, required = argument_names(getattr(func, "fun", func))
    label = name or str(getattr(func, "__name__", None) or getattr(getattr(func, "fun", None),
                                                                  "__name__", "jax function"))
    return JaxLayer(func, names, required, dict(config or {}), label)
