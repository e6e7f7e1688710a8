"""Loading user code as its author wrote it: a file, a notebook, a file inside a package, a module.

A target is one of::

    layers.py              a file
    layers.py:BatchNorm    a file and a name in it
    course.ipynb           a Jupyter notebook (nbformat 4): its code cells, in order, as one module
    pkg.sub.layers         a module, importable from the current directory or sys.path
    pkg.sub.layers:Name    a module and a name in it

How a file is imported
----------------------
The way its author runs it, ``python path/to/file.py``: under a private module name, with the
file's own directory first on ``sys.path`` (and the directory gradcheck runs in last, as a
notebook beside the file's folder has it: ``from cs231n.layers import *`` in
``cs231n/rnn_layers.py``) (so ``from utils.gradcheck import ...`` finds the
folder beside it) and, when the file sits in a folder with an ``__init__.py``, the *import root*
(the first directory up that has none) second, so ``python -m pkg.file``-style absolute imports
of its own package work too. Only a file that uses relative imports (``from .layers import *``)
is imported as a module of its package (``pkg.sub.layers``, root first on ``sys.path``, like
pytest's ``prepend`` mode): such a file cannot run any other way. The file runs with its own
directory as the working directory, as a notebook does, so ``open("data/train.csv")`` beside it
works; the previous working directory is restored after the import.

Files that do work at import
----------------------------
Scripts and notebooks train models, read data files that are not there, plot, ask for
``input()`` or call ``get_ipython()`` at top level. Loading tries the plain import first; when it
raises, or runs longer than ``import_budget`` seconds, the file is loaded
again, **definitions only**: imports, ``def``, ``class``, and assignments whose value is built
from literals, names and lambdas, statement by statement (see :func:`definitions`). Top-level
calls, loops, ``with`` blocks and the ``if __name__ == "__main__":`` body are dropped, and
:attr:`Loaded.how` lists them by line. An import that fails there (``matplotlib`` missing) binds
its names to a stub that raises a clear ``ModuleNotFoundError`` only when used.

The time budget is wall time for the plain import alone, enforced with ``SIGALRM`` in the main
thread (POSIX; elsewhere there is no budget, with a warning) through
:func:`gradcheck._guard.time_limit`. ``None`` (the default) waits for the plain import however
long it takes: the caller that runs this in a child process it can kill is the outer limit, and
:data:`DEFAULT_IMPORT_BUDGET` is the value we suggest for it. The definitions-only pass has no
budget of its own: it runs no top-level work. While loading, ``input()`` raises ``EOFError`` (no
one can answer it), ``get_ipython()`` and ``display()`` are harmless stubs in the module, and
matplotlib draws off screen (``MPLBACKEND=Agg``) unless a backend was chosen.

A ``sys.exit`` at import is not a failure to work around: it propagates (the caller reports
it), since the author chose to stop there.

``seed`` seeds ``np.random`` and ``random`` before each pass, so weights a file draws from the
global generator at import are the same on every run.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import importlib.util
import json
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument, LayerError

__all__ = [
    "DEFAULT_IMPORT_BUDGET",
    "Loaded",
    "definitions",
    "import_root",
    "load",
    "notebook_source",
    "split_target",
]

DEFAULT_IMPORT_BUDGET = 10.0
"""Seconds we suggest for the plain import before falling back to definitions only."""

# Cell magics whose body is Python: the magic line goes, the body runs once.
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})


@dataclass(frozen=True)
class Loaded:
    """A loaded module, the name after ``:`` if one was given, and how it was imported.

    ``definitions_only`` says the plain import failed or overran and only definitions were
    loaded; ``dropped`` lists the statements left out (``"line 12: a call"``) and ``stubbed``
    the names bound to a stub because their import failed. ``how`` says all of it in a sentence.
    """

    module: ModuleType
    attr: str | None
    root: str
    how: str
    definitions_only: bool = False
    dropped: tuple[str, ...] = ()
    stubbed: tuple[str, ...] = ()


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


def _forget_neighbours(folder: Path) -> None:
    """Drop cached modules named like a file or folder beside ours but loaded from elsewhere: a
    second project's ``utils.py`` must not be served the first one's."""
    for entry in folder.iterdir():
        name = entry.stem if entry.suffix == ".py" else entry.name
        if name.isidentifier() and name in sys.modules and (
                entry.suffix == ".py" or (entry / "__init__.py").is_file()):
            _forget(name, folder)


def _prepend(entry: str, position: int = 0) -> None:
    """Put ``entry`` on ``sys.path`` at ``position`` and leave it there (pytest's ``prepend``
    mode): the user's functions may import their neighbours lazily, at call time."""
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(position, entry)


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


# --- notebooks ---------------------------------------------------------------------------------


def _cell_lines(cell: dict[str, Any]) -> list[str]:
    source = cell.get("source", "")
    text = "".join(source) if isinstance(source, list) else str(source)
    return text.splitlines()


def _without_magics(lines: list[str]) -> tuple[list[str], list[str]]:
    """The cell's lines with IPython syntax replaced by ``pass`` (indentation and line numbers
    kept), and the magics dropped."""
    dropped: list[str] = []
    if lines and lines[0].startswith("%%"):
        magic = lines[0][2:].split()[0] if lines[0][2:].split() else ""
        dropped.append(lines[0].strip())
        if magic not in _PYTHON_CELL_MAGICS:  # %%bash, %%writefile, %%html: not Python
            return ["pass"] * len(lines), dropped
        lines = ["pass", *lines[1:]]
    out = []
    for line in lines:
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        script = stripped[len("%run "):].split() if stripped.startswith("%run ") else []
        if script and not script[0].startswith("-"):  # a helper script: run, as IPython does
            out.append(f"{indent}{_RUN}({script[0].strip(chr(39) + chr(34))!r})")
        elif stripped.startswith(("%", "!")):
            dropped.append(stripped)
            out.append(indent + "pass")
        else:
            out.append(line)
    return out, dropped


def notebook_source(path: Path) -> tuple[str, list[str], list[str]]:
    """A notebook's code cells as one module: the source, where each line came from
    (``"cell 3, line 2"``), and the IPython lines that were dropped.

    Lines starting with ``%`` or ``!`` become ``pass``; a cell starting with a ``%%`` magic is
    dropped unless the magic runs Python (``%%time``, ``%%timeit``, ``%%capture``), whose body is
    kept and run once.

    Raises
    ------
    InvalidArgument
        The file is not nbformat-4 JSON.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        cells = [c for c in doc["cells"] if c.get("cell_type") == "code"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidArgument(f"FILE {str(path)!r} must be a Jupyter notebook (nbformat 4 JSON): "
                              f"{type(exc).__name__}: {exc}") from exc
    lines: list[str] = []
    where: list[str] = []
    magics: list[str] = []
    for number, cell in enumerate(cells, start=1):
        body, dropped = _without_magics(_cell_lines(cell))
        magics += dropped
        lines += body
        where += [f"cell {number}, line {i}" for i in range(1, len(body) + 1)]
    return "\n".join(lines) + "\n", where, magics


# --- definitions only --------------------------------------------------------------------------


_STATIC_NODES = (ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.List, ast.Set, ast.Dict,
                 ast.UnaryOp, ast.BinOp, ast.BoolOp, ast.Compare, ast.Subscript, ast.Slice,
                 ast.Starred, ast.JoinedStr, ast.FormattedValue, ast.IfExp, ast.expr_context,
                 ast.operator, ast.unaryop, ast.boolop, ast.cmpop)


def _static(node: ast.AST | None) -> bool:
    """An expression built from literals, names, attributes, lambdas and operators: no call
    (a lambda's body runs only when it is called)."""
    if node is None or isinstance(node, ast.Lambda):
        return True
    if not isinstance(node, _STATIC_NODES):
        return False
    return all(_static(child) for child in ast.iter_child_nodes(node))


def _is_main_guard(test: ast.expr) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__")


_WHAT = {ast.For: "a for loop", ast.AsyncFor: "a for loop", ast.While: "a while loop",
         ast.With: "a with block", ast.AsyncWith: "a with block", ast.Delete: "a del",
         ast.Assert: "an assert", ast.Raise: "a raise"}


def _dropped_because(stmt: ast.stmt) -> str | None:
    """Why a top-level statement is left out of a definitions-only load (None: kept)."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef, ast.Pass, ast.Global)):
        return None
    if isinstance(stmt, ast.Expr):
        if (isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Name)
                and stmt.value.func.id == _RUN):
            return None  # a notebook's %run of a helper: like an import
        is_doc = isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
        return None if is_doc else ("a call" if isinstance(stmt.value, ast.Call)
                                    else "an expression")
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        return None if _static(stmt.value) else "an assignment computed by a call"
    if isinstance(stmt, ast.If):
        if _is_main_guard(stmt.test):
            return "the if __name__ == '__main__' block"
        inner = [*stmt.body, *stmt.orelse]
        ok = _static(stmt.test) and all(_dropped_because(s) is None for s in inner)
        return None if ok else "an if block that does work"
    if isinstance(stmt, ast.Try):
        inner = [*stmt.body, *stmt.orelse, *stmt.finalbody,
                 *(s for h in stmt.handlers for s in h.body)]
        ok = all(_dropped_because(s) is None for s in inner)
        return None if ok else "a try block that does work"
    return _WHAT.get(type(stmt), f"a {type(stmt).__name__} statement")


def definitions(tree: ast.Module) -> tuple[list[ast.stmt], list[tuple[int, int, str]]]:
    """Split a module's top-level statements into those a definitions-only load keeps and those
    it drops, as ``(first line, last line, why)``.

    Kept: imports, ``def``, ``class``, docstrings, ``pass``, assignments of literals, names,
    attributes and lambdas (``EPS = 1e-8``, ``dims = [4, 5, 1]``, ``act = np.tanh``), and
    ``if``/``try`` blocks made only of those (``try: import torch except ImportError: ...``).

    Examples
    --------
    >>> tree = ast.parse("import numpy as np\\nN = 3\\nX = np.ones(N)\\nfor i in range(N):\\n"
    ...                  "    print(i)\\ndef f(x):\\n    return x * N\\n")
    >>> kept, dropped = definitions(tree)
    >>> [type(s).__name__ for s in kept], dropped
    (['Import', 'Assign', 'FunctionDef'], [(3, 3, 'an assignment computed by a call'), \
(4, 5, 'a for loop')])
    """
    kept, dropped = [], []
    for stmt in tree.body:
        why = _dropped_because(stmt)
        if why is None:
            kept.append(stmt)
        else:
            dropped.append((stmt.lineno, stmt.end_lineno or stmt.lineno, why))
    return kept, dropped


class MissingImport:
    """Stands for a name whose import failed in a definitions-only load; raises when used."""

    def __init__(self, name: str, statement: str, reason: str) -> None:
        self._gradcheck_missing = (name, statement, reason)

    def _error(self) -> ModuleNotFoundError:
        name, statement, reason = self._gradcheck_missing
        return ModuleNotFoundError(
            f"`{name}` is not available: `{statement}` failed when gradcheck loaded the file "
            f"(definitions only): {reason}. Install it, or move its use out of the checked code")

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):  # introspection (inspect.signature, copy) is not a use
            raise AttributeError(attr)
        raise self._error()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._error()

    def __repr__(self) -> str:
        return f"<missing import {self._gradcheck_missing[0]!r}>"


def _bound_names(stmt: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(stmt, ast.Import):
        return [a.asname or a.name.split(".")[0] for a in stmt.names]
    return [a.asname or a.name for a in stmt.names if a.name != "*"]


def _user_roots(folder: Path) -> list[Path]:
    """Where the user's own modules are: the file's folder, and the entries of ``sys.path`` that
    contain it (its import root) or are the directory gradcheck runs in."""
    here = Path.cwd().resolve()
    roots = [folder]
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if path not in roots and (path in folder.parents or path == here):
            roots.append(path)
    return roots


def _neighbours(stmt: ast.stmt, folder: Path) -> list[tuple[str, Path]]:
    """The user's modules ``stmt`` imports, by name and file: beside the file
    (``from reg_utils import ...``) or in its package (``from cs231n.layers import *``)."""
    if isinstance(stmt, ast.ImportFrom):
        names = [stmt.module] if stmt.level == 0 and stmt.module else []
    elif isinstance(stmt, ast.Import):
        names = [a.name for a in stmt.names]
    else:
        return []
    found = []
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            continue
        for root in _user_roots(folder):
            file = root.joinpath(*name.split(".")).with_suffix(".py")
            if file.is_file():
                found.append((name, file))
                break
    return found


def _neighbour_definitions(stmt: ast.stmt, folder: Path, loading: set[Path]) -> list[str]:
    """Load the user's modules ``stmt`` imports definitions only (their own top level failed: a
    course's ``reg_utils.py`` imports matplotlib to plot, cs231n's ``layers.py`` torch), so
    their functions can be used."""
    done = []
    for name, file in _neighbours(stmt, folder):
        if file in loading or getattr(sys.modules.get(name), "__file__", None):
            continue
        parent, _, leaf = name.rpartition(".")
        try:
            package = importlib.import_module(parent) if parent else None
        except Exception:  # its package itself fails: nothing to load into
            continue
        loading.add(file)
        module = _new_module(name, file)
        _run_definitions(module, _parse(_read(file)), str(file), loading)
        _drop_notebook_names(module)
        if package is not None:
            setattr(package, leaf, module)
        done.append(file.name)
    return done


def _run_definitions(module: ModuleType, tree: ast.Module, filename: str,
                     loading: set[Path] | None = None,
                     ) -> tuple[list[tuple[int, int, str]], list[tuple[str, int, str]]]:
    """Execute the kept statements one by one; returns what was dropped and what was stubbed
    (name, line, why). An import of a file beside this one that fails is tried again with that
    file loaded definitions only."""
    kept, dropped = definitions(tree)
    stubbed: list[tuple[str, int, str]] = []
    loading = {Path(filename)} if loading is None else loading
    for stmt in kept:
        code = compile(ast.Module(body=[stmt], type_ignores=[]), filename, "exec")
        try:
            try:
                exec(code, module.__dict__)
            except Exception:
                again = _neighbour_definitions(stmt, Path(filename).parent, loading)
                if not again:
                    raise
                exec(code, module.__dict__)
                dropped.append((stmt.lineno, stmt.end_lineno or stmt.lineno,
                                f"nothing, but {', '.join(again)} (it imports) was loaded "
                                "definitions only too"))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
            end = stmt.end_lineno or stmt.lineno
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                text = ast.unparse(stmt)
                for name in _bound_names(stmt):
                    setattr(module, name, MissingImport(name, text, reason))
                    stubbed.append((name, stmt.lineno, reason))
                if not _bound_names(stmt):
                    dropped.append((stmt.lineno, end, f"`{text}` failed ({reason})"))
            else:
                dropped.append((stmt.lineno, end, f"it raised {reason}"))
    return sorted(dropped), stubbed


# --- running a file ----------------------------------------------------------------------------


class _IPythonStub:
    """``get_ipython()`` outside IPython: every method is a no-op returning None."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return lambda *args, **kwargs: None


def _get_ipython() -> _IPythonStub:
    return _IPythonStub()


def _display(*args: Any, **kwargs: Any) -> None:
    return None


_RUN = "_gradcheck_run"  # what a notebook's `%run helper.py` line becomes
_DEFINITIONS_ONLY: list[bool] = []  # set while a definitions-only load runs


def _run_script(path: str) -> None:
    """``%run path``: the script runs and its names land in the notebook's namespace. A path
    from the author's machine that is not here is looked for beside the notebook (the working
    directory while it loads); in a definitions-only load, the script loads definitions only."""
    target = Path(path)
    if not target.is_file():
        target = Path(target.name)
    if not target.is_file():
        raise FileNotFoundError(f"%run {path}: no such file, nor {target.name} beside the "
                                "notebook")
    namespace = sys._getframe(1).f_globals
    module = ModuleType(target.stem)
    module.__file__ = str(target.resolve())
    source = _read(target)
    tree = _parse(source)
    if _DEFINITIONS_ONLY:
        _run_definitions(module, tree, str(target.resolve()))
    else:
        exec(compile(tree, str(target.resolve()), "exec"), module.__dict__)
    namespace.update({k: v for k, v in vars(module).items() if not k.startswith("__")})


_NOTEBOOK_NAMES = {"get_ipython": _get_ipython, "display": _display, _RUN: _run_script}


def _notebook_names(module: ModuleType) -> None:
    for key, stub in _NOTEBOOK_NAMES.items():
        module.__dict__.setdefault(key, stub)


def _drop_notebook_names(module: ModuleType) -> None:
    """The stubs serve the import only: they are not the user's names (nor listed as such)."""
    for key, stub in _NOTEBOOK_NAMES.items():
        if module.__dict__.get(key) is stub:
            del module.__dict__[key]


def _no_input(prompt: Any = "") -> str:
    raise EOFError(f"input({prompt!r}) was called while gradcheck loaded the file; no one can "
                   "answer it")


@contextlib.contextmanager
def _loading_environment(folder: Path) -> Iterator[None]:
    """The file's folder as working directory, no ``input()``, matplotlib off screen."""
    previous_input, previous_cwd = builtins.input, os.getcwd()
    backend = os.environ.get("MPLBACKEND")
    if backend is None:
        os.environ["MPLBACKEND"] = "Agg"
    builtins.input = _no_input
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous_cwd)
        builtins.input = previous_input
        if backend is None:
            os.environ.pop("MPLBACKEND", None)


def _seed(seed: int | None) -> None:
    if seed is not None:
        np.random.seed(seed)  # noqa: NPY002 - frameworks draw initial weights from it
        random.seed(seed)


@dataclass(frozen=True)
class _Source:
    """What is run and how to name its lines."""

    file: Path
    text: str
    where: list[str] | None  # a notebook: the cell and line of each line
    magics: list[str]
    absolute: Path = Path()  # the file, resolved before the load changes directory

    def line(self, number: int) -> str:
        if self.where is not None and 0 < number <= len(self.where):
            return self.where[number - 1]
        return f"line {number}"

    def span(self, first: int, last: int) -> str:
        if first == last:
            return self.line(first)
        if self.where is None:
            return f"lines {first}-{last}"
        a, b = self.line(first), self.line(last)
        cell, _, start = a.rpartition(" line ")
        if b.startswith(cell + " line "):
            return f"{cell} lines {start}-{b.rpartition(' line ')[2]}"
        return f"{a} to {b}"


def _read(file: Path) -> _Source:
    if file.suffix == ".ipynb":
        import linecache

        text, where, magics = notebook_source(file)
        # tracebacks show the cells' code, not the notebook's JSON
        linecache.cache[str(file)] = (len(text), None, text.splitlines(True), str(file))
        return _Source(file, text, where, magics, file.resolve())
    try:
        return _Source(file, file.read_text(encoding="utf-8"), None, [], file.resolve())
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"FILE {str(file)!r} cannot be read: {exc}") from exc


def _parse(source: _Source) -> ast.Module:
    try:
        return ast.parse(source.text, filename=str(source.file))
    except SyntaxError as exc:
        where = source.line(exc.lineno or 0)
        raise LayerError(f"importing {source.file} raised SyntaxError at {where}: "
                         f"{exc.msg}") from exc


def _new_module(name: str, file: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, file, loader=None)
    module = (importlib.util.module_from_spec(spec) if spec is not None
              else ModuleType(name))
    module.__file__ = str(file)
    if "." in name:
        module.__package__ = name.rpartition(".")[0]
    _notebook_names(module)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    return module


def _where_raised(exc: BaseException, source: _Source) -> str:
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename == str(source.file)]
    return f" at {source.line(frames[-1].lineno or 0)}" if frames else ""


def _plain(name: str, source: _Source, tree: ast.Module, budget: float | None,
           ) -> tuple[ModuleType | None, str, BaseException | None]:
    """Run the whole file; returns the module, or None, why it failed and the error."""
    from gradcheck._guard import CheckTimeout, time_limit

    module = _new_module(name, source.file)
    code = compile(tree, str(source.file), "exec")
    try:
        with time_limit(budget, hint="the import budget"):
            exec(code, module.__dict__)
    except CheckTimeout as exc:
        return None, f"the plain import did not finish within {budget:g} s", exc
    except Exception as exc:
        text = str(exc).splitlines()[0][:160] if str(exc) else ""
        return None, (f"the plain import raised {type(exc).__name__}{_where_raised(exc, source)}"
                      f": {text}"), exc
    return module, "", None


def _definitions_only(name: str, source: _Source, tree: ast.Module,
                      ) -> tuple[ModuleType, tuple[str, ...], tuple[str, ...]]:
    module = _new_module(name, source.file)
    _DEFINITIONS_ONLY.append(True)
    try:
        dropped, stubbed = _run_definitions(module, tree, str(source.absolute))
    finally:
        _DEFINITIONS_ONLY.pop()
    lines = tuple(f"{source.span(a, b)}: {why}" for a, b, why in dropped)
    stubs = tuple(f"{name} ({source.line(line)}: {why})" for name, line, why in stubbed)
    return module, lines, stubs


def _run(name: str, source: _Source, seed: int | None,
         budget: float | None) -> tuple[ModuleType, str, tuple[str, ...], tuple[str, ...]]:
    """The module, a sentence about any fallback, what was dropped and what was stubbed."""
    tree = _parse(source)
    with _loading_environment(source.file.resolve().parent):
        _seed(seed)
        module, failure, error = _plain(name, source, tree, budget)
        if module is not None:
            _drop_notebook_names(module)
            return module, "", (), ()
        _seed(seed)
        module, dropped, stubbed = _definitions_only(name, source, tree)
        _drop_notebook_names(module)
    if not _defines_something(module):  # nothing to check without the top-level work
        raise LayerError(f"importing {source.file} raised {type(error).__name__}: {error} "
                         "(and it defines no function or class to load without it)") from error
    text = (f"; {failure}, so it was loaded again, definitions only (imports, def, class, "
            f"constants): dropped {_listed(dropped) or 'nothing'}")
    if stubbed:
        text += (f"; imports that failed, bound to a stub that raises when used: "
                 f"{_listed(stubbed)}")
    return module, text, dropped, stubbed


def _listed(items: tuple[str, ...], most: int = 8) -> str:
    """The first ``most`` items; the count of the rest (:attr:`Loaded.dropped` has them all)."""
    more = len(items) - most
    return "; ".join(items[:most]) + (f"; and {more} more" if more > 0 else "")


def _defines_something(module: ModuleType) -> bool:
    return any(getattr(v, "__module__", None) == module.__name__ and callable(v)
               for v in vars(module).values())


def _uses_relative_imports(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.ImportFrom) and n.level > 0 for n in ast.walk(tree))


def _load_file(file: Path, attr: str | None, seed: int | None, budget: float | None) -> Loaded:
    source = _read(file)
    root, dotted = import_root(file)
    folder = file.resolve().parent
    kind = "notebook" if source.where is not None else "file"
    here = os.getcwd()
    if here not in sys.path:  # last: where a notebook beside `pkg/` imports `pkg.mod` from
        sys.path.append(here)
    if file.name == "__init__.py" and dotted is not None:
        _seed(seed)
        how = f"imported {file} as package {dotted}, import root {root} first on sys.path"
        return Loaded(_import(dotted, root, str(file)), attr, str(root), how)
    tree = _parse(source)
    if dotted is not None and _uses_relative_imports(tree):
        _forget(dotted, root)
        _prepend(str(root))
        parent = dotted.rpartition(".")[0]
        if parent:
            _import(parent, root, str(file))
        name = dotted
        how = (f"imported {file} as module {dotted} of its package, import root {root} first "
               "on sys.path (it uses relative imports)")
    else:
        name = f"_gradcheck_user_{file.stem}"
        _forget_neighbours(folder)
        _prepend(str(folder))
        if dotted is not None:
            _forget(dotted, root)
            _prepend(str(root), 1)
        how = (f"imported {file} as a standalone {kind}, with {folder} first on sys.path"
               + (f" and its package's import root {root} second" if dotted is not None else ""))
    if source.magics:
        how += f"; IPython lines dropped: {', '.join(source.magics)}"
    module, fallback, dropped, stubbed = _run(name, source, seed, budget)
    return Loaded(module, attr, str(root if dotted is not None else folder), how + fallback,
                  bool(fallback), dropped, stubbed)


def load(target: str, *, seed: int | None = None, import_budget: float | None = None) -> Loaded:
    """Import ``target``: a file, a notebook, a file in a package or ``pkg.mod``, each with an
    optional ``:Name``.

    Parameters
    ----------
    target : str
        ``layers.py``, ``course.ipynb``, ``pkg.mod``, optionally followed by ``:Name``.
    seed : int, optional
        Seeds ``np.random`` and ``random`` before the file runs (and again before a
        definitions-only load), so weights drawn at import are the same on every run.
    import_budget : float, optional
        Seconds of wall time for the plain import of a file; when it overruns, the file is
        loaded definitions only. None: no budget (the caller's process limit is the only one).

    Returns
    -------
    Loaded
        The module, the name after ``:``, the import root, and ``how`` it was loaded.

    Raises
    ------
    InvalidArgument
        The file does not exist, is no module or notebook, or no such module is importable.
    LayerError
        The file has a syntax error, or a module named by ``pkg.mod`` raised while importing.

    Examples
    --------
    >>> loaded = load("gradcheck.layers.batchnorm:batchnorm_forward")
    >>> loaded.module.__name__, loaded.attr
    ('gradcheck.layers.batchnorm', 'batchnorm_forward')
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InvalidArgument(f"`seed` must be a non-negative integer or None, got {seed!r}")
    if import_budget is not None and not import_budget > 0:
        raise InvalidArgument(f"`import_budget` must be a positive number of seconds or None, "
                              f"got {import_budget!r}")
    where, attr = split_target(target)
    file = Path(where)
    if file.suffix in (".py", ".ipynb") or file.exists():
        if not file.is_file():
            raise InvalidArgument(f"FILE must be an existing file, got {where!r}")
        if file.suffix not in (".py", ".ipynb"):
            raise InvalidArgument(f"FILE must be a Python file (.py) or a notebook (.ipynb), "
                                  f"got {str(file)!r}")
        return _load_file(file, attr, seed, import_budget)
    if not all(p.isidentifier() for p in where.split(".")):
        raise InvalidArgument(
            f"FILE must be an existing file or a module name like pkg.mod[:Name], got {target!r}"
        )
    _seed(seed)
    module = _import(where, None, where)
    return Loaded(module, attr, str(Path.cwd()), f"imported module {where} from sys.path")
