"""The public face: ``__all__`` resolves, and docstrings document exactly the real parameters."""

from __future__ import annotations

import inspect
import re

import pytest

import gradcheck
from gradcheck import frameworks, invariants, numeric, properties, report, strategies

MODULES = [gradcheck, numeric, report, properties, strategies, invariants, frameworks]
PUBLIC = sorted(
    {(m.__name__, name) for m in MODULES for name in m.__all__
     if inspect.isfunction(getattr(m, name))}
)


def documented_parameters(doc: str) -> list[str] | None:
    """Names in a numpydoc ``Parameters`` section (``a, b : type`` lines), or None if absent."""
    match = re.search(r"Parameters\n\s*-+\n(.*?)(?:\n\s*\n\s*[A-Z][a-z]+\n\s*-+\n|\Z)", doc, re.S)
    if not match:
        return None
    names = []
    for line in match.group(1).splitlines():
        head = re.match(r"^([A-Za-z_*][\w, *]*?)\s*(?::|$)", line)  # descriptions are indented
        if head and head.group(1).strip():
            names += [n.strip().lstrip("*") for n in head.group(1).split(",")]
    return names


def test_all_names_resolve():
    for name in gradcheck.__all__:
        assert getattr(gradcheck, name) is not None
    assert gradcheck.__version__.count(".") == 2


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_docstring_parameters_match_the_signature(module, name):
    func = getattr(__import__(module, fromlist=[name]), name)
    doc = inspect.getdoc(func) or ""
    assert doc.strip(), f"{module}.{name} has no docstring"
    documented = documented_parameters(doc)
    if documented is None:
        return  # a one-line docstring: nothing to drift
    actual = [p for p in inspect.signature(func).parameters if p not in ("self",)]
    assert sorted(set(documented)) == sorted(actual), (documented, actual)
