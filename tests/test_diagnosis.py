"""Diagnosis: the learner-bug catalog named right, nothing claimed on correct code, bug or noise.

The expected causes are written in ``bn_catalog.EXPECTED`` from the broken code itself, not from
the diagnosis; the confusion table (mistake -> diagnosed cause) is printed by
``test_the_catalog_confusion`` (run with ``-s`` to see it).
"""

from __future__ import annotations

import json
import warnings

import bn_catalog as cat
import numpy as np
import pytest

from gradcheck import BatchNorm, diagnosis
from gradcheck import _format as fmt
from gradcheck import report as rep
from gradcheck.check import check_grads, check_layer
from gradcheck.layer import from_functions
from gradcheck.results import GradientResult

SEEDS = [0, 1, 2]
GRADIENT_MISTAKES = sorted(k for k, v in cat.EXPECTED.items() if v)


def bn_inputs(seed, n=5, d=4):
    rng = np.random.default_rng([seed, 99])
    return {
        "x": rng.normal(1.5, 2.0, size=(n, d)),
        "gamma": rng.choice([-1.0, 1.0], d) * rng.uniform(0.5, 2.0, d),
        "beta": rng.normal(size=d),
    }


def course_layer(backward, forward=cat.batchnorm_forward, eps=1e-3):
    return from_functions(forward, backward, config={"bn_param": {"mode": "train", "eps": eps}})


def diagnosed(report) -> dict[str, str]:
    """{gradient: diagnosed cause} for every gradient that carries a diagnosis."""
    return {r.name: r.diagnosis.cause for r in report.results if r.diagnosis is not None}


def test_the_catalog_confusion(capsys):
    rows, right = [], 0
    for name in sorted(cat.EXPECTED):
        report = check_layer(course_layer(cat.BROKEN[name]), bn_inputs(0))
        want, got = cat.EXPECTED[name], diagnosed(report)
        ok = bool(want) and got == want
        right += ok
        shown = ", ".join(f"d{k}: {v or '-'}" for k, v in got.items()) or (
            "problem: " + "; ".join(report.problems) if report.problems else "-")
        expected = ", ".join(f"d{k}: {v}" for k, v in want.items()) or "(problem)"
        rows.append(f"{name:24} {expected:45} -> {shown}{'' if ok or not want else '   WRONG'}")
    with capsys.disabled():
        print(f"\ncause -> diagnosed ({right} of {len(GRADIENT_MISTAKES)} gradient mistakes "
              "named right)")
        print("\n".join(rows))
    assert len(cat.EXPECTED) >= 15
    assert right >= 12


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", GRADIENT_MISTAKES)
def test_each_learner_bug_is_named(name, seed):
    report = check_layer(course_layer(cat.BROKEN[name]), bn_inputs(seed), seed=seed)
    assert diagnosed(report) == cat.EXPECTED[name]
    for r in report.results:
        if r.diagnosis is not None and r.diagnosis.findings:
            assert r.diagnosis.findings[0].explained >= diagnosis.THRESHOLD
        if r.diagnosis is not None and r.diagnosis.sweep is not None:
            assert r.diagnosis.sweep.verdict == "bug", r.diagnosis.sweep


@pytest.mark.parametrize("name", sorted(cat.GENERIC))
def test_layer_agnostic_causes(name):
    f, wrong, x, cause = cat.GENERIC[name]
    result = check_grads(f, wrong, x).results[0]
    assert result.status == "fail"
    assert result.diagnosis.cause == cause, result.diagnosis


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(5, 4), (4, 4), (2, 3), (9, 1)], ids=str)
@pytest.mark.parametrize("name", sorted(cat.CORRECT))
def test_no_cause_is_claimed_on_a_correct_backward(name, shape, seed):
    report = check_layer(course_layer(cat.CORRECT[name]), bn_inputs(seed, *shape), seed=seed)
    assert report.passed
    assert [r.diagnosis for r in report.results] == [None] * len(report.results)


@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2, 3)], ids=str)
@pytest.mark.parametrize("method", ["complex", "richardson"])
def test_no_cause_is_claimed_on_the_reference(shape, method):
    x = np.random.default_rng(3).normal(2.0, 3.0, size=shape)
    report = check_layer(BatchNorm(shape[1]), {"x": x}, method=method)
    assert report.passed
    assert all(r.diagnosis is None for r in report.results)


def test_diagnose_refuses_passing_gradients():
    report = check_grads(lambda x: np.sum(x**2), lambda x: 2 * x, np.arange(3.0))
    assert diagnosis.diagnose(report.results[0]) is None


# --- a 4-D BatchNorm written by a learner: the same terms, over N, H and W -------------------


def spatial_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=(0, 2, 3), keepdims=True)
    std = np.sqrt(var + eps)
    xhat = xc / std
    g = gamma.reshape(1, -1, 1, 1)
    return g * xhat + beta.reshape(1, -1, 1, 1), (xhat, std, g)


def spatial_missing_mean(dout, cache):
    xhat, std, g = cache
    axes = (0, 2, 3)
    dx = g / std * (dout - xhat * (dout * xhat).mean(axis=axes, keepdims=True))
    return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)


def test_a_4d_batchnorm_bug_is_named_per_channel():
    rng = np.random.default_rng(5)
    inputs = {"x": rng.normal(1.0, 2.0, size=(3, 2, 2, 3)), "gamma": rng.uniform(0.5, 2, 2),
              "beta": rng.normal(size=2)}
    layer = from_functions(spatial_forward, spatial_missing_mean, config={"bn_param": {}})
    assert diagnosed(check_layer(layer, inputs)) == {"x": "missing-mean-term"}


# --- bug or noise -----------------------------------------------------------------------------


@pytest.mark.parametrize(("analytic", "budget", "verdict"), [
    pytest.param(12.0 + 1e-3, 1e-9, "bug", id="constant-offset-is-a-bug"),
    pytest.param(12.0, 1e-6, "numerical", id="right-value-agrees-at-some-step"),
    pytest.param(12.0, 1e-30, "numerical", id="right-value-shrinks-with-the-step"),
])
def test_step_sweep(analytic, budget, verdict):
    sweep = diagnosis.step_sweep(lambda a: float(np.sum(a**3)), np.array([2.0]), 0, analytic,
                                 budget)
    assert sweep.verdict == verdict, sweep
    assert len(sweep.steps) == len(sweep.discrepancies) == len(diagnosis.SWEEP_STEPS)
    # the oracle: D(h) for x**3 at 2 is 12 + h**2, so analytic - D(h) = (analytic - 12) - h**2
    expected = [(analytic - 12.0) - h**2 for h in sweep.steps]
    np.testing.assert_allclose(sweep.discrepancies, expected, rtol=1e-5, atol=1e-6)


def test_directional_mode_says_why_there_is_no_diagnosis():
    report = check_layer(course_layer(cat.missing_mean_term), bn_inputs(0), mode="directional")
    d = report.results[0].diagnosis
    assert d is not None and d.findings == () and "--mode full" in d.note


def test_sampled_mode_is_diagnosed_from_the_sampled_elements():
    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(1.0, 2.0, size=(60, 40)), "gamma": rng.uniform(0.5, 2, 40),
              "beta": rng.normal(size=40)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = check_layer(course_layer(cat.missing_xhat_term), inputs, wrt="x")
    r = report.results[0]
    assert r.mode == "sampled" and r.diagnosis.cause == "missing-xhat-term"


# --- the diagnosis in the reports -------------------------------------------------------------


def _documented(section):
    from test_report import _documented_keys

    return _documented_keys(section)


def test_diagnosis_json_keys_are_documented():
    report = check_layer(course_layer(cat.missing_mean_term), bn_inputs(0))
    data = json.loads(rep.render([report], "json"))
    d = data["results"][0]["diagnosis"]
    assert list(d) == _documented("Diagnosis")
    assert d["cause"] == "missing-mean-term"
    assert d["findings"][0]["explained"] > 0.99
    assert d["sweep"]["verdict"] == "bug"
    assert [r["diagnosis"] for r in data["results"][1:]] == [None, None]


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_every_document_states_the_diagnosis_with_its_evidence(fmt):
    report = check_layer(course_layer(cat.swapped_dgamma_dbeta), bn_inputs(0))
    text = " ".join(rep.render([report], fmt).replace("&gt;", ">").split())  # unwrapped
    assert "diagnosis: dgamma holds the values of dbeta: the two gradients are swapped" in text
    assert "evidence: analytic dgamma equals the numerical dbeta; explains > 99.99%" in text
    assert "a bug, not numerical error" in text


def test_evidence_is_kept_out_of_repr_and_equality():
    report = check_layer(course_layer(cat.backward_compact), bn_inputs(0))
    r: GradientResult = report.results[0]
    assert r.evidence is not None and r.evidence.analytic.shape == (5, 4)
    assert "evidence" not in repr(r)
    from dataclasses import replace

    assert replace(r, evidence=None) == r


# --- the headline's claims hold for the wrong elements, and only for them ----------------------

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _swish_grad_off_at(z, flat, rel=1e-3):
    """swish's derivative, off by ``rel`` (relative) at the one flat element ``flat``."""
    s = _sigmoid(z)
    d = (s * (1.0 + z * (1.0 - s))).copy()
    d.reshape(-1)[flat] *= 1.0 + rel
    return d


_XS = np.random.default_rng(1).normal(size=(8, 6))


def test_one_wrong_element_is_named_alone_not_with_rounding_level_ones():
    """1e-3 relative at element (0, 3) of an 8×6 swish gradient: the others' errors are
    rounding (~1e-17); the headline lists the one element over its budget, nothing else."""
    report = check_grads(lambda x: np.sum(x * _sigmoid(x)), lambda x: _swish_grad_off_at(x, 3),
                         _XS)
    d = report.results[0].diagnosis
    assert d is not None and d.findings
    assert d.findings[0].text == "dx is wrong in 1 element(s): (0, 3)"


def test_one_wrong_parameter_element_is_no_parity_pattern():
    """w of shape (6,), only w[3] wrong: one element supports no "odd indices" pattern."""
    x = _XS

    def f(w):
        z = x * w
        return np.sum(z * _sigmoid(z))

    report = check_grads(f, lambda w: np.sum(_swish_grad_off_at(x * w, 3) * x, axis=0),
                         np.linspace(0.5, 1.5, 6))
    d = report.results[0].diagnosis
    assert d is not None
    causes = [f.cause for f in d.findings]
    assert "parity" not in causes, [f.text for f in d.findings]
    assert d.findings[0].text == "dx is wrong in 1 element(s): (3,)"


def test_parity_needs_every_wrong_element_at_that_parity():
    """Odd indices 1, 3, 5 wrong and index 8 too: not "only at odd indices"."""
    x = np.linspace(-2.0, 3.0, 12)
    off = np.where(np.isin(np.arange(12), [1, 3, 5, 8]), 0.3, 0.0)
    report = check_grads(lambda x: np.sum(np.sin(x)), lambda x: np.cos(x) + off, x)
    d = report.results[0].diagnosis
    assert d is not None
    assert all("odd indices" not in f.text and "even indices" not in f.text
               for f in d.findings), [f.text for f in d.findings]


def test_a_shape_finding_prints_no_fit_share():
    """dbeta not summed over the batch: nothing was compared, so no "explains x% of
    ||analytic - numeric||²" line; the shapes are the evidence."""
    report = check_layer(course_layer(cat.BROKEN["dbeta-not-summed"]), bn_inputs(0))
    (res,) = [r for r in report.results if r.name == "beta"]
    assert res.status == "shape"
    lines = fmt.diagnosis_lines(res)
    assert lines == ["diagnosis: dbeta has `x`'s shape (5, 4): it is not summed over the batch "
                     "axes", "evidence: the backward returned shape (5, 4); the input has (4,)"]
    assert "explains" not in rep.render([report], "text")
