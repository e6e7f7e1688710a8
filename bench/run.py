"""Benchmarks: speed, sensitivity, accuracy and scale of gradcheck against the usual checkers.

Usage::

    python bench/run.py --out reports [--quick]
    python bench/run.py --out reports --profile-only   # cProfile of gradcheck, nothing else

One run measures everything and writes ``DIR/bench.md`` (GitHub tables and the targets, met or
not, with the numbers) and ``DIR/bench.json`` (the same numbers and the machine). Progress goes to
stderr. The layer is the reference BatchNorm in training mode, float64, ``x = 5*randn + 12``.

1. **Speed**: wall time (median of up to 5 runs, 1 for long ones), forward evaluations and calls
   of the layer's forward for a full verdict (dx, dgamma, dbeta) for each method (complex,
   central, richardson; and auto, whose complex-step probe runs first on every input, for the
   fast modes) and mode (full; the fast modes sampled and directional) of ``check_layer``, the
   course checker and ``torch.autograd.gradcheck`` (default and ``fast_mode``) over the same
   NumPy forward and backward.
2. **Sensitivity**: the smallest δ (decades 1e-2 .. 1e-12) for which each checker flags
   ``dx * (1 + δ)`` and ``dx[k] + δ*max|dx|``; then false positives on correct code, several seeds.
   gradcheck runs with ``method="auto"`` in modes full, sampled and directional.
3. **Accuracy** of each numerical method against the exact gradient (the reference backward run
   in ``np.longdouble``, x87 80-bit on x86-64, eps 1.1e-19).
4. **Scale**: the growth exponent of time and evaluations with the number of elements.

Memory. glibc's malloc thresholds move with the history of the process, which changed the cost
of one forward here by 5x between runs; the run pins them first (``bench/allocator.py``;
``--default-malloc`` to measure without) and reports what pinning changes in a fresh process.

Budgets. Before each measurement the time is estimated (forward evaluations predicted from the
last measured size, times the measured cost of one forward at this size, times the overhead
factor measured at the last size; torch's default mode grows with the Jacobian, ``n_in * n_out``).
Anything estimated above ``--max-seconds`` (60) is skipped and reported with its estimate, except
the measurement a target is defined against (torch's default mode at 256x64), which runs once.
A whole-run budget skips what would not fit.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.metadata
import io
import math
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import allocator, baselines, checkers, render
from bench.checkers import Checker, Outcome
from gradcheck import __version__, batchnorm_backward, batchnorm_forward, numeric

Shape = tuple[int, ...]
METHODS = ("complex", "central", "richardson")
DELTAS = tuple(10.0 ** -k for k in range(2, 13))
ABOVE_RANGE = (1e-1, 1.0, 1e1, 1e2)
FAST_MODES = checkers.FAST_MODES  # gradcheck's modes with a stated miss bound
FAST_METHODS = ("auto", *METHODS)  # the fast modes are also timed with auto (probe included)
SENSITIVITY_IDS = ("gc-full", "gc-sampled", "gc-directional", "course", "torch-default",
                   "torch-fast")
FAST_IDS = ("gc-sampled", "gc-directional", "torch-fast")


@dataclass(frozen=True)
class Config:
    """What one run measures, and its time limits."""

    name: str
    speed_shapes: tuple[Shape, ...]
    scale_shapes: tuple[Shape, ...]  # extra sizes for the growth fit (gradcheck complex only)
    sensitivity: tuple[tuple[Shape, tuple[str, ...]], ...]
    deltas: tuple[float, ...]
    seeds: int  # false-positive runs per checker
    accuracy_shapes: tuple[Shape, ...]
    use_torch: bool = True
    max_seconds: float = 60.0  # skip a measurement estimated above this
    budget_seconds: float = 560.0  # skip what would not fit in the whole run
    reference_shape: Shape | None = (256, 64)  # torch default runs here even above max_seconds
    reference_max_seconds: float = 240.0
    max_runs: int = 5
    pin_allocator: bool = True  # see bench/allocator.py; the smoke test leaves its process alone


FULL = Config(
    name="full",
    speed_shapes=((4, 5), (64, 32), (256, 64), (1024, 256),
                  (8, 16, 32, 32), (16, 32, 32, 32), (32, 32, 32, 32)),
    scale_shapes=((32, 32), (128, 32), (128, 64)),
    sensitivity=(((64, 32), SENSITIVITY_IDS), ((256, 64), FAST_IDS)),
    deltas=DELTAS,
    seeds=5,
    accuracy_shapes=((4, 5), (64, 32)),
)

QUICK = Config(
    name="quick",
    speed_shapes=((4, 5), (64, 32), (256, 64), (8, 16, 32, 32)),
    scale_shapes=((32, 32), (128, 32)),
    sensitivity=(((64, 32), SENSITIVITY_IDS), ((256, 64), FAST_IDS)),
    deltas=DELTAS,
    seeds=2,
    accuracy_shapes=((4, 5),),
    max_seconds=10.0,
    budget_seconds=150.0,
    reference_shape=None,
    max_runs=3,
)

TARGET_FULL_SHAPE: Shape = (256, 64)
TARGET_BIG_SHAPE: Shape = (32, 32, 32, 32)


# ------------------------------------------------------------------------------- bookkeeping


class Clock:
    """Elapsed time, the remaining budget, and progress lines on stderr."""

    def __init__(self, budget: float, stream: Any = None) -> None:
        self.start = time.perf_counter()
        self.budget = budget
        self.stream = stream

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        return self.budget - self.elapsed()

    def log(self, message: str) -> None:
        print(f"[bench {self.elapsed():6.1f}s] {message}", file=self.stream or sys.stderr,
              flush=True)


def _elements(shape: Shape) -> int:
    return math.prod(shape)


def _inputs(shape: Shape) -> int:
    """Elements of x, gamma and beta."""
    return _elements(shape) + 2 * shape[1]


def _shape_text(shape: Shape) -> str:
    return "x".join(map(str, shape))


# -------------------------------------------------------------------------------- cost model


class CostModel:
    """Predicts a measurement's forward evaluations and seconds before it runs."""

    # forward evaluations per unit (see _units), before anything was measured
    RATES: ClassVar[dict[str, float]] = {
        "complex": 1.0, "central": 4.3, "richardson": 21.0, "auto": 1.1,
    }

    def __init__(self) -> None:
        self.forward_cost: dict[tuple[Shape, bool], float] = {}
        self.last: dict[str, tuple[Shape, float, int]] = {}  # key -> (shape, seconds, nfev)

    def forward_seconds(self, shape: Shape, complex_input: bool) -> float:
        """Median time of one reference forward at ``shape`` (validation included)."""
        key = (shape, complex_input)
        if key not in self.forward_cost:
            x = checkers.make_input(shape, 0).astype(complex if complex_input else float)
            reps = max(3, min(50, int(2e5 / x.size)))
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                batchnorm_forward(x)
                times.append(time.perf_counter() - t0)
            self.forward_cost[key] = statistics.median(times)
        return self.forward_cost[key]

    @staticmethod
    def _key(checker: Checker) -> str:
        return f"{checker.key}/{checker.method}/{checker.mode}"

    @staticmethod
    def _units(checker: Checker, shape: Shape) -> float:
        n, c = _elements(shape), shape[1]
        if checker.key == "gradcheck" and checker.mode == "sampled":
            return min(n, max(shape) + 2 ** len(shape) + 32) + 2 * c + 24
        if checker.key == "gradcheck" and checker.mode == "directional":
            return 48.0  # 8 directions x 3 gradients x 2 steps, whatever the size
        if checker.key == "torch":
            return 8.0 if checker.mode == "fast_mode" else float(_inputs(shape)) * n
        return float(_inputs(shape))

    def _complex(self, checker: Checker) -> bool:
        return checker.key == "gradcheck" and checker.method in ("complex", "auto")

    def predict(self, checker: Checker, shape: Shape) -> tuple[float, float]:
        """``(forward evaluations, seconds)`` expected for one run."""
        key, units = self._key(checker), self._units(checker, shape)
        if checker.key == "torch":
            return self._predict_torch(checker, shape, units)
        rate = 2.0 if checker.key == "course" else self.RATES[checker.method]
        overhead = 2.0
        if key in self.last:
            prev, seconds, nfev = self.last[key]
            rate = nfev / self._units(checker, prev)
            overhead = seconds / (nfev * self.forward_seconds(prev, self._complex(checker)))
        nfev_pred = rate * units
        return nfev_pred, nfev_pred * self.forward_seconds(shape, self._complex(checker)) * overhead

    def _predict_torch(self, checker: Checker, shape: Shape, units: float) -> tuple[float, float]:
        key, fast = self._key(checker), checker.mode == "fast_mode"
        nfev = 8.0 if fast else 2.0 * _inputs(shape)
        if key in self.last:
            prev, seconds, _ = self.last[key]
            if fast:
                return nfev, seconds * max(1.0, _elements(shape) / _elements(prev))
            if _elements(prev) >= 1000:  # below that, per-call overhead hides the n^2 growth
                return nfev, seconds * units / self._units(checker, prev)
        if fast:
            return nfev, 0.01 + 2e-8 * _elements(shape)
        # the Jacobians (allocation, comparison: ~5e-7 s per entry here) and the calls
        return nfev, 5e-7 * units + 3e-4 * nfev

    def learn(self, checker: Checker, shape: Shape, seconds: float, nfev: int) -> None:
        self.last[self._key(checker)] = (shape, seconds, nfev)


# ---------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Plan:
    """Whether to run a measurement, how often, and why not."""

    run: bool
    runs: int
    estimate: float
    reason: str = ""


class Bench:
    """One benchmark run: the configuration, the clock, the cost model and the torch module."""

    def __init__(self, config: Config, stream: Any = None) -> None:
        self.config = config
        self.clock = Clock(config.budget_seconds, stream)
        self.costs = CostModel()
        torch, why = baselines.torch_status() if config.use_torch else (None, "disabled")
        self.torch, self.torch_reason = torch, why
        self.skipped: list[str] = []

    def checker(self, ident: str) -> Checker | None:
        """A checker by sensitivity id; ``None`` for torch when it is unavailable."""
        if ident.startswith("torch") and self.torch is None:
            return None
        factories: dict[str, Callable[[], Checker]] = {
            "gc-full": lambda: checkers.gradcheck_checker("auto", "full"),
            "gc-sampled": lambda: checkers.gradcheck_checker("auto", "sampled"),
            "gc-directional": lambda: checkers.gradcheck_checker("auto", "directional"),
            "course": checkers.course_checker,
            "torch-default": lambda: checkers.torch_checker(self.torch, fast_mode=False),
            "torch-fast": lambda: checkers.torch_checker(self.torch, fast_mode=True),
        }
        return factories[ident]()

    def speed_checkers(self) -> list[Checker | str]:
        """Every checker of the speed table (a string stands for an unavailable one)."""
        ours: list[Checker | str] = [checkers.gradcheck_checker(m, "full") for m in METHODS]
        ours += [checkers.gradcheck_checker(m, mode) for mode in FAST_MODES for m in FAST_METHODS]
        ours.append(checkers.course_checker())
        for fast in (False, True):
            mode = "fast_mode" if fast else "default"
            ours.append(checkers.torch_checker(self.torch, fast_mode=fast) if self.torch
                        else f"torch {mode}")
        return ours

    def plan(self, checker: Checker, shape: Shape) -> Plan:
        _, estimate = self.costs.predict(checker, shape)
        limit = self.config.max_seconds
        is_reference = (checker.key == "torch" and checker.mode == "default"
                        and shape == self.config.reference_shape)
        if is_reference:
            limit = self.config.reference_max_seconds
        if estimate > limit:
            return Plan(False, 0, estimate, f"estimated {estimate:.3g} s > {limit:g} s limit")
        if estimate > self.clock.remaining():
            return Plan(False, 0, estimate, f"estimated {estimate:.3g} s > the "
                        f"{max(0.0, self.clock.remaining()):.0f} s left of the run budget")
        runs = 1 if is_reference else (5 if estimate < 0.5 else 3 if estimate < 2.0 else 1)
        return Plan(True, min(runs, self.config.max_runs), estimate)

    def measure(self, checker: Checker, shape: Shape, section: str) -> dict[str, Any]:
        """Time ``checker`` on the correct backward at ``shape``; a skip record if too long."""
        record = _speed_record(checker, shape, section)
        plan = self.plan(checker, shape)
        record["estimate_s"] = plan.estimate
        if not plan.run:
            record.update(status="skipped", reason=plan.reason)
            self.skipped.append(f"{checker.label} at {_shape_text(shape)}: {plan.reason}")
            self.clock.log(f"{section} {_shape_text(shape)} {checker.label}: skipped "
                           f"({plan.reason})")
            return record
        x = checkers.make_input(shape, 0)
        times, outcome = _timed(checker, x, plan.runs)
        median = statistics.median(times)
        self.costs.learn(checker, shape, median, outcome.nfev)
        record.update(_outcome_fields(outcome), status="measured", runs=plan.runs,
                      times_s=times, median_s=median)
        self.clock.log(f"{section} {_shape_text(shape)} {checker.label}: {median:.3g} s, "
                       f"{outcome.nfev} evaluations, {'pass' if outcome.passed else 'FLAGGED'}")
        return record


def _timed(checker: Checker, x: np.ndarray, runs: int) -> tuple[list[float], Outcome]:
    times, outcome = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        outcome = checker.run(x, checkers.reference, 0)
        times.append(time.perf_counter() - t0)
    assert outcome is not None  # runs >= 1
    return times, outcome


def _speed_record(checker: Checker, shape: Shape, section: str) -> dict[str, Any]:
    return {
        "section": section, "shape": list(shape), "elements": _elements(shape),
        "checker": checker.key, "label": checker.label, "method": checker.method,
        "mode": checker.mode, "status": "", "reason": "", "estimate_s": None, "runs": 0,
        "times_s": [], "median_s": None, "nfev": None, "forward_calls": None,
        "backward_calls": None, "judged": None,
        "coverage": "", "passed": None, "detail": {},
    }


def _outcome_fields(outcome: Outcome) -> dict[str, Any]:
    return {"nfev": outcome.nfev, "forward_calls": outcome.detail.get("forward_calls"),
            "backward_calls": outcome.backward_calls,
            "judged": outcome.judged, "coverage": outcome.coverage, "passed": outcome.passed,
            "detail": outcome.detail}


def _unavailable(label: str, shape: Shape, reason: str, section: str) -> dict[str, Any]:
    """A skip record for a checker that cannot run here (torch not importable)."""
    mode = label.rsplit(" ", 1)[-1]
    record = _speed_record(checkers.Checker("torch", "central eps=1e-6", mode, _never), shape,
                           section)
    record.update(status="skipped", reason=reason)
    return record


def _never(x: np.ndarray, backward: Any, seed: int) -> Outcome:
    raise RuntimeError("an unavailable checker was run")


# ------------------------------------------------------------------------------------ speed


def _warm_up(bench: Bench) -> None:
    """First calls pay for imports and lazy initialisation (torch: ~0.5 s); not measured."""
    x = checkers.make_input((4, 5), 0)
    for item in bench.speed_checkers():
        if isinstance(item, Checker):
            item.run(x, checkers.reference, 0)


def speed(bench: Bench) -> list[dict[str, Any]]:
    """Section 1: every checker at every speed shape (ascending sizes)."""
    _warm_up(bench)
    records = []
    for shape in sorted(bench.config.speed_shapes, key=_elements):
        for item in bench.speed_checkers():
            if isinstance(item, str):
                records.append(_unavailable(item, shape, bench.torch_reason, "speed"))
            else:
                records.append(bench.measure(item, shape, "speed"))
    return records


def scale_points(bench: Bench) -> list[dict[str, Any]]:
    """Extra sizes for the growth fit: gradcheck's complex step, full, sampled and directional."""
    records = []
    for shape in sorted(bench.config.scale_shapes, key=_elements):
        for mode in ("full", *FAST_MODES):
            records.append(bench.measure(checkers.gradcheck_checker("complex", mode), shape,
                                         "scale"))
    return records


# ------------------------------------------------------------------------------ sensitivity


def _sweep(checker: Checker, x: np.ndarray, make_bug: Callable[[float], Any],
           deltas: Sequence[float]) -> tuple[list[bool | None], list[str]]:
    """Flagged per δ, largest first; stops after two passes in a row (``None``: not run).

    Also the numerical methods gradcheck reported using (``method="auto"`` chooses one).
    """
    flags: list[bool | None] = []
    used: set[str] = set()
    misses = 0
    for delta in deltas:
        if misses >= 2:
            flags.append(None)
            continue
        outcome = checker.run(x, make_bug(delta), 0)
        flagged = not outcome.passed
        used.add(outcome.detail.get("method_used", ""))
        misses = 0 if flagged else misses + 1
        flags.append(flagged)
    return flags, sorted(m for m in used if m)


def _above(checker: Checker, x: np.ndarray, make_bug: Callable[[float], Any]) -> float | None:
    """For a checker blind at the top of the range: the first δ in 0.1, 1, 10, 100 it flags."""
    for delta in ABOVE_RANGE:
        if not checker.run(x, make_bug(delta), 0).passed:
            return delta
    return None


def smallest_flagged(deltas: Sequence[float], flags: Sequence[bool | None]) -> float | None:
    """The smallest δ such that it and every larger δ were flagged; ``None`` if the first wasn't."""
    smallest = None
    for delta, flagged in zip(deltas, flags, strict=True):
        if not flagged:
            break
        smallest = delta
    return smallest


def _sensitivity_one(bench: Bench, checker: Checker, shape: Shape,
                     flags_correct: bool) -> list[dict[str, Any]]:
    x, index = checkers.make_input(shape, 0), checkers.bump_index(shape)
    deltas = bench.config.deltas
    bugs = {"scaled": checkers.scaled, "element": lambda d: checkers.bumped(d, index)}
    rows = []
    for kind, make_bug in bugs.items():
        t0 = time.perf_counter()
        flags, used = _sweep(checker, x, make_bug, deltas)
        smallest = smallest_flagged(deltas, flags)
        above = _above(checker, x, make_bug) if smallest is None and not flags_correct else None
        rows.append({
            "shape": list(shape), "label": checker.label, "kind": kind,
            "index": list(index) if kind == "element" else None,
            "deltas": list(deltas), "flags": flags, "flags_correct": flags_correct,
            "smallest_flagged": None if flags_correct else smallest,
            "first_flagged_above": above, "methods_used": used,
            "seconds": time.perf_counter() - t0,
        })
        if flags_correct:
            found = "meaningless (it flags the correct backward)"
        else:
            found = f"{smallest:g}" if smallest else f"none; first flagged above: {above}"
        bench.clock.log(f"sensitivity {_shape_text(shape)} {checker.label} {kind}: smallest "
                        f"flagged {found}")
    return rows


def _false_positives(bench: Bench, checker: Checker, shape: Shape) -> dict[str, Any]:
    """The correct backward, seeds 0, 1, ...: ``x`` from seed s, the checker's own seed s."""
    flags, times, details = [], [], []
    for seed in range(bench.config.seeds):
        x = checkers.make_input(shape, seed)
        t0 = time.perf_counter()
        outcome = checker.run(x, checkers.reference, seed)
        times.append(time.perf_counter() - t0)
        flags.append(not outcome.passed)
        details.append(outcome.detail)
    bench.clock.log(f"false positives {_shape_text(shape)} {checker.label}: "
                    f"{sum(flags)}/{bench.config.seeds}")
    return {"shape": list(shape), "label": checker.label, "runs": bench.config.seeds,
            "false_positives": sum(flags), "flags": flags, "median_s": statistics.median(times),
            "details": details}


def fast_mode_tolerance(shape: Shape, draws: int = 5) -> dict[str, Any]:
    """Why torch's fast mode misses bugs in BatchNorm's dx: its tolerance against its signal.

    torch draws ``u`` and ``v`` uniform on [0, 1) and normalised (non-negative), compares
    ``vᵀJu`` with ``atol·sum(u)·sum(v) + rtol·|vᵀJu|``. BatchNorm's dx has zero mean per channel,
    so the (large) constant part of ``v`` contributes nothing and ``|vᵀJu|`` is small, while the
    scaled atol grows like ``sqrt(n_in·n_out)``. Median over ``draws`` draws of the same kind.
    """
    x = checkers.make_input(shape, 0)
    _, cache = batchnorm_forward(x)
    rng = np.random.default_rng(0)
    signal, atol = [], []
    for _ in range(draws):
        u, v = rng.random(x.size), rng.random(x.size)
        u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
        dx = batchnorm_backward(v.reshape(shape), cache)["x"]
        signal.append(abs(float(dx.reshape(-1) @ u)))
        atol.append(1e-5 * float(u.sum() * v.sum()))
    ratio = statistics.median(a / s for a, s in zip(atol, signal, strict=True))
    return {"shape": list(shape), "vJu": statistics.median(signal),
            "atol_scaled": statistics.median(atol), "ratio": ratio}


def sensitivity(bench: Bench) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Section 2: false alarms on correct code, then the smallest perturbation flagged.

    The sweeps use seed 0, the first false-positive run; a checker that flags the correct
    backward there has no meaningful smallest δ.
    """
    sweeps, alarms = [], []
    for shape, ids in bench.config.sensitivity:
        for ident in ids:
            checker = bench.checker(ident)
            if checker is None:
                bench.skipped.append(f"{ident} sensitivity at {_shape_text(shape)}: "
                                     f"{bench.torch_reason}")
                continue
            _, estimate = bench.costs.predict(checker, shape)
            runs = 2 * len(bench.config.deltas) + bench.config.seeds
            if estimate * runs > min(4 * bench.config.max_seconds, bench.clock.remaining()):
                bench.skipped.append(f"{checker.label} sensitivity at {_shape_text(shape)}: "
                                     f"estimated up to {estimate * runs:.3g} s")
                continue
            alarms.append(_false_positives(bench, checker, shape))
            sweeps.extend(_sensitivity_one(bench, checker, shape, alarms[-1]["flags"][0]))
    return sweeps, alarms


# --------------------------------------------------------------------------------- accuracy


def _objective(arrays: dict[str, np.ndarray], name: str, g: np.ndarray) -> Any:
    def f(a: np.ndarray) -> Any:
        args = {**arrays, name: a}
        return np.sum(g * batchnorm_forward(args["x"], args["gamma"], args["beta"])[0])
    return f


def _exact(arrays: dict[str, np.ndarray], g: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
    """Gradients in np.longdouble, and how far the two backward forms differ there (relative)."""
    wide = {k: v.astype(np.longdouble) for k, v in arrays.items()}
    _, cache = batchnorm_forward(wide["x"], wide["gamma"], wide["beta"])
    compact = batchnorm_backward(g.astype(np.longdouble), cache, form="compact")
    staged = batchnorm_backward(g.astype(np.longdouble), cache, form="staged")
    margin = max(float(np.max(np.abs(compact[k] - staged[k])) / np.max(np.abs(compact[k])))
                 for k in compact)
    return dict(compact), margin


def _errors(estimate: np.ndarray, exact: np.ndarray, bound: np.ndarray | None) -> dict[str, Any]:
    diff = np.abs(estimate.astype(np.longdouble) - exact)
    nonzero = exact != 0
    covered = None if bound is None else float(np.mean(diff <= bound))
    return {
        "rel_to_max": float(np.max(diff) / np.max(np.abs(exact))),
        "rel_elementwise": float(np.max(diff[nonzero] / np.abs(exact[nonzero]))),
        "bound_covers": covered,
    }


def _accuracy_shape(shape: Shape) -> tuple[list[dict[str, Any]], float]:
    x, g = checkers.make_input(shape, 0), checkers.upstream(shape, 0)
    arrays = {"x": x, "gamma": np.ones(shape[1]), "beta": np.zeros(shape[1])}
    exact, margin = _exact(arrays, g)
    out, cache = batchnorm_forward(x)
    noise = float(np.finfo(np.float64).eps * np.sum(np.abs(g * out)))
    analytic = batchnorm_backward(g, cache)
    course, _ = baselines.course_gradients(x, arrays["gamma"], arrays["beta"], g)
    rows = []
    for name in arrays:
        base = {"shape": list(shape), "gradient": name}
        for method in METHODS:
            est = numeric.numerical_gradient(_objective(arrays, name, g), arrays[name],
                                             method=method, noise=noise)
            rows.append({**base, "method": method, "nfev": est.nfev,
                         **_errors(est.value, exact[name], est.error)})
        rows.append({**base, "method": "course central h=1e-5", "nfev": 2 * arrays[name].size,
                     **_errors(course[name], exact[name], None)})
        rows.append({**base, "method": "analytic backward (float64)", "nfev": 0,
                     **_errors(analytic[name], exact[name], None)})
    return rows, margin


def accuracy(bench: Bench) -> dict[str, Any]:
    """Section 3: each numerical method against the exact gradient."""
    rows, margins = [], {}
    for shape in bench.config.accuracy_shapes:
        shape_rows, margin = _accuracy_shape(shape)
        rows.extend(shape_rows)
        margins[_shape_text(shape)] = margin
        bench.clock.log(f"accuracy {_shape_text(shape)}: done")
    wide = float(np.finfo(np.longdouble).eps) < 1e-17  # x87 80-bit or quad; not everywhere
    return {"rows": rows, "exact_margin": margins, "exact_is_wide": wide,
            "exact": "reference backward (compact form) in np.longdouble "
                     f"(eps {float(np.finfo(np.longdouble).eps):.2g})"}


# ------------------------------------------------------------------------------------ scale


def growth(records: Sequence[dict[str, Any]], min_elements: int = 1000) -> list[dict[str, Any]]:
    """Slope of log(time) and log(evaluations) against log(elements), per checker and layout.

    2-D ``(N, D)`` and 4-D ``(N, C, H, W)`` inputs are fitted apart: gradcheck's sample covers
    every index of every axis, so its size follows the longest axis, not the element count.
    """
    fits = []
    groups = dict.fromkeys((r["label"], len(r["shape"])) for r in records)
    for label, ndim in groups:
        points = sorted((r["elements"], r["median_s"], r["nfev"]) for r in records
                        if r["label"] == label and len(r["shape"]) == ndim
                        and r["status"] == "measured" and r["elements"] >= min_elements)
        if len({p[0] for p in points}) < 2:
            continue
        n, t, e = (np.log([p[i] for p in points]) for i in range(3))
        fits.append({"label": label, "layout": f"{ndim}-D", "points": len(points),
                     "min_elements": points[0][0], "max_elements": points[-1][0],
                     "time_exponent": float(np.polyfit(n, t, 1)[0]),
                     "nfev_exponent": float(np.polyfit(n, e, 1)[0])})
    return fits


# ---------------------------------------------------------------------------------- targets


def _find(records: Sequence[dict[str, Any]], shape: Shape, **match: str) -> list[dict[str, Any]]:
    return [r for r in records if tuple(r["shape"]) == shape and r["status"] == "measured"
            and all(r[k] == v for k, v in match.items())]


def _fastest(records: Sequence[dict[str, Any]], shape: Shape,
             modes: Sequence[str]) -> dict[str, Any] | None:
    ours = [r for r in _find(records, shape, checker="gradcheck") if r["mode"] in modes
            and r["passed"]]
    return min(ours, key=lambda r: r["median_s"]) if ours else None


def _sens(sweeps: Sequence[dict[str, Any]], shape: Shape, label: str, kind: str) -> Any:
    rows = [s for s in sweeps if tuple(s["shape"]) == shape and s["label"] == label
            and s["kind"] == kind]
    return rows[0] if rows else None


# The fast-mode targets are judged for each of these, so that the probe's cost stays visible:
# auto is what a user gets by default, complex skips the probe.
TARGET_METHODS = ("auto", "complex")


def _fast_candidates(records: Sequence[dict[str, Any]], shape: Shape) -> list[dict[str, Any]]:
    """The measured, passing gradcheck fast-mode records at ``shape`` (auto and complex), fastest
    first, each with the calls the probe added (auto's calls minus complex's, same mode)."""
    rows = []
    for mode in FAST_MODES:
        for method in TARGET_METHODS:
            found = [r for r in _find(records, shape, checker="gradcheck", mode=mode,
                                      method=method) if r["passed"]]
            if found:
                rows.append(found[0])
    out = []
    for r in sorted(rows, key=lambda r: r["median_s"]):
        twin = next((c for c in rows if c["mode"] == r["mode"] and c["method"] == "complex"),
                    None)
        probe = None
        if r["method"] == "auto" and twin is not None and r["forward_calls"] is not None:
            probe = {"forward_calls": r["forward_calls"] - twin["forward_calls"],
                     "seconds": r["median_s"] - twin["median_s"]}
        out.append({"mode": r["mode"], "method": r["method"], "label": f"{r['method']}/"
                    f"{r['mode']}", "seconds": r["median_s"], "nfev": r["nfev"],
                    "forward_calls": r["forward_calls"], "coverage": r["coverage"],
                    "times_s": r["times_s"],
                    "miss_norm": r["detail"].get("miss_norm", {}), "probe": probe,
                    "method_used": r["detail"].get("method_used")})
    return out


def target_full(records: Sequence[dict[str, Any]], costs: CostModel) -> dict[str, Any]:
    """T1: a full verdict at 256x64 at least 100x faster than torch's default mode."""
    shape = TARGET_FULL_SHAPE
    ours, torch = _fastest(records, shape, ("full",)), _find(records, shape, label="torch default")
    if ours is None or not torch:
        return {"id": "T1", "met": None, "text": "not measured in this configuration"}
    ratio = torch[0]["median_s"] / ours["median_s"]
    floor = ours["nfev"] * costs.forward_seconds(shape, ours["method"] == "complex")
    fast = _fastest(records, shape, FAST_MODES)
    return {"id": "T1", "met": ratio >= 100, "ratio": ratio, "ours": ours["median_s"],
            "torch": torch[0]["median_s"], "method": ours["method"], "nfev": ours["nfev"],
            "forward_floor_s": floor, "needed_s": torch[0]["median_s"] / 100,
            "fast_s": fast["median_s"] if fast else None,
            "fast_label": f"{fast['method']}/{fast['mode']}" if fast else None}


def _fastest_label(records: Sequence[dict[str, Any]], shape: Shape) -> dict[str, Any] | None:
    """The fastest passing fast-mode record over every method (central, richardson too)."""
    r = _fastest(records, shape, FAST_MODES)
    return None if r is None else {"label": f"{r['method']}/{r['mode']}", "method": r["method"],
                                   "seconds": r["median_s"]}


def _sensitivity_ratios(sweeps: Sequence[dict[str, Any]], shape: Shape,
                        mode: str) -> dict[str, Any]:
    """gradcheck (auto, ``mode``) against torch fast_mode: smallest flagged δ, and the ratio."""
    ratios: dict[str, Any] = {}
    for kind in ("scaled", "element"):
        a = _sens(sweeps, shape, f"gradcheck auto/{mode}", kind)
        b = _sens(sweeps, shape, "torch fast_mode", kind)
        if a is None or b is None or a["smallest_flagged"] is None:
            ratios[kind] = None
            continue
        theirs = b["smallest_flagged"] or b["first_flagged_above"]
        ratios[kind] = {"ours": a["smallest_flagged"], "torch": theirs,
                        "ratio": (theirs or ABOVE_RANGE[-1]) / a["smallest_flagged"],
                        "lower_bound": theirs is None, "methods_used": a["methods_used"]}
    return ratios


def target_fast(records: Sequence[dict[str, Any]], sweeps: Sequence[dict[str, Any]],
                costs: CostModel) -> dict[str, Any]:
    """T2: a fast mode within 3x of torch fast_mode's time, flagging 1000x smaller errors.

    Judged for each fast mode (sampled, directional) with method auto (probe included) and
    complex. The sensitivity sweeps run with auto; they stand for complex too when auto chose
    the complex step in every run of the sweep (same seed, same directions, same estimates).
    """
    shape = TARGET_FULL_SHAPE
    candidates = _fast_candidates(records, shape)
    torch = _find(records, shape, label="torch fast_mode")
    if not candidates or not torch:
        return {"id": "T2", "met": None, "text": "not measured in this configuration"}
    sens = {mode: _sensitivity_ratios(sweeps, shape, mode) for mode in FAST_MODES}
    for c in candidates:
        ratios = sens[c["mode"]]
        applies = c["method"] == "auto" or all(
            v is not None and v["methods_used"] == [c["method"]] for v in ratios.values())
        c["time_ratio"] = c["seconds"] / torch[0]["median_s"]
        c["time_ok"] = c["time_ratio"] <= 3
        c["sensitivity_ok"] = applies and all(v is not None and v["ratio"] >= 1000
                                              for v in ratios.values())
        c["met"] = bool(c["time_ok"] and c["sensitivity_ok"])
    return {"id": "T2", "met": any(c["met"] for c in candidates), "torch": torch[0]["median_s"],
            "torch_nfev": torch[0]["nfev"], "torch_times_s": torch[0]["times_s"],
            "candidates": candidates, "sensitivity": sens,
            "met_by": [c["label"] for c in candidates if c["met"]],
            "fastest_any": _fastest_label(records, shape),
            "forward_s": costs.forward_seconds(shape, True),
            "forward_real_s": costs.forward_seconds(shape, False)}


def target_big(records: Sequence[dict[str, Any]], costs: CostModel) -> dict[str, Any]:
    """T3: a 1M-element spatial BatchNorm verified in at most 2 s, with mode and miss bound.

    Judged for each fast mode with method auto (probe included) and complex.
    """
    shape = TARGET_BIG_SHAPE
    candidates = _fast_candidates(records, shape)
    if not candidates:
        return {"id": "T3", "met": None, "text": "not measured in this configuration"}
    for c in candidates:
        c["met"] = c["seconds"] <= 2.0
    return {"id": "T3", "met": any(c["met"] for c in candidates), "candidates": candidates,
            "met_by": [c["label"] for c in candidates if c["met"]],
            "fastest_any": _fastest_label(records, shape),
            "forward_s": costs.forward_seconds(shape, True),
            "forward_real_s": costs.forward_seconds(shape, False),
            "grad_norms": _grad_norms(shape)}


def _grad_norms(shape: Shape) -> dict[str, float]:
    """2-norms of dx, dgamma, dbeta for a standard normal upstream gradient (for scale)."""
    x = checkers.make_input(shape, 0)
    _, cache = batchnorm_forward(x)
    grads = batchnorm_backward(checkers.upstream(shape, 0), cache)
    return {k: float(np.linalg.norm(v)) for k, v in grads.items()}


# ---------------------------------------------------------------------------------- profile


def profile(out_dir: Path, stream: Any = None) -> dict[str, str]:
    """cProfile of gradcheck (complex step) at 256x64 full and 32x32x32x32 sampled/directional.

    Writes ``out_dir/bench_profile.txt`` (top functions by own time and by cumulative time).
    """
    clock = Clock(math.inf, stream)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = {"full_" + _shape_text(TARGET_FULL_SHAPE): ("complex", "full", TARGET_FULL_SHAPE),
            "sampled_" + _shape_text(TARGET_BIG_SHAPE): ("complex", "sampled", TARGET_BIG_SHAPE),
            "directional_" + _shape_text(TARGET_BIG_SHAPE): ("complex", "directional",
                                                             TARGET_BIG_SHAPE)}
    texts = {}
    for name, (method, mode, shape) in runs.items():
        checker = checkers.gradcheck_checker(method, mode)
        prof = cProfile.Profile()
        prof.runcall(checker.run, checkers.make_input(shape, 0), checkers.reference, 0)
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.sort_stats("tottime").print_stats(15)
        stats.sort_stats("cumulative").print_stats(20)
        texts[name] = buf.getvalue()
        clock.log(f"profile {name}: done")
    (out_dir / "bench_profile.txt").write_text(
        "\n".join(f"==== {k} ====\n{v}" for k, v in texts.items()), encoding="utf-8")
    return texts


# ------------------------------------------------------------------------------------- main


def machine(torch: Any) -> dict[str, Any]:
    """What the numbers were measured on (``torch``: the module used, or ``None``)."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(), "platform": platform.platform(),
        "python": platform.python_version(), "numpy": np.__version__,
        "gradcheck": __version__, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_end": _load(),
    }
    info["scipy"] = scipy.__version__
    info["torch"] = torch.__version__ if torch else _installed("torch")
    info["torch_threads"] = torch.get_num_threads() if torch else None
    return info


def _load() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews the timings."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _installed(package: str) -> str | None:
    """The installed version, without importing the package."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _allocator(pin: bool) -> dict[str, Any]:
    """Pin malloc (and measure what that changes) or leave it alone."""
    if not pin:
        return {"setting": "process defaults (not pinned)"}
    return {"setting": allocator.pin(), **allocator.forward_cost()}


def run(config: Config, out_dir: Path, *, stream: Any = None,
        argv: Sequence[str] = ()) -> dict[str, Any]:
    """Measure everything ``config`` asks for; write ``bench.md`` and ``bench.json``."""
    memory = _allocator(config.pin_allocator)
    bench = Bench(config, stream)
    load = _load()
    bench.clock.log(f"config {config.name}; torch: {'yes' if bench.torch else bench.torch_reason}"
                    f"; load average {load}")
    out_dir.mkdir(parents=True, exist_ok=True)
    acc = accuracy(bench)
    sweeps, alarms = sensitivity(bench)
    records = speed(bench) + scale_points(bench)
    result = {
        "schema_version": 1, "command": "python bench/run.py " + " ".join(argv),
        "config": asdict(config), "machine": machine(bench.torch),
        "speed": records, "scale": growth(records), "sensitivity": sweeps,
        "false_positives": alarms, "accuracy": acc,
        "torch_fast_tolerance": [fast_mode_tolerance(shape) for shape, ids
                                 in config.sensitivity if "torch-fast" in ids and bench.torch],
        "targets": [target_full(records, bench.costs), target_fast(records, sweeps, bench.costs),
                    target_big(records, bench.costs)],
        "forward_seconds": [{"shape": list(s), "complex": c, "seconds": t}
                            for (s, c), t in sorted(bench.costs.forward_cost.items())],
        "skipped": bench.skipped, "torch_status": bench.torch_reason or "available",
        "allocator": memory,
    }
    result["total_seconds"] = bench.clock.elapsed()
    result["machine"]["load_average_at_start"] = load
    render.write(result, out_dir)
    bench.clock.log(f"wrote {out_dir / 'bench.md'} and {out_dir / 'bench.json'}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python bench/run.py --out DIR [--quick | --profile-only]``; 0 on success, 2 on usage."""
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="directory for bench.md/.json")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, ~2 minutes")
    parser.add_argument("--profile-only", action="store_true",
                        help="measure nothing; write bench_profile.txt (cProfile of gradcheck "
                             "at 256x64 full and 32x32x32x32 sampled and directional)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc thresholds alone (timings then depend on the "
                             "history of the process; see bench/allocator.py)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="skip measurements estimated above this (default 60; quick 10)")
    args = parser.parse_args(argv)
    if args.profile_only:
        if not args.default_malloc:
            allocator.pin()
        profile(args.out)
        return 0
    config = QUICK if args.quick else FULL
    if args.max_seconds is not None:
        config = replace(config, max_seconds=args.max_seconds)
    if args.default_malloc:
        config = replace(config, pin_allocator=False)
    run(config, args.out, argv=list(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
