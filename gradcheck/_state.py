"""Fingerprints of arbitrary Python state, to prove that nothing was mutated."""

from __future__ import annotations

import copy
import hashlib
import types
from typing import Any

import numpy as np

_MAX_DEPTH = 6
_OPAQUE = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type, types.ModuleType)


def fingerprint(obj: Any) -> str:
    """A digest of arrays (dtype, shape, bytes), containers and plain attributes, recursively.

    Two states with the same fingerprint hold the same numbers bit for bit (NaN payloads
    included). Objects it cannot look into contribute their type name only.
    """
    h = hashlib.blake2b(digest_size=16)
    _feed(h, obj, 0, set())
    return h.hexdigest()


def _feed(h: Any, obj: Any, depth: int, seen: set[int]) -> None:
    if isinstance(obj, np.ndarray):
        h.update(f"nd{obj.dtype.str}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes() if obj.dtype != object else repr(obj).encode())
        return
    if isinstance(obj, (int, float, complex, str, bytes, bool, type(None), np.generic)):
        h.update(f"{type(obj).__name__}:{obj!r}".encode())
        return
    if depth >= _MAX_DEPTH or id(obj) in seen:
        h.update(type(obj).__name__.encode())
        return
    seen.add(id(obj))
    _feed_container(h, obj, depth, seen)


def _feed_container(h: Any, obj: Any, depth: int, seen: set[int]) -> None:
    h.update(type(obj).__name__.encode())
    if isinstance(obj, dict):
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            _feed(h, obj[key], depth + 1, seen)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _feed(h, item, depth + 1, seen)
    elif isinstance(obj, _OPAQUE):
        return
    elif hasattr(obj, "__dict__"):
        _feed(h, vars(obj), depth + 1, seen)
    for name in getattr(type(obj), "__slots__", ()):
        _feed(h, getattr(obj, name, None), depth + 1, seen)


def safe_deepcopy(obj: Any) -> Any:
    """``copy.deepcopy``, or the object itself when it cannot be copied (locks, modules)."""
    try:
        return copy.deepcopy(obj)
    except Exception:
        return obj
