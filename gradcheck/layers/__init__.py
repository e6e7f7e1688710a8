"""Reference layers whose gradients are known to be right."""

from gradcheck.layers.batchnorm import (
    CONVENTIONS,
    BatchNorm,
    batchnorm_backward,
    batchnorm_forward,
)
from gradcheck.layers.groupnorm import (
    GroupNorm,
    InstanceNorm,
    groupnorm_backward,
    groupnorm_forward,
    instancenorm_forward,
)
from gradcheck.layers.layernorm import LayerNorm, layernorm_backward, layernorm_forward

__all__ = [
    "CONVENTIONS",
    "BatchNorm",
    "GroupNorm",
    "InstanceNorm",
    "LayerNorm",
    "batchnorm_backward",
    "batchnorm_forward",
    "groupnorm_backward",
    "groupnorm_forward",
    "instancenorm_forward",
    "layernorm_backward",
    "layernorm_forward",
]
