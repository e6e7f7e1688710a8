"""Numerical derivatives of a scalar function, each with an error bound.

Every estimator here measures ``∂f/∂x_k`` for a scalar ``f`` at ``x`` (or ``dφ/dt`` at ``t = 0``
for :func:`directional`) and returns an :class:`Estimate`: the value, a per-element bound on its
error, the evaluations used and the step taken. Nothing here judges; the caller compares.
All evaluations run in float64 (complex128 for the complex step) on a fresh copy of ``x``.
Below, ``ε = 2⁻⁵²`` and ``v`` is the estimate.

**Noise.** ``noise`` bounds the absolute rounding error of ``f`` near ``x``; the caller usually
knows it (for ``L = <g, out>`` about ``ε_out·Σ|g·out|``, times the forward's condition number when
that is large). The estimators add ``8ε·|f|`` at the points they evaluate, the rounding no
evaluation escapes; with ``noise=None`` that is all there is, which is enough unless ``f`` is a
sum that cancels (``|f| ≪ Σ|terms|``).

**Complex step** (Squire & Trapp 1998; Martins, Sturdza & Alonso 2003). For real-analytic ``f``,
``f(x + ih e_k) = f(x) + ih ∂_k f - h²/2 ∂²_k f - ih³/6 ∂³_k f + …``: the imaginary part carries
the derivative with no subtraction, hence no cancellation, so ``h`` can be tiny. We take
``h = 2⁻³⁶⁰·max(1, |x_k|)`` rounded down to a power of two (≈ 4e-109): the ``h³`` terms then
underflow to exactly zero (no truncation error at all; with the common ``h = 1e-20`` a zero
gradient comes out as ``-h²·∂³f/6``) and the division by ``h`` is exact. Where the caller says
the derivatives are tiny (``terms``, a layer whose outputs are 1e-200), ``h`` is raised by powers
of two until ``h·terms ≥ 2⁻⁹⁰⁰`` (:func:`complex_step_size`): imaginary parts must stay normal
numbers, or the estimate loses the digits it is made of and a gradient's status would depend on
its units. The bound ::

    error_k = 2⁷·ε·(|v_k| + T_k) + 2⁻¹⁰²²/h_k

models the rounding of the derivative computation relative to the terms ``T_k`` it sums (the
caller passes them, ``terms=``; by default the gradient's largest element); the second term
(≈ 1e-199 at ``h = 2⁻³⁶⁰``) is the resolution left when imaginary parts fall below the smallest
normal number.
The forward's conditioning is outside it (the derivative of the computed program differs from
the exact one by about ``ε·κ`` relative, ``κ = |mean|/std`` for BatchNorm's centering): the
checker re-measures, in complex long double (``dtype=np.clongdouble``), any element it would
otherwise fail. Only real-analytic code carries the imaginary part faithfully: ``abs``, ``sign``,
``np.var``, norms and casts to float break it, silently or not, which :func:`probe` detects;
``maximum``/``max``, comparisons and ``clip`` do not (NumPy orders complex numbers by their real
parts first, so they select exactly and carry the selected imaginary part; at exact ties the
sign of ``h`` picks a side, which the checker uses to find kinks).

**Central differences.** ``D(h) = (f(x + h) - f(x - h)) / ((x + h) - (x - h))`` has truncation
error ``c·h² + O(h⁴)`` (``c = ∂³f/6``) and rounding error at most ``noise/h``; the sum is
smallest for ``h ∝ (noise/|∂³f|)^(1/3)``, which for relative noise ``ε`` is the classic
``h = ε^(1/3)·max(1, |x_k|)`` (sign of ``x_k``, sign(0) = +1). The step actually taken is
``(x + h) - x``. The bound comes from **two steps**: ``D(2h) - D(h) ≈ 3·c·h²``, so ::

    error_k = |D(2h) - D(h)| + 2·noise_k/|h| + 4ε·|D(h)| + 2⁻¹⁰²²

is three times the extrapolated truncation error (a safety factor for the ``O(h⁴)`` terms and the
rounding inside the difference) plus the rounding of ``D(h)`` and of the quotient itself, with
``noise_k = noise + 8ε·max|f|`` over the element's four evaluations. Where ``x_k`` varies on a
scale ``s_k`` (:func:`local_scale`: the smallest spread along an axis through it, e.g. its
BatchNorm channel) below ``max(1, |x_k|)``, the step is ``(ε κ_k)^(1/3)·s_k`` with
``κ_k = max(1, |x_k|)/s_k`` instead, so the h² model holds on the element's own scale.

**Richardson extrapolation** runs :func:`scipy.differentiate.derivative` (elementwise: one
abscissa per element, the element's flat index passed in ``args``): an 8th-order stencil
``±h, ±h/2, ±h/4, ±h/8``, ``h`` halved each iteration. SciPy's ``error`` is the change from the
previous iterate and on an error increase it returns the latest, worse, iterate, so a callback
records every iterate ``D_i`` and each gets the bound ::

    error_i = max(|D_i - D_{i-1}|, |D_{i+1} - D_i|)
              + W·(noise_k + |D_i|·δ_k)/h_i + 4ε·|D_i| + 2⁻¹⁰²²

(both neighbours within the run must agree; ``W = Σ|w_j| ≈ 13.5`` is the stencil's weight sum,
so the second term bounds the rounding; ``noise_k`` as above over every value the element saw;
``δ_k`` the largest error in forming ``x_k + t``, zero unless a step crosses a power of two). An
iterate has *settled* when its neighbours agree to 2⁻⁶ relative or to 8 times its rounding
terms and, for the first, that each difference is at most 1/8 of the one before (a Taylor
rate; an 8th-order stencil gives about 1/256; iterates whose stencil straddles a kink do not
shrink so) — a run's first iterate settles only to rounding. Each bound also grows by how far
the iterate lies outside the rounding band of every settled iterate on a smaller step (across
a kink inside the wider stencils, those disagree). ``noise_k`` is at least four times the noise
*measured* at the element: 6th differences of ``f`` on nine points ``x_k + jδ``, ``δ`` far below
the element's scale, whose variance is ``C(12, 6)·σ²`` (Moré & Wild's ECnoise idea; a forward
such as ``E[x²] - E[x]²`` amplifies rounding beyond any model). We report the settled iterate
with the smallest bound. Elements with none (the step
began far above their natural scale and never reached the asymptotic regime) are run again from
a step 2⁻¹¹ lower, up to four runs; if none settles, the smallest bound is reported.

The initial step is ``h₀ = scale/8`` rounded to a power of two, with
``scale = min(max(1, |x_k|), s_k)`` (the local scale): the natural scale of an input is its
spread, not its magnitude. BatchNorm with mean 1e4 and std 1e-3 varies on the scale 1e-3, and a step
proportional to ``|x|`` would be a million times too large. Powers of two keep ``x_k + t`` exact;
steps stay above ``2⁻³⁶·|x_k|`` (offsets of at least 4 ulp of ``x_k`` itself: an input of
1e-100 is differentiated on its own scale).

**Directional** derivatives ``dφ/dt`` at 0 cost O(1) evaluations whatever the size of ``x``: the
caller passes ``φ(t) = L(x + t·u)`` with ``u`` scaled so that ``t ≈ 1`` is the natural scale. The
complex step there takes one step ``h₁ = 2⁻³⁶⁰`` when the caller gives the terms it sums
(``error = 2⁷·ε·(|v₁| + terms) + 2⁻¹⁰²²/h₁``), else two, ``h₁`` and ``h₂ = h₁·(1 + √5)/2``, whose
different rounding measures the error: ``error = 2|v₁ - v₂| + 2⁷·ε·|v₁| + 2⁻¹⁰²²/h₁``. Central and
Richardson are as above, with ``x_k = 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from gradcheck.kinds import METHODS
from gradcheck.numeric._base import (
    Estimate,
    _validate,
    _validate_method,
    _validate_noise,
    _validate_seed,
    complex_step_size,
    local_scale,
    spread,
)
from gradcheck.numeric.central import central
from gradcheck.numeric.complex_step import complex_step, rebound
from gradcheck.numeric.directional import directional
from gradcheck.numeric.probe import (
    Probe,
    operations,
    probe,
    probe_complex_step,
    screen,
)
from gradcheck.numeric.richardson import richardson

__all__ = [
    "METHODS",
    "Estimate",
    "Probe",
    "central",
    "complex_step",
    "complex_step_size",
    "directional",
    "local_scale",
    "numerical_gradient",
    "operations",
    "probe",
    "probe_complex_step",
    "rebound",
    "richardson",
    "screen",
    "spread",
]



class _Counted:
    """Wraps ``f`` to count its calls (for the evaluations the probe spends)."""

    def __init__(self, f: Callable[[np.ndarray], Any]) -> None:
        self.f = f
        self.calls = 0

    def __call__(self, arr: np.ndarray) -> Any:
        self.calls += 1
        return self.f(arr)



def _auto(f: Callable[[np.ndarray], Any], x: Any, indices: Any, noise: Any, seed: int) -> Estimate:
    counted = _Counted(f)
    safe, why = probe_complex_step(counted, x, seed=seed, noise=_validate_noise(noise))
    if safe:
        est = complex_step(f, x, indices=indices)
        reason = ("complex step safe: no non-analytic operation found and complex step agreed "
                  "with finite differences; used complex")
    else:
        est = richardson(f, x, indices=indices, noise=noise)
        reason = f"{why}; used richardson"
    return replace(est, nfev=est.nfev + counted.calls, reason=reason)


def numerical_gradient(
    f: Callable[[np.ndarray], Any],
    x: Any,
    *,
    method: str = "auto",
    indices: Any = None,
    noise: Any = None,
    seed: int = 0,
) -> Estimate:
    """Numerical gradient of the scalar ``f`` at ``x`` by the chosen method, with error bounds.

    Parameters
    ----------
    f : callable
        ``f(arr) -> scalar``; ``arr`` is a fresh float64 (or complex128) copy of ``x``.
    x : array of float
        Point of evaluation; never modified, even if ``f`` mutates its argument or raises.
    method : {"auto", "complex", "central", "richardson"}
        ``"auto"`` runs :func:`probe_complex_step` and uses the complex step when it is safe,
        Richardson otherwise; ``Estimate.reason`` says which ran and why.
    indices : 1-D array of int, optional
        Flat indices of the elements to estimate (sampling for large inputs).
    noise : float, optional
        Bound on the absolute rounding error of ``f`` near ``x`` (see :func:`richardson`);
        unused by the complex step.
    seed : int
        Seeds the probe's choice of elements.

    Returns
    -------
    Estimate
        For ``"auto"``, ``nfev`` includes the probe's evaluations.

    Raises
    ------
    InvalidArgument
        Unknown ``method``, ``x`` not a finite float array, ``indices`` out of range, ``f`` not
        returning a finite scalar, bad ``noise`` or ``seed``.

    Examples
    --------
    >>> est = numerical_gradient(lambda a: np.sum(np.abs(a)), np.array([1.0, -2.0]))
    >>> est.method, est.value.round(8)
    ('richardson', array([ 1., -1.]))
    >>> est.reason[:56]
    'complex step unsafe: the forward calls np.absolute on th'
    """
    method = _validate_method(method, METHODS)
    seed = _validate_seed(seed)
    if method == "auto":
        _validate(f, x, indices)
        return _auto(f, x, indices, noise, seed)
    if method == "complex":
        _validate_noise(noise)
        return complex_step(f, x, indices=indices)
    runner = central if method == "central" else richardson
    return runner(f, x, indices=indices, noise=noise)


