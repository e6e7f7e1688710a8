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


def _median_seconds(layer: object, inputs: dict[str, np.ndarray], mode: str, repeats: int
                    ) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GradcheckWarning)
            report = check_layer(layer, inputs, mode=mode)
        times.append(time.perf_counter() - start)
        assert report.passed, report
    return statistics.median(times)


def measure(repeats: int) -> tuple[list[list[str]], float]:
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
                    here = _median_seconds(local, inputs, mode, repeats)
                    there = _median_seconds(remote, inputs, mode, repeats)
                    rows.append([f"{n}x{d}", mode, f"{here:.3f}", f"{there:.3f}",
                                 f"{there / here:.2f}x"])
            finally:
                worker.close()
    return rows, statistics.median(starts)


def pool_speedup(repeats: int) -> tuple[float, float]:
    """Median seconds of a 64x32 full-mode check with one worker and with a pool of two."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "bn_course.py")
        path.write_text(LAYER)
        workers = [Worker(), Worker()]
        try:
            shops = [RemoteWorkshop(w, str(path)) for w in workers]
            one = shops[0].pair_layer("bn", "bn_forward", "bn_backward", {})
            two = Replicated(shops).pair_layer("bn", "bn_forward", "bn_backward", {})
            inputs = _inputs(64, 32)
            return (_median_seconds(one, inputs, "full", repeats),
                    _median_seconds(two, inputs, "full", repeats))
        finally:
            for w in workers:
                w.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write DIR/isolation.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows, start = measure(args.repeats)
    one, two = pool_speedup(args.repeats)
    table = tabulate(rows, headers=["size", "mode", "in process (s)", "worker (s)", "ratio"],
                     tablefmt="github", disable_numparse=True)
    text = (f"# The worker boundary's cost (bench/isolation.py)\n\nload average {load:.2f} at the "
            f"start; median of {args.repeats} checks; worker start (interpreter, NumPy, import)"
            f" {start:.3f} s, not included below.\n\n{table}\n\nTarget (issue 22): within 10% "
            "of in process at 256x64 directional.\n\nA pool of two workers (--workers 2) on the "
            f"64x32 full-mode check: {one:.3f} s with one worker, {two:.3f} s with two, "
            f"{one / two:.2f}x (target: 1.7x on two idle cores).\n")
    print(text)
    if args.out:
        Path(args.out, "isolation.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
