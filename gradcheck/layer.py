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
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gradcheck.errors import GradcheckError, InvalidArgument, LayerError
from gradcheck.results import CheckReport

__all__ = ["Layer", "annotate", "from_callables", "from_class", "from_functions", "layer_name"]


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


# What each ClassLayer noticed, kept outside the adapter's __dict__: the checker restores the
# layer's attributes after a check, and these must survive it.
@dataclass
class _Seen:
    notes: list[str]
    problems: list[str]
    lazy_unchecked: bool  # the first forward has not yet been watched for new parameters


_SEEN: weakref.WeakKeyDictionary[Any, _Seen] = weakref.WeakKeyDictionary()


class ClassLayer:
    """Objects with ``forward(x)``/``backward(dout)``, parameters and gradients found by convention.

    ``notes`` and ``problems`` collect what the adapter saw (gradients that accumulate, a
    backward that updates the parameters); :func:`annotate` adds them to a report.
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
                 names: Mapping[str, str], example: Any) -> None:
        self._input, self._params_attr, self._grads_attr = input_name, params, grads
        self.name = type(obj).__name__
        _SEEN[self] = _Seen([], [], example is None)
        self._base = obj
        where = obj
        skip: set[str] = set()
        if example is not None:
            self._base, where, skip = self._materialise(obj, np.array(example, copy=True))
        self._params = {p.name: p for p in _discover(where, params, grads, names, skip)
                        if _exists(self._base, p.paths[0])}
        if params is not None and not isinstance(getattr(self._base, params, None), (dict, list)):
            raise InvalidArgument(
                f"`params` names the attribute {params!r}, which must be a dict or list on "
                f"{self.name}, got {type(getattr(self._base, params, None)).__name__}"
            )
        if example is not None:
            self._probe(example)

    def _materialise(self, obj: Any, x: np.ndarray) -> tuple[Any, Any, set[str]]:
        """One forward on a copy, so parameters created at the first forward exist, and one
        backward on a copy of that, so gradients stored only by backward (``self.dW``) exist.

        Returns the object after the forward, the one after the backward, and the attributes
        holding the input (``self.x = x`` is no parameter).
        """
        base = copy.deepcopy(obj)
        phase = "forward"
        try:
            self._probe_out = base.forward(x)
            after = copy.deepcopy(base)
            phase = "backward"
            g = np.random.default_rng(0).standard_normal(np.shape(self._probe_out))
            after.backward(g)
        except Exception as exc:
            raise LayerError(f"{self.name}: {phase} raised {type(exc).__name__}: {exc} (a first "
                             "call on a copy, to find the parameters and gradients)") from exc
        return base, after, {a for a, v in vars(base).items() if v is x}

    def _probe(self, example: Any) -> None:
        """Run backward on copies: drop parameters without a gradient, detect accumulation."""
        g = np.random.default_rng(0).standard_normal(np.shape(self._probe_out))
        work = copy.deepcopy(self._base)
        try:
            first = self._gradients(work, g, record=False)
            second = self._call_backward(work, g)
        except GradcheckError:
            raise
        except Exception as exc:
            raise LayerError(f"{self.name}: backward raised {type(exc).__name__}: {exc} "
                             "(finding the parameters' gradients)") from exc
        del second
        missing = [n for n in first if n != self._input and first[n] is None]
        for n in missing:
            tried = ", ".join(_show(g) for g in self._params[n].grads[:4])
            self.notes.append(f"`{n}` has no gradient after backward (tried {tried}, ...): "
                              "not checked; name it with names={'param': 'grad location'}")
            del self._params[n]
        again = {n: self._read_grad(work, p) for n, p in self._params.items()}
        acc = [n for n, v in again.items() if v is not None and first.get(n) is not None
               and np.any(first[n]) and np.allclose(v, 2 * first[n])]
        if acc:
            self.notes.append(
                f"gradients accumulate across backward calls (+=) in {', '.join(acc)}: gradcheck "
                "zeroes them before every backward; zero them yourself between steps")

    def required_inputs(self) -> tuple[tuple[str, ...], str]:
        """The one input ``forward`` takes."""
        return (self._input,), (f"the input of {self.name}.forward "
                                "(from_class(input_name=...))")

    def state_owners(self) -> dict[str, Any]:
        """What a check protects: this adapter, and the object it wraps."""
        return {"": self, f"{type(self._base).__name__}.": self._base}

    def clear_problems(self) -> None:
        """Forget the problems seen so far (each report gets what its own check saw)."""
        self.problems.clear()

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
        seen = _SEEN[self]
        if seen.lazy_unchecked:  # once: does the first forward create parameters?
            seen.lazy_unchecked = False
            return self._watched_forward(work, inputs[self._input]), work
        return work.forward(inputs[self._input]), work

    def _watched_forward(self, work: Any, x: np.ndarray) -> Any:
        """A forward that must not create parameters (they would go unchecked)."""
        before = len(_discover(work, self._params_attr, self._grads_attr, {}, set()))
        out = work.forward(x)
        skip = {a for a, v in vars(work).items() if v is x}
        if len(_discover(work, self._params_attr, self._grads_attr, {}, skip)) > before:
            raise InvalidArgument(
                f"{self.name} creates parameters at its first forward: pass example=<an "
                "input> to from_class so they exist (and are checked) before the check starts"
            )
        return out

    def _call_backward(self, work: Any, dout: np.ndarray) -> Any:
        dx = work.backward(dout)
        return dx[0] if isinstance(dx, tuple) else dx  # (dx, ...) with grads stored on self

    def _read_grad(self, work: Any, p: _Param) -> Any:
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

    def _gradients(self, work: Any, dout: np.ndarray, record: bool = True) -> dict[str, Any]:
        self._zero(work)
        before = {n: np.array(_get(work, p.paths[0]), copy=True) for n, p in self._params.items()}
        dx = self._call_backward(work, dout)
        moved = _moved(work, self._params, before)
        if moved and record:
            change = ", ".join(f"`{n}` by up to {v:.3g}" for n, v in moved.items())
            self._problem(
                f"backward changed the parameters ({change}): it applies an update (an "
                "optimizer step?) inside backward. The gradients it stored were checked (see "
                "the table), but a backward must only compute them: move the update into the "
                "optimizer")
        grads = {n: self._read_grad(work, p) for n, p in self._params.items()}
        return {self._input: dx, **grads}

    def _problem(self, text: str) -> None:
        if text.split(":")[0] not in {p.split(":")[0] for p in self.problems}:
            self.problems.append(text)

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        work = copy.deepcopy(cache)  # the object's backward stores grads on itself, by design
        grads = self._gradients(work, dout)
        if grads[self._input] is None:
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


def from_class(
    obj: Any,
    *,
    input_name: str = "x",
    params: str | None = None,
    grads: str | None = None,
    names: Mapping[str, str] | None = None,
    example: Any = None,
) -> ClassLayer:
    """Adapt an object with ``forward(x)`` and ``backward(dout) -> dx``, as its framework wrote it.

    Parameters and their gradients are found by the common conventions: dicts or lists
    ``params``/``grads`` (also ``parameters``/``gradients``), gradients under the parameter's
    name or ``d`` + name; attributes ``self.W`` with ``self.dW``, ``self.W_grad``,
    ``self.grad_W`` or ``self.grads["W"]``; parameter objects with ``.data`` and ``.grad``.
    Gradients are zeroed before every backward, so layers that accumulate (``+=``) work; a
    backward that changes the parameters (an optimizer step) is recorded in ``problems``.

    Parameters
    ----------
    obj : object
        The layer; deep-copied for every call, so its state (running statistics, caches,
        parameters) is the same after a check as before.
    input_name : str
        The name of the forward's input in reports and ``inputs``.
    params, grads : str, optional
        Attributes holding the parameter and gradient dicts (or lists), when they are not one of
        the conventional names; ``params`` also turns off the attribute search.
    names : mapping of str to str, optional
        Parameter location to gradient location, for names no convention finds, e.g.
        ``{"gamma": "gamma_gradient"}`` or ``{"W": "cache[dW]"}``.
    example : array, optional
        An input for a first forward on a copy, so parameters created lazily at the first
        forward exist, and for a backward that finds where the gradients are stored.

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
    if not isinstance(input_name, str) or not input_name:
        raise InvalidArgument(f"`input_name` must be a non-empty string, got {input_name!r}")
    for label, value in (("params", params), ("grads", grads)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidArgument(f"`{label}` must be a non-empty string, got {value!r}")
    if names is not None and not isinstance(names, Mapping):
        raise InvalidArgument(f"`names` must be a mapping of parameter to gradient, got {names!r}")
    return ClassLayer(obj, input_name, params, grads, dict(names or {}), example)


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
