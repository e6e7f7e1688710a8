"""The ``Layer`` protocol the checker talks to, and adapters for the layers people actually write.

A layer maps named arrays to an output and back::

    forward(inputs: {name: array}) -> (out, cache)
    backward(dout, cache) -> {name: gradient of <dout, out> with respect to inputs[name]}

``forward`` must not update anything the output depends on: the checker calls it many times.
Optionally ``parameters()`` returns arrays the layer owns (gamma, beta, weights) to check along with
the inputs the caller passes.

Adapters
--------
:func:`from_functions`
    course style, ``f_forward(x, gamma, beta, bn_param) -> (out, cache)`` and
    ``f_backward(dout, cache) -> (dx, dgamma, dbeta)``: arrays are passed by parameter name,
    ``config`` (``bn_param``) is deep-copied for every call (this convention writes running
    statistics into it), gradients come back in the order of the forward's parameters.
:func:`from_class`
    objects with ``forward(x)`` / ``backward(dout) -> dx`` that keep parameters and gradients in
    dict attributes (``params``/``grads`` by default); every call works on a deep copy, so the
    object itself is never touched.
:func:`from_callables`
    a scalar function ``f(x)`` and its gradient ``grad(x)``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gradcheck.errors import InvalidArgument, LayerError

__all__ = ["Layer", "from_callables", "from_class", "from_functions", "layer_name"]


@runtime_checkable
class Layer(Protocol):
    """What the checker needs: a pure forward and a backward returning gradients by name."""

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]: ...

    def backward(self, dout: np.ndarray, cache: Any) -> Mapping[str, Any]: ...


def layer_name(layer: Any) -> str:
    """A short human name for reports: ``name`` attribute, else the repr (trimmed)."""
    name = getattr(layer, "name", None)
    if isinstance(name, str) and name:
        return name
    text = repr(layer)
    return text if len(text) <= 60 else type(layer).__name__


def _require_callable(name: str, value: Any) -> None:
    if not callable(value):
        raise InvalidArgument(f"`{name}` must be callable, got {type(value).__name__}")


class FunctionLayer:
    """Course-style ``forward(*arrays, *config)`` / ``backward(dout, cache)`` functions."""

    def __init__(
        self,
        forward: Callable[..., Any],
        backward: Callable[..., Any],
        config: Mapping[str, Any],
        name: str,
    ) -> None:
        self._forward, self._backward = forward, backward
        self._config = copy.deepcopy(dict(config))
        params = inspect.signature(forward).parameters.values()
        self._order = [
            p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in self._config
        ]
        self.name = name

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        unknown = [n for n in inputs if n not in self._order]
        if unknown:
            raise InvalidArgument(
                f"`inputs` has {unknown[0]!r}, which is not a parameter of {self.name}_forward; "
                f"expected names from {self._order}"
            )
        return self._forward(**inputs, **copy.deepcopy(self._config))

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        grads = self._backward(dout, cache)
        if not isinstance(grads, (tuple, list)):
            grads = (grads,)
        if len(grads) > len(self._order):
            raise LayerError(
                f"{self.name}: backward returned {len(grads)} gradients, but forward takes "
                f"{len(self._order)} arrays ({', '.join(self._order)})"
            )
        return dict(zip(self._order, grads, strict=False))


def from_functions(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    *,
    config: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> FunctionLayer:
    """Adapt course-style functions.

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, bn_param) -> (out, cache)``; arrays are passed by the names of
        its parameters, so the keys of ``check_layer``'s ``inputs`` must match them.
    backward : callable
        ``backward(dout, cache) -> (dx, dgamma, dbeta)``, one gradient per array parameter, in
        the order of the forward's parameters.
    config : mapping, optional
        Non-array parameters by name, e.g. ``{"bn_param": {"mode": "train"}}``; deep-copied for
        every call so the caller's dict is never modified.
    name : str, optional
        For reports; by default the forward's name without ``_forward``.

    Examples
    --------
    >>> def scale_forward(x, w, cfg):
    ...     return x * w * cfg["k"], (x, w, cfg["k"])
    >>> def scale_backward(dout, cache):
    ...     x, w, k = cache
    ...     return dout * w * k, np.sum(dout * x * k, axis=0)
    >>> layer = from_functions(scale_forward, scale_backward, config={"cfg": {"k": 2.0}})
    >>> out, cache = layer.forward({"x": np.ones((2, 3)), "w": np.arange(3.0)})
    >>> sorted(layer.backward(np.ones((2, 3)), cache))
    ['w', 'x']
    """
    _require_callable("forward", forward)
    _require_callable("backward", backward)
    if config is not None and not isinstance(config, Mapping):
        raise InvalidArgument(f"`config` must be a mapping of name to value, got {config!r}")
    base = getattr(forward, "__name__", "layer")
    default = base[: -len("_forward")] if base.endswith("_forward") else base
    return FunctionLayer(forward, backward, config or {}, name or default)


class ClassLayer:
    """Objects with ``forward(x)``/``backward(dout)`` and parameter/gradient dicts."""

    def __init__(self, obj: Any, input_name: str, params: str, grads: str) -> None:
        self._obj, self._input, self._params_attr, self._grads_attr = obj, input_name, params, grads
        self.name = type(obj).__name__

    def _param_dict(self, obj: Any) -> dict[str, Any]:
        found = getattr(obj, self._params_attr, None)
        if not isinstance(found, dict):
            raise InvalidArgument(
                f"`params` names the attribute {self._params_attr!r}, which must be a dict on "
                f"{self.name}, got {type(found).__name__}"
            )
        return found

    def parameters(self) -> dict[str, np.ndarray]:
        """Copies of the object's parameters, checked along with the input."""
        return {k: np.array(v, copy=True) for k, v in self._param_dict(self._obj).items()}

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        work = copy.deepcopy(self._obj)
        params = self._param_dict(work)
        for key, value in inputs.items():
            if key == self._input:
                continue
            if key not in params:
                raise InvalidArgument(
                    f"`inputs` has {key!r}, which is neither the input {self._input!r} nor one of "
                    f"{self.name}.{self._params_attr} ({', '.join(params) or 'empty'})"
                )
            params[key] = value
        return work.forward(inputs[self._input]), work

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        cache = copy.deepcopy(cache)  # the object's backward stores grads on itself, by design
        dx = cache.backward(dout)
        if isinstance(dx, tuple):  # some layers return (dx, ...) with grads stored on self
            dx = dx[0]
        grads = getattr(cache, self._grads_attr, None)
        if not isinstance(grads, dict):
            raise LayerError(
                f"{self.name}: after backward, `{self._grads_attr}` must be a dict of parameter "
                f"gradients, got {type(grads).__name__}"
            )
        return {self._input: dx, **grads}


def from_class(
    obj: Any, *, input_name: str = "x", params: str = "params", grads: str = "grads"
) -> ClassLayer:
    """Adapt an object with ``forward(x)``, ``backward(dout) -> dx`` and dict attributes.

    ``params`` and ``grads`` name the attributes holding parameters and their gradients (e.g.
    ``"parameters"``/``"gradients"``). The object is deep-copied for every forward, so its state
    (running statistics, caches, parameters) is the same after a check as before.

    Examples
    --------
    >>> class Scale:
    ...     def __init__(self):
    ...         self.params, self.grads = {"w": np.array([2.0, 3.0])}, {}
    ...     def forward(self, x):
    ...         self.x = x
    ...         return x * self.params["w"]
    ...     def backward(self, dout):
    ...         self.grads["w"] = np.sum(dout * self.x, axis=0)
    ...         return dout * self.params["w"]
    >>> layer = from_class(Scale())
    >>> sorted(layer.parameters())
    ['w']
    """
    for attr in ("forward", "backward"):
        if not callable(getattr(obj, attr, None)):
            raise InvalidArgument(
                f"`obj` must have a callable `{attr}` method, got {type(obj).__name__}"
            )
    for label, value in (("input_name", input_name), ("params", params), ("grads", grads)):
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"`{label}` must be a non-empty string, got {value!r}")
    return ClassLayer(obj, input_name, params, grads)


class CallableLayer:
    """A scalar function and its gradient, as a one-input layer."""

    def __init__(self, f: Callable[[Any], Any], grad: Callable[[Any], Any], name: str) -> None:
        self._f, self._grad, self.name = f, grad, name

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        (x,) = inputs.values()
        return np.asarray(self._f(x)), x

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        return {"x": np.asarray(dout) * np.asarray(self._grad(cache))}


def from_callables(
    f: Callable[[Any], Any], grad: Callable[[Any], Any], *, name: str | None = None
) -> CallableLayer:
    """Adapt ``f(x) -> scalar`` and ``grad(x) -> array``; the input is named ``x``.

    Examples
    --------
    >>> layer = from_callables(lambda x: np.sum(x**3), lambda x: 3 * x**2)
    >>> out, cache = layer.forward({"x": np.array([1.0, 2.0])})
    >>> layer.backward(np.array(2.0), cache)["x"]
    array([ 6., 24.])
    """
    _require_callable("f", f)
    _require_callable("grad", grad)
    return CallableLayer(f, grad, name or str(getattr(f, "__name__", "f")))


def merge_parameters(layer: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs plus the layer's own parameters that the caller did not pass."""
    own = layer.parameters() if callable(getattr(layer, "parameters", None)) else {}
    merged = dict(inputs)
    merged.update({k: v for k, v in own.items() if k not in merged})
    return merged


def input_order(inputs: Mapping[str, Any], wrt: Sequence[str] | None) -> list[str]:
    """Which inputs to check, validated against what was passed."""
    if wrt is None:
        return list(inputs)
    names = [wrt] if isinstance(wrt, str) else list(wrt)
    for n in names:
        if n not in inputs:
            raise InvalidArgument(f"`wrt` names {n!r}, which is not an input ({', '.join(inputs)})")
    return names
