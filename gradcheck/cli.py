"""The ``gradcheck`` command: ``run`` verifies the reference suite, ``check`` verifies your layer.

Exit codes: 0 every gradient passes, 1 a gradient fails, 2 a usage or input error (the message goes
to stderr; ``--debug`` adds the traceback).

Examples::

    gradcheck check my_layers.py --op batchnorm --shape x=4,5 --shape gamma=5 --shape beta=5 \\
        --kwarg bn_param='{"mode": "train"}'
    gradcheck check my_layers.py --layer MyBatchNorm --kwarg num_features=5 --shape x=8,5
    gradcheck run --out reports
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from gradcheck._version import __version__
from gradcheck.errors import GradcheckError, InvalidArgument

# Exit codes, one meaning each (documented in README): 0 every gradient passes, 1 a gradient
# fails, 2 usage or input error, 3 the layer crashed or misbehaved (raised, exited, returned
# something unusable), 4 inconclusive (nothing failed, but a gradient could not be certified),
# 130 interrupted (Ctrl-C).
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_LAYER, EXIT_INCONCLUSIVE = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
FORMATS = ("text", "markdown", "html", "json")  # the writers of gradcheck.report


class _UsageError(Exception):
    """Raised by the parser instead of exiting, so ``main`` returns 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would call sys.exit(2)
        raise _UsageError(f"{self.prog}: {message}")


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="text", help="what to print")
    p.add_argument("--out", metavar="DIR", help="also write summary.{txt,md,html} and results.json")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")


def _parser() -> _Parser:
    parser = _Parser(prog="gradcheck", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"gradcheck {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="verify the reference BatchNorm every way we know")
    run.add_argument("--quick", action="store_true", help="a smaller suite, for smoke tests")
    _add_output_options(run)
    check = sub.add_parser("check", help="verify the gradients of a layer in FILE.py")
    check.add_argument("file", metavar="FILE.py")
    which = check.add_mutually_exclusive_group(required=True)
    which.add_argument("--op", help="pair NAME_forward with NAME_backward")
    which.add_argument("--forward", help="the forward function's name (with --backward)")
    which.add_argument("--layer", metavar="CLASS", help="a class with forward(x)/backward(dout)")
    check.add_argument("--backward", help="the backward function's name (with --forward)")
    check.add_argument("--shape", action="append", default=[], metavar="NAME=D1,D2,...",
                       help="an input array and its shape (repeat); symbolic names such as N,D "
                            "draw shapes with hypothesis (see --examples)")
    check.add_argument("--kwarg", action="append", default=[], metavar="NAME=JSON",
                       help="a non-array argument (functions) or constructor argument (--layer)")
    check.add_argument("--params-attr", default="params", help="--layer: the parameters dict")
    check.add_argument("--grads-attr", default="grads", help="--layer: the gradients dict")
    check.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    check.add_argument("--method", choices=("auto", "complex", "central", "richardson"),
                       default="auto")
    check.add_argument("--mode", choices=("auto", "full", "sampled", "directional"),
                       default="auto", help="full: every element; sampled: a sample plus random "
                       "directions (auto above 2048 elements); directional: directions only")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--examples", type=int, default=100,
                       help="hypothesis examples when --shape uses symbolic dimensions")
    _add_forward_options(check)
    _add_output_options(check)
    return parser


# --- forward check (gradcheck.forward_check): --against, --convention ---------------------------


def _add_forward_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--against", choices=("batchnorm", "layernorm", "groupnorm"),
                   help="also compare the forward's outputs (and running statistics) with this "
                        "reference; a deviation makes the exit code 1")
    p.add_argument("--convention", choices=("torch", "keras", "cs231n"),
                   help="--against batchnorm: the running-statistics convention (default: "
                        "detected from what the forward does)")


def _forward_check(args: argparse.Namespace, module: ModuleType,
                   specs: dict[str, tuple[str, ...]], kwargs: dict[str, Any]) -> Any:
    """The :class:`~gradcheck.forward_check.ForwardReport` asked for by ``--against``, or None."""
    if not args.against:
        return None
    from gradcheck.forward_check import check_forward

    if not (args.op or args.forward):
        raise InvalidArgument("`--against` needs `--op` or `--forward` (a course-style forward)")
    forward = _lookup(module, f"{args.op}_forward" if args.op else args.forward, "forward")
    sized = {n: tuple(int(d) for d in dims) for n, dims in specs.items()
             if all(d.isdigit() for d in dims)}
    return check_forward(forward, against=args.against, shape=sized.get("x"),
                         param_shape=sized.get("gamma"), convention=args.convention,
                         groups=kwargs.get("G"), seed=args.seed)


def _with_forward(text: str, forward: Any, fmt: str) -> str:
    """The gradient report with the forward check's findings: inside JSON, after text."""
    from gradcheck.forward_check import render_forward_report

    if fmt == "json":
        return json.dumps({**json.loads(text), "forward_check": forward.to_dict()}, indent=2,
                          allow_nan=False)
    if fmt == "text":
        return f"{text}\n\n{render_forward_report(forward)}"
    print(render_forward_report(forward), file=sys.stderr)  # markdown/html: a separate stream
    return text


def _forward_exit(code: int, forward: Any) -> int:
    """A deviating forward fails the run (the user asked for the comparison) unless it failed."""
    return EXIT_FAIL if code == EXIT_PASS and forward is not None and not forward.passed else code


def _parse_shape(text: str) -> tuple[str, tuple[str, ...]]:
    name, sep, dims = text.partition("=")
    parts = tuple(d.strip() for d in dims.split(",") if d.strip())
    if not sep or not name.strip() or not parts:
        raise InvalidArgument(f"`--shape` must look like NAME=D1,D2 (e.g. x=4,5), got {text!r}")
    return name.strip(), parts


def _parse_kwarg(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise InvalidArgument(f"`--kwarg` must look like NAME=JSON, got {text!r}")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value  # a bare word is a string


def _load_module(path: str) -> ModuleType:
    file = Path(path)
    if not file.is_file():
        raise InvalidArgument(f"FILE.py must be an existing file, got {path!r}")
    spec = importlib.util.spec_from_file_location(f"_gradcheck_user_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise InvalidArgument(f"FILE.py must be a Python file, got {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.resolve().parent))  # so the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InvalidArgument(f"importing {path} raised {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.pop(0)
    return module


def _lookup(module: ModuleType, name: str, what: str) -> Callable[..., Any]:
    found = getattr(module, name, None)
    if not callable(found):
        names = sorted(n for n in vars(module) if callable(getattr(module, n)) and not
                       n.startswith("_"))
        raise InvalidArgument(
            f"{what} {name!r} is not a callable in {module.__file__}; found {', '.join(names)}"
        )
    return found


def _build_layer(args: argparse.Namespace, module: ModuleType, kwargs: dict[str, Any]) -> Any:
    from gradcheck.layer import from_class, from_functions

    if args.layer:
        cls = _lookup(module, args.layer, "--layer")
        try:
            obj = cls(**kwargs)
        except Exception as exc:
            raise InvalidArgument(f"{args.layer}(**{kwargs}) raised {type(exc).__name__}: {exc}") \
                from exc
        return from_class(obj, params=args.params_attr, grads=args.grads_attr)
    if args.op:
        fwd, bwd = f"{args.op}_forward", f"{args.op}_backward"
    else:
        if not args.backward:
            raise InvalidArgument("`--forward` needs `--backward` too")
        fwd, bwd = args.forward, args.backward
    return from_functions(_lookup(module, fwd, "forward"), _lookup(module, bwd, "backward"),
                          config=kwargs, name=args.op)


def _emit(reports: Sequence[Any], args: argparse.Namespace, forward: Any = None) -> None:
    from gradcheck import report as rep

    text = rep.render(reports, args.format)
    print(text if forward is None else _with_forward(text, forward, args.format))
    if args.out:
        for path in rep.write_reports(reports, args.out):
            print(f"wrote {path}", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    from gradcheck.check import check_layer
    from gradcheck.properties import random_inputs

    module = _load_module(args.file)
    kwargs = dict(_parse_kwarg(k) for k in args.kwarg)
    layer = _build_layer(args, module, kwargs)
    specs = dict(_parse_shape(s) for s in args.shape)
    if not specs:
        raise InvalidArgument("give at least one input with `--shape NAME=D1,D2`")
    forward = _forward_check(args, module, specs, kwargs)
    if any(not d.isdigit() for dims in specs.values() for d in dims):
        from gradcheck.properties import check_layer_property

        result = check_layer_property(layer, specs, dtype=args.dtype, method=args.method,
                                      seed=args.seed, examples=args.examples)
        _emit(result.reports, args, forward)
        print(result.summary, file=sys.stderr)
        return _forward_exit(EXIT_PASS if result.passed else EXIT_FAIL, forward)
    shapes = {n: tuple(int(d) for d in dims) for n, dims in specs.items()}
    with warnings.catch_warnings():  # the report carries them
        warnings.simplefilter("ignore", UserWarning)
        report = check_layer(layer, random_inputs(shapes, args.dtype, args.seed),
                             method=args.method, mode=args.mode, seed=args.seed)
    _emit([report], args, forward)
    return _forward_exit(EXIT_PASS if report.passed else EXIT_FAIL, forward)


def _run(args: argparse.Namespace) -> int:
    from gradcheck.suite import run_reference_suite

    reports = run_reference_suite(quick=args.quick, progress=sys.stderr)
    _emit(reports, args)
    passed = all(r.passed for r in reports)
    failed = sum(not r.passed for r in reports)
    print(f"gradcheck run: {'PASS' if passed else 'FAIL'}: {len(reports) - failed} of "
          f"{len(reports)} checks passed", file=sys.stderr)
    return EXIT_PASS if passed else EXIT_FAIL


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of calling ``sys.exit``."""
    args = None
    try:
        args = _parser().parse_args(argv)
        return _run(args) if args.command == "run" else _check(args)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    except GradcheckError as exc:
        if args is not None and getattr(args, "debug", False):
            traceback.print_exc()
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
