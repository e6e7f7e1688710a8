"""The parent's side of the boundary: start the worker, talk to it, end it and all it started.

The worker is a child process in its own session (so its own process group): ending it is one
``SIGKILL`` to the group, which no signal handler, ignored alarm or loop in C can refuse. On
Linux the parent also becomes a *subreaper* (``PR_SET_CHILD_SUBREAPER``), so processes the layer
detached (``setsid``, a double fork) are re-parented to it when their parents die, and are found
and ended too. The time limit stays with the parent (:func:`gradcheck._guard.time_limit`): its
alarm interrupts the wait for an answer, and the worker is then killed.

A worker that ends while the parent waits (``os._exit``, a segfault in a C extension, a kill, the
memory limit) raises :class:`WorkerLost`, a ``BaseException`` the engine cannot mistake for the
layer raising, with what the operating system reported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

from gradcheck.errors import WorkerLost
from gradcheck.worker.wire import ARENA_BYTES, Arena, Channel, WireError, decode, encode

__all__ = ["Worker", "WorkerLost"]

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LIVE: set[int] = set()  # pids of this process's workers (a pool's others are not orphans)


def _guard_parent() -> None:
    """Linux: orphans of the worker's descendants become our children (a subreaper), and this
    process is not dumpable, so a process of the same (unprivileged) user cannot ptrace it or
    open its ``/proc/<pid>/mem`` or ``/proc/<pid>/fd``. Elsewhere, or as root, less holds."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0


def _parents() -> dict[int, int]:
    """Every process's parent pid (from /proc; empty where there is none)."""
    found: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
                found[int(entry.name)] = int(stat[stat.rindex(b")") + 2:].split()[1])
    return found


def _children() -> set[int]:
    """The pids whose parent is this process."""
    me = os.getpid()
    return {pid for pid, parent in _parents().items() if parent == me}


def _subtrees(roots: set[int]) -> set[int]:
    """``roots`` and every process descending from one of them."""
    below: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        below.setdefault(parent, []).append(pid)
    found, todo = set(roots), list(roots)
    while todo:
        for child in below.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def describe_end(returncode: int | None) -> str:
    """What the operating system said about the worker's end, in words."""
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = {"SIGSEGV": " (a crash in compiled code)", "SIGKILL": " (killed: out of memory, "
                "--max-memory, or another process)", "SIGABRT": " (aborted)"}.get(name, "")
        return f"was killed by {name}{hint}"
    return f"exited with status {returncode} (os._exit or a crash while exiting)"


class Worker:
    """One worker process: requests in, answers out; :meth:`close` ends it and its descendants.

    Parameters
    ----------
    max_memory : int, optional
        Bytes of address space the worker may use (``RLIMIT_AS``, set before any user code).
    """

    def __init__(self, *, max_memory: int | None = None) -> None:
        _guard_parent()
        self._before = _children()
        p_read, c_write = os.pipe()
        c_read, p_write = os.pipe()
        size = ARENA_BYTES if not max_memory else min(ARENA_BYTES, max_memory // 32)
        segments = Arena.segments(size) if size >= 1 << 20 else None
        shared = ",".join(map(str, segments or ()))  # to the worker (2), from it (2)
        code = (f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
                "from gradcheck.worker.child import main; sys.exit(main())")
        argv = [sys.executable, "-c", code, str(c_read), str(c_write), str(max_memory or 0),
                shared, str(size)]
        try:
            self._proc = subprocess.Popen(
                argv, pass_fds=(c_read, c_write, *(segments or ())), stdin=subprocess.DEVNULL,
                stdout=_stderr_fd(), stderr=_stderr_fd(), start_new_session=True,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
            arena = Arena(segments[:2], segments[2:], size) if segments else None
        finally:
            for fd in (c_read, c_write, *(segments or ())):
                os.close(fd)
        self._read, self._write = p_read, p_write
        self._channel = Channel(p_read, p_write, max_bytes=max_memory or None, arena=arena)
        self._release: list[int] = []
        self._lost: str | None = None
        self._sent = self._answered = 0  # requests sent, answers read (two apart at most)
        self.phase = "start"
        _LIVE.add(self._proc.pid)

    @property
    def pid(self) -> int:
        """The worker's process id (and its process group's)."""
        return self._proc.pid

    @property
    def answered(self) -> int:
        """How many answers were read (request ``n`` is answered once this is above ``n``)."""
        return self._answered

    @property
    def counts(self) -> dict[str, int]:
        """Messages and bytes (through the pipe, through shared memory) sent and received."""
        return self._channel.counts

    @property
    def lost(self) -> str | None:
        """Why the worker is gone, once it is (``None`` while it answers)."""
        return self._lost

    def release(self, key: int) -> None:
        """Forget a handle at the next request (called by finalizers; never blocks)."""
        self._release.append(key)

    def request(self, header: dict[str, Any], values: Any = None) -> Any:
        """Send ``header`` (with ``values`` encoded as its ``args``), return the decoded answer.

        Raises :class:`WorkerLost` when the worker is gone; an error the user's code raised
        comes back as ``{"error": ...}`` for the caller to raise.
        """
        self.send(header, values)
        return self.receive()

    def send(self, header: dict[str, Any], values: Any = None, *, queued: bool = False) -> int:
        """The first half of :meth:`request`; returns the request's number. ``queued``: behind
        the caller's own unanswered request (a batch keeps two queued: the shared arena has two
        segments); otherwise answers nobody will read (a batch stopped early) are read first."""
        if not queued:
            self.drain()
        if self._lost is not None:
            raise WorkerLost(self._lost)
        if self._sent - self._answered >= 2:
            raise RuntimeError("a third request to a worker before the first was answered")
        tree, buffers = encode(values)
        header = {**header, "args": tree, "release": self._release[:]}
        self._release.clear()
        try:
            self._channel.send(header, buffers)
        except WireError as exc:
            self._lost = self._ended(str(exc))
            raise WorkerLost(self._lost) from None
        self._sent += 1
        return self._sent - 1

    def receive(self) -> Any:
        """The second half of :meth:`request`: the answer to the oldest unanswered request."""
        if self._lost is not None:
            raise WorkerLost(self._lost)
        try:
            answer, data = self._channel.receive()
            self._answered += 1
            return decode(answer, data)  # copies out of the arena before the next send
        except WireError as exc:
            self._lost = self._ended(str(exc))
            raise WorkerLost(self._lost) from None

    def drain(self, number: int | None = None) -> None:
        """Read and drop the answers up to request ``number`` (all, without it)."""
        last = self._sent - 1 if number is None else number
        with contextlib.suppress(WorkerLost):
            while self._answered <= last and self._lost is None:
                self.receive()

    def _ended(self, problem: str) -> str:
        try:
            code = self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        what = describe_end(code)
        detail = "" if problem == "end of file" else f" ({problem})"
        return f"the layer's process {what} during {self.phase}{detail}: no verdict"

    def close(self) -> None:
        """End the worker, its process group, and every process it left behind."""
        _LIVE.discard(self._proc.pid)
        self._channel.close()
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self._proc.wait(timeout=5.0)
        self._lost = self._lost or "the worker was closed"
        _end_orphans(self._before)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _end_orphans(before: set[int]) -> None:
    """End every process the worker left behind: those re-parented to us (the subreaper) and all
    their descendants, however deep. Each is stopped first (``SIGSTOP``: a stopped process
    cannot fork), until a scan finds no process not yet stopped; then all are killed and the
    zombies re-parented to us are reaped."""
    deadline = time.monotonic() + _ORPHAN_SECONDS
    while time.monotonic() < deadline:
        stopped: set[int] = set()
        while time.monotonic() < deadline:
            tree = _subtrees(_children() - before - _LIVE) - stopped
            if not tree:
                break
            for pid in tree:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGSTOP)
            stopped |= tree
        if not stopped:
            return
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in _children() - before - _LIVE:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)


_ORPHAN_SECONDS = 10.0  # a fork bomb faster than the scans is stopped after this long


def _stderr_fd() -> int:
    """Where the layer's prints go: the parent's stderr, never the report's stdout."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stderr (pytest's capture)
        return 2
