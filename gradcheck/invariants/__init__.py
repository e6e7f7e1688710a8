"""Identities every correct normalisation layer satisfies, checked on any layer given as functions.

One module per job: :mod:`gradcheck.invariants.batchnorm` (BatchNorm: forward, backward, inference
and running-statistics identities, with the error model every tolerance follows),
:mod:`gradcheck.invariants.groupwise` (LayerNorm, GroupNorm and instance norm: statistics per
sample or per group of channels), and the private ``_common`` (result type, calling the layer,
judging). Every name below is importable from ``gradcheck.invariants`` directly.
"""

from gradcheck.invariants._common import InvariantResult
from gradcheck.invariants.batchnorm import (
    INVARIANTS,
    BatchNormData,
    BatchNormFunctions,
    BatchNormInputs,
    check_batch_permutation,
    check_channel_independence,
    check_dbeta_identity,
    check_dgamma_identity,
    check_dx_linear_in_dout,
    check_dx_proportional_to_gamma,
    check_dx_sum_zero,
    check_dx_xhat_identity,
    check_inference_affine,
    check_invariants,
    check_jacobian_symmetry,
    check_odd_symmetry,
    check_output_mean,
    check_output_variance,
    check_running_stats,
    check_scale_covariance,
    check_shift_invariance,
    course_functions,
    reference_functions,
)

__all__ = [
    "INVARIANTS",
    "BatchNormData",
    "BatchNormFunctions",
    "BatchNormInputs",
    "InvariantResult",
    "check_batch_permutation",
    "check_channel_independence",
    "check_dbeta_identity",
    "check_dgamma_identity",
    "check_dx_linear_in_dout",
    "check_dx_proportional_to_gamma",
    "check_dx_sum_zero",
    "check_dx_xhat_identity",
    "check_inference_affine",
    "check_invariants",
    "check_jacobian_symmetry",
    "check_odd_symmetry",
    "check_output_mean",
    "check_output_variance",
    "check_running_stats",
    "check_scale_covariance",
    "check_shift_invariance",
    "course_functions",
    "reference_functions",
]
