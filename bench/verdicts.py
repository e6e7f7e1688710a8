"""Verdict measurements for issues 10 and 11: false alarms, misses, kinks, zeros and sensitivity.

Usage::

    python bench/verdicts.py [--seeds N] [--out reports/verdicts.md] [--max-seconds S]
                             [--no-sensitivity] [--no-catalogs]

1. **Catalogs** (``tests/correct_layers.py``, ``tests/nonsmooth_layers.py`` at seeds 0..N-1,
   ``tests/probe_ops.py``), each case checked with ``check_layer(layer, inputs, dout=...)``
   under the defaults. A case's status is the worst of its gradients' (fail > inconclusive >
   kink > zero > pass; a reported problem counts as fail). Per family: cases, each status,
   *false alarms* (a correct case that does not pass), *misses* (a wrong case that passes) and
   the seconds spent.
2. **Sensitivity** of the reference ``gradcheck.BatchNorm`` at 64x32 and 256x64, modes full and
   directional: the smallest δ in 1e-3 .. 1e-14 for which ``dx`` is flagged (status not passing)
   when the backward returns ``dx * (1 + δ)`` (uniform), that on the largest element of ``dx``
   only (one element), or that on the channel with the smallest gradient of an input with channel
   scales 1e-3 .. 1e3 (smallest channel). δ = 0 is checked first (a flag there is a false alarm
   and voids the row). The search bisects the decades, assuming a larger error is flagged whenever
   a smaller one is. A row whose time, predicted from the previous size (full mode grows as
   size², directional as size), exceeds ``--max-seconds`` is skipped and reported with its
   estimate.

Progress goes to stderr; the tables (tabulate) to stdout and, with ``--out``, to a Markdown file.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from correct_layers import Case, correct_cases  # noqa: E402
from nonsmooth_layers import nonsmooth_bugs, nonsmooth_cases  # noqa: E402
from probe_ops import probe_cases  # noqa: E402

from gradcheck import BatchNorm, check_layer  # noqa: E402

ORDER = ("fail", "inconclusive", "kink", "zero", "pass")
DELTAS = tuple(10.0 ** -k for k in range(3, 15))
SIZES = ((64, 32), (256, 64))
MODES = ("full", "directional")
SHAPES = ("uniform scale", "one element", "smallest channel")


# --- catalogs --------------------------------------------------------------------------------


def case_status(report: Any) -> str:
    """The worst status of a report's gradients; a problem (or shape/nonfinite) is a fail."""
    if report.problems:
        return "fail"
    seen = {r.status if r.status in ORDER else "fail" for r in report.results}
    return next(s for s in ORDER if s in seen) if seen else "pass"


@dataclass
class FamilyRow:
    catalog: str
    family: str
    cases: int = 0
    pass_: int = 0
    zero: int = 0
    kink: int = 0
    fail: int = 0
    inconclusive: int = 0
    false_alarms: int = 0
    misses: int = 0
    seconds: float = 0.0

    def add(self, case: Case, status: str, seconds: float) -> None:
        self.cases += 1
        attr = "pass_" if status == "pass" else status
        setattr(self, attr, getattr(self, attr) + 1)
        passed = status in ("pass", "zero", "kink")
        self.false_alarms += (not case.bug) and not passed
        self.misses += case.bug and passed
        self.seconds += seconds


def run_catalog(name: str, cases: Sequence[Case],
                examples: dict[str, list[str]]) -> list[FamilyRow]:
    rows: dict[str, FamilyRow] = {}
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = check_layer(case.layer, case.inputs, dout=case.dout, **case.options)
        status = case_status(report)
        row = rows.setdefault(case.family, FamilyRow(name, case.family))
        row.add(case, status, time.perf_counter() - t0)
        wrong = (status not in ("pass", "zero", "kink")) != case.bug
        if wrong and len(examples[f"{name}/{case.family}"]) < 3:
            examples[f"{name}/{case.family}"].append(f"{case.id} ({status})")
        if (i + 1) % 500 == 0:
            print(f"  {name}: {i + 1}/{len(cases)}", file=sys.stderr)
    return list(rows.values())


def catalog_table(rows: Sequence[FamilyRow]) -> str:
    head = ["catalog", "family", "cases", "pass", "zero", "kink", "fail", "inconclusive",
            "false alarms", "misses", "seconds"]
    body = [[r.catalog, r.family, r.cases, r.pass_, r.zero, r.kink, r.fail, r.inconclusive,
             r.false_alarms, r.misses, f"{r.seconds:.1f}"] for r in rows]
    total = FamilyRow("all", "")
    for r in rows:
        for attr in ("cases", "pass_", "zero", "kink", "fail", "inconclusive", "false_alarms",
                     "misses", "seconds"):
            setattr(total, attr, getattr(total, attr) + getattr(r, attr))
    body.append(["all", "", total.cases, total.pass_, total.zero, total.kink, total.fail,
                 total.inconclusive, total.false_alarms, total.misses, f"{total.seconds:.1f}"])
    return tabulate(body, head, tablefmt="github")


# --- sensitivity ------------------------------------------------------------------------------


class Perturbed:
    """The reference BatchNorm whose backward returns a wrong ``dx``."""

    def __init__(self, d: int, delta: float, shape: str) -> None:
        self.base, self.delta, self.shape = BatchNorm(d), delta, shape
        self.name = f"BatchNorm*(1+{delta:g}) {shape}"

    def parameters(self) -> dict[str, np.ndarray]:
        return self.base.parameters()

    def forward(self, inputs: Any) -> tuple[Any, Any]:
        return self.base.forward(inputs)

    def backward(self, dout: Any, cache: Any) -> dict[str, Any]:
        grads = dict(self.base.backward(dout, cache))
        dx = np.array(grads["x"], dtype=np.float64, copy=True)
        if self.shape == "uniform scale":
            dx *= 1 + self.delta
        elif self.shape == "one element":
            dx.flat[int(np.argmax(np.abs(dx)))] *= 1 + self.delta
        else:
            c = int(np.argmin(np.max(np.abs(dx), axis=0)))
            dx[:, c] *= 1 + self.delta
        grads["x"] = dx
        return grads


def _x(n: int, d: int, shape: str) -> np.ndarray:
    rng = np.random.default_rng([n, d, 10])
    if shape == "smallest channel":
        scales = np.logspace(-3.0, 3.0, d)
        return scales * (2.0 + rng.standard_normal((n, d)))
    return 12.0 + 5.0 * rng.standard_normal((n, d))


def _flagged(n: int, d: int, shape: str, mode: str, delta: float) -> tuple[bool, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = check_layer(Perturbed(d, delta, shape), {"x": _x(n, d, shape)}, mode=mode,
                             wrt="x")
    (result,) = report.results
    return not result.passed, result.status


def _smallest_flagged(flag: Callable[[float], bool]) -> tuple[float | None, int]:
    """Bisect DELTAS (descending) for the smallest flagged δ; None when 1e-3 is not flagged."""
    lo, hi, checks = 0, len(DELTAS) - 1, 1
    if not flag(DELTAS[0]):
        return None, checks
    while lo < hi:  # invariant: DELTAS[lo] flagged
        mid = (lo + hi + 1) // 2
        checks += 1
        if flag(DELTAS[mid]):
            lo = mid
        else:
            hi = mid - 1
    return DELTAS[lo], checks


def _flag_at(n: int, d: int, shape: str, mode: str) -> Callable[[float], bool]:
    return lambda delta: _flagged(n, d, shape, mode, delta)[0]


CHECKS = 2 + math.ceil(math.log2(len(DELTAS)))  # δ = 0, δ = 1e-3, then the bisection


def _predicted(last: dict[tuple[str, str], tuple[int, float]], mode: str, shape: str,
               size: int) -> float:
    """Seconds for one row, from the last measured size: full mode grows as size**2 (every
    element, each evaluation O(size)), directional as size."""
    if (mode, shape) not in last:
        return 0.0
    seen, cost = last[mode, shape]
    return cost * (size / seen) ** (2 if mode == "full" else 1) * CHECKS


def sensitivity(max_seconds: float) -> list[list[Any]]:
    rows: list[list[Any]] = []
    last: dict[tuple[str, str], tuple[int, float]] = {}
    for n, d in SIZES:
        for mode in MODES:
            for shape in SHAPES:
                predicted = _predicted(last, mode, shape, n * d)
                if predicted > max_seconds:
                    rows.append([f"{n}x{d}", mode, shape, "-",
                                 f"skipped (est. {predicted:.0f} s)", "-", "-"])
                    print(f"  {n}x{d} {mode} {shape}: skipped, est. {predicted:.0f} s",
                          file=sys.stderr)
                    continue
                t0 = time.perf_counter()
                _, zero_status = _flagged(n, d, shape, mode, 0.0)
                last[mode, shape] = (n * d, time.perf_counter() - t0)
                smallest, checks = _smallest_flagged(_flag_at(n, d, shape, mode))
                seconds = time.perf_counter() - t0
                rows.append([f"{n}x{d}", mode, shape, zero_status,
                             "none" if smallest is None else f"{smallest:.0e}", checks + 1,
                             f"{seconds:.1f}"])
                print(f"  {n}x{d} {mode} {shape}: {rows[-1][4]} ({seconds:.1f} s)",
                      file=sys.stderr)
    return rows


def sensitivity_table(rows: Sequence[Sequence[Any]]) -> str:
    head = ["size", "mode", "error shape", "status at δ=0", "smallest δ flagged", "checks",
            "seconds"]
    return tabulate(rows, head, tablefmt="github")


# --- main -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/verdicts.py", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=1000, help="non-smooth seeds (default 1000)")
    p.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="skip a sensitivity row estimated above this (default 600)")
    p.add_argument("--no-sensitivity", action="store_true", help="catalogs only")
    p.add_argument("--no-catalogs", action="store_true", help="sensitivity only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.seeds < 1:
        _parser().error(f"--seeds must be at least 1, got {args.seeds}")
    parts = [f"# Verdicts (bench/verdicts.py --seeds {args.seeds})", ""]
    t0 = time.perf_counter()
    if not args.no_catalogs:
        examples: dict[str, list[str]] = defaultdict(list)
        catalogs = [
            ("correct", correct_cases()),
            (f"nonsmooth x{args.seeds}",
             [c for s in range(args.seeds) for c in nonsmooth_cases(s)]),
            ("nonsmooth bugs", nonsmooth_bugs()),
            ("probe", probe_cases()),
        ]
        rows = []
        for name, cases in catalogs:
            print(f"{name}: {len(cases)} cases", file=sys.stderr)
            rows += run_catalog(name, cases, examples)
        parts += ["## Catalogs", "", catalog_table(rows), ""]
        parts += ["False alarms and misses (first 3 per family):", ""]
        parts += [f"- {k}: {', '.join(v)}" for k, v in sorted(examples.items())] or ["- none"]
        kinds = Counter(c.bug for _, cases in catalogs for c in cases)
        parts += ["", f"{kinds[False]} correct cases, {kinds[True]} wrong cases.", ""]
    if not args.no_sensitivity:
        print("sensitivity", file=sys.stderr)
        parts += ["## Sensitivity (reference BatchNorm, dx only, method auto)", "",
                  sensitivity_table(sensitivity(args.max_seconds)), ""]
    parts.append(f"Total {time.perf_counter() - t0:.0f} s.")
    text = "\n".join(parts)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
