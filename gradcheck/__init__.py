"""gradcheck: tells you, with evidence, whether your layer's gradients are right.

Only the names in ``__all__`` are public and stable; modules whose names start with ``_`` may
change at any time. ``gradcheck.strategies`` and ``gradcheck.invariants`` are public submodules
(the strategies need hypothesis).

Importing ``gradcheck`` is cheap: the exceptions, the warning category and ``__version__`` are
here at once, and every other public name is imported from its module on first use (PEP 562
``__getattr__``). pytest imports this package for its plugin in every session, also sessions that
never check a gradient; they should not pay for NumPy and SciPy.

This module also supplies the renderings a report shows itself with (``print(report)``, a
notebook's HTML): :mod:`gradcheck.results` sits below :mod:`gradcheck.report` and may not import
it, so the package, which runs before any of its modules, hands them over (see
:mod:`gradcheck._renderings`); :mod:`gradcheck.report` is imported on the first rendering.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from gradcheck import _renderings, kinds
from gradcheck._version import __version__
from gradcheck.errors import GradcheckError, GradcheckWarning, InvalidArgument, LayerError

if _TYPE_CHECKING:  # what static tools see; at run time __getattr__ imports these on first use
    from gradcheck.check import (
        CheckReport,
        GradientResult,
        assert_gradients,
        check_grads,
        check_layer,
    )
    from gradcheck.forward_check import check_forward
    from gradcheck.layer import Layer, from_callables, from_class, from_functions
    from gradcheck.layers.batchnorm import BatchNorm, batchnorm_backward, batchnorm_forward
    from gradcheck.layers.groupnorm import GroupNorm
    from gradcheck.layers.layernorm import LayerNorm
    from gradcheck.model import check_model
    from gradcheck.tolerance import Tolerance
    from gradcheck.worker.isolate import isolated

# Each lazily imported public name and the module that defines it.
_LAZY = {
    "CheckReport": "gradcheck.check",
    "GradientResult": "gradcheck.check",
    "assert_gradients": "gradcheck.check",
    "check_grads": "gradcheck.check",
    "check_layer": "gradcheck.check",
    "Layer": "gradcheck.layer",
    "from_callables": "gradcheck.layer",
    "from_class": "gradcheck.layer",
    "from_functions": "gradcheck.layer",
    "BatchNorm": "gradcheck.layers.batchnorm",
    "batchnorm_backward": "gradcheck.layers.batchnorm",
    "batchnorm_forward": "gradcheck.layers.batchnorm",
    "check_forward": "gradcheck.forward_check",
    "GroupNorm": "gradcheck.layers.groupnorm",
    "LayerNorm": "gradcheck.layers.layernorm",
    "check_model": "gradcheck.model",
    "Tolerance": "gradcheck.tolerance",
    "isolated": "gradcheck.worker.isolate",
}

__all__ = [
    "BatchNorm",
    "CheckReport",
    "GradcheckError",
    "GradcheckWarning",
    "GradientResult",
    "GroupNorm",
    "InvalidArgument",
    "Layer",
    "LayerError",
    "LayerNorm",
    "Tolerance",
    "__version__",
    "assert_gradients",
    "batchnorm_backward",
    "batchnorm_forward",
    "check_forward",
    "check_grads",
    "check_layer",
    "check_model",
    "from_callables",
    "from_class",
    "from_functions",
    "isolated",
]


def _text_report(report: _Any) -> str:
    """``str(report)``: the terminal rendering of one report."""
    from gradcheck.report import render

    return render([report], kinds.TEXT)


def _html_fragment(report: _Any) -> str:
    """``report._repr_html_()``: the HTML rendering of one report, without the page."""
    from gradcheck.report import render_html_fragment

    return render_html_fragment([report])


_renderings.supply(kinds.TEXT, _text_report)
_renderings.supply(kinds.HTML, _html_fragment)


def __getattr__(name: str) -> _Any:
    """Import a public name from its module on first use, then keep it here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gradcheck' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's attributes and every public name, imported yet or not."""
    return sorted(set(globals()) | set(__all__))
