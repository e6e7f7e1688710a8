"""gradcheck: tells you, with evidence, whether your layer's gradients are right.

Only the names in ``__all__`` are public and stable; modules whose names start with ``_`` may
change at any time. ``gradcheck.strategies`` and ``gradcheck.invariants`` are public submodules
(the strategies need hypothesis).
"""

from gradcheck._version import __version__
from gradcheck.check import CheckReport, GradientResult, assert_gradients, check_grads, check_layer
from gradcheck.errors import GradcheckError, InvalidArgument, LayerError
from gradcheck.forward_check import check_forward
from gradcheck.layer import Layer, from_callables, from_class, from_functions
from gradcheck.layers.batchnorm import BatchNorm, batchnorm_backward, batchnorm_forward
from gradcheck.layers.groupnorm import GroupNorm
from gradcheck.layers.layernorm import LayerNorm
from gradcheck.model import check_model
from gradcheck.tolerance import Tolerance

__all__ = [
    "BatchNorm",
    "CheckReport",
    "GradcheckError",
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
]
