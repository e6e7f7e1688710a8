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

import contextlib
import copy
import inspect
import random
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gradcheck.errors import GradcheckError, InvalidArgument, LayerError
from gradcheck.results import CheckReport

__all__ = [
    "Layer",
    "annotate",
    "coerce",
    "construct",
    "fixed_global_rng",
    "from_callables",
    "from_class",
    "from_functions",
    "layer_name",
    "plan_calls",
    "unfinished",
]


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


def _positional_count(func: Callable[..., Any]) -> int | None:
    """How many positional arguments ``func`` accepts, or None when it takes ``*args``."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


class _Outputs:
    """The cache of a multi-output forward: the outputs' shapes, then the layer's own cache."""

    def __init__(self, shapes: list[tuple[int, ...]], cache: Any) -> None:
        self.shapes, self.cache = shapes, cache


class FunctionLayer:
    """Course-style ``forward(*arrays, *config)`` / ``backward(dout, cache)`` functions.

    A forward returning ``(out_1, ..., out_k, cache)`` with ``k > 1`` is a multi-output layer:
    the outputs are flattened into one array (so the checker's scalar is ``sum_i <g_i, out_i>``)
    and the backward receives ``g_1, ..., g_k, cache``.
    """

    def __init__(
        self,
        forward: Callable[..., Any],
        backward: Callable[..., Any] | None,
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
        self.kind = "loss" if backward is None else "layer"

    def required_inputs(self) -> tuple[tuple[str, ...], str]:
        """The forward's parameters without a default that ``inputs`` must give."""
        params = inspect.signature(self._forward).parameters.values()
        names = tuple(p.name for p in params if p.name in self._order and p.default is p.empty
                      and p.kind is not p.VAR_KEYWORD)
        return names, f"parameters of {self.name}_forward without a default"

    def _call(self, inputs: Mapping[str, np.ndarray]) -> Any:
        unknown = [n for n in inputs if n not in self._order]
        if unknown:
            raise InvalidArgument(
                f"`inputs` has {unknown[0]!r}, which is not a parameter of "
                f"{getattr(self._forward, '__name__', self.name)}; expected names from "
                f"{self._order}"
            )
        return self._forward(**inputs, **copy.deepcopy(self._config))

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        result = self._call(inputs)
        if self._backward is None:
            return self._loss(result)
        if not isinstance(result, tuple) or len(result) <= 2:
            return result
        return self._multi(result)

    def _loss(self, result: Any) -> tuple[Any, Any]:
        if not isinstance(result, tuple) or len(result) < 2:
            raise LayerError(
                f"{self.name}: a loss must return (loss, dx), got {type(result).__name__}"
            )
        loss = np.asarray(result[0])
        if loss.size != 1:
            raise LayerError(f"{self.name}: the loss must be a scalar, got shape {loss.shape}")
        grads = result[1] if len(result) == 2 else result[1:]
        return loss.reshape(()), grads

    def _multi(self, result: tuple[Any, ...]) -> tuple[Any, Any]:
        outs = [np.asarray(o) for o in result[:-1]]
        wants = _positional_count(self._backward) if self._backward else None
        if wants is not None and wants != len(outs) + 1:
            raise LayerError(
                f"{self.name}: forward returned {len(outs)} outputs and a cache, so backward "
                f"must take {len(outs)} upstream gradients and the cache; it takes {wants} "
                "arguments"
            )
        flat = np.concatenate([o.ravel() for o in outs])
        return flat, _Outputs([o.shape for o in outs], result[-1])

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        if self._backward is None:  # a loss: its gradient came with the forward
            grads = cache if isinstance(cache, (tuple, list)) else (cache,)
            return self._named([np.asarray(dout) * np.asarray(g) for g in grads])
        if isinstance(cache, _Outputs):
            sizes = np.cumsum([int(np.prod(s)) for s in cache.shapes])[:-1]
            parts = [p.reshape(s) for p, s in zip(np.split(np.asarray(dout), sizes),
                                                  cache.shapes, strict=True)]
            return self._named(self._backward(*parts, cache.cache))
        return self._named(self._backward(dout, cache))

    def _named(self, grads: Any) -> dict[str, Any]:
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
    backward: Callable[..., Any] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> FunctionLayer:
    """Adapt course-style functions: a layer, a multi-output layer, or a ``(loss, dx)`` loss.

    Parameters
    ----------
    forward : callable
        ``forward(x, gamma, beta, bn_param) -> (out, cache)``; arrays are passed by the names of
        its parameters, so the keys of ``check_layer``'s ``inputs`` must match them. A forward
        returning ``(out_1, ..., out_k, cache)`` is multi-output (``lstm_step_forward``).
    backward : callable, optional
        ``backward(dout, cache) -> (dx, dgamma, dbeta)``, one gradient per array parameter, in
        the order of the forward's parameters (``backward(dout_1, ..., dout_k, cache)`` for a
        multi-output forward). Omitted: ``forward`` is a loss returning ``(loss, dx)``, the
        course convention of ``softmax_loss(x, y)``; its gradient is checked against the loss.
    config : mapping, optional
        Non-array and integer parameters by name, e.g. ``{"bn_param": {"mode": "train"}}`` or
        ``{"y": labels}``; deep-copied for every call so the caller's values are never
        modified, and never differentiated.
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

    A loss in the ``loss, dx = f(x, y)`` convention, with integer labels in ``config``:

    >>> def sq_loss(x, y):
    ...     d = x[np.arange(len(y)), y] - 1.0
    ...     dx = np.zeros_like(x)
    ...     dx[np.arange(len(y)), y] = d
    ...     return 0.5 * np.sum(d * d), dx
    >>> loss = from_functions(sq_loss, config={"y": np.array([0, 1])})
    >>> out, cache = loss.forward({"x": np.ones((2, 2))})
    >>> out.shape, loss.backward(np.array(2.0), cache)["x"].shape
    ((), (2, 2))
    """
    _require_callable("forward", forward)
    if backward is not None:
        _require_callable("backward", backward)
    if config is not None and not isinstance(config, Mapping):
        raise InvalidArgument(f"`config` must be a mapping of name to value, got {config!r}")
    base = getattr(forward, "__name__", "layer")
    default = base[: -len("_forward")] if base.endswith("_forward") else base
    return FunctionLayer(forward, backward, config or {}, name or default)


# --- classes: parameters and gradients wherever the framework keeps them ----------------------

# A location inside an object: steps ("a", attribute) or ("i", key or index).
_Path = tuple[tuple[str, Any], ...]
PARAM_DICTS = ("params", "parameters", "weights", "_params")
GRAD_DICTS = ("grads", "gradients", "grad", "_grads")


def _grad_keys(name: str) -> list[str]:
    return [name, f"d{name}", f"{name}_grad", f"grad_{name}", f"d_{name}"]


def _get(obj: Any, path: _Path) -> Any:
    for kind, key in path:
        obj = getattr(obj, key) if kind == "a" else obj[key]
    return obj


def _find(obj: Any, path: _Path) -> Any:
    """The value at ``path``, or None when it does not exist."""
    try:
        return _get(obj, path)
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def _set(obj: Any, path: _Path, value: Any) -> None:
    parent, (kind, key) = _get(obj, path[:-1]), path[-1]
    if kind == "a":
        setattr(parent, key, value)
    else:
        parent[key] = value


def _exists(obj: Any, path: _Path) -> bool:
    try:
        _get(obj, path)
    except (AttributeError, KeyError, IndexError, TypeError):
        return False
    return True


def _show(path: _Path) -> str:
    text = ""
    for kind, key in path:
        text += f".{key}" if kind == "a" else f"[{key!r}]"
    return text.lstrip(".")


def parse_location(text: str) -> _Path:
    """``"dW"`` -> attribute, ``"grads[W]"`` -> a key of a dict attribute, ``"W.grad"`` -> nested.

    Examples
    --------
    >>> parse_location("grads[W]")
    (('a', 'grads'), ('i', 'W'))
    """
    path: list[tuple[str, Any]] = []
    for part in text.replace("]", "").split("."):
        head, _, key = part.partition("[")
        if not head.isidentifier():
            raise InvalidArgument(
                f"a location must look like attr, attr[key] or attr.sub, got {text!r}"
            )
        path.append(("a", head))
        if key:
            path.append(("i", int(key) if key.isdigit() else key.strip("'\"")))
    return tuple(path)


def _is_float_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in "fc" and value.size > 0


@dataclass(frozen=True)
class _Param:
    """A parameter: where its value lives (``paths``: every alias) and where its gradient may."""

    name: str
    paths: tuple[_Path, ...]
    grads: tuple[_Path, ...]


def _dict_params(obj: Any, params_attr: str | None, grads_attr: str | None) -> list[_Param]:
    found = []
    grad_dicts = (grads_attr,) if grads_attr else GRAD_DICTS
    for attr in (params_attr,) if params_attr else PARAM_DICTS:
        holder = getattr(obj, attr, None)
        items: list[tuple[Any, Any]]
        if isinstance(holder, dict):
            items = [(k, v) for k, v in holder.items() if isinstance(k, str)]
        elif isinstance(holder, list):
            items = list(enumerate(holder))
        else:
            continue
        for key, value in items:
            if not _is_float_array(value):
                continue
            keys = _grad_keys(key) if isinstance(key, str) else [key]
            grads = tuple((("a", g), ("i", k)) for g in grad_dicts for k in keys)
            name = key if isinstance(key, str) else f"{attr}[{key}]"
            found.append(_Param(name, ((("a", attr), ("i", key)),), grads))
    return found


def _attribute_params(obj: Any, skip: set[str]) -> list[_Param]:
    found = []
    for attr, value in getattr(obj, "__dict__", {}).items():
        if attr in skip:
            continue
        if _is_float_array(value):
            grads = tuple([(("a", g),) for g in _grad_keys(attr)[1:]]
                          + [(("a", d), ("i", k)) for d in GRAD_DICTS for k in _grad_keys(attr)])
            grads = tuple(g for g in grads if _exists(obj, g))
            if grads:
                found.append(_Param(attr, ((("a", attr),),), grads))
        elif _is_float_array(getattr(value, "data", None)) and hasattr(value, "grad"):
            found.append(_Param(attr, ((("a", attr), ("a", "data")),),
                                ((("a", attr), ("a", "grad")),)))
    return found


def _aliases(obj: Any, params: list[_Param]) -> list[_Param]:
    """Merge parameters that are the same array under two names (``self.W is params["W"]``)."""
    merged: dict[int, _Param] = {}
    for p in params:
        key = id(_find(obj, p.paths[0]))
        if key in merged:
            old = merged[key]
            merged[key] = _Param(old.name, old.paths + p.paths, old.grads + p.grads)
        else:
            merged[key] = p
    return list(merged.values())


def _discover(obj: Any, params_attr: str | None, grads_attr: str | None,
              names: Mapping[str, str], skip: set[str]) -> list[_Param]:
    explicit = [_Param(k, (parse_location(k),), (parse_location(v),)) for k, v in names.items()]
    taken = {id(_find(obj, p.paths[0])) for p in explicit}
    found = _dict_params(obj, params_attr, grads_attr)
    if params_attr is None:
        found += _attribute_params(obj, skip)
    found = [p for p in _aliases(obj, found) if id(_find(obj, p.paths[0])) not in taken]
    return explicit + found


def _moved(work: Any, params: Mapping[str, _Param], before: Mapping[str, np.ndarray],
           ) -> dict[str, float]:
    """Parameters whose value changed, with the largest change."""
    moved = {}
    for n, p in params.items():
        now = np.asarray(_get(work, p.paths[0]))
        if now.shape != before[n].shape:
            moved[n] = float("inf")
        elif not np.array_equal(now, before[n]):
            moved[n] = float(np.max(np.abs(now - before[n])))
    return moved


# --- classes: how the object is called ---------------------------------------------------------

FORWARD_METHODS = ("forward", "forward_pass", "fprop", "__call__", "fn")
BACKWARD_METHODS = ("backward", "backward_pass", "bprop", "backprop", "gradient", "grad",
                    "derivative", "deriv")
# A backward parameter with one of these names (or the forward's input name) receives the input.
INPUT_NAMES = frozenset({"x", "X", "z", "Z", "inputs", "input", "x_in", "inp"})
CACHE_NAMES = frozenset({"cache", "caches", "ctx", "saved"})
# Forward flags that select the training computation: passed True (the backward is the training
# one: dropout masks, batch statistics).
TRAINING_FLAGS = frozenset({"training", "train", "is_training", "is_train", "train_mode",
                            "training_mode"})
# Where a forward that returns nothing leaves its output, and a backward its input gradient.
OUTPUT_ATTRS = ("output", "outputs", "out", "y", "Y", "A")
DX_ATTRS = ("dinputs", "dinput", "dx", "dX", "d_inputs", "grad_input", "grad_inputs", "dA_prev",
            "delta")
_CALL_SEED = 0x6763  # the global RNGs are seeded with it before every call of the user's code


@contextlib.contextmanager
def fixed_global_rng(seed: int = _CALL_SEED) -> Iterator[None]:
    """Seed ``np.random`` and ``random`` for the block, then put their states back: a dropout
    mask drawn from the global generator is the same in every call, and the caller's generators
    are left where they were."""
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002 - the user's code draws from the global generator
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)


def _method(obj: Any, names: Sequence[str]) -> str | None:
    for name in names:
        if name == "__call__" and type(obj).__call__ is object.__call__:
            continue
        if callable(getattr(obj, name, None)):
            return name
    return None


@dataclass(frozen=True)
class _Calls:
    """How to call the object: method names, the forward's keywords, the backward's arguments."""

    forward: str
    backward: str
    input: str  # the name of the forward's input parameter
    kwargs: Mapping[str, Any]  # flags and extra arguments for the forward
    roles: tuple[str, ...]  # per backward argument: "dout", "x" or "cache"
    loss: bool = False  # backward(prediction, labels): the gradient of the mean loss

    @property
    def derivative(self) -> bool:
        """``backward(x) -> f'(x)``: an activation's elementwise derivative."""
        return "dout" not in self.roles and not self.loss

    @property
    def douts(self) -> int:
        return self.roles.count("dout")


def _parameters(func: Any) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return []


def _forward_kwargs(cls: str, method: str, params: list[inspect.Parameter],
                    given: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in given.items() if any(p.name == k for p in params)}
    unknown = [k for k in given if k not in kwargs]
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params):
        raise InvalidArgument(f"`forward_kwargs` has {unknown[0]!r}, which is not a parameter of "
                              f"{cls}.{method} ({', '.join(p.name for p in params)})")
    for p in params[1:]:
        if p.name in kwargs or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in TRAINING_FLAGS:
            kwargs[p.name] = True
        elif p.default is p.empty:
            raise InvalidArgument(
                f"{cls}.{method} takes `{p.name}` besides its input `{params[0].name}`: pass "
                f"forward_kwargs={{{p.name!r}: value}}")
    return kwargs


def _roles(params: list[inspect.Parameter], input_name: str,
           kwargs: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    roles = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in CACHE_NAMES:
            roles.append("cache")
        elif kwargs and p.name in kwargs and p.kind is not p.KEYWORD_ONLY:
            roles.append(f"kw:{p.name}")  # the labels a loss's backward takes again
        elif p.default is not p.empty:
            continue  # retain_grads=True and the like keep their defaults
        elif p.name == input_name or p.name in INPUT_NAMES:
            roles.append("x")
        else:
            roles.append("dout")
    return tuple(roles)


def plan_calls(obj: Any, forward_kwargs: Mapping[str, Any] | None = None) -> _Calls:
    """Recognise how ``obj`` is called, from its methods and their signatures.

    Forward: ``forward``, ``forward_pass``, ``fprop``, ``__call__`` or ``fn``; its first
    parameter is the input, a training flag (``training``, ``train``, ...) is passed True, other
    parameters need a default or ``forward_kwargs``. Backward: ``backward``, ``backward_pass``,
    ``bprop``, ``backprop``, ``gradient``, ``grad``, ``derivative`` or ``deriv``; each argument
    is the upstream gradient, or the input when it is named like the forward's input (``x``,
    ``z``, ``inputs``), or the forward's cache (``cache``). A backward taking only the input is an
    activation's derivative: ``dx = dout * backward(x)``.

    Examples
    --------
    >>> class Sigmoid:
    ...     def fn(self, z): return 1 / (1 + np.exp(-z))
    ...     def grad(self, x): return self.fn(x) * (1 - self.fn(x))
    >>> calls = plan_calls(Sigmoid())
    >>> calls.forward, calls.backward, calls.derivative
    ('fn', 'grad', True)
    """
    cls = type(obj).__name__
    forward = _method(obj, FORWARD_METHODS)
    backward = _method(obj, BACKWARD_METHODS)
    if forward is None or backward is None:
        missing = "forward" if forward is None else "backward"
        names = FORWARD_METHODS if forward is None else BACKWARD_METHODS
        raise InvalidArgument(f"`obj` must have a callable `{missing}` method (or one of "
                              f"{', '.join(names[1:])}), got {cls}")
    fparams = [p for p in _parameters(getattr(obj, forward))
               if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "kwargs"]
    if not fparams or fparams[0].kind in (fparams[0].VAR_POSITIONAL, fparams[0].VAR_KEYWORD):
        return _Calls(forward, backward, "x", dict(forward_kwargs or {}), ("dout",))
    kwargs = _forward_kwargs(cls, forward, fparams, forward_kwargs or {})
    roles = _roles(_parameters(getattr(obj, backward)), fparams[0].name, kwargs)
    loss = _is_loss(cls, roles)
    if loss:
        roles = ("x", *roles[1:])
    return _Calls(forward, backward, fparams[0].name, kwargs, roles or ("dout",), loss)


def _is_loss(cls: str, roles: tuple[str, ...]) -> bool:
    """A loss object (named like one, as ``*_loss`` functions are): its backward takes the
    prediction and the labels the forward took (``backward(y_pred, y_true)``), and gives the
    gradient of the mean of what the forward returns (per-sample losses, or their mean)."""
    return ("loss" in cls.lower() and len(roles) >= 2 and roles[0] == "dout"
            and any(r.startswith("kw:") for r in roles[1:]))


# --- classes: finding arrays by what the calls do to them ---------------------------------------


def _arrays(obj: Any) -> dict[_Path, np.ndarray]:
    """Every float array on ``obj`` two levels deep: attributes, items of dict and list
    attributes, attributes of attribute objects (``self.weight.data``)."""
    found: dict[_Path, np.ndarray] = {}
    for attr, value in getattr(obj, "__dict__", {}).items():
        if attr.startswith("__"):
            continue
        here: _Path = (("a", attr),)
        if _is_float_array(value):
            found[here] = value
        elif isinstance(value, dict):
            found.update({(*here, ("i", k)): v for k, v in value.items()
                          if isinstance(k, (str, int)) and _is_float_array(v)})
        elif isinstance(value, list):
            found.update({(*here, ("i", i)): v for i, v in enumerate(value)
                          if _is_float_array(v)})
        elif hasattr(value, "__dict__") and not callable(value):
            found.update({(*here, ("a", a)): v for a, v in vars(value).items()
                          if _is_float_array(v)})
    return found


def _changed(before: Mapping[_Path, np.ndarray], after: Mapping[_Path, np.ndarray]
             ) -> tuple[set[_Path], set[_Path]]:
    """Paths whose array appeared, and paths whose array changed value or shape."""
    new = {p for p in after if p not in before}
    changed = {p for p in after if p in before and (
        after[p].shape != before[p].shape or not np.array_equal(after[p], before[p]))}
    return new, changed


def _copies(arrays: Mapping[_Path, np.ndarray]) -> dict[_Path, np.ndarray]:
    return {p: np.array(v, copy=True) for p, v in arrays.items()}


def _revert(pristine: Any, work: Any, changed: set[_Path]) -> list[str]:
    """Put back what the exploratory forward changed in place of the object's own state:
    arrays it updated (running statistics) and lists it appended to (inputs kept per call);
    returns the lists."""
    reverted = []  # only the lists are named: updated running statistics are no surprise
    for path in sorted(changed, key=repr):
        _set(work, path, copy.deepcopy(_get(pristine, path)))
    for attr, value in list(vars(work).items()):
        old = getattr(pristine, attr, None)
        for key, item, before in _grown(value, old):
            target = value if key is None else value[key]
            target[:] = copy.deepcopy(before)
            reverted.append(attr if key is None else f"{attr}[{key!r}]")
            del item
    return reverted


def _grown(value: Any, old: Any) -> list[tuple[Any, Any, Any]]:
    """Lists (or lists in a dict) longer than before: (key or None, list, the list before)."""
    if isinstance(value, list) and isinstance(old, list) and len(value) > len(old):
        return [(None, value, old)]
    if isinstance(value, dict) and isinstance(old, dict):
        return [(k, v, old[k]) for k, v in value.items() if isinstance(v, list)
                and isinstance(old.get(k), list) and len(v) > len(old[k])]
    return []


def _by_name(name: str, candidates: Iterable[_Path]) -> _Path | None:
    """The one candidate whose last step names ``name`` (``gamma_gradient`` for ``gamma``)."""
    hits = [c for c in candidates if name.lower() in str(c[-1][1]).lower()]
    return hits[0] if len(hits) == 1 else None


# What each ClassLayer noticed, kept outside the adapter's __dict__: the checker restores the
# layer's attributes after a check, and these must survive it.
@dataclass
class _Seen:
    notes: list[str]
    problems: list[str]
    lazy_unchecked: bool  # the first forward has not yet been watched for new parameters


_SEEN: weakref.WeakKeyDictionary[Any, _Seen] = weakref.WeakKeyDictionary()


class _Call:
    """The cache of one forward: the object after it, the forward's own cache, the outputs'
    shapes when the forward returned several."""

    def __init__(self, work: Any, x: Any, cache: Any, shapes: list[tuple[int, ...]] | None
                 ) -> None:
        self.work, self.x, self.cache, self.shapes = work, x, cache, shapes


class ClassLayer:
    """Objects with a forward and a backward, parameters and gradients found by convention.

    ``notes`` and ``problems`` collect what the adapter saw (gradients that accumulate, a
    backward that updates the parameters, parameters left unchecked); :func:`annotate` adds them
    to a report. Every forward works on a deep copy of one template object (the object as given,
    or, with ``example``, after one forward with what that forward accumulated put back), with
    the global random generators seeded the same way, so every call starts from the same state.
    """

    @property
    def notes(self) -> list[str]:
        """Warnings: gradients that accumulate, parameters without a gradient."""
        return _SEEN[self].notes

    @property
    def problems(self) -> list[str]:
        """Failures the checker cannot see: a backward that changes the parameters."""
        return _SEEN[self].problems

    def __init__(self, obj: Any, input_name: str, params: str | None, grads: str | None,
                 names: Mapping[str, str], example: Any,
                 forward_kwargs: Mapping[str, Any] | None = None) -> None:
        self._input, self._params_attr, self._grads_attr = input_name, params, grads
        self.name = type(obj).__name__
        self._calls = plan_calls(obj, forward_kwargs)
        _SEEN[self] = _Seen([], [], example is None)
        self._base = obj
        self._out: _Path | None = None
        self._dx: _Path | None = None
        self._returned: dict[str, int] = {}  # parameter -> index in backward's returned tuple
        if params is not None and not isinstance(getattr(obj, params, None), (dict, list)):
            raise InvalidArgument(
                f"`params` names the attribute {params!r}, which must be a dict or list on "
                f"{self.name}, got {type(getattr(obj, params, None)).__name__}"
            )
        if example is None:
            self._params = {p.name: p for p in _discover(obj, params, grads, names, set())}
            self._unchecked(obj, set(), {id(v) for p in self._params.values()
                                          for v in (_find(obj, p.paths[0]),)})
        else:
            self._explore(obj, np.array(example, copy=True), names)
            self._probe()

    # -- calling the user's object --

    def _run_forward(self, work: Any, x: np.ndarray, seed: int = _CALL_SEED,
                     ) -> tuple[Any, Any, Any]:
        """(output, forward's own cache, shapes of several outputs or None)."""
        with fixed_global_rng(seed):
            result = getattr(work, self._calls.forward)(x, **self._calls.kwargs)
        if self._calls.loss and result is not None:
            return np.mean(result), None, None  # per-sample losses: the mean is the loss
        cache = None
        if isinstance(result, tuple):
            if "cache" in self._calls.roles and len(result) == 2:
                result, cache = result
            elif self._calls.douts > 1 and len(result) == self._calls.douts:
                outs = [np.asarray(o) for o in result]
                flat = np.concatenate([o.ravel() for o in outs])
                return flat, None, [o.shape for o in outs]
            else:
                result = result[0]
        if result is None and self._out is not None:
            result = _find(work, self._out)
        return result, cache, None

    def _run_backward(self, call: _Call, dout: np.ndarray) -> Any:
        douts: list[Any] = [dout]
        if call.shapes is not None:
            sizes = np.cumsum([int(np.prod(s)) for s in call.shapes])[:-1]
            douts = [p.reshape(s) for p, s in zip(np.split(np.asarray(dout), sizes),
                                                  call.shapes, strict=True)]
        values = {"x": iter([self._prediction(call)] * len(self._calls.roles)),
                  "dout": iter(douts),
                  "cache": iter([call.cache] * len(self._calls.roles))}
        args = [copy.deepcopy(self._calls.kwargs[role[3:]]) if role.startswith("kw:")
                else next(values[role]) for role in self._calls.roles]
        with fixed_global_rng():
            result = getattr(call.work, self._calls.backward)(*args)
        if self._calls.loss:  # the gradient of the loss itself: times the scalar dout
            return None if result is None else np.asarray(dout) * np.asarray(result)
        if self._calls.derivative:
            return np.asarray(dout) * np.asarray(result)
        return result

    def _prediction(self, call: _Call) -> Any:
        """What a backward taking the input gets: the input, or for a loss object whose forward
        stored an ``output`` shaped like its input (softmax and cross-entropy in one class),
        that output: its backward is called as ``backward(self.output, y_true)``."""
        out = getattr(call.work, "output", None) if self._calls.loss else None
        if out is not None and _is_float_array(out) and np.shape(out) == np.shape(call.x):
            return out
        return call.x

    # -- the exploratory calls --

    def _explore(self, obj: Any, x: np.ndarray, names: Mapping[str, str]) -> None:
        """Exploratory calls on copies: which arrays are parameters, where the output, the
        input's gradient and the parameters' gradients are, what a forward accumulates.

        A float array the forward writes on every call (compared over two inputs) is a cache or
        state, not a parameter: lazily created weights are written once, ``self.x`` each time.
        """
        self._example = x
        pristine = copy.deepcopy(obj)
        before = _copies(_arrays(pristine))
        work = copy.deepcopy(pristine)
        self._explore_forward(work, x, before)
        _, changed = _changed(before, _arrays(work))
        reverted = _revert(pristine, work, {p for p in changed if _exists(pristine, p)})
        if reverted:
            self.notes.append(f"forward appends to {', '.join(reverted)} at every call: each "
                              "call of the check starts from their contents before it")
        self._base = work
        again = copy.deepcopy(work)
        template = _copies(_arrays(work))
        x2 = np.roll(x, 1) if x.dtype.kind in "iub" else x * 0.5 + 0.25  # indices stay ints
        self._run_forward(again, x2, _CALL_SEED + 1)  # a random mask is drawn anew too
        new, rewritten = _changed(template, _arrays(again))
        caches = new | rewritten | {p for p in template if _find(work, p) is x}
        self._explore_backward(x, names, caches | ({self._out} if self._out else set()))

    def _explore_forward(self, work: Any, x: np.ndarray, before: Mapping[_Path, Any]) -> Any:
        try:
            out, _, _ = self._run_forward(work, x)
        except Exception as exc:
            raise LayerError(f"{self.name}: {self._calls.forward} raised {type(exc).__name__}: "
                             f"{exc} (a first call on a copy, to find the parameters and "
                             "gradients)") from exc
        if out is None:
            new, changed = _changed(before, _arrays(work))
            fresh = [p for p in new | changed if _find(work, p) is not x]
            named = [p for p in new | changed if len(p) == 1 and p[0][1] in OUTPUT_ATTRS]
            named.sort(key=lambda p: OUTPUT_ATTRS.index(p[0][1]))  # self.output = inputs too
            self._out = named[0] if named else (fresh[0] if len(fresh) == 1 else None)
            if self._out is None:
                raise LayerError(f"{self.name}: {self._calls.forward} returned None and stored no "
                                 f"output where expected ({', '.join(OUTPUT_ATTRS)})")
            out = _get(work, self._out)
        return out

    def _explore_backward(self, x: np.ndarray, names: Mapping[str, str],
                          caches: set[_Path]) -> None:
        work = copy.deepcopy(self._base)
        result, cache, shapes = self._run_forward(work, x)
        before = _copies(_arrays(work))
        g = np.random.default_rng(0).standard_normal(np.shape(result))
        try:
            returned = self._run_backward(_Call(work, x, cache, shapes), g)
        except Exception as exc:
            raise LayerError(f"{self.name}: {self._calls.backward} raised {type(exc).__name__}: "
                             f"{exc} (a first call on a copy, to find the gradients)") from exc
        new_b, changed_b = _changed(before, _arrays(work))
        appeared = (new_b | changed_b) - caches
        skip = {str(p[0][1]) for p in caches if len(p) == 1}
        found = _discover(work, self._params_attr, self._grads_attr, names, skip)
        self._params = {p.name: p for p in found if _exists(self._base, p.paths[0])
                        and p.paths[0] not in caches}
        claimed = {g for p in self._params.values() for g in p.grads if _exists(work, g)}
        claimed |= {p.paths[0] for p in self._params.values()}
        self._find_dx(work, x, returned, appeared - claimed)
        self._find_grads(work, returned, appeared - claimed - {self._dx}, caches)

    def _find_dx(self, work: Any, x: np.ndarray, returned: Any, appeared: set[_Path]) -> None:
        if returned is not None or x.dtype.kind in "iub":  # indices have no gradient
            return
        names = (f"d{self._calls.input}", *DX_ATTRS)
        named = [(("a", n),) for n in names if (("a", n),) in appeared]
        shaped = [p for p in appeared if np.shape(_get(work, p)) == np.shape(x)]
        self._dx = named[0] if named else (shaped[0] if len(shaped) == 1 else None)
        if self._dx is None:
            raise LayerError(f"{self.name}: {self._calls.backward} returned None and stored no "
                             f"gradient of the input where expected ({', '.join(names)})")

    def _find_grads(self, work: Any, returned: Any, appeared: set[_Path],
                    caches: set[_Path]) -> None:
        """Every other float array of the object is a parameter: its gradient is one that
        appeared after backward with its shape (and name), or a position in a returned tuple;
        otherwise a note says it is not checked."""
        known = {p.paths[0] for p in self._params.values()}
        aliases = {id(_find(self._base, k)) for k in known}
        for path in sorted(_arrays(self._base), key=repr):
            if (path in known or path in caches or path[0][1] in GRAD_DICTS
                    or _is_grad(path, known) or id(_find(self._base, path)) in aliases):
                continue
            self._params[_show(path)] = _Param(_show(path), (path,), ())
        appeared -= set(_arrays(self._base))  # a parameter an update moved is no gradient
        extra = list(returned[1:]) if isinstance(returned, tuple) else []
        first_extra = len(returned) - len(extra) if isinstance(returned, tuple) else 0
        todo = {n: p for n, p in self._params.items()
                if not (p.grads and any(_exists(work, g) for g in p.grads))}
        shapes = {n: np.shape(_get(work, p.paths[0])) for n, p in todo.items()}
        for name, p in todo.items():  # first by shape and name: gamma_update for gamma
            same = [a for a in appeared if np.shape(_get(work, a)) == shapes[name]]
            self._found(name, p, _by_name(str(p.paths[0][-1][1]), same), appeared)
        for name, p in todo.items():  # then the one array of a shape only one parameter has
            if name not in self._params or self._params[name].grads:
                continue
            same = [a for a in appeared if np.shape(_get(work, a)) == shapes[name]]
            rivals = [n for n in todo if shapes[n] == shapes[name] and n in self._params
                      and not self._params[n].grads]
            if self._found(name, p, same[0] if len(same) == len(rivals) == 1 else None,
                           appeared):
                continue
            if extra and np.shape(extra[0]) == shapes[name]:
                self._returned[name] = first_extra
                first_extra += 1
                extra.pop(0)
            else:
                self._unfound(name, p, shapes[name])

    def _found(self, name: str, p: _Param, hit: _Path | None, appeared: set[_Path]) -> bool:
        if hit is None:
            return False
        self._params[name] = replace(p, grads=(hit,))
        appeared.discard(hit)
        self.notes.append(f"the gradient of `{name}` was found at `{_show(hit)}` (it appeared "
                          "after backward with its shape)")
        return True

    def _unfound(self, name: str, p: _Param, shape: tuple[int, ...]) -> None:
        tried = ", ".join(_show(g) for g in p.grads[:3]) or f"d{name}, {name}_grad"
        self.notes.append(f"`{name}` (a float array of shape {shape}) has no gradient after "
                          f"backward (tried {tried}, ...): not checked; name its gradient with "
                          f"names={{{name!r}: 'location'}} (CLI: --grad {name}=LOCATION)")
        del self._params[name]

    def _unchecked(self, obj: Any, taken: set[_Path], checked: set[int]) -> None:
        """Without an example: name the float arrays that are not checked."""
        for path, value in _arrays(obj).items():
            if id(value) in checked or path[0][1] in GRAD_DICTS or path in taken:
                continue
            if _is_grad(path, {p.paths[0] for p in self._params.values()}):
                continue
            self.notes.append(f"`{_show(path)}` (a float array of shape {value.shape}) has no "
                              "gradient found before any call: not checked; pass example=<an "
                              "input> so gradients stored by backward are found, or name it "
                              f"with names={{{_show(path)!r}: 'location'}}")

    def _probe(self) -> None:
        """Run backward twice on one copy: detect gradients that accumulate (``+=``)."""
        x = self._example_input()
        work = copy.deepcopy(self._base)
        result, cache, shapes = self._run_forward(work, x)
        call = _Call(work, x, cache, shapes)
        g = np.random.default_rng(0).standard_normal(np.shape(result))
        try:
            first = self._gradients(call, g, record=False)
            self._run_backward(call, g)
        except GradcheckError:
            raise
        except Exception as exc:
            raise LayerError(f"{self.name}: backward raised {type(exc).__name__}: {exc} "
                             "(finding the parameters' gradients)") from exc
        again = {n: self._read_grad(work, p, None) for n, p in self._params.items()}
        acc = [n for n, v in again.items() if v is not None and first.get(n) is not None
               and np.any(first[n]) and np.allclose(v, 2 * first[n])]
        if acc:
            self.notes.append(
                f"gradients accumulate across backward calls (+=) in {', '.join(acc)}: gradcheck "
                "zeroes them before every backward; zero them yourself between steps")

    def required_inputs(self) -> tuple[tuple[str, ...], str]:
        """The one input ``forward`` takes (none when it is integer: the example's indices)."""
        if self._fixed_input() is not None:
            return (), f"{self.name} takes integer indices (the example's): parameters only"
        return (self._input,), (f"the input of {self.name}.forward "
                                "(from_class(input_name=...))")

    def state_owners(self) -> dict[str, Any]:
        """What a check protects: this adapter, and the object it wraps."""
        return {"": self, f"{type(self._base).__name__}.": self._base}

    def clear_problems(self) -> None:
        """Forget the problems seen so far (each report gets what its own check saw)."""
        self.problems.clear()

    def _example_input(self) -> np.ndarray:
        return self._example

    def _fixed_input(self) -> np.ndarray | None:
        """The example, when it is integer (indices): every call uses it, only parameters vary."""
        example = getattr(self, "_example", None)
        return example if example is not None and example.dtype.kind in "iub" else None

    def parameters(self) -> dict[str, np.ndarray]:
        """Copies of the object's parameters, checked along with the input."""
        return {n: np.array(_get(self._base, p.paths[0]), copy=True)
                for n, p in self._params.items()}

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        work = copy.deepcopy(self._base)
        for key, value in inputs.items():
            if key == self._input:
                continue
            if key not in self._params:
                raise InvalidArgument(
                    f"`inputs` has {key!r}, which is neither the input {self._input!r} nor a "
                    f"parameter of {self.name} ({', '.join(self._params) or 'none found'})"
                )
            for path in self._params[key].paths:
                _set(work, path, value)
        fixed = self._fixed_input()
        x = inputs[self._input] if fixed is None or self._input in inputs else fixed.copy()
        seen = _SEEN[self]
        if seen.lazy_unchecked:  # once: does the first forward create parameters?
            seen.lazy_unchecked = False
            before = len(_discover(work, self._params_attr, self._grads_attr, {}, set()))
            out, cache, shapes = self._run_forward(work, x)
            self._refuse_lazy(work, x, before)
        else:
            out, cache, shapes = self._run_forward(work, x)
        return out, _Call(work, x, cache, shapes)

    def _refuse_lazy(self, work: Any, x: np.ndarray, before: int) -> None:
        """A forward that must not create parameters (they would go unchecked)."""
        skip = {a for a, v in vars(work).items() if v is x}
        if len(_discover(work, self._params_attr, self._grads_attr, {}, skip)) > before:
            raise InvalidArgument(
                f"{self.name} creates parameters at its first forward: pass example=<an "
                "input> to from_class so they exist (and are checked) before the check starts"
            )

    def _read_grad(self, work: Any, p: _Param, returned: Any) -> Any:
        if p.name in self._returned and isinstance(returned, tuple):
            return np.array(returned[self._returned[p.name]], copy=True)
        for path in p.grads:
            value = _find(work, path)
            if value is not None:
                return np.array(value, copy=True)
        return None

    def _zero(self, work: Any) -> None:
        for p in self._params.values():
            for path in p.grads:
                value = _find(work, path)
                if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
                    value[...] = 0

    def _gradients(self, call: _Call, dout: np.ndarray, record: bool = True) -> dict[str, Any]:
        work = call.work
        self._zero(work)
        before = {n: np.array(_get(work, p.paths[0]), copy=True) for n, p in self._params.items()}
        unchecked = _copies(_arrays(work))
        returned = self._run_backward(call, dout)
        moved = _moved(work, self._params, before)
        if moved and record:
            change = ", ".join(f"`{n}` by up to {v:.3g}" for n, v in moved.items())
            self._problem(
                f"backward changed the parameters ({change}): it applies an update (an "
                "optimizer step?) inside backward. The gradients it stored were checked (see "
                "the table), but a backward must only compute them: move the update into the "
                "optimizer")
        if record:
            self._moved_unchecked(work, unchecked)
        dx = returned[0] if isinstance(returned, (tuple, list)) and self._dx is None else returned
        if self._dx is not None:
            dx = np.array(_get(work, self._dx), copy=True)
            if self._calls.loss:
                dx = np.asarray(dout) * dx
        grads = {n: self._read_grad(work, p, returned) for n, p in self._params.items()}
        return {self._input: dx, **grads}

    def _moved_unchecked(self, work: Any, before: Mapping[_Path, np.ndarray]) -> None:
        """An unchecked array that backward changed, though forward did not: an update of a
        parameter whose gradient was never found."""
        watched = {p.paths[0] for p in self._params.values()}
        for note in self.notes:
            if "has no gradient" not in note:
                continue
            name = note.split("`")[1]
            path = next((p for p in before if _show(p) == name), None)
            if path is None or path in watched or not _exists(work, path):
                continue
            now = np.asarray(_get(work, path))
            if now.shape != before[path].shape or not np.array_equal(now, before[path]):
                self._problem(f"backward changed `{name}`, whose gradient was never found: it "
                              "applies an update inside backward, and `{name}` was not "
                              "checked".replace("{name}", name))

    def _problem(self, text: str) -> None:
        if text.split(":")[0] not in {p.split(":")[0] for p in self.problems}:
            self.problems.append(text)

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        call = copy.deepcopy(cache)  # the object's backward stores grads on itself, by design
        call.x = cache.x
        grads = self._gradients(call, dout)
        if np.asarray(cache.x).dtype.kind in "iub":  # an embedding's indices: parameters only
            grads.pop(self._input)
        elif grads[self._input] is None:
            raise LayerError(f"{self.name}: backward returned None, expected dx")
        missing = [n for n, v in grads.items() if v is None]
        if missing:
            tried = ", ".join(_show(g) for g in self._params[missing[0]].grads[:5])
            raise LayerError(
                f"{self.name}: after backward, found no gradient of `{missing[0]}` (tried "
                f"{tried}, ...); name it with names={{{missing[0]!r}: 'location'}} "
                "(CLI: --grad NAME=LOCATION)"
            )
        return grads


def _is_grad(path: _Path, params: Iterable[_Path]) -> bool:
    """Is ``path`` where a parameter's gradient lives by name (``dW`` for ``W``)?"""
    last = str(path[-1][1])
    if len(path) == 2 and path[-1] == ("a", "grad"):  # a parameter object's .grad
        return True
    for p in params:
        name = str(p[-1][1])
        if last != name and last in _grad_keys(name):
            return True
    return False


def from_class(
    obj: Any,
    *,
    input_name: str = "x",
    params: str | None = None,
    grads: str | None = None,
    names: Mapping[str, str] | None = None,
    example: Any = None,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> ClassLayer:
    """Adapt an object with a forward and a backward, as its framework wrote it.

    Calls are recognised from the methods' names and signatures (:func:`plan_calls`):
    ``forward``/``backward``, ``forward_pass``/``backward_pass``, activation objects with
    ``fn``/``grad`` or ``__call__``/``gradient`` (``derivative``, ``backward(x)``), a training
    flag passed True, a forward returning ``(out, cache)`` for ``backward(dout, cache)`` or
    several outputs for ``backward(d1, d2)``. A forward or backward that returns nothing leaves
    its result on the object (``self.output``, ``self.dinputs``).

    Parameters and their gradients are found by the common conventions: dicts or lists
    ``params``/``grads`` (also ``parameters``/``gradients``), gradients under the parameter's
    name or ``d`` + name; attributes ``self.W`` with ``self.dW``, ``self.W_grad``,
    ``self.grad_W`` or ``self.grads["W"]`` (``weights``/``dweights`` too); parameter objects
    with ``.data`` and ``.grad``; with ``example``, also by what backward does: an array with a
    parameter's shape that appears after backward, or a position in a returned ``(dx, dW, db)``.
    Every float array on the object that is not checked is named in ``notes``. Gradients are
    zeroed before every backward, so layers that accumulate (``+=``) work; a backward that
    changes the parameters (an optimizer step) is recorded in ``problems``.

    Parameters
    ----------
    obj : object
        The layer; deep-copied for every call, so its state (running statistics, caches,
        parameters, inputs it keeps in lists) is the same after a check as before and every
        call starts from the same state. ``np.random`` and ``random`` are seeded the same way
        before every call (a dropout mask is the same in each), and restored after.
    input_name : str
        The name of the forward's input in reports and ``inputs``.
    params, grads : str, optional
        Attributes holding the parameter and gradient dicts (or lists), when they are not one of
        the conventional names; ``params`` also turns off the attribute search.
    names : mapping of str to str, optional
        Parameter location to gradient location, for names no convention finds, e.g.
        ``{"gamma": "gamma_gradient"}`` or ``{"W": "cache[dW]"}``.
    example : array, optional
        An input for a first forward and backward on copies: parameters created lazily at the
        first forward then exist, and gradients stored only by backward are found. What that
        forward updated or appended to is put back before the check.
    forward_kwargs : mapping, optional
        Extra arguments of the forward (``{"training": False}``); a training flag without one
        is passed True.

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
    if not isinstance(input_name, str) or not input_name:
        raise InvalidArgument(f"`input_name` must be a non-empty string, got {input_name!r}")
    for label, value in (("params", params), ("grads", grads)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidArgument(f"`{label}` must be a non-empty string, got {value!r}")
    if names is not None and not isinstance(names, Mapping):
        raise InvalidArgument(f"`names` must be a mapping of parameter to gradient, got {names!r}")
    if forward_kwargs is not None and not isinstance(forward_kwargs, Mapping):
        raise InvalidArgument(f"`forward_kwargs` must be a mapping of name to value, got "
                              f"{forward_kwargs!r}")
    return ClassLayer(obj, input_name, params, grads, dict(names or {}), example, forward_kwargs)


def coerce(value: Any) -> Any:
    """A value from the command line (JSON), made what NumPy code expects.

    Nested lists of numbers (two or more levels) and flat lists holding a float become float64
    arrays; lists of booleans become boolean arrays (masks); a flat list of integers stays a list
    (sizes such as ``layer_dims``: write ``[0.0, 1.0]`` for a float vector); dicts are coerced
    value by value; anything else is returned as is.

    Examples
    --------
    >>> coerce([[1, 2], [3, 4]]).dtype, coerce([0.5, 1]).dtype, coerce([True, False]).dtype
    (dtype('float64'), dtype('float64'), dtype('bool'))
    >>> coerce([5, 4, 1]), coerce({"W": [[1]], "mode": "train"})
    ([5, 4, 1], {'W': array([[1.]]), 'mode': 'train'})
    """
    if isinstance(value, dict):
        return {k: coerce(v) for k, v in value.items()}
    if not isinstance(value, (list, tuple)) or not value:
        return value
    try:
        array = np.array(value)
    except ValueError:  # ragged
        return value
    if array.dtype == bool:
        return array
    if array.dtype.kind not in "iuf":
        return value
    if array.ndim >= 2 or array.dtype.kind == "f":
        return array.astype(np.float64)
    return value


def _nothing(value: Any) -> bool:
    """None, or a tuple or list of Nones: what a template's placeholders return."""
    if isinstance(value, (tuple, list)):
        return bool(value) and all(v is None for v in value)
    return value is None


def unfinished(forward: Callable[..., Any], backward: Callable[..., Any] | None,
               config: Mapping[str, Any], inputs: Mapping[str, np.ndarray]) -> str:
    """Why a course pair (``backward`` None: a loss) is not written yet, or ``""``.

    One call of each, with the global generators fixed: returning None (or a tuple of Nones:
    ``return dx, dw, db`` with every one still ``None``) or raising ``NotImplementedError`` is
    how a half-finished assignment shows it. Any other error is left for the check to report.

    Examples
    --------
    >>> def relu_forward(x): return np.maximum(x, 0), x
    >>> def relu_backward(dout, cache): pass
    >>> unfinished(relu_forward, relu_backward, {}, {"x": np.ones(3)})
    'not implemented: relu_backward returns None'
    """
    def call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str]:
        name = getattr(func, "__name__", "function")
        try:
            with fixed_global_rng():
                result = func(*args, **kwargs)
        except NotImplementedError as exc:
            said = " ".join(str(exc).split())[:80]
            return None, f"not implemented: {name} raises NotImplementedError" + (
                f" ({said})" if said else "")
        except (Exception, SystemExit):  # the check reports these
            return None, "-"
        return result, f"not implemented: {name} returns None" if _nothing(result) else ""

    arrays = {k: np.array(v, copy=True) for k, v in inputs.items()}
    result, why = call(forward, **arrays, **copy.deepcopy(dict(config)))
    if why or backward is None:
        return "" if why == "-" else why
    if isinstance(result, tuple) and result and result[0] is None:
        name = getattr(forward, "__name__", "forward")
        return f"not implemented: {name} returns None as its output"
    if not isinstance(result, tuple) or len(result) != 2:
        return ""  # multi-output or unusual: the check calls it properly
    try:
        dout = np.ones_like(np.asarray(result[0], dtype=np.float64))
    except Exception:
        return ""
    _, why = call(backward, dout, result[1])
    return "" if why == "-" else why


def construct(cls: Any, kwargs: Mapping[str, Any]) -> Any:
    """``cls(**kwargs)`` with every value passed through :func:`coerce` (``Affine(W, b)`` given
    nested lists gets arrays), under the fixed global random state every call uses, so weights
    a constructor draws from ``np.random`` are the same on every run.

    Raises
    ------
    InvalidArgument
        ``cls`` is not callable, or the constructor raised (its message included).
    """
    if not callable(cls):
        raise InvalidArgument(f"`cls` must be a class or callable, got {type(cls).__name__}")
    values = {str(k): coerce(v) for k, v in kwargs.items()}
    try:
        with fixed_global_rng():
            return cls(**values)
    except Exception as exc:
        shown = ", ".join(f"{k}=<array {v.shape}>" if isinstance(v, np.ndarray) else
                          f"{k}={v!r:.40}" for k, v in values.items())
        raise InvalidArgument(f"{getattr(cls, '__name__', cls)}({shown}) raised "
                              f"{type(exc).__name__}: {exc}") from exc


def annotate(report: CheckReport, layer: Any) -> CheckReport:
    """The report with the adapter's ``problems`` and ``notes`` (warnings) added.

    ``check_layer`` cannot see what an adapter noticed inside the layer (an optimizer step in
    backward); this puts it where the report's readers look.
    """
    problems = tuple(p for p in getattr(layer, "problems", ()) if p not in report.problems)
    notes = tuple(n for n in getattr(layer, "notes", ()) if n not in report.warnings)
    if not problems and not notes:
        return report
    return replace(report, problems=report.problems + problems,
                   warnings=report.warnings + notes)


class CallableLayer:
    """A scalar function and its gradient, as a one-input layer."""

    scalar_output = True  # the engine insists on a scalar ``f``

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
