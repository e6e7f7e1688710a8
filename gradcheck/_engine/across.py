"""Ties across inputs: ``np.maximum(a, b)`` where ``a_k == b_k``.

Each input's gradient is judged alone (:mod:`gradcheck._engine.judge`), and alone each sees only
its own side of such a tie: moving ``a_k`` up takes the whole ``dout_k``, moving it down none, so
any share in between is valid for ``a_k``, and the same for ``b_k``. Only moving both together
shows that their shares must add up to ``dout_k`` (a rule that gives the full ``dout`` to both
fails there). This stage gathers the kinks the inputs found, groups those whose one-sided
derivatives agree across inputs, measures each group along the joint objective
(:mod:`gradcheck._engine.kinks`: the same two-sided total and slot chain as a tie inside one
input), and lets the ladder judge the shares (:func:`gradcheck._engine.ladder.tie_verdict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from gradcheck._engine import ladder
from gradcheck._engine.call import Spec
from gradcheck._engine.kinks import MAX_TIE, along_tie
from gradcheck._engine.objective import Numeric, Reference, joint_objective, noise
from gradcheck.numeric import local_scale
from gradcheck.results import GradientResult
from gradcheck.tolerance import budget

MAX_CROSS = 64  # kinks per input taken into the cross-input grouping


@dataclass(frozen=True)
class _Kink:
    name: str
    flat: int  # index into the input
    left: float
    right: float
    analytic: float
    budget: float


def _kinks_of(result: GradientResult) -> list[_Kink]:
    """A result's kinks with their budgets (from the evidence it kept)."""
    ev = result.evidence
    if ev is None or ev.estimate is None or ev.indices is None or not result.kinks:
        return []
    shape = ev.analytic.shape
    position = {int(k): j for j, k in enumerate(np.asarray(ev.indices).reshape(-1))}
    n = np.asarray(ev.estimate.value, dtype=np.float64).reshape(-1)
    e = np.asarray(ev.estimate.error, dtype=np.float64).reshape(-1)
    found = []
    for k in result.kinks[:MAX_CROSS]:
        flat = int(np.ravel_multi_index(k.index, shape))
        j = position.get(flat)
        if j is None:
            continue
        r = 0.0 if ev.rounding is None else float(np.asarray(ev.rounding).reshape(-1)[flat])
        b = float(budget(np.array([k.analytic]), n[j:j + 1], e[j:j + 1], np.array([r]),
                         ev.tolerance)[0])
        found.append(_Kink(result.name, flat, k.left, k.right, k.analytic, b))
    return found


def _groups(kinks: list[_Kink]) -> list[list[_Kink]]:
    """Kinks of different inputs whose one-sided derivatives agree within their budgets."""
    groups: list[list[_Kink]] = []
    for k in kinks:
        for group in groups:
            first = group[0]
            room = 2 * (k.budget + first.budget) + 1e-12 * (abs(k.left) + abs(k.right))
            if (k.name not in {g.name for g in group} and abs(k.left - first.left) <= room
                    and abs(k.right - first.right) <= room):
                group.append(k)
                break
        else:
            groups.append([k])
    return [g for g in groups if len(g) >= 2]


def across(spec: Spec, ref: Reference, method: str,
           results: Sequence[GradientResult]) -> tuple[list[GradientResult], int]:
    """The results again, with the inputs whose share of an invalid cross-input tie was found
    failed (and the reason added to their messages); and the evaluations made."""
    kinks = [k for r in results if r.status == "kink" for k in _kinks_of(r)]
    if len({k.name for k in kinks}) < 2:
        return list(results), 0
    groups = [g[:MAX_TIE] for g in _groups(kinks)]
    if not groups:
        return list(results), 0
    names = list(dict.fromkeys(k.name for g in groups for k in g))
    f, v = joint_objective(spec, ref, names)
    offsets = dict(zip(names, np.cumsum([0] + [ref.inputs[k].size for k in names]).tolist(),
                       strict=False))
    scale = np.concatenate([local_scale(ref.inputs[k]).reshape(-1) for k in names])
    level = max(float(np.max(noise(ref, k))) for k in names)
    joint = Numeric(f, v, np.full(v.size, level), method, "", None)
    failed: dict[str, list[str]] = {}
    nfev = 0
    for group in groups:
        positions = np.array([offsets[k.name] + k.flat for k in group])
        tie, used = along_tie(joint, positions, np.array([k.left for k in group]),
                              np.array([k.right for k in group]), scale,
                              np.array([k.budget for k in group]))
        nfev += used
        where = ("tied elements across inputs ("
                 + ", ".join(f"{k.name}[{k.flat}]" for k in group[:6]) + ")")
        code, note = ladder.tie_verdict(tie, np.array([k.analytic for k in group]),
                                        np.array([k.budget for k in group]), where)
        if code == ladder.BAD_TIE:
            for k in group:
                failed.setdefault(k.name, []).append(note)
    statuses = ladder.across_inputs({r.name: r.status for r in results}, failed)
    return [replace(r, status=statuses[r.name],
                    message="; ".join(filter(None, [r.message, *failed.get(r.name, [])[:1]])))
            if r.name in failed else r for r in results], nfev
