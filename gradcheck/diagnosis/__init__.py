"""What is wrong with a failing gradient, in a learner's words, from ``e = analytic - numeric``.

A failing check says *where* the analytic gradient is off; a learner needs to know *which term*
is wrong and which line to look at. Every cause model predicts the error its mistake would
leave; its evidence is the fraction of ``||e||²`` (over the compared elements) the prediction
explains, ``1 - ||e - e_pred||² / ||e||²``. A cause is claimed only when it explains at least
:data:`THRESHOLD` of ``||e||²``, and never on a passing gradient; when no single cause does, pairs
of causes whose predicted errors add up are tried.

The headline (a finding's ``text``) names the gradient, the term, the measured factor and what
it means (``dx: the x̂·mean(dout·x̂) term is 1.25 × too large at N = 5, which is N/(N−1): the
variance's backward divides by N−1 where the forward divides by N``); the fit behind it is its
``evidence``. The models live in :mod:`.generic` (layer-agnostic mechanisms), :mod:`.norm`
(normalisation layers' terms), :mod:`.shapes` (gradients of the wrong shape) and :mod:`.factors`
(factors named by meaning); :func:`step_sweep` (:mod:`.sweep`) says bug or noise.

Examples
--------
>>> import numpy as np
>>> from gradcheck.check import check_grads
>>> report = check_grads(lambda x: np.sum(x**3), lambda x: -3 * x**2, np.array([1.0, 2.0, 3.0]))
>>> report.results[0].diagnosis.cause
'sign'
>>> print(report.results[0].diagnosis.findings[0].text)
dx has the wrong sign everywhere (measured ×(−1)): looks like a gradient reversal (the sign of
the whole gradient flipped): a − where + belongs, in the loss or the last term
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from gradcheck.diagnosis import generic as gen
from gradcheck.diagnosis.factors import counts_of
from gradcheck.diagnosis.fitting import Candidate, Case, align, explained, make_case
from gradcheck.diagnosis.norm import NormModel, norm_candidates, norm_model
from gradcheck.diagnosis.shapes import shape_findings
from gradcheck.diagnosis.sweep import SWEEP_STEPS, step_sweep
from gradcheck.results import Diagnosis, Evidence, Finding, GradientResult, Sweep

__all__ = ["CONCENTRATED", "SWEEP_STEPS", "THRESHOLD", "attach", "diagnose", "step_sweep"]

THRESHOLD = 0.99  # a cause must explain this fraction of ||e||^2 (99.5% of the norm ||e||)
CONCENTRATED = 0.9  # "a few elements" / "one channel" hold this fraction of ||e||^2
_TIE = 100.0  # findings whose unexplained part is within this factor of the best compete by rank
_PAIRS_FROM = 12  # pairs are tried among this many best single causes

# Most specific first: among causes that explain the error equally well, the first is named.
_RANK = {c: i for i, c in enumerate((
    "keepdims", "transposed", "not-summed", "wrong-axis", "partly-summed", "zero", "sign",
    "swapped", "sum-vs-mean", "bessel",
    "missing-mean-term", "missing-xhat-term", "missing-means-term", "xhat-term-sign",
    "mean-term-sign", "means-term-sign", "variance-path-doubled", "variance-path-count",
    "mean-path-count", "count-in-means", "gamma-missing", "missing-inv-std",
    "unbiased-variance", "eps-outside-sqrt", "dgamma-uses-xc", "wrong-eps",
    "no-accumulation", "time-carry", "one-hot", "one-hot-sign", "jacobian-diagonal",
    "mask-not-applied", "mask-inverted", "sign-subset", "flipped", "moved", "scale",
    "straight-through",
    "missing-factor", "times-input", "regulariser",
    "term-scale", "constant-along-axis", "proportional", "concentrated", "one-channel",
    "parity"))}

# Patterns that only restate another cause: never an alternative, never half of a pair.
_RESTATEMENTS = frozenset({"proportional", "parity", "concentrated", "one-channel",
                           "constant-along-axis"})


def _threshold(f: Finding) -> float:
    return CONCENTRATED if f.cause in ("concentrated", "one-channel") else THRESHOLD


def _rank(f: Finding) -> int:
    return sum(_RANK.get(c, 99) for c in f.cause.split("+"))


def _choose(cands: Sequence[Candidate]) -> tuple[Finding, ...]:
    """The best finding first (the lowest rank among the near-best), then close alternatives."""
    kept = [c.finding for c in cands if c.finding.explained >= _threshold(c.finding)]
    if not kept:
        return ()
    best = min(1.0 - f.explained for f in kept)
    near = [f for f in kept if 1.0 - f.explained <= max(_TIE * best, 1e-9)]
    first = min(near, key=lambda f: (_rank(f), -f.explained))
    rest = sorted((f for f in near if f is not first and f.cause not in _RESTATEMENTS
                   and f.text != first.text), key=lambda f: (_rank(f), -f.explained))
    return (first, *rest[:2])


def _strip(text: str, grad: str) -> str:
    for lead in (f"{grad}: ", f"{grad} "):
        if text.startswith(lead):
            return text[len(lead):] if lead.endswith(": ") else text[len(grad) + 1:]
    return text


def _pairs(case: Case, cands: Sequence[Candidate]) -> list[Candidate]:
    """Two causes whose predicted errors add up to ``e``, for when no single one suffices."""
    single = sorted((c for c in cands if c.error is not None
                     and c.finding.cause not in _RESTATEMENTS),
                    key=lambda c: -c.finding.explained)[:_PAIRS_FROM]
    out = []
    for c1, c2 in itertools.combinations(single, 2):
        assert c1.error is not None and c2.error is not None
        share = explained(case.e, case.e - c1.error - c2.error)
        if share < THRESHOLD:
            continue
        f1, f2 = sorted((c1.finding, c2.finding), key=_rank)
        text = (f"{case.grad} has two mistakes at once: {_strip(f1.text, case.grad)}; and "
                f"{_strip(f2.text, case.grad)}")
        evidence = (f"alone they explain {f1.explained:.1%} and {f2.explained:.1%} of the "
                    "error; their predicted errors added explain the rest")
        out.append(Candidate(Finding(f"{f1.cause}+{f2.cause}", text, share, evidence)))
    return out


def _quantities(case: Case, inputs: Mapping[str, np.ndarray], dout: np.ndarray,
                others: Sequence[Case]) -> list[tuple[str, str, np.ndarray]]:
    """Other quantities of the check, at this gradient's compared elements."""
    out = []
    for k, v in inputs.items():
        aligned = align(np.asarray(v, dtype=np.float64), case.shape)
        if aligned is not None:
            out.append(("self" if k == case.name else k, f"`{k}`", case.take(aligned)))
    if dout.shape == case.shape:
        out.append(("dout", "dout", case.take(dout)))
    out += [(o.name, f"{o.grad} (numerical)", o.n) for o in others
            if o.shape == case.shape and np.array_equal(o.idx, case.idx)]
    return out


def _candidates(case: Case, ev: Evidence, others: Sequence[Case],
                model: NormModel | None) -> list[Candidate]:
    dout = np.asarray(ev.dout, dtype=np.float64)
    counts = counts_of({**ev.inputs, "dout": dout})
    found = (gen.scale(case, counts) + gen.swapped(case, others)
             + gen.times_input(case, ev.inputs))
    if model is not None:
        found += norm_candidates(case, model)
    unit = float(dout.reshape(-1)[0]) if dout.size == 1 and dout.reshape(-1)[0] != 0 else 1.0
    found += gen.proportional(case, _quantities(case, ev.inputs, dout, others), unit)
    found += (gen.constant_along(case) + gen.transposed(case) + gen.flipped(case)
              + gen.moved(case) + gen.mask(case) + gen.sign_subset(case, ev.inputs)
              + gen.accumulation(case, dout) + gen.time_steps(case, counts)
              + gen.one_per_row(case, counts, unit) + gen.straight_through(case, dout)
              + gen.diagonal_only(case, dout))
    found += [Candidate(f) for f in gen.parity(case) + gen.concentrated(case)]
    return found


def _worst_sweep(result: GradientResult, ev: Evidence) -> Sweep | None:
    if ev.objective is None or result.worst_index is None or not result.worst:
        return None
    flat = int(np.ravel_multi_index(result.worst_index, ev.analytic.shape))
    x = ev.inputs[ev.name]
    return step_sweep(ev.objective, x, flat, float(result.analytic_at_worst), result.budget)


def _none_note(cands: Sequence[Candidate]) -> str:
    real = [c.finding for c in cands if c.finding.cause not in _RESTATEMENTS]
    closest = max(real, key=lambda f: f.explained, default=None)
    tail = (f" (the closest, {closest.text}, explains {closest.explained:.0%})"
            if closest is not None and closest.explained >= 0.5 else "")
    return (f"no known cause, alone or in a pair, explains {THRESHOLD:.0%} of the error{tail}; "
            "see the worst elements")


def diagnose(result: GradientResult, others: Sequence[GradientResult] = (), *,
             sweep: bool = True) -> Diagnosis | None:
    """The causes a failing gradient's error is consistent with, best first, with evidence.

    Parameters
    ----------
    result : GradientResult
        A gradient of a check; it needs its ``evidence`` (attached by the checker).
    others : sequence of GradientResult
        The other gradients of the same check (for swapped gradients and the norm model).
    sweep : bool
        Also run :func:`step_sweep` on the worst element (a few evaluations of the layer).

    Returns
    -------
    Diagnosis or None
        ``None`` for a passing gradient or one without evidence; else the findings that
        explain at least :data:`THRESHOLD` of ``||e||²`` (possibly none) and the sweep.
    """
    ev = result.evidence
    if result.passed or result.status != "fail" or ev is None:
        return None
    case = make_case(ev)
    if case is None:
        return Diagnosis(note="directional mode compares no single element; rerun with "
                              "--mode full for a diagnosis")
    peers = {o.name: c for o in (result, *others)
             if o.evidence is not None and (c := make_case(o.evidence)) is not None}
    model = norm_model(peers, ev.inputs, ev.dout)
    rest = [c for k, c in peers.items() if k != case.name]
    cands = _candidates(case, ev, rest, model)
    chosen = _choose(cands) or _choose(_pairs(case, cands))
    note = "" if chosen else _none_note(cands)
    return Diagnosis(chosen, _worst_sweep(result, ev) if sweep else None, note)


def _diagnose_shape(result: GradientResult, grads: Mapping[str, Any],
                    inputs: Mapping[str, np.ndarray]) -> Diagnosis | None:
    raw, x = grads.get(result.name), inputs.get(result.name)
    if raw is None or x is None:
        return None
    found = shape_findings(result.name, tuple(np.shape(raw)), tuple(x.shape), inputs)
    return Diagnosis(tuple(found), None, "" if found else "no known shape mistake matches")


def attach(results: Sequence[GradientResult], grads: Mapping[str, Any],
           inputs: Mapping[str, np.ndarray]) -> list[GradientResult]:
    """Each failing gradient with its :class:`Diagnosis`; passing ones unchanged.

    Parameters
    ----------
    results : sequence of GradientResult
        One check's gradients, judged.
    grads : mapping
        The raw analytic gradients the backward returned (for shape mistakes).
    inputs : mapping
        The check's inputs.

    Returns
    -------
    list of GradientResult
    """
    out = []
    for r in results:
        if r.status == "shape":
            d = _diagnose_shape(r, grads, inputs)
        else:
            d = diagnose(r, [o for o in results if o is not r])
        out.append(r if d is None else replace(r, diagnosis=d))
    return out
