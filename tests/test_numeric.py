"""Tests for gradcheck.numeric: honest error bounds, accuracy, the complex-step probe, safety.

Oracles are exact gradients computed in ``np.longdouble`` (x86-64 extended precision, ε ≈ 1e-19),
independent of the float64 code under test. Relative errors are normwise,
``max|estimate - exact| / max|exact|``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck.errors import InvalidArgument
from gradcheck.layers.batchnorm import batchnorm_backward, batchnorm_forward
from gradcheck.numeric import (
    METHODS,
    Estimate,
    central,
    complex_step,
    directional,
    numerical_gradient,
    probe,
    probe_complex_step,
    richardson,
)

LD = np.longdouble
EPS = float(np.finfo(np.float64).eps)
BN_EPS = 1e-5
ESTIMATORS: dict[str, Callable[..., Estimate]] = {
    "complex": complex_step, "central": central, "richardson": richardson
}

needs_extended = pytest.mark.skipif(
    bool(np.finfo(np.longdouble).eps > 1e-18),
    reason="the exact-gradient oracle needs extended-precision np.longdouble",
)
quick = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240607)


# ------------------------------------------------------------------ functions with exact gradients


@dataclass(frozen=True)
class Case:
    """A scalar function at a point, its exact gradient there and its evaluation noise."""

    name: str
    f: Callable[[np.ndarray], Any]
    x: np.ndarray
    exact: np.ndarray  # longdouble
    noise: float  # absolute rounding error of one evaluation, as a careful caller computes it
    terms: float  # largest |term| summed into a gradient element (cancellation when >> |exact|)
    condition: float = 1.0  # of the forward, for cases where it matters


def poly_case(x: np.ndarray, c: np.ndarray) -> Case:
    """``Σ c·x³ - 2(Σx)² + x_first·x_last / 2``."""

    def f(a: np.ndarray) -> Any:
        return np.sum(c * a * a * a) - 2.0 * np.sum(a) ** 2 + 0.5 * a.flat[0] * a.flat[-1]

    xl, cl = x.astype(LD), c.astype(LD)
    exact = (3 * cl * xl * xl - 4 * np.sum(xl)).ravel()
    exact[0] += xl.flat[-1] / 2
    exact[-1] += xl.flat[0] / 2
    values = np.sum(np.abs(c * x**3)) + 2 * np.sum(np.abs(x)) ** 2 + abs(x.flat[0] * x.flat[-1])
    terms = np.max(3 * c * x * x) + 4 * np.sum(np.abs(x)) + np.max(np.abs(x))
    return Case("poly", f, x, exact.reshape(x.shape), 4 * EPS * values, float(terms))


def expsin_case(x: np.ndarray, c: np.ndarray) -> Case:
    """``Σ c·sin(exp(x/2)) + exp(mean(sin x))``."""

    def f(a: np.ndarray) -> Any:
        return np.sum(c * np.sin(np.exp(0.5 * a))) + np.exp(np.sum(np.sin(a)) / a.size)

    xl, cl = x.astype(LD), c.astype(LD)
    e, s = np.exp(xl / 2), np.exp(np.sum(np.sin(xl)) / x.size)
    exact = cl * np.cos(e) * e / 2 + s * np.cos(xl) / x.size
    values = np.sum(np.abs(c) * (1 + np.exp(x / 2))) + 2 * float(s)
    terms = np.max(c * np.exp(x / 2)) + float(s) / x.size
    return Case("expsin", f, x, exact, 4 * EPS * values, float(terms))


def softmax_case(logits: np.ndarray, labels: np.ndarray) -> Case:
    """Mean softmax cross-entropy; the shift is a constant so that ``f`` stays analytic."""
    n, k = logits.shape
    shift = logits.max(axis=1, keepdims=True)
    onehot = np.eye(k)[labels]

    def f(a: np.ndarray) -> Any:
        z = a - shift
        return np.sum(np.log(np.sum(np.exp(z), axis=1)) - np.sum(z * onehot, axis=1)) / n

    p = np.exp(logits.astype(LD) - shift)
    p /= p.sum(axis=1, keepdims=True)
    values = np.sum(np.abs(logits - shift)) + n * (1 + np.log(k))
    return Case("softmax", f, logits, (p - onehot) / n, 4 * EPS * values / n, 2 / n)


@dataclass(frozen=True)
class BNInputs:
    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    g: np.ndarray


def bn_exact(inp: BNInputs, *, magnitude: bool = False) -> dict[str, np.ndarray]:
    """Gradients of ``<g, batchnorm(x)>`` in extended precision (the compact formula), or with
    ``magnitude`` the same formulas on absolute values: the size of the terms they sum."""
    x, g, gamma = inp.x.astype(LD), inp.g.astype(LD), inp.gamma.astype(LD)
    xc = x - x.mean(axis=0)
    inv_std = 1 / np.sqrt((xc * xc).mean(axis=0) + LD(BN_EPS))
    xhat = xc * inv_std
    if magnitude:
        g, gamma, xhat = np.abs(g), np.abs(gamma), np.abs(xhat)
    sign = 1 if magnitude else -1
    dx = gamma * inv_std * (g + sign * g.mean(axis=0) + sign * xhat * (g * xhat).mean(axis=0))
    return {"x": dx, "gamma": (g * xhat).sum(axis=0), "beta": g.sum(axis=0)}


def bn_condition(x: np.ndarray) -> float:
    """``max |x| / std`` per channel (no eps): how much centering amplifies the rounding of
    ``x``; infinite for a constant channel other than 0, whose exact xhat is 0 but whose
    computed xhat is the rounding of its mean."""
    peak, std = np.abs(x).max(axis=0), x.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.max(np.where(peak == 0, 0.0, peak / std)))


def bn_noise(inp: BNInputs) -> float:
    """Rounding of ``<g, out>`` near the inputs: ``4ε·Σ|g|·(|out| + max(1, |gamma|)·κ)``, with κ
    from the centering (the evaluated gamma reaches max(1, |gamma|), not just gamma)."""
    out, _ = batchnorm_forward(inp.x, inp.gamma, inp.beta, eps=BN_EPS)
    kappa = np.abs(inp.x).max(axis=0) / np.sqrt(inp.x.var(axis=0) + BN_EPS) + 1
    reach = np.maximum(1.0, np.abs(inp.gamma))
    return 4 * EPS * float(np.sum(np.abs(inp.g) * (np.abs(out) + reach * kappa)))


def bn_case(inp: BNInputs, wrt: str) -> Case:
    """``L = <g, batchnorm(x, gamma, beta)>`` as a function of one of its inputs."""
    given_inputs = {"x": inp.x, "gamma": inp.gamma, "beta": inp.beta}

    def f(a: np.ndarray) -> Any:
        args = {**given_inputs, wrt: a}
        out, _ = batchnorm_forward(args["x"], args["gamma"], args["beta"], eps=BN_EPS)
        return np.sum(inp.g * out)

    terms = float(np.max(bn_exact(inp, magnitude=True)[wrt]))
    return Case(f"bn-{wrt}", f, given_inputs[wrt], bn_exact(inp)[wrt], bn_noise(inp), terms,
                bn_condition(inp.x))


# --------------------------------------------------------------------------------- strategies

small_shapes = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=5)


def floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def elementwise_cases(draw: st.DrawFn) -> Case:
    shape = draw(small_shapes)
    x = draw(hnp.arrays(np.float64, shape, elements=floats(-3, 3)))
    c = draw(hnp.arrays(np.float64, shape, elements=floats(0.5, 2)))
    return draw(st.sampled_from([poly_case, expsin_case]))(x, c)


@st.composite
def softmax_cases(draw: st.DrawFn) -> Case:
    n, k = draw(st.integers(1, 5)), draw(st.integers(2, 5))
    logits = draw(hnp.arrays(np.float64, (n, k), elements=floats(-2, 2)))
    labels = draw(hnp.arrays(np.intp, n, elements=st.integers(0, k - 1)))
    return softmax_case(logits, labels)


@st.composite
def bn_inputs(draw: st.DrawFn, *, min_batch: int = 3, max_offset: float = 2.0) -> BNInputs:
    """x = offset·scale + scale·z: ``max_offset`` up to 1e7 gives |mean| 1e4 with std 1e-3."""
    n, d = draw(st.integers(min_batch, 8)), draw(st.integers(1, 4))
    z = draw(hnp.arrays(np.float64, (n, d), elements=floats(-3, 3)))
    scale = 10.0 ** draw(floats(-3, 2))
    offset = draw(floats(-max_offset, max_offset))
    gamma = draw(hnp.arrays(np.float64, d, elements=floats(-2, 2)))
    beta = draw(hnp.arrays(np.float64, d, elements=floats(-2, 2)))
    g = draw(hnp.arrays(np.float64, (n, d), elements=floats(-2, 2)))
    return BNInputs(scale * z + offset * scale, gamma, beta, g)


def bn_cases(**kwargs: Any) -> st.SearchStrategy[Case]:
    wrt = st.sampled_from(["x", "gamma", "beta"])
    return st.builds(bn_case, bn_inputs(**kwargs), wrt)


def true_error(est: Estimate, case: Case) -> np.ndarray:
    return np.abs(est.value.astype(LD) - case.exact).astype(np.float64)


# ------------------------------------------------------------------------- error bounds hold


@needs_extended
@settings(quick, max_examples=150)
@given(case=st.one_of(elementwise_cases(), softmax_cases(), bn_cases()))
def test_complex_step_bound_holds_for_every_element(case: Case) -> None:
    # The bound is relative to the gradient's scale: it excludes the forward's conditioning and
    # gradients that cancel to far below their terms (constant g makes BatchNorm's dx vanish).
    assume(case.condition <= 10)
    assume(np.max(np.abs(case.exact)) >= case.terms / 16)
    est = complex_step(case.f, case.x)
    err = true_error(est, case)
    assert np.all(err <= est.error), f"{case.name}: errors {err} above bounds {est.error}"


@dataclass
class Tally:
    elements: int = 0
    misses: int = 0
    worst: float = 0.0

    def add(self, err: np.ndarray, bound: np.ndarray) -> None:
        self.elements += err.size
        self.misses += int(np.sum(err > bound))
        self.worst = max(self.worst, float(np.max(err / np.maximum(bound, 1e-300), initial=0)))


def central_step_below_natural_scale(case: Case) -> bool:
    """Central differences use h = ε^(1/3)·max(1, |x|) by design; BatchNorm varies on the
    scale sqrt(var + eps), which the step must stay well below for the h² model to apply."""
    if not case.name.startswith("bn-"):
        return True
    return case.condition <= 10


@needs_extended
@pytest.mark.parametrize("method", ["central", "richardson"])
def test_bounds_hold_for_99_percent_of_elements(method: str) -> None:
    tally = Tally()
    ill_conditioned = 1e7 if method == "richardson" else 2.0  # |mean| 1e4 with std 1e-3

    @settings(quick, max_examples=120)
    @given(
        case=st.one_of(
            elementwise_cases(), softmax_cases(), bn_cases(min_batch=2, max_offset=ill_conditioned)
        )
    )
    def run(case: Case) -> None:
        assume(case.condition <= 1e8)
        assume(method == "richardson" or central_step_below_natural_scale(case))
        est = ESTIMATORS[method](case.f, case.x, noise=case.noise)
        tally.add(true_error(est, case), est.error)

    run()
    print(f"{method}: {tally.misses} of {tally.elements} elements above the bound, "
          f"worst error/bound {tally.worst:.2f}")
    # 963 elements in a run of this file alone; the whole suite under CI's derandomized profile
    # generated 488 twice (fewer examples survive there; not understood): enough for the 1%
    # claim either way
    assert tally.elements > 300
    assert tally.misses <= 0.01 * tally.elements


def positive_sum_case(x: np.ndarray, c: np.ndarray) -> Case:
    """``Σ c·exp(x) + Σ x²/2 + 1``: no cancellation, so ``|f|`` measures its rounding."""

    def f(a: np.ndarray) -> Any:
        return np.sum(c * np.exp(a)) + 0.5 * np.sum(a * a) + 1.0

    exact = c.astype(LD) * np.exp(x.astype(LD)) + x.astype(LD)
    return Case("positive-sum", f, x, exact, 0.0, float(np.max(np.abs(exact))))


@needs_extended
@pytest.mark.parametrize("method", ["central", "richardson"])
def test_bounds_hold_with_the_default_noise(method: str) -> None:
    """Without ``noise`` the bound uses ``8ε·|f|`` at the points evaluated: enough when ``f``
    does not cancel (documented), as here."""
    tally = Tally()

    @settings(quick, max_examples=60)
    @given(x=hnp.arrays(np.float64, small_shapes, elements=floats(-3, 3)), data=st.data())
    def run(x: np.ndarray, data: st.DataObject) -> None:
        c = data.draw(hnp.arrays(np.float64, x.shape, elements=floats(0.5, 2)))
        case = positive_sum_case(x, c)
        est = ESTIMATORS[method](case.f, case.x)
        tally.add(true_error(est, case), est.error)

    run()
    assert tally.misses <= 0.01 * tally.elements, tally


@needs_extended
@pytest.mark.parametrize("method", ["central", "richardson"])
def test_default_noise_on_random_batchnorms(method: str, rng: np.random.Generator) -> None:
    """Realistic BatchNorm losses (distinct g, |L| not cancelling to 0): the default suffices."""
    tally = Tally()
    for _ in range(20):
        inp = reference_bn(rng, int(rng.integers(3, 9)), int(rng.integers(1, 5)))
        for wrt in ("x", "gamma", "beta"):
            case = bn_case(inp, wrt)
            est = ESTIMATORS[method](case.f, case.x)
            tally.add(true_error(est, case), est.error)
    assert tally.misses <= 0.01 * tally.elements, tally


# ----------------------------------------------------------------------------- accuracy


def reference_bn(rng: np.random.Generator, n: int, d: int) -> BNInputs:
    return BNInputs(
        5 * rng.standard_normal((n, d)) + 12,
        rng.standard_normal(d),
        rng.standard_normal(d),
        rng.standard_normal((n, d)),
    )


ACCURACY = {"complex": 1e-13, "richardson": 1e-10, "central": 1e-7}


@needs_extended
@pytest.mark.parametrize("shape", [(4, 5), (64, 32)], ids=["4x5", "64x32"])
def test_accuracy_on_the_reference_batchnorm(
    rng: np.random.Generator, shape: tuple[int, int]
) -> None:
    inp = reference_bn(rng, *shape)
    case = bn_case(inp, "x")
    noise = EPS * float(np.sum(np.abs(inp.g * batchnorm_forward(inp.x, inp.gamma, inp.beta)[0])))
    # 64x32 Richardson on a sample of 256 elements keeps the test fast (about 21 calls each).
    sample = None if shape == (4, 5) else np.sort(rng.choice(inp.x.size, 256, replace=False))
    lines = []
    for method, limit in ACCURACY.items():
        indices = sample if method == "richardson" else None
        kwargs = {} if method == "complex" else {"noise": noise}
        est = ESTIMATORS[method](case.f, case.x, indices=indices, **kwargs)
        exact = case.exact if indices is None else case.exact.ravel()[indices]
        rel = float(np.max(np.abs(est.value.astype(LD) - exact)) / np.max(np.abs(exact)))
        lines.append(f"{shape[0]}x{shape[1]} {method:10s} max rel error {rel:.2e} "
                     f"(limit {limit:.0e}), {est.nfev / est.value.size:.1f} calls per element")
        assert rel <= limit, lines[-1]
    print("\n" + "\n".join(lines))


@needs_extended
def test_float64_backward_agrees_with_the_oracle(rng: np.random.Generator) -> None:
    """The oracle and the reference backward describe the same derivative."""
    inp = reference_bn(rng, 6, 3)
    _, cache = batchnorm_forward(inp.x, inp.gamma, inp.beta, eps=BN_EPS)
    grads = batchnorm_backward(inp.g, cache)
    for name, exact in bn_exact(inp).items():
        np.testing.assert_allclose(grads[name], exact.astype(np.float64), rtol=1e-12, atol=1e-13)


@needs_extended
def test_richardson_on_an_ill_conditioned_batchnorm(rng: np.random.Generator) -> None:
    """|mean| 1e4 with std 1e-3: the step follows the spread, not |x|, and the bound holds."""
    inp = BNInputs(1e4 + 1e-3 * rng.standard_normal((16, 4)), rng.standard_normal(4),
                   rng.standard_normal(4), rng.standard_normal((16, 4)))
    case = bn_case(inp, "x")
    est = richardson(case.f, case.x, noise=case.noise)
    assert np.all(est.step <= 1e-3)
    assert np.mean(true_error(est, case) <= est.error) >= 0.99
    # With the naive noise it still measures the computed program's derivative faithfully.
    naive = EPS * float(np.sum(np.abs(inp.g * batchnorm_forward(inp.x, inp.gamma, inp.beta)[0])))
    cheap = richardson(case.f, case.x, noise=naive)
    program = complex_step(case.f, case.x)
    assert np.all(np.abs(cheap.value - program.value) <= cheap.error + program.error)


@needs_extended
@pytest.mark.parametrize(
    ("method", "level"),
    [("richardson", 0.0127), ("richardson", 3444.5), ("central", 0.0127)],
)
def test_bounds_hold_with_a_constant_channel(
    rng: np.random.Generator, method: str, level: float
) -> None:
    """A constant channel varies on the scale sqrt(eps), far below the step Richardson starts
    from (the spread of x is 0): its restarts must find the scale, and the bound must hold."""
    inp = reference_bn(rng, 6, 3)
    x = inp.x.copy()
    x[:, 1] = level
    inp = BNInputs(x, inp.gamma, inp.beta, inp.g)
    for wrt in ("x", "gamma", "beta"):
        case = bn_case(inp, wrt)
        est = ESTIMATORS[method](case.f, case.x, noise=case.noise)
        assert np.mean(true_error(est, case) <= est.error) >= 0.99, wrt


# ------------------------------------------------------------------------------- auto / probe


def reference_loss(inp: BNInputs) -> Callable[[np.ndarray], Any]:
    return lambda a: np.sum(inp.g * batchnorm_forward(a, inp.gamma, inp.beta)[0])


def bn_with_var(g: np.ndarray, strip: bool, hide: bool = False) -> Callable[[np.ndarray], Any]:
    def f(a: np.ndarray) -> Any:
        a = np.asarray(a) if strip else a
        a = a.view(np.ndarray) if hide else a  # a view the tracer cannot follow
        return np.sum(g * (a - a.mean(axis=0)) / np.sqrt(np.var(a, axis=0) + BN_EPS))

    return f


def bn_with_abs(g: np.ndarray, strip: bool) -> Callable[[np.ndarray], Any]:
    def f(a: np.ndarray) -> Any:
        a = np.asarray(a) if strip else a
        xc = a - a.mean(axis=0)
        return np.sum(g * xc / np.sqrt(np.abs(np.mean(xc * xc, axis=0)) + BN_EPS))

    return f


def relu(g: np.ndarray) -> Callable[[np.ndarray], Any]:
    return lambda a: np.sum(g * np.maximum(a, 0))


def raises_on_complex(a: np.ndarray) -> Any:
    if np.iscomplexobj(a):
        raise TypeError("complex input is not supported")
    return np.sum(a**3)


FALLBACKS = [
    pytest.param(lambda g: bn_with_var(g, False), "np.var", id="batchnorm-np.var"),
    pytest.param(lambda g: bn_with_var(g, True), "np.var", id="batchnorm-np.var-asarray"),
    pytest.param(lambda g: bn_with_abs(g, False), "np.absolute", id="batchnorm-np.abs"),
    pytest.param(lambda g: bn_with_abs(g, True), "np.absolute", id="batchnorm-np.abs-asarray"),
    pytest.param(lambda g: lambda a: np.sum(g * a.real**2), "returned a real value", id="real"),
    pytest.param(lambda g: lambda a: np.sum(g * a.astype(np.float64) ** 2), "ComplexWarning",
                 id="astype"),
    pytest.param(lambda g: lambda a: float(np.sum(g * a).real), "returned a real value",
                 id="python-float"),
    pytest.param(lambda g: lambda a: np.sum(g * a * a) + np.sum(g * a.real), "disagree",
                 id="real-in-one-term"),
    pytest.param(lambda g: raises_on_complex, "raised TypeError", id="raises-TypeError"),
]


PIECEWISE = [
    pytest.param(relu, "np.maximum", id="relu-np.maximum"),
    pytest.param(lambda g: lambda a: np.sum(g * np.where(a > 0, a, 0)), "np.greater",
                 id="relu-where"),
    pytest.param(lambda g: lambda a: np.sum(g * np.clip(a, 0, None)), "np.clip", id="relu-clip"),
    pytest.param(lambda g: lambda a: np.sum(g * np.max(np.asarray(a) * 1.0, axis=0)), "np.max",
                 id="max-after-asarray"),
]


@pytest.mark.parametrize(("make", "op"), PIECEWISE)
def test_auto_keeps_the_complex_step_for_piecewise_operations(
    rng: np.random.Generator, make: Callable[[np.ndarray], Any], op: str
) -> None:
    # NumPy orders complex numbers by their real parts: away from ties, max/comparisons/clip
    # select exactly and carry the imaginary part, so the complex step stays exact.
    x = 5 * rng.standard_normal((8, 3)) + 1
    g = rng.standard_normal((8, 3)) if op != "np.max" else rng.standard_normal(3)
    f = make(g)
    found = probe(f, x)
    assert found.safe and op in found.piecewise
    est = numerical_gradient(f, x)
    assert est.method == "complex"
    if op == "np.max":
        expected = np.zeros_like(x)
        expected[np.argmax(x, axis=0), np.arange(3)] = g
    else:
        expected = g * (x > 0)
    np.testing.assert_allclose(est.value, expected, rtol=1e-14, atol=1e-300)


@needs_extended
def test_auto_uses_the_complex_step_on_the_reference_batchnorm(rng: np.random.Generator) -> None:
    inp = reference_bn(rng, 8, 3)
    est = numerical_gradient(reference_loss(inp), inp.x)
    assert est.method == "complex"
    assert est.reason.startswith("complex step safe") and est.reason.endswith("used complex")
    assert np.all(true_error(est, bn_case(inp, "x")) <= est.error)


@pytest.mark.parametrize(("make", "cause"), FALLBACKS)
def test_auto_falls_back_and_names_the_cause(
    rng: np.random.Generator, make: Callable[[np.ndarray], Any], cause: str
) -> None:
    x = 5 * rng.standard_normal((8, 3)) + 1
    f = make(rng.standard_normal((8, 3)))
    est = numerical_gradient(f, x)
    assert est.method == "richardson"
    assert est.reason.startswith("complex step unsafe: ")
    assert cause in est.reason and est.reason.endswith("; used richardson")
    safe, why = probe_complex_step(f, x)
    assert not safe and est.reason.startswith(why)


@needs_extended
def test_the_fallback_estimate_is_right(rng: np.random.Generator) -> None:
    """The np.var BatchNorm computes the reference function; Richardson must get it right."""
    inp = reference_bn(rng, 8, 3)
    inp = BNInputs(inp.x, np.ones(3), np.zeros(3), inp.g)
    est = numerical_gradient(bn_with_var(inp.g, strip=False), inp.x, noise=bn_noise(inp))
    assert est.method == "richardson"
    assert np.all(true_error(est, bn_case(inp, "x")) <= est.error)


@settings(quick, max_examples=30)
@given(inp=bn_inputs(min_batch=2, max_offset=1e7), seed=st.integers(0, 2**16))
def test_probe_judges_the_reference_batchnorm_safe(inp: BNInputs, seed: int) -> None:
    """Also when ill-conditioned (|mean|/std up to 1e7 and beyond), given a noise that includes
    the conditioning; otherwise the complex step and finite differences of the computed forward
    may differ by about ε·κ (documented)."""
    assert probe_complex_step(reference_loss(inp), inp.x, seed=seed, noise=bn_noise(inp)) == (
        True, ""
    )


def test_probe_judges_the_briefs_ill_conditioned_example_safe(rng: np.random.Generator) -> None:
    inp = BNInputs(1e4 + 1e-3 * rng.standard_normal((16, 4)), rng.standard_normal(4),
                   rng.standard_normal(4), rng.standard_normal((16, 4)))
    naive = EPS * float(np.sum(np.abs(inp.g * batchnorm_forward(inp.x, inp.gamma, inp.beta)[0])))
    for noise in (naive, None):
        assert probe_complex_step(reference_loss(inp), inp.x, noise=noise) == (True, "")


def test_probe_catches_a_small_dropped_term(rng: np.random.Generator) -> None:
    """With x ~ 1e-6 the variance is far below eps and np.var's dropped imaginary part changes
    the gradient by only ~1e-9 relative: still far above the complex step's bound."""
    x, g = 1e-6 * rng.standard_normal((16, 4)), rng.standard_normal((16, 4))
    safe, why = probe_complex_step(bn_with_var(g, strip=True, hide=True), x)
    assert not safe and "disagree" in why


def test_probe_allows_real_side_outputs(rng: np.random.Generator) -> None:
    """``mu.real`` for running statistics (a side output) is how safe code stays safe."""
    x, g = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    stats: dict[str, Any] = {}

    def f(a: np.ndarray) -> Any:
        mu = a.mean(axis=0)
        stats["running_mean"] = 0.9 * stats.get("running_mean", 0.0) + 0.1 * mu.real
        return np.sum(g * (a - mu) ** 2)

    assert probe_complex_step(f, x) == (True, "")


def test_probe_ignores_validation_with_isfinite() -> None:
    def checked(a: np.ndarray) -> Any:
        if not np.all(np.isfinite(a)) or np.any(np.isnan(a)):
            raise ValueError("non-finite input")
        return np.sum(np.sin(a) * a)

    assert probe_complex_step(checked, np.linspace(-1, 2, 7)) == (True, "")


def test_auto_counts_the_probe_evaluations(rng: np.random.Generator) -> None:
    calls = []
    x = rng.standard_normal(5)

    def f(a: np.ndarray) -> Any:
        calls.append(a.dtype)
        return np.sum(np.exp(a))

    est = numerical_gradient(f, x)
    assert est.nfev == len(calls) > complex_step(f, x).nfev


# ------------------------------------------------------------------------------ directional


@needs_extended
@pytest.mark.parametrize("method", ["complex", "central", "richardson"])
@pytest.mark.parametrize("shape", [(4, 3), (32, 8), (128, 16)], ids=["12", "256", "2048"])
def test_directional_matches_the_exact_projection(
    rng: np.random.Generator, method: str, shape: tuple[int, int]
) -> None:
    inp = reference_bn(rng, *shape)
    u = rng.standard_normal(shape)
    loss = reference_loss(inp)
    noise = bn_noise(inp)
    est = directional(lambda t: loss(inp.x + t * u), method=method, noise=noise)
    target = np.sum(bn_exact(inp)["x"] * u.astype(LD))
    assert est.value.shape == est.error.shape == est.step.shape == ()
    assert abs(est.value.astype(LD) - target) <= est.error
    assert est.nfev == {"complex": 2, "central": 4}.get(method, est.nfev) <= 31


# ------------------------------------------------------------------------------------ safety


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_callers_array_is_untouched_and_evaluations_are_float64(
    method: str, dtype: type, rng: np.random.Generator
) -> None:
    storage: np.ndarray = rng.standard_normal((4, 6)).astype(dtype)
    x = storage[:, ::2]  # a non-contiguous view: its base must not change either
    before = storage.copy()
    seen = set()

    def mutating(a: np.ndarray) -> Any:
        seen.add(a.dtype)
        value = np.sum(a * a)
        a *= 3.0
        return value

    est = numerical_gradient(mutating, x, method=method)
    assert storage.tobytes() == before.tobytes()
    assert seen <= {np.dtype(np.float64), np.dtype(np.complex128)}
    np.testing.assert_allclose(est.value, 2 * x.astype(np.float64), rtol=1e-6)


class Boom(Exception):
    pass


def raising_on_call(n: int, *, every_call_after: bool = False) -> tuple[Callable, Boom]:
    boom = Boom(f"call {n}")
    calls = [0]

    def f(a: np.ndarray) -> Any:
        calls[0] += 1
        a += 1.0
        if calls[0] == n or (every_call_after and calls[0] > n):
            raise boom
        return np.sum(np.sin(a))

    return f, boom


@pytest.mark.parametrize("method", METHODS)
def test_an_exception_from_f_propagates_unchanged(method: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 3))
    before = x.copy()
    # auto's probe reads a failure on complex input as "not complex-step safe"; a failure that
    # persists on real input propagates from there.
    f, boom = raising_on_call(3, every_call_after=method == "auto")
    with pytest.raises(Boom) as info:
        numerical_gradient(f, x, method=method)
    assert info.value is boom
    assert x.tobytes() == before.tobytes()


# ----------------------------------------------------------------------- shapes and sampling


@pytest.mark.parametrize("method", ["complex", "central", "richardson"])
def test_indices_estimate_the_same_elements(method: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4))
    f = expsin_case(x, np.ones_like(x)).f
    full = numerical_gradient(f, x, method=method, noise=1e-15)
    idx = np.array([11, 0, 5, 5])
    part = numerical_gradient(f, x, method=method, noise=1e-15, indices=idx)
    # The complex step's bound scales with max|v| over the estimated elements; the others'
    # bounds are per element.
    fields = ("value", "step") if method == "complex" else ("value", "error", "step")
    for field in fields:
        got = getattr(part, field)
        assert got.shape == (4,) and got.dtype == np.float64
        np.testing.assert_allclose(got, getattr(full, field).ravel()[idx], rtol=1e-9)
    assert part.method == method and part.reason == ""
    assert np.all(part.error >= 0)


def test_central_step_is_the_step_actually_taken() -> None:
    x = np.array([0.0, -3.0, 5.0, 0.1, -4.0])  # spread 3.3 > max(1, |x|) except at 5 and -4
    est = central(lambda a: np.sum(a**2), x, noise=0.0)
    s = np.std(x)
    h = EPS ** (1 / 3) * np.array([1.0, -3.0, 0.0, 1.0, 0.0])
    h[2] = np.cbrt(EPS * 5.0 / s) * s  # |x| above the spread: (eps kappa)^(1/3) * spread
    h[4] = -np.cbrt(EPS * 4.0 / s) * s
    np.testing.assert_allclose(est.step, (x + h) - x, rtol=1e-12)
    assert est.nfev == 4 * x.size


def test_central_step_follows_the_local_scale_of_a_channel() -> None:
    rng = np.random.default_rng(3)
    x = np.stack([rng.normal(1e6, 0.03, 16), rng.normal(0.0, 1.0, 16)], axis=1)
    est = central(lambda a: np.sum(np.sin(a - np.mean(a, axis=0))), x, noise=0.0)
    steps = np.abs(est.step).reshape(16, 2)
    assert np.all(steps[:, 0] < 0.03 * 1e-2)  # far below the channel's spread, not 6e-6 * 1e6
    assert np.all(steps[:, 1] > 1e-6)


def test_zero_dimensional_and_empty_inputs() -> None:
    est = numerical_gradient(lambda a: a**3, np.array(2.0))
    assert est.value.shape == () and abs(est.value - 12.0) <= est.error
    empty = richardson(lambda a: np.sum(a), np.zeros((0, 3)))
    assert empty.value.shape == (0, 3)


# ------------------------------------------------------------------------------- validation


def returning(value: Any) -> Callable[[np.ndarray], Any]:
    return lambda a: value


VALIDATION = [
    pytest.param(numerical_gradient, {"method": "forward"},
                 r"`method` must be one of 'auto', 'complex', 'central', 'richardson', got "
                 r"'forward'", id="unknown-method"),
    pytest.param(directional, {"method": "auto"},
                 r"`method` must be one of 'complex', 'central', 'richardson', got 'auto'",
                 id="directional-method"),
    pytest.param(numerical_gradient, {"indices": [0, 6]},
                 r"`indices` must be flat indices in \[0, 6\) for `x` of size 6, got 6",
                 id="index-too-large"),
    pytest.param(central, {"indices": np.array([-1])},
                 r"`indices` must be flat indices in \[0, 6\) .* got -1", id="index-negative"),
    pytest.param(richardson, {"indices": np.array([[0, 1]])},
                 r"`indices` must be a 1-D array of integer flat indices, got dtype int64 and "
                 r"shape \(1, 2\)", id="indices-2d"),
    pytest.param(complex_step, {"indices": [0.0, 1.0]},
                 r"`indices` must be a 1-D array of integer .* got dtype float64",
                 id="indices-float"),
    pytest.param(numerical_gradient, {"x": np.arange(6)},
                 r"`x` must be a real floating array \(float16, float32 or float64\), got int64",
                 id="x-int"),
    pytest.param(central, {"x": np.ones(3, dtype=complex)},
                 r"`x` must be a real floating array .* got complex128", id="x-complex"),
    pytest.param(richardson, {"x": np.array([1.0, np.nan])},
                 r"`x` must be finite, got 1 NaN or inf of 2 elements", id="x-nan"),
    pytest.param(numerical_gradient, {"f": 3}, r"`f` must be callable, got int",
                 id="f-not-callable"),
    pytest.param(central, {"f": returning(np.ones(2))},
                 r"`f` must return a numeric scalar, got ndarray with shape \(2,\)", id="f-array"),
    pytest.param(richardson, {"f": returning("1.0")},
                 r"`f` must return a numeric scalar, got str", id="f-str"),
    pytest.param(central, {"f": returning(np.nan)},
                 r"`f` must return a finite value, got nan at `x`", id="f-nan"),
    pytest.param(complex_step, {"f": returning(np.inf + 0j)},
                 r"`f` must return a finite value, got \(inf\+0j\) at `x \+ ih e_0`", id="f-inf"),
    pytest.param(numerical_gradient, {"f": returning(np.nan)},
                 r"`f` must return a finite value, got nan", id="auto-f-nan"),
    pytest.param(central, {"f": returning(1 + 1j)},
                 r"`f` must return a real value for real input, got \(1\+1j\)", id="f-complex"),
    pytest.param(central, {"noise": -1.0},
                 r"`noise` must be a non-negative finite float or None, got -1.0", id="noise"),
    pytest.param(numerical_gradient, {"seed": -2},
                 r"`seed` must be a non-negative integer, got -2", id="seed"),
    pytest.param(directional, {"phi": returning([1.0, 2.0]), "method": "central"},
                 r"`phi` must return a numeric scalar, got list", id="phi-array"),
]


@pytest.mark.parametrize(("func", "kwargs", "match"), VALIDATION)
def test_input_validation(func: Callable, kwargs: dict[str, Any], match: str) -> None:
    if func is directional:
        kwargs = {"phi": np.exp, **kwargs}
    else:
        kwargs = {"f": lambda a: np.sum(a * a), "x": np.ones((2, 3)), **kwargs}
    with pytest.raises(InvalidArgument, match=match):
        func(**kwargs)


@pytest.mark.parametrize(
    "func",
    [complex_step, central, richardson, probe_complex_step, numerical_gradient, directional],
)
def test_every_parameter_is_documented(func: Callable) -> None:
    doc = inspect.getdoc(func) or ""
    params = doc.split("Parameters\n----------\n", 1)[1].split("\n\n", 1)[0]
    documented = {p.strip() for line in params.splitlines() if not line.startswith(" ")
                  for p in line.split(":")[0].split(",")}
    assert documented == set(inspect.signature(func).parameters)


def test_richardson_follows_an_element_far_below_its_steps() -> None:
    """An element of 9e-9 beside elements of 1: steps from the spread cross the kink of
    softplus(1e8·x) at 0, where every iterate agrees on the mean of the two slopes (5e7). The
    estimate runs on the element's own magnitude too, and its bound must hold."""
    x = np.array([9e-9, 0.5, -0.7, 1.3])

    def f(a: np.ndarray) -> float:
        return float(np.logaddexp(0.0, 1e8 * a[0]) + np.sum(a[1:] ** 2))

    est = richardson(f, x)
    truth = np.array([1e8 / (1 + np.exp(-0.9)), 1.0, -1.4, 2.6])  # by hand
    assert np.all(np.abs(est.value - truth) <= est.error), (est.value, est.error)
    assert est.error[0] < 1e-4 * truth[0]  # and it is measured, not given up on
