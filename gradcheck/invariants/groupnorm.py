"""The reference GroupNorm and instance norm as :class:`~gradcheck.invariants.NormFunctions`.

Their identities and sources are in :mod:`gradcheck.invariants.groupwise`; pass the same
``groups`` in :class:`~gradcheck.invariants.groupwise.NormInputs` (``C`` for instance norm).
"""

from __future__ import annotations

import functools

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.invariants.groupwise import NormFunctions
from gradcheck.layers.groupnorm import groupnorm_backward, groupnorm_forward

__all__ = ["groupnorm_functions"]


def _forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, *, groups: int | None
) -> np.ndarray:
    g = np.shape(x)[1] if groups is None else groups
    return groupnorm_forward(x, gamma, beta, groups=g, eps=eps)[0]


def _backward(
    dout: np.ndarray, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, *,
    groups: int | None, form: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = np.shape(x)[1] if groups is None else groups
    cache = groupnorm_forward(x, gamma, beta, groups=g, eps=eps)[1]
    grads = groupnorm_backward(dout, cache, form=form)  # type: ignore[arg-type]
    return grads["x"], grads["gamma"], grads["beta"]


def groupnorm_functions(groups: int | None, *, form: str = "compact") -> NormFunctions:
    """The reference GroupNorm (:mod:`gradcheck.layers.groupnorm`) as :class:`NormFunctions`.

    Parameters
    ----------
    groups : int or None
        Number of groups; ``None`` is one channel per group (instance norm).
    form : {"compact", "staged"}
        Which backward.

    Returns
    -------
    NormFunctions

    Examples
    --------
    >>> x = np.array([[[1.0, 3.0], [5.0, 9.0]]])
    >>> groupnorm_functions(None).forward(x, np.ones(2), np.zeros(2), 0.0)
    array([[[-1.,  1.],
            [-1.,  1.]]])
    """
    if form not in ("compact", "staged"):
        raise InvalidArgument(f"`form` must be 'compact' or 'staged', got {form!r}")
    if groups is not None and (isinstance(groups, bool) or not isinstance(groups, int) or
                               groups < 1):
        raise InvalidArgument(f"`groups` must be a positive integer or None, got {groups!r}")
    return NormFunctions(
        functools.partial(_forward, groups=groups),
        functools.partial(_backward, groups=groups, form=form),
    )
