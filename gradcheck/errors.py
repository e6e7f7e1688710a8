"""The exceptions users can catch (one base class, one subclass per kind of cause) and the one
warning category every gradcheck warning uses."""

from __future__ import annotations


class GradcheckError(Exception):
    """Base class of every error gradcheck raises on purpose."""


class InvalidArgument(GradcheckError, ValueError):
    """An argument has the wrong shape, dtype, value or type; the message names it."""


class LayerError(GradcheckError, RuntimeError):
    """The layer under test raised or returned something unusable.

    The message names the layer, the phase (``forward`` or ``backward``) and the input.
    """


class GradcheckWarning(UserWarning):
    """Every warning gradcheck issues: a non-float64 input, a constant ``dout``, a zero gradient.

    Filter it like any warning category, for example ``-W ignore::gradcheck.GradcheckWarning``
    or, in ``pyproject.toml``, ``filterwarnings = ["ignore::gradcheck.GradcheckWarning"]``. The
    check's report keeps every warning either way (``CheckReport.warnings``).
    """


class WorkerLost(BaseException):
    """The process running the layer ended without answering (a crash, ``os._exit``, a kill, the
    memory limit): there is no verdict. A ``BaseException``, so nothing that catches the layer's
    own errors (``except Exception``) can mistake it for one."""
