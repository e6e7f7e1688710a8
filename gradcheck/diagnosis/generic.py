"""Layer-agnostic causes: mechanisms that compare the analytic gradient with the numerical one.

Each function takes one gradient's :class:`~gradcheck.diagnosis.fitting.Case` (and what else it
needs) and returns candidates; none knows which layer it looks at:

- **scale**: ``analytic = c · numeric``, ``c`` named by meaning (:mod:`.factors`);
- **swapped**: the analytic gradient is another input's numerical gradient;
- **times an input** / **a factor missing**: ``analytic = q · numeric`` or ``numeric / q``;
- **an extra or missing term** proportional to the input itself (a regulariser's ``λ·W``),
  another input or ``dout``; **constant along an axis** (a per-feature term);
- **transposed**, **flipped** along spatial axes (a convolution's kernel), **moved** (the right
  values at the wrong places: a mis-computed argmax or index);
- **mask**: non-zero where the forward does not depend on the input (numerical 0), or the mask
  inverted; **a sign on a subset**, described by an input's sign where it is;
- **accumulation over repeated indices**: each wrong row equals one row of ``dout``;
- **time steps**: right at the last step, wrong before it (the recurrent path);
- **one element per row**: a one-hot term (softmax's ``−1`` at the label) missing, doubled or
  of the wrong sign (``+2/N``: ``+1`` where ``−1`` belongs), per unit of ``dout``;
- **straight-through**: ``analytic = dout``, the Jacobian taken as the identity;
- **the Jacobian's diagonal only** (a softmax's ``y(1−y)·dout``), recovered from the numbers;
- patterns without a prediction: **parity**, **a few elements**, **one channel**, each
  claimed only for the elements over their budget (never one at rounding level), and a pattern
  only from several of them, all fitting it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gradcheck.diagnosis.factors import MATCH, Count, Factor, name_factor, named_factors, times
from gradcheck.diagnosis.fitting import (
    Candidate,
    Case,
    align,
    candidate,
    explained,
    fit,
    shares,
)
from gradcheck.results import Finding

__all__ = ["accumulation", "concentrated", "constant_along", "diagonal_only", "flipped", "mask",
           "moved", "one_per_row", "parity", "proportional", "scale", "sign_subset",
           "straight_through", "swapped", "time_steps", "times_input", "transposed"]

_EXACT = 1e-9  # relative size below which an error or a difference counts as none


def _scale_text(g: str, c: float, f: Factor | None) -> tuple[str, str]:
    """(cause, headline) for ``analytic = c · numeric``."""
    if f is None and abs(c - 1.0) < 1e-3:
        return "scale", (f"{g} is off by a relative {c - 1:+.3g} everywhere, as measured (×"
                         f"{c:.9g}): a constant factor is slightly off in the backward (a "
                         "rounded constant, a float32 step?)")
    if f is None:
        return "scale", (f"{g} is {times(c)} the true gradient everywhere, as measured: a "
                         "constant factor is extra or missing in the backward")
    cnt = f.count
    at = f"{cnt.symbol} = {cnt.value}, {cnt.meaning}" if cnt else ""
    s = cnt.symbol if cnt else ""
    texts = {
        "sign": ("sign", f"{g} has the wrong sign everywhere (measured ×(−1)): looks like a "
                         "gradient reversal (the sign of the whole gradient flipped): a − where "
                         "+ belongs, in the loss or the last term"),
        "zero": ("zero", f"{g} is zero: the backward never sets it"),
        "two": ("scale", f"{g} is ×2 the true gradient everywhere, as measured: one factor 2 "
                         "too many (a term added twice, or a 2 the forward does not have)"),
        "half": ("scale", f"{g} is ×½ the true gradient everywhere, as measured: a factor 2 is "
                          "missing"),
        "count": ("sum-vs-mean", f"{g} is ×{s} the true gradient ({at}): a sum where the "
                                 f"forward takes a mean over {s}; divide by {s}"),
        "inverse": ("sum-vs-mean", f"{g} is 1/{s} of the true gradient ({at}): a mean where "
                                   f"the forward sums over {s}; drop the 1/{s}"),
        "bessel": ("bessel", f"{g} is {c:.4g} × too large at {s} = {cnt.value if cnt else 0}, "
                             f"which is {s}/({s}−1): the backward divides by {s}−1 where the "
                             f"forward divides by {s}"),
        "inverse-bessel": ("bessel", f"{g} is {c:.4g} × the true gradient at {s} = "
                                     f"{cnt.value if cnt else 0}, which is ({s}−1)/{s}: the "
                                     f"backward divides by {s} where the forward divides by "
                                     f"{s}−1"),
    }
    return texts[f.kind]


def scale(case: Case, counts: Sequence[Count]) -> list[Candidate]:
    nn = float(np.dot(case.n, case.n))
    if nn == 0:
        return []
    c = float(np.dot(case.a, case.n)) / nn
    cause, text = _scale_text(case.grad, c, name_factor(c, counts))
    return [candidate(case, cause, text, c * case.n,
                      f"analytic ≈ c · numeric with c = {c:.9g} (least squares)")]


def swapped(case: Case, others: Sequence[Case]) -> list[Candidate]:
    return [candidate(case, "swapped", f"{case.grad} holds the values of {o.grad}: the two "
                                       "gradients are swapped (return them in the order of "
                                       "the forward's parameters)", o.n,
                      f"analytic {case.grad} equals the numerical {o.grad}")
            for o in others if o.shape == case.shape and np.array_equal(o.idx, case.idx)]


def times_input(case: Case, inputs: Mapping[str, np.ndarray]) -> list[Candidate]:
    found = []
    for k, v in inputs.items():
        q = align(np.asarray(v, dtype=np.float64), case.shape)
        if q is None or not np.any(q != 1):
            continue
        qv = case.take(q)
        found.append(candidate(case, "times-input", f"{case.grad} has an extra factor `{k}`: "
                                                    f"it is `{k}` × the true gradient",
                               qv * case.n, f"analytic ≈ `{k}` · numeric"))
        if np.all(qv != 0):
            found.append(candidate(case, "missing-factor", f"{case.grad} lacks the factor "
                                                           f"`{k}` of the chain rule",
                                   case.n / qv, f"analytic ≈ numeric / `{k}`"))
    return found


def proportional(case: Case, quantities: Sequence[tuple[str, str, np.ndarray]],
                 unit: float = 1.0) -> list[Candidate]:
    """``e ≈ c · q``: a term in ``q`` extra (c > 0) or missing (c < 0).

    ``quantities`` holds (key, label, values); the key ``self`` marks the gradient's own input,
    whose term is a regulariser's ``λ·W``. ``unit`` is a scalar loss's upstream gradient: the
    term is stated per unit of it, as the learner's code has it.
    """
    found = []
    for key, label, q in quantities:
        c_fit, share = fit(case.e, q)
        c = c_fit / unit
        if c == 0:
            continue
        amount = f"{abs(c):.4g}·{label}"
        if key == "self":
            text = (f"{case.grad} lacks the term {amount} (measured): the regulariser's "
                    f"gradient λ·{label} is missing (λ ≈ {abs(c):.4g})" if c < 0 else
                    f"{case.grad} has an extra term {amount} (measured): a regulariser's "
                    f"gradient λ·{label} the loss does not have, or λ too large")
            cause = "regulariser"
        else:
            text = (f"{case.grad} {'lacks' if c < 0 else 'has an extra'} term {amount} "
                    f"(measured): a term in {label} is {'missing' if c < 0 else 'extra'}")
            cause = "proportional"
        found.append(Candidate(Finding(cause, text, share, f"e ≈ {c:.6g} × {label}" + (
            f" per unit of the loss's upstream gradient ({unit:.4g})" if unit != 1.0 else "")),
                               c_fit * q))
    return found


def constant_along(case: Case) -> list[Candidate]:
    """``e`` the same for every element of a feature: a function of one axis's index only."""
    e = case.grid(case.e)
    if e is None or e.ndim < 2:
        return []
    found = []
    for axis in range(e.ndim):
        others = tuple(k for k in range(e.ndim) if k != axis)
        if all(e.shape[k] < 2 for k in others):
            continue
        per = np.broadcast_to(np.mean(e, axis=others, keepdims=True), e.shape)
        where = ("in every row of a column" if (e.ndim, axis) == (2, 1) else
                 f"at every position that shares its index along axis {axis}")
        found.append(Candidate(Finding(
            "constant-along-axis", f"{case.grad} is off by the same amount {where}: a "
            f"per-feature term (one value per index of axis {axis}, such as a mean over the "
            "batch) is missing or wrong", explained(case.e, case.e - per.ravel()),
            "e minus its mean over the other axes"), per.ravel()))
    return found


def transposed(case: Case) -> list[Candidate]:
    n = case.grid(case.n)
    if n is None or n.ndim != 2 or n.shape[0] != n.shape[1]:
        return []
    return [candidate(case, "transposed", f"{case.grad} is transposed: its transpose is the "
                                          "true gradient (x.T @ dout where dout.T @ x "
                                          "belongs, or the reverse)", n.T.ravel(),
                      "analytic = numericᵀ")]


def flipped(case: Case) -> list[Candidate]:
    """Reversed along the trailing (spatial) axes: a kernel flipped, convolution vs correlation."""
    n = case.grid(case.n)
    if n is None or n.ndim < 2:
        return []
    spatial = tuple(a for a in range(max(n.ndim - 2, 1), n.ndim) if n.shape[a] > 1)
    if not spatial:
        return []
    return [candidate(case, "flipped", f"{case.grad} is the true gradient reversed along axes "
                                       f"{spatial}: the kernel is flipped (a convolution "
                                       "where the forward's cross-correlation belongs)",
                      np.flip(n, spatial).ravel(), f"analytic = numeric reversed along {spatial}")]


def moved(case: Case) -> list[Candidate]:
    """The right values at the wrong places: the sorted values agree, the positions do not."""
    if not case.full or case.n.size < 4:
        return []
    sa, sn = np.sort(case.a), np.sort(case.n)
    tol = _EXACT * 1e3 * max(float(np.max(np.abs(case.n))), 1e-300)
    if not np.all(np.abs(sa - sn) <= tol):
        return []
    wrong = int(np.sum(np.abs(case.e) > tol))
    # the prediction: the numerical values, placed where the analytic ones are
    order_a, order_n = np.argsort(case.a, kind="stable"), np.argsort(case.n, kind="stable")
    placed = np.empty_like(case.n)
    placed[order_a] = case.n[order_n]
    return [candidate(case, "moved", f"{case.grad} holds the right values at the wrong places "
                                     f"({wrong} of {case.n.size} elements): an index is "
                                     "computed wrongly (the argmax's position in its window, "
                                     "a reshape or a transpose)", placed,
                      "the sorted analytic and numerical values agree")]


def _zeros(case: Case) -> np.ndarray:
    return np.abs(case.n) <= _EXACT * max(float(np.max(np.abs(case.n))), 1e-300)


def mask(case: Case) -> list[Candidate]:
    """Non-zero where the forward does not depend on an element (numerical 0), or inverted."""
    z = _zeros(case)
    if not z.any() or z.all():
        return []
    k = int(z.sum())
    applied = np.where(z, 0.0, case.n)
    found = [candidate(case, "mask-not-applied",
                       f"{case.grad} is non-zero at {k} of {z.size} elements the output does "
                       "not depend on (the numerical gradient is 0 there) and right elsewhere: "
                       "the forward's mask (ReLU's x > 0, dropout's mask, max-pool's argmax) is "
                       "not applied in the backward", np.where(z, case.a, case.n),
                       f"{shares(case.e, [z])[0]:.2%} of the error sits where numeric = 0")]
    inverted = np.where(z, case.a, 0.0)
    if np.any(case.a[z] != 0) and not np.allclose(inverted, applied):
        found.append(candidate(case, "mask-inverted",
                               f"{case.grad} passes the gradient exactly where the output does "
                               "not depend on the input and blocks it where it does: the mask "
                               "is inverted (x < 0 where x > 0 belongs, or 1 − mask)", inverted,
                               "analytic = 0 where numeric ≠ 0"))
    return found


def _describe(subset: np.ndarray, case: Case, inputs: Mapping[str, np.ndarray]) -> str:
    for k, v in inputs.items():
        q = align(np.asarray(v, dtype=np.float64), case.shape)
        if q is None:
            continue
        qv = case.take(q)
        for test, word in ((qv < 0, "<"), (qv > 0, ">")):
            if np.array_equal(test, subset):
                return f" (exactly where `{k}` {word} 0)"
    return ""


def sign_subset(case: Case, inputs: Mapping[str, np.ndarray]) -> list[Candidate]:
    """``analytic = −numeric`` on a subset of the elements, ``= numeric`` on the rest."""
    flip = (np.abs(case.a + case.n) < np.abs(case.a - case.n)) & ~_zeros(case)
    if not flip.any() or flip.all():
        return []
    where = _describe(flip, case, inputs)
    return [candidate(case, "sign-subset", f"{case.grad} has the wrong sign at {int(flip.sum())} "
                                           f"of {flip.size} elements{where} and is right "
                                           "elsewhere: one branch's sign is flipped",
                      np.where(flip, -case.n, case.n), "analytic = −numeric on that subset")]


def accumulation(case: Case, dout: np.ndarray) -> list[Candidate]:
    """Each wrong row equals a single row of ``dout``: one update where several accumulate."""
    a, n = case.grid(case.a), case.grid(case.n)
    if (a is None or n is None or a.ndim != 2 or dout.ndim < 2 or dout.size % a.shape[1]
            or dout.size // a.shape[1] <= a.shape[0]):  # fewer updates than rows: none repeat
        return []
    rows = np.asarray(dout, dtype=np.float64).reshape(-1, a.shape[1])
    e = a - n
    scale = max(float(np.max(np.abs(n))), 1e-300)
    wrong = np.flatnonzero(np.max(np.abs(e), axis=1) > _EXACT * 1e3 * scale)
    if wrong.size == 0:
        return []
    single = [bool(np.min(np.max(np.abs(rows - a[r]), axis=1)) <= _EXACT * 1e3 * scale)
              for r in wrong]
    if not all(single):
        return []
    pred = n.copy()
    pred[wrong] = a[wrong]
    return [candidate(case, "no-accumulation",
                      f"{case.grad} gets one update where several accumulate in {wrong.size} "
                      f"of its {a.shape[0]} rows (indices that repeat): `W[idx] += d` applies "
                      "one of the repeated updates; np.add.at(W, idx, d) adds them all",
                      pred.ravel(), "each wrong row equals a single row of dout")]


def time_steps(case: Case, counts: Sequence[Count]) -> list[Candidate]:
    """Right at the last time step (axis 1 of a 3-D gradient), wrong at the earlier ones."""
    e = case.grid(case.e)
    if e is None or e.ndim != 3 or e.shape[1] < 2 or not any(c.symbol == "T" for c in counts):
        return []
    last, first = shares(case.e, [_on_step(e.shape, -1), _on_step(e.shape, 0)])
    if last > _EXACT or first == 0:
        return []
    return [Candidate(Finding("time-carry", f"{case.grad} is right at the last time step and "
                                            f"wrong at the {e.shape[1] - 1} earlier ones: the "
                                            "gradient carried back through time is wrong: dh "
                                            "from step t+1 not added into step t (the "
                                            "recurrent path), or each step's cached state "
                                            "overwritten by a later one", 1.0 - last,
                              f"{last:.1e} of the error at the last step, {first:.1%} at the "
                              "first"), np.where(_on_step(e.shape, -1), 0.0, e.ravel()))]


def _on_step(shape: tuple[int, ...], t: int) -> np.ndarray:
    on = np.zeros(shape, dtype=bool)
    on[:, t] = True
    return on.ravel()


def one_per_row(case: Case, counts: Sequence[Count], unit: float = 1.0) -> list[Candidate]:
    """Wrong at exactly one element of every row, by the same amount: a one-hot term.

    ``unit`` is a scalar loss's upstream gradient: the amount is stated per unit of it (``+1/N``,
    as the learner's code has it, not ``+0.2615`` for an upstream gradient of 1.3).
    """
    e = case.grid(case.e)
    if e is None or e.ndim != 2 or e.shape[1] < 2:
        return []
    big = np.abs(e) > _EXACT * 1e3 * max(float(np.max(np.abs(e))), 1e-300)
    if not np.all(big.sum(axis=1) == 1):
        return []
    values = e[big]
    if np.ptp(values) > 1e-6 * float(np.max(np.abs(values))):
        return []
    v = float(values[0]) / unit
    cause, amount, what = _one_hot(v, counts)
    per = (f" = {v:.6g} per unit of the loss's upstream gradient ({unit:.4g})"
           if unit != 1.0 else "")
    return [Candidate(Finding(cause, f"{case.grad} is off by {amount} at exactly one element "
                                     f"of every row: {what}", 1.0,
                              f"one element per row, the same error {values[0]:.6g} in "
                              f"each{per}"), case.e)]


def _one_hot(v: float, counts: Sequence[Count]) -> tuple[str, str, str]:
    """(cause, amount, meaning) of a one-hot error ``v`` per unit of ``dout``.

    The one-hot term is ``−c`` at the label (``c = 1/N`` for a mean loss, 1 for a sum): it is
    missing when ``e = +c``, doubled when ``e = −c``, of the wrong sign when ``e = +2c``. Each
    ``c`` is tried in turn (``1/N`` first), all three readings for each.
    """
    cs = [(f.value, f.label, f"{f.label} ({f.count})" if f.count else f.label)
          for f in named_factors(counts) if f.kind == "inverse"] + [(1.0, "1", "1")]
    term = "a one-hot term (such as the −1 at the label in softmax's p − onehot(y))"
    for c, label, stated in cs:
        def near(x: float, c: float = c) -> bool:
            return abs(x - c) <= MATCH * c
        if near(v):
            return "one-hot", f"+{stated}", f"{term} is missing"
        if near(-v):
            return "one-hot", f"−{stated}", f"{term} is doubled"
        if near(v / 2.0):
            two = (f"2/{label.split('/', 1)[1]}" if "/" in label else "2") + stated[len(label):]
            return "one-hot-sign", f"+{two}", (
                "the one-hot term has the wrong sign: +1 where −1 belongs (softmax's "
                "p − onehot(y) computed as p + onehot(y))")
    amount = f"{v:+.4g}".replace("-", "−")
    return "one-hot", amount, f"{term} is {'doubled' if v < 0 else 'missing'}"


def straight_through(case: Case, dout: np.ndarray) -> list[Candidate]:
    """``analytic = dout``: the Jacobian taken as the identity (a straight-through estimator)."""
    if dout.shape != case.shape:
        return []
    return [candidate(case, "straight-through", f"{case.grad} equals dout: looks like a "
                                                "straight-through estimator: the backward "
                                                "passes dout through unchanged (an identity "
                                                "Jacobian) where the forward's own derivative "
                                                "belongs", case.take(dout), "analytic = dout")]


def _probabilities(small: np.ndarray, root: np.ndarray) -> np.ndarray | None:
    """The ``y`` with ``y·(1−y) = d`` whose rows (last axis) sum to 1, from the smaller roots
    ``(1 − root)/2``: at most one element of a row can take the larger root ``(1 + root)/2``."""
    need = 1.0 - np.sum(small, axis=-1, keepdims=True)  # what the larger root must add
    j = np.argmin(np.abs(root - need), axis=-1)[..., np.newaxis]
    flip = np.abs(need) > _EXACT * 1e3  # rows that already sum to 1 keep the smaller roots
    y = small.copy()
    big = np.take_along_axis(small + root, j, axis=-1)
    np.put_along_axis(y, j, np.where(flip, big, np.take_along_axis(small, j, axis=-1)), axis=-1)
    return y if np.allclose(np.sum(y, axis=-1), 1.0, rtol=0, atol=1e-6) else None


def diagonal_only(case: Case, dout: np.ndarray) -> list[Candidate]:
    """Only the Jacobian's diagonal used, for a softmax along the last axis.

    Diagonal only, ``analytic = y(1−y)·dout``, so ``y`` follows from ``analytic / dout`` (the
    root whose rows sum to 1); the claim holds when the numerical gradient is then the whole
    softmax backward ``y·(dout − Σ dout·y)``. Nothing else is needed (no forward output): the
    mechanism is tested, not the layer's name. Other layers' Jacobians are not recoverable from
    ``Jᵀ·dout`` alone, so the general "diagonal only" has no test here.
    """
    a = case.grid(case.a)
    g = np.asarray(dout, dtype=np.float64)
    if a is None or g.shape != a.shape or a.ndim < 1 or a.shape[-1] < 2 or np.any(g == 0):
        return []
    d = a / g
    if np.any(1.0 - 4.0 * d < -1e-9) or np.any(d < -1e-9):
        return []
    root = np.sqrt(np.clip(1.0 - 4.0 * d, 0.0, None))
    y = _probabilities((1.0 - root) / 2.0, root)
    if y is None:
        return []
    full = (y * (g - np.sum(g * y, axis=-1, keepdims=True))).ravel()
    return [Candidate(Finding(
        "jacobian-diagonal", f"{case.grad} uses only the Jacobian's diagonal: it is "
        "y·(1−y)·dout, a softmax's diagonal term, where y·(dout − Σ dout·y) belongs (the "
        "−y_i·y_j terms between the elements of a row are missing)",
        explained(case.e, full - case.n),
        "y recovered from analytic/dout = y(1−y), rows summing to 1; the numerical gradient "
        "is y·(dout − Σ dout·y) with that y"), case.a - full)]


_PATTERN_FROM = 3  # a pattern (even indices, one channel) is claimed from this many wrong elements


def parity(case: Case) -> list[Finding]:
    """Wrong only at even (or odd) indices of an axis: every wrong element (over its budget) at
    such an index, at least :data:`_PATTERN_FROM` of them, on at least two different indices."""
    e = case.grid(case.e) if case.full else None
    if e is None:
        return []
    wrong = case.grid(case.wrong)
    assert wrong is not None
    if int(wrong.sum()) < _PATTERN_FROM:
        return []
    found, total = [], float(np.sum(e * e))
    at = np.nonzero(wrong)
    for axis in range(e.ndim):
        if e.shape[axis] < 6:  # fewer: even or odd indices are a coincidence, not a pattern
            continue
        for par, word in ((0, "even"), (1, "odd")):
            where = at[axis]
            if np.any(where % 2 != par) or np.unique(where).size < 2:
                continue
            part = np.take(e, np.arange(par, e.shape[axis], 2), axis=axis)
            share = float(np.sum(part * part)) / total if total else 0.0
            found.append(Finding("parity", f"{case.grad} is wrong only at {word} indices of "
                                           f"axis {axis}", share))
    return found


def _index(case: Case, t: int) -> str:
    return str(tuple(int(i) for i in np.unravel_index(case.idx[t], case.shape)))


def concentrated(case: Case) -> list[Finding]:
    """A few wrong elements (over their budget), listed; or all of them in one channel.

    Only the wrong elements are named, worst first, never one whose error is at rounding level;
    "one channel" needs at least two wrong elements, all in that channel.
    """
    e2 = case.e * case.e
    total = float(np.sum(e2))
    if total == 0 or case.e.size < 4:
        return []
    wrong = np.flatnonzero(case.wrong)
    m = wrong.size
    found = []
    if 1 <= m <= min(3, max(1, case.e.size // 4)):
        top = wrong[np.argsort(-e2[wrong], kind="stable")]
        where = ", ".join(_index(case, int(t)) for t in top)
        found.append(Finding("concentrated", f"{case.grad} is wrong in {m} element(s): {where}",
                             float(np.sum(e2[top])) / total,
                             f"{m} of {case.e.size} elements over their budget"))
    if len(case.shape) >= 2 and case.shape[1] > 1 and m >= 2:
        channel = np.unravel_index(case.idx, case.shape)[1]
        if np.unique(channel[wrong]).size == 1:
            j = int(channel[wrong[0]])
            by = np.bincount(channel, weights=e2, minlength=case.shape[1]) / total
            found.append(Finding("one-channel", f"{case.grad} is wrong in one channel (index {j} "
                                                f"of axis 1): all {m} wrong elements",
                                 float(by[j])))
    return found
