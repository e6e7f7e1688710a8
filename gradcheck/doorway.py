"""The user's module, seen from the command line: what it offers, and layers built from it.

:class:`Workshop` holds an imported module and answers in plain data (names, signatures) or with
:class:`~gradcheck.layer.Layer` objects. Its methods take and return only values that can cross a
process boundary (strings, numbers, arrays, dicts), so the same calls work on the module imported
here and on one imported in the supervised worker (:mod:`gradcheck.worker`), where the command
line runs them: the parent plans and judges from :class:`ModuleInfo`, the worker builds and calls.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument, LayerError

__all__ = ["BUDGET_VARIABLE", "FunctionInfo", "ModuleInfo", "Workshop", "lookup_error",
           "open_module"]

BUDGET_VARIABLE = "GRADCHECK_IMPORT_BUDGET"
"""The environment variable through which the command line gives the worker its import budget."""


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
    ``values`` every other public name (for messages and for ``--parameters``). ``how`` says how
    it was loaded; ``definitions_only`` that its top-level work was left out (the plain import
    raised or overran the budget) and ``notebook`` that it came from a notebook's cells: the
    command line always tells the user both.
    """

    file: str
    how: str
    functions: Mapping[str, FunctionInfo]
    classes: tuple[str, ...]
    callables: tuple[str, ...]
    values: tuple[str, ...]
    definitions_only: bool = False
    notebook: bool = False
    # per class (and torch or JAX target): its constructor's and its forward's signatures
    # (without self or ctx), for hints
    class_calls: Mapping[str, tuple[FunctionInfo, FunctionInfo]] = field(default_factory=dict)
    # torch and JAX targets (gradcheck.frameworks.detect): name -> what it is
    frameworks: Mapping[str, str] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {**asdict(self), "functions": {n: asdict(f) for n, f in self.functions.items()},
                "class_calls": {n: [asdict(i), asdict(f)] for n, (i, f) in
                                self.class_calls.items()}}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ModuleInfo:
        functions = {str(n): FunctionInfo(tuple(map(str, f["params"])),
                                          tuple(map(str, f["required"])))
                     for n, f in dict(data["functions"]).items()}
        calls = {str(n): (_info(pair[0]), _info(pair[1]))
                 for n, pair in dict(data.get("class_calls", {})).items()}
        return cls(str(data["file"]), str(data["how"]), functions,
                   tuple(map(str, data["classes"])), tuple(map(str, data["callables"])),
                   tuple(map(str, data["values"])), bool(data.get("definitions_only")),
                   bool(data.get("notebook")), calls,
                   {str(n): str(k) for n, k in dict(data.get("frameworks", {})).items()})

    def callable_named(self, name: str, what: str) -> None:
        """Raise :class:`InvalidArgument` unless ``name`` is a callable of the module."""
        if name not in self.callables:
            raise lookup_error(name, what, self.file, self.callables)


def _info(data: Mapping[str, Any]) -> FunctionInfo:
    return FunctionInfo(tuple(map(str, data["params"])), tuple(map(str, data["required"])))


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


def _method_signature(cls: type, name: str) -> FunctionInfo:
    """A method's signature without ``self`` (empty when the class has no such method)."""
    method = getattr(cls, name, None)
    if method is None or method is object.__init__:
        return FunctionInfo((), ())
    found = _signature(method)
    drop = 1 if found.params[:1] == ("self",) else 0
    return FunctionInfo(found.params[drop:], tuple(p for p in found.required if p != "self"))


class Workshop:
    """An imported module, and the layers the command line builds from it."""

    def __init__(self, module: ModuleType, how: str = "", *, definitions_only: bool = False,
                 notebook: bool = False) -> None:
        self._module, self._how = module, how
        self._flags = {"definitions_only": definitions_only, "notebook": notebook}

    def info(self) -> dict[str, Any]:
        """The module as :class:`ModuleInfo` data (``ModuleInfo.from_data`` reads it)."""
        from gradcheck.frameworks import arguments, detect

        public = {n: v for n, v in vars(self._module).items() if not n.startswith("_")}
        frameworks = {n: kind for n, v in public.items() if (kind := detect(v))}
        functions = {n: _signature(f) for n, f in public.items() if inspect.isfunction(f)}
        classes = tuple(n for n, c in public.items() if inspect.isclass(c) and n not in
                        frameworks and (all(callable(getattr(c, m, None))
                                            for m in ("forward", "backward"))
                                        or callable(getattr(c, "loss", None))))
        callables = tuple(n for n, v in public.items() if callable(v))
        values = tuple(n for n, v in public.items() if not callable(v)
                       and not inspect.ismodule(v))
        file = str(getattr(self._module, "__file__", None) or self._module.__name__)
        calls = {n: (_method_signature(public[n], "__init__"),
                     _method_signature(public[n], "forward")) for n in classes}
        calls.update({n: (_method_signature(public[n], "__init__") if inspect.isclass(public[n])
                          else FunctionInfo((), ()), FunctionInfo(*arguments(public[n], kind)))
                      for n, kind in frameworks.items()})
        return ModuleInfo(file, self._how, functions, classes, callables, values,
                          class_calls=calls, frameworks=frameworks, **self._flags).to_data()

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
        """``name(**kwargs)`` (:func:`~gradcheck.layer.construct`: JSON lists become arrays)
        adapted with :func:`~gradcheck.layer.from_class` at ``example``; ``options`` holds
        ``params``, ``grads`` (attribute names or None), ``names`` (``--grad``) and
        ``forward_kwargs`` (``--forward-kwarg``, ``--int``: coerced the same way)."""
        from gradcheck.layer import coerce, construct, from_class
        from gradcheck.model import ModelObjectLayer, is_model_object

        obj = construct(self._lookup(name, "--layer"), kwargs)
        forward_kwargs = {str(k): coerce(v) for k, v in
                          dict(options.get("forward_kwargs") or {}).items()}
        if is_model_object(obj):  # params + loss(X, y): the data are its arguments
            return ModelObjectLayer(obj, {input_name: example, **forward_kwargs})
        return from_class(obj, input_name=input_name, params=options.get("params"),
                          grads=options.get("grads"), names=dict(options.get("names", {})),
                          example=example, forward_kwargs=forward_kwargs or None)

    def framework_layer(self, name: str, settings: Mapping[str, Any], data: Mapping[str, Any],
                        seed: int) -> Any:
        """A torch or JAX target (:func:`gradcheck.frameworks.build`): ``settings`` construct an
        ``nn.Module`` class, or are arguments that are not differentiated; ``data`` (integer
        labels) are arguments."""
        from gradcheck.frameworks import build, detect

        target = self._lookup(name, "NAME")
        return build(target, detect(target), dict(settings), dict(data), seed)

    def unimplemented(self, forward: str, backward: str, config: Mapping[str, Any],
                      inputs: Mapping[str, np.ndarray]) -> str:
        """Why a pair (``backward`` empty: a loss) is not written yet, or ``""``.

        One call of each function, the way an unfinished assignment shows it: returning None
        (an empty body, ``pass``, ``return None`` left in a template) or raising
        ``NotImplementedError``. Anything else the functions do is for the check to judge.
        """
        from gradcheck.layer import unfinished

        back = self._lookup(backward, "backward") if backward else None
        return unfinished(self._lookup(forward, "forward"), back, config, inputs)

    def networks(self) -> list[dict[str, str | None]]:
        """The networks :func:`gradcheck.model.find_networks` recognises in the module."""
        from gradcheck.model import find_networks

        return find_networks(vars(self._module))

    def network(self, names: Mapping[str, str | None], values: Mapping[str, Any],
                seed: int) -> Any:
        """A course network (:func:`gradcheck.model.from_network`): ``names`` holds the
        ``forward``, ``backward``, and optional ``cost``, ``init`` and ``wrt``; ``values``
        the data and settings bound by argument name."""
        from gradcheck.model import from_network

        def named(role: str, what: str) -> Any:
            return self._lookup(str(names[role]), what) if names.get(role) else None

        init = names.get("init")
        if init and not callable(getattr(self._module, init, None)):  # a dict in the file
            values = {"parameters": getattr(self._module, init, None), **values}
            init = None
        net = from_network(named("forward", "--network"), named("backward", "--grads"),
                           values, cost=named("cost", "--cost-fn"),
                           init=self._lookup(init, "--parameters") if init else None,
                           wrt=names.get("wrt"), seed=seed)
        return net

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


def _budget(given: float | None) -> float | None:
    """Seconds for the plain import: ``given``, else :data:`BUDGET_VARIABLE`, else the default;
    0 means no budget (wait for the import)."""
    from gradcheck.loading import DEFAULT_IMPORT_BUDGET

    if given is None:
        try:
            given = float(os.environ.get(BUDGET_VARIABLE, DEFAULT_IMPORT_BUDGET))
        except ValueError:
            given = DEFAULT_IMPORT_BUDGET
    return given if given > 0 else None


def open_module(target: str, *, seed: int | None = None,
                import_budget: float | None = None) -> Workshop:
    """Import ``target`` (:func:`gradcheck.loading.load`) as a workshop.

    ``seed`` seeds the global generators first (``random``, ``np.random``): frameworks draw
    initial weights from them, and the same command must check the same numbers every time.
    ``import_budget`` is the seconds the plain import may take before the file is loaded
    definitions only (a script that trains at import); None takes it from the environment
    variable :data:`BUDGET_VARIABLE` (how the command line reaches the worker), else
    :data:`gradcheck.loading.DEFAULT_IMPORT_BUDGET`; 0 waits however long the import takes.
    """
    from gradcheck.loading import load, split_target

    seed = None if seed is None else seed % 2**32  # the legacy generator's range
    loaded = load(target, seed=seed, import_budget=_budget(import_budget))
    return Workshop(loaded.module, loaded.how, definitions_only=loaded.definitions_only,
                    notebook=split_target(target)[0].endswith(".ipynb"))
