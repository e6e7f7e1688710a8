"""Measured factors named by what they mean: N, 1/N, N/(N−1), 2, ½, −1, a time length.

A factor is named only when the measurement equals it to 0.1 %; otherwise it is stated as
measured ("×0.6 as measured"), never guessed.

Examples
--------
>>> counts = counts_of({"x": np.zeros((5, 4))})
>>> name_factor(1.25, counts).label
'N/(N−1)'
>>> name_factor(0.2, counts).label
'1/N'
>>> name_factor(1.7, counts) is None
True
>>> times(2.0), times(0.5), times(-1.0), times(0.6)
('×2', '×½', '×(−1)', '×0.6')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Count", "Factor", "counts_of", "name_factor", "named_factors", "times"]

MATCH = 1e-3  # a measured factor is the named one when they agree to this relative difference


@dataclass(frozen=True)
class Count:
    """A length the check's shapes have: ``N = 5, the batch size``."""

    symbol: str
    value: int
    meaning: str

    def __str__(self) -> str:
        return f"{self.symbol} = {self.value}"


@dataclass(frozen=True)
class Factor:
    """A named factor: its value, its label (``N/(N−1)``), the count it comes from, its kind.

    ``kind`` is one of ``sign``, ``zero``, ``two``, ``half``, ``count``, ``inverse``,
    ``bessel`` and ``inverse-bessel``: what the factor is, whatever the count.
    """

    value: float
    label: str
    kind: str
    count: Count | None = None


def counts_of(inputs: Mapping[str, np.ndarray]) -> list[Count]:
    """The lengths factors are named after, from the largest input's shape.

    Axis 0 is the batch (``N``); a 3-D input ``(N, T, D)`` has ``T`` time steps; a 4-D one
    ``(N, C, H, W)`` has ``M = N·H·W`` values per channel; a 2-D one ``D`` features.
    """
    shapes = [np.shape(v) for v in inputs.values()]
    big = max(shapes, key=lambda s: (len(s), int(np.prod(s))), default=())
    found: list[Count] = []
    if len(big) >= 1 and big[0] > 1:
        found.append(Count("N", int(big[0]), "the batch size"))
    if len(big) == 3 and big[1] > 1:
        found.append(Count("T", int(big[1]), "the number of time steps"))
    if len(big) == 4:
        found.append(Count("M", int(np.prod(big)) // int(big[1]),
                           "the number of values per channel, N·H·W"))
    if len(big) == 2 and big[1] > 1:
        found.append(Count("D", int(big[1]), "the number of features"))
    return [c for c in found if c.value > 1]


def named_factors(counts: Sequence[Count]) -> list[Factor]:
    out = [Factor(-1.0, "−1", "sign"), Factor(0.0, "0", "zero")]
    for c in counts:  # a count first: ×½ at N = 2 is 1/N, said with the count it equals
        s, m = c.symbol, float(c.value)
        out += [Factor(m, s, "count", c), Factor(1.0 / m, f"1/{s}", "inverse", c),
                Factor(m / (m - 1.0), f"{s}/({s}−1)", "bessel", c),
                Factor((m - 1.0) / m, f"({s}−1)/{s}", "inverse-bessel", c)]
    return [*out, Factor(2.0, "2", "two"), Factor(0.5, "½", "half")]


def name_factor(c: float, counts: Sequence[Count]) -> Factor | None:
    """The named factor ``c`` equals, or ``None``; earlier names win a tie (N before D)."""
    for f in named_factors(counts):
        if abs(c - f.value) <= MATCH * max(abs(f.value), 1e-3):
            return f
    return None


def times(c: float) -> str:
    """``c`` as a multiplier a learner reads: ×2, ×½, ×(−1), ×0.6."""
    special = {2.0: "×2", 0.5: "×½", -1.0: "×(−1)", 0.0: "×0"}
    for value, text in special.items():
        if abs(c - value) <= MATCH * max(abs(value), 1e-3):
            return text
    return f"×{c:.4g}".replace("-", "−")
