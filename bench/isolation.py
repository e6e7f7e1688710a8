"""The cost of the worker boundary (issue 22): the same check in process and behind the worker.

For the course's two-pass BatchNorm pair at 4x5, 64x32 and 256x64, in every mode, the median of
``--repeats`` runs of ``check_layer`` on the layer imported here and on the same pair built in a
:class:`gradcheck.worker.supervisor.Worker` (started once per size, as the command line keeps one
for a whole check). The worker's start (interpreter, NumPy, the user's import) is measured
separately. Prints a table with the machine's load; ``--out DIR`` also writes isolation.md.

    python bench/isolation.py --out reports
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from tabulate import tabulate

from gradcheck import GradcheckWarning, check_layer
from gradcheck.doorway import open_module
from gradcheck.worker.remote import RemoteWorkshop, Replicated
from gradcheck.worker.supervisor import Worker

LAYER = '''
import numpy as np

def bn_forward(x, gamma, beta):
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc * xc).mean(axis=0)
    std = np.sqrt(var + 1e-5)
    xhat = xc / std
    return gamma * xhat + beta, (xhat, std, gamma)

def bn_backward(dout, cache):
    xhat, std, gamma = cache
    g = dout * gamma
    dx = (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)
'''
SIZES = [(4, 5), (64, 32), (256, 64)]
MODES = ["full", "sampled", "directional"]


def _inputs(n: int, d: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.normal(1.0, 2.0, (n, d)), "gamma": rng.normal(1.0, 0.5, d),
            "beta": rng.normal(0.0, 0.5, d)}


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _timed(layer: object, inputs: dict[str, np.ndarray], mode: str,
           workers: list[Worker]) -> dict[str, float]:
    """One check: wall seconds, this process's CPU, the workers' CPU, messages and bytes."""
    before = [(_cpu_seconds(w.pid), dict(w.counts)) for w in workers]
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradcheckWarning)
        report = check_layer(layer, inputs, mode=mode)
    found = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
             "worker_cpu": 0.0, "messages": 0, "pipe_bytes": 0, "shared_bytes": 0}
    assert report.passed, report
    for w, (cpu_before, counts) in zip(workers, before, strict=True):
        found["worker_cpu"] += _cpu_seconds(w.pid) - cpu_before
        for key in ("messages", "pipe_bytes", "shared_bytes"):
            found[key] += w.counts[key] - counts[key]
    return found


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def measure(repeats: int) -> tuple[list[list[str]], float]:
    """Each size and mode, in process and in the worker, interleaved run by run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "bn_course.py")
        path.write_text(LAYER)
        local = open_module(str(path)).pair_layer("bn", "bn_forward", "bn_backward", {})
        starts, rows = [], []
        for n, d in SIZES:
            start = time.perf_counter()
            worker = Worker()
            remote = RemoteWorkshop(worker, str(path)).pair_layer("bn", "bn_forward",
                                                                  "bn_backward", {})
            starts.append(time.perf_counter() - start)
            try:
                for mode in MODES:
                    inputs = _inputs(n, d)
                    here, there = [], []
                    for _ in range(repeats):
                        here.append(_timed(local, inputs, mode, []))
                        there.append(_timed(remote, inputs, mode, [worker]))
                    rows.append(_row(f"{n}x{d}", mode, here, there))
            finally:
                worker.close()
    return rows, statistics.median(starts)


def _row(size: str, mode: str, here: list[dict[str, float]], there: list[dict[str, float]]
         ) -> list[str]:
    wall_here, wall_there = _median(here, "wall"), _median(there, "wall")
    ratios = [b["wall"] / a["wall"] for a, b in zip(here, there, strict=True)]
    return [size, mode, f"{wall_here:.3f}", f"{wall_there:.3f}", f"{wall_there / wall_here:.2f}x",
            f"{statistics.median(ratios):.2f}x", f"{_median(here, 'cpu'):.3f}",
            f"{_median(there, 'cpu'):.3f} + {_median(there, 'worker_cpu'):.3f}",
            f"{_median(there, 'messages'):.0f}",
            f"{_median(there, 'pipe_bytes') / 1e6:.2f} / "
            f"{_median(there, 'shared_bytes') / 1e6:.1f}"]


def pool_speedup(repeats: int) -> tuple[float, float, list[float]]:
    """Median seconds of a 64x32 full-mode check with one worker and with a pool of two
    (interleaved run by run), and the median speed-up of the pairs."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "bn_course.py")
        path.write_text(LAYER)
        workers = [Worker(), Worker()]
        try:
            shops = [RemoteWorkshop(w, str(path)) for w in workers]
            one = shops[0].pair_layer("bn", "bn_forward", "bn_backward", {})
            two = Replicated(shops).pair_layer("bn", "bn_forward", "bn_backward", {})
            inputs = _inputs(64, 32)
            ones, twos = [], []
            for _ in range(repeats):
                ones.append(_timed(one, inputs, "full", workers[:1])["wall"])
                twos.append(_timed(two, inputs, "full", workers)["wall"])
            pairs = [a / b for a, b in zip(ones, twos, strict=True)]
            return statistics.median(ones), statistics.median(twos), pairs
        finally:
            for w in workers:
                w.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="also write DIR/isolation.md")
    args = parser.parse_args(argv)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    rows, start = measure(args.repeats)
    one, two, pairs = pool_speedup(args.repeats)
    after = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    table = tabulate(rows, headers=["size", "mode", "in process (s)", "worker (s)", "ratio",
                                    "median of ratios", "CPU in process (s)",
                                    "CPU parent + worker (s)", "messages",
                                    "MB pipe / shared"],
                     tablefmt="github", disable_numparse=True)
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    text = (f"# The worker boundary's cost (bench/isolation.py)\n\n`{_COMMAND}` on "
            f"{os.cpu_count()} cores, OPENBLAS_NUM_THREADS {blas} (BLAS threads spinning on a "
            "loaded machine added up to 0.5 s of CPU to either side at random); load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
            f"(1 / 5 / 15 min) at the start, {after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f} at "
            f"the end. Median of {args.repeats} checks, in process and in the worker run "
            "alternately (\"median of ratios\" pairs each run with its neighbour, which "
            "cancels most of the other load's drift); CPU is this process's and the worker's, "
            "messages and megabytes are both directions, per check. Worker start (interpreter, "
            f"NumPy, import) {start:.3f} s, not included below.\n\n{table}\n\nTarget (issue "
            "22): within 10% of in process at 256x64 directional.\n\nA pool of two workers "
            f"(--workers 2) on the 64x32 full-mode check: {one:.3f} s with one worker, "
            f"{two:.3f} s with two, {one / two:.2f}x (median of paired runs "
            f"{statistics.median(pairs):.2f}x; target: 1.7x on two idle cores).\n")
    print(text)
    if args.out:
        Path(args.out, "isolation.md").write_text(text)
    return 0


_COMMAND = "OPENBLAS_NUM_THREADS=1 python bench/isolation.py --out reports"

if __name__ == "__main__":
    sys.exit(main())
