"""What a stranger installs: metadata, dependency floors, a cheap import, optional extras.

The build itself (``make dist``: ``python -m build`` and ``twine check --strict``) and the floors'
run (``make test-floor``) are make targets; these tests keep the inputs to both honest and run
from a git checkout and from the unpacked sdist alike.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import floors
import pytest

import gradcheck

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = floors.tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
pytest_plugins = ["pytester"]
HEAVY = ("numpy", "scipy", "tabulate", "hypothesis", "torch", "jax")


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- a quiet plugin --------------------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    pytest.param("import gradcheck", id="the-package"),
    pytest.param("import gradcheck.pytest_plugin", id="the-pytest-plugin"),
    pytest.param("from gradcheck import GradcheckError, GradcheckWarning, __version__",
                 id="errors-warning-version"),
])
def test_importing_gradcheck_loads_nothing_heavy(statement):
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(_python(code)))
    assert sorted(loaded & set(HEAVY)) == []


def test_a_pytest_session_that_checks_nothing_imports_nothing_heavy(pytester):
    pytester.makepyfile(test_it=f"""
import sys

def test_nothing_heavy_is_loaded():
    assert "gradcheck.pytest_plugin" in sys.modules  # loaded through its entry point
    assert [m for m in {HEAVY!r} if m in sys.modules] == []
""")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_every_public_name_is_listed_and_resolves_to_its_module():
    assert set(gradcheck.__all__) <= set(dir(gradcheck))
    from gradcheck import check, layer, tolerance
    from gradcheck.layers import batchnorm
    modules = (check, layer, tolerance, batchnorm)
    for name in gradcheck.__all__:
        homes = [m for m in modules if name in vars(m)]
        assert not homes or getattr(gradcheck, name) is getattr(homes[0], name), name


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'gradcheck' has no attribute 'chek_layer'"):
        gradcheck.chek_layer  # noqa: B018 - the lookup is the test


def test_strategies_without_hypothesis_say_how_to_install_it():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "try:\n    import gradcheck.strategies\n"
            "except ImportError as exc:\n    print(type(exc).__name__, exc)")
    assert _python(code).strip() == (
        "ImportError gradcheck.strategies needs hypothesis: pip install 'gradcheck[property]'")


# --- metadata ----------------------------------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def test_the_license_is_an_spdx_expression_with_its_file():
    assert PROJECT["license"] == "MIT"
    assert [(ROOT / f).read_text(encoding="utf-8").splitlines()[0]
            for f in PROJECT["license-files"]] == ["MIT License"]
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # PEP 639


def test_python_classifiers_start_at_requires_python():
    floor = _version(re.fullmatch(r">=(\d+\.\d+)", PROJECT["requires-python"]).group(1))
    listed = sorted(_version(c.rsplit(" ", 1)[1]) for c in PROJECT["classifiers"]
                    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert listed[0] == floor
    assert listed == [(3, minor) for minor in range(floor[1], listed[-1][1] + 1)]  # no gaps


@pytest.mark.parametrize("classifier", [
    "Framework :: Pytest", "Topic :: Software Development :: Testing", "Typing :: Typed",
])
def test_classifiers_say_what_it_is(classifier):
    assert classifier in PROJECT["classifiers"]


def test_urls_point_at_one_repository():
    urls = PROJECT["urls"]
    base = urls["Source"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", base)
    assert all(u == base or u.startswith((base + "/", base + "#")) for u in urls.values())


def test_users_get_no_dev_tools_and_no_exact_pins():
    extras = PROJECT["optional-dependencies"]
    published = PROJECT["dependencies"] + [r for reqs in extras.values() for r in reqs]
    assert not [r for r in published if re.search(r"\b(pytest|ruff|mypy|build|twine)\b", r)]
    assert not [r for r in published if "==" in r]
    assert set(PYPROJECT["dependency-groups"]) >= {"test", "lint", "dev"}


def test_every_dependency_declares_the_floor_make_test_floor_installs():
    pins = floors.floors(PYPROJECT, ["test"])
    assert [p.split("==")[0] for p in pins] == [
        "numpy", "scipy", "tabulate", "pytest", "hypothesis", "pytest-xdist", "mpmath"]
    numpy_floor = _version(dict(p.split("==") for p in pins)["numpy"])
    assert numpy_floor >= (1, 25), "numpy.exceptions appeared in NumPy 1.25"


# --- the sdist and make ------------------------------------------------------------------------


def test_the_sdist_carries_what_its_tests_read():
    rules = (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines()
    assert {"graft tests", "graft bench", "include reports/README.md"} <= set(rules)


def test_make_check_writes_only_where_git_ignores():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    out = re.search(r"^CHECK_OUT \?= (\S+)$", makefile, re.M).group(1)
    assert re.search(r"^check: .*\n\t.*--out \$\(CHECK_OUT\)$", makefile, re.M)
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert out.split("/")[0] + "/" in ignored
