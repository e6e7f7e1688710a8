"""Bug or noise: the discrepancy at one element over a range of central-difference steps.

A discrepancy that stays constant as the step shrinks is a bug; one that shrinks with the step
was truncation error (numerical).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gradcheck.results import Sweep

__all__ = ["SWEEP_STEPS", "step_sweep"]

SWEEP_STEPS = tuple(10.0 ** -k for k in range(1, 9))


def step_sweep(f: Callable[[np.ndarray], Any], x: np.ndarray, flat: int, analytic: float,
               budget: float, *, steps: Sequence[float] = SWEEP_STEPS) -> Sweep:
    """The discrepancy ``analytic - D(h)`` at one element over central-difference steps.

    ``D(h) = (f(x + h e_k) - f(x - h e_k)) / ((x_k + h) - (x_k - h))`` with
    ``h = step·max(1, |x_k|)``. A discrepancy that stays put while ``h`` falls over several
    decades is a bug in the analytic side; one that shrinks as ``h`` does (like ``h²``) was
    the truncation error of the numerical side.

    Parameters
    ----------
    f : callable
        The scalar objective ``L(x)``.
    x : ndarray
        The point (not modified).
    flat : int
        Flat index of the element.
    analytic : float
        The analytic derivative there.
    budget : float
        The element's error budget: what counts as agreement.
    steps : sequence of float
        Relative steps, largest first.

    Returns
    -------
    Sweep
        The steps, the discrepancies and the verdict in words.

    Examples
    --------
    >>> sw = step_sweep(lambda a: float(np.sum(a**3)), np.array([2.0]), 0, 12.5, 1e-8)
    >>> sw.verdict
    'bug'
    """
    x = np.asarray(x, dtype=np.float64)
    scale = max(1.0, abs(float(x.flat[flat])))
    hs, ds = [], []
    for rel in steps:
        plus, minus = x.copy(), x.copy()
        plus.flat[flat] += rel * scale
        minus.flat[flat] -= rel * scale
        taken = float(plus.flat[flat] - minus.flat[flat])
        d = (float(np.real(f(plus))) - float(np.real(f(minus)))) / taken
        hs.append(taken / 2)
        ds.append(analytic - d)
    verdict, text = _sweep_verdict(np.array(ds), hs, budget)  # the steps the table shows
    return Sweep(tuple(int(i) for i in np.unravel_index(flat, x.shape)), tuple(hs), tuple(ds),
                 verdict, text)


def _plateau(d: np.ndarray) -> int | None:
    """The first of three consecutive steps whose discrepancies agree to 5 %."""
    for i in range(d.size - 2):
        part = d[i:i + 3]
        if np.all(np.sign(part) == np.sign(part[0])) and float(np.ptp(part)) <= 0.05 * float(
                np.min(np.abs(part))):
            return i
    return None


def _sweep_verdict(d: np.ndarray, steps: Sequence[float], budget: float) -> tuple[str, str]:
    mags = np.abs(d)
    i = _plateau(d)
    if i is not None and abs(float(d[i + 1])) > budget:
        return "bug", (f"the discrepancy stays at {d[i + 1]:.4g} from step {steps[i]:.2g} to "
                       f"{steps[i + 2]:.2g}: a bug, not numerical error")
    if float(np.min(mags)) <= budget:
        return "numerical", (f"the discrepancy shrinks to {np.min(mags):.3g} (within the budget "
                             f"{budget:.3g}) as the step changes: numerical error, not a bug")
    if mags[-1] < mags[0] * 1e-2:
        return "numerical", "the discrepancy shrinks with the step: numerical error"
    return "unclear", "the discrepancy changes with the step without settling: inconclusive"
