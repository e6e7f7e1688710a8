"""pytest plugin: gather every gradient check of a test session into one report.

Loaded by pytest through the ``pytest11`` entry point ``gradcheck``; nothing to configure::

    pytest --gradcheck-report=reports/pytest

collects every :func:`~gradcheck.check.check_layer`, ``assert_gradients`` and ``check_grads``
call of the session (through :mod:`gradcheck._collect`) and, at the end of the session, writes
``summary.txt``, ``summary.md``, ``summary.html`` and ``results.json`` into the directory with
:func:`gradcheck.report.write_reports`. A report without a ``case`` is labelled with the node id of
the test that ran it. When ``GITHUB_STEP_SUMMARY`` names a file, the Markdown summary is appended
to it too (GitHub Actions shows it on the run's page). Nothing is written when no check ran.

Without the option the plugin only adds the option and the :func:`check_gradients` fixture; the
report machinery is imported when the option is given. Under pytest-xdist each worker writes its
own checks to ``DIR/<worker id>``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

OPTION = "--gradcheck-report"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
_COLLECTOR = "gradcheck-collector"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcheck", "gradient checks (gradcheck)")
    group.addoption(
        OPTION, metavar="DIR", dest="gradcheck_report", default=None,
        help="write every gradient check of the session to DIR as summary.txt, summary.md, "
             f"summary.html and results.json (and the Markdown to ${STEP_SUMMARY_ENV} if set)",
    )


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("gradcheck_report")
    if not value:
        return
    out_dir = Path(config.invocation_params.dir, value)
    if out_dir.exists() and not out_dir.is_dir():
        raise pytest.UsageError(f"{OPTION} must name a directory, got the file {str(out_dir)!r}")
    worker = getattr(config, "workerinput", {}).get("workerid")
    config.pluginmanager.register(_Collector(out_dir / worker if worker else out_dir), _COLLECTOR)


class _Collector:
    """Listens for reports during the session and writes them at its end."""

    def __init__(self, out_dir: Path) -> None:
        from gradcheck import _collect

        self.out_dir = out_dir
        self.reports: list[Any] = []
        self.nodeid = ""
        self.notes: list[str] = []
        _collect.add_listener(self.add)

    def add(self, report: Any) -> None:
        if not report.case and self.nodeid:
            report = replace(report, case=self.nodeid)
        self.reports.append(report)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, Any]:
        self.nodeid = item.nodeid
        try:
            return (yield)
        finally:
            self.nodeid = ""

    def pytest_sessionfinish(self) -> None:
        if not self.reports:
            self.notes.append(f"no gradient checks ran; nothing written to {self.out_dir}")
            return
        from gradcheck.report import render, verdict_line, write_reports

        write_reports(self.reports, self.out_dir)
        self.notes.append(f"{verdict_line(self.reports)}; reports in {self.out_dir}")
        self.notes.extend(_append_step_summary(render(self.reports, "markdown")))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for note in self.notes:
            terminalreporter.write_line(f"gradcheck: {note}")

    def pytest_unconfigure(self) -> None:
        from gradcheck import _collect

        _collect.remove_listener(self.add)


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
def check_gradients() -> Callable[..., Any]:
    """:func:`gradcheck.check.assert_gradients`: ``check_gradients(layer, inputs, **options)``.

    Returns the report when every gradient passes and raises ``AssertionError`` with a short
    table otherwise; with ``--gradcheck-report`` the check also lands in the session's report.
    """
    from gradcheck.check import assert_gradients

    return assert_gradients
