"""Stand-ins in the parent for what lives in the worker: the module's workshop, layers, functions.

A :class:`RemoteLayer` speaks the :class:`~gradcheck.layer.Layer` protocol, so the engine checks
it exactly as it checks a layer in its own process; every number it judges is computed here from
arrays the worker sent, decoded into fresh arrays the parent owns. What the engine would see in
process it sees here too: an input or ``dout`` the layer changed in place is changed here (from
the worker's report), and a cache the backward changed is reported as a problem (the worker keeps
the cache and hands the backward a copy).

Errors the user's code raised come back by type name, message and traceback: gradcheck's own
errors as themselves, ``sys.exit`` as ``SystemExit``, anything else as a :class:`RemoteError`
subclass named like the original (``ValueError``), so messages read as they do in process.
"""

from __future__ import annotations

import collections
import contextlib
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from gradcheck import errors
from gradcheck._guard import exit_message
from gradcheck.numeric.probe import trace_log
from gradcheck.worker.supervisor import Worker
from gradcheck.worker.wire import Handle

__all__ = ["Kept", "RemoteError", "RemoteFunction", "RemoteLayer", "RemoteWorkshop", "Replicated",
           "raise_error"]


class RemoteError(Exception):
    """An exception the user's code raised in the worker (its class is named like the original).

    ``copy_failure`` and ``raised_here`` say what the worker saw in the traceback (gradcheck
    could not copy the layer; the adapter, not the user's code, raised); ``remote_traceback`` is
    the worker's traceback text (``--debug``).
    """

    copy_failure = False
    raised_here = False
    remote_traceback = ""


BATCH_BYTES = 8 << 20  # one message carries at most this many bytes of changed inputs' worth
BATCH_SECONDS = 0.25  # and about this much of the layer's time
_BATCH_POINTS = 512
_FIRST_BATCH = 16  # points in a layer's first message, to time them
IN_FLIGHT = 2  # messages queued per worker (the shared arena holds two: see wire.Arena)
_MESSAGE_SECONDS = 0.002  # a message is split further only while each part has this much work

_CLASSES: dict[str, type[RemoteError]] = {}
_OURS = {"InvalidArgument": errors.InvalidArgument, "LayerError": errors.LayerError}


def _remote_class(name: str) -> type[RemoteError]:
    name = name if name.isidentifier() else "Exception"
    if name not in _CLASSES:
        _CLASSES[name] = type(name, (RemoteError,), {"__module__": "worker"})
    return _CLASSES[name]


def raise_error(info: Mapping[str, Any]) -> None:
    """Raise what the worker reported, as the engine would have seen it in process."""
    message = str(info.get("message", ""))[:20000]
    kind, name = str(info.get("gradcheck", "")), str(info.get("type", "Exception"))
    if name == "SystemExit":
        raise SystemExit(info.get("code"))
    if kind in _OURS:
        raise _OURS[kind](message)
    exc = _remote_class(name)(message)
    exc.copy_failure = bool(info.get("copy_failure"))
    exc.raised_here = bool(info.get("raised_here"))
    exc.remote_traceback = str(info.get("traceback", ""))
    raise exc


class Kept:
    """A handle the parent holds; the worker forgets the object when this is collected."""

    def __init__(self, worker: Worker, handle: Handle) -> None:
        self.handle = handle
        weakref.finalize(self, worker.release, handle.id)


def call(worker: Worker, target: Handle, method: str, args: list[Any], *, keep: str = "",
         phase: str = "", trace: Sequence[str] = (), track: bool = True) -> dict[str, Any]:
    """``target.method(*args)`` in the worker: ``{"result", "changed", "handles_changed"}``
    (and ``"trace"``, the operations applied to the inputs named by ``trace``). Without
    ``track`` the arguments are read-only there and nothing is reported changed."""
    worker.phase = phase or method or "a call"
    answer = worker.request({"op": "call", "target": target.id, "method": method, "keep": keep,
                             "trace": list(trace), "track": track}, args)
    if not isinstance(answer, dict) or not ({"ok"} == set(answer) or {"error"} == set(answer)):
        raise errors.LayerError("the layer's process sent an answer gradcheck cannot read")
    if "error" in answer:
        raise_error(answer["error"] if isinstance(answer["error"], dict) else {})
    ok = answer["ok"]
    if not isinstance(ok, dict):
        raise errors.LayerError("the layer's process sent an answer gradcheck cannot read")
    return ok


def _copy_back(original: Any, changed: Any, *, rebind: bool = False) -> None:
    """Make the parent's argument what the worker's became (the engine compares them).

    Arrays are overwritten in place; a dict's entries too, or rebound with ``rebind`` (course
    code stores new running statistics in ``bn_param`` rather than updating its arrays, and a
    caller may hold the old ones).
    """
    if isinstance(original, np.ndarray) and isinstance(changed, np.ndarray):
        if original.shape == changed.shape and original.flags.writeable:
            np.copyto(original, changed, casting="unsafe")
        return
    if isinstance(original, dict) and isinstance(changed, dict):
        for key, value in changed.items():
            if not rebind and isinstance(original.get(key), np.ndarray):
                _copy_back(original[key], value)
            else:
                original[key] = value
        for key in [k for k in original if k not in changed]:
            del original[key]


def _batch(answer: Any, size: int) -> list[Any]:
    """A batch's forward results; outputs of one shape and dtype come stacked in one array
    (one buffer, one copy here), whose rows are the outputs."""
    if not isinstance(answer, dict) or "error" in answer or "ok" not in answer:
        raise_error(answer.get("error", {}) if isinstance(answer, dict) else {})
    batch = answer["ok"]
    if isinstance(batch, dict) and set(batch) == {"stacked"}:
        rows = batch["stacked"]
        if isinstance(rows, np.ndarray) and rows.ndim and len(rows) == size:
            return [(row, None) for row in rows]
    if not isinstance(batch, list) or len(batch) != size:
        raise errors.LayerError("the layer's process sent a batch gradcheck cannot read")
    return batch


def _same_output(a: Any, b: Any) -> bool:
    first = a[0] if isinstance(a, tuple) and a else a
    second = b[0] if isinstance(b, tuple) and b else b
    try:
        x, y = np.asarray(first), np.asarray(second)
        return x.dtype == y.dtype and x.shape == y.shape and bool(
            np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))
    except Exception:  # not arrays: the engine will say what is wrong with them
        return False


class RemoteLayer:
    """A layer that lives in the worker, speaking the ``Layer`` protocol here."""

    def __init__(self, worker: Worker, kept: Kept) -> None:
        self._worker, self._kept = worker, kept
        self._seen: tuple[int, dict[str, Any]] | None = None
        attrs = self._attrs()
        values = attrs["values"]
        self.name = str(values.get("name") or kept.handle.type)
        self.kind = str(values.get("kind") or "layer")
        self.scalar_output = bool(values.get("scalar_output"))
        self._methods = set(attrs["methods"])
        self._problems: list[str] = []
        self._problem_notes: list[str] = []
        self._replicas: list[tuple[Worker, Kept]] = []
        self._per_point: float | None = None
        # the first forward is watched for writes to its inputs (the analytic pass compares
        # them); later ones get read-only inputs, as in process, unless that one wrote
        self._track, self._wrote = True, False
        # called with (input name, evaluations) after each part of a batch (gradcheck._terminal)
        self.progress: Callable[[str, int], None] | None = None
        self._verified = False
        required = (call(worker, kept.handle, "required_inputs", [])["result"]
                    if "required_inputs" in self._methods else None)
        self._required = (tuple(map(str, required[0])), str(required[1])) if required else None

    def _attrs(self) -> dict[str, Any]:
        """The layer's attributes, read again unless the worker answered nothing since (the
        report reads ``problems`` and ``notes`` one after the other: one message)."""
        if self._seen is not None and self._seen[0] == self._worker.answered:
            return self._seen[1]
        names = ["name", "kind", "scalar_output", "required_inputs", "parameters", "problems",
                 "notes"]
        answer = self._worker.request({"op": "attrs", "target": self._kept.handle.id,
                                       "names": names})
        if not isinstance(answer, dict) or "ok" not in answer:
            raise errors.LayerError("the layer's process could not describe the layer")
        self._seen = (self._worker.answered, answer["ok"])
        return answer["ok"]

    def required_inputs(self) -> tuple[tuple[str, ...], str] | None:
        return self._required

    def state_owners(self) -> dict[str, Any]:
        return {}  # its state lives in the worker, which the check throws away

    def forward(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        sent = dict(inputs)
        traced = [k for k, v in sent.items() if trace_log(v) is not None]
        ok = call(self._worker, self._kept.handle, "forward", [sent], keep="cache",
                  phase="forward", trace=traced, track=self._track)
        if not traced:  # a forward that once wrote to its inputs stays watched
            self._track = self._wrote = self._wrote or "0" in ok["changed"]
        if traced:  # the probe's trace: the operations the forward applied, recorded there
            log = trace_log(sent[traced[0]])
            if log is not None:
                log.extend(str(e) for e in ok.get("trace", ()) if isinstance(e, str))
        if "0" in ok["changed"]:
            _copy_back(sent, ok["changed"]["0"])
        result = ok["result"]
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Handle):
            return result[0], Kept(self._worker, result[1])
        return result

    def add_replica(self, other: RemoteLayer) -> None:
        """The same layer built in another worker of a pool: batches are split across them
        once their outputs are seen to agree bit for bit (:meth:`forward_perturbed`)."""
        self._replicas.append((other._worker, other._kept))
        self._verified = False

    def forward_many(self, points: list[Mapping[str, np.ndarray]], fresh: bool) -> list[Any]:
        """The forward at several whole sets of inputs, in one message (the engine's hook, see
        ``call_forward_points``)."""
        self._worker.phase = "forward"
        answer = self._worker.request({"op": "points", "target": self._kept.handle.id,
                                       "fresh": fresh}, [dict(p) for p in points])
        return _batch(answer, len(points))

    def forward_perturbed(self, inputs: Mapping[str, np.ndarray], name: str, base: np.ndarray,
                          ks: np.ndarray, values: np.ndarray, fresh: bool) -> Iterator[Any]:
        """The forward at many one-element changes of ``inputs[name]``, batched (the engine's
        hook, see ``call_forward_many``): one message per :data:`BATCH_BYTES` of inputs, spread
        over the pool's workers, each with :data:`IN_FLIGHT` messages queued, so the workers
        evaluate while this process reads and uses the answers they sent. The outputs are
        yielded as each answer arrives: the engine reduces them as they come, and a stage's
        outputs are never all held here at once (they would be fresh memory, page by page)."""
        if not len(ks):
            return
        sides = self._sides(inputs, name, base, ks, values, fresh)
        flight: collections.deque[tuple[Worker, int, int]] = collections.deque()
        queued = {id(worker): 0 for worker, _ in sides}
        lo, last = 0, time.perf_counter()
        try:
            while lo < len(ks) or flight:
                while lo < len(ks):
                    worker, kept = min(sides, key=lambda side: queued[id(side[0])])
                    if queued[id(worker)] >= IN_FLIGHT or (self._per_point is None and flight):
                        break  # (the first message alone, to time the layer)
                    hi = lo + self._batch_size(base, len(ks) - lo, len(sides))
                    worker.phase = "forward"
                    number = worker.send(
                        {"op": "perturb", "target": kept.handle.id, "name": name,
                         "fresh": fresh}, [dict(inputs), base, ks[lo:hi], values[lo:hi]],
                        queued=queued[id(worker)] > 0)
                    flight.append((worker, hi - lo, number))
                    queued[id(worker)] += 1
                    lo = hi
                worker, size, number = flight.popleft()
                if worker.answered > number:
                    raise RuntimeError("a batch resumed after its answers were dropped")
                rows = _batch(worker.receive(), size)
                queued[id(worker)] -= 1
                now = time.perf_counter()  # the layer's time per point (the pool in parallel)
                self._per_point = (now - last) * len(sides) / size
                last = now
                if self.progress is not None:
                    self.progress(name, size)
                yield from rows
        finally:  # stopped early (the layer raised, or the engine did): answers still queued
            for worker, _, number in flight:  # are read, so the next request gets its own
                worker.drain(number)

    def _batch_size(self, base: np.ndarray, left: int, workers: int) -> int:
        """Points per message: at most :data:`BATCH_BYTES` of inputs and about
        :data:`BATCH_SECONDS` of the layer's time (progress and Ctrl-C stay responsive), and
        the rest shared evenly among the workers' queues, unless that leaves a message less than
        :data:`_MESSAGE_SECONDS` of work (a message costs a round trip)."""
        most = max(1, min(_BATCH_POINTS, BATCH_BYTES // max(1, base.nbytes)))
        if self._per_point is None:
            return int(min(most, _FIRST_BATCH, left))
        per_point = max(self._per_point, 1e-9)
        most = min(most, max(1, int(BATCH_SECONDS / per_point)))
        least = -(-_MESSAGE_SECONDS // per_point)
        return int(min(most, left, max(least, -(-left // (workers * IN_FLIGHT)))))

    def _sides(self, inputs: Mapping[str, np.ndarray], name: str, base: np.ndarray,
               ks: np.ndarray, values: np.ndarray, fresh: bool) -> list[tuple[Worker, Kept]]:
        """The workers to spread a batch over: the replicas that computed the first point of the
        first batch exactly as this worker did (a layer whose output depends on its process,
        through the clock, the pid or unseeded randomness, is evaluated in one worker only)."""
        mine = (self._worker, self._kept)
        if not self._replicas or not len(ks):
            return [mine]
        if not self._verified:
            self._verified = True
            for worker, kept in (mine, *self._replicas):
                worker.send({"op": "perturb", "target": kept.handle.id, "name": name,
                             "fresh": fresh}, [dict(inputs), base, ks[:1], values[:1]])
            answers = [worker.receive() for worker, _ in (mine, *self._replicas)]
            outs = [_batch(answer, 1)[0] for answer in answers]  # (all read: channels in step)
            agree = [r for r, out in zip(self._replicas, outs[1:], strict=True)
                     if _same_output(outs[0], out)]
            if len(agree) < len(self._replicas):
                self._problem_notes.append(
                    "the layer gave different outputs in the pool's worker processes (it depends "
                    "on the process: the clock, the pid, an unseeded generator); it was "
                    "evaluated in one worker")
            self._replicas = agree
        return [mine, *self._replicas]

    def backward(self, dout: np.ndarray, cache: Any) -> Any:
        arg = cache.handle if isinstance(cache, Kept) else cache
        ok = call(self._worker, self._kept.handle, "backward", [dout, arg], phase="backward")
        if "0" in ok["changed"]:
            _copy_back(dout, ok["changed"]["0"])
        if ok["handles_changed"]:
            self._problem("backward modified the cache in place (a second call sees other "
                          "values)")
        return ok["result"]

    def parameters(self) -> dict[str, Any]:
        if "parameters" not in self._methods:
            return {}
        found = call(self._worker, self._kept.handle, "parameters", [], phase="parameters")
        return dict(found["result"])

    def _problem(self, text: str) -> None:
        if text not in self._problems:
            self._problems.append(text)

    def _remote_list(self, name: str) -> list[str]:
        values = self._attrs()["values"].get(name)
        return [str(v) for v in values] if isinstance(values, list) else []

    @property
    def problems(self) -> list[str]:
        return [*self._remote_list("problems"), *self._problems]

    @property
    def notes(self) -> list[str]:
        return [*self._remote_list("notes"), *self._problem_notes]

    def clear_problems(self) -> None:
        self._problems.clear()
        if "problems" in self._attrs()["values"]:
            call(self._worker, self._kept.handle, "problems.clear", [])


class RemoteFunction:
    """A function of the user's module, called in the worker; dict and array arguments it
    changes in place (``bn_param``'s running statistics) are changed here too."""

    def __init__(self, worker: Worker, kept: Kept, name: str) -> None:
        self._worker, self._kept, self.__name__ = worker, kept, name

    def __call__(self, *args: Any) -> Any:
        ok = call(self._worker, self._kept.handle, "", list(args), keep="",
                  phase=f"a call of {self.__name__}")
        for index, value in ok["changed"].items():
            _copy_back(args[int(index)], value, rebind=True)
        return ok["result"]


class Replicated:
    """A workshop per worker of a pool: answers from the first; every layer a method returns is
    built in each worker too, as a replica of the first's (:meth:`RemoteLayer.add_replica`)."""

    def __init__(self, shops: Sequence[Any]) -> None:
        self._shops = list(shops)

    def __getattr__(self, name: str) -> Any:
        first = getattr(self._shops[0], name)
        if not callable(first):
            return first

        def method(*args: Any, **kwargs: Any) -> Any:
            result = first(*args, **kwargs)
            mine = _layers(result)
            for shop in self._shops[1:] if mine else ():
                theirs = _layers(getattr(shop, name)(*args, **kwargs))
                for layer, other in zip(mine, theirs, strict=True):
                    layer.add_replica(other)
            return result

        return method


def _layers(result: Any) -> list[RemoteLayer]:
    items = result if isinstance(result, tuple) else (result,)
    return [r for r in items if isinstance(r, RemoteLayer)]


_PHASES = {"class_layer": "the construction of the layer", "model": "the parameters' setup",
           "pair_layer": "the adapter's setup", "function": "a lookup", "info": "a lookup",
           "framework_layer": "the construction of the layer"}


@contextlib.contextmanager
def _exits_named(phase: str) -> Iterator[None]:
    """What the user's code raised outside the engine's calls (the import, a constructor), named
    with its phase as the in-process doorway names it."""
    try:
        yield
    except SystemExit as exc:
        raise errors.LayerError(exit_message(exc, phase)) from None
    except RemoteError as exc:
        if exc.copy_failure:  # gradcheck's copy of the object failed: said as in process
            raise
        raise errors.LayerError(f"{phase} raised {type(exc).__name__}: {exc}") from exc


class RemoteWorkshop:
    """:class:`gradcheck.doorway.Workshop` in the worker: the same methods, the same data."""

    def __init__(self, worker: Worker, target: str, *, seed: int | None = None) -> None:
        self._worker = worker
        worker.phase = f"import of {target}"
        answer = worker.request({"op": "load", "target": target, "seed": seed})
        if "error" in answer:
            with _exits_named(worker.phase):
                raise_error(answer["error"])
        self._kept = Kept(worker, answer["ok"])

    def _call(self, method: str, args: list[Any], keep: str = "") -> Any:
        phase = _PHASES.get(method, method)
        with _exits_named(phase):
            return call(self._worker, self._kept.handle, method, args, keep=keep,
                        phase=phase)["result"]

    def info(self) -> dict[str, Any]:
        return dict(self._call("info", []))

    def function(self, name: str) -> RemoteFunction:
        return RemoteFunction(self._worker, Kept(self._worker, self._call(
            "function", [name], keep="result")), name)

    def pair_layer(self, op: str, forward: str, backward: str, config: Mapping[str, Any]
                   ) -> RemoteLayer:
        handle = self._call("pair_layer", [op, forward, backward, dict(config)], keep="result")
        return RemoteLayer(self._worker, Kept(self._worker, handle))

    def class_layer(self, name: str, kwargs: Mapping[str, Any], input_name: str,
                    options: Mapping[str, Any], example: np.ndarray) -> RemoteLayer:
        handle = self._call("class_layer", [name, dict(kwargs), input_name, dict(options),
                                            example], keep="result")
        return RemoteLayer(self._worker, Kept(self._worker, handle))

    def framework_layer(self, name: str, settings: Mapping[str, Any], data: Mapping[str, Any],
                        seed: int) -> RemoteLayer:
        handle = self._call("framework_layer", [name, dict(settings), dict(data), seed],
                            keep="result")
        return RemoteLayer(self._worker, Kept(self._worker, handle))

    def model(self, cost: str, grads: str, parameters: str) -> tuple[RemoteLayer, dict[str, Any]]:
        layer = self._call("model", [cost, grads, parameters])
        if not isinstance(layer, tuple) or len(layer) != 2 or not isinstance(layer[0], Handle):
            raise errors.LayerError("the layer's process sent a network gradcheck cannot read")
        return RemoteLayer(self._worker, Kept(self._worker, layer[0])), dict(layer[1])

    def _call_as(self, phase: str, method: str, args: list[Any], keep: str = "") -> Any:
        """``_call`` with the phase named for messages ("the network's setup raised ...")."""
        with _exits_named(phase):
            return call(self._worker, self._kept.handle, method, args, keep=keep,
                        phase=phase)["result"]

    def unimplemented(self, forward: str, backward: str, config: Mapping[str, Any],
                      inputs: Mapping[str, np.ndarray]) -> str:
        found = self._call_as(f"a first call of {forward}", "unimplemented",
                              [forward, backward, dict(config), dict(inputs)])
        return found if isinstance(found, str) else ""

    def networks(self) -> list[dict[str, str | None]]:
        found = self._call_as("a lookup", "networks", [])
        if not isinstance(found, list) or not all(isinstance(n, dict) for n in found):
            raise errors.LayerError("the layer's process sent networks gradcheck cannot read")
        return [{str(k): (None if v is None else str(v)) for k, v in n.items()} for n in found]

    def network(self, names: Mapping[str, str | None], values: Mapping[str, Any],
                seed: int) -> RemoteLayer:
        handle = self._call_as("the network's setup", "network", [dict(names), dict(values),
                                                                  seed], keep="result")
        return RemoteLayer(self._worker, Kept(self._worker, handle))
