"""Gradients of the wrong shape: what the shape the backward returned says about the code.

Examples
--------
>>> import numpy as np
>>> shape_findings("W", (3, 2), (2, 3), {"W": np.zeros((2, 3))})[0].cause
'transposed'
>>> shape_findings("b", (3, 5), (3,), {"b": np.zeros(3)})[0].cause
'partly-summed'
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from gradcheck.results import Finding

__all__ = ["shape_findings"]


def _found(cause: str, text: str, got: tuple[int, ...], want: tuple[int, ...]) -> Finding:
    return Finding(cause, text, 1.0, f"the backward returned shape {got}; the input has {want}")


def shape_findings(name: str, got: tuple[int, ...], want: tuple[int, ...],
                   inputs: Mapping[str, np.ndarray]) -> list[Finding]:
    g = f"d{name}"
    if len(got) == len(want) >= 2 and got == want[::-1] and got != want:
        return [_found("transposed", f"{g} has shape {got} for `{name}` of shape {want}: it is "
                                     "transposed (x.T @ dout where dout.T @ x belongs, or the "
                                     "reverse)", got, want)]
    if math.prod(got) == math.prod(want):
        return [_found("keepdims", f"{g} has shape {got} for `{name}` of shape {want}: the "
                                   "same numbers with an axis kept (keepdims=True) or "
                                   "reshaped; sum without keepdims, or reshape to "
                                   f"{name}.shape", got, want)]
    for k, v in inputs.items():
        if k == name or v.ndim <= len(want):
            continue
        if got == v.shape:
            return [_found("not-summed", f"{g} has `{k}`'s shape {got}: it is not summed over "
                                         "the batch axes", got, want)]
    if len(got) > len(want) and (got[:len(want)] == want or got[-len(want):] == want):
        return [_found("partly-summed", f"{g} has shape {got} for `{name}` of shape {want}: "
                                        "summed over some axes but not all; sum over every "
                                        f"axis but the one `{name}` runs along", got, want)]
    for k, v in inputs.items():
        if k == name or v.ndim <= len(want):
            continue
        for axis in range(v.ndim):
            rest = v.shape[:axis] + v.shape[axis + 1:]
            if got == rest and rest != want:
                return [_found("wrong-axis", f"{g} has shape {got}: summed over axis {axis} of "
                                             f"`{k}` instead of the batch axes", got, want)]
    return []
