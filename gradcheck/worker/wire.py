"""What crosses the boundary between gradcheck and the worker that runs the user's code.

A message is a JSON header and raw array buffers, framed by lengths::

    u64 header length | u32 buffer count | header (UTF-8 JSON) | (u64 length | bytes) ...

Never pickle in the direction worker -> parent: unpickling runs code, and the worker runs code the
parent does not trust. The header encodes a tree of plain values:

- ``None``, ``bool``, ``int``, ``float``, ``str`` as themselves (floats may be NaN or inf);
- ``{"L": [...]}`` a list, ``{"T": [...]}`` a tuple, ``{"D": {key: value}}`` a dict with ``str``
  keys;
- ``{"A": i, "dtype": "<f8", "shape": [...], "order": "C"|"F"}`` an array whose bytes are buffer
  ``i``; ``{"S": i, "dtype": ...}`` a NumPy scalar; only boolean, integer, float and complex
  dtypes, never objects or records;
- ``{"H": id, "type": name}`` a *handle*: an object that stays in the worker (a layer, a cache)
  and that the parent can pass back but never sees.

The parent decodes strictly: an unknown key, a dtype outside the list, a shape whose bytes do not
match its buffer or a header over :data:`MAX_HEADER` is a :class:`WireError`, and every array it
decodes is a fresh copy it owns (a buffer the layer reuses cannot change it later).
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["MAX_BUFFERS", "MAX_HEADER", "Channel", "Handle", "WireError", "decode", "encode"]

MAX_HEADER = 64 << 20  # bytes of JSON; arrays travel as buffers
MAX_BUFFERS = 4 << 30  # bytes of arrays in one message (less with the worker's memory limit)
_MAX_DEPTH = 64
_KINDS = "biufc"


class WireError(Exception):
    """A message that is not what the protocol allows (or the other side went away)."""


@dataclass(frozen=True)
class Handle:
    """An object that lives in the worker; ``type`` is its class name there, for messages."""

    id: int
    type: str

    def __deepcopy__(self, memo: Any) -> Handle:  # the worker copies what it passes on
        return self


# --- trees ------------------------------------------------------------------------------------


def encode(value: Any, keep: Callable[[Any], Handle] | None = None) -> tuple[Any, list[bytes]]:
    """``value`` as a JSON-ready tree and its buffers; objects the tree cannot hold go to
    ``keep`` (the worker's table), which returns their handle; without ``keep`` they raise."""
    buffers: list[bytes] = []
    return _encode(value, buffers, keep, 0), buffers


def _encode(value: Any, buffers: list[bytes], keep: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise WireError(f"a value nested more than {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1 << 63:
            return _kept(value, keep)
        return value
    if isinstance(value, Handle):
        return {"H": value.id, "type": value.type}
    if isinstance(value, np.ndarray) and value.dtype.kind in _KINDS and value.dtype.names is None:
        fortran = value.flags.f_contiguous and not value.flags.c_contiguous
        order: Literal["C", "F"] = "F" if fortran else "C"
        buffers.append(value.tobytes(order=order))
        return {"A": len(buffers) - 1, "dtype": value.dtype.str, "shape": list(value.shape),
                "order": order}
    if isinstance(value, np.generic) and value.dtype.kind in _KINDS:
        buffers.append(np.asarray(value).tobytes())
        return {"S": len(buffers) - 1, "dtype": value.dtype.str}
    if type(value) in (list, tuple):
        items = [_encode(v, buffers, keep, depth + 1) for v in value]
        return {"L": items} if type(value) is list else {"T": items}
    if type(value) is dict and all(isinstance(k, str) for k in value):
        return {"D": {k: _encode(v, buffers, keep, depth + 1) for k, v in value.items()}}
    return _kept(value, keep)


def _kept(value: Any, keep: Any) -> Any:
    if keep is None:
        raise WireError(f"cannot send a {type(value).__name__} across the boundary")
    handle = keep(value)
    return {"H": handle.id, "type": handle.type}


def decode(tree: Any, buffers: list[bytes], resolve: Callable[[int], Any] | None = None) -> Any:
    """The value of an encoded tree; handles become :class:`Handle` (or ``resolve(id)``)."""
    return _decode(tree, buffers, resolve, 0)


def _decode(tree: Any, buffers: list[bytes], resolve: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise WireError(f"a value nested more than {_MAX_DEPTH} levels deep")
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if not isinstance(tree, dict) or len(tree) == 0:
        raise WireError(f"unexpected {type(tree).__name__} in a message")
    if "L" in tree and len(tree) == 1:
        return [_decode(v, buffers, resolve, depth + 1) for v in _list(tree["L"])]
    if "T" in tree and len(tree) == 1:
        return tuple(_decode(v, buffers, resolve, depth + 1) for v in _list(tree["T"]))
    if "D" in tree and len(tree) == 1 and isinstance(tree["D"], dict):
        return {str(k): _decode(v, buffers, resolve, depth + 1) for k, v in tree["D"].items()}
    if "A" in tree and set(tree) == {"A", "dtype", "shape", "order"}:
        return _array(tree, buffers)
    if "S" in tree and set(tree) == {"S", "dtype"}:
        return _array({**tree, "A": tree["S"], "shape": [], "order": "C"}, buffers)[()]
    if "H" in tree and set(tree) == {"H", "type"} and _is_int(tree["H"]):
        if resolve is not None:
            return resolve(tree["H"])
        return Handle(tree["H"], str(tree["type"])[:80])
    raise WireError(f"unexpected keys {sorted(map(str, tree))[:4]} in a message")


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise WireError("a list or tuple that is not a list")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _array(tree: dict[str, Any], buffers: list[bytes]) -> np.ndarray:
    index, shape = tree["A"], tree["shape"]
    if not _is_int(index) or not 0 <= index < len(buffers):
        raise WireError(f"an array refers to buffer {index!r} of {len(buffers)}")
    if not isinstance(shape, list) or not all(_is_int(n) and n >= 0 for n in shape):
        raise WireError(f"an array has the shape {shape!r:.60}")
    try:
        dtype = np.dtype(str(tree["dtype"]))
    except TypeError as exc:
        raise WireError(f"an array has the dtype {tree['dtype']!r:.40}") from exc
    if dtype.kind not in _KINDS or dtype.names is not None or dtype.subdtype is not None:
        raise WireError(f"an array has the dtype {dtype}, which the protocol does not carry")
    data = buffers[index]
    size = 1
    for n in shape:
        size *= n
    if size * dtype.itemsize != len(data):
        raise WireError(f"an array of shape {tuple(shape)} and dtype {dtype} came with "
                        f"{len(data)} bytes")
    order: Literal["C", "F"] = "F" if tree["order"] == "F" else "C"
    flat = np.frombuffer(data, dtype=dtype)
    return flat.reshape(tuple(shape), order=order).copy(order=order)


# --- framing over file descriptors ------------------------------------------------------------


class Channel:
    """Messages over a pair of pipe ends: buffered reads, one ``writev`` per message.

    Reads block in ``read(2)``; a signal whose handler raises (the parent's time limit)
    interrupts them (PEP 475 retries only when the handler returns).
    """

    def __init__(self, read_fd: int, write_fd: int, *, max_bytes: int | None = None) -> None:
        self._reader = open(read_fd, "rb", buffering=1 << 16, closefd=False)
        self._write_fd = write_fd
        # a worker limited to max_bytes cannot honestly send more in one message
        self._max_bytes = min(MAX_BUFFERS, max_bytes) if max_bytes else MAX_BUFFERS

    def send(self, header: Any, buffers: list[bytes]) -> None:
        head = json.dumps(header, separators=(",", ":")).encode()
        parts = [struct.pack("<QI", len(head), len(buffers)), head]
        for buf in buffers:
            parts += [struct.pack("<Q", len(buf)), buf]
        try:
            _writev_all(self._write_fd, parts)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise WireError("the other side closed the channel") from exc

    def receive(self, limit: int = MAX_HEADER) -> tuple[Any, list[bytes]]:
        """One message; :class:`WireError` on end of file or a malformed frame."""
        size, count = struct.unpack("<QI", self._exact(12))
        if size > limit:
            raise WireError(f"a message header of {size} bytes (more than {limit})")
        try:
            header = json.loads(self._exact(size))
        except ValueError as exc:
            raise WireError(f"a message header that is not JSON ({exc})") from exc
        buffers, total = [], 0
        for _ in range(count):
            (n,) = struct.unpack("<Q", self._exact(8))
            total += n
            if total > self._max_bytes:
                raise WireError(f"a message announcing more than {self._max_bytes} bytes of "
                                "arrays")
            buffers.append(self._exact(n))
        return header, buffers

    def _exact(self, n: int) -> bytes:
        data = self._reader.read(n)
        if data is None or len(data) != n:
            raise WireError("end of file")
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._reader.close()


def _writev_all(fd: int, parts: list[bytes]) -> None:
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        n = os.writev(fd, views[:512])
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0
