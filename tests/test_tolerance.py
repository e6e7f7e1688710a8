"""The error budget and per-dtype defaults."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.errors import InvalidArgument
from gradcheck.tolerance import Tolerance, budget, default_rtol, resolve


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_default_rtol_is_sqrt_eps(dtype):
    assert default_rtol(dtype) == pytest.approx(np.sqrt(np.finfo(dtype).eps))


def test_budget_adds_estimate_error_atol_and_scaled_rtol():
    a = np.array([1.0, -4.0, 0.0])
    n = np.array([1.0, -3.0, 1e-9])
    e = np.array([1e-12, 0.0, 2e-12])
    b = budget(a, n, e, Tolerance(rtol=1e-3, atol=1e-6))
    np.testing.assert_allclose(b, e + 1e-6 + 1e-3 * 4.0)


def test_resolve_keeps_overrides_and_floors_by_forward_rounding():
    assert resolve(Tolerance(rtol=0.5), np.dtype(np.float32), 1.0).rtol == 0.5
    assert resolve(Tolerance(), np.dtype(np.float64)).rtol == default_rtol(np.float64)
    assert resolve(Tolerance(), np.dtype(np.float32), 1e-2).rtol == pytest.approx(4e-2)


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
