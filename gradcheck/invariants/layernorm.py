"""The reference LayerNorm as :class:`~gradcheck.invariants.groupwise.NormFunctions`.

LayerNorm is the one-group case of :mod:`gradcheck.invariants.groupwise` (use
``NormInputs(..., groups=1)``, the default); its identities and their sources are listed there.
"""

from __future__ import annotations

import functools

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.invariants.groupwise import NormFunctions
from gradcheck.layers.layernorm import layernorm_backward, layernorm_forward

__all__ = ["layernorm_functions"]


def _forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    return layernorm_forward(x, gamma, beta, eps=eps)[0]


def _backward(
    dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, *, form: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grads = layernorm_backward(dout, layernorm_forward(x, gamma, beta, eps=eps)[1],
                               form=form)  # type: ignore[arg-type]
    return grads["x"], grads["gamma"], grads["beta"]


def layernorm_functions(*, form: str = "compact") -> NormFunctions:
    """The reference LayerNorm (:mod:`gradcheck.layers.layernorm`) as :class:`NormFunctions`.

    Parameters
    ----------
    form : {"compact", "staged"}
        Which backward.

    Returns
    -------
    NormFunctions

    Examples
    --------
    >>> layernorm_functions().forward(np.array([[1.0, 3.0]]), np.ones(2), np.zeros(2), 0.0)
    array([[-1.,  1.]])
    """
    if form not in ("compact", "staged"):
        raise InvalidArgument(f"`form` must be 'compact' or 'staged', got {form!r}")
    return NormFunctions(_forward, functools.partial(_backward, form=form))
