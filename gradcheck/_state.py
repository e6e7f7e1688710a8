"""Fingerprints of arbitrary Python state, to prove that nothing was mutated, and snapshots of
an object's attributes that put them back without ever destroying one."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import types
from dataclasses import dataclass
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


def same(a: Any, b: Any) -> bool:
    """Whether ``b`` (a deep copy of ``a`` that was handed out) still holds what ``a`` does,
    by :func:`fingerprint`'s rules, without hashing: arrays compare bit for bit in place."""
    return _same(a, b, 0, set())


def _same(a: Any, b: Any, depth: int, seen: set[int]) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and _same_bits(a, b))
    if isinstance(a, (int, float, complex, str, bytes, bool, type(None), np.generic)):
        return type(a) is type(b) and repr(a) == repr(b)
    if type(a).__name__ != type(b).__name__:
        return False
    if depth >= _MAX_DEPTH or id(a) in seen:
        return True
    seen.add(id(a))
    return _same_container(a, b, depth, seen)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object:
        return repr(a) == repr(b)
    if a.size == 0:
        return True
    flat_a = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    flat_b = np.ascontiguousarray(b).reshape(-1).view(np.uint8)
    return bool(np.array_equal(flat_a, flat_b))


def _same_container(a: Any, b: Any, depth: int, seen: set[int]) -> bool:
    if isinstance(a, dict):
        if not isinstance(b, dict) or sorted(map(repr, a)) != sorted(map(repr, b)):
            return False
        by_repr = {repr(k): k for k in b}
        if not all(_same(a[k], b[by_repr[repr(k)]], depth + 1, seen) for k in a):
            return False
    elif isinstance(a, (list, tuple)):
        if len(a) != len(b) or not all(_same(x, y, depth + 1, seen)
                                       for x, y in zip(a, b, strict=True)):
            return False
    elif isinstance(a, _OPAQUE):
        return True
    elif hasattr(a, "__dict__"):
        if not _same(vars(a), getattr(b, "__dict__", None), depth + 1, seen):
            return False
    return all(_same(getattr(a, name, None), getattr(b, name, None), depth + 1, seen)
               for name in getattr(type(a), "__slots__", ()))


def safe_deepcopy(obj: Any) -> Any:
    """``copy.deepcopy``, or the object itself when it cannot be copied (locks, modules)."""
    try:
        return copy.deepcopy(obj)
    except Exception:
        return obj


# --- snapshots of an object's attributes -----------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """An object's attributes before a check: the original objects, deep copies, digests.

    ``uncopyable`` names attributes that ``copy.deepcopy`` refused (locks, open files, sockets):
    they are never touched, only named.
    """

    originals: dict[str, Any]
    copies: dict[str, Any]
    digests: dict[str, str]
    uncopyable: tuple[str, ...]


def attributes(obj: Any) -> dict[str, Any]:
    """The attributes an object holds: its ``__dict__`` and every ``__slots__`` entry that is set.

    Examples
    --------
    >>> class P:
    ...     __slots__ = ("a", "b")
    >>> p = P(); p.a = 1
    >>> attributes(p)
    {'a': 1}
    """
    found = dict(getattr(obj, "__dict__", None) or {})
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                found[name] = getattr(obj, name)
    return found


def snapshot(obj: Any) -> Snapshot:
    """Copy every attribute that can be copied, one by one (one lock spoils nothing else)."""
    originals = attributes(obj)
    copies, uncopyable = {}, []
    for name, value in originals.items():
        try:
            copies[name] = copy.deepcopy(value)
        except Exception:
            uncopyable.append(name)
    digests = {name: fingerprint(value) for name, value in originals.items()}
    return Snapshot(originals, copies, digests, tuple(uncopyable))


def restore(obj: Any, snap: Snapshot) -> list[str]:
    """Put every copied attribute back as it was; returns the names that had changed.

    An attribute rebound during the check gets its original object back; an original object
    changed in place (an array, a dict, a list) gets its old contents back, so references the
    caller holds stay valid. Attributes added during the check are removed.
    """
    now = attributes(obj)
    changed = []
    for name in sorted(set(now) | set(snap.originals), key=str):
        if name in snap.uncopyable:
            continue
        if name not in snap.originals:
            _delete(obj, name)
            changed.append(name)
        elif now.get(name, _MISSING) is not snap.originals[name] or (
            fingerprint(snap.originals[name]) != snap.digests[name]
        ):
            setattr(obj, name, _refill(snap.originals[name], snap.copies[name]))
            changed.append(name)
    return changed


_MISSING = object()


def _delete(obj: Any, name: str) -> None:
    with contextlib.suppress(AttributeError):
        delattr(obj, name)


def _refill(original: Any, saved: Any) -> Any:
    """The original object with its saved contents put back, or the saved copy itself."""
    if fingerprint(original) == fingerprint(saved):
        return original
    if (isinstance(original, np.ndarray) and original.flags.writeable
            and original.shape == saved.shape and original.dtype == saved.dtype):
        np.copyto(original, saved)
        return original
    if isinstance(original, dict) and type(original) is dict:
        original.clear()
        original.update(saved)
        return original
    if isinstance(original, list) and type(original) is list:
        original[:] = saved
        return original
    return saved
