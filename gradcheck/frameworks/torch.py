"""PyTorch code as a layer: a ``torch.autograd.Function`` subclass, an ``nn.Module``, or any
callable on tensors, its gradients taken with ``torch.autograd.grad``.

Whatever decides the gradient (a custom ``backward``, the autograd of the ops inside a module,
a straight-through estimator) is what is checked. An ``nn.Module``'s parameters are checked
too, under their own names (``weight``, ``bias``, ``0.weight``): the module is called through
``torch.func.functional_call`` with the arrays the check passes, its floating buffers (running
statistics) copied in the input's dtype for every call, so the module itself never changes.
Every call runs with the CPU generator seeded with 0 (a dropout mask is the same in each call)
and on one thread; the caller's generator and thread count are put back after.

The forward runs on inputs of the dtype given (float32 stays float32: a float32 rule is judged
as it runs, with its float64 run as the engine's witness), and on complex inputs where the
engine's probe asks for the complex step: ops that do not take complex tensors raise, and the
probe falls back to real differences.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from gradcheck.errors import InvalidArgument, LayerError
from gradcheck.frameworks.common import FrameworkLayer, argument_names, record

__all__ = ["TorchLayer", "is_function_class", "torch_layer"]


def is_function_class(target: Any) -> bool:
    """Whether ``target`` is a subclass of ``torch.autograd.Function`` (not the class itself)."""
    return (inspect.isclass(target) and issubclass(target, torch.autograd.Function)
            and target is not torch.autograd.Function)


@contextlib.contextmanager
def _one_call() -> Iterator[None]:
    """One call of the user's code: the CPU generator seeded with 0 (a dropout mask is the same
    in every call), on one thread; both put back after. (``torch.manual_seed`` would also seed
    every CUDA device and record a stack trace to do it lazily: 1 ms a call. The checks run on
    small tensors, which threads do not speed up, and on a loaded two-core machine torch's
    thread pool made a small module's check 20 times slower.)"""
    generator, threads = torch.default_generator, torch.get_num_threads()
    state = generator.get_state()
    generator.manual_seed(0)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        generator.set_state(state)


class _Recorder(torch.overrides.TorchFunctionMode):
    """Names every torch function the code calls into the probe's log (common.record)."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        record(self.log, "torch", str(getattr(func, "__name__", "")))
        return func(*args, **(kwargs or {}))


def _tensor(value: Any, grad: bool) -> Any:
    if not isinstance(value, np.ndarray):
        return value  # a setting (eps, a flag) goes to the code as it is
    t = torch.from_numpy(np.array(value, copy=True))
    return t.requires_grad_(True) if grad and t.is_floating_point() else t


def _outputs(result: Any, name: str) -> list[Any]:
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    bad = [o for o in outs if not isinstance(o, torch.Tensor)]
    if bad or not outs:
        got = type(bad[0]).__name__ if bad else "nothing"
        raise LayerError(f"{name}: the code must return a tensor or a tuple of tensors, got {got}")
    return outs


class TorchLayer(FrameworkLayer):
    """A callable on tensors (``Function.apply``, a module, a function) as a layer."""

    framework = "torch"

    def __init__(self, call: Callable[..., Any], names: Sequence[str], required: Sequence[str],
                 config: Mapping[str, Any], name: str, module: Any = None) -> None:
        super().__init__(names, required, config, name)
        self._call, self._module = call, module

    def parameters(self) -> dict[str, np.ndarray]:
        if self._module is None:
            return {}
        return {k: p.detach().cpu().numpy().copy() for k, p in self._module.named_parameters()}

    def state_owners(self) -> dict[str, Any]:
        return {} if self._module is None else {f"{self.name}.": self._module}

    def _apply(self, tensors: Mapping[str, Any]) -> Any:
        args = [tensors[n] for n in self._names if n in tensors]
        if self._module is None:
            return self._call(*args)
        own = {k: v for k, v in tensors.items() if k not in self._names}
        dtype = _widest(tensors.values())
        real = dtype.to_real() if dtype is not None and dtype.is_complex else dtype
        state = {**{k: _copied(p, dtype) for k, p in self._module.named_parameters()},
                 **{k: _copied(b, real) for k, b in self._module.named_buffers()}, **own}
        return torch.func.functional_call(self._module, state, tuple(args))

    def run(self, values: Mapping[str, Any], log: list[str] | None = None) -> list[Any]:
        tensors = _together({k: _tensor(v, grad=False) for k, v in values.items()})
        watch = _Recorder(log) if log is not None else contextlib.nullcontext()
        with torch.no_grad(), _one_call(), watch:
            outs = _outputs(self._apply(tensors), self.name)
        return [o.detach().cpu().numpy() for o in outs]

    def pull(self, values: Mapping[str, Any], wrt: Sequence[str],
             upstream: Sequence[np.ndarray]) -> list[Any]:
        tensors = {k: _tensor(v, grad=k in wrt) for k, v in values.items()}
        leaves = [tensors[k] for k in wrt]
        with torch.enable_grad(), _one_call():
            outs = _outputs(self._apply(_together(tensors)), self.name)
            pairs = [(o, torch.as_tensor(np.asarray(u), dtype=o.dtype))
                     for o, u in zip(outs, upstream, strict=True) if o.requires_grad]
            if not pairs:
                return [None] * len(leaves)
            grads = torch.autograd.grad([o for o, _ in pairs], leaves,
                                        grad_outputs=[u for _, u in pairs], allow_unused=True)
        return [None if g is None else g.detach().cpu().numpy() for g in grads]


def _floating(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex())


def _widest(values: Any) -> Any:
    """The dtype the call computes in: complex if any input is, else the widest float."""
    found = [v.dtype for v in values if _floating(v)]
    if not found:
        return None
    widest = found[0]
    for dtype in found[1:]:
        widest = torch.promote_types(widest, dtype)
    return widest


def _together(tensors: dict[str, Any]) -> dict[str, Any]:
    """Every floating tensor in the widest dtype among them: with one complex input (the
    engine's complex step) the real ones get a zero imaginary part, which is exact and lets ops
    that refuse mixed dtypes (matmul, batch_norm) run; float32 weights with a float64 input are
    computed in float64, as ``module.double()`` would."""
    dtype = _widest(tensors.values())
    if dtype is None:
        return tensors
    return {k: v.to(dtype) if _floating(v) and v.dtype != dtype else v
            for k, v in tensors.items()}


def _copied(tensor: Any, dtype: Any) -> Any:
    """A parameter or buffer for one call: a copy (an in-place update of running statistics
    lands on it), in ``dtype`` when floating (a float64 run of a float32 module)."""
    copy = tensor.detach().clone()
    return copy.to(dtype) if dtype is not None and copy.is_floating_point() else copy


def torch_layer(target: Any, *, config: Mapping[str, Any] | None = None,
                name: str | None = None) -> TorchLayer:
    """Adapt PyTorch code: its gradients are taken with ``torch.autograd.grad``.

    Parameters
    ----------
    target : torch.autograd.Function subclass, nn.Module or callable
        A ``Function`` subclass is called through ``apply`` and its inputs are named after
        ``forward(ctx, x, ...)``'s arguments; a module after its ``forward``'s, with its
        parameters (``weight``, ``bias``) checked as well; any other callable after its own
        arguments.
    config : mapping, optional
        Arguments that are not differentiated (``eps``, integer labels), by name.
    name : str, optional
        For reports; by default the class's or function's name.

    Returns
    -------
    TorchLayer
        A :class:`~gradcheck.layer.Layer` for :func:`gradcheck.check_layer`.

    Raises
    ------
    InvalidArgument
        ``target`` is not callable, takes ``*args``, or ``config`` names no argument of it.

    Examples
    --------
    >>> class Cube(torch.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x ** 2 * g
    >>> import gradcheck
    >>> gradcheck.check_layer(torch_layer(Cube), {"x": np.linspace(-1, 1, 6)}).verdict
    'pass'
    """
    if config is not None and not isinstance(config, Mapping):
        raise InvalidArgument(f"`config` must be a mapping of name to value, got {config!r}")
    config = dict(config or {})
    if is_function_class(target):
        skip = 0 if _has_setup_context(target) else 1
        names, required = argument_names(target.forward, skip=skip)
        return TorchLayer(target.apply, names, required, config, name or target.__name__)
    if isinstance(target, torch.nn.Module):
        names, required = argument_names(target.forward)
        label = name or type(target).__name__
        return TorchLayer(target, names, required, config, label, module=target)
    if not callable(target):
        raise InvalidArgument(f"`target` must be a torch.autograd.Function subclass, an "
                              f"nn.Module or a callable on tensors, got {type(target).__name__}")
    names, required = argument_names(target)
    return TorchLayer(target, names, required, config,
                      name or str(getattr(target, "__name__", type(target).__name__)))


def _has_setup_context(cls: type) -> bool:
    """A ``Function`` with ``setup_context`` has a ``forward`` without ``ctx``."""
    return getattr(cls, "setup_context", None) is not torch.autograd.Function.setup_context
