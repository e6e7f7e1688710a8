"""Known course ops as data: which inputs a forward takes, their shapes, integer inputs, settings.

``gradcheck check layers.py`` pairs every ``NAME_forward`` with its backwards and looks ``NAME`` up
here to know what to feed it. Shapes are symbolic (``x=("N", "D")``, ``gamma=("D",)``): a symbol
takes the value the user gave through ``--shape`` when one of their shapes binds it, else the
default in :attr:`OpSpec.sizes`; a dimension may be a product (``"D1*D2"``: ``affine`` flattens
every axis but the first). Sizes follow the course notebooks' gradient checks, with an odd batch
``N`` (a bug that only shows for odd ``N`` is then visible). ``dropout`` carries a fixed seed, so
its mask is the same in every call.

Every entry is plain data; nothing here names a project. An entry applies to a forward only when
every name it gives is a parameter of that forward (otherwise the user's layer is something
else, and the check asks for ``--shape``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod
from typing import Any

from gradcheck.errors import InvalidArgument

__all__ = ["KINDS", "REGISTRY", "IntInput", "OpSpec", "lookup", "resolve_shapes"]

KINDS = ("layer", "loss", "multi-output")


@dataclass(frozen=True)
class IntInput:
    """An integer input (labels, word indices, masks) drawn uniformly from ``[low, high)``.

    ``low`` and ``high`` are ints or symbols of the op (``high="C"``: a label below the class
    count); ``dtype`` is ``"int"`` or ``"bool"`` (a mask).
    """

    dims: tuple[str, ...]
    low: int | str = 0
    high: int | str = 2
    dtype: str = "int"


@dataclass(frozen=True)
class OpSpec:
    """One known op: symbolic shapes of its float inputs, integer inputs, settings and kind."""

    name: str
    inputs: Mapping[str, tuple[str, ...]]
    sizes: Mapping[str, int]
    ints: Mapping[str, IntInput] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "layer"
    data: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # float, never differentiated
    scale: float = 1.0  # multiplies the drawn float inputs (see _RECURRENT)

    def names(self) -> list[str]:
        """Every argument name this entry supplies."""
        return [*self.inputs, *self.ints, *self.config, *self.data]

    def dims(self) -> dict[str, tuple[str, ...]]:
        """Symbolic shapes of every array this entry supplies."""
        return {**self.inputs, **{k: v.dims for k, v in self.ints.items()}, **self.data}


def _dims(text: str) -> tuple[str, ...]:
    return tuple(d.strip() for d in text.split(","))


def _spec(name: str, inputs: dict[str, str], sizes: dict[str, int], **more: Any) -> OpSpec:
    if "data" in more:
        more["data"] = {k: _dims(v) for k, v in more["data"].items()}
    return OpSpec(name, {k: _dims(v) for k, v in inputs.items()}, sizes, **more)


def _classifier(name: str) -> OpSpec:
    """``loss, dW = NAME(W, X, y, reg)``: a linear classifier's loss of its weights."""
    return _spec(name, {"W": "D, C"}, {"N": 7, "D": 6, "C": 4}, data={"X": "N, D"},
                 ints={"y": IntInput(("N",), 0, "C")}, config={"reg": 0.05}, kind="loss")


_BN = {"mode": "train", "eps": 1e-5, "momentum": 0.9}
# Recurrent cells sum several products into tanh and sigmoid: at full scale the gates saturate,
# their derivatives fall to ~1e-7 and the check carries little evidence. A third of the scale
# keeps the pre-activations where the nonlinearities bend.
_RECURRENT = 0.3
_CONV = {"stride": 1, "pad": 1}
_POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}
_NORM = "x, gamma, beta"

REGISTRY: dict[str, OpSpec] = {s.name: s for s in (
    _spec("affine", {"x": "N, D1, D2", "w": "D1*D2, M", "b": "M"},
          {"N": 5, "D1": 2, "D2": 3, "M": 4}),
    _spec("relu", {"x": "N, D"}, {"N": 5, "D": 6}),
    _spec("sigmoid", {"x": "N, D"}, {"N": 5, "D": 6}),
    _spec("affine_relu", {"x": "N, D1, D2", "w": "D1*D2, M", "b": "M"},
          {"N": 5, "D1": 2, "D2": 3, "M": 4}),
    _spec("batchnorm", {"x": "N, D", "gamma": "D", "beta": "D"}, {"N": 5, "D": 4},
          config={"bn_param": _BN}),
    _spec("layernorm", {"x": "N, D", "gamma": "D", "beta": "D"}, {"N": 5, "D": 4},
          config={"ln_param": {"eps": 1e-5}}),
    _spec("spatial_batchnorm", {"x": "N, C, H, W", "gamma": "C", "beta": "C"},
          {"N": 3, "C": 2, "H": 3, "W": 4}, config={"bn_param": _BN}),
    _spec("spatial_groupnorm", {"x": "N, C, H, W", "gamma": "1, C, 1, 1", "beta": "1, C, 1, 1"},
          {"N": 3, "C": 4, "H": 2, "W": 3}, config={"G": 2, "gn_param": {"eps": 1e-5}}),
    _spec("conv", {"x": "N, C, H, W", "w": "F, C, HH, WW", "b": "F"},
          {"N": 3, "C": 2, "H": 5, "W": 5, "F": 3, "HH": 3, "WW": 3},
          config={"conv_param": _CONV}),
    _spec("conv_relu", {"x": "N, C, H, W", "w": "F, C, HH, WW", "b": "F"},
          {"N": 3, "C": 2, "H": 5, "W": 5, "F": 3, "HH": 3, "WW": 3},
          config={"conv_param": _CONV}),
    _spec("conv_relu_pool", {"x": "N, C, H, W", "w": "F, C, HH, WW", "b": "F"},
          {"N": 3, "C": 2, "H": 4, "W": 4, "F": 3, "HH": 3, "WW": 3},
          config={"conv_param": _CONV, "pool_param": _POOL}),
    _spec("max_pool", {"x": "N, C, H, W"}, {"N": 3, "C": 2, "H": 4, "W": 4},
          config={"pool_param": _POOL}),
    _spec("dropout", {"x": "N, D"}, {"N": 5, "D": 6},
          config={"dropout_param": {"mode": "train", "p": 0.5, "seed": 123}}),
    _spec("svm_loss", {"x": "N, C"}, {"N": 7, "C": 5}, ints={"y": IntInput(("N",), 0, "C")},
          kind="loss"),
    _spec("softmax_loss", {"x": "N, C"}, {"N": 7, "C": 5},
          ints={"y": IntInput(("N",), 0, "C")}, kind="loss"),
    _spec("rnn_step", {"x": "N, D", "prev_h": "N, H", "Wx": "D, H", "Wh": "H, H", "b": "H"},
          {"N": 3, "D": 4, "H": 5}, scale=_RECURRENT),
    _spec("rnn", {"x": "N, T, D", "h0": "N, H", "Wx": "D, H", "Wh": "H, H", "b": "H"},
          {"N": 3, "T": 4, "D": 3, "H": 5}, scale=_RECURRENT),
    _spec("lstm_step", {"x": "N, D", "prev_h": "N, H", "prev_c": "N, H", "Wx": "D, 4*H",
                        "Wh": "H, 4*H", "b": "4*H"}, {"N": 3, "D": 4, "H": 5},
          kind="multi-output", scale=_RECURRENT),
    _spec("lstm", {"x": "N, T, D", "h0": "N, H", "Wx": "D, 4*H", "Wh": "H, 4*H", "b": "4*H"},
          {"N": 3, "T": 4, "D": 3, "H": 5}, scale=_RECURRENT),
    _spec("word_embedding", {"W": "V, D"}, {"N": 3, "T": 4, "V": 5, "D": 6},
          ints={"x": IntInput(("N", "T"), 0, "V")}),
    _spec("temporal_affine", {"x": "N, T, D", "w": "D, M", "b": "M"},
          {"N": 3, "T": 4, "D": 5, "M": 6}),
    _spec("temporal_softmax_loss", {"x": "N, T, V"}, {"N": 3, "T": 4, "V": 5},
          ints={"y": IntInput(("N", "T"), 0, "V"), "mask": IntInput(("N", "T"), 0, 2, "bool")},
          kind="loss"),
)}
REGISTRY["groupnorm"] = REGISTRY["spatial_groupnorm"]
REGISTRY.update({n: _classifier(n) for n in (
    "svm_loss_naive", "svm_loss_vectorized", "softmax_loss_naive", "softmax_loss_vectorized")})


def lookup(op: str, parameters: list[str] | None = None) -> OpSpec | None:
    """The entry for ``op`` if there is one and it fits a forward with these ``parameters``.

    Examples
    --------
    >>> lookup("batchnorm", ["x", "gamma", "beta", "bn_param"]).inputs["gamma"]
    ('D',)
    >>> lookup("batchnorm", ["X", "g", "b", "param"]) is None
    True
    """
    spec = REGISTRY.get(op)
    if spec is None or parameters is None:
        return spec
    return spec if all(n in parameters for n in spec.names()) else None


# --- shapes: bind symbols from what the user gave, then derive the rest -------------------------


def _bind(spec_dims: dict[str, tuple[str, ...]], given: Mapping[str, tuple[int, ...]],
          sizes: Mapping[str, int]) -> tuple[dict[str, int], dict[str, str]]:
    bound: dict[str, int] = {}
    unknown: dict[str, str] = {}  # symbol -> why its value is unknown
    for name, shape in given.items():
        dims = spec_dims.get(name)
        if dims is None:
            continue
        if len(dims) != len(shape):
            why = f"--shape {name}={','.join(map(str, shape))} is not ({', '.join(dims)})"
            unknown.update({s: why for d in dims for s in d.split("*") if s in sizes})
            continue
        for d, n in zip(dims, shape, strict=True):
            if d in sizes:
                if d in bound and bound[d] != n:
                    raise InvalidArgument(
                        f"`--shape` values disagree on {d}: {bound[d]} and {n} ({name}={shape})"
                    )
                bound[d] = n
    return bound, unknown


def _dim(expr: str, bound: Mapping[str, int], sizes: Mapping[str, int]) -> int:
    return prod(int(s) if s.isdigit() else bound.get(s, sizes[s]) for s in expr.split("*"))


def resolve_shapes(spec: OpSpec, given: Mapping[str, tuple[int, ...]],
                   ) -> dict[str, tuple[int, ...]]:
    """Shapes of every array of ``spec`` (inputs, integers, data), the ``given`` ones first.

    A symbol bound by a given shape takes that value everywhere; the others take their defaults.
    An input whose shape would need a symbol that a given shape of another rank leaves unknown
    cannot be inferred: the error names it and the ``--shape`` flag to add.

    Examples
    --------
    >>> resolve_shapes(REGISTRY["batchnorm"], {"x": (8, 10)})
    {'x': (8, 10), 'gamma': (10,), 'beta': (10,)}
    >>> resolve_shapes(REGISTRY["affine"], {"x": (4, 3, 2)})["w"]
    (6, 4)
    """
    dims = spec.dims()
    bound, unknown = _bind(dims, given, spec.sizes)
    shapes = {}
    for name, expr in dims.items():
        if name in given:
            shapes[name] = tuple(given[name])
            continue
        missing = [s for d in expr for s in d.split("*") if s in unknown]
        if missing:
            raise InvalidArgument(
                f"cannot infer the shape of `{name}` ({', '.join(expr)}) for {spec.name}: "
                f"{unknown[missing[0]]}; add --shape {name}=D1,D2,..."
            )
        shapes[name] = tuple(_dim(d, bound, spec.sizes) for d in expr)
    shapes.update({k: tuple(v) for k, v in given.items() if k not in shapes})
    return shapes


def int_range(spec: OpSpec, name: str, shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, int]:
    """``[low, high)`` of an integer input, with symbols bound from the resolved ``shapes``."""
    item = spec.ints[name]
    bound, _ = _bind(spec.dims(), shapes, spec.sizes)
    ends = [v if isinstance(v, int) else _dim(v, bound, spec.sizes) for v in (item.low, item.high)]
    return ends[0], ends[1]
