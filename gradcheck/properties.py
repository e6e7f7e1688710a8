"""Property mode: let hypothesis draw shapes and values, check each case, shrink the first failure.

Some bugs show only for odd N or only when D > 1; one fixed shape cannot see them. Shapes are
given symbolically (``{"x": ("N", "D"), "gamma": ("D",)}``): shared names get one drawn value,
``N`` is a batch (at least 2), odd and even sizes are both drawn. Values come from
:func:`random_inputs` with a drawn seed, so the smallest failing case is replayed exactly by
``gradcheck check ... --shape x=3,2 ... --seed S``. Needs hypothesis (``pip install
gradcheck[property]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gradcheck import kinds
from gradcheck.check import CheckReport, check_layer
from gradcheck.errors import InvalidArgument

__all__ = ["PropertyResult", "check_layer_property", "random_inputs"]

_INPUT_STREAM = 0x636C69


def random_inputs(shapes: Mapping[str, tuple[int, ...]], dtype: Any = np.float64,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs at random offsets and scales, so mean, scale and axis bugs show.

    Each input gets its own spread (log-uniform in 0.3 .. 3) and, along axis 1 (the feature or
    channel axis of ``(N, D)`` and ``(N, C, H, W)``), its own offset per index (uniform in
    -2 .. 2): a backward that uses the wrong axis's statistics, or drops a mean term, is then
    wrong by a visible amount, where standard normal data would hide it.

    Examples
    --------
    >>> {k: v.shape for k, v in random_inputs({"x": (4, 5), "gamma": (5,)}).items()}
    {'x': (4, 5), 'gamma': (5,)}
    """
    rng = np.random.default_rng([seed, _INPUT_STREAM])
    return {n: _draw(rng, tuple(s)).astype(dtype) for n, s in shapes.items()}


def _draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    spread = 10.0 ** rng.uniform(-0.5, 0.5)
    offsets = rng.uniform(-2.0, 2.0, size=shape[1] if len(shape) >= 2 else 1)
    offsets = offsets.reshape((1, -1) + (1,) * (len(shape) - 2)) if len(shape) >= 2 else offsets
    return offsets + spread * rng.standard_normal(shape)


@dataclass(frozen=True)
class PropertyResult:
    """Outcome of a property run: the shrunk failing case's report, or the last passing one."""

    passed: bool
    examples: int
    shapes: Mapping[str, tuple[int, ...]]
    seed: int
    reports: tuple[CheckReport, ...]
    summary: str


def _replay(shapes: Mapping[str, tuple[int, ...]], seed: int) -> str:
    args = " ".join(f"--shape {n}={','.join(map(str, s))}" for n, s in shapes.items())
    return f"{args} --seed {seed}"


def check_layer_property(
    layer: Any,
    shapes: Mapping[str, Sequence[str | int]],
    *,
    dtype: Any = np.float64,
    method: str = kinds.AUTO,
    mode: str = kinds.AUTO,
    seed: int = 0,
    examples: int = 100,
) -> PropertyResult:
    """Run :func:`check_layer` on hypothesis-drawn shapes and values; shrink the first failure.

    Parameters
    ----------
    layer : Layer
        As for :func:`check_layer`.
    shapes : mapping of str to sequence of str or int
        Symbolic shapes, e.g. ``{"x": ("N", "D"), "gamma": ("D",), "beta": ("D",)}``.
    dtype, method, mode
        As for :func:`check_layer` (the inputs' dtype, the numerical method, which elements).
    seed : int
        Seeds hypothesis, so a run is reproducible.
    examples : int
        How many cases hypothesis draws at most.

    Returns
    -------
    PropertyResult
        ``summary`` names the smallest failing case and the command-line flags that replay it.
    """
    try:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as hseed
        from hypothesis import strategies as st

        from gradcheck.strategies import symbolic_shapes
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InvalidArgument(
            "property mode needs hypothesis: pip install 'gradcheck[property]'"
        ) from exc
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise InvalidArgument(f"`examples` must be a positive integer, got {examples!r}")
    if mode not in kinds.MODES:
        raise InvalidArgument(f"`mode` must be one of {kinds.MODES}, got {mode!r}")
    spec = {n: tuple(int(d) if str(d).isdigit() else str(d) for d in dims)
            for n, dims in shapes.items()}
    seen: list[tuple[dict[str, tuple[int, ...]], int, CheckReport]] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck),
              phases=[Phase.generate, Phase.shrink], report_multiple_bugs=False)
    @given(symbolic_shapes(spec), st.integers(0, 2**16))
    def run(drawn: dict[str, tuple[int, ...]], value_seed: int) -> None:
        report = check_layer(layer, random_inputs(drawn, dtype, value_seed), method=method,
                             mode=mode, seed=value_seed)
        seen.append((dict(drawn), value_seed, report))
        assert report.passed

    run = hseed(seed)(run)
    try:
        run()
    except AssertionError:
        shapes_f, seed_f, report = _smallest_failure(seen)
        text = (f"property mode: FAIL after {len(seen)} cases; smallest failing case "
                f"{_describe(shapes_f)} (replay: {_replay(shapes_f, seed_f)})")
        report = replace(report, case=f"smallest failing case, {_replay(shapes_f, seed_f)}")
        return PropertyResult(False, len(seen), shapes_f, seed_f, (report,), text)
    last_shapes, last_seed, last = seen[-1]
    text = f"property mode: PASS: {len(seen)} drawn cases passed ({_shape_stats(seen)})"
    last = replace(last, case=f"last of {len(seen)} drawn cases, {_replay(last_shapes, last_seed)}")
    return PropertyResult(True, len(seen), last_shapes, last_seed, (last,), text)


def _smallest_failure(
    seen: list[tuple[dict[str, tuple[int, ...]], int, CheckReport]],
) -> tuple[dict[str, tuple[int, ...]], int, CheckReport]:
    """Hypothesis replays the shrunk example last; the last failing call is it."""
    failing = [case for case in seen if not case[2].passed]
    return failing[-1]


def _describe(shapes: Mapping[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{n}={s}" for n, s in shapes.items())


def _shape_stats(seen: list[tuple[dict[str, tuple[int, ...]], int, CheckReport]]) -> str:
    firsts = [next(iter(s.values()))[0] for s, _, _ in seen if next(iter(s.values()))]
    odd = sum(n % 2 for n in firsts)
    return f"leading dimension odd in {odd}, even in {len(firsts) - odd}"
