"""The lowest versions ``pyproject.toml`` allows, as pins: what ``make test-floor`` installs.

Usage: ``python tests/floors.py pyproject.toml [GROUP ...]`` prints one ``name==version`` line per
runtime dependency and per requirement of the named dependency groups (``include-group``
followed). Every requirement must declare its floor with ``>=``: a dependency without one
would be tested at whatever version happens to be newest, so the script refuses it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

_FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def pin(requirement: str) -> str:
    """``"numpy>=1.25  # why"`` -> ``"numpy==1.25"``.

    Examples
    --------
    >>> pin("scipy>=1.15")
    'scipy==1.15'
    >>> pin("torch==2.13.0")
    Traceback (most recent call last):
    ...
    ValueError: requirement 'torch==2.13.0' declares no floor (name>=version)
    """
    match = _FLOOR.match(requirement)
    if not match:
        raise ValueError(f"requirement {requirement!r} declares no floor (name>=version)")
    return f"{match.group(1)}=={match.group(2)}"


def group_requirements(groups: Mapping[str, Sequence[Any]], name: str) -> list[str]:
    """A dependency group's requirements, with ``{include-group = ...}`` entries expanded.

    Examples
    --------
    >>> group_requirements({"a": ["x>=1"], "b": [{"include-group": "a"}, "y>=2"]}, "b")
    ['x>=1', 'y>=2']
    """
    found: list[str] = []
    for item in groups[name]:
        if isinstance(item, Mapping):
            found += group_requirements(groups, item["include-group"])
        else:
            found.append(item)
    return found


def floors(pyproject: Mapping[str, Any], groups: Sequence[str]) -> list[str]:
    """Pins for the runtime dependencies and the named groups, in order, without repeats."""
    requirements = list(pyproject["project"]["dependencies"])
    for name in groups:
        requirements += group_requirements(pyproject.get("dependency-groups", {}), name)
    return list(dict.fromkeys(pin(r) for r in requirements))


def main(argv: Sequence[str]) -> int:
    with open(argv[0], "rb") as handle:
        pyproject = tomllib.load(handle)
    print("\n".join(floors(pyproject, argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
