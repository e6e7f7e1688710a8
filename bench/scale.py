"""Issue 25's scale table: the default check of the course-style (N, D) BatchNorm as it grows.

Every measurement runs in a fresh process (``python bench/scale.py --child KIND N D DTYPE``), so
that its peak memory (``VmHWM``, see :func:`_peak_mb`) is its own:

``check``
    the default ``check_layer(layer, inputs)`` of :func:`bench.course_layers.batchnorm_forward` /
    ``batchnorm_backward`` through ``from_functions`` (after a warm-up check at 4x5), its wall
    and CPU seconds, the forward and backward calls it made and the seconds inside them (complex
    forwards apart), its peak memory; *then* (after the peak is read) five complex128 forwards
    of the layer, the unit a check's time is counted in.
``layer``
    the layer alone on the same inputs: one forward in training mode and one backward of a
    standard normal upstream gradient, and its peak memory.

Both kinds import the same modules and build the same inputs before they start, so the ratio of
the two peaks is what the check adds to what the layer itself needs. A float32 check of this
layer compares ``gamma`` and ``beta`` element by element (the shared directions' miss bound is
too wide for them at float32's rounding), two complex forwards per channel: at 8192x1024 that is
2048 forwards of 8M elements, several minutes, hence the 30-minute limit per process.
:func:`table` renders the rows; :mod:`bench.targets` turns them into targets T7 and T8 and writes
``reports/scale.md`` and ``reports/scale.json``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import checkers, course_layers

SIZES: tuple[tuple[int, int], ...] = ((64, 32), (256, 64), (1024, 256), (4096, 256), (8192, 1024))
MEMORY_SIZES: tuple[tuple[int, int], ...] = ((4096, 256), (8192, 1024))  # 1M and 8M elements
_CHILD = "--child"
_BN_PARAM = {"mode": "train"}


def _inputs(n: int, d: int, dtype: str) -> dict[str, np.ndarray]:
    x = checkers.make_input((n, d), 0).astype(dtype)
    return {"x": x, "gamma": np.ones(d, dtype), "beta": np.zeros(d, dtype)}


def _peak_mb() -> float:
    """This process's peak resident memory, MB: ``VmHWM`` of ``/proc/self/status``, which
    belongs to the process's own address space. (``ru_maxrss`` survives ``execve``: a child of
    a bench that had reached 953 MB reported 953 MB for a check of 1M elements, and the layer
    alone too.) ``ru_maxrss`` where there is no ``/proc``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _Counted:
    """The course pair, its calls counted and timed (complex forwards apart)."""

    def __init__(self) -> None:
        self.forwards = self.backwards = self.complex_forwards = 0
        self.forward_s = self.backward_s = self.complex_s = 0.0

    def forward(self, x: Any, gamma: Any, beta: Any, bn_param: dict[str, Any]) -> Any:
        t0 = time.perf_counter()
        found = course_layers.batchnorm_forward(x, gamma, beta, bn_param)
        spent = time.perf_counter() - t0
        self.forwards += 1
        self.forward_s += spent
        if any(np.iscomplexobj(a) for a in (x, gamma, beta)):
            self.complex_forwards += 1
            self.complex_s += spent
        return found

    def backward(self, dout: Any, cache: Any) -> Any:
        t0 = time.perf_counter()
        found = course_layers.batchnorm_backward(dout, cache)
        self.backwards += 1
        self.backward_s += time.perf_counter() - t0
        return found


def _complex_forward_s(inputs: dict[str, np.ndarray], reps: int = 5) -> tuple[float, float]:
    """Median wall and CPU seconds of one complex128 forward (after one untimed)."""
    arrays = {k: v.astype(np.complex128) for k, v in inputs.items()}
    course_layers.batchnorm_forward(**arrays, bn_param=dict(_BN_PARAM))
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        course_layers.batchnorm_forward(**arrays, bn_param=dict(_BN_PARAM))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def child(kind: str, n: int, d: int, dtype: str) -> dict[str, Any]:
    """One fresh-process measurement (see the module docstring)."""
    from gradcheck.check import check_layer
    from gradcheck.layer import from_functions

    counted = _Counted()
    layer = from_functions(counted.forward, counted.backward,
                           config={"bn_param": dict(_BN_PARAM)})
    inputs = _inputs(n, d, dtype)
    if kind == "layer":
        base = _peak_mb()
        out, cache = course_layers.batchnorm_forward(**inputs, bn_param=dict(_BN_PARAM))
        course_layers.batchnorm_backward(checkers.upstream(out.shape, 0).astype(dtype), cache)
        return {"peak_mb": _peak_mb(), "base_mb": base}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_layer(layer, _inputs(4, 5, dtype))  # warm-up: lazy imports, first calls
        counted.__init__()  # type: ignore[misc]
        base = _peak_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        report = check_layer(layer, inputs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_mb()
    fwd_wall, fwd_cpu = _complex_forward_s(inputs)
    return {"peak_mb": peak, "base_mb": base, "check_s": wall, "check_cpu_s": cpu,
            "verdict": report.verdict, "modes": sorted({r.mode for r in report.results}),
            "nfev": report.nfev, "forward_calls": counted.forwards,
            "complex_forward_calls": counted.complex_forwards,
            "backward_calls": counted.backwards, "in_forwards_s": counted.forward_s,
            "in_complex_forwards_s": counted.complex_s, "in_backwards_s": counted.backward_s,
            "complex_forward_s": fwd_wall, "complex_forward_cpu_s": fwd_cpu}


def run_child(kind: str, shape: tuple[int, int], dtype: str = "float64",
              timeout: float = 1800.0) -> dict[str, Any]:
    """:func:`child` in a fresh interpreter with this one's environment; ``{"error": ...}``
    when it failed."""
    cmd = [sys.executable, str(Path(__file__).resolve()), _CHILD, kind, str(shape[0]),
           str(shape[1]), dtype]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                              env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure(sizes: Sequence[tuple[int, int]] = SIZES,
            memory_sizes: Sequence[tuple[int, int]] = MEMORY_SIZES,
            log: Any = None) -> list[dict[str, Any]]:
    """A row per size (float64), and per ``memory_sizes`` a float32 row too: the check's
    measurement and the layer alone's peak, each in its own fresh process."""
    plan = [(s, "float64") for s in sizes] + [(s, "float32") for s in memory_sizes]
    rows = []
    for shape, dtype in plan:
        if log:
            log(f"scale: {shape[0]}x{shape[1]} {dtype} (load {os.getloadavg()[0]:.2f})")
        alone = run_child("layer", shape, dtype)
        found = run_child("check", shape, dtype)
        row = {"shape": list(shape), "elements": shape[0] * shape[1], "dtype": dtype,
               "load": [round(v, 2) for v in os.getloadavg()], **found,
               "layer_peak_mb": alone.get("peak_mb"), "layer_base_mb": alone.get("base_mb"),
               "layer_error": alone.get("error")}
        if "check_s" in found and found["complex_forward_s"]:
            row["forwards_worth"] = found["check_s"] / found["complex_forward_s"]
            row["forwards_worth_cpu"] = found["check_cpu_s"] / found["complex_forward_cpu_s"]
        if found.get("peak_mb") and alone.get("peak_mb"):
            row["memory_ratio"] = found["peak_mb"] / alone["peak_mb"]
        rows.append(row)
    return rows


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table(rows: Sequence[dict[str, Any]], fmt: str = "github") -> str:
    """The scale table (one line per row)."""
    from tabulate import tabulate

    body = [[f"{r['shape'][0]}×{r['shape'][1]}", f"{r['elements']:,}", r["dtype"],
             _fmt(r.get("check_s"), ".3g"), _fmt(r.get("check_cpu_s"), ".3g"),
             _fmt(r.get("complex_forward_s") and r["complex_forward_s"] * 1e3, ".3g"),
             _fmt(r.get("forwards_worth"), ".1f"), _fmt(r.get("forwards_worth_cpu"), ".1f"),
             _fmt(r.get("in_complex_forwards_s"), ".3g"),
             f"{r.get('forward_calls', '—')} ({r.get('complex_forward_calls', '—')} complex)",
             r.get("backward_calls", "—"),
             f"{_fmt(r.get('peak_mb'), '.0f')} / {_fmt(r.get('layer_peak_mb'), '.0f')}",
             _fmt(r.get("memory_ratio"), ".2f"), ", ".join(f"{v:.2f}" for v in r["load"])]
            for r in rows]
    heads = ["size", "elements", "dtype", "check s", "check CPU s", "complex forward ms",
             "forwards' worth", "(CPU)", "s in complex forwards", "forward calls",
             "backward calls", "peak MB check / layer", "memory ratio", "load after"]
    return tabulate(body, headers=heads, tablefmt=fmt, disable_numparse=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [_CHILD]:
        print(json.dumps(child(args[1], int(args[2]), int(args[3]), args[4])))
        return 0
    rows = measure(log=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(rows, "simple"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
