"""``gradcheck explain``: the lesson answers what a student asks, and fits a terminal."""

from __future__ import annotations

import pytest

from gradcheck.cli import main
from gradcheck.errors import InvalidArgument
from gradcheck.explain import explain, topics


@pytest.mark.parametrize(("question", "answer"), [
    pytest.param("initialised", "gamma = ones, beta = zeros: one value per feature", id="init"),
    pytest.param("why", "starts as pure normalisation", id="why-ones-and-zeros"),
    pytest.param("shapes", "(shape (D,)) or per channel (shape (C,)", id="shapes"),
    pytest.param("dgamma", "dgamma = sum_i g_i * xhat_i", id="dgamma"),
    pytest.param("dbeta", "dbeta  = sum_i g_i", id="dbeta"),
    pytest.param("dx", "( g  -  mean_i(g)  -  xhat * mean_i(g * xhat) )", id="dx-three-terms"),
    pytest.param("where", "in hidden layers, not on the output", id="where"),
    pytest.param("bias", "Why is a bias before it redundant?", id="bias"),
])
def test_the_lesson_answers(question, answer):
    assert answer in explain("batchnorm")


def test_the_lesson_fits_100_columns():
    assert max(len(line) for line in explain("batchnorm").splitlines()) <= 100


@pytest.mark.parametrize("alias", ["batchnorm", "BatchNorm", "bn", "batch-norm", "batch_norm"])
def test_aliases(alias):
    assert explain(alias) == explain("batchnorm")


def test_an_unknown_topic_names_the_known_ones():
    with pytest.raises(InvalidArgument, match=r"`topic` must be one of batchnorm, got 'dropout'"):
        explain("dropout")
    assert topics() == ("batchnorm",)


def test_the_command(capsys):
    assert main(["explain", "batchnorm"]) == 0
    assert capsys.readouterr().out == explain("batchnorm") + "\n"
    assert main(["explain", "dropout"]) == 2
    assert "invalid choice: 'dropout'" in capsys.readouterr().err
