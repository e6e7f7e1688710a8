"""Tests of gradcheck.strategies: validation when built, bounds, corners, no degenerate draws."""

from __future__ import annotations

import inspect
from collections import Counter
from functools import partial

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings

from gradcheck import strategies
from gradcheck.errors import InvalidArgument
from gradcheck.strategies import batchnorm_cases, layer_inputs, symbolic_shapes


def _rows(a):
    """Shape (C, n): one row per channel (axis 1)."""
    return np.moveaxis(np.asarray(a, dtype=np.float64), 1, 0).reshape(a.shape[1], -1)


# ---------------------------------------------------------------------------------------------
# Argument validation: every row raises when the strategy is built, not when it is drawn


def e(function, message, **kwargs):
    """One row: ``function(**kwargs)`` must raise InvalidArgument matching ``message``."""
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return pytest.param(partial(function, **kwargs), message, id=f"{function.__name__}({args})")


def p(function, message, *args, **kwargs):
    """A row with positional arguments (layer_inputs, symbolic_shapes)."""
    shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    return pytest.param(
        partial(function, *args, **kwargs), message, id=f"{function.__name__}({shown})"
    )


VALIDATION = [
    e(batchnorm_cases, "min_batch=5 is larger than max_batch=3", min_batch=5, max_batch=3),
    e(batchnorm_cases, "min_batch=1 must be at least 2", min_batch=1),
    e(batchnorm_cases, "min_batch=2.5 must be an integer", min_batch=2.5),
    e(batchnorm_cases, "min_batch=True must be an integer", min_batch=True),
    e(batchnorm_cases, "min_channels=0 must be at least 1", min_channels=0),
    e(batchnorm_cases, "min_channels=3 is larger than max_channels=2", min_channels=3,
      max_channels=2),
    e(batchnorm_cases, "layouts must contain only 'ND', 'NCHW', got 'NHWC'", layouts=("NHWC",)),
    e(batchnorm_cases, "layouts must contain only 'ND', 'NCHW', got nothing", layouts=()),
    e(batchnorm_cases, "dtypes must be float32 or float64, got <class 'numpy.float16'>",
      dtypes=(np.float16,)),
    e(batchnorm_cases, "dtypes must be float32 or float64", dtypes=(np.int32,)),
    e(batchnorm_cases, "dtypes must name at least one", dtypes=()),
    e(batchnorm_cases, "min_eps=0 must be a finite positive number", min_eps=0),
    e(batchnorm_cases, "min_eps=0.01 is larger than max_eps=0.001", min_eps=1e-2, max_eps=1e-3),
    e(batchnorm_cases, "max_eps=inf must be a finite positive number", max_eps=float("inf")),
    e(batchnorm_cases, "max_condition=-1 must be a finite non-negative number", max_condition=-1),
    e(batchnorm_cases, "max_condition=nan must be a finite", max_condition=float("nan")),
    e(batchnorm_cases, "min_std=10.0 is larger than max_std=1.0", min_std=10, max_std=1),
    e(batchnorm_cases, "min_std=-1 must be a finite positive number", min_std=-1),
    p(layer_inputs, "shapes must map at least one input name", {}),
    p(layer_inputs, r"shapes\['x'\] size=-1 must be at least 0", {"x": (2, -1)}),
    p(layer_inputs, r"shapes\['x'\] must be a tuple of sizes, got 3", {"x": 3}),
    p(layer_inputs, "input names must be strings, got 1", {1: (2,)}),
    p(layer_inputs, "dtype=int64 must be a floating dtype", {"x": (2,)}, dtype=np.int64),
    p(layer_inputs, "dtype=complex128 must be a floating dtype: float16, float32 or float64",
      {"x": (2,)}, dtype=np.complex128),
    p(layer_inputs, "min_value=1.0 is larger than max_value=0.0", {"x": (2,)}, min_value=1,
      max_value=0),
    p(layer_inputs, "min_value=nan must be a finite number", {"x": (2,)},
      min_value=float("nan")),
    p(layer_inputs, r"no float16 value lies in \[0.1, 0.1\]", {"x": (2,)}, dtype=np.float16,
      min_value=0.1, max_value=0.1),
    p(symbolic_shapes, "spec must map at least one input name", {}),
    p(symbolic_shapes, r"spec\['x'\] must be a sequence of dimension names or sizes, got 'N,D'",
      {"x": "N,D"}),
    p(symbolic_shapes, r"spec\['x'\] size=0 must be at least 1", {"x": ("N", 0)}),
    p(symbolic_shapes, r"spec\['x'\] has an empty dimension name", {"x": ("N", " ")}),
    p(symbolic_shapes, r"dimension 'N' \(the batch\) needs max_side >= 2, got 1", {"x": ("N",)},
      max_side=1),
    p(symbolic_shapes, "min_side=4 is larger than max_side=3", {"x": ("D",)}, min_side=4,
      max_side=3),
    p(symbolic_shapes, "min_side=0 must be at least 1", {"x": ("D",)}, min_side=0),
]


@pytest.mark.parametrize(("build", "message"), VALIDATION)
def test_argument_validation(build, message):
    with pytest.raises(InvalidArgument, match=message):
        build()


# ---------------------------------------------------------------------------------------------
# batchnorm_cases


BOUNDS = {
    "min_batch": 3, "max_batch": 5, "min_channels": 2, "max_channels": 3, "layouts": ("NCHW",),
    "dtypes": (np.float32,), "min_eps": 1e-4, "max_eps": 1e-3, "allow_zero_eps": False,
    "max_condition": 10.0, "min_std": 0.5, "max_std": 2.0,
}


@given(case=batchnorm_cases(**BOUNDS))
@settings(deadline=None)
def test_cases_respect_bounds(case):
    n, c, h, w = case.x.shape
    assert 3 <= n <= 5 and 2 <= c <= 3 and 1 <= h <= 3 and 1 <= w <= 3
    assert case.layout == "NCHW" and case.channel_axis == 1
    assert all(a.dtype == np.float32 for a in (case.x, case.gamma, case.beta, case.dout))
    assert case.dtype == np.float32
    assert 1e-4 <= case.eps <= 1e-3
    assert np.all((0.5 <= case.std) & (case.std <= 2.0))
    ratio = np.abs(case.mean) / case.std
    assert np.all(ratio <= 10.0) and case.condition == ratio.max()
    assert case.gamma.shape == case.beta.shape == case.running_mean.shape == (c,)
    assert np.all(case.running_var > 0)


@given(case=batchnorm_cases())
@settings(deadline=None)
def test_default_cases_have_legal_shapes_dtypes_and_eps(case):
    assert case.x.ndim in (2, 4) and case.x.shape[0] >= 2
    assert case.layout == ("ND" if case.x.ndim == 2 else "NCHW")
    assert case.dtype in (np.float32, np.float64)
    assert case.eps == 0 or 1e-8 <= case.eps <= 1e-1
    assert np.all(np.isfinite(case.x)) and np.all(np.isfinite(case.dout))
    assert case.condition <= 1e4


@given(case=batchnorm_cases())
@settings(deadline=None)
def test_x_has_the_drawn_mean_and_std(case):
    """Up to rounding: standardising z, mean + std * z and the cast to the dtype each round by
    at most u (|mean| + sqrt(n) std) per element (|z| <= sqrt(n - 1))."""
    rows = _rows(case.x)
    n = rows.shape[1]
    u = np.finfo(case.dtype).eps
    slack = 4 * u * (np.abs(case.mean) + np.sqrt(n) * case.std)
    mean = rows.mean(axis=1)
    std = np.sqrt(((rows - mean[:, None]) ** 2).mean(axis=1))
    assert np.all(np.abs(mean - case.mean) <= slack)
    assert np.all(np.abs(std - case.std) <= slack)
    assert np.all(std >= 0.5 * case.std)  # variance stays away from zero, even with eps = 0


@given(case=batchnorm_cases())
@settings(deadline=None)
def test_dout_values_are_distinct_and_never_constant_in_a_channel(case):
    assert np.unique(case.dout).size == case.dout.size
    assert np.all(np.ptp(_rows(case.dout), axis=1) > 0)


def _sample(size):
    """Cases from a fixed-seed run, and the events they emitted."""
    cases, events = [], []

    @settings(max_examples=size, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=batchnorm_cases())
    def collect(case):
        cases.append(case)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(strategies, "event", events.append)
        collect()
    return cases, events


@pytest.fixture(scope="module")
def sample():
    return _sample(200)


CORNERS = ["condition>=1e3", "eps<=1e-7", "eps=0", "N=2", "float32", "NCHW"]


@pytest.mark.parametrize("corner", CORNERS)
def test_each_corner_is_drawn_often(sample, corner):
    """At least one case in 20 (observed over 1000 draws: 18% to 48% per corner)."""
    cases, _ = sample
    hits = sum(corner in case.corners for case in cases)
    assert hits >= len(cases) / 20, f"{corner}: {hits} of {len(cases)}"


def test_each_corner_is_reported_as_an_event(sample):
    cases, events = sample
    assert Counter(events) == Counter(label for case in cases for label in case.corners)
    assert set(events) == set(CORNERS)


def _vacuous(case) -> bool:
    """The dx check carries no evidence: dx is exactly zero in exact arithmetic, because dout is
    affine in x in every channel (N > 2; with N = 2 any dout is, and only eps = 0 makes dx 0),
    or because every gamma is 0."""
    if not np.any(case.gamma):
        return True
    rows_x, rows_g = _rows(case.x.astype(np.float64)), _rows(case.dout.astype(np.float64))
    if rows_x.shape[1] == 2:
        return case.eps == 0.0
    for xs, gs in zip(rows_x, rows_g, strict=True):
        design = np.stack([np.ones_like(xs), (xs - xs.mean()) / xs.std()], axis=1)
        coef = np.linalg.lstsq(design, gs, rcond=None)[0]
        if np.linalg.norm(gs - design @ coef) > 1e-9 * np.linalg.norm(gs):
            return False
    return True


def test_vacuous_share_of_cases_is_below_one_percent():
    """Measured over 500 fixed-seed draws (before dout was drawn independently of x: about half)."""
    cases, _ = _sample(500)
    share = sum(map(_vacuous, cases)) / len(cases)
    assert share < 0.01, f"{share:.1%} of draws leave dx without evidence"


def _case(shape, dtype, eps, condition, layout):
    x = np.zeros(shape, dtype)
    c = np.ones(shape[1])
    return strategies.BatchNormCase(
        x, c, c, x, eps, c, c, layout, np.dtype(dtype), c * condition, c, condition
    )


@pytest.mark.parametrize(("case", "corners"), [
    pytest.param(_case((2, 3, 1, 1), np.float32, 0.0, 1e3, "NCHW"),
                 {"condition>=1e3", "eps=0", "N=2", "float32", "NCHW"}, id="all-but-tiny-eps"),
    pytest.param(_case((3, 2), np.float64, 1e-7, 999.0, "ND"), {"eps<=1e-7"}, id="tiny-eps"),
    pytest.param(_case((4, 2), np.float64, 2e-7, 1.0, "ND"), set(), id="none"),
])
def test_corners_names_what_the_case_is(case, corners):
    assert set(case.corners) == corners


# ---------------------------------------------------------------------------------------------
# layer_inputs


@given(arrays=layer_inputs({"x": (3, 4), "w": (4,)}, dtype=np.float32, min_value=-0.1,
                           max_value=2.5))
def test_layer_inputs_are_finite_normal_and_in_bounds(arrays):
    assert set(arrays) == {"x", "w"}
    assert arrays["x"].shape == (3, 4) and arrays["w"].shape == (4,)
    tiny = np.finfo(np.float32).tiny
    for a in arrays.values():
        assert a.dtype == np.float32
        assert np.all(np.isfinite(a)) and np.all((-0.1 <= a) & (a <= 2.5))
        assert np.all((a == 0) | (np.abs(a) >= tiny))


# ---------------------------------------------------------------------------------------------
# symbolic_shapes


SPEC = {"x": ("N", "D"), "gamma": ("D",), "w": ("D", 3), "y": ("N", "C", "H", "W")}


@given(shapes=symbolic_shapes(SPEC, max_side=6))
def test_symbolic_shapes_share_named_dimensions(shapes):
    n, d = shapes["x"]
    assert shapes["gamma"] == (d,) and shapes["w"] == (d, 3) and shapes["y"][0] == n
    assert 2 <= n <= 6
    assert all(1 <= side <= 6 for shape in shapes.values() for side in shape)


@pytest.mark.parametrize("parity", [pytest.param(0, id="even"), pytest.param(1, id="odd")])
def test_symbolic_shapes_draw_odd_and_even_sizes(parity):
    shapes = find(
        symbolic_shapes({"x": ("N", "D")}),
        lambda s: s["x"][0] % 2 == parity and s["x"][1] % 2 == parity,
        settings=settings(database=None),
    )
    assert all(side % 2 == parity for side in shapes["x"])


def test_symbolic_shapes_accept_digit_strings_as_fixed_sizes():
    shapes = find(symbolic_shapes({"x": ("N", "3")}), lambda s: True)
    assert shapes == {"x": (2, 3)}


def test_batch_dimension_is_at_least_two_even_when_min_side_is_one():
    shapes = find(symbolic_shapes({"x": ("N",)}, min_side=1), lambda s: True)
    assert shapes == {"x": (2,)}


@pytest.mark.parametrize("function", [batchnorm_cases, layer_inputs, symbolic_shapes],
                         ids=lambda f: f.__name__)
def test_every_parameter_is_documented(function):
    doc = inspect.getdoc(function) or ""
    params = doc.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
    documented = {p.strip() for line in params.splitlines() if not line.startswith(" ")
                  for p in line.split(":")[0].split(",")}
    assert documented == set(inspect.signature(function).parameters)
