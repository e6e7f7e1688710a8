"""The user's module, seen from the command line: what it offers, and layers built from it.

:class:`Workshop` holds an imported module and answers in plain data (names, signatures) or with
:class:`~gradcheck.layer.Layer` objects. Its methods take and return only values that can cross a
process boundary (strings, numbers, arrays, dicts), so the same calls work on the module imported
here and on one imported in the supervised worker (:mod:`gradcheck.worker`), where the command
line runs them: the parent plans and judges from :class:`ModuleInfo`, the worker builds and calls.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument, LayerError

__all__ = ["FunctionInfo", "ModuleInfo", "Workshop", "lookup_error", "open_module"]


@dataclass(frozen=True)
class FunctionInfo:
    """A public function's named parameters, and those without a default."""

    params: tuple[str, ...]
    required: tuple[str, ...]


@dataclass(frozen=True)
class ModuleInfo:
    """What a module offers the command line, as data.

    ``functions`` are its public functions (imported ones included); ``classes`` those public
    classes with ``forward`` and ``backward``; ``callables`` every public callable name and
    ``values`` every other public name (for messages and for ``--parameters``).
    """

    file: str
    how: str
    functions: Mapping[str, FunctionInfo]
    classes: tuple[str, ...]
    callables: tuple[str, ...]
    values: tuple[str, ...]

    def to_data(self) -> dict[str, Any]:
        return {**asdict(self), "functions": {n: asdict(f) for n, f in self.functions.items()}}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ModuleInfo:
        functions = {str(n): FunctionInfo(tuple(map(str, f["params"])),
                                          tuple(map(str, f["required"])))
                     for n, f in dict(data["functions"]).items()}
        return cls(str(data["file"]), str(data["how"]), functions,
                   tuple(map(str, data["classes"])), tuple(map(str, data["callables"])),
                   tuple(map(str, data["values"])))

    def callable_named(self, name: str, what: str) -> None:
        """Raise :class:`InvalidArgument` unless ``name`` is a callable of the module."""
        if name not in self.callables:
            raise lookup_error(name, what, self.file, self.callables)


def lookup_error(name: str, what: str, file: str, names: tuple[str, ...]) -> InvalidArgument:
    return InvalidArgument(f"{what} {name!r} is not a callable in {file}; found "
                           f"{', '.join(sorted(names)) or 'no public callable'}")


def _signature(func: Callable[..., Any]) -> FunctionInfo:
    try:
        params = [p for p in inspect.signature(func).parameters.values()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)]
    except (TypeError, ValueError):
        return FunctionInfo((), ())
    return FunctionInfo(tuple(p.name for p in params),
                        tuple(p.name for p in params if p.default is p.empty))


class Workshop:
    """An imported module, and the layers the command line builds from it."""

    def __init__(self, module: ModuleType, how: str = "") -> None:
        self._module, self._how = module, how

    def info(self) -> dict[str, Any]:
        """The module as :class:`ModuleInfo` data (``ModuleInfo.from_data`` reads it)."""
        public = {n: v for n, v in vars(self._module).items() if not n.startswith("_")}
        functions = {n: _signature(f) for n, f in public.items() if inspect.isfunction(f)}
        classes = tuple(n for n, c in public.items() if inspect.isclass(c) and all(
            callable(getattr(c, m, None)) for m in ("forward", "backward")))
        callables = tuple(n for n, v in public.items() if callable(v))
        values = tuple(n for n, v in public.items() if not callable(v)
                       and not inspect.ismodule(v))
        file = str(getattr(self._module, "__file__", None) or self._module.__name__)
        return ModuleInfo(file, self._how, functions, classes, callables, values).to_data()

    def _lookup(self, name: str, what: str) -> Callable[..., Any]:
        found = getattr(self._module, name, None)
        if not callable(found):
            names = tuple(n for n in vars(self._module) if callable(getattr(self._module, n))
                          and not n.startswith("_"))
            raise lookup_error(name, what, str(getattr(self._module, "__file__", "")), names)
        return found

    def function(self, name: str) -> Callable[..., Any]:
        """The module's callable ``name``."""
        return self._lookup(name, "function")

    def pair_layer(self, op: str, forward: str, backward: str, config: Mapping[str, Any]) -> Any:
        """A course-style pair (``backward`` empty: a loss) as a layer."""
        from gradcheck.layer import from_functions

        back = self._lookup(backward, "backward") if backward else None
        return from_functions(self._lookup(forward, "forward"), back, config=dict(config),
                              name=op)

    def class_layer(self, name: str, kwargs: Mapping[str, Any], input_name: str,
                    options: Mapping[str, Any], example: np.ndarray) -> Any:
        """``name(**kwargs)`` adapted with :func:`~gradcheck.layer.from_class`; ``options``
        holds ``params``, ``grads`` (attribute names or None) and ``names`` (``--grad``)."""
        from gradcheck.layer import from_class

        cls = self._lookup(name, "--layer")
        try:
            obj = cls(**kwargs)
        except Exception as exc:
            raise InvalidArgument(f"{name}(**{dict(kwargs)}) raised {type(exc).__name__}: "
                                  f"{exc}") from exc
        return from_class(obj, input_name=input_name, params=options.get("params"),
                          grads=options.get("grads"), names=dict(options.get("names", {})),
                          example=example)

    def model(self, cost: str, grads: str, parameters: str) -> tuple[Any, dict[str, Any]]:
        """A network in the parameter-dict convention: its layer and its parameters."""
        from gradcheck.model import ModelLayer

        cost_fn, grads_fn = self._lookup(cost, "--cost"), self._lookup(grads, "--grads")
        params = getattr(self._module, parameters, None)
        params = params() if callable(params) else params
        if not isinstance(params, dict):
            raise InvalidArgument(f"--parameters {parameters!r} must be a dict in the file or a "
                                  f"function returning one, got {type(params).__name__}")
        arrays = {str(k): np.asarray(v) for k, v in params.items()}
        bad = [k for k, v in arrays.items() if v.dtype.kind not in "fiu"]
        if bad:
            raise LayerError(f"--parameters {parameters!r}: {bad[0]!r} is not an array of "
                             f"numbers (got dtype {arrays[bad[0]].dtype})")
        return ModelLayer(cost_fn, grads_fn, cost), arrays


def open_module(target: str, *, seed: int | None = None) -> Workshop:
    """Import ``target`` (:func:`gradcheck.loading.load`) as a workshop; ``seed`` seeds the global
    generators first (``random``, ``np.random``): frameworks draw initial weights from them, and
    the same command must check the same numbers every time."""
    from gradcheck.loading import load

    if seed is not None:
        import random

        random.seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global generator is the point
    loaded = load(target)
    return Workshop(loaded.module, loaded.how)
