"""The listener registry, and that every check announces its report through it."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import _collect
from gradcheck.check import assert_gradients, check_grads, check_layer
from gradcheck.errors import InvalidArgument
from gradcheck.layer import from_callables

SINE = from_callables(lambda x: np.sum(np.sin(x)), np.cos, name="sine")
X = np.linspace(0.0, 1.0, 4)


def test_listeners_hear_each_report_once_in_order():
    heard = []
    first, second = (lambda r: heard.append(("first", r))), (lambda r: heard.append(("second", r)))
    with _collect.listening(first), _collect.listening(second):
        _collect.add_listener(first)  # a second add is ignored
        _collect.notify("report")
    _collect.notify("after")
    assert heard == [("first", "report"), ("second", "report")]


def test_a_listener_may_remove_itself_while_notified():
    heard = []

    def once(report):
        heard.append(report)
        _collect.remove_listener(once)

    _collect.add_listener(once)
    _collect.notify(1)
    _collect.notify(2)
    assert heard == [1]


def test_a_failing_listener_is_not_silenced():
    def broken(report):
        raise RuntimeError("listener bug")

    with _collect.listening(broken), pytest.raises(RuntimeError, match="listener bug"):
        _collect.notify("report")


def test_a_listener_must_be_callable():
    with pytest.raises(InvalidArgument, match="`listener` must be callable, got int"):
        _collect.add_listener(3)


@pytest.mark.parametrize("run", [
    pytest.param(lambda: check_layer(SINE, {"x": X}), id="check_layer"),
    pytest.param(lambda: assert_gradients(SINE, {"x": X}), id="assert_gradients"),
    pytest.param(lambda: check_grads(lambda x: np.sum(np.sin(x)), np.cos, X), id="check_grads"),
])
def test_every_check_announces_its_report(run):
    heard = []
    with _collect.listening(heard.append):
        report = run()
    assert len(heard) == 1, "check_layer must call gradcheck._collect.notify(report)"
    assert heard[0] is report
