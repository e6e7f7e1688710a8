"""The reference BatchNorm against closed forms, a naive oracle, and hand-run conventions."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.errors import GradcheckError, InvalidArgument
from gradcheck.layers.batchnorm import (
    CONVENTIONS,
    BatchNorm,
    batchnorm_backward,
    batchnorm_forward,
    init_running_stats,
    update_running_stats,
)


def naive_forward(x, gamma, beta, eps):
    """Per-channel loops in plain Python floats: an oracle independent of the vectorised code."""
    n, d = x.shape
    out = np.empty_like(x, dtype=np.float64)
    for j in range(d):
        col = [float(v) for v in x[:, j]]
        mu = sum(col) / n
        var = sum((v - mu) ** 2 for v in col) / n
        for i in range(n):
            out[i, j] = gamma[j] * (col[i] - mu) / (var + eps) ** 0.5 + beta[j]
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_forward_matches_naive_loops(rng):
    x = 5 * rng.standard_normal((7, 4)) + 12
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    out, _ = batchnorm_forward(x, gamma, beta, eps=1e-3)
    np.testing.assert_allclose(out, naive_forward(x, gamma, beta, 1e-3), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.3])
def test_two_samples_closed_form(rng, eps):
    x = rng.standard_normal((2, 3)) * 4
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    v = ((x[0] - x[1]) / 2) ** 2
    s = np.sign(x[0] - x[1])
    expected_first = beta + s * gamma * np.sqrt(v / (v + eps))
    out, _ = batchnorm_forward(x, gamma, beta, eps=eps)
    np.testing.assert_allclose(out[0], expected_first, rtol=1e-13)
    np.testing.assert_allclose(out[1], 2 * beta - expected_first, rtol=1e-13, atol=1e-15)


def test_constant_channel_gives_beta(rng):
    x = rng.standard_normal((5, 3))
    x[:, 1] = 7.25
    beta = np.array([0.5, -2.0, 3.0])
    out, _ = batchnorm_forward(x, None, beta, eps=1e-5)
    assert np.array_equal(out[:, 1], np.full(5, -2.0))


def test_defaults_are_ones_and_zeros(rng):
    x = rng.standard_normal((6, 3))
    out_default, _ = batchnorm_forward(x)
    out_explicit, _ = batchnorm_forward(x, np.ones(3), np.zeros(3))
    assert np.array_equal(out_default, out_explicit)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(2, 3), (9, 4), (3, 2, 5), (4, 3, 2, 3)])
def test_staged_and_compact_backward_agree(rng, shape, training):
    x = 3 * rng.standard_normal(shape) - 4
    c = shape[1]
    gamma, beta, dout = rng.standard_normal(c), rng.standard_normal(c), rng.standard_normal(shape)
    _, cache = batchnorm_forward(
        x, gamma, beta, training=training, running_mean=rng.standard_normal(c),
        running_var=rng.random(c) + 0.5,
    )
    staged = batchnorm_backward(dout, cache, form="staged")
    compact = batchnorm_backward(dout, cache, form="compact")
    for name in ("x", "gamma", "beta"):
        scale = max(1.0, float(np.max(np.abs(compact[name]))))
        assert np.max(np.abs(staged[name] - compact[name])) <= 1e-12 * scale, name


def test_backward_matches_finite_differences_of_naive_forward(rng):
    """An oracle independent of both backward forms: central differences of the loop forward."""
    x = rng.standard_normal((5, 2)) * 2 + 1
    gamma, beta, dout = rng.standard_normal(2), rng.standard_normal(2), rng.standard_normal((5, 2))
    _, cache = batchnorm_forward(x, gamma, beta, eps=1e-2)
    dx = batchnorm_backward(dout, cache)["x"]
    h = 1e-6
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        diff = naive_forward(xp, gamma, beta, 1e-2) - naive_forward(xm, gamma, beta, 1e-2)
        num = np.sum(dout * diff)
        assert abs(num / (2 * h) - dx[idx]) < 1e-7


def test_param_gradients_are_sums(rng):
    x, dout = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    _, cache = batchnorm_forward(x, eps=0.0)
    xhat = (x - x.mean(0)) / x.std(0)
    grads = batchnorm_backward(dout, cache)
    np.testing.assert_allclose(grads["gamma"], (dout * xhat).sum(0), rtol=1e-12)
    np.testing.assert_allclose(grads["beta"], dout.sum(0), rtol=1e-14)
    assert grads["gamma"].shape == (3,) and grads["beta"].shape == (3,)


@pytest.mark.parametrize("channel_axis", [1, -1], ids=["channels-first", "channels-last"])
def test_spatial_equals_reshaped_1d(rng, channel_axis):
    shape = (3, 4, 5, 2) if channel_axis == 1 else (3, 5, 2, 4)
    x, dout = rng.standard_normal(shape) * 2 + 3, rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    out, cache = batchnorm_forward(x, gamma, beta, channel_axis=channel_axis)
    grads = batchnorm_backward(dout, cache)
    move = (lambda a: np.moveaxis(a, 1, -1)) if channel_axis == 1 else (lambda a: a)
    x2, d2 = move(x).reshape(-1, 4), move(dout).reshape(-1, 4)
    out2, cache2 = batchnorm_forward(x2, gamma, beta)
    grads2 = batchnorm_backward(d2, cache2)
    np.testing.assert_allclose(move(out).reshape(-1, 4), out2, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(move(grads["x"]).reshape(-1, 4), grads2["x"], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(grads["gamma"], grads2["gamma"], rtol=1e-12)
    np.testing.assert_allclose(grads["beta"], grads2["beta"], rtol=1e-12)


def test_inference_is_affine_and_backward_is_scale(rng):
    x, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.1
    out, cache = batchnorm_forward(x, gamma, beta, training=False, eps=1e-3,
                                   running_mean=rm, running_var=rv)
    np.testing.assert_allclose(out, gamma * (x - rm) / np.sqrt(rv + 1e-3) + beta, rtol=1e-13)
    for form in ("staged", "compact"):
        dx = batchnorm_backward(dout, cache, form=form)["x"]
        np.testing.assert_allclose(dx, dout * gamma / np.sqrt(rv + 1e-3), rtol=1e-14)


def test_float32_in_float32_out_with_float64_statistics(rng):
    x = (rng.standard_normal((64, 3)) * 1e-2 + 1e3).astype(np.float32)
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    out, cache = batchnorm_forward(x, gamma, beta)
    grads = batchnorm_backward(np.ones_like(x), cache)
    assert out.dtype == np.float32 and grads["x"].dtype == np.float32
    assert grads["gamma"].dtype == np.float32
    exact = naive_forward(x.astype(np.float64), gamma, beta, 1e-5)
    assert np.max(np.abs(out - exact)) < 1e-5  # float32 rounding of the output, not of the stats


def test_forward_is_complex_step_safe(rng):
    x, dout = rng.standard_normal((5, 2)) * 3 + 8, rng.standard_normal((5, 2))
    _, cache = batchnorm_forward(x)
    dx = batchnorm_backward(dout, cache)["x"]
    h = 1e-30
    for idx in np.ndindex(x.shape):
        xc = x.astype(complex)
        xc[idx] += 1j * h
        out, _ = batchnorm_forward(xc)
        assert abs(np.sum(dout * out).imag / h - dx[idx]) <= 1e-13 * np.max(np.abs(dx))


def test_inputs_are_not_mutated(rng):
    x, gamma, beta, dout = (rng.standard_normal(s) for s in [(4, 3), 3, 3, (4, 3)])
    copies = [a.copy() for a in (x, gamma, beta, dout)]
    _, cache = batchnorm_forward(x, gamma, beta)
    batchnorm_backward(dout, cache, form="staged")
    batchnorm_backward(dout, cache)
    for before, after in zip(copies, (x, gamma, beta, dout), strict=True):
        assert np.array_equal(before, after)


# --- running statistics ----------------------------------------------------------------


def test_initial_running_stats():
    assert np.array_equal(init_running_stats(3, "torch").var, np.ones(3))
    assert np.array_equal(init_running_stats(3, "keras").var, np.ones(3))
    assert np.array_equal(init_running_stats(3, "cs231n").var, np.zeros(3))
    for name in CONVENTIONS:
        assert np.array_equal(init_running_stats(3, name).mean, np.zeros(3))
    assert (CONVENTIONS["torch"].eps, CONVENTIONS["torch"].momentum) == (1e-5, 0.1)
    assert (CONVENTIONS["keras"].eps, CONVENTIONS["keras"].momentum) == (1e-3, 0.99)
    assert (CONVENTIONS["cs231n"].eps, CONVENTIONS["cs231n"].momentum) == (1e-5, 0.9)


BATCHES = [
    np.array([[1.0], [3.0]]),          # mean 2, biased var 1, unbiased 2
    np.array([[0.0], [4.0], [8.0]]),   # mean 4, biased var 32/3, unbiased 16
    np.array([[5.0], [5.0], [6.0], [8.0]]),  # mean 6, biased var 1.5, unbiased 2
]


@pytest.mark.parametrize(
    ("convention", "momentum", "expected_mean", "expected_var"),
    [
        pytest.param(
            "torch", 0.1,
            [0.9 * (0.9 * 0.2 + 0.4) + 0.6],
            [0.9 * (0.9 * (0.9 * 1 + 0.2) + 1.6) + 0.2],
            id="torch-unbiased",
        ),
        pytest.param("torch", None, [(2 + 4 + 6) / 3], [(2 + 16 + 2) / 3], id="torch-cumulative"),
        pytest.param(
            "keras", 0.99,
            [0.99 * (0.99 * 0.02 + 0.04) + 0.06],
            [0.99 * (0.99 * (0.99 + 0.01) + 0.01 * 32 / 3) + 0.015],
            id="keras-biased",
        ),
        pytest.param(
            "cs231n", 0.9,
            [0.9 * (0.9 * 0.2 + 0.4) + 0.6],
            [0.9 * (0.9 * 0.1 + 0.1 * 32 / 3) + 0.15],
            id="cs231n-biased-from-zero",
        ),
    ],
)
def test_running_statistics_by_hand(convention, momentum, expected_mean, expected_var):
    bn = BatchNorm(1, convention=convention, momentum=momentum)
    for batch in BATCHES:
        bn(batch)
    np.testing.assert_allclose(bn.running.mean, expected_mean, rtol=1e-14)
    np.testing.assert_allclose(bn.running.var, expected_var, rtol=1e-14)
    assert bn.running.num_batches_tracked == 3


def test_update_is_pure():
    stats = init_running_stats(2)
    new = update_running_stats(stats, np.array([1.0, 2.0]), np.array([3.0, 4.0]), 5)
    assert np.array_equal(stats.mean, np.zeros(2)) and stats.num_batches_tracked == 0
    assert new.num_batches_tracked == 1


def test_eval_mode_uses_running_stats_and_updates_nothing(rng):
    bn = BatchNorm(3, convention="cs231n")
    bn(rng.standard_normal((8, 3)) + 2)
    before = (bn.running.mean.copy(), bn.running.var.copy())
    bn.training = False
    x = rng.standard_normal((4, 3))
    out = bn(x)
    np.testing.assert_allclose(out, (x - before[0]) / np.sqrt(before[1] + 1e-5), rtol=1e-13)
    assert np.array_equal(bn.running.mean, before[0]) and np.array_equal(bn.running.var, before[1])


def test_layer_protocol_forward_is_pure(rng):
    bn = BatchNorm(2)
    bn.forward({"x": rng.standard_normal((3, 2))})
    assert bn.running.num_batches_tracked == 0


# --- errors ----------------------------------------------------------------------------

X = np.arange(12.0).reshape(4, 3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(lambda: batchnorm_forward(np.ones((1, 5))),
                     r"Expected more than 1 value per channel when training, "
                     r"got input size \(1, 5\)",
                     id="one-value-per-channel"),
        pytest.param(lambda: batchnorm_forward(np.ones((1, 5, 1, 1))),
                     r"more than 1 value per channel.*\(1, 5, 1, 1\)", id="one-value-spatial"),
        pytest.param(lambda: batchnorm_forward(X, np.ones((1, 3))),
                     r"`gamma` must have shape \(3,\).*got shape \(1, 3\)", id="gamma-shape"),
        pytest.param(lambda: batchnorm_forward(X, None, np.ones(4)),
                     r"`beta` must have shape \(3,\).*got shape \(4,\)", id="beta-shape"),
        pytest.param(lambda: batchnorm_forward(np.ones(3)),
                     r"`x` must be 2-D.*got shape \(3,\)", id="ndim"),
        pytest.param(lambda: batchnorm_forward(np.array([[1.0, np.nan], [2.0, 3.0]])),
                     r"`x` must be finite, got 1 NaN or inf of 4", id="nan"),
        pytest.param(lambda: batchnorm_forward(X, np.array([1.0, np.inf, 1.0])),
                     r"`gamma` must be finite", id="inf-gamma"),
        pytest.param(lambda: batchnorm_forward(np.arange(12).reshape(4, 3)),
                     r"`x` must have a floating dtype.*got int64", id="int-dtype"),
        pytest.param(lambda: batchnorm_forward(X, eps=-1e-5),
                     r"`eps` must be a non-negative finite float, got -1e-05", id="eps-negative"),
        pytest.param(lambda: batchnorm_forward(X, channel_axis=0),
                     r"`channel_axis` must not be the batch axis", id="channel-axis-0"),
        pytest.param(lambda: batchnorm_forward(X, channel_axis=2),
                     r"`channel_axis` must be an integer in \[-2, 1\], got 2",
                     id="channel-axis-range"),
        pytest.param(lambda: batchnorm_forward(X, training=False),
                     r"`running_mean` and `running_var` are required", id="eval-without-stats"),
        pytest.param(lambda: batchnorm_forward(X, training=False, running_mean=np.zeros(3),
                                               running_var=-np.ones(3)),
                     r"`running_var` must be non-negative", id="negative-running-var"),
        pytest.param(lambda: BatchNorm(3, convention="tf"),
                     r"`convention` must be one of 'torch', 'keras', 'cs231n', got 'tf'",
                     id="unknown-convention"),
        pytest.param(lambda: BatchNorm(3, convention="keras", momentum=None),
                     r"`momentum=None`.*torch convention, got 'keras'", id="cumulative-not-torch"),
        pytest.param(lambda: BatchNorm(3, momentum=1.5),
                     r"`momentum` must be a float in \[0, 1\] or None, got 1.5",
                     id="momentum-range"),
        pytest.param(lambda: batchnorm_backward(np.ones((4, 2)), batchnorm_forward(X)[1]),
                     r"`dout` must have shape \(4, 3\), got shape \(4, 2\)", id="dout-shape"),
        pytest.param(lambda: batchnorm_backward(np.ones((4, 3)), batchnorm_forward(X)[1], form="x"),
                     r"`form` must be 'compact' or 'staged', got 'x'", id="form"),
        pytest.param(lambda: batchnorm_backward(np.ones((4, 3)), {"x": X}),
                     r"`cache` must be the BatchNormCache.*got dict", id="cache-type"),
    ],
)
def test_input_validation(call, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        call()
    assert isinstance(info.value, GradcheckError) and isinstance(info.value, ValueError)
