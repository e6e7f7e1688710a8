"""Whole networks in the parameter-dict convention: ``parameters = {"W1": ..., "b1": ...}``.

Two entry points. :func:`from_network` (and :func:`check_network`) take the course functions
as their authors wrote them, recognised from their signatures, with data arguments bound by
name from a dict: ``forward_propagation(X, Y, parameters) -> (cost, cache)`` with
``backward_propagation(X, Y, cache)``; ``L_model_forward(X, parameters) -> (AL, caches)`` with
``compute_cost(AL, Y)`` and ``L_model_backward(AL, Y, caches)``; regularised variants taking
``lambd`` or ``keep_prob``; an initialiser taking ``layer_dims``. :func:`check_model` takes a
``cost(parameters)`` closure and its gradients.

The popular deep-learning courses write a network as a dict of parameters, a cost function of
them, and a backprop returning ``{"dW1": ..., "db1": ..., "dgamma1": ...}`` (often with
``dA``/``dZ`` entries too, which are ignored). :func:`check_model` checks every parameter's
gradient against the cost: the cost becomes the layer's scalar output, its upstream gradient a
scalar, and the gradient of ``W1`` is looked up as ``W1`` or ``dW1``.

A redundant bias before a BatchNorm (``b1`` in ``BN(X W1 + b1)``) has a gradient that cancels
to rounding noise: it is reported as ``zero`` (no evidence), not as a failure.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gradcheck.check import check_layer
from gradcheck.errors import InvalidArgument, LayerError
from gradcheck.layer import coerce, fixed_global_rng
from gradcheck.results import CheckReport

__all__ = ["ModelLayer", "ModelObjectLayer", "NetworkLayer", "check_model", "check_network",
           "find_networks", "from_network", "is_model_object"]


class ModelLayer:
    """A cost of a parameter dict, and its gradients, as a layer whose inputs are the parameters."""

    def __init__(self, cost: Callable[..., Any], grads: Any, name: str) -> None:
        self._cost, self._grads, self.name = cost, grads, name

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        result = self._cost(dict(inputs))
        cache = None
        if isinstance(result, tuple):  # (cost, cache): backprop takes the cache
            result, cache = result[0], result[1] if len(result) == 2 else result[1:]
        value = np.asarray(result)
        if value.size != 1:
            raise LayerError(f"{self.name}: cost must return a scalar, got shape {value.shape}")
        return value.reshape(()), (dict(inputs), cache)

    def _gradients(self, inputs: dict[str, np.ndarray], cache: Any) -> Mapping[str, Any]:
        if not callable(self._grads):
            return self._grads
        found = self._grads(inputs if cache is None else cache)
        if not isinstance(found, Mapping):
            raise LayerError(
                f"{self.name}: grads must return a dict of gradients, got {type(found).__name__}"
            )
        return found

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        inputs, inner = cache
        found = self._gradients(inputs, inner)
        out = {}
        for name in inputs:
            key = name if name in found else f"d{name}"
            if key not in found:
                raise LayerError(
                    f"{self.name}: the gradients have neither {name!r} nor 'd{name}' (they have "
                    f"{', '.join(map(str, found)) or 'nothing'})"
                )
            out[name] = np.asarray(dout) * np.asarray(found[key])
        return out


def check_model(
    cost: Callable[..., Any],
    grads: Any,
    parameters: Mapping[str, Any],
    **options: Any,
) -> CheckReport:
    """Check a network's gradients in the parameter-dict convention.

    Parameters
    ----------
    cost : callable
        ``cost(parameters) -> float``, or ``-> (float, cache)`` (then ``grads`` receives the
        cache). Bind the data with a closure: ``lambda p: compute_cost(forward(X, p), Y)``.
    grads : callable or mapping
        ``grads(parameters) -> {"dW1": ..., ...}`` (or ``grads(cache)``), or the gradients at
        ``parameters`` already computed. Each parameter's gradient is found under its own name
        or ``"d" + name``; other entries (``dA1``, ``dZ1``) are ignored.
    parameters : mapping of str to array
        The parameters to check, never modified.
    **options
        As for :func:`gradcheck.check_layer` (``method``, ``mode``, ``seed``, ``tolerance``,
        ``wrt``).

    Returns
    -------
    CheckReport
        One result per parameter.

    Examples
    --------
    >>> X = np.random.default_rng(1).normal(size=(5, 3))
    >>> cost = lambda p: 0.5 * np.sum((X @ p["W"] + p["b"]) ** 2)
    >>> grads = lambda p: {"dW": X.T @ (X @ p["W"] + p["b"]), "db": (X @ p["W"] + p["b"]).sum(0)}
    >>> params = {"W": np.ones((3, 2)), "b": np.zeros(2)}
    >>> report = check_model(cost, grads, params)
    >>> report.passed, [r.name for r in report.results]
    (True, ['W', 'b'])
    """
    if not callable(cost):
        raise InvalidArgument(f"`cost` must be callable, got {type(cost).__name__}")
    if not callable(grads) and not isinstance(grads, Mapping):
        raise InvalidArgument(
            f"`grads` must be callable or a mapping of gradients, got {type(grads).__name__}"
        )
    if not isinstance(parameters, Mapping) or not parameters:
        raise InvalidArgument(
            f"`parameters` must be a non-empty dict of name to array, got {parameters!r:.60}"
        )
    name = str(getattr(cost, "__name__", "model"))
    return check_layer(ModelLayer(cost, grads, name), parameters, **options)


# --- networks as the courses write them ---------------------------------------------------------

PARAMETER_ARGS = ("parameters", "params", "theta", "weights")
CACHE_ARGS = ("cache", "caches")


def _signature(func: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _fname(func: Any) -> str:
    return str(getattr(func, "__name__", "function"))


class NetworkLayer:
    """A course network as a layer: the inputs are the parameters, the output the cost.

    Every forward runs with ``np.random`` and ``random`` seeded the same way (and restored
    after), so a dropout mask drawn in the forward is the same in every call and the backward
    receives the mask of the cost it differentiates.
    """

    def __init__(self, forward: Callable[..., Any], backward: Callable[..., Any],
                 cost: Callable[..., Any] | None, values: Mapping[str, Any], wrt: str,
                 initial: Any, name: str) -> None:
        self._forward, self._backward, self._cost = forward, backward, cost
        self._values, self._wrt, self.name = dict(values), wrt, name
        self._single = not isinstance(initial, Mapping)
        if self._single:
            self._initial = {wrt: np.array(initial, dtype=np.float64)}
            self._fixed: dict[str, Any] = {}
        else:
            self._initial = {k: np.array(v, copy=True) for k, v in initial.items()
                             if isinstance(v, np.ndarray) and v.dtype.kind in "fc"}
            self._fixed = {k: v for k, v in initial.items() if k not in self._initial}
        if not self._initial:
            raise InvalidArgument(f"{name}: `{wrt}` holds no float arrays to check, got "
                                  f"{type(initial).__name__}")

    def parameters(self) -> dict[str, np.ndarray]:
        """Copies of the parameters the check starts from."""
        return {k: v.copy() for k, v in self._initial.items()}

    def _params(self, inputs: Mapping[str, np.ndarray]) -> Any:
        if self._single:
            return np.array(inputs[self._wrt], copy=True)
        return {**self._fixed, **{k: np.array(v, copy=True) for k, v in inputs.items()}}

    def _bind(self, func: Callable[..., Any], params: Any, extra: list[Any]) -> dict[str, Any]:
        """Arguments by name: the parameters, the caller's values, then ``extra`` (the forward's
        output and cache) in order for the rest; a default is kept when nothing else fits."""
        args: dict[str, Any] = {}
        pending = list(extra)
        for p in _signature(func):
            if p.name == self._wrt or (p.name in PARAMETER_ARGS and not self._single):
                args[p.name] = params
            elif p.name in self._values:
                args[p.name] = copy.deepcopy(self._values[p.name])
            elif p.name in CACHE_ARGS and pending:
                args[p.name] = pending.pop()
            elif pending and p.default is p.empty:
                args[p.name] = pending.pop(0)
            elif p.default is p.empty:
                raise InvalidArgument(
                    f"{_fname(func)} needs `{p.name}`: give it in `values` (CLI: --shape "
                    f"{p.name}=... or --kwarg {p.name}=...); values has "
                    f"{', '.join(self._values) or 'nothing'}")
        return args

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        params = self._params(inputs)
        with fixed_global_rng():
            result = self._forward(**self._bind(self._forward, params, []))
            head, cache = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
            cache = cache[0] if len(cache) == 1 else cache
            value = head
            if self._cost is not None:
                value = self._cost(**self._bind(self._cost, params, [head]))
                value = value[0] if isinstance(value, tuple) else value
        value = np.asarray(value)
        if value.dtype.kind not in "fc":  # a complex cost carries the complex step: keep it
            value = value.astype(np.float64)
        if value.size != 1:
            hint = ("" if self._cost is not None else
                    ": it returns the network's output, so pass cost=compute_cost")
            raise LayerError(f"{self.name}: the cost must be a scalar, got shape "
                             f"{value.shape}{hint}")
        return value.reshape(()), (params, head, cache)

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        params, head, inner = cache
        extra = [head, inner] if self._cost is not None else [inner]
        with fixed_global_rng():
            found = self._backward(**self._bind(self._backward, params, extra))
        if self._single:
            found = found[0] if isinstance(found, tuple) else found
            return {self._wrt: np.asarray(dout) * np.asarray(found)}
        if not isinstance(found, Mapping):
            raise LayerError(f"{self.name}: {_fname(self._backward)} must return a dict of "
                             f"gradients (dW1, db1, ...), got {type(found).__name__}")
        out = {}
        for name in self._initial:
            key = f"d{name}" if f"d{name}" in found else name
            if key not in found:
                raise LayerError(
                    f"{self.name}: {_fname(self._backward)} returned no gradient of `{name}` "
                    f"(looked for 'd{name}' and {name!r}; it has "
                    f"{', '.join(map(str, found)) or 'nothing'})")
            out[name] = np.asarray(dout) * np.asarray(found[key])
        return out


def _wrt_name(forward: Callable[..., Any], wrt: str | None) -> str:
    names = [p.name for p in _signature(forward)]
    if wrt is not None:
        if wrt not in names:
            raise InvalidArgument(f"`wrt` must name a parameter of {_fname(forward)} "
                                  f"({', '.join(names)}), got {wrt!r}")
        return wrt
    found = [n for n in names if n in PARAMETER_ARGS]
    if not found:
        raise InvalidArgument(f"{_fname(forward)} has no argument named like the parameters "
                              f"({', '.join(PARAMETER_ARGS)}): pass wrt=<its name>")
    return found[0]


def _initial(wrt: str, values: Mapping[str, Any], init: Callable[..., Any] | None,
             seed: int) -> Any:
    if wrt in values:
        return coerce(values[wrt])
    if init is None:
        raise InvalidArgument(f"no starting `{wrt}`: give it in `values` or pass init=<the "
                              "function that makes it>, e.g. initialize_parameters")
    args = {}
    for p in _signature(init):
        if p.name in values:
            args[p.name] = copy.deepcopy(values[p.name])
        elif p.default is p.empty:
            raise InvalidArgument(f"{_fname(init)} needs `{p.name}`: give it in `values` "
                                  f"(CLI: --kwarg {p.name}=...)")
    with fixed_global_rng(seed):
        made = init(**args)
    if isinstance(made, tuple):  # a course test case: (X, Y, parameters)
        dicts = [m for m in made if isinstance(m, Mapping)]
        made = dicts[0] if len(dicts) == 1 else made
    if not isinstance(made, (Mapping, np.ndarray, float, int)):
        raise InvalidArgument(f"{_fname(init)} must return the parameters (a dict of arrays), "
                              f"got {type(made).__name__}")
    return made


def from_network(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    values: Mapping[str, Any],
    *,
    cost: Callable[..., Any] | None = None,
    init: Callable[..., Any] | None = None,
    wrt: str | None = None,
    seed: int = 0,
) -> NetworkLayer:
    """Adapt a course network: forward, backward (and a separate cost), bound by name.

    Parameters
    ----------
    forward : callable
        ``forward(X, Y, parameters) -> (cost, cache)``, or ``-> (AL, caches)`` with ``cost``.
        Each argument is bound by name: the parameters (``parameters``, ``params``, ``theta``,
        ``weights``, or ``wrt``), else from ``values`` (``X``, ``Y``, ``lambd``,
        ``keep_prob``), else its default.
    backward : callable
        ``backward(X, Y, cache) -> {"dW1": ..., "db1": ...}`` or ``L_model_backward(AL, Y,
        caches)``: names from ``values`` and the parameters as above; ``cache``/``caches`` get
        the forward's cache, and an unbound first argument gets the forward's output ``AL``
        when there is a separate cost. Gradients are found under ``"d" + name`` or the name;
        ``dA1``/``dZ1`` entries are ignored. For a single array parameter (``theta``), the
        gradient itself.
    values : mapping
        Data and settings by argument name (plain data: arrays, nested lists, numbers); lists
        become arrays as :func:`gradcheck.layer.coerce` says. May hold the starting parameters
        under the parameters' argument name.
    cost : callable, optional
        ``compute_cost(AL, Y)`` (or ``compute_cost_with_regularization(A3, Y, parameters,
        lambd)``): its first argument gets the forward's output.
    init : callable, optional
        ``initialize_parameters(layer_dims)``: called with its arguments from ``values``, under
        ``np.random.seed(seed)``, when ``values`` has no starting parameters.
    wrt : str, optional
        The forward's argument holding the parameters, when it is not named conventionally.
    seed : int
        Seeds the global generators for ``init``; every forward and backward runs under one fixed
        seed (restored after), so a dropout mask is the same in every call.

    Examples
    --------
    >>> def forward_propagation(X, Y, parameters):
    ...     A = X @ parameters["W"]
    ...     return 0.5 * np.sum((A - Y) ** 2), (A, X)
    >>> def backward_propagation(X, Y, cache):
    ...     A, X = cache
    ...     return {"dW": X.T @ (A - Y)}
    >>> data = {"X": np.ones((4, 3)), "Y": np.zeros((4, 1)), "parameters": {"W": np.ones((3, 1))}}
    >>> net = from_network(forward_propagation, backward_propagation, data)
    >>> check_layer(net, net.parameters()).passed
    True
    """
    for label, func in (("forward", forward), ("backward", backward), ("cost", cost),
                        ("init", init)):
        if func is not None and not callable(func):
            raise InvalidArgument(f"`{label}` must be callable, got {type(func).__name__}")
    if not isinstance(values, Mapping):
        raise InvalidArgument(f"`values` must be a mapping of argument name to value, got "
                              f"{type(values).__name__}")
    data = {str(k): coerce(v) for k, v in values.items()}
    name = _wrt_name(forward, wrt)
    initial = _initial(name, data, init, seed)
    data.pop(name, None)
    label = _fname(forward)
    return NetworkLayer(forward, backward, cost, data, name, initial, label)


def check_network(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    values: Mapping[str, Any],
    *,
    cost: Callable[..., Any] | None = None,
    init: Callable[..., Any] | None = None,
    **options: Any,
) -> CheckReport:
    """:func:`from_network`, checked at its starting parameters: one result per parameter.

    ``options`` are :func:`gradcheck.check_layer`'s (``method``, ``mode``, ``seed``, ...) plus
    ``wrt`` naming the parameters' argument.
    """
    wrt = options.pop("wrt", None)
    net = from_network(forward, backward, values, cost=cost, init=init, wrt=wrt,
                       seed=int(options.get("seed", 0)))
    return check_layer(net, net.parameters(), **options)


def find_networks(namespace: Mapping[str, Any]) -> list[dict[str, str | None]]:
    """The forward/backward(/cost/init) sets in a module's namespace, recognised from names and
    signatures: a callable with ``forward`` in its name and a parameters argument, the callable
    named with ``backward`` in its place, a cost when the forward takes no labels (``Y``), and
    an ``initialize_parameters*`` function (the one whose name shares the forward's suffix,
    else the first).

    Examples
    --------
    >>> def L_model_forward(X, parameters): ...
    >>> def L_model_backward(AL, Y, caches): ...
    >>> def compute_cost(AL, Y): ...
    >>> def initialize_parameters_deep(layer_dims): ...
    >>> find_networks(dict(globals()))  # doctest: +NORMALIZE_WHITESPACE
    [{'forward': 'L_model_forward', 'backward': 'L_model_backward', 'cost': 'compute_cost',
      'init': 'initialize_parameters_deep'}]
    """
    funcs = {k: v for k, v in namespace.items() if callable(v) and not k.startswith("_")}
    inits = sorted(k for k in funcs if k.startswith("initialize_parameters"))
    found: list[dict[str, str | None]] = []
    for name, func in funcs.items():
        args = [p.name for p in _signature(func)]
        back = name.replace("forward", "backward")
        if "forward" not in name or back not in funcs or not set(args) & set(PARAMETER_ARGS):
            continue
        suffix = name.split("forward", 1)[1].removeprefix("_propagation")
        cost = None
        if not {"Y", "y", "labels"} & set(args):
            costs = [f"compute_cost{suffix}", "compute_cost", "cost"]
            cost = next((c for c in costs if c in funcs), None)
        init = next((i for i in inits if suffix and i.endswith(suffix)), inits[0] if inits
                    else None)
        found.append({"forward": name, "backward": back, "cost": cost, "init": init})
    return found


# --- model objects: obj.params and obj.loss(X, y) -> (loss, grads) -----------------------------


def is_model_object(obj: Any) -> bool:
    """An object holding its parameters in a ``params`` dict, with ``loss(X, y) -> (loss,
    grads)`` and no forward method (cs231n's ``TwoLayerNet``, ``FullyConnectedNet``)."""
    from gradcheck.layer import FORWARD_METHODS

    has_forward = any(m != "__call__" and callable(getattr(obj, m, None))
                      for m in FORWARD_METHODS)
    return (not has_forward and callable(getattr(obj, "loss", None))
            and isinstance(getattr(obj, "params", None), dict))


class ModelObjectLayer:
    """A model object as a layer: the inputs are its float parameters, the output the loss of
    ``obj.loss(**data)``, the gradients those it returns. Every call works on a copy of the
    object with the parameters set, under the fixed global random state (dropout masks)."""

    kind = "model"

    def __init__(self, obj: Any, data: Mapping[str, Any]) -> None:
        self._obj, self._data = obj, dict(data)
        self.name = type(obj).__name__
        self._params = {k: np.array(v, copy=True) for k, v in obj.params.items()
                        if isinstance(v, np.ndarray) and v.dtype.kind in "fc"}
        if not self._params:
            raise InvalidArgument(f"{self.name}.params holds no float arrays to check")

    def required_inputs(self) -> tuple[tuple[str, ...], str]:
        return (), f"{self.name}'s parameters (its own, from params)"

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._params.items()}

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        work = copy.deepcopy(self._obj)
        for key, value in inputs.items():
            if key not in self._params:
                raise InvalidArgument(f"`inputs` has {key!r}, which is not in {self.name}.params "
                                      f"({', '.join(self._params)})")
            work.params[key] = np.array(value, copy=True)
        with fixed_global_rng():
            result = work.loss(**copy.deepcopy(self._data))
        if not isinstance(result, tuple) or len(result) != 2 or not isinstance(result[1], Mapping):
            raise LayerError(f"{self.name}.loss must return (loss, grads) when given labels, got "
                             f"{type(result).__name__}")
        loss = np.asarray(result[0])
        if loss.size != 1:
            raise LayerError(f"{self.name}.loss must return a scalar loss, got shape {loss.shape}")
        return loss.reshape(()), dict(result[1])

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        missing = [k for k in self._params if k not in cache]
        if missing:
            raise LayerError(f"{self.name}.loss returned no gradient of {missing[0]!r} (it "
                             f"returned {', '.join(map(str, cache)) or 'none'})")
        return {k: np.asarray(dout) * np.asarray(cache[k]) for k in self._params}
