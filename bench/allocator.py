"""Pin glibc's malloc thresholds, so that timings do not depend on what ran before.

glibc serves a request of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with a fresh
``mmap``, and gives free memory at the top of the heap back to the OS above ``M_TRIM_THRESHOLD``.
Both move at run time (the mmap threshold rises to the size of the largest mmapped block freed so
far). A BatchNorm forward at 256x64 in complex128 makes a handful of 256 KiB temporaries, so
depending on the history of the process every evaluation either reuses heap memory or pays for
fresh zeroed pages (page faults, system time): the same forward measured 0.12 ms or 0.66 ms.
:func:`pin` fixes both thresholds for the whole run (every checker benefits equally), and
:func:`forward_cost` measures the difference in two fresh processes, for the report.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
from typing import Any

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "forward_cost", "pin"]

MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 128 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)

_PROBE = """
import time, numpy as np
from gradcheck import batchnorm_forward
x = (5 * np.random.default_rng(0).standard_normal({shape}) + 12).astype(complex)
batchnorm_forward(x)
t0 = time.perf_counter()
for _ in range({reps}):
    batchnorm_forward(x)
print((time.perf_counter() - t0) / {reps})
"""


def pin() -> str:
    """Fix the thresholds with ``mallopt``; says what was done (nothing off glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError, TypeError):
        return "unchanged (no glibc mallopt)"
    if not ok:
        return "unchanged (mallopt refused)"
    return (f"glibc mallopt: M_MMAP_THRESHOLD {MMAP_THRESHOLD >> 20} MiB, "
            f"M_TRIM_THRESHOLD {TRIM_THRESHOLD >> 20} MiB")


def _probe(env: dict[str, str], shape: tuple[int, ...], reps: int) -> float | None:
    code = _PROBE.format(shape=shape, reps=reps)
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=60, check=True)
        return float(done.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def forward_cost(shape: tuple[int, ...] = (256, 64), reps: int = 300) -> dict[str, Any]:
    """Seconds per complex128 reference forward in a fresh process: glibc defaults vs pinned."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    pinned = {**base, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
              "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
    return {"shape": list(shape), "default_s": _probe(base, shape, reps),
            "pinned_s": _probe(pinned, shape, reps)}
