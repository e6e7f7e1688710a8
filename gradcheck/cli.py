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
    check = sub.add_parser("check", help="verify the gradients of the layers in FILE.py",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_check_options(check)
    _add_numeric_options(check)
    _add_forward_options(check)
    _cli_args.add_limit_options(check)
    _cli_args.add_isolation_options(check)
    _add_output_options(check)
    _add_learner_commands(sub)
    return parser


def _add_check_options(check: argparse.ArgumentParser) -> None:
    check.add_argument("file", metavar="FILE.py", help="a file, a notebook (.ipynb), a file "
                       "inside a package, or pkg.mod; FILE.py:NAME selects one function or class")
    _add_target_options(check)
    _add_data_options(check)
    _add_class_options(check)


def _add_numeric_options(check: argparse.ArgumentParser) -> None:
    check.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    check.add_argument("--method", choices=kinds.METHODS, default=kinds.AUTO)
    check.add_argument("--mode", choices=kinds.MODES, default=kinds.AUTO,
                       help="full: every element; sampled: a sample plus random "
                       "directions (auto above 2048 elements); directional: directions only "
                       "(auto for about a million elements)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--examples", type=int, default=100,
                       help="hypothesis examples when --shape uses symbolic dimensions")


_TARGETS = """what to check: one kind of target (default: every pair, loss and network in the file)

  a course pair   --op NAME | --forward NAME [--backward NAME]   NAME_forward/NAME_backward
  a loss          --loss NAME                                    loss, dx = NAME(x, y, ...)
  a class         --layer CLASS                                  forward/backward methods
  a network       --network [FORWARD] [--grads BACKWARD] [--cost-fn COST] [--parameters INIT]
  a cost          --cost NAME --grads NAME --parameters NAME     cost(parameters)"""


def _add_target_options(check: argparse.ArgumentParser) -> None:
    """The kinds of target; options of two kinds are refused before the file is imported
    (``_cli_args.target_kind``), with a message naming both."""
    which = check.add_argument_group("targets", _TARGETS)
    which.add_argument("--op", help="NAME_forward with NAME_backward and its variants "
                       "(NAME_backward_alt), settings from the registry of known ops")
    which.add_argument("--forward", help="the forward function (with --op: NAME's settings)")
    which.add_argument("--backward", help="the backward function (pairs with NAME_forward)")
    which.add_argument("--loss", metavar="NAME", help="a loss returning (loss, dx)")
    which.add_argument("--layer", metavar="CLASS", help="a class with forward/backward (also "
                       "forward_pass/backward_pass, fn/grad, __call__/gradient)")
    which.add_argument("--network", metavar="FORWARD", nargs="?", const="",
                       help="a course network: forward_propagation(X, Y, parameters) or "
                       "L_model_forward(X, parameters) with compute_cost; without FORWARD, the "
                       "one in the file; data by name (--shape X=5,8 --int Y=0:2 --shape Y=1,8)")
    which.add_argument("--cost", metavar="NAME", help="a network as cost(parameters), with "
                       "--grads and --parameters")
    net = check.add_argument_group("networks (--network, --cost)")
    net.add_argument("--grads", metavar="NAME", help="the backprop (--network: default the "
                     "forward's name with backward; --cost: returning dW1, ...)")
    net.add_argument("--parameters", metavar="NAME", help="the starting parameters: a dict in "
                     "the file, or a function returning one (initialize_parameters(layer_dims), "
                     "its arguments from --kwarg)")
    net.add_argument("--cost-fn", metavar="NAME", help="--network: the cost of the forward's "
                     "output (compute_cost(AL, Y)); found by name when the forward takes no Y")
    net.add_argument("--wrt", metavar="NAME", help="--network: the forward's argument that holds "
                     "the parameters, when it is not parameters/params/theta/weights")


def _add_data_options(check: argparse.ArgumentParser) -> None:
    data = check.add_argument_group("inputs and settings, bound by the argument's name")
    data.add_argument("--shape", action="append", default=[], metavar="NAME=D1,D2,...",
                      help="an input array and its shape (repeat); symbolic names such as N,D "
                           "draw shapes with hypothesis (see --examples)")
    data.add_argument("--int", action="append", default=[], metavar="NAME=LOW:HIGH",
                      help="an integer input (labels, indices) drawn from [LOW, HIGH), its "
                           "shape from --shape NAME=...")
    data.add_argument("--range", action="append", default=[], metavar="NAME=LOW:HIGH",
                      help="a float input drawn uniformly from [LOW, HIGH) instead of a standard "
                           "normal (probabilities for a loss: y_pred=0.05:0.95)")
    data.add_argument("--kwarg", action="append", default=[], metavar="NAME=JSON",
                      help="a non-array argument (JSON lists of numbers become arrays, of "
                           "booleans masks), or a constructor argument (--layer: nested lists "
                           "become arrays, Affine(W=[[...]], b=[...]))")


def _add_class_options(check: argparse.ArgumentParser) -> None:
    cls = check.add_argument_group("classes (--layer)")
    cls.add_argument("--forward-kwarg", action="append", default=[], metavar="NAME=JSON",
                     help="an extra argument of the forward (training=false); a training flag "
                          "is passed true unless given")
    cls.add_argument("--params-attr", help="the parameters dict or list, if no convention "
                     "(params, parameters) finds it")
    cls.add_argument("--grads-attr", help="the gradients dict or list")
    cls.add_argument("--grad", action="append", default=[], metavar="PARAM=LOCATION",
                     help="where a parameter's gradient is (e.g. W=dW_sum, gamma=cache[dgamma])")


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
    network = getattr(args, "cost", None) or getattr(args, "network", None) is not None
    if args.command not in ("check", "replay") or not failing or network:
        return  # a network's replay would need its data arguments too: not written yet
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
    if args.layer and args.layer in door.info.frameworks:
        return _framework_layer(args, door, given)[0]
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
    from gradcheck.doorway import BUDGET_VARIABLE, ModuleInfo, open_module

    budget = float(getattr(args, "import_budget", 0.0) or 0.0)
    if getattr(args, "in_process", False):
        with _guard.user_code(f"import of {args.file}"), _guard.no_bytecode():
            workshop: Any = open_module(args.file, seed=args.seed, import_budget=budget)
        yield _Doorway(workshop, ModuleInfo.from_data(workshop.info()), None)
        return
    from gradcheck.worker.remote import RemoteWorkshop, Replicated
    from gradcheck.worker.supervisor import Worker

    limit = getattr(args, "max_memory", 0) or None
    workers: list[Any] = []
    try:  # started together: their interpreters and imports overlap ours
        with _environment(BUDGET_VARIABLE, f"{budget:g}"):  # the worker's open_module reads it
            workers += [Worker(max_memory=limit)
                        for _ in range(getattr(args, "workers", 1) or 1)]
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
    "traceback", "scipy.differentiate",
)
_PROPERTY_MODULES = ("hypothesis", "hypothesis.extra.numpy", "gradcheck.strategies")


def _preload(args: argparse.Namespace) -> None:
    import importlib

    symbolic = any(not d.isdigit() for text in getattr(args, "shape", ())
                   for d in _parse_shape(text)[1])
    for name in (*_PARENT_MODULES, *(_PROPERTY_MODULES if symbolic else ())):
        importlib.import_module(name)


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the block (a child started in it inherits it)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


class _Doorway:
    """The workshop, what the module offers, and the worker (None in process)."""

    def __init__(self, workshop: Any, info: Any, worker: Any) -> None:
        self.workshop, self.info, self.worker = workshop, info, worker
        self._networks: list[dict[str, Any]] | None = None

    def networks(self) -> list[dict[str, Any]]:
        """The networks the module holds (:func:`gradcheck.model.find_networks`), asked once."""
        if self._networks is None:
            self._networks = list(self.workshop.networks())
        return self._networks

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


def _as_arrays(kwargs: dict[str, Any]) -> dict[str, Any]:
    """JSON lists of numbers become float arrays, also inside dicts (``bn_param``'s
    ``running_mean``): the forward does arithmetic on them, not list operations."""
    return {k: _array_or_value(v) for k, v in kwargs.items()}


def _array_or_value(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {k: _array_or_value(v) for k, v in value.items()}
    if isinstance(value, list):
        try:
            arr = np.asarray(value)
        except ValueError:  # ragged
            return [_array_or_value(v) for v in value]
        if arr.dtype.kind == "b":  # a mask (temporal_softmax_loss(x, y, mask))
            return arr
        if arr.dtype.kind in "iuf":
            return arr.astype(np.float64) if arr.dtype.kind == "f" else arr
        return [_array_or_value(v) for v in value]
    return value


def _overrides(args: argparse.Namespace) -> Any:
    from gradcheck.discover import Overrides

    shapes = dict(_parse_shape(s) for s in args.shape)
    symbolic = [n for n, dims in shapes.items() if any(not d.isdigit() for d in dims)]
    given = {n: tuple(int(d) for d in dims) for n, dims in shapes.items() if n not in symbolic}
    ints = _cli_args.parse_ints(args.int)
    kwargs = _as_arrays(dict(_parse_kwarg(k) for k in args.kwarg))
    return Overrides(given, ints, kwargs), {n: shapes[n] for n in symbolic}


def _select_target(args: argparse.Namespace, door: _Doorway) -> None:
    """``FILE:NAME`` picks what NAME is: a class, a forward, a backward or a loss."""
    from gradcheck.loading import split_target

    name = split_target(args.file)[1]
    if name is None:
        return
    door.info.callable_named(name, "NAME")
    if name in door.info.classes or name in door.info.frameworks:
        args.layer = args.layer or name
    elif any(n["forward"] == name for n in door.networks()):
        args.network = args.network or name
    elif name.endswith("_loss"):
        args.loss = args.loss or name
    elif "_backward" in name:
        args.backward = args.backward or name
    elif "_forward" in name:
        args.forward = args.forward or name
    else:
        raise InvalidArgument(f"NAME {name!r} must be a class with forward and backward, "
                              "NAME_forward, NAME_backward, a *_loss function or a network's "
                              "forward")


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


class _Unfinished(Exception):
    """A pair whose check raised because it is not written yet; ``__cause__`` is that error."""


def _check_pair(p: Any, door: _Doorway, args: argparse.Namespace) -> Any:
    """The pair's report.

    Raises
    ------
    _Unfinished
        The check raised, and one call of each function shows why: it returns None or raises
        ``NotImplementedError`` (asked only after an error, so a working pair runs exactly as
        it would without the question).
    """
    from dataclasses import replace

    from gradcheck.check import check_layer
    from gradcheck.discover import draw_fixed
    from gradcheck.properties import random_inputs

    pair = p.pair
    config = {**p.config, **draw_fixed(p, args.dtype, args.seed)}
    inputs = _ranged({k: v * v.dtype.type(p.scale)
                      for k, v in random_inputs(p.shapes, args.dtype, args.seed).items()}, args)
    layer = door.workshop.pair_layer(pair.op, pair.forward, pair.backward, config)
    try:
        with warnings.catch_warnings(), _progress_check(layer, p.shapes, args):
            warnings.simplefilter("ignore", GradcheckWarning)  # the report has them
            report = check_layer(layer, inputs, method=args.method, mode=args.mode,
                                 seed=args.seed)
    except GradcheckError as exc:
        if isinstance(exc, _guard.CheckTimeout):
            raise
        try:
            why = door.workshop.unimplemented(pair.forward, pair.backward, config, inputs)
        except (GradcheckError, SystemExit, WorkerLost):  # the check's error stands
            why = ""
        if why:
            raise _Unfinished(why) from exc
        raise
    return _one_line_problems(replace(report, case=pair.label))


def _one_line_problems(report: Any) -> Any:
    """The report with every message the layer's code wrote folded to one line."""
    from dataclasses import replace

    return replace(report, problems=tuple(_one_line(t, 2000) for t in report.problems))


def _gradient_words(report: Any) -> str:
    return ", ".join(f"d{r.name} {r.status}" for r in report.results)


def _overview(rows: list[list[str]], args: argparse.Namespace) -> None:
    from tabulate import tabulate

    fmt = "github" if args.format == kinds.MARKDOWN else "simple"
    table = tabulate(rows, headers=["op", "forward", "backward", "verdict", "gradients", "note"],
                     tablefmt=fmt, disable_numparse=True)
    print(table, file=_stdout(args) if args.format in (kinds.TEXT, kinds.MARKDOWN) else sys.stderr)


def _unchecked(rows: list[list[str]], args: argparse.Namespace) -> None:
    """The overview's rows that have no report (skipped, raised, not implemented), one line each:
    the report above already holds a row per checked gradient, so a second table of the checked
    pairs would repeat it (issue 24: one table per run)."""
    left = [row for row in rows if row[4] == "-"]
    if not left:
        return
    bullet = "- " if args.format == kinds.MARKDOWN else ""
    width = max(len(row[0]) for row in left)
    lines = [f"{bullet}{row[0]:<{width}}  " + (f"{row[1]} / {row[2]}  " if row[1] != "-" else "")
             + f"{row[3]}: {row[5]}" for row in left]
    print(f"\nnot checked ({len(left)}):\n" + "\n".join(lines), file=_stdout(args))


def _check_flag_names(pairs: Sequence[Any], door: _Doorway, given: Any,
                      networks: Sequence[dict[str, Any]] = ()) -> None:
    """A --shape, --int or --kwarg that names no parameter of any selected forward (or of a
    network's functions) is a typo."""
    params = {n for p in pairs if p.forward and not p.problem
              for n in door.forward_info(p.forward).params}
    params |= {n for net in networks for n in _network_params(net, door)}
    for flag, names in (("--shape", given.shapes), ("--int", given.ints),
                        ("--kwarg", given.kwargs)):
        unknown = [n for n in names if n not in params]
        if unknown and params:
            raise InvalidArgument(f"`{flag} {unknown[0]}` names no parameter of the functions "
                                  f"checked; their parameters are {', '.join(sorted(params))}")


def _one_line(text: object, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def _check_row(pair: Any, door: _Doorway, given: Any, args: argparse.Namespace,
               named: bool, alone: bool = False) -> tuple[Any, list[str]]:
    """One pair: its report (None when skipped or raised) and its row of the overview table.

    Pairs the user named raise instead of being skipped: they asked for exactly those. A pair
    not implemented yet is a row, unless it is the only one the user named (``alone``).
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
    except _Unfinished as exc:
        if alone and exc.__cause__ is not None:
            raise exc.__cause__ from None
        return None, [*row, UNFINISHED, "-", str(exc)]
    except GradcheckError as exc:
        if named:
            raise
        return None, [*row, "ERROR", "-", _one_line(exc)]
    verdict = report.verdict if report.passed else report.verdict.upper()
    return report, [*row, verdict, _gradient_words(report), _one_line("; ".join(report.problems))]


UNFINISHED = "not implemented"  # the overview's verdict for a pair that returns None


def _check_file(args: argparse.Namespace, door: _Doorway, given: Any) -> _Outcome:
    """Every pair of the file (or of --op), and in a whole-file run every network: one report
    each, one overview table of all. What is not implemented yet is a row, not an error."""
    pairs, named = _selected_pairs(args, door)
    networks = [] if named else door.networks()
    taken = {n for net in networks for n in (net["forward"], net["backward"])}
    pairs = [p for p in pairs if p.forward not in taken and p.backward not in taken]
    _check_flag_names(pairs, door, given, networks)
    forward = _forward_check(args, door, dict(_parse_shape(t) for t in args.shape),
                             dict(given.kwargs))
    reports, rows = [], []
    for pair in pairs:
        report, row = _check_row(pair, door, given, args, named, named and len(pairs) == 1)
        reports += [report] if report is not None else []
        rows.append(row)
    for net in networks:
        report, row = _network_row(net, door, given, args)
        reports += [report] if report is not None else []
        rows.append(row)
    errors = sum(row[3] in ("ERROR", UNFINISHED) for row in rows)
    if not named:
        rows += _class_rows(door.info, args.file)
    if not reports:
        if errors:  # the layer's code ran and crashed or returned None: exit 3, not usage
            return _Outcome([], ExitCode.LAYER, forward, rows, f"nothing in {args.file} could "
                            "be checked: every pair that ran crashed or is not implemented "
                            "(see the table)")
        return _Outcome([], ExitCode.USAGE, forward, rows,
                        f"no pair in {args.file} could be checked (see the table)")
    show = rows if not named or len(rows) > 1 else None
    crashed = sum(row[3] == "ERROR" for row in rows)
    return _Outcome(reports, _forward_exit(_exit_code(reports, crashed), forward), forward, show)


def _class_rows(info: Any, target: str) -> list[list[str]]:
    """Classes with forward/backward, and torch or JAX targets, are not checked in a whole-file
    run: say how to, with their constructor's arguments and their forward's input by name."""
    rows = [[name, "-", "-", "skipped", "-", f"a class: add {_class_hint(info, name)} (or "
             f"{target}:{name} with the same flags)"] for name in info.classes]
    return rows + [[name, "-", "-", "skipped", "-", f"a {kind}: check it with {target}:{name} "
                    f"{_framework_hint(info, name)}"] for name, kind in info.frameworks.items()]


def _framework_hint(info: Any, name: str) -> str:
    """``--kwarg`` for a module class's constructor, ``--shape`` for each input."""
    init, forward = info.class_calls.get(name, ((), ())) or ((), ())
    flags = [f"--kwarg {p}=VALUE" for p in getattr(init, "required", ())]
    flags += [f"--shape {p}=D1,D2" for p in getattr(forward, "required", ()) or ("NAME",)]
    return " ".join(flags)


def _class_hint(info: Any, name: str) -> str:
    init, forward = info.class_calls.get(name, ((), ())) or ((), ())
    flags = [f"--layer {name}"]
    flags += [f"--kwarg {p}=VALUE" for p in getattr(init, "required", ())]
    params = list(getattr(forward, "params", ())) or ["x"]
    flags.append(f"--shape {params[0]}=N,D")
    extra = [p for p in getattr(forward, "required", ()) if p != params[0]]
    hint = " ".join(flags)
    if extra:
        hint += (f"; its forward also takes {', '.join(extra)}: give each with --shape/--int "
                 "(labels: --int NAME=0:K --shape NAME=N) or --forward-kwarg NAME=JSON")
    return hint


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

    floats = [n for n in given.shapes if n not in given.ints]
    names = dict(_cli_args.parse_location(t) for t in args.grad)
    door.info.callable_named(args.layer, "--layer")
    kwargs = _cli_args.parse_kwargs(args.kwarg)
    data = _fixed_data(given, floats[1:], args)
    if floats:
        inputs = _ranged(random_inputs({floats[0]: given.shapes[floats[0]]}, args.dtype,
                                       args.seed), args)
    elif given.ints:  # integer input (an embedding's indices): only its parameters are checked
        first = next(iter(given.ints))
        inputs = {first: data.pop(first)}
    else:
        raise InvalidArgument(f"--layer {args.layer} needs the shape of its input: add "
                              "--shape x=N,D (or --int x=LOW:HIGH --shape x=N,D for indices)")
    extra = {**_cli_args.parse_kwargs(args.forward_kwarg, "--forward-kwarg"), **data}
    (name, x), = inputs.items()
    options = {"params": args.params_attr, "grads": args.grads_attr, "names": names,
               "forward_kwargs": extra}
    try:
        return door.workshop.class_layer(args.layer, kwargs, name, options, x), inputs
    except InvalidArgument as exc:
        if "forward_kwargs" not in str(exc):
            raise
        raise InvalidArgument(
            f"--layer {args.layer} needs the shape of its one input (--shape {name}=...); "
            f"the other inputs ({', '.join(n for n in extra)}) go to its forward by name, "
            f"but {_one_line(str(exc)).replace('`forward_kwargs` has', 'it has no')}") from None


def _fixed_data(given: Any, floats: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    """Arguments that are data, not differentiated: ``--int`` arrays (labels), and float
    ``--shape`` arrays other than the input (targets), seeded like a pair's."""
    import numpy as np

    rng = np.random.default_rng([args.seed, 0x696E74])
    out: dict[str, Any] = {}
    for name, (low, high) in given.ints.items():
        if name not in given.shapes:
            raise InvalidArgument(f"--int {name} needs a shape: add --shape {name}=D1,D2")
        out[name] = rng.integers(low, high, size=given.shapes[name])
    for name in floats:
        out[name] = rng.standard_normal(given.shapes[name]).astype(args.dtype)
    return _ranged(out, args)


def _ranged(inputs: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Inputs named by ``--range NAME=LOW:HIGH`` drawn uniformly from it instead (seeded)."""
    import numpy as np

    ranges = _cli_args.parse_ranges(getattr(args, "range", []), args.shape)
    out = dict(inputs)
    for index, (name, (low, high)) in enumerate(sorted(ranges.items())):
        if name in out:
            rng = np.random.default_rng([args.seed, 0x72616E, index])
            value = np.asarray(out[name])
            out[name] = rng.uniform(low, high, size=value.shape).astype(value.dtype)
    return out


def _check_class(args: argparse.Namespace, door: _Doorway, given: Any) -> _Outcome:
    """A class at its initial parameters and at random ones (gamma = 1, beta = 0 hide bugs)."""
    from dataclasses import replace

    from gradcheck.check import check_layer
    from gradcheck.layer import annotate

    layer, inputs = _class_layer(args, door, given)
    if getattr(layer, "kind", "") == "model":  # params + loss(X, y): every --shape is data
        inputs = {}
    runs = [("initial parameters", inputs)]
    params = layer.parameters()
    if params:
        random = _random_parameters(layer, args.dtype, args.seed)
        runs.append((f"random parameters (seed {args.seed})", {**inputs, **random}))
    integer = [n for n, v in inputs.items() if v.dtype.kind in "iub"]
    if not inputs:  # a model object: its parameters are the inputs
        runs = [(case, {**params, **values}) for case, values in runs]
    if integer and not params:
        raise InvalidArgument(f"--layer {args.layer}: its input {integer[0]!r} is integer and "
                              "it has no parameters found: nothing to differentiate")
    reports = []
    for case, values in runs:
        layer.clear_problems()  # each report gets what its own check saw
        if integer:  # indices stay in the layer (its example); the parameters are checked
            values = {k: v for k, v in {**params, **values}.items() if k not in integer}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GradcheckWarning)
            report = check_layer(layer, values, method=args.method, mode=args.mode,
                                 seed=args.seed)
        reports.append(annotate(replace(report, case=case), layer))
    return _Outcome(reports, _exit_code(reports))


def _framework_layer(args: argparse.Namespace, door: _Doorway, given: Any
                     ) -> tuple[Any, dict[str, Any]]:
    """A torch or JAX target (:mod:`gradcheck.frameworks`) and its inputs: every float
    ``--shape`` is an input, ``--int`` arrays are labels, ``--kwarg`` constructs an
    ``nn.Module`` class or gives a setting; a module's parameters are inputs too, in
    ``--dtype``."""
    from gradcheck.properties import random_inputs

    kind = door.info.frameworks[args.layer]
    floats = {n: s for n, s in given.shapes.items() if n not in given.ints}
    data = _fixed_data(given, [], args)
    layer = door.workshop.framework_layer(args.layer, _cli_args.parse_kwargs(args.kwarg), data,
                                          args.seed)
    params = {k: v.astype(args.dtype) for k, v in layer.parameters().items()}
    missing = [n for n in layer.required_inputs()[0] if n not in floats]
    if missing or not (floats or params):
        names = ", ".join(missing) or "x"
        raise InvalidArgument(f"{args.layer} ({kind}) needs the shapes of its inputs: add "
                              f"{' '.join(f'--shape {n}=D1,D2' for n in missing or ['x'])} "
                              f"(an integer input: --int {names.split(',')[0]}=LOW:HIGH too)")
    return layer, {**_ranged(random_inputs(floats, args.dtype, args.seed), args), **params}


def _check_framework(args: argparse.Namespace, door: _Doorway, given: Any) -> _Outcome:
    from dataclasses import replace

    from gradcheck.check import check_layer
    from gradcheck.layer import annotate

    layer, inputs = _framework_layer(args, door, given)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradcheckWarning)
        report = check_layer(layer, inputs, method=args.method, mode=args.mode, seed=args.seed)
    report = annotate(replace(report, case=door.info.frameworks[args.layer]), layer)
    return _Outcome([report], _exit_code([report]))


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


# --- networks (gradcheck.model.from_network): --network, or found in a whole-file run ----------

_ROLES = (("forward", "--network"), ("backward", "--grads"), ("cost", "--cost-fn"),
          ("init", "--parameters"))


def _network_names(args: argparse.Namespace, door: _Doorway) -> dict[str, Any]:
    """``--network`` and the options around it, completed from what the module holds; every
    name must be in the file (exit 2 otherwise, before any of it runs)."""
    found = door.networks()
    if args.network:
        door.info.callable_named(args.network, "--network")
        match = next((n for n in found if n["forward"] == args.network), {})
    elif len(found) == 1:
        match = found[0]
    else:
        which = ", ".join(n["forward"] for n in found) or "none"
        raise InvalidArgument(
            f"--network: name the forward (--network NAME); networks recognised in "
            f"{door.info.file}: {which} (a forward with a parameters argument and a backward "
            "named like it)")
    forward = args.network or match["forward"]
    names = {"forward": forward,
             "backward": args.grads or match.get("backward") or forward.replace("forward",
                                                                                "backward"),
             "cost": args.cost_fn or match.get("cost"), "init": args.parameters or
             match.get("init"), "wrt": args.wrt}
    for role, flag in _ROLES:
        name = names[role]
        if name and not (role == "init" and name in door.info.values):
            door.info.callable_named(name, flag)
    return names


def _network_params(names: dict[str, Any], door: _Doorway) -> set[str]:
    return {p for role, _ in _ROLES if names.get(role) in door.info.functions
            for p in door.info.functions[names[role]].params}


def _network_values(names: dict[str, Any], door: _Doorway, given: Any,
                    args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The data and settings by argument name, or what is missing (a message with the flags)."""
    from gradcheck.model import CACHE_ARGS, PARAMETER_ARGS

    values = {**_cli_args.parse_kwargs(args.kwarg),
              **_fixed_data(given, [n for n in given.shapes if n not in given.ints], args)}
    skip = {*PARAMETER_ARGS, *CACHE_ARGS, names.get("wrt")}
    missing = [p for role in ("forward", "init", "cost", "backward")
               if names.get(role) in door.info.functions
               for p in _fed_by_user(role, door.info.functions[names[role]].required, names)
               if p not in values and p not in skip]
    if not missing:
        return values, ""
    flags = " ".join(f"--kwarg {n}=JSON" if n in ("layer_dims", "layers_dims", "lambd",
                                                  "keep_prob") else f"--shape {n}=D1,D2"
                     for n in dict.fromkeys(missing))
    return values, (f"a network: no value for {', '.join(dict.fromkeys(missing))}: add "
                    f"--network {names['forward']} {flags} (--int NAME=LOW:HIGH for labels)")


def _fed_by_user(role: str, required: Sequence[str], names: dict[str, Any]) -> list[str]:
    """The arguments the user must give: a cost's first takes the forward's output, and so
    does the backward's with a separate cost (``L_model_backward(AL, Y, caches)``)."""
    from gradcheck.model import CACHE_ARGS

    rest = [p for p in required if p not in CACHE_ARGS]
    fed = role == "cost" or (role == "backward" and names.get("cost"))
    return rest[1:] if fed else rest


def _check_network(args: argparse.Namespace, door: _Doorway, given: Any,
                   names: dict[str, Any] | None = None) -> Any:
    """One network's report, checked at its starting parameters (every parameter array)."""
    from dataclasses import replace

    from gradcheck.check import check_layer

    names = names or _network_names(args, door)
    unknown = [n for n in [*given.shapes, *given.ints, *given.kwargs]
               if n not in _network_params(names, door)]
    if unknown and _network_params(names, door):
        raise InvalidArgument(f"`{unknown[0]}` names no argument of {names['forward']} or the "
                              f"functions around it; their arguments are "
                              f"{', '.join(sorted(_network_params(names, door)))}")
    values, missing = _network_values(names, door, given, args)
    if missing:
        raise InvalidArgument(missing)
    layer = door.workshop.network(names, values, args.seed)
    params, note = _off_ties(layer.parameters(), args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradcheckWarning)
        report = check_layer(layer, params, method=args.method, mode=args.mode, seed=args.seed)
    report = replace(report, case=f"{names['forward']} / {names['backward']}",
                     warnings=report.warnings + ((note,) if note else ()))
    return _one_line_problems(report)


def _off_ties(params: dict[str, Any], seed: int) -> tuple[dict[str, Any], str]:
    """The starting parameters, with arrays that are one constant (biases initialised to zeros)
    replaced by small seeded random values: at zero biases, an example whose previous layer is
    all zero puts every ReLU of the next exactly on its kink, and a constant hides bugs (the
    reason classes are also checked at random parameters)."""
    import numpy as np

    rng = np.random.default_rng([seed, 0x6E6574])
    flat = [k for k, v in params.items() if v.size > 1 and np.all(v == v.flat[0])]
    if not flat:
        return params, ""
    moved = {k: (v + rng.normal(0.0, 0.1, size=v.shape)).astype(v.dtype)
             for k, v in params.items() if k in flat}
    values = ", ".join(f"{params[k].flat[0]:g}" for k in flat)
    note = (f"{', '.join(flat)} started constant ({values}): checked at those values plus small "
            f"random ones (seed {seed}), off the ReLU kinks a constant bias puts examples on")
    return {**params, **moved}, note


def _network_row(net: dict[str, Any], door: _Doorway, given: Any,
                 args: argparse.Namespace) -> tuple[Any, list[str]]:
    """A network found in a whole-file run: checked when its data were given, else a row
    saying which flags check it."""
    names = {**net, "wrt": None}
    row = [names["forward"], names["forward"], names["backward"]]
    _, missing = _network_values(names, door, given, args)
    if missing:
        return None, [*row, "skipped", "-", missing]
    try:
        report = _check_network(args, door, given, names)
    except GradcheckError as exc:
        return None, [*row, "ERROR", "-", _one_line(exc)]
    verdict = report.verdict if report.passed else report.verdict.upper()
    return report, [*row, verdict, _gradient_words(report), _one_line("; ".join(report.problems))]


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
    info = door.info
    if info.how and (args.debug or info.definitions_only or info.notebook):
        print(f"gradcheck: {_one_line(info.how, 4000)}", file=sys.stderr)
    _select_target(args, door)
    _cli_args.target_kind(args)  # FILE:NAME may have named a second kind
    given, symbolic = _overrides(args)
    if args.layer and args.layer in info.frameworks:
        return _check_framework(args, door, given)
    if args.layer:
        return _check_class(args, door, given)
    if args.cost:
        return _check_model(args, door)
    if args.network is not None:
        report = _check_network(args, door, given)
        return _Outcome([report], _exit_code([report]))
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
    if outcome.rows is not None and outcome.reports and args.format in (kinds.TEXT,
                                                                         kinds.MARKDOWN):
        _unchecked(outcome.rows, args)
    elif outcome.rows is not None:
        _overview(outcome.rows, args)
    if outcome.summary and outcome.reports:
        print(outcome.summary, file=sys.stderr)
    crashed = [row[0] for row in outcome.rows or () if row[3] == "ERROR"]
    if crashed and outcome.reports and outcome.code == ExitCode.LAYER:
        print(f"gradcheck: exit 3: {len(crashed)} of the {len(outcome.rows or ())} rows raised "
              f"({', '.join(crashed)}; see their ERROR rows), though what ran passed",
              file=sys.stderr)
    if not outcome.reports:
        if outcome.code == ExitCode.LAYER:
            raise LayerError(outcome.summary)
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
    print(f"gradcheck: error: {_one_line(text or exc, 4000)}", file=sys.stderr)
    return code
