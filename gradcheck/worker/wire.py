"""What crosses the boundary between gradcheck and the worker that runs the user's code.

A message is a JSON header and raw array buffers, framed by lengths::

    u64 header length | u32 buffer count | header (UTF-8 JSON) | (u64 length | bytes) ...

With an :class:`Arena` (shared memory, on Linux), a buffer of more than a few kilobytes is
written into the sender's shared segment instead, and only its place crosses the pipe: ``u64
length | 1 << 63``, then ``u64 segment | u64 offset``. The reader checks the place against the
segment's size, which it fixed and sealed itself, and copies the bytes out like any others.

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
import fcntl
import json
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["ARENA_BYTES", "MAX_BUFFERS", "MAX_HEADER", "Arena", "Channel", "Handle", "WireError",
           "decode", "encode"]

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
        buffers.append(_raw(value, order))
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


def _raw(value: np.ndarray, order: Literal["C", "F"]) -> Any:
    """The array's bytes in ``order``: a view when they are contiguous (the channel copies them
    once, into the shared arena or the pipe), else a copy."""
    flat = value.T if order == "F" else value
    if flat.flags.c_contiguous:
        return flat.reshape(-1).view(np.uint8).data
    return value.tobytes(order=order)


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


_DTYPES: dict[str, np.dtype[Any]] = {}  # the dtypes seen, checked once


def _dtype(name: Any) -> np.dtype[Any]:
    found = _DTYPES.get(name) if isinstance(name, str) else None
    if found is not None:
        return found
    try:
        dtype = np.dtype(str(name))
    except TypeError as exc:
        raise WireError(f"an array has the dtype {name!r:.40}") from exc
    if dtype.kind not in _KINDS or dtype.names is not None or dtype.subdtype is not None:
        raise WireError(f"an array has the dtype {dtype}, which the protocol does not carry")
    if isinstance(name, str) and len(_DTYPES) < 64:
        _DTYPES[name] = dtype
    return dtype


def _array(tree: dict[str, Any], buffers: list[Any]) -> np.ndarray:
    index, shape = tree["A"], tree["shape"]
    if type(index) is not int or not 0 <= index < len(buffers):
        raise WireError(f"an array refers to buffer {index!r} of {len(buffers)}")
    size = 1
    if type(shape) is not list:
        raise WireError(f"an array has the shape {shape!r:.60}")
    for n in shape:
        if type(n) is not int or n < 0:
            raise WireError(f"an array has the shape {shape!r:.60}")
        size *= n
    dtype = _dtype(tree["dtype"])
    data = memoryview(buffers[index])
    if size * dtype.itemsize != data.nbytes:
        raise WireError(f"an array of shape {tuple(shape)} and dtype {dtype} came with "
                        f"{data.nbytes} bytes")
    order: Literal["C", "F"] = "F" if tree["order"] == "F" else "C"
    flat = np.frombuffer(data, dtype=dtype)  # (in the shared arena, the sender can still write)
    return flat.reshape(shape, order=order).copy(order=order)  # ours from here on


# --- framing over file descriptors ------------------------------------------------------------


ARENA_BYTES = 32 << 20  # each of the two shared segments a side writes its arrays into
_INLINE = 2048  # buffers smaller than this travel in the pipe (a copy costs less than a slot)
_SHARED = 1 << 63  # a buffer length with this bit set: the bytes are in a shared segment
_ALIGN = 64


class Arena:
    """Shared memory for array bytes: two segments a side writes into and two it reads from.

    Each is a sealed ``memfd`` (Linux): its size can neither shrink nor grow, so the other side
    cannot make a read or a write here fault (``SIGBUS``) by truncating it. A sender puts message
    ``n``'s buffers in its segment ``n % 2``; the receiver copies them out before it answers (the
    worker) or before it sends again (the parent, which never has more than two requests
    outstanding), so a segment is rewritten only after its last message was read. A reader
    copies every array into memory it owns (:func:`decode`); the writer could still change the
    segment while it is read, but it can only choose values it could have sent anyway.
    """

    def __init__(self, outgoing: list[int], incoming: list[int], size: int) -> None:
        self.size = size
        self.outgoing = [_mapped(fd, size) for fd in outgoing]
        self.incoming = [_mapped(fd, size) for fd in incoming]

    @staticmethod
    def segments(size: int) -> list[int] | None:
        """Four sealed segments of ``size`` bytes (``None`` where the system has none)."""
        if not hasattr(os, "memfd_create") or not hasattr(fcntl, "F_ADD_SEALS"):
            return None
        fds: list[int] = []
        try:
            for _ in range(4):
                fds.append(os.memfd_create("gradcheck-arena", os.MFD_CLOEXEC |
                                           os.MFD_ALLOW_SEALING))
                os.ftruncate(fds[-1], size)
                fcntl.fcntl(fds[-1], fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK |
                            fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        except OSError:
            for fd in fds:
                os.close(fd)
            return None
        return fds


def _mapped(fd: int, size: int) -> np.ndarray:
    if os.fstat(fd).st_size != size:
        raise OSError(f"a shared segment of {os.fstat(fd).st_size} bytes, not {size}")
    return np.frombuffer(mmap.mmap(fd, size), dtype=np.uint8)


class Channel:
    """Messages over a pair of pipe ends: buffered reads, one ``writev`` per message; with an
    :class:`Arena`, the arrays' bytes go through shared memory and only their places through
    the pipe.

    Reads block in ``read(2)``; a signal whose handler raises (the parent's time limit)
    interrupts them (PEP 475 retries only when the handler returns).
    """

    def __init__(self, read_fd: int, write_fd: int, *, max_bytes: int | None = None,
                 arena: Arena | None = None) -> None:
        self._reader = open(read_fd, "rb", buffering=1 << 16, closefd=False)
        self._write_fd = write_fd
        # a worker limited to max_bytes cannot honestly send more in one message
        self._max_bytes = min(MAX_BUFFERS, max_bytes) if max_bytes else MAX_BUFFERS
        self._arena = arena
        self._sent = 0
        self.counts = {"messages": 0, "pipe_bytes": 0, "shared_bytes": 0}  # sent and received

    def send(self, header: Any, buffers: list[Any]) -> None:
        head = json.dumps(header, separators=(",", ":")).encode()
        parts = [struct.pack("<QI", len(head), len(buffers)), head]
        segment = self._sent % 2
        self._sent += 1
        offset = 0
        for buf in buffers:
            n = memoryview(buf).nbytes
            if self._arena is not None and n >= _INLINE and offset + n <= self._arena.size:
                self._arena.outgoing[segment][offset:offset + n] = np.frombuffer(buf, np.uint8)
                parts.append(struct.pack("<QQQ", n | _SHARED, segment, offset))
                offset = -(-(offset + n) // _ALIGN) * _ALIGN
                self.counts["shared_bytes"] += n
            else:
                parts += [struct.pack("<Q", n), buf]
                self.counts["pipe_bytes"] += n
        self.counts["messages"] += 1
        try:
            _writev_all(self._write_fd, parts)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise WireError("the other side closed the channel") from exc

    def receive(self, limit: int = MAX_HEADER) -> tuple[Any, list[Any]]:
        """One message; :class:`WireError` on end of file or a malformed frame. A buffer in the
        shared arena is a view of it, valid until the next message is sent."""
        size, count = struct.unpack("<QI", self._exact(12))
        if size > limit:
            raise WireError(f"a message header of {size} bytes (more than {limit})")
        try:
            header = json.loads(self._exact(size))
        except ValueError as exc:
            raise WireError(f"a message header that is not JSON ({exc})") from exc
        buffers: list[Any] = []
        total = 0
        for _ in range(count):
            (n,) = struct.unpack("<Q", self._exact(8))
            if n & _SHARED:
                buffers.append(self._shared(n & ~_SHARED))
                continue
            total += n
            if total > self._max_bytes:
                raise WireError(f"a message announcing more than {self._max_bytes} bytes of "
                                "arrays")
            buffers.append(self._exact(n))
            self.counts["pipe_bytes"] += n
        self.counts["messages"] += 1
        return header, buffers

    def _shared(self, n: int) -> memoryview:
        segment, offset = struct.unpack("<QQ", self._exact(16))
        if self._arena is None or segment >= len(self._arena.incoming) or (
                offset + n > self._arena.size):
            raise WireError(f"a buffer of {n} bytes at {offset} in shared segment {segment}, "
                            "which is not there")
        self.counts["shared_bytes"] += n
        return memoryview(self._arena.incoming[segment][offset:offset + n])

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
