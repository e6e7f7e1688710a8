"""The worker from Python: a layer rebuilt in a supervised process, checked by this one.

``check_layer`` runs a layer in the caller's process: the caller wrote or trusts it. When the
layer is someone else's (a submission, a pull request), :func:`isolated` rebuilds it in a worker
(:mod:`gradcheck.worker`) from a pickle (a picklable layer, or a picklable function of no
arguments that builds one) or from a file, and yields a stand-in that ``check_layer`` checks
as usual: the layer's code then cannot reach the verdict, and the time and memory limits are
enforced from outside.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.worker.remote import Kept, RemoteLayer, RemoteWorkshop, raise_error
from gradcheck.worker.supervisor import Worker

__all__ = ["isolated"]


@contextlib.contextmanager
def isolated(layer: Any = None, *, file: str | None = None, forward: str | None = None,
             backward: str | None = None, config: Mapping[str, Any] | None = None,
             max_memory: int | None = None) -> Iterator[RemoteLayer]:
    """A layer rebuilt in a supervised worker process, for :func:`gradcheck.check_layer`.

    Parameters
    ----------
    layer : object, optional
        A picklable layer (``forward``/``backward``), or a picklable callable of no arguments
        returning one (``functools.partial(from_class, MyLayer(3), example=x)``). Functions and
        classes pickle by reference: the worker imports their module (with this process's
        ``sys.path``), so they must live in an importable module, not in ``__main__``.
    file, forward, backward : str, optional
        Instead of ``layer``: a course-style pair in a file, as ``gradcheck check`` finds it
        (``backward`` empty for a ``(loss, dx)`` loss).
    config : mapping, optional
        With ``file``: the forward's non-array arguments (``bn_param``).
    max_memory : int, optional
        Bytes the worker may use.

    Yields
    ------
    RemoteLayer
        The layer's stand-in; the worker and everything it started end when the block does.

    Raises
    ------
    InvalidArgument
        Neither or both of ``layer`` and ``file``; a ``layer`` that cannot be pickled.

    Examples
    --------
    >>> import numpy as np
    >>> from gradcheck import BatchNorm, check_layer
    >>> with isolated(BatchNorm(3)) as layer:
    ...     check_layer(layer, {"x": np.random.default_rng(0).normal(size=(5, 3))}).passed
    True
    """
    if (layer is None) == (file is None):
        raise InvalidArgument("`isolated` needs exactly one of `layer` (a picklable layer or "
                              "factory) and `file` (with `forward` and `backward`)")
    data = b""
    if layer is not None:
        try:
            data = pickle.dumps(layer)
        except Exception as exc:
            raise InvalidArgument(
                f"`layer` cannot be rebuilt in a worker: pickling it raised "
                f"{type(exc).__name__}: {exc}; define its class and functions in an importable "
                "module, or pass file=..., forward=..., backward=...") from exc
    worker = Worker(max_memory=max_memory)
    try:
        if file is not None:
            if not forward:
                raise InvalidArgument("`isolated(file=...)` needs `forward` (and `backward`, "
                                      "or an empty one for a loss)")
            shop = RemoteWorkshop(worker, file)
            yield shop.pair_layer(forward, forward, backward or "", dict(config or {}))
        else:
            yield _unpickled(worker, data)
    finally:
        worker.close()


def _unpickled(worker: Worker, data: bytes) -> RemoteLayer:
    worker.phase = "the unpickling of the layer"
    answer = worker.request({"op": "unpickle", "path": list(sys.path)},
                            np.frombuffer(data, dtype=np.uint8))
    if "error" in answer:
        raise_error(answer["error"])
    return RemoteLayer(worker, Kept(worker, answer["ok"]))
