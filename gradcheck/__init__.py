"""gradcheck: tells you, with evidence, whether your layer's gradients are right.

Only the names in ``__all__`` are public and stable; submodules whose names start with ``_``
may change at any time.
"""

from gradcheck._version import __version__
from gradcheck.errors import GradcheckError, InvalidArgument, LayerError
from gradcheck.layers.batchnorm import BatchNorm, batchnorm_backward, batchnorm_forward

__all__ = [
    "BatchNorm",
    "GradcheckError",
    "InvalidArgument",
    "LayerError",
    "__version__",
    "batchnorm_backward",
    "batchnorm_forward",
]
