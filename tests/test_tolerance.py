"""The error budget and per-dtype defaults."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.errors import InvalidArgument
from gradcheck.tolerance import (
    Tolerance,
    analytic_rounding,
    budget,
    default_rtol,
    resolve,
    witness_dtype,
)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_default_rtol_is_a_small_multiple_of_eps(dtype):
    assert default_rtol(dtype) == pytest.approx(64 * np.finfo(dtype).eps)


def test_budget_adds_bound_rounding_atol_and_elementwise_rtol():
    a = np.array([1.0, -4.0, 0.0])
    n = np.array([1.0, -3.0, 1e-9])
    e = np.array([1e-12, 0.0, 2e-12])
    r = np.array([0.0, 1e-10, 3e-11])
    b = budget(a, n, e, r, Tolerance(rtol=1e-3, atol=1e-6))
    # no tensor-wide scale: each element's rtol term uses its own size
    np.testing.assert_allclose(b, e + r + 1e-6 + 1e-3 * np.array([1.0, 4.0, 1e-9]))


def test_analytic_rounding_is_four_times_the_witness_gap_plus_a_floor():
    a = np.array([1.0, 1e-10, 3e-17])
    w = np.array([1.0, 1e-10 + 1e-19, 1e-20])
    t = np.array([0.0, 1e-10, 1.0])
    eps = float(np.finfo(np.float64).eps)
    r = analytic_rounding(a, w, t, eps)
    np.testing.assert_allclose(r, 4 * np.abs(a - w) + 16 * eps * (np.abs(a) + t))
    np.testing.assert_allclose(analytic_rounding(a, None, t, eps), 16 * eps * (np.abs(a) + t))


def test_a_witness_gap_beyond_half_the_digits_is_not_rounding():
    """An exp that overflowed to an analytic 0 where the wider run has 0.5: the gap counts only
    up to sqrt(eps) of the element's terms (plus its conditioning), so the error is judged."""
    eps = float(np.finfo(np.float64).eps)
    a, w, t = np.array([0.0]), np.array([0.5]), np.array([0.5])
    r = analytic_rounding(a, w, t, eps)
    np.testing.assert_allclose(r, 4 * (np.sqrt(eps) + 16 * eps) * 0.5 + 16 * eps * 0.5)
    wide = analytic_rounding(a, w, t, eps, kappa=1e16)  # conditioning that explains it all
    np.testing.assert_allclose(wide, 4 * 0.5 + 16 * eps * 0.5)


def test_witness_dtype_is_wider():
    assert witness_dtype(np.float32) == np.float64
    wide = witness_dtype(np.float64)
    assert wide is None or np.finfo(wide).eps < np.finfo(np.float64).eps


def test_resolve_keeps_overrides_and_defaults_per_dtype():
    assert resolve(Tolerance(rtol=0.5), np.dtype(np.float32)).rtol == 0.5
    assert resolve(Tolerance(), np.dtype(np.float64)).rtol == default_rtol(np.float64)
    assert resolve(Tolerance(atol=1e-9), np.dtype(np.float32)).atol == 1e-9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"rtol": -1.0}, r"`rtol` must be a non-negative finite float", id="rtol<0"),
        pytest.param({"atol": float("nan")}, r"`atol` must be a non-negative finite",
                     id="atol-nan"),
        pytest.param({"rtol": "1e-3"}, r"`rtol` must be a non-negative float, got '1e-3'",
                     id="rtol-str"),
        pytest.param({"atol": True}, r"`atol` must be a non-negative float", id="atol-bool"),
    ],
)
def test_input_validation(kwargs, match):
    with pytest.raises(InvalidArgument, match=match):
        Tolerance(**kwargs)


def test_default_rtol_rejects_integers():
    with pytest.raises(InvalidArgument, match="floating dtype, got int64"):
        default_rtol(np.int64)
