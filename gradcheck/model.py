"""Whole networks in the parameter-dict convention: ``parameters = {"W1": ..., "b1": ...}``.

The popular deep-learning courses write a network as a dict of parameters, a cost function of
them, and a backprop returning ``{"dW1": ..., "db1": ..., "dgamma1": ...}`` (often with
``dA``/``dZ`` entries too, which are ignored). :func:`check_model` checks every parameter's
gradient against the cost: the cost becomes the layer's scalar output, its upstream gradient a
scalar, and the gradient of ``W1`` is looked up as ``W1`` or ``dW1``.

A redundant bias before a BatchNorm (``b1`` in ``BN(X W1 + b1)``) has a gradient that cancels
to rounding noise: it is reported as ``zero`` (no evidence), not as a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gradcheck.check import check_layer
from gradcheck.errors import InvalidArgument, LayerError
from gradcheck.results import CheckReport

__all__ = ["ModelLayer", "check_model"]


class ModelLayer:
    """A cost of a parameter dict, and its gradients, as a layer whose inputs are the parameters."""

    def __init__(self, cost: Callable[..., Any], grads: Any, name: str) -> None:
        self._cost, self._grads, self.name = cost, grads, name

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        result = self._cost(dict(inputs))
        cache = None
        if isinstance(result, tuple):  # (cost, cache): backprop takes the cache
            result, cache = result[0], result[1] if len(result) == 2 else result[1:]
        value = np.asarray(result)
        if value.size != 1:
            raise LayerError(f"{self.name}: cost must return a scalar, got shape {value.shape}")
        return value.reshape(()), (dict(inputs), cache)

    def _gradients(self, inputs: dict[str, np.ndarray], cache: Any) -> Mapping[str, Any]:
        if not callable(self._grads):
            return self._grads
        found = self._grads(inputs if cache is None else cache)
        if not isinstance(found, Mapping):
            raise LayerError(
                f"{self.name}: grads must return a dict of gradients, got {type(found).__name__}"
            )
        return found

    def backward(self, dout: np.ndarray, cache: Any) -> dict[str, Any]:
        inputs, inner = cache
        found = self._gradients(inputs, inner)
        out = {}
        for name in inputs:
            key = name if name in found else f"d{name}"
            if key not in found:
                raise LayerError(
                    f"{self.name}: the gradients have neither {name!r} nor 'd{name}' (they have "
                    f"{', '.join(map(str, found)) or 'nothing'})"
                )
            out[name] = np.asarray(dout) * np.asarray(found[key])
        return out


def check_model(
    cost: Callable[..., Any],
    grads: Any,
    parameters: Mapping[str, Any],
    **options: Any,
) -> CheckReport:
    """Check a network's gradients in the parameter-dict convention.

    Parameters
    ----------
    cost : callable
        ``cost(parameters) -> float``, or ``-> (float, cache)`` (then ``grads`` receives the
        cache). Bind the data with a closure: ``lambda p: compute_cost(forward(X, p), Y)``.
    grads : callable or mapping
        ``grads(parameters) -> {"dW1": ..., ...}`` (or ``grads(cache)``), or the gradients at
        ``parameters`` already computed. Each parameter's gradient is found under its own name
        or ``"d" + name``; other entries (``dA1``, ``dZ1``) are ignored.
    parameters : mapping of str to array
        The parameters to check, never modified.
    **options
        As for :func:`gradcheck.check_layer` (``method``, ``mode``, ``seed``, ``tolerance``,
        ``wrt``).

    Returns
    -------
    CheckReport
        One result per parameter.

    Examples
    --------
    >>> X = np.random.default_rng(1).normal(size=(5, 3))
    >>> cost = lambda p: 0.5 * np.sum((X @ p["W"] + p["b"]) ** 2)
    >>> grads = lambda p: {"dW": X.T @ (X @ p["W"] + p["b"]), "db": (X @ p["W"] + p["b"]).sum(0)}
    >>> params = {"W": np.ones((3, 2)), "b": np.zeros(2)}
    >>> report = check_model(cost, grads, params)
    >>> report.passed, [r.name for r in report.results]
    (True, ['W', 'b'])
    """
    if not callable(cost):
        raise InvalidArgument(f"`cost` must be callable, got {type(cost).__name__}")
    if not callable(grads) and not isinstance(grads, Mapping):
        raise InvalidArgument(
            f"`grads` must be callable or a mapping of gradients, got {type(grads).__name__}"
        )
    if not isinstance(parameters, Mapping) or not parameters:
        raise InvalidArgument(
            f"`parameters` must be a non-empty dict of name to array, got {parameters!r:.60}"
        )
    name = str(getattr(cost, "__name__", "model"))
    return check_layer(ModelLayer(cost, grads, name), parameters, **options)
