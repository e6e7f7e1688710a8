"""Orchestration: run a layer, measure its gradients, judge, and keep everyone's data safe.

The probe: a random upstream gradient ``g`` (seeded, standard normal, so its values are distinct:
a constant ``g`` makes BatchNorm's ``dx`` identically zero and the check vacuous) turns the layer
into the scalar ``L(inputs) = <g, forward(inputs)>``, whose gradient is exactly what
``backward(g, cache)`` claims to return. The numerical side always runs the layer on float64 copies
of the inputs (complex128 for the complex step); a float32 layer's analytic gradients are judged
against it under float32 budgets (:mod:`gradcheck.tolerance`).

Modes. ``full`` estimates every element. ``sampled`` estimates a seeded sample in which every index
of every axis appears (so every channel and every batch row), plus the corners, plus random
elements; and compares ``<analytic, u>`` with the numerical ``dL/du`` along :data:`DIRECTIONS`
random directions ``u``, shared by the inputs where their budgets allow. An error vector ``e``
escapes them all with probability at most ``MISS_PROBABILITY`` once its 2-norm reaches the
``miss_norm`` each result states (derived in :mod:`gradcheck._engine.directions`).
``directional`` makes the directions only. ``auto`` (:func:`gradcheck._engine.judge.modes`) gives
each input, smallest first, every element up to :data:`FULL_MODE_MAX_ELEMENTS`, else a sample,
else directions only, within a budget of evaluations times elements
(:data:`gradcheck._engine.judge.AUTO_WORK`): a 64x32
BatchNorm is checked in full, a 256x64 one by sample, a (32, 32, 32, 32) one by directions. The
report states the mode, the evaluations and ``miss_norm``.

Safety. The caller's arrays are never handed to the layer (copies only); the layer's attributes
are fingerprinted before and after and restored if a forward changed them; a forward that modifies
its inputs or a backward that modifies ``dout`` or the cache is reported as a failure; the backward
runs twice to catch nondeterminism.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from gradcheck import _collect, numeric
from gradcheck._engine.across import across
from gradcheck._engine.call import (
    Run,
    Spec,
    analytic_pass,
    restore_state,
    snapshot_state,
    validate_check,
    with_context,
)
from gradcheck._engine.judge import Sides, judge, shared
from gradcheck._engine.objective import (
    Reference,
    probe_check,
    reference,
    trace_check,
    witness_allowance,
)
from gradcheck._engine.shadow import Lazy
from gradcheck._guard import protected, time_limit, validate_timeout
from gradcheck.errors import GradcheckError, GradcheckWarning
from gradcheck.layer import annotate, from_callables
from gradcheck.numeric import Probe
from gradcheck.results import CheckReport, GradientResult, WorstElement
from gradcheck.tolerance import Tolerance

__all__ = [
    "CheckReport",
    "GradientResult",
    "WorstElement",
    "assert_gradients",
    "check_grads",
    "check_layer",
]

# --- public API ------------------------------------------------------------------------------


def check_layer(
    layer: Any,
    inputs: Mapping[str, Any],
    *,
    method: str = "auto",
    mode: str = "auto",
    seed: int = 0,
    tolerance: Tolerance | float | None = None,
    dout: Any = None,
    wrt: Sequence[str] | str | None = None,
    timeout: float | None = None,
) -> CheckReport:
    """Compare a layer's analytic gradients with numerical ones; measure, never raise on a mismatch.

    Parameters
    ----------
    layer : Layer
        Has ``forward(inputs) -> (out, cache)`` and ``backward(dout, cache) -> {name: grad}``;
        see :mod:`gradcheck.layer` for adapters. Its own ``parameters()`` are checked too.
    inputs : mapping of str to array
        Float arrays by name; never modified.
    method : {"auto", "complex", "central", "richardson"}
        Numerical method; ``auto`` uses the complex step when a probe shows the forward carries
        the imaginary part, else Richardson extrapolation.
    mode : {"auto", "full", "sampled", "directional"}
        ``auto`` estimates every element up to 2048 elements per input, else a sample plus
        random directions, else (for inputs and outputs of about a million elements) the
        directions only, within a budget of evaluations (see the module docstring).
    seed : int
        Seeds the upstream gradient, the samples and the directions.
    tolerance : Tolerance or float, optional
        Overrides ``rtol`` (a float) or ``rtol``/``atol``; see :mod:`gradcheck.tolerance`.
    dout : array, optional
        Upstream gradient; by default random with distinct values.
    wrt : str or sequence of str, optional
        Which inputs to check (default all).
    timeout : float, optional
        Seconds the check may take (``None`` or 0: no limit). Enforced with ``SIGALRM``, so in
        the main thread on POSIX only; elsewhere the check runs without a limit and warns.

    Returns
    -------
    CheckReport
        ``report.passed`` is the verdict; ``report.results`` one :class:`GradientResult` each.

    Raises
    ------
    InvalidArgument
        Bad arguments (the message names the parameter).
    LayerError
        The layer raised, called ``sys.exit``, returned NaN or something unusable, or omitted a
        gradient (the message names the phase); ``CheckTimeout``, a subclass, when the check
        overran ``timeout``.

    Examples
    --------
    >>> from gradcheck import BatchNorm
    >>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 5))
    >>> report = check_layer(BatchNorm(5), {"x": x})
    >>> report.passed, [r.name for r in report.results], report.results[0].method
    (True, ['x', 'gamma', 'beta'], 'complex')
    """
    t0 = time.perf_counter()
    spec = validate_check(layer, inputs, method, mode, seed, tolerance, dout, wrt)
    limit = validate_timeout(timeout)
    state = snapshot_state(layer)
    try:
        with time_limit(limit, hint="pass a larger `timeout`"):
            results, run = _check(spec)
    except GradcheckError as exc:
        raise with_context(exc, spec) from exc.__cause__
    finally:
        with protected():
            notes = restore_state(layer, state)
    run.warnings.extend(notes)
    for note in run.warnings:
        warnings.warn(f"{spec.name}: {note}", GradcheckWarning, stacklevel=2)
    report = CheckReport(
        spec.name, tuple(results), {k: v.shape for k, v in spec.inputs.items()},
        str(np.result_type(*spec.inputs.values())), spec.seed, _methods(results),
        tuple(run.problems), tuple(run.warnings), time.perf_counter() - t0,
    )
    report = annotate(report, layer)  # what the adapter saw inside (an optimizer step)
    _collect.notify(report)
    return report


def _check(spec: Spec) -> tuple[list[GradientResult], Run]:
    run = analytic_pass(spec)
    ref = reference(spec, run)
    if ref.random:
        run.problems.append(ref.random)
        return [], run
    shadow = Lazy(spec, run, witness_allowance(spec, ref))  # the witness and term runs
    found, calls = (probe_check(spec, ref) if spec.method == "auto"
                    else (trace_check(spec, ref), 0))
    results, more = _judged(spec, run, ref, shadow, found)
    if found.quick and any(r.status in ("fail", "inconclusive") for r in results):
        # a failure must not rest on the quick probe: the thorough one may find the complex
        # step unsafe (part of the imaginary part dropped), and then Richardson judges
        thorough, again = probe_check(spec, ref, quick=False)
        calls += again
        if not thorough.safe:
            calls += more + sum(r.nfev for r in results)
            found = thorough
            results, more = _judged(spec, run, ref, shadow, found)
    if results and calls + more:  # the probe's evaluations are part of the check's cost
        results[0] = replace(results[0], nfev=results[0].nfev + calls + more)
    run.warnings.extend(r.message for r in results if r.status == "zero")
    if all(r.passed for r in results):
        return results, run
    from gradcheck import diagnosis  # for failing gradients only: a passing check needs none

    return diagnosis.attach(results, run.grads, spec.inputs), run


def _judged(spec: Spec, run: Run, ref: Reference, shadow: Lazy, found: Probe
            ) -> tuple[list[GradientResult], int]:
    """Every gradient's result, and the evaluations of shared directions that vouched for none."""
    sides = Sides(spec, ref, shadow)
    vouched, shared_calls = shared(spec, run, ref, sides, found)
    results = [judge(spec, run, ref, sides, name, found, vouched.get(name))
               for name in spec.wrt]
    method = next((r.method for r in results if r.method in numeric.METHODS), spec.method)
    results, tie_calls = across(spec, ref, method, results)
    if results and tie_calls:
        results[0] = replace(results[0], nfev=results[0].nfev + tie_calls)
    return results, 0 if vouched else shared_calls


def _methods(results: Sequence[GradientResult]) -> str:
    seen = [r.method for r in results if r.method != "-"]
    return ", ".join(dict.fromkeys(seen)) or "-"



def assert_gradients(
    layer: Any, inputs: Mapping[str, Any], **options: Any
) -> CheckReport:
    """:func:`check_layer`, raising ``AssertionError`` with a short table when it fails.

    Examples
    --------
    >>> from gradcheck import BatchNorm
    >>> x = np.random.default_rng(0).normal(size=(6, 3))
    >>> assert_gradients(BatchNorm(3), {"x": x}).passed
    True
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this frame
    report = check_layer(layer, inputs, **options)
    if not report.passed:
        from gradcheck.report import failure_message

        raise AssertionError(failure_message(report))
    return report


def check_grads(f: Any, grad: Any, x: Any, **options: Any) -> CheckReport:
    """Check ``grad(x)`` against ``f(x) -> scalar`` (the small tier: no layer needed).

    Examples
    --------
    >>> check_grads(lambda x: np.sum(np.sin(x)), np.cos, np.linspace(0.0, 1.0, 5)).passed
    True
    """
    return check_layer(from_callables(f, grad), {"x": x}, **options)
