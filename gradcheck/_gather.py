"""A test session's checks: in collection order, one row per property test, across processes.

The pytest plugin records every check of a session as an :class:`Entry` (the test that ran it,
that test's place in the collection, whether it is a hypothesis test). :func:`session_reports`
turns the entries into the reports a session's document lists:

- **order**: by the test's position in the collection, then in the order the checks ran, so a
  run split over pytest-xdist workers lists its checks exactly as the serial run does;
- **property tests collapse**: every example and shrink step of a hypothesis test calls the
  checker, but the document gets one row per test and layer, labelled with the number of
  examples. The row shown is a real check: the last failing example (hypothesis replays the
  shrunk example last), or, when all passed, the one whose error came closest to its budget.

:func:`encode` and :func:`decode` carry entries across pytest-xdist's worker boundary
(``config.workeroutput``) as plain JSON data: dataclasses become ``{"__dataclass__": name,
...fields}``, tuples ``{"__tuple__": [...]}`` and non-finite floats ``{"__float__": "nan"}``, so
a report comes back equal, field for field and type for type, to the one that was sent: nested
records too (a result's ``coverage``, its ``worst``, ``kinks`` and ``explained`` rows), each
rebuilt by keyword, as the keyword-only ``GradientResult`` and ``Coverage`` require. Only the
dataclasses of :mod:`gradcheck.results` are rebuilt; anything else is refused.

Nothing here imports NumPy: the plugin loads this module in sessions that may check nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gradcheck import results

__all__ = ["Entry", "decode", "encode", "session_reports"]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One finished check and the test that ran it."""

    position: int  # the test's index in the session's collection; -1 outside any test
    nodeid: str
    is_property: bool  # a hypothesis test: its examples collapse into one row
    report: results.CheckReport


# --- ordering and collapsing -------------------------------------------------------------------


def session_reports(entries: Iterable[Entry]) -> list[results.CheckReport]:
    """The reports of a session in collection order, one per property test and layer.

    Parameters
    ----------
    entries : iterable of Entry
        Every check of the session, from one process or merged from several, each process's
        entries in the order its checks ran.

    Returns
    -------
    list of CheckReport
        Sorted by the test's position (stable, so a test's checks keep their order); each
        hypothesis test's checks of one layer replaced by one, its ``case`` ending in
        ``(N examples...)``.

    Examples
    --------
    >>> rep = results.CheckReport("sine", (), {}, "float64", 0, "complex")
    >>> later, earlier = Entry(5, "t.py::b", False, rep), Entry(2, "t.py::a", False, rep)
    >>> [r.layer for r in session_reports([later, earlier])] == ["sine", "sine"]
    True
    """
    ordered = sorted(entries, key=lambda e: e.position)
    groups: dict[tuple[str, str] | int, list[Entry]] = {}
    for k, entry in enumerate(ordered):
        key = (entry.nodeid, entry.report.layer) if entry.is_property else k
        groups.setdefault(key, []).append(entry)
    return [_collapsed(group) if group[0].is_property else group[0].report
            for group in groups.values()]


def _collapsed(group: Sequence[Entry]) -> results.CheckReport:
    """One row for a property test's examples: a real check, labelled with the count."""
    reports = [e.report for e in group]
    failed = [r for r in reports if not r.passed]
    count = f"{len(reports)} example{'s' if len(reports) != 1 else ''}"
    if failed:
        shown = failed[-1]
        note = f"{count}, {len(failed)} failed; the last failure shown"
    else:
        shown = max(reports, key=_closeness)
        note = f"{count}, all passed"
    label = shown.case or group[0].nodeid
    return dataclasses.replace(shown, case=f"{label} ({note})")


def _closeness(report: results.CheckReport) -> float:
    """The largest error-to-budget ratio among a report's gradients (0 when none is finite)."""
    ratios = [r.max_abs_error / r.budget for r in report.results
              if r.budget > 0 and math.isfinite(r.max_abs_error / r.budget)]
    return max(ratios, default=0.0)


# --- the wire format -------------------------------------------------------------------------

_CLASSES = {name: cls for name, cls in vars(results).items()
            if isinstance(cls, type) and dataclasses.is_dataclass(cls)}


def encode(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """Entries as JSON data (no NaN, no tuples, no objects), for ``config.workeroutput``.

    Parameters
    ----------
    entries : iterable of Entry
        What one process recorded.

    Returns
    -------
    list of dict
        ``json.dumps(..., allow_nan=False)`` accepts it; :func:`decode` inverts it.

    Raises
    ------
    TypeError
        A report holds a value that is not a number, string, tuple, list, mapping or one of the
        dataclasses of :mod:`gradcheck.results`.

    Examples
    --------
    >>> rep = results.CheckReport("sine", (), {"x": (3,)}, "float64", 0, "complex")
    >>> encode([Entry(0, "t.py::a", False, rep)])[0]["report"]["shapes"]
    {'x': {'__tuple__': [3]}}
    """
    return [{"position": e.position, "nodeid": e.nodeid, "is_property": e.is_property,
             "report": _plain(e.report)} for e in entries]


def decode(data: Iterable[Mapping[str, Any]]) -> list[Entry]:
    """The entries :func:`encode` produced, rebuilt.

    Parameters
    ----------
    data : iterable of mapping
        As returned by :func:`encode` (possibly after a trip through JSON or execnet).

    Returns
    -------
    list of Entry
        Equal to the encoded entries, reports included.

    Raises
    ------
    ValueError
        ``data`` names a class that is not a dataclass of :mod:`gradcheck.results`.

    Examples
    --------
    >>> rep = results.CheckReport("sine", (), {"x": (3,)}, "float64", 0, "complex")
    >>> decode(encode([Entry(0, "t.py::a", False, rep)]))[0].report == rep
    True
    """
    return [Entry(int(d["position"]), str(d["nodeid"]), bool(d["is_property"]),
                  _rebuilt(d["report"])) for d in data]


def _plain(value: Any) -> Any:
    """JSON data of exact built-in types (execnet refuses subclasses such as numpy.float64)."""
    for kind in (bool, int, str):  # bool first: it is an int
        if isinstance(value, kind):
            return kind(value)
    if value is None:
        return None
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"__float__": repr(float(value))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                  if f.compare}  # compare=False: GradientResult.evidence, arrays kept locally
        return {"__dataclass__": type(value).__name__, **fields}
    if isinstance(value, tuple):
        return {"__tuple__": [_plain(v) for v in value]}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and type(value).__module__ == "numpy":  # a NumPy scalar
        return _plain(value.item())
    raise TypeError(f"cannot send a {type(value).__name__} across processes: {value!r}")


def _rebuilt(value: Any) -> Any:
    if isinstance(value, list):
        return [_rebuilt(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__float__" in value:
        return float(value["__float__"])
    if "__tuple__" in value:
        return tuple(_rebuilt(v) for v in value["__tuple__"])
    if "__dataclass__" in value:
        name = value["__dataclass__"]
        if name not in _CLASSES:
            raise ValueError(f"refusing to rebuild {name!r}: not a dataclass of gradcheck.results")
        fields = {k: _rebuilt(v) for k, v in value.items() if k != "__dataclass__"}
        return _CLASSES[name](**fields)
    return {k: _rebuilt(v) for k, v in value.items()}
