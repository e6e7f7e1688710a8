"""The learner-mistake catalogs across ops: each mistake named right by the headline, at one
shape and seed (``bench/diagnosis.py`` sweeps three shapes and three seeds), and no cause claimed
on any correct layer.

The expected causes are written from the broken code (``learner_catalog.MISTAKES``,
``bn_catalog.EXPECTED``), never from the diagnosis.
"""

from __future__ import annotations

import diagnosis_cases as dc
import learner_catalog as lc
import pytest

MISTAKES = dc.mistakes()


def test_the_catalog_spans_forty_mistakes_and_ten_ops():
    ops = {op for op, _ in MISTAKES.values()}
    assert len(MISTAKES) >= 40
    assert len(ops) >= 10, ops


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_mistake_is_named_by_the_headline(name):
    op, expected = MISTAKES[name]
    out = dc.run(name, op, dc.shapes(op)[0], 0, expected=expected)
    assert out.failed
    assert out.right, (out.got, expected, out.headline)
    assert any(out.headline.startswith(f"d{k}") for k in out.got), out.headline


@pytest.mark.parametrize("shape_no", [0, 1, 2])
@pytest.mark.parametrize("op", sorted([*lc.OPS, "batchnorm"]))
def test_no_cause_is_claimed_on_a_correct_layer(op, shape_no):
    out = dc.run("", op, dc.shapes(op)[shape_no], 0, correct=True)
    assert not out.failed, out.got


@pytest.mark.parametrize(("name", "phrase"), [
    pytest.param("softmax-loss-no-minus-one", "dx is off by +1/N (N = ", id="one-hot-in-dout"),
    pytest.param("softmax-loss-plus-one", "dx is off by +2/N (N = ", id="one-hot-amount-2/N"),
    pytest.param("softmax-loss-plus-one", "the one-hot term has the wrong sign: +1 where −1 "
                 "belongs", id="one-hot-wrong-sign"),
    pytest.param("relu-gradient-reversal", "looks like a gradient reversal (the sign of the "
                 "whole gradient flipped)", id="reversal"),
    pytest.param("quantise-straight-through", "looks like a straight-through estimator: the "
                 "backward passes dout through unchanged", id="straight-through"),
    pytest.param("leaky-relu-straight-through", "looks like a straight-through estimator",
                 id="straight-through-leaky"),
    pytest.param("softmax-jacobian-diagonal", "dx uses only the Jacobian's diagonal: it is "
                 "y·(1−y)·dout", id="diagonal-only"),
])
def test_the_headline_states_the_mechanism(name, phrase):
    """Amounts in units a learner wrote (1/N, not the check's upstream gradient times 1/N), and
    deliberate backwards (a reversal, a straight-through estimator) named as such."""
    op, expected = MISTAKES[name]
    for shape in dc.shapes(op):
        out = dc.run(name, op, shape, 1, expected=expected)
        assert out.headline.startswith("dx") and phrase in out.headline, out.headline
