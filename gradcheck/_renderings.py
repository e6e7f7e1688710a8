"""How a report shows itself (``print(report)``, a notebook's HTML), supplied from above.

:mod:`gradcheck.results` holds data and sits below every rendering: :mod:`gradcheck.report` and
its helpers import it, so it must not import them back, not even inside a method (that lazy
import, with the renderers' import of the verdict engine, closed an import cycle of 13
modules). Yet ``print(report)`` must print the text report and a notebook must show the HTML
one. So :class:`~gradcheck.results.CheckReport` asks this registry for the rendering of a
format, and the package's ``__init__`` supplies :mod:`gradcheck.report`'s text and HTML
renderings. ``__init__`` is the one module above every other (it names them all) and the first
to run whenever any of them is imported, so every report, also one built by hand or decoded from
JSON, finds its renderings, whatever else was imported; it supplies functions that import
:mod:`gradcheck.report` on first call, so ``import gradcheck`` stays free of NumPy (the pytest
plugin and the command's start-up pay for nothing they do not use).

Rejected: a registry that :mod:`gradcheck.report` fills when imported (``print(report)`` would
then depend on whether something happened to import it); the engine attaching renderers where
it builds reports (hand-built and decoded reports would have none, and every new producer of
reports would have to remember); the registry as a dict in :mod:`gradcheck.results` (``import
gradcheck`` would then import ``results`` and :mod:`dataclasses` to fill it, about 25 ms).
This module imports only :mod:`gradcheck.kinds` and :mod:`gradcheck.errors`.

Examples
--------
>>> from gradcheck import kinds
>>> rendering(kinds.TEXT) is not None  # supplied by ``import gradcheck``
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gradcheck import kinds
from gradcheck.errors import InvalidArgument

__all__ = ["Rendering", "rendering", "supply"]

Rendering = Callable[[Any], str]  # one CheckReport -> its document in one format
_supplied: dict[str, Rendering] = {}


def supply(fmt: str, render: Rendering) -> None:
    """Make ``render`` the way every report shows itself in ``fmt`` from now on.

    Parameters
    ----------
    fmt : {"text", "html"}
        ``text`` is ``str(report)``; ``html`` is ``report._repr_html_()`` (a fragment, no page).
    render : callable
        ``render(report) -> str`` for one :class:`~gradcheck.results.CheckReport`.

    Raises
    ------
    InvalidArgument
        ``fmt`` is not ``text`` or ``html``, or ``render`` is not callable.

    Examples
    --------
    >>> from gradcheck import kinds
    >>> supply("pdf", str)
    Traceback (most recent call last):
    ...
    gradcheck.errors.InvalidArgument: `fmt` must be one of ('text', 'html'), got 'pdf'
    """
    shown = (kinds.TEXT, kinds.HTML)
    if fmt not in shown:
        raise InvalidArgument(f"`fmt` must be one of {shown}, got {fmt!r}")
    if not callable(render):
        raise InvalidArgument(f"`render` must be callable, got {type(render).__name__}")
    _supplied[fmt] = render


def rendering(fmt: str) -> Rendering | None:
    """The rendering supplied for ``fmt``, or ``None`` when there is none."""
    return _supplied.get(fmt)
