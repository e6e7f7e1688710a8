"""pytest's doctest collection (``--doctest-modules`` over ``gradcheck``): the framework
adapters' modules import their framework, an optional extra; without it they are not
collected (tests/test_frameworks.py skips its tests the same way)."""

from __future__ import annotations

import importlib.util

collect_ignore = [f"gradcheck/frameworks/{name}.py" for name in ("torch", "jax")
                  if importlib.util.find_spec(name) is None]
