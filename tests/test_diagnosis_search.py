"""gradcheck.diagnosis.search: Brent's bounded minimisation, as SciPy's ``fminbound``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck.diagnosis.search import bounded_minimum


@pytest.mark.parametrize(("centre", "wiggle"), [
    pytest.param(-5.0, 0.0, id="parabola"),
    pytest.param(-11.9, 0.0, id="near-the-lower-bound"),
    pytest.param(0.5, 2.0, id="wiggly"),
    pytest.param(-3.3, 0.7, id="wiggly-kinked"),
])
def test_same_point_as_scipy(centre, wiggle):
    optimize = pytest.importorskip("scipy.optimize")

    def loss(t: float) -> float:
        return (t - centre) ** 2 + wiggle * math.sin(3 * t) + abs(t - centre) ** 1.5

    ours = bounded_minimum(loss, -12.0, 1.0, xatol=1e-4)
    theirs = optimize.minimize_scalar(loss, bounds=(-12.0, 1.0), method="bounded",
                                      options={"xatol": 1e-4}).x
    assert ours == theirs


def test_minimum_at_a_bound_and_call_limit():
    assert bounded_minimum(lambda t: t, 0.0, 1.0, xatol=1e-6) == pytest.approx(0.0, abs=1e-5)
    calls = []
    bounded_minimum(lambda t: calls.append(t) or float(np.cos(t)), 0.0, 6.0, 1e-12, maxfun=7)
    assert len(calls) == 7
