"""The command line's arguments, checked before any of the user's code runs.

Every value a user types is parsed strictly: a ``--shape`` that is not a list of positive
integers or symbolic names, a name given twice, a ``--kwarg`` that is neither JSON nor a bare
word (or nests deeper than :data:`MAX_JSON_DEPTH`), an ``--int`` or ``--range`` whose LOW is not
below HIGH, options naming two kinds of target (``--layer`` with ``--op``: :data:`TARGET_KINDS`)
or an option without its target (``--grads`` alone), an ``--out`` that cannot be written, a
negative seed: each is an error (exit 2) that names the option, the expected and the received
value, before the layer's file is even imported. (The kinds are checked here rather than by an
argparse mutually exclusive group: ``--op``, ``--forward`` and ``--backward`` combine with each
other, which such a group cannot say, and one message names both options.)

``--kwarg`` values: valid JSON is JSON (``eps=1e-5``, ``bn_param='{"mode": "train"}'``,
``flag=true``); a bare identifier-like word that is not JSON is a string (``mode=train``);
anything else (``mode=per-channel``, ``bn_param={mode: train}``) is an error that shows how to
quote it, rather than silently becoming a string.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from gradcheck.errors import InvalidArgument

__all__ = [
    "DEFAULT_MAX_ELEMENTS",
    "DEFAULT_TIMEOUT",
    "MAX_JSON_DEPTH",
    "TARGET_KINDS",
    "add_limit_options",
    "parse_int",
    "parse_kwarg",
    "parse_kwargs",
    "parse_location",
    "parse_range",
    "parse_shape",
    "parse_shapes",
    "target_kind",
    "validate_check",
    "validate_out",
]

DEFAULT_TIMEOUT = 300.0  # seconds for one `gradcheck check` (0 = no limit)
MAX_TIMEOUT = 1e7  # about 115 days; the alarm's timer overflows far above
DEFAULT_MAX_ELEMENTS = 10_000_000  # elements over all --shape inputs (80 MB per float64 copy)
SYMBOLIC_SIDE = 16  # a symbolic dimension is drawn at most this large (strategies.symbolic_shapes)
MAX_JSON_DEPTH = 32  # nesting of a --kwarg value (the worker's wire carries 64 levels)
_INT = re.compile(r"[0-9]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ITEMSIZE = {"float64": 8, "float32": 4}


def add_limit_options(check: argparse.ArgumentParser) -> None:
    """``--timeout``, ``--import-budget`` and ``--max-elements``: the limits of a check."""
    from gradcheck.loading import DEFAULT_IMPORT_BUDGET

    limits = check.add_argument_group("limits")
    limits.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"stop the check after this long (default {DEFAULT_TIMEOUT:g}; "
                             "0: no limit); exit 3")
    limits.add_argument("--import-budget", type=float, default=DEFAULT_IMPORT_BUDGET,
                        metavar="SECONDS",
                        help="a file whose import raises or runs longer than this (a script "
                             "that trains at import) is loaded again, definitions only "
                             f"(default {DEFAULT_IMPORT_BUDGET:g}; 0: wait for the import)")
    limits.add_argument("--max-elements", type=int, default=DEFAULT_MAX_ELEMENTS, metavar="N",
                        help="refuse --shape inputs with more elements than this in all "
                             f"(default {DEFAULT_MAX_ELEMENTS:,})")


def add_isolation_options(p: argparse.ArgumentParser) -> None:
    """``--max-memory`` and ``--in-process``: how the worker that runs the layer is bounded."""
    p.add_argument("--max-memory", type=parse_memory, default=0, metavar="SIZE",
                   help="the most memory the layer's process may use, e.g. 2G or 512M "
                        "(default 0: no limit); exceeding it ends the check with exit 3")
    p.add_argument("--workers", type=_workers, default=1, metavar="N",
                   help="worker processes that evaluate the numerical stages at the same time "
                        "(default 1); each imports your file")
    p.add_argument("--in-process", action="store_true",
                   help="run the layer in gradcheck's own process instead of a supervised "
                        "worker: starts faster, but the layer's code can then change the "
                        "verdict, the exit code and the reports (only for code you trust)")


MAX_WORKERS = 64


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_WORKERS}, "
                                         f"got {text!r}")
    return n


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_memory(text: str) -> int:
    """``"2G"`` -> bytes; ``K``, ``M``, ``G``, ``T`` are powers of 1024; 0 means no limit.

    Examples
    --------
    >>> parse_memory("512M"), parse_memory("2g"), parse_memory("0")
    (536870912, 2147483648, 0)
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)i?B?\s*", text.upper())
    if match is None:
        raise argparse.ArgumentTypeError(f"must be a size such as 2G, 512M or 0, got {text!r}")
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if 0 < size < 64 << 20:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or at least 64M (the Python "
                                         f"interpreter and NumPy need that much), got {text!r}")
    return size


# --- --shape --------------------------------------------------------------------------------


def _dimension(text: str, dim: str) -> str:
    if _INT.fullmatch(dim):
        if int(dim) < 1:
            raise InvalidArgument(f"`--shape {text}`: every dimension must be at least 1, got "
                                  f"{dim} (an empty input has nothing to check)")
        return str(int(dim))
    if _NAME.fullmatch(dim):
        return dim
    hint = ""
    if re.fullmatch(r"[0-9]+[xX*][0-9xX*]+", dim):
        hint = f"; separate dimensions with commas, e.g. {re.sub(r'[xX*]', ',', dim)}"
    elif re.fullmatch(r"[-+]?[0-9.eE+-]+", dim):
        hint = "; a dimension is a whole number of at least 1"
    raise InvalidArgument(
        f"`--shape {text}`: each dimension must be a positive integer or a symbolic name such "
        f"as N (property mode), got {dim!r}{hint}"
    )


def parse_shape(text: str) -> tuple[str, tuple[str, ...]]:
    """``"x=4,5"`` to ``("x", ("4", "5"))``; dimensions are positive integers or names.

    Examples
    --------
    >>> parse_shape("x=4, 5"), parse_shape("gamma=D")
    (('x', ('4', '5')), ('gamma', ('D',)))
    """
    name, sep, dims = text.partition("=")
    name = name.strip()
    if not sep or not name or not dims.strip():
        raise InvalidArgument(f"`--shape` must look like NAME=D1,D2 (e.g. x=4,5), got {text!r}")
    if not name.isidentifier():
        raise InvalidArgument(f"`--shape {text}`: the input name must be a Python identifier "
                              f"(a parameter name of the forward), got {name!r}")
    return name, tuple(_dimension(text, d.strip()) for d in dims.split(","))


def _elements(dims: tuple[str, ...]) -> int:
    return math.prod(int(d) if d.isdigit() else SYMBOLIC_SIDE for d in dims)


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def parse_shapes(texts: list[str], *, max_elements: int = DEFAULT_MAX_ELEMENTS,
                 dtype: str = "float64") -> dict[str, tuple[str, ...]]:
    """Every ``--shape``, each name once, within ``max_elements`` elements in all.

    Examples
    --------
    >>> parse_shapes(["x=4,5", "gamma=5"])
    {'x': ('4', '5'), 'gamma': ('5',)}
    """
    specs: dict[str, tuple[str, ...]] = {}
    for text in texts:
        name, dims = parse_shape(text)
        if name in specs:
            raise InvalidArgument(f"`--shape` gives {name!r} twice ({name}={','.join(specs[name])}"
                                  f" and {text}); give each input once")
        specs[name] = dims
    total = sum(_elements(d) for d in specs.values())
    if total > max_elements:
        per_copy = _size(total * _ITEMSIZE.get(dtype, 8))
        raise InvalidArgument(
            f"`--shape` asks for {total:,} elements in all, more than `--max-elements "
            f"{max_elements}`: about {per_copy} per copy in {dtype}, and a check holds several "
            "copies (float64 and complex128 ones too); raise --max-elements to check it anyway"
        )
    return specs


# --- --kwarg --------------------------------------------------------------------------------


def parse_kwarg(text: str, flag: str = "--kwarg") -> tuple[str, Any]:
    """``NAME=JSON``; a bare word that is not JSON is a string, anything else must be JSON,
    nested at most :data:`MAX_JSON_DEPTH` levels.

    Examples
    --------
    >>> parse_kwarg('bn_param={"mode": "train"}'), parse_kwarg("mode=train")
    (('bn_param', {'mode': 'train'}), ('mode', 'train'))
    """
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise InvalidArgument(f"`{flag}` must look like NAME=JSON, got {_short(text)!r}")
    if not name.isidentifier():
        raise InvalidArgument(f"`{flag} {_short(text)}`: the name must be a Python identifier, "
                              f"got {_short(name)!r}")
    try:
        parsed = json.loads(value)
    except RecursionError:
        parsed = _TOO_DEEP
    except json.JSONDecodeError as exc:
        if _NAME.fullmatch(value.strip()):
            return name, value.strip()
        raise InvalidArgument(
            f"`{flag} {_short(text)}`: the value must be JSON or a bare word, got "
            f"{_short(value)!r} ({exc.msg} at character {exc.pos}); quote strings for the shell "
            f"and for JSON, e.g. {flag} '{name}=\"some text\"' or {flag} "
            f"'{name}={{\"mode\": \"train\"}}'"
        ) from None
    if parsed is _TOO_DEEP or _depth(parsed) > MAX_JSON_DEPTH:
        raise InvalidArgument(f"`{flag} {name}=...`: the value is nested more than "
                              f"{MAX_JSON_DEPTH} levels deep; no layer argument needs that")
    return name, parsed


_TOO_DEEP = object()


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value`` (iterative: no recursion limit)."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if level <= MAX_JSON_DEPTH and isinstance(item, (list, dict)):
            todo += [(v, level + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


def parse_kwargs(texts: list[str], flag: str = "--kwarg") -> dict[str, Any]:
    """Every ``--kwarg`` (or ``flag``), each name once."""
    found: dict[str, Any] = {}
    for text in texts:
        name, value = parse_kwarg(text, flag)
        if name in found:
            raise InvalidArgument(f"`{flag}` gives {name!r} twice; give each argument once")
        found[name] = value
    return found


# --- --int, --grad ---------------------------------------------------------------------------


def parse_int(text: str) -> tuple[str, tuple[int, int]]:
    """``"y=0:10"`` -> ``("y", (0, 10))``: integers drawn from ``[LOW, HIGH)``.

    Examples
    --------
    >>> parse_int("y=0:10")
    ('y', (0, 10))
    """
    name, sep, span = text.partition("=")
    low, colon, high = span.partition(":")
    try:
        ends = (int(low), int(high))
    except ValueError:
        ends = (0, 0)
    if not sep or not colon or not name.strip().isidentifier() or ends[0] >= ends[1]:
        raise InvalidArgument(f"`--int` must look like NAME=LOW:HIGH with LOW < HIGH (e.g. "
                              f"y=0:10), got {_short(text)!r}")
    return name.strip(), ends


def parse_ints(texts: list[str]) -> dict[str, tuple[int, int]]:
    """Every ``--int``, each name once."""
    found: dict[str, tuple[int, int]] = {}
    for text in texts:
        name, ends = parse_int(text)
        if name in found:
            raise InvalidArgument(f"`--int` gives {name!r} twice; give each input once")
        found[name] = ends
    return found


def parse_range(text: str) -> tuple[str, tuple[float, float]]:
    """``"p=0.05:0.95"`` -> ``("p", (0.05, 0.95))``: a float input drawn from ``[LOW, HIGH)``.

    Examples
    --------
    >>> parse_range("y_pred=0.05:0.95")
    ('y_pred', (0.05, 0.95))
    """
    name, sep, span = text.partition("=")
    low, colon, high = span.partition(":")
    try:
        ends = (float(low), float(high))
    except ValueError:
        ends = (0.0, 0.0)
    if (not sep or not colon or not name.strip().isidentifier() or not ends[0] < ends[1]
            or not all(math.isfinite(e) for e in ends)):
        raise InvalidArgument(f"`--range` must look like NAME=LOW:HIGH with finite LOW < HIGH "
                              f"(e.g. y_pred=0.05:0.95), got {_short(text)!r}")
    return name.strip(), ends


def parse_ranges(texts: list[str], shapes: list[str]) -> dict[str, tuple[float, float]]:
    """Every ``--range``, each name once, each naming a ``--shape``."""
    found: dict[str, tuple[float, float]] = {}
    names = {parse_shape(t)[0] for t in shapes}
    for text in texts:
        name, ends = parse_range(text)
        if name in found:
            raise InvalidArgument(f"`--range` gives {name!r} twice; give each input once")
        if name not in names:
            raise InvalidArgument(f"`--range {name}` needs a shape: add --shape {name}=D1,D2")
        found[name] = ends
    return found


def parse_location(text: str) -> tuple[str, str]:
    """``"W=dW_sum"`` -> ``("W", "dW_sum")``: where a parameter's gradient is (``--grad``)."""
    param, sep, grad = text.partition("=")
    if not sep or not param.strip() or not grad.strip():
        raise InvalidArgument(f"`--grad` must look like PARAM=LOCATION (e.g. W=dW_sum or "
                              f"gamma=cache[dgamma]), got {_short(text)!r}")
    return param.strip(), grad.strip()


# --- what to check: one kind of target, and the options that belong to it -------------------

TARGET_KINDS: dict[str, tuple[str, ...]] = {
    "pair": ("op", "forward", "backward"),
    "loss": ("loss",),
    "class": ("layer",),
    "cost": ("cost",),
    "network": ("network",),
}
"""Each kind of target and the options that name it; options of two kinds are an error."""

_BELONGS = {
    "grads": ("cost", "network"), "parameters": ("cost", "network"), "cost_fn": ("network",),
    "wrt": ("network",), "params_attr": ("class",), "grads_attr": ("class",),
    "grad": ("class",), "forward_kwarg": ("class",), "against": ("pair",),
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def target_kind(args: argparse.Namespace) -> str | None:
    """The one kind of target the options name (None: a whole-file run).

    Raises
    ------
    InvalidArgument
        Options name two kinds (``--layer`` with ``--op``), or an option is given without the
        target it belongs to (``--grads`` without ``--cost`` or ``--network``).
    """
    given = {kind: [d for d in dests if getattr(args, d, None) is not None]
             for kind, dests in TARGET_KINDS.items()}
    kinds = [k for k, dests in given.items() if dests]
    if len(kinds) > 1:
        a, b = given[kinds[0]][0], given[kinds[1]][0]
        raise InvalidArgument(
            f"`{_flag(a)}` and `{_flag(b)}` name two different targets; give one of: "
            "--op/--forward/--backward (a course pair), --loss, --layer (a class), --cost, "
            "--network")
    kind = kinds[0] if kinds else None
    for dest, owners in _BELONGS.items():
        value = getattr(args, dest, None)
        if value not in (None, [], False) and kind not in owners:
            needs = " or ".join(f"`{_flag(TARGET_KINDS[o][0])}`" for o in owners)
            raise InvalidArgument(f"`{_flag(dest)}` belongs with {needs}, which was not given")
    return kind


# --- --out ----------------------------------------------------------------------------------


def _writable(directory: Path) -> bool:
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    try:
        return not os.statvfs(directory).f_flag & os.ST_RDONLY
    except (AttributeError, OSError):  # no statvfs (Windows): os.access had the last word
        return True


def _existing_ancestor(text: str, path: Path) -> Path:
    """The nearest part of ``path`` that exists; a file or dangling link on the way is an error."""
    for part in [path, *path.parents]:
        if part.is_symlink() and not part.exists():
            raise InvalidArgument(f"`--out` {text!r} goes through {str(part)!r}, a symbolic link "
                                  f"to {os.readlink(part)!r}, which does not exist")
        if part.exists():
            if not part.is_dir():
                what = "is a file" if part == path else f"goes through the file {str(part)!r}"
                raise InvalidArgument(f"`--out` must be a directory, but {text!r} {what}")
            return part
    return Path(".")  # pragma: no cover - a relative path's parents end in "."


def validate_out(text: str | None) -> None:
    """``--out`` must be a directory we can create or write into, checked before the check.

    Examples
    --------
    >>> validate_out("")
    Traceback (most recent call last):
    ...
    gradcheck.errors.InvalidArgument: `--out` must name a directory, got an empty string
    """
    if text is None:
        return
    if not text.strip():
        raise InvalidArgument("`--out` must name a directory, got an empty string")
    try:
        _check_out(text, Path(text))
    except OSError as exc:  # a name too long, a folder we may not look into
        raise InvalidArgument(f"`--out` {text[:80]!r} cannot be used: {exc.strerror or exc}") \
            from None


def _check_out(text: str, path: Path) -> None:
    base = _existing_ancestor(text, path)
    if not _writable(base):
        where = "" if base == path else f" (it would be created in {str(base)!r})"
        raise InvalidArgument(f"`--out` {text!r} is not writable{where}: permission denied "
                              "or a read-only file system")
    if base == path:
        from gradcheck.report import OUTPUT_FILES

        clash = [n for n in OUTPUT_FILES if (path / n).is_dir()]
        if clash:
            raise InvalidArgument(f"`--out` {text!r} holds a directory named {clash[0]!r}, "
                                  "where the report file of that name would go")


# --- everything at once ---------------------------------------------------------------------


def _non_negative(option: str, value: Any, *, minimum: int = 0) -> None:
    if value < minimum:
        word = "non-negative" if minimum == 0 else "positive"
        raise InvalidArgument(f"`{option}` must be a {word} integer, got {value}")


def validate_check(args: argparse.Namespace) -> None:
    """Every option of ``gradcheck check``, before the layer's file is imported."""
    _non_negative("--seed", args.seed)
    _non_negative("--examples", args.examples, minimum=1)
    _non_negative("--max-elements", args.max_elements, minimum=1)
    if not math.isfinite(args.timeout) or not 0 <= args.timeout <= MAX_TIMEOUT:
        raise InvalidArgument(f"`--timeout` must be a finite number of seconds from 0 (no "
                              f"limit) to {MAX_TIMEOUT:g}, got {args.timeout}")
    budget = getattr(args, "import_budget", 0.0)
    if not math.isfinite(budget) or not 0 <= budget <= MAX_TIMEOUT:
        raise InvalidArgument(f"`--import-budget` must be a finite number of seconds from 0 "
                              f"(wait for the import) to {MAX_TIMEOUT:g}, got {budget}")
    target_kind(args)
    parse_shapes(args.shape, max_elements=args.max_elements, dtype=args.dtype)
    parse_ints(args.int)
    parse_ranges(getattr(args, "range", []), args.shape)
    parse_kwargs(args.kwarg)
    parse_kwargs(getattr(args, "forward_kwarg", []), "--forward-kwarg")
    for text in getattr(args, "grad", []):
        parse_location(text)
    validate_out(args.out)
