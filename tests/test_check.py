"""The checker's verdicts: broken backwards rejected, correct ones accepted, data kept safe."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import bn_catalog as cat
import numpy as np
import pytest

from gradcheck import BatchNorm
from gradcheck.check import assert_gradients, check_grads, check_layer
from gradcheck.errors import InvalidArgument, LayerError
from gradcheck.layer import from_callables, from_class, from_functions
from gradcheck.tolerance import Tolerance

SEEDS = [0, 1, 2]


def bn_inputs(seed, n=5, d=4, dtype=np.float64):
    rng = np.random.default_rng([seed, 99])
    return {
        "x": rng.normal(1.5, 2.0, size=(n, d)).astype(dtype),
        "gamma": (rng.choice([-1.0, 1.0], d) * rng.uniform(0.5, 2.0, d)).astype(dtype),
        "beta": rng.normal(size=d).astype(dtype),
    }


def course_layer(backward, forward=cat.batchnorm_forward, eps=1e-3):
    return from_functions(forward, backward, config={"bn_param": {"mode": "train", "eps": eps}})


def snapshot(inputs):
    return {k: v.copy() for k, v in inputs.items()}


def assert_untouched(before, after):
    assert before.keys() == after.keys()
    for k in before:
        assert before[k].dtype == after[k].dtype and np.array_equal(before[k], after[k]), k


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(cat.BROKEN))
def test_broken_backward_is_rejected(name, seed):
    inputs = bn_inputs(seed)
    before = snapshot(inputs)
    report = check_layer(course_layer(cat.BROKEN[name]), inputs, seed=seed)
    assert not report.passed
    assert_untouched(before, inputs)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(5, 4), (4, 4), (2, 3), (9, 1)], ids=str)
@pytest.mark.parametrize("name", sorted(cat.CORRECT))
def test_correct_backward_passes(name, shape, seed):
    inputs = bn_inputs(seed, *shape)
    before = snapshot(inputs)
    report = check_layer(course_layer(cat.CORRECT[name]), inputs, seed=seed)
    assert report.passed, report
    assert [r.method for r in report.results] == ["complex"] * 3
    assert_untouched(before, inputs)


@pytest.mark.parametrize("seed", SEEDS)
def test_np_var_forward_falls_back_and_passes(seed):
    report = check_layer(course_layer(cat.backward_compact, cat.batchnorm_forward_npvar),
                         bn_inputs(seed), seed=seed)
    assert report.passed, report
    dx = report.results[0]
    assert dx.method == "richardson" and "richardson" in dx.reason


@pytest.mark.parametrize("seed", SEEDS)
def test_class_layer_passes_and_is_untouched(seed):
    obj = cat.BatchNormClass(4)
    obj.params["gamma"] = bn_inputs(seed)["gamma"]
    state = copy.deepcopy(vars(obj))
    report = check_layer(from_class(obj), {"x": bn_inputs(seed)["x"]}, seed=seed)
    assert report.passed, report
    assert [r.name for r in report.results] == ["x", "gamma", "beta"]
    assert obj.cache is None and obj.grads == {} and "running_mean" not in obj.bn_param
    assert np.array_equal(obj.params["gamma"], state["params"]["gamma"])


def test_course_config_dict_is_untouched():
    bn_param = {"mode": "train"}
    layer = from_functions(cat.batchnorm_forward, cat.backward_compact,
                           config={"bn_param": bn_param})
    assert check_layer(layer, bn_inputs(0)).passed
    assert bn_param == {"mode": "train"}


@pytest.mark.parametrize("name", ["dx-times-1+1e-6", "missing-mean-term"])
def test_failure_message_names_gradient_index_and_values(name):
    with pytest.raises(AssertionError) as info:
        assert_gradients(course_layer(cat.BROKEN[name]), bn_inputs(0))
    text = str(info.value)
    assert "dx" in text and "FAIL" in text and "worst at (" in text
    assert len(text.splitlines()) < 15


def test_shape_mismatch_names_both_shapes():
    report = check_layer(course_layer(cat.dbeta_keepdims), bn_inputs(0))
    (beta,) = [r for r in report.results if r.name == "beta"]
    assert beta.status == "shape" and "(1, 4)" in beta.message and "(4,)" in beta.message


def test_mutating_dout_is_reported():
    report = check_layer(course_layer(cat.mutates_dout), bn_inputs(0))
    assert all(r.passed for r in report.results)
    assert report.problems == ("backward modified `dout` in place",)
    assert not report.passed


def test_mutating_cache_is_reported():
    report = check_layer(course_layer(cat.mutates_cache), bn_inputs(0))
    assert any("cache" in p for p in report.problems)


def test_forward_mutating_input_is_reported():
    def forward(x, gamma, beta, bn_param):
        out, cache = cat.batchnorm_forward(x, gamma, beta, bn_param)
        x -= 1.0
        return out, cache

    inputs = bn_inputs(0)
    before = snapshot(inputs)
    report = check_layer(course_layer(cat.backward_compact, forward), inputs)
    assert "forward modified its input `x` in place" in report.problems
    assert_untouched(before, inputs)


def test_nondeterministic_backward_is_reported():
    rng = np.random.default_rng(5)

    def noisy(dout, cache):
        dx, dg, db = cat.backward_compact(dout, cache)
        return dx + 1e-3 * rng.standard_normal(dx.shape), dg, db

    report = check_layer(course_layer(noisy), bn_inputs(0))
    assert any("not deterministic" in p for p in report.problems)


def test_layer_state_is_restored_and_reported():
    bn = BatchNorm(4)

    class Updating(BatchNorm):
        def forward(self, inputs):
            self.calls = getattr(self, "calls", 0) + 1
            return super().forward(inputs)

    layer = Updating(4)
    with pytest.warns(UserWarning, match="state changed"):
        report = check_layer(layer, {"x": bn_inputs(0)["x"]})
    assert report.passed and not hasattr(layer, "calls")
    assert any("calls" in w for w in report.warnings)
    assert check_layer(bn, {"x": bn_inputs(0)["x"]}).warnings == ()


def test_vacuous_when_forward_ignores_input():
    def forward(x, gamma, beta, bn_param):
        return cat.batchnorm_forward(x, np.ones_like(gamma), beta, bn_param)

    def backward(dout, cache):
        dx, _, db = cat.backward_compact(dout, cache)
        return dx, np.zeros(dx.shape[1]), db

    report = check_layer(course_layer(backward, forward), bn_inputs(0))
    (gamma,) = [r for r in report.results if r.name == "gamma"]
    assert gamma.status == "zero" and gamma.passed and "wrt=" in gamma.message


def test_input_ignored_but_analytic_nonzero_fails_with_hint():
    def forward(x, gamma, beta, bn_param):
        return cat.batchnorm_forward(x, np.ones_like(gamma), beta, bn_param)

    report = check_layer(course_layer(cat.backward_compact, forward), bn_inputs(0))
    (gamma,) = [r for r in report.results if r.name == "gamma"]
    assert gamma.status == "fail" and "does the forward use `gamma`" in gamma.message


def test_constant_user_dout_warns():
    inputs = bn_inputs(0)
    with pytest.warns(UserWarning, match="`dout` is constant"):
        report = check_layer(course_layer(cat.backward_compact), inputs, dout=np.ones((5, 4)))
    assert any("constant" in w for w in report.warnings)


def test_float32_layer_judged_under_float32_budget():
    inputs = bn_inputs(0, dtype=np.float32)
    with pytest.warns(UserWarning, match="are not float64"):
        report = check_layer(BatchNorm(4), inputs)
    assert report.passed and report.dtype == "float32"
    # float32 rounding is measured (a float64 witness run), not assumed: the slack is 64 eps32
    assert all(r.rtol == pytest.approx(64 * np.finfo(np.float32).eps) for r in report.results)
    with pytest.warns(UserWarning):
        broken = check_layer(course_layer(cat.missing_mean_term), inputs)
    assert not broken.passed


def test_sampled_mode_on_large_input_states_mode_and_bound():
    x = np.random.default_rng(3).normal(12.0, 5.0, size=(128, 32))
    report = check_layer(BatchNorm(32), {"x": x})
    dx = report.results[0]
    assert report.passed and dx.mode == "sampled" and dx.directions > 0
    assert dx.elements < dx.size and np.isfinite(dx.miss_norm) and dx.miss_norm > 0
    rows = {i[0] for i in np.ndindex(128, 32)}
    assert len(rows) == 128  # sanity of the shape used below


def test_sampled_mode_catches_bug_in_one_element():
    """An error in a single element not in the sample is caught by the directions."""
    x = np.random.default_rng(4).normal(2.0, 1.0, size=(96, 32))

    class OneBadElement(BatchNorm):
        def backward(self, dout, cache):
            grads = super().backward(dout, cache)
            grads["x"] = grads["x"].copy()
            grads["x"][50, 17] += 1e-3
            return grads

    report = check_layer(OneBadElement(32), {"x": x}, wrt="x")
    assert not report.passed and "direction" in report.results[0].message


def test_check_grads_small_tier():
    x = np.linspace(-1.0, 2.0, 7)
    assert check_grads(lambda v: np.sum(np.exp(v) * v), lambda v: np.exp(v) * (1 + v), x).passed
    assert not check_grads(lambda v: np.sum(np.exp(v) * v), lambda v: np.exp(v), x).passed


def test_tolerance_override_makes_a_real_bug_pass_only_when_asked():
    layer = course_layer(cat.dx_off_by_1e6)
    assert not check_layer(layer, bn_inputs(0)).passed
    assert check_layer(layer, bn_inputs(0), tolerance=Tolerance(rtol=1e-5)).passed


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"inputs": {"x": np.arange(6).reshape(3, 2)}}, InvalidArgument,
                     r"`inputs\['x'\]` must have a floating dtype.*int64", id="int-input"),
        pytest.param({"inputs": {"x": np.array([[np.nan, 1.0], [2.0, 3.0]])}}, InvalidArgument,
                     r"`inputs\['x'\]` must be finite, got 1 NaN", id="nan-input"),
        pytest.param({"inputs": {}}, InvalidArgument, r"`inputs` must be a non-empty mapping",
                     id="empty-inputs"),
        pytest.param({"method": "magic"}, InvalidArgument, r"`method` must be one of", id="method"),
        pytest.param({"mode": "fast"}, InvalidArgument, r"`mode` must be one of", id="mode"),
        pytest.param({"seed": -1}, InvalidArgument, r"`seed` must be a non-negative integer",
                     id="seed"),
        pytest.param({"wrt": ["w"]}, InvalidArgument, r"`wrt` names 'w', which is not an input",
                     id="wrt"),
        pytest.param({"dout": np.ones((2, 2))}, InvalidArgument,
                     r"`dout` must have the output's shape \(3, 2\), got shape \(2, 2\)",
                     id="dout-shape"),
        pytest.param({"tolerance": "tight"}, InvalidArgument, r"`tolerance` must be a Tolerance",
                     id="tolerance"),
        pytest.param({"layer": object()}, InvalidArgument, r"`layer` must have callable `forward`",
                     id="not-a-layer"),
        pytest.param({"wrt": []}, InvalidArgument, r"`wrt` must name at least one input",
                     id="wrt-empty"),
        pytest.param({"wrt": 5}, InvalidArgument, r"`wrt` must be an input name or a list.*int",
                     id="wrt-int"),
        pytest.param({"timeout": -1.0}, InvalidArgument, r"`timeout` must be a finite number",
                     id="timeout-negative"),
        pytest.param({"dout": np.ones((3, 2), dtype=int)}, InvalidArgument,
                     r"^`dout` must have a floating dtype", id="dout-int"),
    ],
)
def test_input_validation(kwargs, error, match):
    args = {"layer": BatchNorm(2), "inputs": {"x": np.arange(6.0).reshape(3, 2)}} | kwargs
    layer, inputs = args.pop("layer"), args.pop("inputs")
    with pytest.raises(error, match=match):
        check_layer(layer, inputs, **args)


def test_layer_errors_name_the_phase_and_layer():
    def raising_backward(dout, cache):
        raise KeyError("oops")

    match = r"batchnorm: backward raised KeyError.*\[inputs: x \(5, 4\)"
    with pytest.raises(LayerError, match=match):
        check_layer(course_layer(raising_backward), bn_inputs(0))

    def nan_forward(x, gamma, beta, bn_param):
        out, cache = cat.batchnorm_forward(x, gamma, beta, bn_param)
        return out * np.nan, cache

    with pytest.raises(LayerError, match=r"forward returned 20 NaN or inf of 20 outputs"):
        check_layer(course_layer(cat.backward_compact, nan_forward), bn_inputs(0))

    def missing(dout, cache):
        return cat.backward_compact(dout, cache)[:2]

    with pytest.raises(LayerError, match=r"backward returned no gradient for `beta`"):
        check_layer(course_layer(missing), bn_inputs(0))


def test_callable_layer_and_warnings_are_quiet_for_float64():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = check_layer(from_callables(lambda v: np.sum(v**3), lambda v: 3 * v**2),
                             {"x": np.array([1.0, -2.0, 0.5])})
    assert report.passed and report.results[0].method == "complex"


@pytest.mark.parametrize("name", ["dx-times-1+1e-6", "missing-mean-term", "dgamma-times-gamma"])
def test_directional_mode_catches_bugs(name):
    inputs = bn_inputs(0, n=9, d=4)
    assert check_layer(course_layer(cat.backward_compact), inputs, mode="directional").passed
    report = check_layer(course_layer(cat.BROKEN[name]), inputs, mode="directional")
    assert not report.passed
    failing = [r for r in report.results if not r.passed]
    assert all(r.mode == "directional" and r.elements == 0 and r.directions > 0 for r in failing)
    assert all("direction" in r.message for r in failing)


# --- a backward that computes or returns in a narrower dtype than its float64 layer ------------


def _tanh_affine(backward_dtype: type, returned: type, bug: float) -> Any:
    def forward(x: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, Any]:
        return np.tanh(x @ W), (x, W)

    def backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray]:
        x, W = cache
        dz = (dout * (1 - np.tanh(x @ W) ** 2)).astype(backward_dtype)
        dx = (dz @ W.T.astype(backward_dtype)).astype(np.float64) * (1 + bug)
        dW = (x.T.astype(backward_dtype) @ dz).astype(np.float64)
        return dx.astype(returned), dW.astype(returned)

    return from_functions(forward, backward)


@pytest.mark.parametrize("inside, returned", [(np.float16, np.float64), (np.float32, np.float64),
                                              (np.float64, np.float16)])
def test_a_narrower_backward_is_judged_by_its_measured_rounding(inside: type,
                                                                returned: type) -> None:
    """Mixed precision in the backward of a float64 layer: no false alarm (its rounding is
    measured from the backward's linearity in dout), a 1e-2 error fails, and ``detectable``
    is what the narrower dtype allows, not float64's nor a loose float16 tolerance."""
    rng = np.random.default_rng(3)
    inputs = {"x": rng.normal(size=(8, 6)), "W": rng.normal(size=(6, 4))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        good = check_layer(_tanh_affine(inside, returned, 0.0), inputs)
        bad = check_layer(_tanh_affine(inside, returned, 1e-2), inputs)
    assert good.passed, [(r.name, r.status, r.message) for r in good.results]
    dx = {r.name: r for r in bad.results}["x"]
    assert dx.status == "fail", dx.message
    narrow = np.finfo(inside if inside != np.float64 else returned).eps
    assert narrow <= dx.detectable <= 1e-2, dx.detectable


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("mode", ["full", "directional"])
def test_agreement_with_a_reference_of_another_function_is_no_pass(mode: str) -> None:
    """A float32 layer whose constant depends on its dtype: the float64 reference the numerical
    side differentiates is another function, so a backward that drops the constant agrees with
    it, and that agreement must not pass (nor may the discrepancy of the right one fail)."""
    def forward(x: np.ndarray) -> tuple[np.ndarray, float]:
        k = 1 + 1e3 * float(np.finfo(x.dtype).eps)
        return x * k, k

    def right(dout: np.ndarray, k: float) -> tuple[np.ndarray]:
        return (dout * k,)

    def dropped(dout: np.ndarray, k: float) -> tuple[np.ndarray]:
        return (dout.astype(np.float32),)

    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    for backward in (right, dropped):
        (r,) = check_layer(from_functions(forward, backward), {"x": x}, mode=mode).results
        assert r.status == "inconclusive", (backward.__name__, r.status, r.message)
        assert "another function" in r.message + r.reason


@pytest.mark.parametrize("mode", ["full", "sampled", "directional", "auto"])
def test_a_zero_dimensional_input_is_checked_in_every_mode(mode: str) -> None:
    """A learnable scalar (a temperature as ``np.asarray(0.3)``): sampled mode crashed on it."""
    def forward(x: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, Any]:
        return x * np.exp(s), (x, s)

    def backward(wrong: float) -> Any:
        def bwd(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray]:
            x, s = cache
            return dout * np.exp(s), np.asarray(np.sum(dout * x * np.exp(s)) * wrong)
        return bwd

    inputs = {"x": np.arange(1.0, 5.0), "s": np.asarray(0.3)}
    good = check_layer(from_functions(forward, backward(1.0)), inputs, mode=mode)
    bad = check_layer(from_functions(forward, backward(1.01)), inputs, mode=mode)
    assert good.passed, [(r.name, r.status, r.message) for r in good.results]
    assert {r.name: r.status for r in bad.results}["s"] == "fail"
