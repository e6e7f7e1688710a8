"""pytest plugin: gather every gradient check of a test session into one report.

Loaded by pytest through the ``pytest11`` entry point ``gradcheck``; nothing to configure
(``--gradcheck-isolate`` makes the :func:`check_gradients` fixture rebuild each layer in a
supervised worker)::

    pytest --gradcheck-report=reports/pytest

collects every :func:`~gradcheck.check.check_layer`, ``assert_gradients`` and ``check_grads``
call of the session (through :mod:`gradcheck._collect`) and, at the end of the session, writes
``summary.txt``, ``summary.md``, ``summary.html`` and ``results.json`` into the directory with
:func:`gradcheck.report.write_reports`, replacing what an earlier run left there. A report without
a ``case`` is labelled with the node id of the test that ran it; the checks are listed in
collection order, and a hypothesis test's examples collapse into one row that says how many ran
(:func:`gradcheck._gather.session_reports`). When ``GITHUB_STEP_SUMMARY`` names a file, the
Markdown summary is appended to it too, once per session (GitHub Actions shows it on the run's
page). When no check ran, nothing is written and the files of an earlier run are removed, so that
no stale report passes for this session's.

**pytest-xdist.** Each worker sends its checks to the controller as plain data at the end of its
session (``config.workeroutput``, read in ``pytest_testnodedown``); the controller merges them
and writes the one report and the one step summary, equal to what the serial run writes. A
worker that goes down without sending its checks is named in the terminal summary.

**Cost.** Loaded in every pytest session, so it imports nothing heavy: without the option it only
adds the option and the :func:`check_gradients` fixture, and NumPy, SciPy and the report machinery
are imported when a check or a report needs them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gradcheck import kinds

OPTION = "--gradcheck-report"
ISOLATE_OPTION = "--gradcheck-isolate"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
WORKER_OUTPUT_KEY = "gradcheck_entries"  # our key in pytest-xdist's ``workeroutput``
_COLLECTOR = "gradcheck-collector"
_WORKER_DIR = re.compile(r"gw\d+")  # where earlier versions wrote each xdist worker's checks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcheck", "gradient checks (gradcheck)")
    group.addoption(
        OPTION, metavar="DIR", dest="gradcheck_report", default=None,
        help="write every gradient check of the session to DIR as summary.txt, summary.md, "
             f"summary.html and results.json (and the Markdown to ${STEP_SUMMARY_ENV} if set)",
    )
    group.addoption(
        ISOLATE_OPTION, action="store_true", dest="gradcheck_isolate", default=False,
        help="the check_gradients fixture rebuilds each layer in a supervised worker process "
             "(gradcheck.isolated): the layer's code cannot reach the verdict",
    )


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("gradcheck_report")
    if not value:
        return
    out_dir = Path(config.invocation_params.dir, value)
    if out_dir.exists() and not out_dir.is_dir():
        raise pytest.UsageError(f"{OPTION} must name a directory, got the file {str(out_dir)!r}")
    worker_output = getattr(config, "workeroutput", None)  # set on pytest-xdist workers only
    config.pluginmanager.register(_Collector(out_dir, worker_output), _COLLECTOR)


class _Collector:
    """Listens for reports during the session; writes them, or sends them to the controller.

    ``worker_output`` is pytest-xdist's ``config.workeroutput`` on a worker (the entries go
    there), ``None`` in a serial session or on the controller (the entries are written).
    """

    def __init__(self, out_dir: Path, worker_output: dict[str, Any] | None = None) -> None:
        from gradcheck import _collect

        self.out_dir = out_dir
        self.worker_output = worker_output
        self.entries: list[Any] = []  # gradcheck._gather.Entry
        self.positions: dict[str, int] = {}
        self.test: tuple[str, int, bool] | None = None  # node id, position, hypothesis test
        self.notes: list[str] = []
        _collect.add_listener(self.add)

    @property
    def reports(self) -> list[Any]:
        """Every report recorded in this process so far, in the order the checks ran."""
        return [entry.report for entry in self.entries]

    def add(self, report: Any) -> None:
        from gradcheck._gather import Entry

        nodeid, position, is_property = self.test or ("", -1, False)
        if not report.case and nodeid:
            report = replace(report, case=nodeid)
        # a session keeps every report: not the arrays and the objective each result's
        # evidence holds (for diagnosis and pictures, already made)
        light = replace(report, results=tuple(replace(r, evidence=None) for r in report.results))
        self.entries.append(Entry(position, nodeid, is_property, light))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.positions = {item.nodeid: k for k, item in enumerate(session.items)}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, Any]:
        is_property = bool(getattr(getattr(item, "obj", None), "is_hypothesis_test", False))
        self.test = (item.nodeid, self.positions.get(item.nodeid, len(self.positions)),
                     is_property)
        try:
            return (yield)
        finally:
            self.test = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """On the pytest-xdist controller: take a finished worker's entries."""
        from gradcheck._gather import decode

        sent = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if sent is not None:
            self.entries.extend(decode(sent))
        else:
            worker = getattr(node, "gateway", None)
            why = f" ({error})" if error else ""
            self.notes.append(f"worker {getattr(worker, 'id', '?')} went down{why} without "
                              "sending its checks; the report lacks them")

    def pytest_sessionfinish(self) -> None:
        if self.worker_output is not None:
            from gradcheck._gather import encode

            self.worker_output[WORKER_OUTPUT_KEY] = encode(self.entries)
            return
        if not self.entries:
            removed = _remove_earlier_reports(self.out_dir, top_level=True)
            stale = f" (removed {removed} files of an earlier run)" if removed else ""
            self.notes.append(f"no gradient checks ran; nothing written to {self.out_dir}{stale}")
            return
        self._write()

    def _write(self) -> None:
        from gradcheck._gather import session_reports
        from gradcheck.report import render, verdict_line, write_reports

        reports = session_reports(self.entries)
        _remove_earlier_reports(self.out_dir, top_level=False)
        write_reports(reports, self.out_dir)
        self.notes.insert(0, f"{verdict_line(reports)}; reports in {self.out_dir}")
        self.notes.extend(_append_step_summary(render(reports, kinds.MARKDOWN)))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for note in self.notes:
            terminalreporter.write_line(f"gradcheck: {note}")

    def pytest_unconfigure(self) -> None:
        from gradcheck import _collect

        _collect.remove_listener(self.add)


def _remove_earlier_reports(out_dir: Path, *, top_level: bool) -> int:
    """Delete report files an earlier run left; returns how many.

    Only files named like ours go: the top-level ones when this session writes none
    (``top_level``), and those in per-worker folders ``gw0/``, ``gw1/``... that earlier versions
    wrote under pytest-xdist (each folder removed when that leaves it empty).
    """
    if not out_dir.is_dir():
        return 0
    from gradcheck.report import OUTPUT_FILES

    folders = [d for d in out_dir.iterdir() if d.is_dir() and _WORKER_DIR.fullmatch(d.name)]
    files = [d / name for d in folders for name in OUTPUT_FILES]
    files += [out_dir / name for name in OUTPUT_FILES] if top_level else []
    removed = [path for path in files if path.is_file()]
    for path in removed:
        path.unlink()
    for folder in folders:
        if not any(folder.iterdir()):
            folder.rmdir()
    return len(removed)


def _append_step_summary(markdown: str) -> list[str]:
    """Append to the file ``GITHUB_STEP_SUMMARY`` names; returns what to tell the user."""
    target = os.environ.get(STEP_SUMMARY_ENV)
    if not target:
        return []
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
    except OSError as exc:
        return [f"could not append to ${STEP_SUMMARY_ENV} ({target}): {exc}"]
    return [f"summary appended to ${STEP_SUMMARY_ENV}"]


@pytest.fixture
def check_gradients(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """:func:`gradcheck.check.assert_gradients`: ``check_gradients(layer, inputs, **options)``.

    Returns the report when every gradient passes and raises ``AssertionError`` with a short
    table otherwise (its first line names the failing gradients); with ``--gradcheck-report``
    the check also lands in the session's report. With ``--gradcheck-isolate`` the layer is
    rebuilt in a supervised worker (:func:`gradcheck.isolated`; it must pickle).
    """
    __tracebackhide__ = True
    from gradcheck.check import assert_gradients

    if not request.config.getoption("gradcheck_isolate"):
        return assert_gradients

    def isolated_check(layer: Any, inputs: Any, **options: Any) -> Any:
        __tracebackhide__ = True
        from gradcheck.worker.isolate import isolated

        with isolated(layer) as remote:
            return assert_gradients(remote, inputs, **options)

    return isolated_check
