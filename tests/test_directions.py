"""Directions shared by a check's inputs, their stated miss bound, the lazy witness runs and the
quick probe's second look before a failure."""

from __future__ import annotations

import bn_catalog as cat
import numpy as np
import pytest

from gradcheck import check as check_module
from gradcheck import numeric
from gradcheck._engine.judge import DIRECTIONS
from gradcheck.check import check_grads, check_layer
from gradcheck.errors import InvalidArgument
from gradcheck.layer import from_functions


def config() -> dict:
    """A fresh one per layer: the catalog's forward stores its running statistics in it."""
    return {"bn_param": {"mode": "train", "eps": 1e-5}}


CONFIG = config()


def inputs(seed: int, n: int = 32, d: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 7])
    return {"x": rng.normal(3.0, 2.0, size=(n, d)), "gamma": rng.uniform(0.5, 2.0, d),
            "beta": rng.normal(size=d)}


def layer(backward, forward=cat.batchnorm_forward, seen=None):
    def traced(x, gamma, beta, bn_param):
        if seen is not None:
            seen.add(np.asarray(x).dtype)
        return forward(x, gamma, beta, bn_param)

    return from_functions(traced, backward, config=CONFIG)


def with_error(name: str, error: np.ndarray):
    index = {"x": 0, "gamma": 1, "beta": 2}[name]

    def backward(dout, cache):
        grads = list(cat.backward_compact(dout, cache))
        grads[index] = grads[index] + error.reshape(grads[index].shape)
        return tuple(grads)

    return backward


def test_directions_shared_by_the_inputs_cost_one_set_of_evaluations():
    report = check_layer(layer(cat.backward_compact), inputs(0), method="complex",
                         mode="directional")
    assert report.passed
    assert sum(r.nfev for r in report.results) == DIRECTIONS  # not one set per input
    assert all("directions shared with" in r.reason for r in report.results)


@pytest.mark.parametrize("name", ["x", "gamma", "beta"])
def test_an_error_in_one_input_is_caught_and_named_under_shared_directions(name):
    data = inputs(1)
    clean = check_layer(layer(cat.backward_compact), data, method="complex", mode="directional")
    dout = np.random.default_rng(2).standard_normal((32, 16))
    grads = cat.backward_compact(dout, cat.batchnorm_forward(**data, **CONFIG)[1])
    size = np.linalg.norm(grads[{"x": 0, "gamma": 1, "beta": 2}[name]])
    error = np.random.default_rng(3).standard_normal(data[name].shape)
    report = check_layer(layer(with_error(name, 1e-7 * size * error / np.linalg.norm(error))),
                         data, method="complex", mode="directional")
    assert clean.passed and not report.passed
    assert [r.name for r in report.results if not r.passed] == [name]


@pytest.mark.parametrize("name", ["x", "gamma"])
@pytest.mark.parametrize("seed", range(6))
def test_an_error_at_the_stated_miss_norm_is_caught(name, seed):
    """The bound says: an error of this 2-norm escapes every direction with probability at most
    1e-6. An error of any direction at that norm must therefore be caught."""
    data = inputs(seed)
    clean = check_layer(layer(cat.backward_compact), data, method="complex", mode="directional",
                        seed=seed)
    miss = next(r.miss_norm for r in clean.results if r.name == name)
    assert clean.passed and np.isfinite(miss) and miss > 0
    error = np.random.default_rng([seed, 11]).standard_normal(data[name].shape)
    report = check_layer(layer(with_error(name, miss * error / np.linalg.norm(error))), data,
                         method="complex", mode="directional", seed=seed)
    assert not report.passed


def test_a_passing_directional_check_measures_its_rounding_for_its_guarantee():
    """``detectable`` is proven on the measured budget, so even a passing check runs the layer
    once in the wider dtype (where one exists): a lean budget would state a sensitivity the
    check does not have where the backward's terms cancel."""
    seen: set = set()
    report = check_layer(layer(cat.backward_compact, seen=seen), inputs(2), method="complex",
                         mode="directional")
    assert report.passed
    wider = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
    assert (np.dtype(np.longdouble) in seen) == wider
    assert all(np.isfinite(r.detectable) for r in report.results)


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps,
                    reason="no dtype wider than float64 on this platform")
def test_a_failing_check_measures_the_analytic_rounding_in_the_wider_dtype():
    seen: set = set()
    report = check_layer(layer(cat.dx_off_by_1e6, seen=seen), inputs(2), method="complex")
    assert not report.passed
    assert np.dtype(np.longdouble) in seen


def test_a_redundant_input_is_still_reported_zero_without_paying_for_the_others():
    """``zero`` needs the witness; the lazy path must not turn it into ``pass``."""
    def forward(x, gamma, beta, bn_param):
        return cat.batchnorm_forward(x + beta, gamma, np.zeros_like(beta), bn_param)

    def backward(dout, cache):
        dx, dgamma, _ = cat.backward_compact(dout, cache)
        return dx, dgamma, dx.sum(axis=0)

    for mode in ("full", "directional"):
        report = check_layer(from_functions(forward, backward, config=CONFIG), inputs(4),
                             method="complex", mode=mode)
        assert {r.name: r.status for r in report.results}["beta"] == "zero", mode


def test_a_failure_on_the_quick_probe_is_probed_again_in_full(monkeypatch):
    """Part of ``f`` drops the imaginary part (``.real``) and the quick probe is made to miss
    it: the complex step is then blind to that part, the correct gradient looks wrong, and the
    check must probe again in full and judge with Richardson instead."""
    real_probe = check_module.probe_check
    quick_calls = []

    def fooled(spec, ref, quick=True):
        if quick:
            quick_calls.append(1)
            return numeric.Probe(True, "", (), (), quick=True), 0
        return real_probe(spec, ref, quick=False)

    monkeypatch.setattr(check_module, "probe_check", fooled)
    x = np.linspace(0.5, 2.0, 6)
    report = check_grads(lambda a: np.sum(a**3) + np.sum(np.asarray(a).real ** 2),
                         lambda a: 3 * a**2 + 2 * a, x)
    assert quick_calls
    assert report.passed and report.method == "richardson"


def test_rebound_refuses_an_estimate_that_is_not_the_complex_step():
    est = numeric.central(lambda a: float(np.sum(a**2)), np.ones(2))
    with pytest.raises(InvalidArgument, match="complex step"):
        numeric.rebound(est, np.zeros(2))


@pytest.mark.parametrize(("shape", "expected"), [
    pytest.param((64, 32), {"x": "full", "gamma": "full", "beta": "full"}, id="every-element"),
    pytest.param((256, 64), {"x": "sampled", "gamma": "full", "beta": "full"}, id="sample-of-x"),
    pytest.param((8, 64, 16, 16), {"x": "directional", "gamma": "directional",
                                   "beta": "directional"}, id="directions-only"),
])
def test_auto_mode_spends_a_budget_of_evaluations_times_elements(shape, expected):
    from gradcheck import BatchNorm

    x = np.random.default_rng(0).normal(2.0, 3.0, size=shape)
    report = check_layer(BatchNorm(shape[1]), {"x": x})
    assert report.passed
    assert {r.name: r.mode for r in report.results} == expected
    directional = [r for r in report.results if r.mode == "directional"]
    assert all(np.isfinite(r.miss_norm) for r in directional)


def test_an_explicit_mode_is_kept_whatever_the_size():
    from gradcheck import BatchNorm

    x = np.random.default_rng(1).normal(size=(8, 64, 16, 16))
    report = check_layer(BatchNorm(64), {"x": x}, mode="sampled", wrt=["gamma", "beta"])
    assert {r.mode for r in report.results} == {"sampled"}


def _relu(backward):
    def forward(x):
        return np.maximum(0, x), x

    return from_functions(forward, backward)


def _relu_backward(dout, x):
    return dout * (x > 0)


def _leaky_everything(dout, x):
    return dout.copy()  # passes the gradient through the negatives too


TIES = np.random.default_rng(0).integers(-2, 3, size=(32, 32)).astype(float)  # 20% exact zeros


@pytest.mark.parametrize("method", ["auto", "richardson", "complex"])
def test_a_correct_relu_with_more_kinks_than_are_analysed_passes(method):
    """Over 512 candidates the kink analysis must take the worst first, and leave the rest
    without a verdict rather than fail them (it once took the first 512 by index)."""
    report = check_layer(_relu(_relu_backward), {"x": TIES}, method=method)
    assert report.passed, report.results[0].message


def test_directions_that_all_cross_kinks_give_no_verdict():
    report = check_layer(_relu(_relu_backward), {"x": TIES}, mode="directional")
    assert report.verdict == "inconclusive"
    assert "no direction was compared" in report.results[0].message


def test_auto_estimates_elements_when_the_directions_carry_no_evidence():
    x = np.random.default_rng(1).integers(-2, 3, size=(256, 256)).astype(float)
    good = check_layer(_relu(_relu_backward), {"x": x})
    bad = check_layer(_relu(_leaky_everything), {"x": x})
    # Every sampled element agrees, but the elements not sampled rest on directions that all
    # cross a kink: that is no evidence for them, and the verdict says so instead of passing.
    (r,) = good.results
    assert r.mode == "sampled" and r.status == "inconclusive", r.message
    assert "mode='full'" in r.message
    assert not bad.passed and bad.verdict == "fail"


def test_auto_estimates_a_small_input_one_by_one_when_its_directions_are_weak():
    """float32 at offset 1e3 and spread 1e-3: the directions shared with x are too coarse for
    dgamma, so auto estimates gamma's 64 elements, which see a 1% error."""
    rng = np.random.default_rng(2)
    data = {"x": rng.normal(1e3, 1e-3, size=(8, 64, 16, 16)).astype(np.float32),
            "gamma": rng.uniform(0.5, 2.0, 64).astype(np.float32),
            "beta": rng.normal(size=64).astype(np.float32)}

    def forward(x, gamma, beta, bn_param):
        n, c, h, w = x.shape
        out, cache = cat.batchnorm_forward(x.transpose(0, 2, 3, 1).reshape(-1, c), gamma, beta,
                                           bn_param)
        return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape)

    def backward(factor):
        def spatial(dout, cache):
            inner, (n, c, h, w) = cache
            dx, dgamma, dbeta = cat.backward_compact(
                dout.transpose(0, 2, 3, 1).reshape(-1, c), inner)
            return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma * factor, dbeta

        return spatial

    with pytest.warns(Warning):
        good = check_layer(from_functions(forward, backward(1.0), config=config()), data)
    with pytest.warns(Warning):
        bad = check_layer(from_functions(forward, backward(1.01), config=config()), data)
    modes = {r.name: r.mode for r in good.results}
    statuses = {r.name: r.status for r in good.results}
    assert modes["gamma"] == "full" and statuses["gamma"] == "pass", (modes, statuses)
    # dx at a conditioning of 1e6 in float32: rounding could hide an error as large as dx
    # itself along every direction, so x carries no verdict (never a false alarm)
    assert "fail" not in statuses.values(), statuses
    assert not bad.passed
    assert [r.name for r in bad.results if r.status == "fail"] == ["gamma"]


def test_auto_estimates_weak_parameters_one_by_one_only_within_its_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The escalation from weak directions to elements is bounded by what it costs: beyond
    ``ESCALATION_WORK`` the directions' result stands and the reason says what full mode
    would cost (a float32 BatchNorm at 8M elements spent 2048 forwards of 8M on gamma)."""
    from gradcheck._engine import judge

    rng = np.random.default_rng(2)
    n, d = 16, 1024  # too large for auto to give gamma every element from the start
    data = {"x": rng.normal(1e3, 1e-3, size=(n, d)).astype(np.float32),
            "gamma": rng.uniform(0.5, 2.0, d).astype(np.float32),
            "beta": rng.normal(size=d).astype(np.float32)}
    layer = from_functions(cat.batchnorm_forward, cat.backward_compact, config=config())
    with pytest.warns(Warning):
        within = check_layer(layer, data)
    monkeypatch.setattr(judge, "ESCALATION_WORK", d * (n * d + 2 * d) // 2)  # half the cost
    with pytest.warns(Warning):
        beyond = check_layer(layer, data)
    assert {r.name: r.mode for r in within.results}["gamma"] == "full"
    gamma = {r.name: r for r in beyond.results}["gamma"]
    assert gamma.mode == "directional" and gamma.status != "fail"
    assert "beyond auto's budget" in gamma.reason, gamma.reason


@pytest.mark.parametrize("factor", [1.0, 1.0001])
def test_a_smooth_direction_whose_step_crosses_zero_is_measured_again_below_it(
        factor: float) -> None:
    """Softplus through ``np.logaddexp`` (no complex step: Richardson) with elements near 0:
    Richardson's steps move them across 0, where a kink or a pole could sit. The direction is
    measured again on steps below that crossing, so a 1e-4 bug fails (it was inconclusive,
    "8 of 8 directions cross a kink") and the right backward passes."""
    def forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.logaddexp(0, x), x

    def backward(dout: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
        return (dout / (1 + np.exp(-x)) * factor,)

    x = np.random.default_rng(3).normal(size=(6, 7))
    x[0, 0], x[2, 3] = 1e-3, -2e-3
    (r,) = check_layer(from_functions(forward, backward), {"x": x}, mode="directional").results
    assert r.method == "richardson"
    assert r.status == ("pass" if factor == 1.0 else "fail"), r.message
