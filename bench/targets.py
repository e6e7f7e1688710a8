"""Issues 16 and 25's speed targets, each a ratio measured in one run, met or not, with the load.

Usage::

    python bench/targets.py --out reports [--quick] [--only T1,T5] [--default-blas]
                                          [--default-malloc]

Prints the table "Targets (issues 16 and 25)" to stdout (progress to stderr) and writes
``DIR/targets.md`` and ``DIR/targets.json``, and (T7, T8) the scale table ``DIR/scale.md`` and
``DIR/scale.json``. One function per target; each returns
``{id, target, ratio, limit, met, numerator, denominator, details}`` where ``ratio =
numerator / denominator`` and ``met = ratio <= limit`` (``met`` is ``None`` when the target was
not measured, with the reason in ``details["why"]``). ``details["why"]`` also breaks the ratio
down in numbers (evaluations, seconds per evaluation, forward share).

T1 :func:`target_directional`
    ``check_layer(method="complex", mode="directional")`` at 256x64 against
    ``torch.autograd.gradcheck(fast_mode=True)`` over the same NumPy forward and backward
    (:func:`bench.baselines.torch_function`), timed interleaved; met when no slower *and* the
    sensitivity lead holds: the smallest ``δ`` flagged in ``dx * (1 + δ)`` is at least
    :data:`SENSITIVITY_LEAD` times smaller than torch's.
T2 :func:`target_auto`
    ``method="auto"`` against ``method="complex"`` in modes full, sampled and directional at 64x32
    and 256x64; the worst ratio.
T3 :func:`target_default_big`
    the default check (``method="auto"``, ``mode="auto"``) of the course-style spatial BatchNorm
    (:mod:`bench.course_layers`) at (32, 32, 32, 32) against ONE complex128 forward of it.
T4 :func:`target_full_forwards`
    ``check_layer(mode="full", method="complex", wrt="x")`` at 64x32 (one evaluation per element)
    against exactly ``nfev`` complex forwards of the layer.
T5 :func:`target_cli`
    ``python -m gradcheck check layers.py --op batchnorm --shape x=4,5 ...`` on a copy of
    :mod:`bench.course_layers`: median wall time of 5 runs, interpreter start included, against
    0.4 s.
T6 :func:`target_concurrent`
    time per check (the default check of BatchNorm at 64x32) in two processes checking at the
    same time against one process alone; two warm workers alternate lone and paired phases
    (alone, pair, pair, alone, ...), because this machine's speed drifts by about 1.5x within
    seconds. The CPU time per check too, which tells waiting for a CPU (a loaded machine) from
    slower work, and a pure-Python loop paired the same way in the same rounds: its ratios are
    the machine's own (other work on the CPUs), the check's ratio over the loop's is ours.
T7 :func:`target_scale_time`
    the default check of the course-style (N, D) BatchNorm (:mod:`bench.course_layers`,
    float64) at every size of the scale table from 256k elements up, against one complex128
    forward of it measured in the same fresh process (:mod:`bench.scale`): ≤ 30, and ≤ 10 at
    8M (8192x1024); one record per size, with the forward and backward calls and the seconds
    inside them, so the engine's own share shows.
T8 :func:`target_scale_memory`
    the peak memory (``VmHWM``) of a fresh process checking the layer against a fresh
    process running its forward and backward once, same imports and inputs, at 1M and 8M
    elements, float64 and float32: ≤ 2.
T9 :func:`target_cli_failing`
    T5's command on a copy of the course file whose ``dx`` drops the ``mean(dout)`` term (exit
    1, diagnosis printed): median wall time against 0.4 s, interleaved with the passing file.

BLAS threads. On this 2-CPU machine shared with other work, OpenBLAS' threaded ``np.dot`` of
16,384 complex numbers (what ``check_layer``'s objective computed once per evaluation at 256x64
until it moved to ``einsum``) took about 47 ms instead of 0.02 ms at a load average of 8: its
threads wait for a CPU the other processes hold. Run as a
script, this module therefore limits BLAS to one thread (``OPENBLAS_NUM_THREADS=1`` and friends,
unless the caller set any of them; ``--default-blas`` measures without) and, like
``bench/run.py``, pins glibc's malloc thresholds (``bench/allocator.py``). The run records both,
and :func:`blas_probe` measures that ``np.dot`` in two fresh processes, default threads and one.
T5 runs the CLI with the caller's environment (a user's run), T6's workers with the run's.

Timing: the two sides of a ratio run interleaved (A B, then B A, ...) so that a change in the
machine's load hits both; medians. The load average (1, 5, 15 min) is recorded before and after
every target: on a shared machine a load above the number of CPUs inflates every time, and T6
most.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import math
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
USER_ENV = dict(os.environ)  # the caller's environment: T5 runs the CLI in it
# Run as a script: one BLAS thread unless told otherwise (see "BLAS threads" above). This has to
# happen before NumPy is imported; `setdefault` keeps what the caller set.
_BLAS_PINNED = (__name__ == "__main__" and not {"--default-blas", "--worker"} & set(sys.argv)
                and not any(k in os.environ for k in BLAS_ENV))
if _BLAS_PINNED:
    for _key in BLAS_ENV:
        os.environ[_key] = "1"

import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import allocator, baselines, checkers, course_layers, render, scale  # noqa: E402
from gradcheck import BatchNorm, __version__  # noqa: E402
from gradcheck.check import check_layer  # noqa: E402
from gradcheck.layer import from_functions  # noqa: E402

Shape = tuple[int, ...]
Target = dict[str, Any]
SENSITIVITY_LEAD = 1e3  # T1: gradcheck must flag a dx error this many times smaller than torch
DELTAS = tuple(10.0 ** -k for k in range(2, 13))
ABOVE_RANGE = (1e-1, 1.0, 1e1, 1e2)
CLI_LIMIT_S = 0.4
_WORKER_FLAG = "--worker"


@dataclass(frozen=True)
class Sizes:
    """What one run measures; :data:`FULL` is the issue's, :data:`QUICK` and tiny ones for tests."""

    name: str = "full"
    directional: Shape = (256, 64)  # T1
    auto_shapes: tuple[Shape, ...] = ((64, 32), (256, 64))  # T2
    big: Shape = (32, 32, 32, 32)  # T3
    full: Shape = (64, 32)  # T4
    cli: Shape = (4, 5)  # T5
    concurrent: Shape = (64, 32)  # T6
    repeats: int = 5  # rounds of interleaved timing (fewer when a round is long)
    budget_s: float = 30.0  # per ratio: no new round once this much time went into it
    cli_runs: int = 5
    concurrent_s: float = 4.0  # each phase of T6 checks for this long
    deltas: tuple[float, ...] = DELTAS
    scaled: tuple[Shape, ...] = scale.SIZES  # the scale table (float64); T7 from 256k elements
    memory: tuple[Shape, ...] = scale.MEMORY_SIZES  # T8, float64 and float32


FULL = Sizes()
QUICK = Sizes(name="quick", auto_shapes=((64, 32),), repeats=3, budget_s=10.0, cli_runs=3,
              concurrent_s=2.0, scaled=((64, 32), (256, 64), (1024, 256)),
              memory=((1024, 256),))
T7_FROM = 256 * 1024  # T7 holds from this many elements up ...
T7_LIMIT, T7_BIG, T7_BIG_LIMIT = 30.0, 8192 * 1024, 10.0  # ... at 30 forwards' worth, 10 at 8M
T8_LIMIT = 2.0


# ------------------------------------------------------------------------------- bookkeeping


def load() -> list[float] | None:
    """1, 5 and 15 minute load averages (``os.getloadavg``), ``None`` where unsupported."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _shape_text(shape: Shape) -> str:
    return "x".join(map(str, shape))


def _log(message: str, stream: Any = None) -> None:
    print(f"[targets] {message}", file=stream or sys.stderr, flush=True)


def result(ident: str, target: str, numerator: float | None, denominator: float | None,
           limit: float, details: dict[str, Any]) -> Target:
    """One target's record; ``met`` is ``None`` when either side was not measured."""
    ratio = None
    if numerator is not None and denominator:
        ratio = numerator / denominator
    return {"id": ident, "target": target, "ratio": ratio, "limit": limit,
            "met": None if ratio is None else bool(ratio <= limit),
            "numerator": numerator, "denominator": denominator, "details": details}


def not_measured(ident: str, target: str, limit: float, why: str) -> Target:
    """A target that could not be measured here, and why."""
    return result(ident, target, None, None, limit, {"why": f"not measured: {why}"})


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int,
                budget_s: float) -> dict[str, list[float]]:
    """Seconds per call of each function, in rounds A B .. then .. B A (order alternates).

    At least one round; a new round starts only while fewer than ``repeats`` ran and the time
    spent so far plus one more round stays within ``budget_s``.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    keys, spent, rounds = list(fns), 0.0, 0
    while rounds == 0 or (rounds < repeats and spent * (rounds + 1) / rounds <= budget_s):
        for key in keys if rounds % 2 == 0 else keys[::-1]:
            t0 = time.perf_counter()
            fns[key]()
            times[key].append(time.perf_counter() - t0)
            spent += times[key][-1]
        rounds += 1
    return times


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# ---------------------------------------------------------------------------------- T1


def _smallest_flagged(checker: checkers.Checker, x: np.ndarray,
                      deltas: Sequence[float]) -> dict[str, Any]:
    """The smallest δ such that it and every larger δ in ``deltas`` flag ``dx * (1 + δ)``;
    when even the largest passes, the first of :data:`ABOVE_RANGE` flagged (or none)."""
    smallest = None
    for delta in sorted(deltas, reverse=True):
        if checker.run(x, checkers.scaled(delta), 0).passed:
            break
        smallest = delta
    if smallest is not None:
        return {"smallest": smallest, "above": None}
    above = next((d for d in ABOVE_RANGE if not checker.run(x, checkers.scaled(d), 0).passed),
                 None)
    return {"smallest": None, "above": above}


def _lead(ours: dict[str, Any], theirs: dict[str, Any]) -> tuple[float | None, bool]:
    """How many times smaller an error gradcheck flags than torch; ``True`` if a lower bound."""
    if ours["smallest"] is None:
        return None, False
    if theirs["smallest"] is not None:
        return theirs["smallest"] / ours["smallest"], False
    if theirs["above"] is not None:
        return theirs["above"] / ours["smallest"], False
    return ABOVE_RANGE[-1] / ours["smallest"], True  # torch flagged nothing up to 100


def forward_seconds(shape: Shape, complex_input: bool, reps: int = 20) -> float:
    """Median seconds of one reference BatchNorm forward (the layer ``check_layer`` calls)."""
    layer = BatchNorm(shape[1])
    x = checkers.make_input(shape, 0).astype(complex if complex_input else float)
    inputs = {"x": x, **layer.parameters()}
    layer.forward(inputs)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        layer.forward(inputs)
        times.append(time.perf_counter() - t0)
    return _median(times)


def target_directional(sizes: Sizes = FULL, torch: Any = None) -> Target:
    """T1: complex/directional no slower than torch's fast mode, keeping the sensitivity lead."""
    shape = sizes.directional
    name = f"T1 directional at {_shape_text(shape)} ≤ torch fast_mode, sensitivity lead kept"
    if torch is None:
        torch, why = baselines.torch_status()
        if torch is None:
            return not_measured("T1", name, 1.0, f"torch not installed ({why})")
    x = checkers.make_input(shape, 0)
    ours = checkers.gradcheck_checker("complex", "directional")
    auto = checkers.gradcheck_checker("auto", "directional")
    theirs = checkers.torch_checker(torch, fast_mode=True)
    outcomes = {k: c.run(x, checkers.reference, 0) for k, c in
                (("complex", ours), ("auto", auto), ("torch", theirs))}  # also the warm-up
    inside: dict[str, list[float]] = {"complex": [], "auto": []}  # s in the forward, per run

    def timed(key: str, checker: checkers.Checker) -> Callable[[], None]:
        def call() -> None:
            outcome = checker.run(x, checkers.reference, 0)
            if key in inside:
                inside[key].append(float(outcome.detail["forward_seconds"]))
        return call

    times = interleaved({k: timed(k, c) for k, c in
                         (("complex", ours), ("auto", auto), ("torch", theirs))},
                        sizes.repeats, sizes.budget_s)
    med = {k: _median(v) for k, v in times.items()}
    in_forward = _median(inside["complex"])
    sens = {"gradcheck": _smallest_flagged(ours, x, sizes.deltas),
            "torch": _smallest_flagged(theirs, x, sizes.deltas)}
    lead, lower = _lead(sens["gradcheck"], sens["torch"])
    kept = lead is not None and lead >= SENSITIVITY_LEAD
    nfev = {k: o.nfev for k, o in outcomes.items()}
    calls = {k: int(o.detail.get("forward_calls") or 0) for k, o in outcomes.items()}
    fwd_c, fwd_r = forward_seconds(shape, True), forward_seconds(shape, False)
    overhead = (med["complex"] - in_forward) / max(1, nfev["complex"])
    details = {
        "numerator_is": "check_layer(method='complex', mode='directional'), median s",
        "profile_top": _profile_top(functools.partial(ours.run, x, checkers.reference, 0)),
        "profile_cumulative": _profile_top(functools.partial(ours.run, x, checkers.reference, 0),
                                           count=16, by="cumulative_s"),
        "overhead_per_evaluation_s": overhead, "seconds_in_forward": in_forward,
        "seconds_in_forward_auto": _median(inside["auto"]),
        "denominator_is": "torch.autograd.gradcheck(fast_mode=True), median s",
        "seconds": med, "times_s": times, "nfev": nfev, "forward_calls": calls,
        "passed": {k: o.passed for k, o in outcomes.items()},
        "auto_ratio": med["auto"] / med["torch"],
        "forward_complex_s": fwd_c, "forward_real_s": fwd_r,
        "sensitivity": sens, "lead": lead, "lead_is_lower_bound": lower,
        "sensitivity_kept": kept, "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "why": (f"gradcheck {med['complex'] * 1e3:.3g} ms for {nfev['complex']} evaluations "
                f"({calls['complex']} forward calls, {in_forward * 1e3:.3g} ms inside them, "
                f"{in_forward / med['complex']:.0%}; one complex forward alone "
                f"{fwd_c * 1e3:.3g} ms; the rest, {overhead * 1e3:.3g} ms per evaluation, is the "
                f"checker's own work) vs torch "
                f"{med['torch'] * 1e3:.3g} ms for {nfev['torch']} real forwards (one "
                f"{fwd_r * 1e3:.3g} ms); auto/directional {med['auto'] * 1e3:.3g} ms "
                f"({calls['auto']} calls). Sensitivity: gradcheck flags dx*(1+δ) from "
                f"δ={sens['gradcheck']['smallest']}, torch from "
                f"{_torch_flags(sens['torch'])}: lead {_lead_text(lead, lower)} "
                f"(needs ≥ {SENSITIVITY_LEAD:g})."),
    }
    record = result("T1", name, med["complex"], med["torch"], 1.0, details)
    if record["met"] and not kept:
        record["met"] = False
    return record


def _torch_flags(s: dict[str, Any]) -> str:
    if s["smallest"] is not None:
        return f"δ={s['smallest']:g}"
    return f"δ={s['above']:g} (nothing ≤ 1e-2)" if s["above"] else "no δ up to 100"


def _lead_text(lead: float | None, lower: bool) -> str:
    return "none" if lead is None else (">" if lower else "") + f"{lead:.3g}×"


# ---------------------------------------------------------------------------------- T2


def target_auto(sizes: Sizes = FULL) -> Target:
    """T2: auto within 1.5x of complex in every mode (full, sampled, directional); the worst."""
    name = ("T2 auto ≤ 1.5× complex, every mode at "
            + ", ".join(_shape_text(s) for s in sizes.auto_shapes))
    rows: list[dict[str, Any]] = []
    for shape in sizes.auto_shapes:
        x = checkers.make_input(shape, 0)
        for mode in ("full", "sampled", "directional"):
            pair = {m: checkers.gradcheck_checker(m, mode) for m in ("auto", "complex")}
            outcomes: dict[str, checkers.Outcome] = {}
            fns = {m: _keep(outcomes, m, functools.partial(c.run, x, checkers.reference, 0))
                   for m, c in pair.items()}
            times = interleaved(fns, sizes.repeats, sizes.budget_s)
            med = {m: _median(v) for m, v in times.items()}
            calls = {m: int(o.detail.get("forward_calls") or 0) for m, o in outcomes.items()}
            rows.append({"shape": list(shape), "mode": mode, "auto_s": med["auto"],
                         "complex_s": med["complex"], "ratio": med["auto"] / med["complex"],
                         "runs": len(times["auto"]),
                         "nfev": {m: o.nfev for m, o in outcomes.items()},
                         "forward_calls": calls,
                         "probe_calls": calls["auto"] - calls["complex"],
                         "auto_method_used": outcomes["auto"].detail.get("method_used"),
                         "passed": all(o.passed for o in outcomes.values())})
    worst = max(rows, key=lambda r: r["ratio"])
    why = "; ".join(f"{r['mode']} {_shape_text(tuple(r['shape']))}: {r['ratio']:.2f}× "
                    f"({r['auto_s'] * 1e3:.3g} vs {r['complex_s'] * 1e3:.3g} ms; auto made "
                    f"{r['probe_calls']:+d} forward calls on complex's "
                    f"{r['forward_calls']['complex']})" for r in rows)
    details = {"numerator_is": f"auto, median s ({worst['mode']} at "
                               f"{_shape_text(tuple(worst['shape']))}, the worst ratio)",
               "denominator_is": "complex, same mode and shape, median s",
               "rows": rows, "why": why}
    return result("T2", name, worst["auto_s"], worst["complex_s"], 1.5, details)


def _keep(store: dict[str, Any], key: str, fn: Callable[[], Any]) -> Callable[[], None]:
    """``fn`` that keeps its last return value in ``store[key]``."""
    def call() -> None:
        store[key] = fn()
    return call


# ---------------------------------------------------------------------------------- T3


def course_layer(counter: list[int]) -> Any:
    """The course-style spatial BatchNorm through ``from_functions``, its forward counted."""
    @functools.wraps(course_layers.spatial_batchnorm_forward)
    def forward(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return course_layers.spatial_batchnorm_forward(*args, **kwargs)

    return from_functions(forward, course_layers.spatial_batchnorm_backward,
                          config={"bn_param": {"mode": "train"}})


def course_inputs(shape: Shape) -> dict[str, np.ndarray]:
    """``x = 5*randn + 12``, gamma ones, beta zeros."""
    return {"x": checkers.make_input(shape, 0), "gamma": np.ones(shape[1]),
            "beta": np.zeros(shape[1])}


def course_forward_times(shape: Shape, reps: int = 5) -> list[float]:
    """Seconds of ``reps`` complex128 course-style spatial forwards at ``shape`` (after one
    untimed)."""
    arrays = {k: v.astype(complex) for k, v in course_inputs(shape).items()}
    course_layers.spatial_batchnorm_forward(**arrays, bn_param={"mode": "train"})
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        course_layers.spatial_batchnorm_forward(**arrays, bn_param={"mode": "train"})
        times.append(time.perf_counter() - t0)
    return times


def course_grad_norms(inputs: dict[str, np.ndarray]) -> dict[str, float]:
    """2-norms of the course backward's gradients for a standard normal upstream gradient (the
    scale a miss bound is read against)."""
    out, cache = course_layers.spatial_batchnorm_forward(**inputs, bn_param={"mode": "train"})
    dout = checkers.upstream(out.shape, 0)  # a stream apart from x's (same seed would be ∝ x)
    grads = course_layers.spatial_batchnorm_backward(dout, cache)
    return {k: float(np.linalg.norm(g)) for k, g in zip(("x", "gamma", "beta"), grads,
                                                        strict=True)}


def target_default_big(sizes: Sizes = FULL) -> Target:
    """T3: the default check of the course spatial BatchNorm in ≤ 60 complex forwards' time."""
    shape = sizes.big
    name = (f"T3 default check of course spatial BatchNorm {_shape_text(shape)} "
            "≤ 60 complex forwards")
    inputs, counter = course_inputs(shape), [0]
    forward_times = course_forward_times(shape)
    reports: list[Any] = []
    times = interleaved({"check": lambda: reports.append(check_layer(course_layer(counter),
                                                                     inputs))},
                        sizes.repeats, sizes.budget_s)
    forward_times += course_forward_times(shape)  # before and after: the load drifts
    forward_s = _median(forward_times)
    report, seconds = reports[-1], _median(times["check"])
    calls = counter[0] // len(reports)
    per = {r.name: {"mode": r.mode, "method": r.method, "status": r.status, "nfev": r.nfev,
                    "elements": r.elements, "directions": r.directions,
                    "miss_norm": r.miss_norm, "seconds": r.seconds} for r in report.results}
    modes = sorted({r.mode for r in report.results})
    norms = course_grad_norms(inputs)
    miss = ", ".join(f"{k} {v['miss_norm']:.3g} (‖d{k}‖ ≈ {norms[k]:.3g})"
                     for k, v in per.items() if math.isfinite(v["miss_norm"]))
    details = {
        "numerator_is": "check_layer(course spatial BatchNorm, method='auto', mode='auto'), s",
        "denominator_is": "one complex128 spatial_batchnorm_forward, median of 5 before the "
                          "check and 5 after, s",
        "times_s": times["check"], "forward_times_s": forward_times,
        "verdict": report.verdict, "method": report.method,
        "modes": modes, "nfev": report.nfev, "forward_calls": calls, "gradients": per,
        "forward_share": calls * forward_s / seconds, "grad_norms": norms,
        "why": (f"{report.verdict} by {report.method}, mode {'/'.join(modes)}: {report.nfev} "
                f"evaluations, {calls} forward calls ({calls * forward_s:.3g} s of forwards at "
                f"{forward_s * 1e3:.3g} ms each, {calls * forward_s / seconds:.0%} of "
                f"{seconds:.3g} s); miss bound (2-norm of an error caught with probability "
                f"≥ 1-1e-6): {miss or 'none stated'}."),
    }
    return result("T3", name, seconds, forward_s, 60.0, details)


# ---------------------------------------------------------------------------------- T4


def target_full_forwards(sizes: Sizes = FULL) -> Target:
    """T4: full mode (one evaluation per element) in ≤ 1.25x the time of its forwards."""
    shape = sizes.full
    name = f"T4 full mode at {_shape_text(shape)} (x) ≤ 1.25× its nfev complex forwards"
    layer, x = checkers.counted_batchnorm(shape[1]), checkers.make_input(shape, 0)
    report = check_layer(layer, {"x": x}, mode="full", method="complex", wrt="x")  # warm-up
    nfev = report.nfev
    complex_inputs = {"x": x.astype(complex), **layer.parameters()}
    inside: list[tuple[int, float]] = []  # forward calls and seconds inside each timed check

    def check() -> None:
        calls, seconds = checkers.forward_calls(), checkers.forward_seconds()
        check_layer(layer, {"x": x}, mode="full", method="complex", wrt="x")
        inside.append((checkers.forward_calls() - calls, checkers.forward_seconds() - seconds))

    def forwards() -> None:
        for _ in range(nfev):
            layer.forward(complex_inputs)

    times = interleaved({"check": check, "forwards": forwards}, sizes.repeats, sizes.budget_s)
    check_s, fwd_s = _median(times["check"]), _median(times["forwards"])
    calls, in_forward = inside[-1][0], _median([t for _, t in inside])
    profile = _profile_top(lambda: check_layer(layer, {"x": x}, mode="full", method="complex",
                                               wrt="x"))
    details = {
        "numerator_is": "check_layer(mode='full', method='complex', wrt='x'), median s",
        "denominator_is": f"{nfev} calls of layer.forward on complex128 x, median s",
        "nfev": nfev, "elements": x.size, "forward_calls": calls,
        "seconds_in_forward": in_forward, "times_s": times,
        "status": report.results[0].status, "profile_top": profile,
        "why": (f"{nfev} evaluations for {x.size} elements; {check_s:.3g} s vs {fwd_s:.3g} s "
                f"of forwards alone ({fwd_s / nfev * 1e6:.3g} µs each). Inside the check its "
                f"{calls} forward calls took {in_forward:.3g} s "
                f"({in_forward / calls * 1e6:.3g} µs each), the rest "
                f"{(check_s - in_forward) / nfev * 1e6:.3g} µs per evaluation."),
    }
    return result("T4", name, check_s, fwd_s, 1.25, details)


def _profile_top(fn: Callable[[], Any], count: int = 8,
                 by: str = "own_s") -> list[dict[str, Any]]:
    """The functions with the most own time (``by="own_s"``) in one call of ``fn`` (cProfile),
    or gradcheck's functions with the most cumulative time (``by="cumulative_s"``)."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows: list[dict[str, Any]] = []
    for (file, line, func), (_, calls, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        if by == "cumulative_s" and f"{os.sep}gradcheck{os.sep}" not in file:
            continue
        rows.append({"function": f"{Path(file).parent.name}/{Path(file).name}:{line}({func})",
                     "calls": calls, "own_s": own, "cumulative_s": cum})
    return sorted(rows, key=lambda r: -r[by])[:count]


# ---------------------------------------------------------------------------------- T5


def cli_command(path: Path, shape: Shape) -> list[str]:
    """``python -m gradcheck check FILE --op batchnorm --shape ...`` with this interpreter."""
    n, d = shape
    return [sys.executable, "-m", "gradcheck", "check", str(path), "--op", "batchnorm",
            "--shape", f"x={n},{d}", "--shape", f"gamma={d}", "--shape", f"beta={d}",
            "--kwarg", 'bn_param={"mode": "train"}']


def _wall(cmd: Sequence[str], cwd: Path, runs: int,
          env: Mapping[str, str] | None = None) -> tuple[list[float], int, str]:
    """Wall seconds of ``runs`` runs of ``cmd`` in the caller's environment (or ``env``); the
    last exit code and stderr."""
    times, code, err = [], 0, ""
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                              env=dict(USER_ENV if env is None else env))
        times.append(time.perf_counter() - t0)
        code, err = done.returncode, done.stderr
    return times, code, err


def slowest_imports(importtime: str, count: int = 8) -> list[dict[str, Any]]:
    r"""The slowest top-level imports in ``python -X importtime`` output (its stderr).

    Examples
    --------
    >>> text = ("import time: self [us] | cumulative | imported package\n"
    ...         "import time:        61 |         61 |   marshal\n"
    ...         "import time:       539 |       1396 | _frozen_importlib_external\n"
    ...         "import time:      2000 |     250000 | numpy\n")
    >>> [(r["module"], r["cumulative_s"]) for r in slowest_imports(text)]
    [('numpy', 0.25), ('_frozen_importlib_external', 0.001396)]
    """
    rows: list[dict[str, Any]] = []
    for line in importtime.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        name = parts[2].rstrip()
        if name.startswith(" ") and not name.startswith("  "):  # top level: not indented
            rows.append({"module": name.strip(), "cumulative_s": int(parts[1]) / 1e6})
    return sorted(rows, key=lambda r: -r["cumulative_s"])[:count]


def _import_lines(importtime: str) -> list[tuple[int, str, float]]:
    """``(depth, module, cumulative seconds)`` per line of ``-X importtime`` output, in order."""
    rows = []
    for line in importtime.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        field = parts[2].rstrip()
        depth = (len(field) - len(field.lstrip()) - 1) // 2
        rows.append((depth, field.strip(), int(parts[1]) / 1e6))
    return rows


def package_imports(importtime: str, package: str = "gradcheck",
                    count: int = 8) -> list[dict[str, Any]]:
    r"""Where ``package`` imports other packages: each module outside it whose importer is in it,
    with that importer and the cumulative seconds, slowest first (``-X importtime`` prints a
    module after the modules it imported, one level deeper).

    Examples
    --------
    >>> text = ("import time:       300 |     220000 |       scipy.differentiate\n"
    ...         "import time:      3000 |     223000 |     gradcheck.numeric.richardson\n"
    ...         "import time:      1800 |      72000 |     numpy\n"
    ...         "import time:      2000 |     300000 |   gradcheck\n")
    >>> [(r["module"], r["imported_by"], r["cumulative_s"]) for r in package_imports(text)]
    [('scipy.differentiate', 'gradcheck.numeric.richardson', 0.22), ('numpy', 'gradcheck', 0.072)]
    """
    lines = _import_lines(importtime)
    inside = [name == package or name.startswith(package + ".") for _, name, _ in lines]
    rows: list[dict[str, Any]] = []
    for i, (depth, name, cum) in enumerate(lines):
        parent = next((j for j in range(i + 1, len(lines)) if lines[j][0] < depth), None)
        if not inside[i] and parent is not None and inside[parent]:
            rows.append({"module": name, "imported_by": lines[parent][1], "cumulative_s": cum})
    return sorted(rows, key=lambda r: -r["cumulative_s"])[:count]


def _import_times(cmd: Sequence[str], cwd: Path) -> tuple[list[dict[str, Any]],
                                                          list[dict[str, Any]]]:
    done = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], cwd=cwd, capture_output=True,
                          text=True, check=False, env=USER_ENV)
    return slowest_imports(done.stderr), package_imports(done.stderr)


def target_cli(sizes: Sizes = FULL) -> Target:
    """T5: ``gradcheck check`` of a 4x5 course file in ≤ 0.4 s wall, process start included."""
    shape = sizes.cli
    name = f"T5 `gradcheck check` of a {_shape_text(shape)} course file ≤ {CLI_LIMIT_S} s wall"
    with tempfile.TemporaryDirectory(prefix="gradcheck-t5-") as tmp:
        cwd = Path(tmp)
        path = cwd / "layers.py"
        shutil.copyfile(course_layers.__file__, path)
        cmd = cli_command(path, shape)
        # compiles gradcheck and layers.py to bytecode, as an installed package has it (an
        # environment with PYTHONDONTWRITEBYTECODE would otherwise recompile every source on
        # every run, 0.1 s here), and warms the file cache
        _wall(cmd, cwd, 1, {k: v for k, v in USER_ENV.items()
                            if k != "PYTHONDONTWRITEBYTECODE"})
        times, code, err = _wall(cmd, cwd, sizes.cli_runs)
        bare, _, _ = _wall([sys.executable, "-c", "pass"], cwd, sizes.cli_runs)
        imports, _, _ = _wall([sys.executable, "-c", "import gradcheck.cli"], cwd,
                              sizes.cli_runs)
        slowest, packages = _import_times(cmd, cwd)
    wall, start, imp = _median(times), _median(bare), _median(imports)
    if code != 0:
        return not_measured("T5", name, 1.0, f"the check exited {code}: {err.strip()[-300:]}")
    details = {
        "numerator_is": f"median wall s of {sizes.cli_runs} runs of the command",
        "denominator_is": f"the {CLI_LIMIT_S} s limit",
        "command": " ".join(cmd[1:]), "python": sys.executable, "times_s": times,
        "exit_code": code, "interpreter_start_s": start, "import_gradcheck_cli_s": imp,
        "slowest_imports": slowest, "package_imports": packages,
        "why": (f"{wall:.3g} s: interpreter start {start:.3g} s, `import gradcheck.cli` "
                f"{imp - start:.3g} s more, the rest (loading the file, the check, the report) "
                f"{wall - imp:.3g} s; slowest top-level imports: "
                + ", ".join(f"{r['module']} {r['cumulative_s']:.3g} s" for r in slowest[:3])
                + "; what gradcheck imports from other packages: "
                + ", ".join(f"{r['module']} {r['cumulative_s']:.3g} s (by {r['imported_by']})"
                            for r in packages[:5])
                + " (one -X importtime run)."),
    }
    return result("T5", name, wall, CLI_LIMIT_S, 1.0, details)


# ----------------------------------------------------------------------- T7, T8: scale


_SCALE: dict[tuple[Any, ...], list[dict[str, Any]]] = {}  # one measurement for T7, T8, table


def scale_rows(sizes: Sizes = FULL) -> list[dict[str, Any]]:
    """The scale table's rows (:mod:`bench.scale`), measured once per run for T7 and T8."""
    key = (sizes.scaled, sizes.memory)
    if key not in _SCALE:
        _SCALE[key] = scale.measure(sizes.scaled, sizes.memory, log=_log)
    return _SCALE[key]


def _t7_limit(elements: int) -> float:
    return T7_BIG_LIMIT if elements >= T7_BIG else T7_LIMIT


def target_scale_time(sizes: Sizes = FULL) -> list[Target]:
    """T7: the default check in ≤ 30 complex forwards' worth from 256k elements up, ≤ 10 at 8M."""
    records = []
    for row in scale_rows(sizes):
        if row["dtype"] != "float64" or row["elements"] < T7_FROM:
            continue
        shape = _shape_text(tuple(row["shape"]))
        limit = _t7_limit(row["elements"])
        name = f"T7 default check at {shape} ≤ {limit:g} complex forwards' worth"
        if "check_s" not in row:
            records.append(not_measured("T7", name, limit, row.get("error", "?")))
            continue
        others = row["check_s"] - row["in_forwards_s"] - row["in_backwards_s"]
        details = {
            "numerator_is": "wall s of check_layer(layer, inputs), fresh process, after a "
                            "warm-up check at 4x5",
            "denominator_is": "median wall s of a complex128 forward of the layer, same process, "
                              "after the check",
            **row, "why": (
                f"{row['verdict']}, mode {'/'.join(row['modes'])}: {row['check_s']:.3g} s "
                f"(CPU {row['check_cpu_s']:.3g} s, {row['forwards_worth_cpu']:.1f} forwards' "
                f"worth by CPU) = {row['forwards_worth']:.1f} complex forwards of "
                f"{row['complex_forward_s'] * 1e3:.3g} ms; inside it {row['forward_calls']} "
                f"forward calls ({row['complex_forward_calls']} complex: "
                f"{row['in_complex_forwards_s']:.3g} s; all {row['in_forwards_s']:.3g} s), "
                f"{row['backward_calls']} backward calls ({row['in_backwards_s']:.3g} s), the "
                f"engine's own numerics {others:.3g} s; load after {row['load']}")}
        records.append(result("T7", name, row["check_s"], row["complex_forward_s"], limit,
                              details))
    return records


def target_scale_memory(sizes: Sizes = FULL) -> list[Target]:
    """T8: a check's peak memory ≤ 2× the layer's own forward+backward, fresh processes."""
    records = []
    for row in scale_rows(sizes):
        if tuple(row["shape"]) not in sizes.memory:
            continue
        shape = _shape_text(tuple(row["shape"]))
        name = f"T8 peak memory of a check at {shape} {row['dtype']} ≤ 2× the layer's own"
        if not row.get("peak_mb") or not row.get("layer_peak_mb"):
            records.append(not_measured("T8", name, T8_LIMIT,
                                        row.get("error") or row.get("layer_error") or "?"))
            continue
        details = {
            "numerator_is": "peak resident MB (VmHWM) of a fresh process that checks the layer",
            "denominator_is": "peak resident MB (VmHWM) of a fresh process that runs its "
                              "forward and backward once (same imports and inputs)",
            **row, "why": (
                f"check {row['peak_mb']:.0f} MB against the layer's {row['layer_peak_mb']:.0f} "
                f"MB; both started from {row['base_mb']:.0f} / {row['layer_base_mb']:.0f} MB "
                f"after imports and inputs, so the check added "
                f"{row['peak_mb'] - row['base_mb']:.0f} MB where the layer's forward and "
                f"backward added {row['layer_peak_mb'] - row['layer_base_mb']:.0f} MB")}
        records.append(result("T8", name, row["peak_mb"], row["layer_peak_mb"], T8_LIMIT,
                              details))
    return records


# -------------------------------------------------------------------------------- T9

WRONG_DX = "dx = (g - xhat * (g * xhat).mean(axis=0)) / std"  # the mean(dout) term dropped


def wrong_course_file(path: Path) -> None:
    """:mod:`bench.course_layers` at ``path`` with the mean term of ``dx`` dropped."""
    text = Path(course_layers.__file__).read_text(encoding="utf-8")
    right = "dx = (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0)) / std"
    if right not in text:
        raise RuntimeError("bench/course_layers.py no longer has the line T9 breaks")
    path.write_text(text.replace(right, WRONG_DX), encoding="utf-8")


def target_cli_failing(sizes: Sizes = FULL) -> Target:
    """T9: a failing ``gradcheck check`` of a 4x5 course file, diagnosis included, ≤ 0.4 s."""
    shape = sizes.cli
    name = (f"T9 failing `gradcheck check` of a {_shape_text(shape)} course file, diagnosis "
            f"included, ≤ {CLI_LIMIT_S} s wall")
    with tempfile.TemporaryDirectory(prefix="gradcheck-t9-") as tmp:
        cwd = Path(tmp)
        good, bad = cwd / "layers.py", cwd / "wrong.py"
        shutil.copyfile(course_layers.__file__, good)
        wrong_course_file(bad)
        compiled = {k: v for k, v in USER_ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for path in (good, bad):  # bytecode and file cache, as for T5
            _wall(cli_command(path, shape), cwd, 1, compiled)
        failing: list[float] = []
        passing: list[float] = []
        code = err = out = None
        for i in range(sizes.cli_runs):  # interleaved: pass, fail, then fail, pass, ...
            for which in ((good, passing), (bad, failing))[:: 1 if i % 2 == 0 else -1]:
                t0 = time.perf_counter()
                done = subprocess.run(cli_command(which[0], shape), cwd=cwd, capture_output=True,
                                      text=True, check=False, env=dict(USER_ENV))
                which[1].append(time.perf_counter() - t0)
                if which[0] == bad:
                    code, err, out = done.returncode, done.stderr, done.stdout
        slowest, packages = _import_times(cli_command(bad, shape), cwd)
    wall, ok = _median(failing), _median(passing)
    if code != 1:
        return not_measured("T9", name, 1.0, f"the failing check exited {code}: "
                            f"{(err or '').strip()[-300:]}")
    diagnosed = "diagnosis:" in (out or "")
    details = {
        "numerator_is": f"median wall s of {sizes.cli_runs} runs of the failing command",
        "denominator_is": f"the {CLI_LIMIT_S} s limit",
        "command": " ".join(cli_command(bad, shape)[1:]), "wrong_line": WRONG_DX,
        "times_s": failing, "passing_times_s": passing, "exit_code": code,
        "diagnosed": diagnosed, "slowest_imports": slowest, "package_imports": packages,
        "why": (f"{wall:.3g} s failing (exit {code}, diagnosis "
                f"{'printed' if diagnosed else 'MISSING'}) against {ok:.3g} s for the passing "
                f"file in the same rounds ({wall - ok:+.3g} s); slowest top-level imports of "
                "the failing run: "
                + ", ".join(f"{r['module']} {r['cumulative_s']:.3g} s" for r in slowest[:3])
                + "; what gradcheck imports from other packages: "
                + ", ".join(f"{r['module']} {r['cumulative_s']:.3g} s (by {r['imported_by']})"
                            for r in packages[:4]) + " (one -X importtime run)."),
    }
    return result("T9", name, wall, CLI_LIMIT_S, 1.0, details)


# ---------------------------------------------------------------------------------- T6

CONTROL = "control"  # T6's other worker: a pure-Python loop, the machine's own pair ratio
T6_ROUNDS = 6  # alternations of alone and pair phases (the machine's speed drifts by ~1.5x)
Runs = list[dict[str, list[float]]]


def _control_unit() -> None:
    """About 20 ms of pure-Python work: no NumPy, no memory traffic, one thread."""
    total = 0
    for i in range(300_000):
        total += i * i % 7


def _unit(kind: str) -> Callable[[], Any]:
    """What a T6 worker repeats: ``"control"``, or the default check of BatchNorm at the
    shape ``kind`` names (``"64x32"``)."""
    if kind == CONTROL:
        return _control_unit
    shape = tuple(int(n) for n in kind.split("x"))
    x = checkers.make_input(shape, 0)
    layer = BatchNorm(shape[1])
    return functools.partial(check_layer, layer, {"x": x})


def worker(kind: str, duration: float) -> None:
    """One process of T6, kept warm across phases: warm up, print ``ready``; then, for each line
    on stdin, repeat its unit (:func:`_unit`) for ``duration`` s and print the wall and CPU
    seconds of each as JSON (``{"wall": [...], "cpu": [...]}``); return at end of input."""
    unit = _unit(kind)
    unit()
    print("ready", flush=True)
    for _ in sys.stdin:
        wall: list[float] = []
        cpu: list[float] = []
        end = time.perf_counter() + duration
        while time.perf_counter() < end or not wall:
            t0, c0 = time.perf_counter(), time.process_time()
            unit()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)


def _start(kind: str, count: int, duration: float) -> list[subprocess.Popen[str]]:
    """``count`` warm worker processes, each ready for its first phase."""
    cmd = [sys.executable, str(Path(__file__).resolve()), _WORKER_FLAG, kind, str(duration)]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(count)]
    for p in procs:  # all warmed up before any starts
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            _stop(procs)
            raise RuntimeError(f"a T6 worker ({kind}) did not start")
    return procs


def _phase(procs: Sequence[subprocess.Popen[str]]) -> Runs:
    """Release ``procs`` together for one phase; each one's per-unit wall and CPU seconds."""
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    runs = []
    for p in procs:
        assert p.stdout is not None
        runs.append(json.loads(p.stdout.readline()))
    return runs


def _stop(procs: Sequence[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.stdin is not None and not p.stdin.closed:
            p.stdin.close()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


def _checkers(count: int, shape: Shape, duration: float) -> Runs:
    """Start ``count`` checking workers, release them together for one phase of ``duration`` s,
    collect their per-check wall and CPU seconds."""
    procs = _start(_shape_text(shape), count, duration)
    try:
        return _phase(procs)
    finally:
        _stop(procs)


def _alternate(durations: Mapping[str, float], rounds: int) -> dict[str, dict[str, list[Runs]]]:
    """Two warm workers of each kind in ``durations`` (its phase length, s): ``rounds`` of each
    kind alone then two at once, kinds and sides in one order, reversed every other round, then
    one more lone phase of each; a drift in the machine's speed lands on every side alike."""
    procs: dict[str, list[subprocess.Popen[str]]] = {}
    phases: dict[str, dict[str, list[Runs]]] = {k: {"alone": [], "pair": []} for k in durations}
    schedule = [(kind, side) for kind in durations for side in ("alone", "pair")]
    try:
        for kind, seconds in durations.items():
            procs[kind] = _start(kind, 2, seconds)
        for i in range(rounds):
            for kind, side in schedule if i % 2 == 0 else schedule[::-1]:
                workers = procs[kind][:1] if side == "alone" else procs[kind]
                phases[kind][side].append(_phase(workers))
        for kind in durations:
            phases[kind]["alone"].append(_phase(procs[kind][:1]))
        return phases
    finally:
        for started in procs.values():
            _stop(started)


def _pooled(phases: Sequence[Runs], key: str) -> float:
    """The median of ``key`` ("wall" or "cpu") over every unit of every run of ``phases``."""
    return _median([t for runs in phases for r in runs for t in r[key]])


def _ms(values: Sequence[float]) -> str:
    return ", ".join(f"{v * 1e3:.3g}" for v in values)


def _range(ratios: Sequence[float]) -> str:
    return f"{min(ratios):.2f}–{max(ratios):.2f}× (median {_median(ratios):.2f}×)"


def _pair_summary(phases: dict[str, list[Runs]]) -> dict[str, Any]:
    alone, pair = phases["alone"], phases["pair"]
    return {"alone_s": _pooled(alone, "wall"), "pair_s": _pooled(pair, "wall"),
            "ratio": _pooled(pair, "wall") / _pooled(alone, "wall"),
            "cpu_alone_s": _pooled(alone, "cpu"), "cpu_pair_s": _pooled(pair, "cpu"),
            "cpu_ratio": _pooled(pair, "cpu") / _pooled(alone, "cpu"),
            "alone_by_phase_s": [_pooled([p], "wall") for p in alone],
            "pair_by_phase_s": [_pooled([p], "wall") for p in pair],
            "ratio_by_round": [_pooled([p], "wall") / _pooled([a], "wall")
                               for p, a in zip(pair, alone, strict=False)],
            "units": {"alone": sum(len(r["wall"]) for p in alone for r in p),
                      "pair": sum(len(r["wall"]) for p in pair for r in p)}}


def target_concurrent(sizes: Sizes = FULL) -> Target:
    """T6: time per check with two processes checking at once ≤ 1.2x a lone check."""
    shape, duration = sizes.concurrent, sizes.concurrent_s / 4  # 6 rounds: ~20 s in all
    name = f"T6 per-check time, 2 concurrent processes ≤ 1.2× alone ({_shape_text(shape)})"
    phases = _alternate({_shape_text(shape): duration, CONTROL: duration / 2}, T6_ROUNDS)
    check, control = _pair_summary(phases[_shape_text(shape)]), _pair_summary(phases[CONTROL])
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    details = {
        "numerator_is": "median wall s per check, two processes at once (both pooled, "
                        f"{T6_ROUNDS} phases)",
        "denominator_is": f"median wall s per check, one process alone ({T6_ROUNDS + 1} phases "
                          "alternating with the pair's)",
        **check, "control": control, "ratio_vs_control": check["ratio"] / control["ratio"],
        "cpu_ratio_vs_control": check["cpu_ratio"] / control["cpu_ratio"],
        "cpus_usable": usable, "thread_env": {k: os.environ.get(k) for k in BLAS_ENV},
        "why": (f"wall per check alone {check['alone_s'] * 1e3:.3g} ms (phases "
                f"{_ms(check['alone_by_phase_s'])}), two at once {check['pair_s'] * 1e3:.3g} ms "
                f"(phases {_ms(check['pair_by_phase_s'])}); CPU time per check "
                f"{check['cpu_alone_s'] * 1e3:.3g} ms alone, {check['cpu_pair_s'] * 1e3:.3g} ms "
                f"together ({check['cpu_ratio']:.2f}×); pair over alone round by round "
                f"{_range(check['ratio_by_round'])}. A pure-Python loop paired the same way "
                f"in the same rounds: wall {control['ratio']:.2f}× (by round "
                f"{_range(control['ratio_by_round'])}), CPU {control['cpu_ratio']:.2f}×"
                f", so the check's own share is {check['ratio'] / control['ratio']:.2f}× wall, "
                f"{check['cpu_ratio'] / control['cpu_ratio']:.2f}× CPU; the rest is the machine "
                f"(other work waiting for the {usable} CPUs, its speed drifting)."),
    }
    return result("T6", name, check["pair_s"], check["alone_s"], 1.2, details)


# ------------------------------------------------------------------------------------ run


TARGETS: tuple[Callable[[Sizes], Target | list[Target]], ...] = (
    target_directional, target_auto, target_default_big, target_full_forwards, target_cli,
    target_concurrent, target_scale_time, target_scale_memory, target_cli_failing)


_DOT_PROBE = """
import time, numpy as np
g = np.random.default_rng(0).standard_normal({n})
o = g + 1j * np.random.default_rng(1).standard_normal({n})
np.dot(g, o)
times = []
for _ in range({reps}):
    t0 = time.perf_counter()
    np.dot(g, o)
    times.append(time.perf_counter() - t0)
print(sorted(times)[len(times) // 2])
"""


def blas_probe(n: int = 16384, reps: int = 200) -> dict[str, Any]:
    """Median seconds of ``np.dot(float, complex)`` of length ``n`` in fresh processes: BLAS
    with its default threads, and with one (``OPENBLAS_NUM_THREADS=1`` and friends)."""
    base = {k: v for k, v in os.environ.items() if k not in BLAS_ENV}
    out: dict[str, Any] = {"n": n}
    for label, env in (("default_threads_s", base),
                       ("one_thread_s", {**base, **dict.fromkeys(BLAS_ENV, "1")})):
        try:
            done = subprocess.run([sys.executable, "-c", _DOT_PROBE.format(n=n, reps=reps)],
                                  env=env, capture_output=True, text=True, timeout=120,
                                  check=True)
            out[label] = float(done.stdout.strip())
        except (OSError, subprocess.SubprocessError, ValueError):
            out[label] = None
    return out


def environment() -> dict[str, Any]:
    """What the numbers depend on besides the code: BLAS threads, malloc, CPUs."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"blas_env": {k: os.environ.get(k) for k in BLAS_ENV},
            "blas_pinned_by_bench": _BLAS_PINNED, "cpu_count": os.cpu_count(),
            "cpus_usable": usable, "numpy": np.__version__, "python": sys.executable}


def run(sizes: Sizes = FULL, *, stream: Any = None,
        only: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure every target (or those whose id is in ``only``), with the load around each."""
    start = load()
    records = []
    for fn in TARGETS:
        ident = fn.__doc__.split(":", 1)[0] if fn.__doc__ else fn.__name__
        if only and ident not in only:
            continue
        before, t0 = load(), time.perf_counter()
        _log(f"{ident}: measuring (load {before})", stream)
        made = fn(sizes)
        for record in made if isinstance(made, list) else [made]:
            record["details"].update(load_before=before, load_after=load(),
                                     seconds_spent=time.perf_counter() - t0)
            _log(f"{ident}: ratio {_num(record['ratio'])} (limit {record['limit']:g}) "
                 f"{_met(record['met'])}; {record['details']['why']}", stream)
            records.append(record)
    return {"schema_version": 1, "sizes": asdict(sizes), "gradcheck": __version__,
            **environment(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_average_at_start": start, "load_average_at_end": load(), "targets": records}


def _num(value: float | None) -> str:
    return render.DASH if value is None else f"{value:.3g}"


def _met(met: bool | None) -> str:
    return "not measured" if met is None else ("MET" if met else "NOT MET")


def table(outcome: dict[str, Any], fmt: str = "simple") -> str:
    """The "Targets (issues 16 and 25)" table, the load averages above it, the why lines below."""
    rows = [[t["id"], t["target"].split(" ", 1)[1], f"{_num(t['numerator'])} / "
             f"{_num(t['denominator'])}", _num(t["ratio"]), f"≤ {t['limit']:g}", _met(t["met"]),
             _load_text(t["details"].get("load_before"))] for t in outcome["targets"]]
    head = (f"Targets (issues 16 and 25) — {outcome['date']}, sizes {outcome['sizes']['name']}, "
            f"{outcome['cpu_count']} CPUs, load average (1, 5, 15 min) at start "
            f"{_load_text(outcome['load_average_at_start'])}, at end "
            f"{_load_text(outcome['load_average_at_end'])}; BLAS threads "
            f"{outcome['blas_env'].get('OPENBLAS_NUM_THREADS') or 'default'}"
            f"{' (set by the bench)' if outcome['blas_pinned_by_bench'] else ''}, malloc "
            f"{outcome.get('allocator', 'process defaults')}")
    probe = outcome.get("blas_probe")
    if probe and probe.get("default_threads_s") and probe.get("one_thread_s"):
        head += (f"\nnp.dot of {probe['n']} (float·complex) in a fresh process: "
                 f"{probe['default_threads_s'] * 1e3:.3g} ms with BLAS' default threads, "
                 f"{probe['one_thread_s'] * 1e3:.3g} ms with one")
    body = tabulate(rows, headers=["id", "target", "numerator / denominator", "ratio", "limit",
                                   "met", "load before"], tablefmt=fmt, disable_numparse=True)
    why = "\n".join(f"{t['id']}: {t['details']['why']}" for t in outcome["targets"])
    return f"{head}\n\n{body}\n\n{why}\n"


def _load_text(values: Sequence[float] | None) -> str:
    return render.DASH if not values else ", ".join(f"{v:.2f}" for v in values)


def write(outcome: dict[str, Any], out_dir: Path) -> None:
    """``out_dir/targets.md`` (the table, GitHub format) and ``out_dir/targets.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "targets.md").write_text("# " + table(outcome, "github"), encoding="utf-8")
    for rows in _SCALE.values():
        write_scale(rows, outcome, out_dir)
    (out_dir / "targets.json").write_text(
        json.dumps(render.to_jsonable(outcome), indent=2) + "\n", encoding="utf-8")


def write_scale(rows: list[dict[str, Any]], outcome: dict[str, Any], out_dir: Path) -> None:
    """``out_dir/scale.md`` (the table, the load and command above it) and ``scale.json``."""
    head = (f"# Scale (issue 25) — {outcome['date']}, {outcome['cpu_count']} CPUs, load "
            f"average at start {_load_text(outcome['load_average_at_start'])}, at end "
            f"{_load_text(outcome['load_average_at_end'])}\n\n"
            "The default check `check_layer(layer, inputs)` of the course-style (N, D) "
            "BatchNorm (`bench/course_layers.py`), each row in fresh processes: the check's "
            "wall and CPU seconds, the complex128 forward it is counted in (measured in the "
            "same process after it), the forward calls it made, and its peak memory "
            "(VmHWM) against a fresh process running the layer's forward and backward "
            f"once.\n\nCommand: `{outcome.get('command', 'python bench/targets.py')}`\n\n")
    (out_dir / "scale.md").write_text(head + scale.table(rows) + "\n", encoding="utf-8")
    (out_dir / "scale.json").write_text(
        json.dumps(render.to_jsonable({"date": outcome["date"], "rows": rows}), indent=2) + "\n",
        encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """``python bench/targets.py --out DIR [--quick] [--only T1,T3]``; 0 when measured."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == [_WORKER_FLAG]:
        worker(args_list[1], float(args_list[2]))
        return 0
    parser = argparse.ArgumentParser(prog="bench/targets.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="directory for targets.md/.json")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    parser.add_argument("--only", help="comma-separated target ids, e.g. T1,T5")
    parser.add_argument("--default-blas", action="store_true",
                        help="leave BLAS' thread count alone (default here: one thread)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc thresholds alone (see bench/allocator.py)")
    args = parser.parse_args(args_list)
    memory = "process defaults" if args.default_malloc else allocator.pin()
    if not args.default_malloc:  # T6's workers inherit the same thresholds
        os.environ.update(MALLOC_MMAP_THRESHOLD_=str(allocator.MMAP_THRESHOLD),
                          MALLOC_TRIM_THRESHOLD_=str(allocator.TRIM_THRESHOLD))
    probe = blas_probe()
    outcome = run(QUICK if args.quick else FULL,
                  only=args.only.split(",") if args.only else None)
    outcome.update(allocator=memory, blas_probe=probe, command="python bench/targets.py "
                   + " ".join(args_list))
    write(outcome, args.out)
    print(table(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
