"""Central differences with the classic step and a two-step error bound."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck.numeric._base import (
    _EPS,
    _F_ULPS,
    _TINY,
    Estimate,
    _Evaluator,
    _finish,
    _noise_at,
    _validate,
    _validate_noise,
    local_scale,
)


def _central_steps(xk: np.ndarray, scale: Any = None) -> np.ndarray:
    """``ε^(1/3)·sign(x)·max(1, |x|)`` with sign(0) = +1, or less where ``x`` varies on a
    smaller scale ``s``: ``(ε κ)^(1/3)·s`` with ``κ = max(1, |x|)/s``, the step that balances
    truncation (relative ``(h/s)²``) and a noise amplified by the conditioning ``κ``."""
    sign = np.where(xk < 0, -1.0, 1.0)
    magnitude = np.maximum(1.0, np.abs(xk))
    classic = _EPS ** (1 / 3) * magnitude
    if scale is not None:
        s = np.asarray(scale, dtype=np.float64)
        kappa = np.maximum(1.0, magnitude / s)
        classic = np.minimum(classic, np.cbrt(_EPS * kappa) * s)
    return sign * classic


def _central_core(
    evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray], xk: np.ndarray, noise: Any,
    scale: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``D(h)``, its bound from ``D(2h)`` and the step taken, for each element ``j``;
    ``evaluate(js, values)`` evaluates every point of the stencil at once."""
    h = _central_steps(xk, scale)
    points = xk[:, None] + np.array([1.0, -1.0, 2.0, -2.0]) * h[:, None]
    js = np.repeat(np.arange(xk.size), 4)
    values = np.asarray(evaluate(js, points.reshape(-1)), dtype=np.float64)
    values = values.reshape(xk.size, 4)
    d1 = (values[:, 0] - values[:, 1]) / (points[:, 0] - points[:, 1])
    d2 = (values[:, 2] - values[:, 3]) / (points[:, 2] - points[:, 3])
    step = points[:, 0] - xk
    noise_k = noise + _F_ULPS * _EPS * np.max(np.abs(values), axis=1, initial=0.0)
    error = np.abs(d2 - d1) + 2 * noise_k / np.abs(step) + 4 * _EPS * np.abs(d1) + _TINY
    return d1, error, step


def central(
    f: Callable[[np.ndarray], Any], x: Any, *, indices: Any = None, noise: Any = None
) -> Estimate:
    """Gradient by central differences with ``h = ε^(1/3)·max(1, |x_k|)``, bound from two steps.

    Where ``x_k`` varies on a scale ``s_k`` below ``max(1, |x_k|)`` (:func:`local_scale`: the
    smallest spread along an axis through it, e.g. a BatchNorm channel at a large offset), the
    step is ``(ε κ_k)^(1/3)·s_k`` with ``κ_k = max(1, |x_k|)/s_k`` instead: the classic step
    would be many natural scales wide and its ``h²`` error model would not hold.

    Parameters
    ----------
    f : callable
        ``f(arr) -> real scalar``.
    x : array of float
        Point of evaluation; never modified. Evaluated as float64.
    indices : 1-D array of int, optional
        Flat indices of the elements to estimate; all when omitted.
    noise : float or array, optional
        Bound on the absolute rounding error of ``f`` near ``x`` (at the points evaluated), one
        for all elements or one per element (``x``'s shape); ``8·ε·|f|`` at those points is
        always added, and is all there is when omitted.

    Returns
    -------
    Estimate
        ``method="central"``, value ``D(h)``, error ``|D(2h) - D(h)| + 2·noise_k/|h| + 4ε|D(h)|``
        (``noise_k = noise + 8ε·max|f|`` over the element's four values), step ``(x + h) - x``;
        4 evaluations per element.

    Raises
    ------
    InvalidArgument
        As :func:`complex_step`, and for a negative or non-finite ``noise``.

    Examples
    --------
    >>> est = central(lambda a: np.sum(a**3), np.array([1.0, 2.0]), noise=1e-15)
    >>> bool(np.all(np.abs(est.value - [3.0, 12.0]) <= est.error)), est.nfev
    (True, 8)
    """
    problem = _validate(f, x, indices)
    noise_k = _noise_at(_validate_noise(noise, problem.x.shape), problem.idx)
    ev = _Evaluator(problem)
    idx = problem.idx
    scale = local_scale(problem.x).reshape(-1)[idx]
    value, error, step = _central_core(
        lambda js, vs: ev.at_many(idx[js], vs), problem.x.flat[idx], noise_k, scale
    )
    return _finish(problem, value, error, ev.nfev, "central", step)

