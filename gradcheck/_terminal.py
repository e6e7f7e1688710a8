"""The terminal: width, colour, progress, and a quiet exit when the reader goes away.

Colour only on a terminal and never when ``NO_COLOR`` is set to anything non-empty
(https://no-color.org) or ``TERM=dumb``; ``--color always|never`` overrides. Progress is drawn on
one line of a terminal (``\\r``), only for work that lasts longer than :data:`PROGRESS_DELAY`
seconds, at most every :data:`PROGRESS_INTERVAL` seconds, and erased when the work ends: nothing
of it reaches a pipe, a file or a CI log.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

from gradcheck import _collect, kinds

WIDTH = 100  # the text report fits this many columns unless --wide
PROGRESS_DELAY = 1.0
PROGRESS_INTERVAL = 0.1
_STYLES = {"pass": "32", "fail": "1;31", "warn": "33", "bold": "1", "dim": "2"}
# Evaluations per element each method needs, roughly: for the progress estimate only.
_EVALS_PER_ELEMENT = {kinds.COMPLEX: 1.0, kinds.CENTRAL: 4.0, kinds.RICHARDSON: 24.0,
                      kinds.AUTO: 24.0}


def is_terminal(stream: Any) -> bool:
    """A stream attached to a terminal that can move its cursor."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty()) and os.environ.get("TERM", "") != "dumb"
    except ValueError:  # closed
        return False


def use_color(stream: Any, mode: str = "auto") -> bool:
    """Whether to colour ``stream``: ``always``, ``never``, or ``auto`` (a terminal, and
    ``NO_COLOR`` unset or empty)."""
    if mode != "auto":
        return mode == "always"
    return not os.environ.get("NO_COLOR") and is_terminal(stream)


def paint(text: str, style: str, enabled: bool) -> str:
    """``text`` in an ANSI style (``pass``, ``fail``, ``warn``, ``bold``, ``dim``) if enabled."""
    return f"\033[{_STYLES[style]}m{text}\033[0m" if enabled and text else text


def quiet_sigpipe() -> None:
    """Die quietly like other Unix tools when a pipe's reader leaves (``gradcheck ... | head``).

    Python turns SIGPIPE into ``BrokenPipeError`` and prints a traceback at exit; restoring the
    default action ends the process silently instead.
    """
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"


class Progress:
    """One line of progress on a terminal: what is done, what is left, the time to go.

    Does nothing unless ``stream`` is a terminal; draws nothing during the first
    :data:`PROGRESS_DELAY` seconds, so quick work leaves no trace.

    Examples
    --------
    >>> import io
    >>> p = Progress(io.StringIO(), total=3, unit="checks")
    >>> p.update(1, "first"); p.close()
    >>> p.enabled
    False
    """

    def __init__(self, stream: IO[str] | None = None, *, total: float, unit: str,
                 clock: Callable[[], float] = time.monotonic, delay: float = PROGRESS_DELAY,
                 force: bool = False) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = force or is_terminal(self.stream)
        self.total, self.unit, self.clock, self.delay = total, unit, clock, delay
        self.start = clock()
        self._last = -1.0
        self._drawn = 0

    def line(self, done: float, label: str) -> str:
        """The text drawn for ``done`` of ``total``."""
        elapsed = self.clock() - self.start
        frac = min(max(done / self.total, 0.0), 1.0) if self.total else 0.0
        left = f", about {_duration(elapsed * (1 - frac) / frac)} left" if frac > 0.02 else ""
        count = (f"{int(done)} of {int(self.total)} {self.unit}" if self.unit
                 else f"{frac:.0%}")
        text = f"gradcheck: {count} ({frac:.0%}), {_duration(elapsed)} elapsed{left}"
        return f"{text}: {label}" if label else text

    def update(self, done: float, label: str = "") -> None:
        if not self.enabled:
            return
        now = self.clock()
        if now - self.start < self.delay or now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        text = self.line(done, label)[:99]
        self.stream.write("\r" + text.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(text)

    def close(self) -> None:
        """Erase the line (nothing is left behind in scrollback)."""
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
        self._drawn = 0


@contextmanager
def checks(total: int, stream: IO[str] | None = None, *, unit: str = "checks") -> Iterator[
        Progress]:
    """Progress over whole checks (``gradcheck run``, property mode): every finished
    :func:`~gradcheck.check.check_layer` counts one."""
    progress = Progress(stream, total=total, unit=unit)
    count = [0]

    def seen(report: Any) -> None:
        count[0] += 1
        label = f"{report.layer} {report.case}".strip()
        progress.update(min(count[0], total), f"{label}: {report.verdict}")

    with _collect.listening(seen):
        try:
            yield progress
        finally:
            progress.close()


def _perturbed(inputs: Mapping[str, Any]) -> str | None:
    """The input the numerical side is moving: the only writeable array among read-only ones
    (the checker shares the others read-only); ``None`` when that cannot be told."""
    writeable = [k for k, v in inputs.items() if getattr(getattr(v, "flags", None), "writeable",
                                                         True)]
    return writeable[0] if len(writeable) == 1 and len(inputs) > 1 else None


class _Counter:
    """Counts forward calls and tells which gradient's numerical side is running."""

    def __init__(self, sizes: Mapping[str, int], per_element: float, progress: Progress) -> None:
        self.order = list(sizes)
        self.offsets: dict[str, float] = {}
        start = 0.0
        for name in self.order:
            self.offsets[name] = start
            start += sizes[name] * per_element
        self.progress, self.calls, self.name, self.base = progress, 0, self.order[0], 0

    def __call__(self, inputs: Mapping[str, Any]) -> None:
        self.many(_perturbed(inputs), 1)

    def many(self, name: str | None, calls: int) -> None:
        """``calls`` evaluations moving input ``name`` (a batch of a numerical stage)."""
        self.calls += calls
        if name in self.offsets and name != self.name:
            self.name, self.base = name, self.calls
        done = self.offsets[self.name] + self.calls - self.base
        k = self.order.index(self.name) + 1
        self.progress.update(min(done, 0.99 * self.progress.total),
                             f"d{self.name} ({k} of {len(self.order)} gradients), "
                             f"{self.calls} evaluations")


@contextmanager
def one_check(layer: Any, sizes: Mapping[str, int], method: str,
              stream: IO[str] | None = None) -> Iterator[Progress]:
    """Progress within one check, counted in the layer's forward calls.

    The forward of the adapter ``layer`` is wrapped for the duration (and restored): each
    call counts, and the input being perturbed tells which gradient is being estimated. What is
    left is estimated from :data:`_EVALS_PER_ELEMENT` calls per element.
    """
    per_element = _EVALS_PER_ELEMENT.get(method, 24.0)
    progress = Progress(stream, total=sum(sizes.values()) * per_element, unit="")
    if not progress.enabled or not sizes or "forward" in vars(layer):
        yield progress
        return
    count, inner = _Counter(sizes, per_element, progress), layer.forward

    def forward(inputs: Mapping[str, Any]) -> Any:
        count(inputs)
        return inner(inputs)

    layer.forward = forward
    batches = hasattr(layer, "progress")  # a layer that evaluates a stage's points itself (in
    if batches:  # a worker) reports each part it evaluated: progress(name, calls)
        layer.progress = count.many
    try:
        yield progress
    finally:
        del layer.forward
        if batches:
            layer.progress = None
        progress.close()
