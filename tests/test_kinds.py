"""The vocabularies: defined once in gradcheck.kinds, and every other spelling agrees with them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from gradcheck import cli, kinds, numeric, report, results
from gradcheck._engine import call

ROOT = Path(__file__).resolve().parents[1]


def test_kinds_imports_nothing_from_gradcheck():
    tree = ast.parse((ROOT / "gradcheck" / "kinds.py").read_text(encoding="utf-8"))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert [m for m in imported if m.startswith("gradcheck")] == []


def test_results_re_exports_the_statuses():
    assert results.STATUSES is kinds.STATUSES and results.PASSING is kinds.PASSING


@pytest.mark.parametrize(("where", "vocabulary"), [
    pytest.param(report.FORMATS, kinds.FORMATS, id="report.FORMATS"),
    pytest.param(tuple(report._RENDERERS), kinds.FORMATS, id="report-renderers"),
    pytest.param(tuple(report.OUTPUT_FILES.values()), kinds.FORMATS, id="report.OUTPUT_FILES"),
    # the engine's names for them are the same objects
    pytest.param(numeric.METHODS, kinds.METHODS, id="numeric.METHODS"),
    pytest.param(call.MODES, kinds.MODES, id="call.MODES"),
])
def test_every_copy_agrees_with_kinds(where, vocabulary):
    assert tuple(where) == vocabulary


@pytest.mark.parametrize(("argv", "vocabulary"), [
    pytest.param(["check", "x.py", "--method", "bogus"], kinds.METHODS, id="method"),
    pytest.param(["check", "x.py", "--mode", "bogus"], kinds.MODES, id="mode"),
    pytest.param(["run", "--format", "bogus"], kinds.FORMATS, id="format"),
])
def test_the_command_offers_exactly_the_vocabulary(argv, vocabulary, capsys):
    assert cli.main(argv) == kinds.ExitCode.USAGE
    offered = re.search(r"choose from (.*)\)", capsys.readouterr().err)
    assert offered is not None
    assert tuple(re.findall(r"[\w]+", offered.group(1))) == vocabulary


def test_statuses_are_distinct_and_verdicts_are_statuses():
    assert len(set(kinds.STATUSES)) == len(kinds.STATUSES)
    assert kinds.PASSING < set(kinds.STATUSES)
    assert set(kinds.VERDICTS) <= set(kinds.STATUSES) and kinds.EMPTY not in kinds.STATUSES
    assert kinds.AUTO in kinds.METHODS and kinds.AUTO in kinds.MODES


def test_exit_codes_are_the_readme_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("**Exit codes.**", 1)[1].split("\n\n", 2)[1]
    documented = [int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)]
    assert documented == [int(code) for code in kinds.ExitCode]
