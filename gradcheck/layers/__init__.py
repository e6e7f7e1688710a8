"""Reference layers whose gradients are known to be right."""

from gradcheck.layers.batchnorm import (
    CONVENTIONS,
    BatchNorm,
    batchnorm_backward,
    batchnorm_forward,
)

__all__ = ["CONVENTIONS", "BatchNorm", "batchnorm_backward", "batchnorm_forward"]
