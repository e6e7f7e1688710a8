"""Which forward/backward pairs and losses a module holds, found by the course naming convention.

``NAME_backward`` pairs with ``NAME_forward``. A backward with a suffix, ``NAME_backward_SUFFIX``,
pairs with ``NAME_forward_SUFFIX`` when the module has one (``conv_backward_naive`` with
``conv_forward_naive``) and otherwise with ``NAME_forward`` (``batchnorm_backward_alt`` is a
second backward of ``batchnorm_forward``): each backward is its own pair, checked on its own.
A function named ``NAME_loss`` (or ``NAME_loss_SUFFIX``: ``svm_loss_naive``) is a loss in the
``loss, dx = NAME_loss(x, y)`` convention.
Functions imported into the module count (``from .layers import *``); private names do not.
Everything here works on names and signatures as data (:class:`gradcheck.doorway.ModuleInfo`):
the command line plans in its own process what the worker will call.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.registry import OpSpec, int_range, lookup, resolve_shapes

__all__ = ["Overrides", "Pair", "Plan", "Signature", "draw_fixed", "find_pairs", "plan"]

_INT_STREAM = 0x696E74


@dataclass(frozen=True)
class Pair:
    """A forward and its backward (``backward`` is empty for a loss), and the op they implement.

    ``problem`` says why the pair cannot be checked (a backward without a forward).
    """

    op: str
    forward: str
    backward: str
    kind: str = "layer"  # "layer" or "loss"
    problem: str = ""

    @property
    def label(self) -> str:
        return f"{self.forward} / {self.backward}" if self.backward else self.forward


def _pair_backward(name: str, funcs: Collection[str]) -> Pair:
    op, _, suffix = name.rpartition("_backward")
    for forward in (f"{op}_forward{suffix}", f"{op}_forward"):
        if forward in funcs:
            return Pair(op, forward, name)
    tried = " or ".join(dict.fromkeys((f"{op}_forward{suffix}", f"{op}_forward")))
    return Pair(op, "", name, problem=f"no {tried} to pair it with")


def find_pairs(names: Iterable[str]) -> list[Pair]:
    """Every backward with its forward, every ``*_loss``, and forwards left without a backward,
    among the public function ``names`` of a module (:meth:`ModuleInfo.functions
    <gradcheck.doorway.ModuleInfo>`).

    Examples
    --------
    >>> names = ["bn_forward", "bn_backward", "bn_backward_alt", "svm_loss", "_hidden_forward"]
    >>> [p.label for p in find_pairs(names)]
    ['bn_forward / bn_backward', 'bn_forward / bn_backward_alt', 'svm_loss']
    """
    funcs = [n for n in dict.fromkeys(names) if not n.startswith("_")]
    pairs = [_pair_backward(n, funcs) for n in funcs if "_backward" in n[1:]]
    used = {p.forward for p in pairs}
    pairs += [Pair(n.rpartition("_forward")[0], n, "", problem="no backward pairs with it")
              for n in funcs if "_forward" in n[1:] and n not in used]
    pairs += [Pair(n, n, "", kind="loss") for n in funcs if n.endswith("_loss") or "_loss_" in n]
    return sorted(pairs, key=lambda p: (p.op, p.forward, p.backward))


# --- what to feed a pair: the registry's entry, overridden by every explicit flag --------------


@dataclass(frozen=True)
class Overrides:
    """What the user gave explicitly: shapes, integer ranges ``[low, high)``, other arguments."""

    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    ints: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """A pair ready to check: float input shapes, integer inputs, config; or why it cannot run."""

    pair: Pair
    shapes: Mapping[str, tuple[int, ...]]
    ints: Mapping[str, tuple[tuple[int, ...], int, int, str]]  # shape, low, high, dtype
    config: Mapping[str, Any]
    problem: str = ""
    registry: bool = False
    data: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # fixed float arrays
    scale: float = 1.0  # the registry's scale of the drawn float inputs


class Signature(Protocol):
    """A function's named parameters, and those without a default (``doorway.FunctionInfo``)."""

    @property
    def params(self) -> tuple[str, ...]: ...

    @property
    def required(self) -> tuple[str, ...]: ...


def _needs(names: Sequence[str], pair: Pair) -> str:
    """What to add: ``--shape`` for arrays, ``--kwarg`` for settings (``bn_param``, ``G``)."""
    settings = [n for n in names if n.endswith(("param", "params", "config", "cfg"))]
    arrays = [n for n in names if n not in settings]
    head = f"--loss {pair.forward}" if pair.kind == "loss" else f"--forward {pair.forward} " \
        f"--backward {pair.backward}"
    flags = [f"--shape {n}=D1,D2" for n in arrays] + [f"--kwarg {n}=JSON" for n in settings]
    what = ", ".join(f"`{n}`" for n in arrays or settings)
    return (f"no {'shape' if arrays else 'value'} for {what}: add {head} {' '.join(flags)} (or "
            "--kwarg NAME=JSON for a non-array argument, --int NAME=LOW:HIGH for integers)")


def _int_inputs(spec: OpSpec | None, given: Overrides, shapes: dict[str, tuple[int, ...]],
                names: list[str]) -> tuple[dict[str, Any], str]:
    ints: dict[str, Any] = {}
    for n in dict.fromkeys([*(spec.ints if spec else {}), *given.ints]):  # each name once
        if n not in names or n in given.kwargs:
            continue
        if n not in shapes:
            return {}, f"--int {n} needs a shape: add --shape {n}=D1,D2"
        default = spec.ints.get(n) if spec else None
        low, high = given.ints[n] if n in given.ints else int_range(spec, n, shapes)  # type: ignore
        ints[n] = (shapes.pop(n), low, high, default.dtype if default else "int")
    return ints, ""


def plan(pair: Pair, forward: Signature, given: Overrides) -> Plan:
    """Shapes, integer inputs and settings for one pair; ``problem`` says what flag is missing.

    ``forward`` is the forward's signature as data. Only the overrides naming one of its
    parameters apply (a whole-file run passes the same flags to every pair).
    """
    names, required = list(forward.params), list(forward.required)
    spec = lookup(pair.op, names)
    mine = {k: v for k, v in given.shapes.items() if k in names}
    config = {k: v for k, v in {**(spec.config if spec else {}), **given.kwargs}.items()
              if k in names}
    try:
        shapes = resolve_shapes(spec, mine) if spec else dict(mine)
    except InvalidArgument as exc:
        return Plan(pair, {}, {}, config, str(exc), spec is not None)
    for n in [k for k in shapes if k in config]:
        del shapes[n]  # an explicit --kwarg wins over the registry's array
    ints, problem = _int_inputs(spec, given, shapes, names)
    data = {n: shapes.pop(n) for n in (spec.data if spec else {}) if n in shapes}
    missing = [n for n in required if n not in {**shapes, **ints, **config, **data}]
    if not problem and missing:
        problem = _needs(missing, pair)
    if not problem and not shapes:
        problem = f"{pair.forward} has no float input to differentiate"
    return Plan(pair, shapes, ints, config, problem, spec is not None, data,
                spec.scale if spec else 1.0)


def draw_fixed(p: Plan, dtype: Any, seed: int) -> dict[str, np.ndarray]:
    """The plan's inputs that are never differentiated, seeded: integers drawn uniformly from
    their ranges, float data (a classifier's ``X``) standard normal."""
    rng = np.random.default_rng([seed, _INT_STREAM])
    out = {}
    for name, (shape, low, high, kind) in p.ints.items():
        values = rng.integers(low, high, size=shape)
        out[name] = values.astype(bool) if kind == "bool" else values
    out.update({n: rng.standard_normal(s).astype(dtype) for n, s in p.data.items()})
    return out
