"""The worker: the only process that runs the user's code (``python -m gradcheck.worker.child``).

It reads requests from one file descriptor and answers on another (:mod:`gradcheck.worker.wire`),
keeping the objects it cannot send (the module, layers, caches) in a table of handles. Requests:

``load``      import the target (:func:`gradcheck.loading.load`); answer the module's handle
``call``      call ``target.method(*args, **kwargs)``; answer the result, the arguments the call
              changed in place, and the handle arguments it changed (their stored objects are
              never changed: each call gets a deep copy)
``points``    the forward at several whole sets of inputs
``perturb``   the forward at many one-element changes of one input (a numerical stage)
``attrs``     the values of named attributes of a kept object, and which are methods
``unpickle``  a layer (or a factory of one) the parent pickled
``release``   forget handles

Nothing here decides anything: whatever the worker answers, the parent only uses it as the
layer's output. Exceptions travel as their type name, message and traceback text.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from typing import Any

__all__ = ["main"]


class _Table:
    def __init__(self) -> None:
        self.objects: dict[int, Any] = {}
        self._next = 1

    def keep(self, value: Any) -> Any:
        from gradcheck.worker.wire import Handle

        self._next += 1
        self.objects[self._next] = value
        return Handle(self._next, type(value).__name__)

    def get(self, key: int) -> Any:
        if key not in self.objects:
            raise LookupError(f"no object {key} in the worker")
        return self.objects[key]


def _error(exc: BaseException) -> dict[str, Any]:
    from gradcheck import errors
    from gradcheck._engine.call import copy_failure, raised_here

    kind = next((c.__name__ for c in type(exc).__mro__
                 if c.__module__ == errors.__name__ and c is not errors.GradcheckError), "")
    info = {"type": type(exc).__name__, "message": str(exc), "gradcheck": kind,
            "copy_failure": copy_failure(exc), "raised_here": raised_here(exc),
            "traceback": "".join(traceback.format_exception(exc))[-20000:]}
    if isinstance(exc, SystemExit):
        info["code"] = exc.code if isinstance(exc.code, (int, str, type(None))) else str(exc.code)
    return info


def _call(table: _Table, request: dict[str, Any], args: list[Any], kwargs: dict[str, Any],
          copies: list[tuple[int, Any]]) -> dict[str, Any]:
    from gradcheck._state import safe_deepcopy, same

    fn = table.get(request["target"])
    for name in str(request.get("method") or "").split("."):
        fn = getattr(fn, name) if name else fn
    if request.get("track", True):  # the parent wants to see what the call changed in place
        before = {i: safe_deepcopy(a) for i, a in enumerate(args) if not _is_copy(a, copies)}
    else:  # as in process after a first call changed nothing: shared read-only inputs
        before = {}
        for arg in args:
            for value in (arg.values() if isinstance(arg, dict) else (arg,)):
                if hasattr(value, "flags"):
                    value.flags.writeable = False
    trace = request.get("trace")
    if trace and args and isinstance(args[0], dict):  # the probe traces the forward's ops
        from gradcheck.numeric.probe import tracing

        with tracing(args[0], [str(n) for n in trace if n in args[0]]) as log:
            result = fn(*args, **kwargs)
        return {"result": _plain(result), "changed": {}, "handles_changed": [],
                "trace": list(dict.fromkeys(log))}
    result = fn(*args, **kwargs)
    keep = request.get("keep")
    if keep == "result":  # an object the parent only passes back (a layer)
        result = table.keep(result)
    elif keep == "cache" and isinstance(result, tuple) and len(result) == 2:
        result = (result[0], table.keep(result[1]))  # (out, cache): the cache stays here
    changed = {str(i): args[i] for i in before if not same(before[i], args[i])}
    return {"result": result, "changed": changed,
            "handles_changed": [key for key, c in copies if not same(table.get(key), c)]}


def _plain(value: Any) -> Any:
    """A traced result as plain arrays (the cache is dropped: a traced call is never followed
    by a backward)."""
    import numpy as np

    if isinstance(value, tuple) and len(value) == 2:
        return (np.asarray(value[0]).view(np.ndarray), None)
    return value


def _copy_of(table: _Table, copies: list[tuple[int, Any]], key: int) -> Any:
    from gradcheck._state import safe_deepcopy

    copy = safe_deepcopy(table.get(key))
    copies.append((key, copy))
    return copy


def _is_copy(value: Any, copies: list[tuple[int, Any]]) -> bool:
    return any(value is c for _, c in copies)


def _serve(table: _Table, rfd: int, wfd: int, shared: list[int], size: int) -> None:
    from gradcheck.worker.wire import Arena, Channel, decode, encode

    arena = None
    if len(shared) == 4:
        try:  # to the parent: the last two (under a memory limit this may not fit: the pipe)
            arena = Arena(shared[2:], shared[:2], size)
        except (OSError, ValueError):
            arena = None
        for fd in shared:
            os.close(fd)
    channel = Channel(rfd, wfd, arena=arena)
    while True:
        header, buffers = channel.receive()
        for key in header.get("release", ()):
            table.objects.pop(key, None)
        op = header.get("op")
        if op == "exit":
            return
        try:
            if op == "load":
                answer: Any = _load(header)
            elif op == "attrs":
                answer = _attrs(table.get(header["target"]), header.get("names", ()))
            elif op == "unpickle":
                answer = _unpickle(header, buffers)
            elif op == "points":
                points = decode(header["args"], buffers)
                answer = _points(table.get(header["target"]), bool(header.get("fresh")), points)
            elif op == "perturb":
                inputs, base, ks, values = decode(header["args"], buffers)
                answer = _perturb(table.get(header["target"]), str(header["name"]),
                                  bool(header.get("fresh")), inputs, base, ks, values)
            else:
                copies: list[tuple[int, Any]] = []  # a handle argument is passed as a copy:
                resolve = functools.partial(_copy_of, table, copies)  # the stored one stays
                args = decode(header.get("args", {"L": []}), buffers, resolve)
                kwargs = decode(header.get("kwargs", {"D": {}}), buffers, resolve)
                answer = _call(table, header, args, kwargs, copies)
            tree, out = encode({"ok": answer}, table.keep)
        except BaseException as exc:
            tree, out = encode({"error": _error(exc)}, table.keep)
        channel.send(tree, out)


def _perturb(layer: Any, name: str, fresh: bool, inputs: dict[str, Any], base: Any, ks: Any,
             values: Any) -> list[Any]:
    """The forward at ``inputs`` with ``inputs[name] = base`` changed at ``ks[i]`` to
    ``values[i]``, for each ``i``; the caches are dropped (no backward will use them)."""
    if not fresh:
        _shared(inputs)
    results = []
    for k, v in zip(ks, values, strict=True):
        arr = base.copy(order="K")
        arr.flat[int(k)] = v
        local = {n: (a.copy(order="K") if fresh and hasattr(a, "copy") else a)
                 for n, a in inputs.items()}
        local[name] = arr
        results.append(_without_cache(layer.forward(local)))
    return _stacked(results)


def _points(layer: Any, fresh: bool, points: list[dict[str, Any]]) -> list[Any]:
    """The forward at each set of inputs; the caches are dropped."""
    results = []
    for inputs in points:
        if not fresh:
            _shared(inputs)
        results.append(_without_cache(layer.forward(inputs)))
    return _stacked(results)


def _stacked(results: list[Any]) -> Any:
    """Outputs (``(out, None)``) all arrays of one shape and dtype as ``{"stacked": outs}``:
    one buffer to send and one for the parent to copy; anything else as the list."""
    import numpy as np

    outs = [r[0] for r in results if isinstance(r, tuple) and len(r) == 2 and r[1] is None]
    if len(outs) != len(results) or not outs or any(type(o) is not np.ndarray for o in outs):
        return results
    first = outs[0]
    if first.dtype.kind not in "biufc" or first.dtype.names is not None or any(
            o.shape != first.shape or o.dtype != first.dtype for o in outs):
        return results
    return {"stacked": np.stack(outs)}


def _shared(inputs: dict[str, Any]) -> None:
    """As in process: inputs shared between calls are read-only (a forward writing raises)."""
    for value in inputs.values():
        if hasattr(value, "flags"):
            value.flags.writeable = False


def _without_cache(result: Any) -> Any:
    return (result[0], None) if isinstance(result, tuple) and len(result) == 2 else result


def _attrs(target: Any, names: Any) -> dict[str, Any]:
    """The named attributes that are not methods, and which of the names are methods."""
    values = {str(n): getattr(target, str(n)) for n in names if hasattr(target, str(n))}
    methods = [n for n, v in values.items() if callable(v)]
    return {"values": {n: v for n, v in values.items() if not callable(v)}, "methods": methods}


def _unpickle(header: dict[str, Any], buffers: list[bytes]) -> Any:
    """A layer the parent pickled (the parent trusts itself: this direction may pickle), or the
    layer a pickled factory returns; the parent's ``sys.path`` first, so its modules import."""
    import pickle

    for entry in reversed([str(p) for p in header.get("path", ())]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    obj = pickle.loads(buffers[0])  # from the parent (trusted), never from user code
    if not all(callable(getattr(obj, m, None)) for m in ("forward", "backward")) and callable(obj):
        obj = obj()
    return obj


def _load(header: dict[str, Any]) -> Any:
    from gradcheck.doorway import open_module

    seed = header.get("seed")
    return open_module(str(header["target"]), seed=seed if isinstance(seed, int) else None)


def main(argv: list[str] | None = None) -> int:
    """``child.py READ_FD WRITE_FD [MEMORY_LIMIT SEGMENT_FDS SEGMENT_SIZE]``: serve until
    ``exit`` or the end of the input."""
    args = sys.argv[1:] if argv is None else argv
    rfd, wfd = int(args[0]), int(args[1])
    limit = int(args[2]) if len(args) > 2 else 0
    shared = [int(fd) for fd in args[3].split(",") if fd] if len(args) > 3 else []
    size = int(args[4]) if len(args) > 4 else 0
    if limit > 0:  # before any user code: a process cannot raise its own hard limit again
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.dont_write_bytecode = True  # nothing next to the user's files (only --out is written)
    table = _Table()
    from gradcheck.worker.wire import WireError

    try:
        _serve(table, rfd, wfd, shared, size)
    except WireError:
        return 0
    finally:
        os.close(wfd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
