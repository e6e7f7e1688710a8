"""Every checker behind one interface, the benchmark inputs, and the bugs we inject.

A :class:`Checker` runs on ``(x, backward, seed)``: BatchNorm in training mode with ``gamma``
ones and ``beta`` zeros, the NumPy reference forward, and ``backward`` (the reference, or one with
an injected bug) standing in for the user's backward. It answers with an :class:`Outcome`: the
verdict, the forward evaluations, the backward calls and what was judged.

The inputs follow the course notebooks: ``x = 5 * randn + 12`` (mean far from zero, so the
forward's ``x - mean`` cancels about one digit). The injected bugs perturb ``dx`` only:
:func:`scaled` returns ``dx * (1 + δ)``; :func:`bumped` adds ``δ * max|dx|`` to one element, at an
index drawn once per shape by :func:`bump_index` (so not a corner that a sampler always visits).

gradcheck's checker also counts the calls of the layer's forward (:func:`forward_calls`): its own
``nfev`` counts the evaluations of the estimates, while the calls also include the analytic run
and, with ``method="auto"``, the complex-step safety probe on every input.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench import baselines
from gradcheck import BatchNorm, batchnorm_backward
from gradcheck.check import check_layer

__all__ = [
    "Checker",
    "Outcome",
    "bump_index",
    "bumped",
    "counted_batchnorm",
    "course_checker",
    "forward_calls",
    "forward_seconds",
    "gradcheck_checker",
    "make_input",
    "reference",
    "scaled",
    "torch_checker",
    "upstream",
]

Backward = Callable[[np.ndarray, Any], Mapping[str, np.ndarray]]
_BUMP_STREAM = 0xB0B
_UPSTREAM_STREAM = 0xD0
FAST_MODES = ("sampled", "directional")  # gradcheck's modes that state a miss bound
# Calls of _BenchBatchNorm.forward, kept outside the layer: check_layer fingerprints the layer's
# attributes and would report a counter there as a forward that changes its state.
_FORWARD_CALLS = [0]
_FORWARD_SECONDS = [0.0]  # and the time spent inside them


@dataclass(frozen=True)
class Outcome:
    """One checker's verdict on one layer, and what it cost."""

    passed: bool
    nfev: int  # forward evaluations
    backward_calls: int
    judged: int  # gradient elements compared one by one (0 for projections only)
    coverage: str  # what was compared, in words
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checker:
    """A named way of checking BatchNorm's gradients."""

    key: str  # "gradcheck", "course" or "torch": the cost model in bench.run
    method: str
    mode: str
    run: Callable[[np.ndarray, Backward, int], Outcome]

    @property
    def label(self) -> str:
        if self.key == "gradcheck":
            return f"gradcheck {self.method}/{self.mode}"
        return "course checker" if self.key == "course" else f"torch {self.mode}"


# ---------------------------------------------------------------------------- inputs and bugs


def make_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """``5 * randn + 12`` in float64, seeded."""
    return 5.0 * np.random.default_rng(seed).standard_normal(shape) + 12.0


def upstream(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A standard normal upstream gradient (the course checker's ``dout``)."""
    return np.random.default_rng([seed, _UPSTREAM_STREAM]).standard_normal(shape)


def reference(dout: np.ndarray, cache: Any) -> Mapping[str, np.ndarray]:
    """The correct backward (compact form)."""
    return batchnorm_backward(dout, cache)


def scaled(delta: float) -> Backward:
    """A backward whose ``dx`` is ``(1 + delta)`` times too large."""
    def backward(dout: np.ndarray, cache: Any) -> Mapping[str, np.ndarray]:
        grads = dict(batchnorm_backward(dout, cache))
        grads["x"] = grads["x"] * (1.0 + delta)
        return grads
    return backward


def bumped(delta: float, index: tuple[int, ...]) -> Backward:
    """A backward whose ``dx[index]`` is off by ``delta * max|dx|``."""
    def backward(dout: np.ndarray, cache: Any) -> Mapping[str, np.ndarray]:
        grads = dict(batchnorm_backward(dout, cache))
        dx = grads["x"].copy()
        dx[index] += delta * np.max(np.abs(dx))
        grads["x"] = dx
        return grads
    return backward


def bump_index(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A seeded element away from the corners (every corner is in gradcheck's sample)."""
    rng = np.random.default_rng([_BUMP_STREAM, *shape])
    return tuple(int(rng.integers(1, n - 1)) if n > 2 else 0 for n in shape)


# ------------------------------------------------------------------------------------ checkers


class _BenchBatchNorm(BatchNorm):
    """The reference layer with the backward replaced (a user's layer, possibly buggy)."""

    def __init__(self, channels: int, backward: Backward) -> None:
        super().__init__(channels)
        self._bench_backward = backward

    def forward(self, inputs: Mapping[str, Any]) -> Any:
        _FORWARD_CALLS[0] += 1
        t0 = time.perf_counter()
        try:
            return super().forward(inputs)
        finally:
            _FORWARD_SECONDS[0] += time.perf_counter() - t0

    def backward(self, dout: Any, cache: Any) -> dict[str, np.ndarray]:
        return dict(self._bench_backward(dout, cache))


def forward_calls() -> int:
    """Calls of the benchmark layer's forward so far, in this process."""
    return _FORWARD_CALLS[0]


def counted_batchnorm(channels: int, backward: Backward = reference) -> BatchNorm:
    """The reference BatchNorm (``backward`` standing in for its backward) whose forward calls
    and time are counted in :func:`forward_calls` and :func:`forward_seconds`."""
    return _BenchBatchNorm(channels, backward)


def forward_seconds() -> float:
    """Seconds spent inside the benchmark layer's forward so far, in this process."""
    return _FORWARD_SECONDS[0]


def gradcheck_checker(method: str, mode: str) -> Checker:
    """Ours: ``check_layer(BatchNorm(C), {"x": x}, method=..., mode=..., seed=seed)``."""
    def run(x: np.ndarray, backward: Backward, seed: int) -> Outcome:
        calls, seconds = forward_calls(), forward_seconds()
        report = check_layer(_BenchBatchNorm(x.shape[1], backward), {"x": x},
                             method=method, mode=mode, seed=seed)
        judged = sum(r.elements for r in report.results)
        directions = sum(r.directions for r in report.results)
        if any(r.mode == "directional" for r in report.results) and not judged:
            coverage = f"{directions} directions"
        elif directions:
            coverage = f"{judged} elements + {directions} directions"
        else:
            coverage = f"{judged} elements"
        detail = {
            "method_used": report.method,
            "modes": {r.name: r.mode for r in report.results},
            "forward_calls": forward_calls() - calls,
            "forward_seconds": forward_seconds() - seconds,
            "miss_norm": {r.name: r.miss_norm for r in report.results if r.mode in FAST_MODES},
            "max_rel_error": {r.name: r.max_rel_error for r in report.results},
            "message": next((r.message for r in report.results if not r.passed), ""),
            "problems": list(report.problems),
        }
        return Outcome(report.passed, report.nfev, 2, judged, coverage, detail)

    return Checker("gradcheck", method, mode, run)


def course_checker() -> Checker:
    """CS231n's checker, verdict at ``rel_error <= 1e-7`` (see :mod:`bench.baselines`)."""
    def run(x: np.ndarray, backward: Backward, seed: int) -> Outcome:
        result = baselines.course_check(x, upstream(x.shape, seed), backward)
        judged = x.size + 2 * x.shape[1]
        return Outcome(result.passed, result.nfev, 1, judged, f"{judged} elements",
                       {"rel_error": result.rel_errors, "forward_calls": result.nfev + 1})

    return Checker("course", f"central h={baselines.COURSE_H:g}",
                   f"full, rel_error<={baselines.COURSE_THRESHOLD:g}", run)


def torch_checker(torch: Any, *, fast_mode: bool) -> Checker:
    """``torch.autograd.gradcheck`` with its defaults, or ``fast_mode=True``."""
    def run(x: np.ndarray, backward: Backward, seed: int) -> Outcome:
        result = baselines.torch_check(torch, x, backward, fast_mode=fast_mode, seed=seed)
        n_in = x.size + 2 * x.shape[1]
        if fast_mode:
            judged, coverage = 0, "3 projections vᵀJu (one per input)"
        else:
            judged, coverage = n_in, f"full Jacobian {n_in}×{x.size}"
        return Outcome(result.passed, result.forward_calls, result.backward_calls, judged,
                       coverage, {"forward_calls": result.forward_calls})

    mode = "fast_mode" if fast_mode else "default"
    return Checker("torch", "central eps=1e-6", mode, run)
