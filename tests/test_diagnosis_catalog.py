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
