"""Running the user's code without losing control: its stdout, its exits, its hangs.

The CLI runs code it did not write. Three things that code can do would otherwise decide the
outcome for us: print to stdout (which carries the report, e.g. ``--format json``), call
``sys.exit`` (which would end the process with the layer's code, 0 included, without a verdict),
and never return. :func:`user_code` sends stdout to stderr and turns ``sys.exit`` into a
:class:`~gradcheck.errors.LayerError` naming the phase; :func:`time_limit` raises
:class:`CheckTimeout` when a check overruns.

The time limit uses ``signal.setitimer`` and ``SIGALRM``, so it works in the main thread on POSIX
only; elsewhere there is no limit (with a warning). The alarm raises :class:`Overrun`, a
``BaseException`` (a layer's ``except Exception`` does not swallow it), fires again every
:data:`REFIRE_SECONDS` until the limit is lifted, and :func:`raise_if_expired` stops the check at
its next call into the layer; :func:`time_limit` turns it into :class:`CheckTimeout`.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any, TextIO

from gradcheck.errors import InvalidArgument, LayerError

__all__ = [
    "REFIRE_SECONDS",
    "CheckTimeout",
    "Overrun",
    "Terminated",
    "exit_message",
    "no_bytecode",
    "protected",
    "raise_if_expired",
    "stdout_to_stderr",
    "terminable",
    "time_limit",
    "timeout_message",
    "user_code",
    "validate_timeout",
]

REFIRE_SECONDS = 1.0
_expired: list[bool] = []  # one entry per alarm of the limit in force that has fired


class CheckTimeout(LayerError):
    """The check did not finish within its time limit (the layer may loop forever)."""


class Terminated(BaseException):
    """gradcheck was asked to stop (``SIGTERM``, ``SIGHUP``): unwinds so that the worker and
    everything it started are ended, then exits ``128 + signal``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def terminable() -> Iterator[None]:
    """While the block runs, ``SIGTERM`` and ``SIGHUP`` raise :class:`Terminated` (main thread
    only; elsewhere the signals keep their handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
              if s is not None]
    saved = {s: signal.getsignal(s) for s in wanted}

    def stop(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    for s in wanted:
        signal.signal(s, stop)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


class Overrun(BaseException):
    """The time limit ran out. A ``BaseException``, so a layer's ``except Exception`` cannot
    swallow it; :func:`time_limit` turns it into :class:`CheckTimeout` at its boundary."""

    phase = ""


def exit_message(exc: SystemExit, phase: str) -> str:
    """``the layer called sys.exit(0) during forward (analytic pass)``, and what that means."""
    return (f"the layer called sys.exit({exc.code!r}) during {phase}; a layer must return or "
            "raise, never exit: the check was stopped without a verdict")


@contextlib.contextmanager
def user_code(phase: str) -> Iterator[None]:
    """Run the user's code: its stdout goes to stderr, ``sys.exit`` becomes a LayerError.

    Examples
    --------
    >>> import sys
    >>> try:
    ...     with user_code("import of my_layers.py"):
    ...         sys.exit(0)
    ... except LayerError as exc:
    ...     print(str(exc).split(";")[0])
    the layer called sys.exit(0) during import of my_layers.py
    """
    with stdout_to_stderr():
        try:
            yield
        except SystemExit as exc:
            raise LayerError(exit_message(exc, phase)) from None


@contextlib.contextmanager
def no_bytecode() -> Iterator[None]:
    """Import without writing ``__pycache__`` next to the user's files (nothing outside --out)."""
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = before


def _stdout_fd() -> int | None:
    """1 when ``sys.stdout`` writes to file descriptor 1 (then C code's prints are moved too)."""
    try:
        return 1 if sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2 else None
    except (AttributeError, OSError, ValueError):  # replaced streams (pytest's capsys, StringIO)
        return None


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[TextIO]:
    """Send ``print`` (and, when stdout is file descriptor 1, writes to it) to stderr.

    Yields the stream that still reaches the real stdout, for the report itself.
    """
    original = sys.stdout
    fd = _stdout_fd()
    original.flush()
    saved = os.dup(1) if fd is not None else None
    report: TextIO = original
    if saved is not None:
        os.dup2(2, 1)
        report = open(os.dup(saved), "w", encoding=original.encoding,
                      errors=original.errors)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield report
    finally:
        if saved is not None:
            report.close()
            sys.stderr.flush()
            os.dup2(saved, 1)
            os.close(saved)


def validate_timeout(timeout: Any, name: str = "timeout") -> float | None:
    """``None`` or 0 mean no limit; otherwise a finite positive number of seconds.

    Examples
    --------
    >>> validate_timeout(2), validate_timeout(0), validate_timeout(None)
    (2.0, None, None)
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidArgument(f"`{name}` must be a number of seconds (0 for none), got {timeout!r}")
    if not math.isfinite(timeout) or not 0 <= timeout <= 1e7:
        raise InvalidArgument(
            f"`{name}` must be a finite number of seconds from 0 (none) to 1e7, got {timeout!r}"
        )
    return float(timeout) or None


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def raise_if_expired() -> None:
    """Stop the check again if the time limit in force has already run out (it was swallowed)."""
    if _expired:
        raise Overrun()


def timeout_message(seconds: float, phase: str, hint: str) -> str:
    """What a user reads when the check overran its limit."""
    where = f"it was stopped in the layer's {phase}" if phase else "it was stopped"
    return (f"the check did not finish within {seconds:g} s; {where}, which may loop forever or "
            f"be very slow; {hint}")


@contextlib.contextmanager
def time_limit(seconds: float | None, *, hint: str = "pass a larger `timeout`") -> Iterator[None]:
    """Raise :class:`CheckTimeout` in the block if it runs longer than ``seconds`` (None: no limit).

    Examples
    --------
    >>> import time
    >>> try:
    ...     with time_limit(0.05, hint="raise --timeout"):
    ...         time.sleep(5)
    ... except CheckTimeout as exc:
    ...     print(str(exc).split(";")[0])
    the check did not finish within 0.05 s
    """
    if seconds is None or not _can_alarm():
        if seconds is not None:
            warnings.warn(f"a time limit ({seconds:g} s) needs the main thread on POSIX; "
                          "running without one", UserWarning, stacklevel=3)
        yield
        return
    outer, _ = signal.getitimer(signal.ITIMER_REAL)
    if 0 < outer <= seconds:  # a limit already in force ends first: it stays in charge
        yield
        return
    try:
        with _alarm(seconds, outer):
            yield
    except Overrun as exc:
        raise CheckTimeout(timeout_message(seconds, exc.phase, hint)) from None


def _on_alarm(signum: int, frame: Any) -> None:
    _expired.append(True)
    raise Overrun()


@contextlib.contextmanager
def _alarm(seconds: float, outer: float) -> Iterator[None]:
    """SIGALRM after ``seconds`` and every REFIRE_SECONDS after that; ``outer`` re-armed after."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    start, depth = time.monotonic(), len(_expired)
    signal.setitimer(signal.ITIMER_REAL, seconds, REFIRE_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        del _expired[depth:]
        if outer:  # give the enclosing limit back what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))


@contextlib.contextmanager
def protected() -> Iterator[None]:
    """Hold Ctrl-C and the time limit's alarm back until the block (restoring state) is done."""
    if not hasattr(signal, "pthread_sigmask") or not _can_alarm():
        yield
        return
    held = {signal.SIGINT, signal.SIGALRM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
