"""The trust boundary: the user's code runs in a supervised worker, the verdict stays here.

- :mod:`~gradcheck.worker.wire` what crosses: a JSON header and raw array buffers (through
  sealed shared memory on Linux), never a pickle from the worker; only plain values and
  boolean/integer/float/complex arrays, decoded strictly into arrays the parent owns; other
  objects stay in the worker behind handles.
- :mod:`~gradcheck.worker.child` the worker (``python -c ... gradcheck.worker.child``): imports
  the user's module (:func:`gradcheck.doorway.open_module`), builds layers with the same adapters
  as in process, and answers calls. It decides nothing.
- :mod:`~gradcheck.worker.supervisor` the parent's side: starts the worker in its own session
  with its memory limit, sends requests, turns an ended worker into
  :class:`~gradcheck.errors.WorkerLost`, and ends the worker's process group and every process it
  detached.
- :mod:`~gradcheck.worker.remote` stand-ins that speak the ``Layer`` protocol and the
  :class:`~gradcheck.doorway.Workshop` methods here, so the engine and the command line work on
  them exactly as on in-process objects.

What the parent trusts from the worker: nothing but the values of what the layer returned (and
which of its arguments it changed in place). A worker can choose those, or end the check without
a verdict (exit 3); it cannot choose the verdict, the exit code or the reports. Another executor
(a cluster scheduler) plugs in where :class:`~gradcheck.worker.supervisor.Worker` does: a
``send(header, values, queued=...)`` and ``receive()`` over its own channel (answers in the
order of the requests, at most two waiting), and a ``close()`` that ends everything the layer
started.
"""
