"""Loading user code as its author wrote it: a file, a file inside a package, or ``pkg.mod:Name``.

A file whose directory holds an ``__init__.py`` is a module of a package, and its relative imports
(``from .layers import *``, ``from ..utils import x``) only work when it is imported as such. Like
pytest's ``prepend`` import mode, we walk up the directories that hold an ``__init__.py``; the
first one that does not is the *import root*. The root goes first on ``sys.path`` and the module
is imported by its dotted name (``pkg.sub.layers``). A file outside any package is imported
under a private name with its own directory on ``sys.path``, so it can import its neighbours.

A target is one of::

    layers.py              a file
    layers.py:BatchNorm    a file and a name in it
    pkg.sub.layers         a module, importable from the current directory or sys.path
    pkg.sub.layers:Name    a module and a name in it
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from gradcheck.errors import InvalidArgument, LayerError

__all__ = ["Loaded", "import_root", "load", "split_target"]


@dataclass(frozen=True)
class Loaded:
    """A loaded module, the name after ``:`` if one was given, and how it was imported."""

    module: ModuleType
    attr: str | None
    root: str
    how: str


def split_target(target: str) -> tuple[str, str | None]:
    """``"pkg.mod:Name"`` -> ``("pkg.mod", "Name")``; a drive letter is not a name.

    Examples
    --------
    >>> split_target("layers.py:BatchNorm"), split_target("pkg.mod"), split_target("C:/a.py")
    (('layers.py', 'BatchNorm'), ('pkg.mod', None), ('C:/a.py', None))
    """
    head, sep, tail = target.rpartition(":")
    if sep and head and tail.isidentifier():
        return head, tail
    return target, None


def import_root(file: Path) -> tuple[Path, str | None]:
    """The directory to put on ``sys.path`` and the dotted module name, or None outside a package.

    Walks up from ``file``'s directory while it holds an ``__init__.py``.
    """
    file = file.resolve()
    parts = [file.stem] if file.name != "__init__.py" else []
    here = file.parent
    if not (here / "__init__.py").is_file():
        return here, None
    while (here / "__init__.py").is_file():
        parts.insert(0, here.name)
        here = here.parent
    return here, ".".join(parts)


def _forget(name: str, root: Path) -> None:
    """Drop cached modules of the same package loaded from elsewhere (another checkout)."""
    top = name.split(".")[0]
    for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
        origin = getattr(sys.modules[key], "__file__", None)
        if origin is None or root not in Path(origin).resolve().parents:
            del sys.modules[key]


def _prepend(entry: str) -> None:
    """Put ``entry`` first on ``sys.path`` and leave it there (pytest's ``prepend`` mode): the
    user's functions may import their neighbours lazily, at call time."""
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def _import(name: str, root: Path | None, label: str) -> ModuleType:
    if root is not None:
        _forget(name, root)
    _prepend(str(root) if root is not None else "")  # "": the current directory, like python -m
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            raise InvalidArgument(f"no module named {exc.name!r} (from {label})") from exc
        raise LayerError(f"importing {label} raised {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # the user's module itself failed: their code crashed (exit 3)
        raise LayerError(f"importing {label} raised {type(exc).__name__}: {exc}") from exc


def _load_file(file: Path) -> ModuleType:
    name = f"_gradcheck_user_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InvalidArgument(f"FILE must be a Python file, got {str(file)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    _prepend(str(file.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file failed: their code crashed (exit 3)
        del sys.modules[name]
        raise LayerError(f"importing {file} raised {type(exc).__name__}: {exc}") from exc
    return module


def load(target: str) -> Loaded:
    """Import ``target`` (a file, a file in a package, ``pkg.mod``, each optionally ``:Name``).

    Raises
    ------
    InvalidArgument
        The file does not exist, is no module, or raised while importing (with its message).

    Examples
    --------
    >>> loaded = load("gradcheck.layers.batchnorm:batchnorm_forward")
    >>> loaded.module.__name__, loaded.attr
    ('gradcheck.layers.batchnorm', 'batchnorm_forward')
    """
    where, attr = split_target(target)
    file = Path(where)
    if file.suffix == ".py" or file.exists():
        if not file.is_file():
            raise InvalidArgument(f"FILE must be an existing file, got {where!r}")
        root, dotted = import_root(file)
        if dotted is None:
            how = f"imported {file} as a standalone file, with {root} first on sys.path"
            return Loaded(_load_file(file), attr, str(root), how)
        how = (f"imported {file} as module {dotted} of its package, import root {root} first "
               "on sys.path")
        return Loaded(_import(dotted, root, str(file)), attr, str(root), how)
    if not all(p.isidentifier() for p in where.split(".")):
        raise InvalidArgument(
            f"FILE must be an existing file or a module name like pkg.mod[:Name], got {target!r}"
        )
    module = _import(where, None, where)
    return Loaded(module, attr, str(Path.cwd()), f"imported module {where} from sys.path")
