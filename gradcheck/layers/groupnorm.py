"""Reference group normalisation (and instance normalisation) in NumPy.

The ``C`` channels of each sample are split into ``G`` groups of ``C / G`` consecutive channels;
each group, with all its spatial positions, is normalised on its own (Wu & He 2018, arXiv
1803.08494, eq. 1-3 and their Figure 3 code; PyTorch ``torch.nn.GroupNorm``)::

    mu = mean(x[i, group])     xc = x - mu     v = mean(xc * xc)
    xhat = xc / sqrt(v + eps)  y = gamma[c] * xhat + beta[c]

with the **biased** variance, in training and inference alike. ``G = 1`` normalises each sample
over everything (LayerNorm with a per-channel affine); ``G = C`` is instance normalisation
(Ulyanov, Vedaldi & Lempitsky 2016, arXiv 1607.08022; ``torch.nn.InstanceNorm2d(affine=True)``
without running statistics). ``gamma``/``beta`` are per channel, ``(C,)`` as PyTorch or
``(1, C, 1, 1)`` as the course's ``spatial_groupnorm_forward`` (``(1, C)`` and ``(1, C, 1)``
for 2-D and 3-D input). The backwards are derived in :mod:`gradcheck.layers._groupwise`.
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
    "GroupNorm",
    "GroupNormCache",
    "InstanceNorm",
    "groupnorm_backward",
    "groupnorm_backward_compact",
    "groupnorm_backward_staged",
    "groupnorm_forward",
    "instancenorm_forward",
]

GroupNormCache = GroupwiseCache


def _groups(groups: Any, channels: int) -> int:
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise InvalidArgument(f"`groups` must be a positive integer, got {groups!r}")
    if channels % groups:
        raise InvalidArgument(
            f"`groups` must divide the {channels} channels of `x`, got {groups}"
        )
    return int(groups)


def groupnorm_forward(
    x: Any, gamma: Any = None, beta: Any = None, *, groups: int, eps: float = 1e-5
) -> tuple[np.ndarray, GroupNormCache]:
    """Normalise each group of consecutive channels of each sample; a pure function.

    Parameters
    ----------
    x : array, shape (N, C, ...)
        Input, channels on axis 1.
    gamma, beta : array, shape (C,) or (1, C, 1, 1), optional
        Per-channel scale and shift; ones and zeros of shape ``(C,)`` when omitted.
    groups : int
        Number of groups ``G``; must divide ``C``.
    eps : float
        Added to the variance inside the square root; 0 is allowed.

    Returns
    -------
    out : array
        Same shape as ``x``, dtype ``result_type(x, gamma, beta)``.
    cache : GroupNormCache
        Feed to :func:`groupnorm_backward`.

    Raises
    ------
    InvalidArgument
        Wrong shapes, dtypes, non-finite values, negative ``eps``, ``groups`` not dividing ``C``,
        one value per group.

    Examples
    --------
    >>> x = np.array([[[1.0, 3.0], [5.0, 7.0]]])  # N=1, C=2, L=2
    >>> groupnorm_forward(x, groups=2, eps=0.0)[0]
    array([[[-1.,  1.],
            [-1.,  1.]]])
    """
    x = _validate_array("x", x, finite=False)
    gw.check_rank(x)
    c = x.shape[1]
    g = _groups(groups, c)
    per_channel = (1, c) + (1,) * (x.ndim - 2)
    shapes = {(c,): per_channel, per_channel: per_channel}
    what = f"the {c} channels of `x`"
    gam = gw.param("gamma", gamma, shapes, 1.0, x.dtype, what)
    bet = gw.param("beta", beta, shapes, 0.0, x.dtype, what)
    return gw.normalise(x, gam, bet, g, _validate_eps(eps), "group")


def instancenorm_forward(
    x: Any, gamma: Any = None, beta: Any = None, *, eps: float = 1e-5
) -> tuple[np.ndarray, GroupNormCache]:
    """Instance normalisation: :func:`groupnorm_forward` with one channel per group.

    Examples
    --------
    >>> x = np.array([[[1.0, 3.0], [5.0, 9.0]]])
    >>> instancenorm_forward(x, eps=0.0)[0]
    array([[[-1.,  1.],
            [-1.,  1.]]])
    """
    arr = _validate_array("x", x, finite=False)
    gw.check_rank(arr)
    return groupnorm_forward(arr, gamma, beta, groups=arr.shape[1], eps=eps)


def groupnorm_backward_staged(dout: Any, cache: GroupNormCache) -> dict[str, np.ndarray]:
    """Backward by the chain rule through each group's ``mu`` and ``v``."""
    return gw.backward_staged(dout, cache, "GroupNormCache")


def groupnorm_backward_compact(dout: Any, cache: GroupNormCache) -> dict[str, np.ndarray]:
    """Backward by ``(dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(v + eps)``."""
    return gw.backward_compact(dout, cache, "GroupNormCache")


def groupnorm_backward(
    dout: Any, cache: GroupNormCache, *, form: BackwardForm = "compact"
) -> dict[str, np.ndarray]:
    """Gradients ``{"x": dx, "gamma": dgamma, "beta": dbeta}`` of ``<dout, out>``.

    Parameters
    ----------
    dout : array
        Upstream gradient, the shape of ``x``.
    cache : GroupNormCache
        From :func:`groupnorm_forward` or :func:`instancenorm_forward`.
    form : {"compact", "staged"}
        Which of the two independently derived formulas.

    Returns
    -------
    dict
        ``dgamma`` and ``dbeta`` have ``gamma``'s shape.

    Examples
    --------
    >>> x = np.arange(8.0).reshape(2, 2, 2) ** 2
    >>> out, cache = groupnorm_forward(x, groups=1)
    >>> grads = groupnorm_backward(np.ones_like(x), cache, form="staged")
    >>> np.allclose(grads["x"], 0.0), grads["beta"]
    (True, array([4., 4.]))
    """
    return gw.backward(dout, cache, form, "GroupNormCache")


class GroupNorm:
    """A GroupNorm layer: ``groups``, per-channel parameters, a backward form; no mode.

    Arguments in PyTorch's order (``torch.nn.GroupNorm(num_groups, num_channels)``).
    ``forward``/``backward`` implement gradcheck's ``Layer`` protocol (inputs ``x``, ``gamma``,
    ``beta`` by name).

    Examples
    --------
    >>> gn = GroupNorm(1, 2, eps=0.0)
    >>> gn(np.array([[[1.0], [3.0]], [[0.0], [4.0]]]))
    array([[[-1.],
            [ 1.]],
    <BLANKLINE>
           [[-1.],
            [ 1.]]])
    """

    def __init__(
        self, num_groups: int, num_channels: int, *, eps: float = 1e-5,
        backward_form: BackwardForm = "compact",
    ) -> None:
        if isinstance(num_channels, bool) or not isinstance(num_channels, (int, np.integer)) or (
            num_channels < 1
        ):
            raise InvalidArgument(
                f"`num_channels` must be a positive integer, got {num_channels!r}"
            )
        self.groups = _groups(num_groups, int(num_channels))
        self.eps = _validate_eps(eps)
        self.backward_form: BackwardForm = gw.check_form(backward_form)
        self.gamma = np.ones(int(num_channels))
        self.beta = np.zeros(int(num_channels))
        self.training = True  # kept for symmetry with BatchNorm; GroupNorm ignores it

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.groups}, {self.gamma.shape[0]}, eps={self.eps}, "
            f"backward={self.backward_form!r})"
        )

    @property
    def name(self) -> str:
        return f"{type(self).__name__}[G={self.groups}, {self.backward_form}]"

    def parameters(self) -> dict[str, np.ndarray]:
        """Copies of ``gamma`` and ``beta``, checked along with ``x``."""
        return {"gamma": self.gamma.copy(), "beta": self.beta.copy()}

    def forward(self, inputs: Mapping[str, Any]) -> tuple[np.ndarray, GroupNormCache]:
        """Pure forward; ``inputs`` holds ``x`` and optionally the params."""
        return groupnorm_forward(
            inputs["x"], inputs.get("gamma", self.gamma), inputs.get("beta", self.beta),
            groups=self.groups, eps=self.eps,
        )

    def backward(self, dout: Any, cache: GroupNormCache) -> dict[str, np.ndarray]:
        """Gradients by name, in the form chosen at construction."""
        return groupnorm_backward(dout, cache, form=self.backward_form)

    def __call__(self, x: Any) -> np.ndarray:
        """The forward's output."""
        return self.forward({"x": x})[0]


class InstanceNorm(GroupNorm):
    """Instance normalisation: a :class:`GroupNorm` with one channel per group.

    Examples
    --------
    >>> InstanceNorm(3).groups
    3
    """

    def __init__(
        self, num_channels: int, *, eps: float = 1e-5, backward_form: BackwardForm = "compact"
    ) -> None:
        super().__init__(num_channels, num_channels, eps=eps, backward_form=backward_form)
