"""Class-style NumPy frameworks as their authors write them: each convention with a correct
layer that must pass and a wrong one that must fail, through check_layer.

The classes are our own, written from the public conventions: nnfs (``dinputs``/``dweights``,
``self.output``, ``forward(inputs, training)``), numpy-ml (``parameters``/``gradients`` dicts,
lazy initialisation, inputs kept in lists, ``fn``/``grad`` activations), ML-From-Scratch
(``__call__``/``gradient``), course classes (``dW``/``db``, ``forward_pass``/``backward_pass``,
``(out, cache)``), and constructors taking arrays.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from gradcheck._state import fingerprint
from gradcheck.check import check_layer
from gradcheck.errors import InvalidArgument
from gradcheck.layer import annotate, coerce, construct, from_class, plan_calls

RNG = np.random.default_rng(23)
X = RNG.normal(size=(4, 3))


def _check(obj, x=X, **options):
    layer = from_class(obj, example=x, **options)
    report = annotate(check_layer(layer, {"x": x}), layer)
    return {r.name: r.status for r in report.results}, report


# --- nnfs style: results stored on the object, backward returns nothing ------------------------


class LayerDense:
    def __init__(self, n_inputs, n_neurons, bug=""):
        self.weights = 0.1 * np.random.randn(n_inputs, n_neurons)  # noqa: NPY002
        self.biases = np.zeros((1, n_neurons)) + 0.1
        self.bug = bug

    def forward(self, inputs, training):
        self.inputs = inputs
        self.output = np.dot(inputs, self.weights) + self.biases

    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        if self.bug == "dbiases-mean":
            self.dbiases = np.mean(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)
        if self.bug == "dinputs-transposed-twice":
            self.dinputs = np.dot(dvalues, self.weights.T) * 1.01


class ActivationTanh:
    def forward(self, inputs, training):
        self.inputs = inputs
        self.output = np.tanh(inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues * (1 - self.output**2)


class LayerDropout:
    def __init__(self, rate, bug=""):
        self.rate, self.bug = 1 - rate, bug

    def forward(self, inputs, training):
        self.inputs = inputs
        if not training:
            self.output = inputs.copy()
            return
        self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape) / self.rate  # noqa: NPY002
        self.output = inputs * self.binary_mask

    def backward(self, dvalues):
        self.dinputs = dvalues * (self.binary_mask if self.bug == "" else self.rate)


@pytest.mark.parametrize(("obj", "statuses"), [
    pytest.param(LayerDense(3, 2), {"x": "pass", "weights": "pass", "biases": "pass"},
                 id="dense"),
    pytest.param(LayerDense(3, 2, "dbiases-mean"),
                 {"x": "pass", "weights": "pass", "biases": "fail"}, id="dense-dbiases-mean"),
    pytest.param(LayerDense(3, 2, "dinputs-transposed-twice"),
                 {"x": "fail", "weights": "pass", "biases": "pass"}, id="dense-dinputs-wrong"),
    pytest.param(ActivationTanh(), {"x": "pass"}, id="tanh"),
    pytest.param(LayerDropout(0.3), {"x": "pass"}, id="dropout-training"),
    pytest.param(LayerDropout(0.3, "scale-not-mask"), {"x": "fail"}, id="dropout-no-mask"),
])
def test_nnfs_style(obj, statuses):
    before = fingerprint(vars(obj))
    found, report = _check(obj)
    assert found == statuses
    assert not report.warnings and not report.problems
    assert fingerprint(vars(obj)) == before  # never touched


def test_a_training_flag_is_passed_true_unless_told():
    assert plan_calls(LayerDropout(0.5)).kwargs == {"training": True}
    assert plan_calls(LayerDropout(0.5), {"training": False}).kwargs == {"training": False}


# --- numpy-ml style: lazy parameters, dicts, inputs kept in lists, accumulating gradients -------


class FullyConnected:
    def __init__(self, n_out, bug=""):
        self.n_out, self.bug = n_out, bug
        self.is_initialized = False
        self.parameters = {"W": None, "b": None}
        self.X = []
        self.derived_variables = {"Z": []}

    def _init_params(self, n_in):
        rng = np.random.default_rng(1)
        self.parameters = {"W": rng.normal(size=(n_in, self.n_out)),
                           "b": rng.normal(size=(1, self.n_out))}
        self.gradients = {"W": np.zeros((n_in, self.n_out)), "b": np.zeros((1, self.n_out))}
        self.is_initialized = True

    def forward(self, X, retain_derived=True):
        if not self.is_initialized:
            self._init_params(X.shape[1])
        Z = X @ self.parameters["W"] + self.parameters["b"]
        Y = np.tanh(Z)
        if retain_derived:
            self.X.append(X)
            self.derived_variables["Z"].append(Z)
        return Y

    def backward(self, dLdy, retain_grads=True):
        dXs = []
        for dy, X, Z in zip([dLdy], self.X, self.derived_variables["Z"], strict=False):
            dZ = dy * (1 - np.tanh(Z) ** 2)
            dX = dZ @ self.parameters["W"].T
            if self.bug == "dW-without-dZ":
                dZ = dy
            self.gradients["W"] += X.T @ dZ
            self.gradients["b"] += dZ.sum(axis=0, keepdims=True)
            dXs.append(dX)
        return dXs[0] if len(self.X) == 1 else dXs


@pytest.mark.parametrize(("bug", "statuses"), [
    pytest.param("", {"x": "pass", "W": "pass", "b": "pass"}, id="correct"),
    pytest.param("dW-without-dZ", {"x": "pass", "W": "fail", "b": "fail"}, id="dW-without-dZ"),
])
def test_numpy_ml_style_inputs_kept_in_lists_do_not_leak_between_calls(bug, statuses):
    obj = FullyConnected(2, bug)
    found, report = _check(obj)
    assert found == statuses
    assert "forward appends to X, derived_variables['Z'] at every call" in " ".join(
        report.warnings)
    assert obj.X == [] and not obj.is_initialized


# --- activation objects -------------------------------------------------------------------------


class Sigmoid:  # numpy-ml: fn / grad(x)
    def __init__(self, bug=""):
        self.bug = bug

    def fn(self, z):
        return 1 / (1 + np.exp(-z))

    def grad(self, x):
        s = self.fn(x)
        return s * (1 - s) if not self.bug else s


class LeakyReLU:  # ML-From-Scratch: __call__ / gradient(x)
    def __init__(self, alpha=0.2, bug=""):
        self.alpha, self.bug = alpha, bug

    def __call__(self, x):
        return np.where(x >= 0, x, self.alpha * x)

    def gradient(self, x):
        return np.where(x >= 0, 1, self.alpha if not self.bug else 1.0)


class Softplus:  # derivative(x), and backward(x) taking the input
    def __init__(self, bug=""):
        self.bug = bug

    def forward(self, x):
        return np.log1p(np.exp(x))

    def backward(self, x):
        return 1 / (1 + np.exp(-x)) if not self.bug else 1 / (1 + np.exp(x))


@pytest.mark.parametrize(("obj", "status"), [
    pytest.param(Sigmoid(), "pass", id="fn-grad"),
    pytest.param(Sigmoid("s-not-s(1-s)"), "fail", id="fn-grad-wrong"),
    pytest.param(LeakyReLU(), "pass", id="call-gradient"),
    pytest.param(LeakyReLU(bug="slope-1"), "fail", id="call-gradient-wrong"),
    pytest.param(Softplus(), "pass", id="backward-of-x"),
    pytest.param(Softplus("sign"), "fail", id="backward-of-x-wrong"),
])
def test_activation_objects(obj, status):
    x = X + np.sign(X) * 0.05  # away from the kink of the leaky ReLU
    found, _ = _check(obj, x)
    assert found == {"x": status}


# --- course classes: dW/db, forward_pass/backward_pass, (out, cache), several outputs ----------


class Affine:
    def __init__(self, W, b, bug=""):
        self.W, self.b, self.bug = W, b, bug

    def forward_pass(self, X):
        self.X = X
        return X @ self.W + self.b

    def backward_pass(self, dY):
        self.dW = self.X.T @ dY
        self.db = dY.sum(axis=0) * (2.0 if self.bug else 1.0)
        return dY @ self.W.T


class AffineCache:  # forward returns (out, cache), backward(dout, cache) returns (dx, dW, db)
    def __init__(self, W, b, bug=""):
        self.W, self.b, self.bug = W, b, bug

    def forward(self, x):
        return x @ self.W + self.b, (x, self.W)

    def backward(self, dout, cache):
        x, W = cache
        dW = x.T @ dout if not self.bug else x.T @ dout / len(x)
        return dout @ W.T, dW, dout.sum(axis=0)


class TwoOutputs:  # forward returns (h, c), backward(dh, dc)
    def __init__(self, bug=""):
        self.w, self.bug = np.linspace(0.5, 1.5, 3), bug

    def forward(self, x):
        self.x = x
        return x * self.w, np.sin(x)

    def backward(self, dh, dc):
        self.dw = (dh * self.x).sum(axis=0)
        return dh * self.w + (dc * np.cos(self.x) if not self.bug else 0.0)


W0 = [[0.5, -1.0], [1.5, 0.25], [-0.75, 1.0]]  # as the command line's --kwarg JSON gives them
B0 = [0.1, -0.2]


@pytest.mark.parametrize(("cls", "kwargs", "statuses"), [
    pytest.param(Affine, {}, {"x": "pass", "W": "pass", "b": "pass"}, id="dW-db-forward_pass"),
    pytest.param(Affine, {"bug": "x"}, {"x": "pass", "W": "pass", "b": "fail"},
                 id="dW-db-wrong"),
    pytest.param(AffineCache, {}, {"x": "pass", "W": "pass", "b": "pass"}, id="tuple-returned"),
    pytest.param(AffineCache, {"bug": "x"}, {"x": "pass", "W": "fail", "b": "pass"},
                 id="tuple-returned-wrong"),
])
def test_constructor_arrays_and_course_classes(cls, kwargs, statuses):
    obj = construct(cls, {"W": W0, "b": B0, **kwargs})
    assert isinstance(obj.W, np.ndarray) and obj.W.dtype == np.float64
    found, report = _check(obj)
    assert found == statuses and not report.problems


@pytest.mark.parametrize(("bug", "statuses"), [
    pytest.param("", {"x": "pass", "w": "pass"}, id="correct"),
    pytest.param("drops-dc", {"x": "fail", "w": "pass"}, id="second-output-dropped"),
])
def test_several_outputs(bug, statuses):
    assert _check(TwoOutputs(bug))[0] == statuses


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param([[1, 2], [3, 4]], np.array([[1.0, 2.0], [3.0, 4.0]]), id="matrix"),
    pytest.param([0.5, 1], np.array([0.5, 1.0]), id="float-vector"),
    pytest.param([[True, False]], np.array([[True, False]]), id="mask"),
    pytest.param([5, 4, 1], [5, 4, 1], id="sizes-stay-a-list"),
    pytest.param("train", "train", id="string"),
    pytest.param([[1], [2, 3]], [[1], [2, 3]], id="ragged"),
])
def test_coerce(value, expected):
    got = coerce(value)
    assert type(got) is type(expected)
    assert np.array_equal(got, expected) if isinstance(got, np.ndarray) else got == expected


def test_construct_names_the_call_that_raised():
    with pytest.raises(InvalidArgument, match=r"Affine\(W=.*\) raised TypeError"):
        construct(Affine, {"W": W0})


# --- no silent skips ----------------------------------------------------------------------------


class Scaled:  # gamma's gradient under a name no convention knows; beta's nowhere
    def __init__(self, bug=""):
        self.gamma, self.beta = np.linspace(0.5, 1.5, 3), np.linspace(-1, 1, 3)
        self.running_mean = np.zeros(3)
        self.bug = bug

    def forward(self, x):
        self.x = x
        self.running_mean = 0.9 * self.running_mean + 0.1 * x.mean(axis=0)
        return x * self.gamma + self.beta

    def backward(self, dout):
        self.gamma_update = (dout * self.x).sum(axis=0) * (1.5 if self.bug else 1.0)
        return dout * self.gamma


class SgdInside:  # applies the update with a local gradient: W is never checked
    def __init__(self):
        self.W = np.linspace(0.5, 1.5, 3)

    def forward(self, x):
        self.x = x
        return x * self.W

    def backward(self, dout):
        dx = dout * self.W
        self.W = self.W - 0.1 * (dout * self.x).sum(axis=0)
        return dx


@pytest.mark.parametrize(("bug", "statuses"), [
    pytest.param("", {"x": "pass", "gamma": "pass"}, id="found-by-shape-and-name"),
    pytest.param("x1.5", {"x": "pass", "gamma": "fail"}, id="found-and-wrong"),
])
def test_every_float_array_is_checked_or_named(bug, statuses):
    found, report = _check(Scaled(bug))
    assert found == statuses
    text = " ".join(report.warnings)
    assert "the gradient of `gamma` was found at `gamma_update`" in text
    assert "`beta` (a float array of shape (3,)) has no gradient after backward" in text
    assert "--grad beta=LOCATION" in text
    assert "running_mean" not in text  # state the forward updates is no parameter


def test_an_update_inside_backward_without_a_gradient_is_a_problem():
    found, report = _check(SgdInside())
    assert found == {"x": "pass"} and not report.passed
    assert "`W` (a float array of shape (3,)) has no gradient" in " ".join(report.warnings)
    assert any("backward changed `W`, whose gradient was never found" in p
               for p in report.problems)


def test_without_an_example_unchecked_arrays_are_named():
    layer = from_class(Scaled())
    assert layer.parameters() == {}
    text = " ".join(layer.notes)
    assert "`gamma`" in text and "`beta`" in text and "pass example=" in text


@pytest.mark.parametrize(("call", "match"), [
    pytest.param(lambda: from_class(object()), "must have a callable `forward` method",
                 id="no-forward"),
    pytest.param(lambda: from_class(LayerDense(3, 2), example=X, forward_kwargs={"mode": 1}),
                 "`forward_kwargs` has 'mode', which is not a parameter", id="unknown-kwarg"),
    pytest.param(lambda: from_class(LayerDense(3, 2), forward_kwargs=[1]),
                 "`forward_kwargs` must be a mapping", id="kwargs-not-mapping"),
])
def test_input_validation(call, match):
    with pytest.raises(InvalidArgument, match=match):
        call()


def test_a_forward_argument_without_default_needs_forward_kwargs():
    class NeedsMode:
        def forward(self, x, mode):
            return x

        def backward(self, dout):
            return dout

    with pytest.raises(InvalidArgument, match=r"takes `mode` besides its input `x`: pass "
                                              r"forward_kwargs=\{'mode': value\}"):
        from_class(NeedsMode())
    assert _check(copy.deepcopy(NeedsMode()), forward_kwargs={"mode": "train"})[0] == {
        "x": "pass"}
