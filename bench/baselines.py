"""The two checkers gradcheck is compared with, on the same NumPy forward and backward.

**The course checker** (CS231n, ``cs231n/gradient_check.py`` and ``layer_utils``):
:func:`eval_numerical_gradient_array` perturbs one element of the input *in place* at a time,
``h = 1e-5``, and takes ``sum((f(x+h) - f(x-h)) * df) / 2h``; :func:`rel_error` is
``max |a - n| / max(1e-8, |a| + |n|)`` over all elements. The notebooks read the number by eye
("relative errors ... should be less than 1e-7 ... you should be happy"); to turn it into a
verdict we flag a gradient when ``rel_error > COURSE_THRESHOLD = 1e-7``. Two evaluations of the
forward per element, no error estimate, no sampling.

**torch.autograd.gradcheck** on :func:`torch_function`: a ``torch.autograd.Function`` whose
forward calls :func:`gradcheck.batchnorm_forward` on NumPy copies of the float64 tensors and whose
backward calls the given NumPy backward (the reference, or one with an injected bug). The default
mode builds both Jacobians (central differences with ``eps = 1e-6``, one backward per output
element) and compares them with ``allclose(rtol=1e-3, atol=1e-5)``; ``fast_mode=True`` compares
``vᵀJu`` for random ``u``, ``v``. The wrapper counts forward and backward calls.
torch is optional: :func:`torch_status` says whether it can be imported and why not.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from gradcheck import batchnorm_forward

__all__ = [
    "COURSE_H",
    "COURSE_THRESHOLD",
    "CourseResult",
    "TorchResult",
    "course_check",
    "eval_numerical_gradient_array",
    "rel_error",
    "torch_check",
    "torch_function",
    "torch_status",
]

COURSE_H = 1e-5
COURSE_THRESHOLD = 1e-7

Backward = Callable[[np.ndarray, Any], Mapping[str, np.ndarray]]


# ------------------------------------------------------------------------------ course checker


def eval_numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, df: np.ndarray, h: float = COURSE_H
) -> np.ndarray:
    """CS231n's checker: central differences element by element, ``x`` perturbed in place."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        oldval = x[ix]
        x[ix] = oldval + h
        pos = f(x).copy()
        x[ix] = oldval - h
        neg = f(x).copy()
        x[ix] = oldval
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def rel_error(x: np.ndarray, y: np.ndarray) -> float:
    """CS231n's ``max(|x - y| / max(1e-8, |x| + |y|))``."""
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


@dataclass(frozen=True)
class CourseResult:
    """``rel_error`` per gradient, and the verdict at :data:`COURSE_THRESHOLD`."""

    rel_errors: dict[str, float]
    nfev: int
    numeric: dict[str, np.ndarray]

    @property
    def passed(self) -> bool:
        return all(e <= COURSE_THRESHOLD for e in self.rel_errors.values())


def course_gradients(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                     dout: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """The course checker's numerical dx, dgamma, dbeta, and the forward calls it made."""
    arrays = {"x": x.copy(), "gamma": gamma.copy(), "beta": beta.copy()}

    def forward_of(name: str) -> Callable[[np.ndarray], np.ndarray]:
        def f(a: np.ndarray) -> np.ndarray:
            args = {**arrays, name: a}
            return batchnorm_forward(args["x"], args["gamma"], args["beta"])[0]
        return f

    numeric = {k: eval_numerical_gradient_array(forward_of(k), v.copy(), dout)
               for k, v in arrays.items()}
    return numeric, 2 * sum(v.size for v in arrays.values())


def course_check(x: np.ndarray, dout: np.ndarray, backward: Backward) -> CourseResult:
    """Run the course checker on BatchNorm (gamma ones, beta zeros) against ``backward``."""
    gamma, beta = np.ones(x.shape[1]), np.zeros(x.shape[1])
    _, cache = batchnorm_forward(x, gamma, beta)
    analytic = backward(dout, cache)
    numeric, nfev = course_gradients(x, gamma, beta, dout)
    errors = {k: rel_error(np.asarray(analytic[k]), numeric[k]) for k in numeric}
    return CourseResult(errors, nfev, numeric)


# --------------------------------------------------------------------------------------- torch


def torch_status() -> tuple[Any, str]:
    """``(torch module, "")`` when importable, else ``(None, why)``."""
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:  # ImportError, or a broken install raising anything else
        return None, f"torch is not importable ({type(exc).__name__}: {exc})"
    return torch, ""


def torch_function(torch: Any, backward: Backward) -> Any:
    """A ``torch.autograd.Function`` over the NumPy reference forward and ``backward``.

    The class counts its calls in ``calls["forward"]`` and ``calls["backward"]``.
    """

    class NumpyBatchNorm(torch.autograd.Function):
        calls: ClassVar[dict[str, int]] = {"forward": 0, "backward": 0}

        @staticmethod
        def forward(ctx: Any, x: Any, gamma: Any, beta: Any) -> Any:
            NumpyBatchNorm.calls["forward"] += 1
            arrays = [t.detach().numpy().copy() for t in (x, gamma, beta)]
            out, ctx.cache = batchnorm_forward(*arrays)
            return torch.from_numpy(out)

        @staticmethod
        def backward(ctx: Any, dout: Any) -> Any:
            NumpyBatchNorm.calls["backward"] += 1
            grads = backward(dout.detach().numpy().copy(), ctx.cache)
            return tuple(torch.from_numpy(np.ascontiguousarray(grads[k]))
                         for k in ("x", "gamma", "beta"))

    return NumpyBatchNorm


@dataclass(frozen=True)
class TorchResult:
    """torch's verdict and the calls it made."""

    passed: bool
    forward_calls: int
    backward_calls: int


def torch_check(torch: Any, x: np.ndarray, backward: Backward, *, fast_mode: bool,
                seed: int) -> TorchResult:
    """``torch.autograd.gradcheck`` (defaults otherwise) on BatchNorm with ``backward``."""
    torch.manual_seed(seed)
    fn = torch_function(torch, backward)
    channels = x.shape[1]
    inputs = (
        torch.tensor(x, dtype=torch.float64, requires_grad=True),
        torch.ones(channels, dtype=torch.float64, requires_grad=True),
        torch.zeros(channels, dtype=torch.float64, requires_grad=True),
    )
    ok = torch.autograd.gradcheck(fn.apply, inputs, fast_mode=fast_mode, raise_exception=False)
    return TorchResult(bool(ok), fn.calls["forward"], fn.calls["backward"])
