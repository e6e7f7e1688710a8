"""Hand-written backward passes in PyTorch and JAX, checked on the engine's layer protocol.

``torch_layer(target)`` adapts a ``torch.autograd.Function`` subclass, an ``nn.Module`` or any
callable on tensors (gradients from ``torch.autograd.grad``); ``jax_layer(func)`` a function
with a ``custom_vjp``/``custom_jvp`` rule (gradients from ``jax.vjp``). Both give a
:class:`~gradcheck.layer.Layer` for :func:`gradcheck.check_layer`, the pytest fixture and the
command line (``gradcheck check my_ops.py:Swish --shape x=64,128``).

Nothing here imports torch or JAX until an adapter is asked for (``pip install
'gradcheck[torch]'`` or ``'gradcheck[jax]'``): :func:`detect` recognises their objects through
the modules already loaded, since an object of theirs means its framework is loaded.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from typing import Any

from gradcheck.errors import InvalidArgument

__all__ = ["JAX_FUNCTION", "TORCH_FUNCTION", "TORCH_MODULE", "TORCH_MODULE_CLASS", "arguments",
           "build", "detect", "jax_layer", "torch_layer"]

# What detect() finds; the command line names them in messages.
TORCH_FUNCTION = "torch.autograd.Function"
TORCH_MODULE = "torch.nn.Module"
TORCH_MODULE_CLASS = "torch.nn.Module class"
JAX_FUNCTION = "jax function"

_INSTALL = {"torch": "pip install 'gradcheck[torch]'", "jax": "pip install 'gradcheck[jax]'"}


def _framework(name: str) -> Any:
    """``gradcheck.frameworks.torch`` or ``.jax``, with a message naming the extra if missing."""
    import importlib

    try:
        return importlib.import_module(f"gradcheck.frameworks.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in (name, f"{name}lib"):
            raise
        raise InvalidArgument(f"{name} is not installed: {_INSTALL[name]}") from None


def torch_layer(target: Any, *, config: Mapping[str, Any] | None = None,
                name: str | None = None) -> Any:
    """PyTorch code as a layer (:func:`gradcheck.frameworks.torch.torch_layer`).

    Parameters
    ----------
    target : torch.autograd.Function subclass, nn.Module or callable
        The code whose gradients ``torch.autograd.grad`` gives.
    config : mapping, optional
        Arguments that are not differentiated, by name.
    name : str, optional
        For reports.
    """
    return _framework("torch").torch_layer(target, config=config, name=name)


def jax_layer(func: Any, *, config: Mapping[str, Any] | None = None,
              name: str | None = None) -> Any:
    """A JAX function as a layer (:func:`gradcheck.frameworks.jax.jax_layer`); turns on
    ``jax_enable_x64``.

    Parameters
    ----------
    func : callable
        The function whose gradients ``jax.vjp`` gives (its ``custom_vjp`` rule).
    config : mapping, optional
        Arguments that are not differentiated, by name.
    name : str, optional
        For reports.
    """
    return _framework("jax").jax_layer(func, config=config, name=name)


def detect(obj: Any) -> str:
    """Which framework target ``obj`` is (:data:`TORCH_FUNCTION`, ...), or ``""``; imports
    nothing.

    Examples
    --------
    >>> detect(len), detect(3.0)
    ('', '')
    """
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "nn") and hasattr(torch, "autograd"):
        if isinstance(obj, torch.nn.Module):
            return TORCH_MODULE
        if _library(obj):  # the frameworks' own functions and classes, imported by the file
            return ""
        if inspect.isclass(obj) and issubclass(obj, torch.autograd.Function):
            return TORCH_FUNCTION
        if inspect.isclass(obj) and issubclass(obj, torch.nn.Module):
            return TORCH_MODULE_CLASS
    jax = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "custom_vjp") and not _library(obj) and (
            isinstance(obj, (jax.custom_vjp, jax.custom_jvp)) or _is_jax_wrapper(obj)):
        return JAX_FUNCTION
    return ""


def arguments(obj: Any, kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The inputs a target of ``kind`` (:func:`detect`) takes by name, and those without a
    default (``ctx`` and ``self`` left out), as the adapters bind them; ``((), ())`` when its
    signature cannot be read.

    Examples
    --------
    >>> arguments(lambda x, eps=1e-5: x, JAX_FUNCTION)
    (('x', 'eps'), ('x',))
    """
    from gradcheck.frameworks.common import argument_names

    torch = sys.modules.get("torch")
    try:
        if kind == TORCH_FUNCTION and torch is not None:
            plain = getattr(obj, "setup_context", None) is torch.autograd.Function.setup_context
            return argument_names(obj.forward, skip=1 if plain else 0)
        if kind in (TORCH_MODULE, TORCH_MODULE_CLASS):
            return argument_names(obj.forward, skip=1 if kind == TORCH_MODULE_CLASS else 0)
        return argument_names(getattr(obj, "fun", obj))
    except InvalidArgument:
        return (), ()


def _library(obj: Any) -> bool:
    """Defined in torch or JAX themselves (``jax.nn.relu``, ``torch.nn.Linear``)."""
    return str(getattr(obj, "__module__", "") or "").split(".")[0] in ("torch", "jax", "jaxlib")


def _is_jax_wrapper(obj: Any) -> bool:
    """``jax.jit(f)`` and friends: a callable wrapping a function, of a type from jax or
    jaxlib."""
    return (callable(obj) and not inspect.isclass(obj) and callable(getattr(obj, "__wrapped__",
                                                                            None))
            and type(obj).__module__.split(".")[0] in ("jax", "jaxlib"))


def build(obj: Any, kind: str, settings: Mapping[str, Any], data: Mapping[str, Any],
          seed: int = 0) -> Any:
    """The layer for a target :func:`detect` found: an ``nn.Module`` class is constructed with
    ``settings`` (its weights drawn from ``torch.manual_seed(seed)``); for the other kinds
    ``settings`` are arguments that are not differentiated. ``data`` (integer labels) are
    always arguments."""
    if kind == JAX_FUNCTION:
        return jax_layer(obj, config={**settings, **data})
    if kind == TORCH_MODULE_CLASS:
        obj = _constructed(obj, settings, seed)
        settings = {}
    if kind not in (TORCH_FUNCTION, TORCH_MODULE, TORCH_MODULE_CLASS):
        raise InvalidArgument(f"{obj!r} is not a torch or JAX target")
    return torch_layer(obj, config={**settings, **data})


def _constructed(cls: Any, settings: Mapping[str, Any], seed: int) -> Any:
    import torch

    from gradcheck.layer import construct

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return construct(cls, settings)
