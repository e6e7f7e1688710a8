"""Reference layer normalisation in NumPy: forward and two independent backwards.

Each sample is normalised over all its features (Ba, Kiros & Hinton 2016, arXiv 1607.06450,
eq. 4; PyTorch ``torch.nn.LayerNorm`` with ``normalized_shape = x.shape[1:]``)::

    mu_i = mean(x[i])     xc = x[i] - mu_i     v_i = mean(xc * xc)
    xhat = xc / sqrt(v_i + eps)                y = gamma * xhat + beta

with the **biased** variance, in training and inference alike (there are no running statistics).
``gamma`` and ``beta`` come in the shapes PyTorch and the course use:

* per feature, elementwise: ``x.shape[1:]`` (PyTorch's ``weight``; ``(D,)`` for ``(N, D)``) or
  ``(1, *x.shape[1:])`` (the keepdims form);
* per channel, for ``(N, C, ...)`` with more than two axes: ``(C,)`` or ``(1, C, 1, 1)`` (the
  course's spatial shape).

The forward is two-pass and complex-step safe; the backwards (staged chain rule and compact
formula) are derived in :mod:`gradcheck.layers._groupwise`. Because ``gamma`` varies inside the
normalised group, LayerNorm's Jacobian ``d y / d x`` is ``diag(gamma) K`` with ``K`` symmetric, so
unlike BatchNorm's it is not symmetric.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.layers import _groupwise as gw
from gradcheck.layers._groupwise import BackwardForm, GroupwiseCache
from gradcheck.layers.batchnorm import _validate_array, _validate_eps

__all__ = [
    "LayerNorm",
    "LayerNormCache",
    "layernorm_backward",
    "layernorm_backward_compact",
    "layernorm_backward_staged",
    "layernorm_forward",
]

LayerNormCache = GroupwiseCache


def _param_shapes(x: np.ndarray) -> dict[tuple[int, ...], tuple[int, ...]]:
    """Accepted shapes of ``gamma``/``beta`` for ``x``, each with its broadcast shape."""
    features = tuple(x.shape[1:])
    shapes = {features: (1, *features), (1, *features): (1, *features)}
    if x.ndim > 2:
        per_channel = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        shapes[(x.shape[1],)] = per_channel
        shapes[per_channel] = per_channel
    return shapes


def layernorm_forward(
    x: Any, gamma: Any = None, beta: Any = None, *, eps: float = 1e-5
) -> tuple[np.ndarray, LayerNormCache]:
    """Normalise each sample of ``x`` over all its features; a pure function.

    Parameters
    ----------
    x : array, shape (N, D) or (N, C, ...)
        Input; statistics run over every axis but the batch axis 0.
    gamma, beta : array, optional
        Scale and shift per feature (``x.shape[1:]`` or ``(1, *x.shape[1:])``) or, for more than
        two axes, per channel (``(C,)`` or ``(1, C, 1, 1)``); ones and zeros of ``x.shape[1:]``
        when omitted.
    eps : float
        Added to the variance inside the square root; 0 is allowed.

    Returns
    -------
    out : array
        Same shape as ``x``, dtype ``result_type(x, gamma, beta)``.
    cache : LayerNormCache
        Feed to :func:`layernorm_backward`.

    Raises
    ------
    InvalidArgument
        Wrong shapes, dtypes, non-finite values, negative ``eps``, one feature per sample.

    Examples
    --------
    >>> out, _ = layernorm_forward(np.array([[1.0, 3.0], [10.0, 30.0]]), eps=0.0)
    >>> out
    array([[-1.,  1.],
           [-1.,  1.]])
    """
    x = _validate_array("x", x, finite=False)
    gw.check_rank(x)
    shapes = _param_shapes(x)
    what = f"x of shape {x.shape}"
    g = gw.param("gamma", gamma, shapes, 1.0, x.dtype, what)
    b = gw.param("beta", beta, shapes, 0.0, x.dtype, what)
    return gw.normalise(x, g, b, 1, _validate_eps(eps), "sample")


def layernorm_backward_staged(dout: Any, cache: LayerNormCache) -> dict[str, np.ndarray]:
    """Backward by the chain rule through each sample's ``mu`` and ``v``."""
    return gw.backward_staged(dout, cache, "LayerNormCache")


def layernorm_backward_compact(dout: Any, cache: LayerNormCache) -> dict[str, np.ndarray]:
    """Backward by ``(dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(v + eps)``."""
    return gw.backward_compact(dout, cache, "LayerNormCache")


def layernorm_backward(
    dout: Any, cache: LayerNormCache, *, form: BackwardForm = "compact"
) -> dict[str, np.ndarray]:
    """Gradients ``{"x": dx, "gamma": dgamma, "beta": dbeta}`` of ``<dout, out>``.

    Parameters
    ----------
    dout : array
        Upstream gradient, the shape of ``x``.
    cache : LayerNormCache
        From :func:`layernorm_forward`.
    form : {"compact", "staged"}
        Which of the two independently derived formulas.

    Returns
    -------
    dict
        ``dgamma`` and ``dbeta`` have ``gamma``'s shape.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 4.0], [3.0, 5.0, 0.0]])
    >>> out, cache = layernorm_forward(x)
    >>> grads = layernorm_backward(np.ones_like(x), cache)
    >>> np.allclose(grads["x"], 0.0), grads["beta"]
    (True, array([2., 2., 2.]))
    """
    return gw.backward(dout, cache, form, "LayerNormCache")


def _shape(normalized_shape: Any) -> tuple[int, ...]:
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else (
        normalized_shape
    )
    ok = isinstance(shape, (tuple, list)) and len(shape) > 0 and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape
    )
    if not ok:
        raise InvalidArgument(
            "`normalized_shape` must be a positive integer or a tuple of them, "
            f"got {normalized_shape!r}"
        )
    return tuple(int(d) for d in shape)


class LayerNorm:
    """A LayerNorm layer: parameters and a backward form (no running statistics, no mode).

    ``normalized_shape`` is the shape of ``gamma``/``beta``: ``D`` for ``(N, D)`` input,
    ``(C, H, W)`` for PyTorch's elementwise affine on ``(N, C, H, W)``, or ``C`` (per channel).
    ``forward``/``backward`` implement gradcheck's ``Layer`` protocol (inputs ``x``, ``gamma``,
    ``beta`` by name).

    Examples
    --------
    >>> ln = LayerNorm(2, eps=0.0)
    >>> ln(np.array([[0.0, 2.0], [5.0, 1.0]]))
    array([[-1.,  1.],
           [ 1., -1.]])
    """

    def __init__(
        self, normalized_shape: Any, *, eps: float = 1e-5, backward_form: BackwardForm = "compact"
    ) -> None:
        shape = _shape(normalized_shape)
        self.eps = _validate_eps(eps)
        self.backward_form: BackwardForm = gw.check_form(backward_form)
        self.gamma = np.ones(shape)
        self.beta = np.zeros(shape)
        self.training = True  # kept for symmetry with BatchNorm; LayerNorm ignores it

    def __repr__(self) -> str:
        return (
            f"LayerNorm({self.gamma.shape}, eps={self.eps}, backward={self.backward_form!r})"
        )

    @property
    def name(self) -> str:
        return f"LayerNorm[{self.backward_form}]"

    def parameters(self) -> dict[str, np.ndarray]:
        """Copies of ``gamma`` and ``beta``, checked along with ``x``."""
        return {"gamma": self.gamma.copy(), "beta": self.beta.copy()}

    def forward(self, inputs: Mapping[str, Any]) -> tuple[np.ndarray, LayerNormCache]:
        """Pure forward; ``inputs`` holds ``x`` and optionally the params."""
        return layernorm_forward(
            inputs["x"], inputs.get("gamma", self.gamma), inputs.get("beta", self.beta),
            eps=self.eps,
        )

    def backward(self, dout: Any, cache: LayerNormCache) -> dict[str, np.ndarray]:
        """Gradients by name, in the form chosen at construction."""
        return layernorm_backward(dout, cache, form=self.backward_form)

    def __call__(self, x: Any) -> np.ndarray:
        """The forward's output."""
        return self.forward({"x": x})[0]
