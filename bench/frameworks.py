"""gradcheck on public torch and JAX gradient rules, side by side with the frameworks' own checkers.

The rules (bench/framework_rules.py, copied at fixed commits) are checked as written, and with
bugs planted in the gradient of their first input: an error of ``delta * max|grad|`` (delta from
1e-2 down to 1e-8) in one element, in one channel (index 1 of axis 1), or as noise on every
element (``delta * max|grad| * N(0, 1)``). The bug is planted by an identity rule in front of the
input whose backward adds the error, so the rule's own backward runs unchanged. Each case runs
in float64 and in float32 through:

- gradcheck: ``check_layer(torch_layer(rule))`` / ``jax_layer``, defaults (verdict pass, fail or
  inconclusive);
- ``torch.autograd.gradcheck`` with its defaults (eps 1e-6, atol 1e-5, rtol 1e-3), slow and
  ``fast_mode=True``;
- ``jax.test_util.check_grads(order=1, modes=["rev"])`` with its defaults.

A false alarm is a correct rule failed; a miss is a planted bug (or a deliberately-not-the-
gradient rule) passed; gradcheck's inconclusive is counted apart (neither). Writes
``--out DIR/frameworks.md``.

    python bench/frameworks.py --out reports
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))

DELTAS = (1e-2, 1e-4, 1e-6, 1e-8)
PATTERNS = ("element", "channel", "noise")
DTYPES = ("float64", "float32")


def _inputs(rule: Any, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: (rule.scale * rng.normal(size=s)).astype(dtype) for n, s in rule.shapes.items()}


def _error(shape: tuple[int, ...], pattern: str) -> np.ndarray:
    """The planted error's shape, before scaling by delta * max|grad|."""
    err = np.zeros(shape)
    rng = np.random.default_rng(1)
    if pattern == "element":
        err.flat[int(rng.integers(err.size))] = 1.0
    elif pattern == "channel":
        err[:, 1] = 1.0
    else:
        err = rng.normal(size=shape)
    return err


def _torch_plant(call: Any, names: list[str], pattern: str, delta: float, shape: Any) -> Any:
    import torch

    class Plant(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            err = torch.as_tensor(_error(tuple(g.shape), pattern), dtype=g.dtype)
            return g + delta * g.abs().max() * err

    first = names[0]

    def planted(**kw: Any) -> Any:
        return call(**{**kw, first: Plant.apply(kw[first])})

    return _named(planted, names)


def _jax_plant(call: Any, names: list[str], pattern: str, delta: float) -> Any:
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def plant(x):
        return x

    def bwd(_: Any, g: Any) -> Any:
        err = jnp.asarray(_error(tuple(g.shape), pattern), dtype=g.dtype)
        return (g + delta * jnp.max(jnp.abs(g)) * err,)

    plant.defvjp(lambda x: (x, None), bwd)
    first = names[0]

    def planted(**kw: Any) -> Any:
        return call(**{**kw, first: plant(kw[first])})

    return _named(planted, names)


def _named(fn: Any, names: list[str]) -> Any:
    """``fn(**kw)`` as a function with positional parameters ``names`` (the adapters and the
    baselines both call by position)."""
    args = ", ".join(names)
    scope: dict[str, Any] = {"fn": fn}
    exec(f"def rule({args}):\n    return fn({', '.join(f'{n}={n}' for n in names)})", scope)
    return scope["rule"]


# --- the checkers -----------------------------------------------------------------------------


def run_gradcheck(rule: Any, call: Any, inputs: dict[str, np.ndarray]) -> str:
    import gradcheck
    from gradcheck.frameworks import jax_layer, torch_layer

    layer = (torch_layer if rule.framework == "torch" else jax_layer)(call, name=rule.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gradcheck.check_layer(layer, inputs).verdict


def run_torch(call: Any, inputs: dict[str, np.ndarray], fast: bool) -> str:
    import torch

    tensors = tuple(torch.tensor(v, requires_grad=True) for v in inputs.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ok = torch.autograd.gradcheck(call, tensors, fast_mode=fast, raise_exception=False)
        except Exception:  # a crash is not a pass
            return "fail"
    return "pass" if ok else "fail"


def run_jax(call: Any, inputs: dict[str, np.ndarray]) -> str:
    import jax.numpy as jnp
    from jax.test_util import check_grads

    arrays = tuple(jnp.asarray(v) for v in inputs.values())
    try:
        check_grads(call, arrays, order=1, modes=["rev"])
    except AssertionError:
        return "fail"
    return "pass"


def checkers(framework: str) -> list[tuple[str, Any]]:
    ours = [("gradcheck", lambda r, c, i: run_gradcheck(r, c, i))]
    if framework == "torch":
        return [*ours, ("torch gradcheck", lambda r, c, i: run_torch(c, i, False)),
                ("torch gradcheck fast", lambda r, c, i: run_torch(c, i, True))]
    return [*ours, ("jax check_grads", lambda r, c, i: run_jax(c, i))]


# --- the cases --------------------------------------------------------------------------------


def cases(rule: Any) -> list[tuple[str, str, float, Any]]:
    """(kind, pattern, delta, call): the rule as written, then its planted bugs."""
    names = list(rule.shapes)
    found = [("deliberate" if rule.deliberate else "correct", "-", 0.0, _named(rule.call, names))]
    if rule.deliberate:
        return found
    for pattern in PATTERNS:
        for delta in DELTAS:
            call = (_torch_plant(rule.call, names, pattern, delta, None)
                    if rule.framework == "torch" else
                    _jax_plant(rule.call, names, pattern, delta))
            found.append(("bug", pattern, delta, call))
    return found


def measure(rules: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for rule in rules:
        for dtype in DTYPES:
            inputs = _inputs(rule, dtype)
            for kind, pattern, delta, call in cases(rule):
                for tool, run in checkers(rule.framework):
                    start = time.perf_counter()
                    verdict = run(rule, call, inputs)
                    rows.append({"rule": rule.name, "framework": rule.framework, "dtype": dtype,
                                 "kind": kind, "pattern": pattern, "delta": delta, "tool": tool,
                                 "verdict": verdict,
                                 "seconds": time.perf_counter() - start})
            print(f"{rule.name} {dtype}: done", file=sys.stderr, flush=True)
    return rows


# --- the tables -------------------------------------------------------------------------------


def _count(rows: list[dict[str, Any]], verdict: str) -> int:
    return sum(r["verdict"] == verdict for r in rows)


def summary(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["framework"], r["tool"], r["dtype"])].append(r)
    table = []
    for (framework, tool, dtype), rs in sorted(groups.items(), key=lambda kv: (
            kv[0][0] != "torch", kv[0][1] != "gradcheck", kv[0][1], kv[0][2] != "float64")):
        correct = [r for r in rs if r["kind"] == "correct"]
        deliberate = [r for r in rs if r["kind"] == "deliberate"]
        bugs = [r for r in rs if r["kind"] == "bug"]
        cells = [framework, tool, dtype,
                 f"{_count(correct, 'fail')} / {len(correct)}",
                 f"{_count(correct, 'inconclusive')}",
                 f"{_count(deliberate, 'pass')} / {len(deliberate)}"]
        for delta in DELTAS:
            at = [r for r in bugs if r["delta"] == delta]
            unsure = _count(at, "inconclusive")
            cells.append(f"{_count(at, 'pass')} / {len(at)}" + (f" ({unsure} inc.)" if unsure
                                                                 else ""))
        cells.append(f"{sum(r['seconds'] for r in rs):.1f}")
        table.append(cells)
    headers = ["framework", "checker", "dtype", "false alarms", "inconclusive (correct)",
               "deliberate passed"] + [f"missed at {d:g}" for d in DELTAS] + ["time (s)"]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def by_pattern(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["kind"] == "bug":
            groups[(r["tool"], r["dtype"], r["pattern"], f"{r['delta']:g}")].append(r)
    table = [[tool, dtype, pattern, delta, f"{_count(rs, 'pass')} / {len(rs)}",
              str(_count(rs, "inconclusive"))]
             for (tool, dtype, pattern, delta), rs in sorted(groups.items())]
    return tabulate(table, headers=["checker", "dtype", "bug", "delta", "missed", "inconclusive"],
                    tablefmt="github", disable_numparse=True)


def per_rule(rows: list[dict[str, Any]]) -> str:
    table = []
    for r in rows:
        if r["kind"] in ("correct", "deliberate"):
            table.append([r["rule"], r["kind"], r["dtype"], r["tool"], r["verdict"],
                          f"{r['seconds']:.2f}"])
    return tabulate(table, headers=["rule", "as written", "dtype", "checker", "verdict",
                                    "time (s)"], tablefmt="github", disable_numparse=True)


def report(rows: list[dict[str, Any]], rules: list[Any], load: float, total: float) -> str:
    sources = "\n".join(f"- {r.name}: {r.source}" + (f" ({r.deliberate})" if r.deliberate else "")
                        for r in rules)
    import jax
    import torch

    return f"""# Hand-written torch and JAX gradients: gradcheck and the frameworks' checkers

`python bench/frameworks.py --out reports` (part of `make bench`): torch {torch.__version__},
jax {jax.__version__}, load average {load:.2f} at the start, {total:.0f} s in all.

Each rule as written, and with a bug planted in the gradient of its first input: an error of
delta * max|grad| in one element, in one channel, or as noise on every element (3 patterns per
delta). A false alarm fails a correct rule; a miss passes a planted bug or a rule that is
deliberately not the gradient (straight-through, gradient reversal, gradient clipping).
gradcheck's `inconclusive` (neither pass nor fail: it could not certify) is counted apart, in
parentheses; the other checkers only say pass or fail.

{summary(rows)}

Reading the table:

- `inc.`: gradcheck saw the error but could not rule it out as rounding, so it did not fail the
  rule. torch and JAX have no dtype wider than float64 (no long double), and gradcheck confirms
  a small error by re-measuring it in extended precision, which it can do on a NumPy layer but
  not here. On float32 rules this also covers errors of up to a few 1e-4.
- float32's unit roundoff is 6e-8, and each element of a float32 gradient carries rounding
  errors of a few to a few tens of that, relative to the terms it sums. A planted error of 1e-8
  of max|grad| is below that and one of 1e-6 within reach of it, so a pass there is the dtype's
  limit, not a blind spot. torch's gradcheck misses nothing in float32 only because it fails
  every rule, correct ones included.
- `deliberate passed`: rules that are on purpose not the gradient. Every checker fails them,
  but only gradcheck's diagnosis describes the error's shape: `e ≈ 1 × dout` for an identity
  backward, `analytic = -numeric: the sign is flipped` for gradient reversal (see README).

## By bug pattern

{by_pattern(rows)}

## Each rule as written

{per_rule(rows)}

## Sources (copied into bench/framework_rules.py at these commits)

{sources}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="also write DIR/frameworks.md")
    parser.add_argument("--only", help="rules whose name contains this text")
    args = parser.parse_args(argv)
    try:
        from framework_rules import RULES

        import gradcheck.frameworks.jax  # noqa: F401 - jax_enable_x64 for the JAX rules
    except ImportError as exc:
        print(f"bench/frameworks.py: skipped, {exc} (pip install 'gradcheck[torch,jax]')",
              file=sys.stderr)
        return 0
    rules = [r for r in RULES if not args.only or args.only in r.name]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    start = time.perf_counter()
    rows = measure(rules)
    text = report(rows, rules, load, time.perf_counter() - start)
    print(text)
    if args.out:
        Path(args.out, "frameworks.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
