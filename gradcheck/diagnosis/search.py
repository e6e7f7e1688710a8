"""The minimum of a function of one variable on an interval, without SciPy.

A failing check's diagnosis fits one number (a normalisation's eps) by minimising a loss on an
interval. ``scipy.optimize.minimize_scalar(method="bounded")`` did it, and importing
``scipy.optimize`` took longer (0.3 s on a quiet machine) than the whole check of a small layer
from the command line, where every module the parent may need is imported before the user's
code runs (:mod:`gradcheck.cli`). :func:`bounded_minimum` is the same algorithm, Brent's
golden-section search with parabolic steps (``fminbound``; Brent, *Algorithms for Minimization
without Derivatives*, 1973, ch. 5), step for step as SciPy 1.x writes it, so it finds the same
point.

Examples
--------
>>> round(bounded_minimum(lambda t: (t - 0.3) ** 2, -1.0, 2.0, 1e-8), 6)
0.3
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["bounded_minimum"]

_SQRT_EPS = math.sqrt(2.2e-16)
_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))


def _sign(value: float) -> float:
    """``np.sign(value) + (value == 0)``: the sign, with +1 for 0."""
    return 1.0 if value >= 0 else -1.0


def bounded_minimum(fn: Callable[[float], float], lo: float, hi: float, xatol: float,
                    maxfun: int = 500) -> float:
    """A local minimum of ``fn`` on ``[lo, hi]`` to within ``xatol``."""
    a, b = lo, hi
    xf = fulc = nfc = a + _GOLDEN * (b - a)
    fx = ffulc = fnfc = fn(xf)
    rat = e = 0.0
    calls = 1
    xm = 0.5 * (a + b)
    tol1 = _SQRT_EPS * abs(xf) + xatol / 3.0
    while abs(xf - xm) > 2.0 * tol1 - 0.5 * (b - a) and calls < maxfun:
        rat, e = _step(a, b, xf, fx, nfc, fnfc, fulc, ffulc, rat, e, xm, tol1)
        x = xf + _sign(rat) * max(abs(rat), tol1)
        fu = fn(x)
        calls += 1
        if fu <= fx:
            a, b = (xf, b) if x >= xf else (a, xf)
            fulc, ffulc, nfc, fnfc, xf, fx = nfc, fnfc, xf, fx, x, fu
        else:
            a, b = (x, b) if x < xf else (a, x)
            if fu <= fnfc or nfc == xf:
                fulc, ffulc, nfc, fnfc = nfc, fnfc, x, fu
            elif fu <= ffulc or fulc == xf or fulc == nfc:
                fulc, ffulc = x, fu
        xm = 0.5 * (a + b)
        tol1 = _SQRT_EPS * abs(xf) + xatol / 3.0
    return xf


def _step(a: float, b: float, xf: float, fx: float, nfc: float, fnfc: float, fulc: float,
          ffulc: float, rat: float, e: float, xm: float, tol1: float) -> tuple[float, float]:
    """The next step (``rat``) and the one before it (``e``): parabolic through the three best
    points when that lands inside and shrinks, else golden-section."""
    tol2 = 2.0 * tol1
    if abs(e) > tol1:
        r = (xf - nfc) * (fx - ffulc)
        q = (xf - fulc) * (fx - fnfc)
        p = (xf - fulc) * q - (xf - nfc) * r
        q = 2.0 * (q - r)
        if q > 0.0:
            p = -p
        q = abs(q)
        r, e = e, rat
        if abs(p) < abs(0.5 * q * r) and q * (a - xf) < p < q * (b - xf):
            rat = (p + 0.0) / q
            x = xf + rat
            if (x - a) < tol2 or (b - x) < tol2:
                rat = tol1 * _sign(xm - xf)
            return rat, e
    e = (a - xf) if xf >= xm else (b - xf)
    return _GOLDEN * e, e
