"""Announce every finished check to whoever listens, without the checker knowing who listens.

:func:`gradcheck.check.check_layer` calls :func:`notify` with each report it returns; the pytest
plugin (``--gradcheck-report``) subscribes with :func:`add_listener` to gather a session's
reports. This keeps ``check.py`` free of any pytest import. With no listener, :func:`notify`
costs one loop over an empty tuple.

Listeners run in the checking thread, in the order they were added, and their exceptions
propagate to the caller of ``check_layer``: a collector that fails should be seen, not dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gradcheck.errors import InvalidArgument

__all__ = ["add_listener", "listening", "notify", "remove_listener"]

Listener = Callable[[Any], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    """Call ``listener(report)`` after every check from now on; adding it twice adds it once.

    Parameters
    ----------
    listener : callable
        Called with each :class:`~gradcheck.check.CheckReport`, in the checking thread.

    Raises
    ------
    InvalidArgument
        ``listener`` is not callable.

    Examples
    --------
    >>> seen = []
    >>> add_listener(seen.append)
    >>> notify("a report")
    >>> remove_listener(seen.append)
    >>> notify("not seen")
    >>> seen
    ['a report']
    """
    if not callable(listener):
        raise InvalidArgument(f"`listener` must be callable, got {type(listener).__name__}")
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    """Stop calling ``listener``; removing one that is not listening does nothing.

    Parameters
    ----------
    listener : callable
        As given to :func:`add_listener`.

    Examples
    --------
    >>> remove_listener(print)
    """
    if listener in _listeners:
        _listeners.remove(listener)


def notify(report: Any) -> None:
    """Hand ``report`` to every listener (``check_layer`` calls this once per check).

    Parameters
    ----------
    report : CheckReport
        The finished check.

    Examples
    --------
    >>> notify("nobody listens")
    """
    for listener in tuple(_listeners):
        listener(report)


@contextmanager
def listening(listener: Listener) -> Iterator[Listener]:
    """:func:`add_listener` for the duration of a ``with`` block.

    Parameters
    ----------
    listener : callable
        Called with each report while the block runs.

    Yields
    ------
    callable
        ``listener``.

    Examples
    --------
    >>> seen = []
    >>> with listening(seen.append):
    ...     notify(1)
    >>> notify(2)
    >>> seen
    [1]
    """
    add_listener(listener)
    try:
        yield listener
    finally:
        remove_listener(listener)
