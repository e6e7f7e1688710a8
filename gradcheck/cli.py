"""The ``gradcheck`` command: ``run`` verifies the reference suite, ``check`` verifies your layer.

Exit codes, one meaning each: 0 every gradient passes, 1 a gradient fails, 2 a usage or input
error (including an ``--out`` that cannot be written), 3 the layer crashed or misbehaved (raised,
called ``sys.exit``, returned something unusable, overran ``--timeout``), 4 inconclusive (nothing
failed, but a gradient could not be certified), 130 interrupted (Ctrl-C). Never 0 without a
verdict. Messages go to stderr, one line each; ``--debug`` adds the traceback. While the layer
runs, its stdout goes to stderr, so stdout carries only the report.

Examples::

    gradcheck check my_layers.py --op batchnorm --shape x=4,5 --shape gamma=5 --shape beta=5 \\
        --kwarg bn_param='{"mode": "train"}'
    gradcheck check my_layers.py --layer MyBatchNorm --kwarg num_features=5 --shape x=8,5
    gradcheck run --out reports
    gradcheck replay reports/replay.npz      # a failing check --out case, exactly again
    gradcheck explain batchnorm
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gradcheck import _cli_args, _guard, kinds
from gradcheck._version import __version__
from gradcheck.errors import (
    GradcheckError,
    GradcheckWarning,
    InvalidArgument,
    LayerError,
    WorkerLost,
)
from gradcheck.kinds import ExitCode  # the exit codes, one meaning each (documented in README)


class _UsageError(Exception):
    """Raised by the parser instead of exiting, so ``main`` returns 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would call sys.exit(2)
        raise _UsageError(f"{self.prog}: {message}")


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=kinds.FORMATS, default=kinds.TEXT, help="what to print")
    p.add_argument("--out", metavar="DIR", help="also write summary.{txt,md,html} and results.json")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    _add_terminal_options(p)


def _add_terminal_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wide", action="store_true",
                   help="text: every column (the default fits 100 columns)")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                      default=0, help="text: only the verdict and the failures")
    loud.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                      help="text: details of passing gradients too")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the text (auto: on a terminal, unless NO_COLOR is set)")


def _add_learner_commands(sub: Any) -> None:
    from gradcheck.explain import topics

    explain = sub.add_parser("explain", help="short lessons: what BatchNorm computes, its "
                             "backward, where it goes")
    explain.add_argument("topic", choices=topics())
    explain.set_defaults(out=None)
    replay = sub.add_parser("replay", help="re-run a failing check from its replay file "
                            "(written by check --out)")
    replay.add_argument("file", metavar="FILE.npz")
    _cli_args.add_isolation_options(replay)
    _add_output_options(replay)


def _parser() -> _Parser:
    parser = _Parser(prog="gradcheck", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"gradcheck {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="verify the reference BatchNorm every way we know")
    run.add_argument("--quick", action="store_true", help="a smaller suite, for smoke tests")
    _add_output_options(run)
    check = sub.add_parser("check", help="verify the gradients of the layers in FILE.py")
    _add_check_options(check)
    _add_forward_options(check)
    _cli_args.add_limit_options(check)
    _cli_args.add_isolation_options(check)
    _add_output_options(check)
    _add_learner_commands(sub)
    return parser


def _add_check_options(check: argparse.ArgumentParser) -> None:
    check.add_argument("file", metavar="FILE.py", help="a file (also inside a package), or "
                       "pkg.mod; FILE.py:NAME or pkg.mod:NAME selects one function or class")
    which = check.add_argument_group("what to check (default: every pair in the file)")
    which.add_argument("--op", help="NAME_forward with NAME_backward and its variants "
                       "(NAME_backward_alt), settings from the registry of known ops")
    which.add_argument("--forward", help="the forward function (with --op: NAME's settings)")
    which.add_argument("--backward", help="the backward function (pairs with NAME_forward)")
    which.add_argument("--loss", metavar="NAME", help="a loss returning (loss, dx)")
    which.add_argument("--layer", metavar="CLASS", help="a class with forward(x)/backward(dout)")
    which.add_argument("--cost", metavar="NAME", help="a network: cost(parameters) (with --grads "
                       "and --parameters, the parameter-dict convention)")
    which.add_argument("--grads", metavar="NAME", help="--cost: the backprop, returning dW1, ...")
    which.add_argument("--parameters", metavar="NAME", help="--cost: the parameter dict, or a "
                       "function of no arguments returning it")
    check.add_argument("--shape", action="append", default=[], metavar="NAME=D1,D2,...",
                       help="an input array and its shape (repeat); symbolic names such as N,D "
                            "draw shapes with hypothesis (see --examples)")
    check.add_argument("--int", action="append", default=[], metavar="NAME=LOW:HIGH",
                       help="an integer input (labels, indices) drawn from [LOW, HIGH)")
    check.add_argument("--kwarg", action="append", default=[], metavar="NAME=JSON",
                       help="a non-array argument (functions; JSON lists become arrays) or a "
                            "constructor argument (--layer)")
    check.add_argument("--params-attr", help="--layer: the parameters dict or list, if no "
                       "convention (params, parameters) finds it")
    check.add_argument("--grads-attr", help="--layer: the gradients dict or list")
    check.add_argument("--grad", action="append", default=[], metavar="PARAM=LOCATION",
                       help="--layer: where a parameter's gradient is (e.g. W=dW_sum, "
                            "gamma=cache[dgamma])")
    check.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    check.add_argument("--method", choices=kinds.METHODS, default=kinds.AUTO)
    check.add_argument("--mode", choices=kinds.MODES, default=kinds.AUTO,
                       help="full: every element; sampled: a sample plus random "
                       "directions (auto above 2048 elements); directional: directions only "
                       "(auto for about a million elements)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--examples", type=int, default=100,
                       help="hypothesis examples when --shape uses symbolic dimensions")


# --- forward check (gradcheck.forward_check): --against, --convention ---------------------------


def _add_forward_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--against", choices=("batchnorm", "layernorm", "groupnorm"),
                   help="also compare the forward's outputs (and running statistics) with this "
                        "reference; a deviation makes the exit code 1")
    p.add_argument("--convention", choices=("torch", "keras", "cs231n"),
                   help="--against batchnorm: the running-statistics convention (default: "
                        "detected from what the forward does)")


def _forward_check(args: argparse.Namespace, door: Any,
                   specs: dict[str, tuple[str, ...]], kwargs: dict[str, Any]) -> Any:
    """The :class:`~gradcheck.forward_check.ForwardReport` asked for by ``--against``, or None."""
    if not args.against:
        return None
    from gradcheck.forward_check import check_forward

    if not (args.op or args.forward):
        raise InvalidArgument("`--against` needs `--op` or `--forward` (a course-style forward)")
    name = f"{args.op}_forward" if args.op else args.forward
    door.info.callable_named(name, "forward")
    sized = {n: tuple(int(d) for d in dims) for n, dims in specs.items()
             if all(d.isdigit() for d in dims)}
    return check_forward(door.workshop.function(name), against=args.against,
                         shape=sized.get("x"), param_shape=sized.get("gamma"),
                         convention=args.convention, groups=kwargs.get("G"), seed=args.seed)


def _with_forward(text: str, forward: Any, fmt: str) -> str:
    """The gradient report with the forward check's findings: inside JSON, after text."""
    from gradcheck.forward_check import render_forward_report

    if fmt == kinds.JSON:
        return json.dumps({**json.loads(text), "forward_check": forward.to_dict()}, indent=2,
                          allow_nan=False)
    if fmt == kinds.TEXT:
        return f"{text}\n\n{render_forward_report(forward)}"
    print(render_forward_report(forward), file=sys.stderr)  # markdown/html: a separate stream
    return text


def _forward_exit(code: int, forward: Any) -> int:
    """A deviating forward fails the run (the user asked for the comparison) unless it failed."""
    failed = code == ExitCode.PASS and forward is not None and not forward.passed
    return ExitCode.FAIL if failed else code


def _parse_shape(text: str) -> tuple[str, tuple[str, ...]]:
    return _cli_args.parse_shape(text)


def _parse_kwarg(text: str) -> tuple[str, Any]:
    return _cli_args.parse_kwarg(text)


def _stdout(args: argparse.Namespace) -> Any:
    """The real stdout: main() sends the layer's prints to stderr while the command runs."""
    return getattr(args, "stdout", None) or sys.stdout


def _emit(reports: Sequence[Any], args: argparse.Namespace, forward: Any = None) -> None:
    from gradcheck import report as rep
    from gradcheck._terminal import use_color

    stdout = _stdout(args)
    text = rep.render(reports, args.format, **(_text_options(args, use_color(
        stdout, getattr(args, "color", "never"))) if args.format == kinds.TEXT else {}))
    _print_quietly(text if forward is None else _with_forward(text, forward, args.format), stdout)
    if args.out:
        _same_out(args)
        try:
            written = rep.write_reports(reports, args.out)
        except OSError as exc:
            raise InvalidArgument(f"`--out` {args.out!r} could not be written: {exc}") from exc
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
        _write_replay(reports, args)


def _same_out(args: argparse.Namespace) -> None:
    """``--out`` must still be the directory it was when the check started."""
    before = getattr(args, "out_real", None)
    now = os.path.realpath(args.out)
    if before is not None and now != before:
        raise InvalidArgument(
            f"refusing to write the reports: `--out` {args.out!r} now leads to {now!r}, not to "
            f"{before!r} as when the check started (a directory on the way was replaced by a "
            "symbolic link while the layer ran)")


def _text_options(args: argparse.Namespace, color: bool) -> dict[str, Any]:
    return {"wide": getattr(args, "wide", False), "color": color,
            "verbosity": getattr(args, "verbosity", 0)}


def _print_quietly(text: str, stream: Any = None) -> None:
    """Print; when the reader has gone (``| head``), stop quietly instead of a traceback."""
    out = sys.stdout if stream is None else stream
    try:
        print(text, file=out)
        out.flush()
    except BrokenPipeError:
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)  # so the interpreter's final flush is quiet
        os.dup2(devnull, out.fileno())
        os.close(devnull)


# --- replay (gradcheck.replay): check --out writes DIR/replay.npz; `gradcheck replay` ----------


def _write_replay(reports: Sequence[Any], args: argparse.Namespace) -> None:
    """``check --out``: a failing check's inputs, dout and seed, and the command replaying it."""
    from gradcheck.replay import FILE_NAME, replay_command, write_replay

    failing = [r for r in reports if not r.passed and any(g.evidence for g in r.results)]
    if args.command not in ("check", "replay") or not failing or getattr(args, "cost", None):
        return
    options = dict(args.replay_options) if args.command == "replay" else _check_options(args)
    path = write_replay(failing[0], Path(args.out) / FILE_NAME, method=options["method"],
                        mode=options["mode"], layer=options)
    print(f"replay this failure: {replay_command(path)}", file=sys.stderr)


def _check_options(args: argparse.Namespace) -> dict[str, Any]:
    """The check's parsed options, JSON-ready, with FILE made absolute (replay runs anywhere)."""
    options = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool,
                                                                      list, type(None)))}
    path, sep, attr = str(args.file).partition(":")
    if Path(path).is_file():
        options["file"] = str(Path(path).resolve()) + sep + attr
    return options


def _replay_layer(args: argparse.Namespace, door: Any, case: str) -> Any:
    """The layer the check built: the same discovery, the same settings, for the same pair."""
    from gradcheck.discover import draw_fixed, plan

    _select_target(args, door)
    given, symbolic = _overrides(args)
    if args.layer:
        return _class_layer(args, door, given)[0]
    pairs, _ = _selected_pairs(args, door)
    pair = next((p for p in pairs if p.label == case), pairs[0])
    p = plan(pair, door.forward_info(pair.forward), given)
    config = dict(p.config) if symbolic else {**p.config, **draw_fixed(p, args.dtype, args.seed)}
    return door.workshop.pair_layer(pair.op, pair.forward, pair.backward, config)


def _replay(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gradcheck.check import check_layer
    from gradcheck.layer import annotate
    from gradcheck.replay import load_replay

    case = load_replay(args.file)
    stored = argparse.Namespace(**{**case.layer, "in_process": args.in_process,
                                   "max_memory": args.max_memory, "workers": args.workers})
    with _opened(stored) as door:
        layer = _replay_layer(stored, door, case.case)
        if hasattr(layer, "clear_problems"):
            layer.clear_problems()
        with warnings.catch_warnings():  # the report carries them
            warnings.simplefilter("ignore", GradcheckWarning)
            report = check_layer(layer, case.inputs, method=case.method, mode=case.mode,
                                 seed=case.seed, dout=case.dout, wrt=case.wrt)
        report = replace(report, case=case.case)
        if stored.layer:
            report = annotate(report, layer)
    args.replay_options = case.layer
    _emit([report], args)
    return _exit_code([report])


def _explain(args: argparse.Namespace) -> int:
    from gradcheck.explain import explain

    _print_quietly(explain(args.topic), _stdout(args))
    return ExitCode.PASS


# --- progress on a terminal (gradcheck._terminal) ---------------------------------------------


def _progress_check(layer: Any, shapes: dict[str, tuple[int, ...]],
                    args: argparse.Namespace) -> Any:
    """Progress on a terminal while one check runs (nothing in a pipe)."""
    import math

    from gradcheck import _terminal

    return _terminal.one_check(layer, {k: math.prod(v) for k, v in shapes.items()}, args.method)


def _progress_cases(total: int, unit: str) -> Any:
    """Progress on a terminal over whole checks (``run``, property mode)."""
    from gradcheck import _terminal

    return _terminal.checks(total, unit=unit)


# --- the user's module: imported in the worker (gradcheck.worker), planned here ---------------


@contextlib.contextmanager
def _opened(args: argparse.Namespace) -> Iterator[Any]:
    """The user's module as a workshop (in the supervised worker unless --in-process), and its
    :class:`~gradcheck.doorway.ModuleInfo`. The worker and everything it started end on exit."""
    from gradcheck.doorway import ModuleInfo, open_module

    if getattr(args, "in_process", False):
        with _guard.user_code(f"import of {args.file}"), _guard.no_bytecode():
            workshop: Any = open_module(args.file, seed=args.seed)
        yield _Doorway(workshop, ModuleInfo.from_data(workshop.info()), None)
        return
    from gradcheck.worker.remote import RemoteWorkshop, Replicated
    from gradcheck.worker.supervisor import Worker

    limit = getattr(args, "max_memory", 0) or None
    workers: list[Any] = []
    try:  # started together: their interpreters and imports overlap ours
        workers += [Worker(max_memory=limit) for _ in range(getattr(args, "workers", 1) or 1)]
        _preload(args)  # before the user's file is imported (RemoteWorkshop's load)
        shops = [RemoteWorkshop(w, args.file, seed=args.seed) for w in workers]
        workshop = shops[0] if len(shops) == 1 else Replicated(shops)
        yield _Doorway(workshop, ModuleInfo.from_data(shops[0].info()), workers[0])
    finally:
        for worker in workers:
            worker.close()


# What this process will import while a check runs, imported before the worker starts: the
# layer's code can write files this user can write, but not into a module already loaded here.
_PARENT_MODULES = (
    "gradcheck.check", "gradcheck.diagnosis", "gradcheck.discover", "gradcheck.explain",
    "gradcheck.forward_check", "gradcheck.layer", "gradcheck.model", "gradcheck.replay",
    "gradcheck.report", "gradcheck.properties", "gradcheck._terminal", "gradcheck._gather",
    "gradcheck.numeric.probe", "gradcheck.worker.remote", "tabulate", "tempfile", "html",
    "traceback", "scipy.differentiate", "scipy.optimize",
)
_PROPERTY_MODULES = ("hypothesis", "hypothesis.extra.numpy", "gradcheck.strategies")


def _preload(args: argparse.Namespace) -> None:
    import importlib

    symbolic = any(not d.isdigit() for text in getattr(args, "shape", ())
                   for d in _parse_shape(text)[1])
    for name in (*_PARENT_MODULES, *(_PROPERTY_MODULES if symbolic else ())):
        importlib.import_module(name)


class _Doorway:
    """The workshop, what the module offers, and the worker (None in process)."""

    def __init__(self, workshop: Any, info: Any, worker: Any) -> None:
        self.workshop, self.info, self.worker = workshop, info, worker

    def forward_info(self, name: str) -> Any:
        self.info.callable_named(name, "forward")
        found = self.info.functions.get(name)
        if found is None:
            raise InvalidArgument(f"forward {name!r} must be a function (def) in "
                                  f"{self.info.file}, to read its parameters")
        return found


class _Outcome:
    """What a check command found, emitted only after the layer's process is gone."""

    def __init__(self, reports: Sequence[Any], code: int, forward: Any = None,
                 rows: list[list[str]] | None = None, summary: str = "") -> None:
        self.reports, self.code, self.forward = list(reports), code, forward
        self.rows, self.summary = rows, summary


def _parse_int(text: str) -> tuple[str, tuple[int, int]]:
    name, sep, span = text.partition("=")
    low, colon, high = span.partition(":")
    try:
        ends = (int(low), int(high))
    except ValueError:
        ends = (0, 0)
    if not sep or not colon or not name.strip() or ends[0] >= ends[1]:
        raise InvalidArgument(
            f"`--int` must look like NAME=LOW:HIGH with LOW < HIGH (e.g. y=0:10), got {text!r}"
        )
    return name.strip(), ends


def _parse_location(text: str) -> tuple[str, str]:
    param, sep, grad = text.partition("=")
    if not sep or not param.strip() or not grad.strip():
        raise InvalidArgument(f"`--grad` must look like PARAM=LOCATION (e.g. W=dW_sum or "
                              f"gamma=cache[dgamma]), got {text!r}")
    return param.strip(), grad.strip()


def _as_arrays(kwargs: dict[str, Any]) -> dict[str, Any]:
    """JSON lists of numbers become float arrays, also inside dicts (``bn_param``'s
    ``running_mean``): the forward does arithmetic on them, not list operations."""
    return {k: _array_or_value(v) for k, v in kwargs.items()}


def _array_or_value(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {k: _array_or_value(v) for k, v in value.items()}
    if isinstance(value, list):
        arr = np.asarray(value)
        if arr.dtype.kind in "iuf":
            return arr.astype(np.float64) if arr.dtype.kind == "f" else arr
        return [_array_or_value(v) for v in value]
    return value


def _overrides(args: argparse.Namespace) -> Any:
    from gradcheck.discover import Overrides

    shapes = dict(_parse_shape(s) for s in args.shape)
    symbolic = [n for n, dims in shapes.items() if any(not d.isdigit() for d in dims)]
    given = {n: tuple(int(d) for d in dims) for n, dims in shapes.items() if n not in symbolic}
    ints = dict(_parse_int(t) for t in args.int)
    kwargs = _as_arrays(dict(_parse_kwarg(k) for k in args.kwarg))
    return Overrides(given, ints, kwargs), {n: shapes[n] for n in symbolic}


def _select_target(args: argparse.Namespace, door: _Doorway) -> None:
    """``FILE:NAME`` picks what NAME is: a class, a forward, a backward or a loss."""
    from gradcheck.loading import split_target

    name = split_target(args.file)[1]
    if name is None:
        return
    door.info.callable_named(name, "NAME")
    if name in door.info.classes:
        args.layer = args.layer or name
    elif name.endswith("_loss"):
        args.loss = args.loss or name
    elif "_backward" in name:
        args.backward = args.backward or name
    elif "_forward" in name:
        args.forward = args.forward or name
    else:
        raise InvalidArgument(f"NAME {name!r} must be a class with forward and backward, "
                              "NAME_forward, NAME_backward or a *_loss function")


def _op_pairs(args: argparse.Namespace, door: _Doorway) -> list[Any]:
    """The pairs --op/--forward/--backward select; every function they name must exist.

    ``--op`` names the registry entry (and the default function names), ``--forward`` and
    ``--backward`` the functions; a missing one is found by pairing, as in a whole-file run.
    """
    from gradcheck.discover import Pair, find_pairs

    info = door.info
    named = args.backward or args.forward
    role = "_backward" if args.backward else "_forward"
    op = args.op or named.rpartition(role)[0] or named
    found = [p for p in find_pairs(info.functions) if p.backward and not p.problem]
    if args.backward:
        info.callable_named(args.backward, "backward")
        paired = next((p.forward for p in found if p.backward == args.backward), "")
        forward = args.forward or paired or f"{op}_forward"
        info.callable_named(forward, "forward")
        return [Pair(op, forward, args.backward)]
    pairs = [p for p in found if p.op == op and args.forward in (None, p.forward)]
    if not pairs and args.forward:  # a forward of another name, with the op's backwards
        pairs = [Pair(op, args.forward, p.backward) for p in found if p.op == op]
    info.callable_named(args.forward or (pairs[0].forward if pairs else f"{op}_forward"),
                        "forward")
    if not pairs:
        raise InvalidArgument(f"found no backward for {args.forward or op + '_forward'}: add "
                              "--backward NAME")
    return pairs


def _selected_pairs(args: argparse.Namespace, door: _Doorway) -> tuple[list[Any], bool]:
    """The pairs to check, and whether the user named them (else: the whole file)."""
    from gradcheck.discover import Pair, find_pairs

    if args.loss:
        door.info.callable_named(args.loss, "--loss")
        return [Pair(args.loss, args.loss, "", kind="loss")], True
    if args.op or args.forward or args.backward:
        return _op_pairs(args, door), True
    return find_pairs(door.info.functions), False


def _check_pair(p: Any, door: _Doorway, args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from gradcheck.check import check_layer
    from gradcheck.discover import draw_fixed
    from gradcheck.properties import random_inputs

    pair = p.pair
    layer = door.workshop.pair_layer(pair.op, pair.forward, pair.backward,
                                     {**p.config, **draw_fixed(p, args.dtype, args.seed)})
    with warnings.catch_warnings(), _progress_check(layer, p.shapes, args):  # the report has them
        warnings.simplefilter("ignore", GradcheckWarning)
        inputs = {k: v * v.dtype.type(p.scale)
                  for k, v in random_inputs(p.shapes, args.dtype, args.seed).items()}
        report = check_layer(layer, inputs, method=args.method, mode=args.mode, seed=args.seed)
    return replace(report, case=pair.label)


def _gradient_words(report: Any) -> str:
    return ", ".join(f"d{r.name} {r.status}" for r in report.results)


def _overview(rows: list[list[str]], args: argparse.Namespace) -> None:
    from tabulate import tabulate

    fmt = "github" if args.format == kinds.MARKDOWN else "simple"
    table = tabulate(rows, headers=["op", "forward", "backward", "verdict", "gradients", "note"],
                     tablefmt=fmt, disable_numparse=True)
    print(table, file=_stdout(args) if args.format in (kinds.TEXT, kinds.MARKDOWN) else sys.stderr)


def _check_flag_names(pairs: Sequence[Any], door: _Doorway, given: Any) -> None:
    """A --shape, --int or --kwarg that names no parameter of any selected forward is a typo."""
    params = {n for p in pairs if p.forward and not p.problem
              for n in door.forward_info(p.forward).params}
    for flag, names in (("--shape", given.shapes), ("--int", given.ints),
                        ("--kwarg", given.kwargs)):
        unknown = [n for n in names if n not in params]
        if unknown and params:
            raise InvalidArgument(f"`{flag} {unknown[0]}` names no parameter of the functions "
                                  f"checked; their parameters are {', '.join(sorted(params))}")


def _one_line(text: object, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def _check_row(pair: Any, door: _Doorway, given: Any, args: argparse.Namespace,
               named: bool) -> tuple[Any, list[str]]:
    """One pair: its report (None when skipped or raised) and its row of the overview table.

    Pairs the user named raise instead of being skipped: they asked for exactly those.
    """
    from gradcheck.discover import plan

    row = [pair.op, pair.forward or "-", pair.backward or ("(loss)" if pair.forward else "-")]
    p = None if pair.problem else plan(pair, door.forward_info(pair.forward), given)
    problem = pair.problem or (p.problem if p else "")
    if problem:
        if named:
            raise InvalidArgument(f"{pair.label}: {problem}")
        return None, [*row, "skipped", "-", problem]
    try:
        report = _check_pair(p, door, args)
    except GradcheckError as exc:
        if named:
            raise
        return None, [*row, "ERROR", "-", _one_line(exc)]
    verdict = report.verdict if report.passed else report.verdict.upper()
    return report, [*row, verdict, _gradient_words(report), _one_line("; ".join(report.problems))]


def _check_file(args: argparse.Namespace, door: _Doorway, given: Any) -> _Outcome:
    """Every pair of the file (or of --op): one report each, one overview table of all."""
    pairs, named = _selected_pairs(args, door)
    _check_flag_names(pairs, door, given)
    forward = _forward_check(args, door, dict(_parse_shape(t) for t in args.shape),
                             dict(given.kwargs))
    reports, rows = [], []
    for pair in pairs:
        report, row = _check_row(pair, door, given, args, named)
        reports += [report] if report is not None else []
        rows.append(row)
    errors = sum(row[3] == "ERROR" for row in rows)
    if not named:
        rows += _class_rows(door.info.classes, args.file)
    if not reports:
        return _Outcome([], ExitCode.USAGE, forward, rows,
                        f"no pair in {args.file} could be checked (see the table)")
    show = rows if not named or len(rows) > 1 else None
    return _Outcome(reports, _forward_exit(_exit_code(reports, errors), forward), forward, show)


def _class_rows(classes: Sequence[str], target: str) -> list[list[str]]:
    """Classes with forward/backward are not checked in a whole-file run: say how to."""
    return [[name, "-", "-", "skipped", "-",
             f"a class: add --layer {name} --shape x=N,D (or {target}:{name})"]
            for name in classes]


def _exit_code(reports: Sequence[Any], errors: int = 0) -> int:
    verdicts = {r.verdict for r in reports}
    if kinds.FAIL in verdicts:
        return ExitCode.FAIL
    if errors:
        return ExitCode.LAYER
    return ExitCode.INCONCLUSIVE if kinds.INCONCLUSIVE in verdicts else ExitCode.PASS


def _random_parameters(layer: Any, dtype: str, seed: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng([seed, 0x706172])
    return {k: rng.normal(0.5, 1.0, size=np.shape(v)).astype(dtype)
            for k, v in layer.parameters().items()}


def _class_layer(args: argparse.Namespace, door: _Doorway, given: Any) -> tuple[Any, Any]:
    from gradcheck.properties import random_inputs

    if len(given.shapes) != 1:
        raise InvalidArgument(f"--layer {args.layer} needs the shape of its one input: add "
                              f"--shape x=N,D (got {len(given.shapes)} shapes)")
    names = dict(_parse_location(t) for t in args.grad)
    door.info.callable_named(args.layer, "--layer")
    kwargs = dict(_parse_kwarg(k) for k in args.kwarg)
    inputs = random_inputs(given.shapes, args.dtype, args.seed)
    (name, x), = inputs.items()
    options = {"params": args.params_attr, "grads": args.grads_attr, "names": names}
    return door.workshop.class_layer(args.layer, kwargs, name, options, x), inputs


def _check_class(args: argparse.Namespace, door: _Doorway, given: Any) -> _Outcome:
    """A class at its initial parameters and at random ones (gamma = 1, beta = 0 hide bugs)."""
    from dataclasses import replace

    from gradcheck.check import check_layer
    from gradcheck.layer import annotate

    layer, inputs = _class_layer(args, door, given)
    runs = [("initial parameters", inputs)]
    if layer.parameters():
        random = _random_parameters(layer, args.dtype, args.seed)
        runs.append((f"random parameters (seed {args.seed})", {**inputs, **random}))
    reports = []
    for case, values in runs:
        layer.clear_problems()  # each report gets what its own check saw
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GradcheckWarning)
            report = check_layer(layer, values, method=args.method, mode=args.mode,
                                 seed=args.seed)
        reports.append(annotate(replace(report, case=case), layer))
    return _Outcome(reports, _exit_code(reports))


def _check_model(args: argparse.Namespace, door: _Doorway) -> _Outcome:
    from dataclasses import replace

    from gradcheck.check import check_layer

    if not (args.grads and args.parameters):
        raise InvalidArgument("`--cost` needs `--grads NAME` and `--parameters NAME` too")
    door.info.callable_named(args.cost, "--cost")
    door.info.callable_named(args.grads, "--grads")
    if args.parameters not in (*door.info.callables, *door.info.values):
        raise InvalidArgument(f"--parameters {args.parameters!r} is not a name in "
                              f"{door.info.file}; it must be a dict or a function returning one")
    layer, params = door.workshop.model(args.cost, args.grads, args.parameters)
    if not params:
        raise InvalidArgument(f"--parameters {args.parameters!r} is an empty dict: nothing to "
                              "check")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradcheckWarning)
        report = check_layer(layer, params, method=args.method, mode=args.mode, seed=args.seed)
    report = replace(report, case=f"{args.cost} / {args.grads}")
    return _Outcome([report], _exit_code([report]))


def _check_property(args: argparse.Namespace, door: _Doorway, given: Any,
                    symbolic: dict[str, Any]) -> _Outcome:
    from gradcheck.discover import plan
    from gradcheck.properties import check_layer_property

    pairs, _ = _selected_pairs(args, door)
    if len(pairs) != 1 or given.ints or pairs[0].kind == "loss":
        raise InvalidArgument("symbolic --shape (property mode) needs one forward/backward pair "
                              "without integer inputs: add --backward NAME")
    pair = pairs[0]
    p = plan(pair, door.forward_info(pair.forward), given)
    layer = door.workshop.pair_layer(pair.op, pair.forward, pair.backward, dict(p.config))
    specs = {**{n: tuple(map(str, s)) for n, s in given.shapes.items()}, **symbolic}
    forward = _forward_check(args, door, specs, dict(p.config))
    with _progress_cases(args.examples, "drawn cases"):
        result = check_layer_property(layer, specs, dtype=args.dtype, method=args.method,
                                      mode=args.mode, seed=args.seed, examples=args.examples)
    code = _forward_exit(_exit_code(result.reports), forward)
    return _Outcome(result.reports, code, forward, summary=result.summary)


def _check_outcome(args: argparse.Namespace, door: _Doorway) -> _Outcome:
    if args.debug and door.info.how:
        print(f"gradcheck: {door.info.how}", file=sys.stderr)
    _select_target(args, door)
    given, symbolic = _overrides(args)
    if args.layer:
        return _check_class(args, door, given)
    if args.cost:
        return _check_model(args, door)
    if symbolic:
        return _check_property(args, door, given, symbolic)
    return _check_file(args, door, given)


def _check(args: argparse.Namespace) -> int:
    """Check the user's file; the reports are written after its process has ended."""
    with _opened(args) as door:
        outcome = _check_outcome(args, door)
    return _finish(args, outcome)


def _finish(args: argparse.Namespace, outcome: _Outcome) -> int:
    if outcome.reports:
        _emit(outcome.reports, args, outcome.forward)
    if outcome.rows is not None:
        _overview(outcome.rows, args)
    if outcome.summary and outcome.reports:
        print(outcome.summary, file=sys.stderr)
    if not outcome.reports:
        raise InvalidArgument(outcome.summary)
    return outcome.code


def _run(args: argparse.Namespace) -> int:
    from gradcheck.suite import cases, norm_cases, run_reference_suite

    total = len(list(cases(args.quick))) + len(list(norm_cases(args.quick)))
    with _progress_cases(total, "checks"):
        reports = run_reference_suite(quick=args.quick)
    _emit(reports, args)
    passed = all(r.passed for r in reports)
    failed = sum(not r.passed for r in reports)
    word = (kinds.PASS if passed else kinds.FAIL).upper()
    print(f"gradcheck run: {word}: {len(reports) - failed} of "
          f"{len(reports)} checks passed", file=sys.stderr)
    return _exit_code(reports)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run, "explain": _explain, "replay": _replay}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of calling ``sys.exit``."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return ExitCode.USAGE
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else ExitCode.USAGE
    try:
        return _command(args)
    except _guard.Terminated as exc:
        print(f"gradcheck: stopped by signal {exc.signum}: the check was stopped without a "
              "verdict", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("gradcheck: interrupted (Ctrl-C): the check was stopped without a verdict",
              file=sys.stderr)
        return ExitCode.INTERRUPTED
    except WorkerLost as exc:  # the layer's process ended: killed, crashed, os._exit
        return _fail(args, LayerError(str(exc)), ExitCode.LAYER)
    except SystemExit as exc:  # user code outside the phases that name themselves
        return _fail(args, LayerError(_guard.exit_message(exc, "the check")), ExitCode.LAYER)
    except InvalidArgument as exc:
        return _fail(args, exc, ExitCode.USAGE)
    except GradcheckError as exc:  # LayerError, CheckTimeout
        return _fail(args, exc, ExitCode.LAYER)
    except MemoryError as exc:
        return _fail(args, exc, ExitCode.LAYER, "ran out of memory; try smaller --shape inputs")
    except Exception as exc:  # from the layer's code where gradcheck could not label it
        return _fail(args, exc, ExitCode.LAYER, _unexpected(exc))


def _unexpected(exc: Exception) -> str:
    from gradcheck._engine.call import copy_failure

    what = f"{type(exc).__name__}: {exc}"
    if copy_failure(exc):
        return (f"gradcheck could not copy the layer to call it safely ({what}): an attribute "
                "holds something that cannot be copied (a lock, an open file)")
    return f"unexpected {what} (rerun with --debug for the traceback)"


def _command(args: argparse.Namespace) -> int:
    """Validate, then run the command with the layer's stdout on stderr and the time limit."""
    if args.command == "check":
        _cli_args.validate_check(args)
    else:
        _cli_args.validate_out(args.out)
    if args.out:  # fixed before any user code runs: a layer's os.chdir cannot move it
        args.out = os.path.abspath(args.out)
        args.out_real = os.path.realpath(args.out)
    timeout = getattr(args, "timeout", 0.0) or None
    with _guard.terminable(), _guard.stdout_to_stderr() as args.stdout, _guard.time_limit(
            timeout, hint="raise --timeout (0: no limit)"):
        return _COMMANDS.get(args.command, _check)(args)


def _fail(args: argparse.Namespace, exc: BaseException, code: int, text: str = "") -> int:
    if getattr(args, "debug", False):
        import traceback  # on first use: only --debug prints one

        traceback.print_exception(exc)
        remote = getattr(exc, "remote_traceback", "") or getattr(exc.__cause__, "remote_traceback",
                                                                 "")
        if remote:
            print(f"in the layer's process:\n{remote}", file=sys.stderr)
    print(f"gradcheck: error: {text or exc}", file=sys.stderr)
    return code
