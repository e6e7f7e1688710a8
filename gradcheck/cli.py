"""The ``gradcheck`` command (a placeholder until the checker lands)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gradcheck._version import __version__

USAGE = "usage: gradcheck [--version]\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the version or the usage; exit code 2 on anything else."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        print(f"gradcheck {__version__}")
        return 0
    sys.stderr.write(USAGE)
    return 0 if not args else 2
