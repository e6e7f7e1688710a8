"""Loading files as their authors run them: notebooks, scripts that work at import, seeds,
files in folders with ``__init__.py``."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from gradcheck.check import check_layer
from gradcheck.errors import InvalidArgument
from gradcheck.layer import from_functions
from gradcheck.loading import load, notebook_source

FILES = Path(__file__).parent / "doorway_files"
RNG = np.random.default_rng(23)
AFFINE = {"x": RNG.normal(size=(4, 3)), "w": RNG.normal(size=(3, 2)), "b": RNG.normal(size=2)}


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _notebook(path: Path, *cells: str) -> str:
    doc = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": c.splitlines(keepends=True)} for c in cells]}
    return _write(path, json.dumps(doc))


# --- notebooks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("backward", "statuses"), [
    pytest.param("affine_backward", ["pass", "pass", "pass"], id="correct"),
    pytest.param("affine_backward_wrong", ["pass", "pass", "fail"], id="db-mean-not-sum"),
])
def test_a_notebooks_layers_are_checked(backward, statuses):
    loaded = load(str(FILES / "course_notebook.ipynb"), seed=0)
    module = loaded.module
    layer = from_functions(module.affine_forward, getattr(module, backward))
    assert [r.status for r in check_layer(layer, AFFINE).results] == statuses


def test_a_notebook_says_what_it_dropped():
    loaded = load(str(FILES / "course_notebook.ipynb"))
    assert loaded.definitions_only  # its training cell reads a data file that is not there
    assert "standalone notebook" in loaded.how and "%matplotlib inline" in loaded.how
    assert "!pip install nothing-i23" in loaded.how and "%%bash" in loaded.how
    assert "ModuleNotFoundError at cell 1, line 4" in loaded.how  # the first failure
    assert loaded.dropped[0].startswith("cell 1, line 6: a call")  # get_ipython().run_line_magic
    assert any(d.startswith("cell 6, line 1: an assignment computed by a call")
               for d in loaded.dropped)
    assert any("cell 7, lines 1-2: the if __name__" in d for d in loaded.dropped)
    assert loaded.stubbed == ("plt_missing (cell 1, line 4: ModuleNotFoundError: No module "
                              "named 'matplotlib_absent_i23')",)
    assert callable(loaded.module.relu_backward)  # the %%time cell's body was kept


def test_a_notebook_that_runs_is_imported_whole(tmp_path):
    path = _notebook(tmp_path / "ok.ipynb",
                     "%load_ext autoreload\nimport numpy as np",
                     "get_ipython().system('ls')\nW = np.random.randn(2)\ndisplay(W)",
                     "def f(x):\n    if x:\n        %time y = 1\n    return W * x")
    loaded = load(path, seed=4)
    np.random.seed(4)  # noqa: NPY002 - the global RNG is what the notebook draws from
    assert not loaded.definitions_only and loaded.dropped == ()
    assert np.array_equal(loaded.module.f(1.0), np.random.randn(2))  # noqa: NPY002


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("not json", "must be a Jupyter notebook", id="not-json"),
    pytest.param('{"nbformat": 4}', "must be a Jupyter notebook", id="no-cells"),
])
def test_notebook_validation(tmp_path, text, message):
    with pytest.raises(InvalidArgument, match=message):
        load(_write(tmp_path / "bad.ipynb", text))


def test_notebook_source_keeps_line_numbers():
    text, where, magics = notebook_source(FILES / "course_notebook.ipynb")
    lines = text.splitlines()
    assert len(lines) == len(where) and lines[where.index("cell 2, line 1")] == "pass"
    assert magics[:2] == ["%matplotlib inline", "!pip install nothing-i23"]


# --- files that do work at import ----------------------------------------------------------------

SCRIPT = '''\
"""A script that trains at import, as course scripts do."""
import numpy as np

EPS = 1e-8
DIMS = [3, 2]
act = lambda z: np.tanh(z)  # noqa: E731


def forward(x, w):
    return act(x @ w), (x, w)


def backward(dout, cache):
    x, w = cache
    d = dout * (1 - act(x @ w) ** 2)
    return d @ w.T, x.T @ d


W = np.random.randn(*DIMS)
{work}
if __name__ == "__main__":
    print("trained")
'''


@pytest.mark.parametrize(("work", "reason"), [
    pytest.param("X = np.loadtxt('train_i23.csv')", "raised FileNotFoundError at line 20",
                 id="missing-data-file"),
    pytest.param("answer = input('epochs? ')", "raised EOFError at line 20", id="input"),
    pytest.param("while True:\n    W = W + 0.0", "did not finish within 0.3 s",
                 id="trains-forever"),
])
def test_a_script_that_works_at_import_loads_definitions_only(tmp_path, work, reason):
    path = _write(tmp_path / "train_i23.py", SCRIPT.replace("{work}", work))
    loaded = load(path, import_budget=0.3, seed=1)
    assert loaded.definitions_only and reason in loaded.how
    assert "line 19: an assignment computed by a call" in loaded.how  # W = np.random.randn
    assert "the if __name__ == '__main__' block" in loaded.how and loaded.stubbed == ()
    layer = from_functions(loaded.module.forward, backward=loaded.module.backward)
    rng = np.random.default_rng(0)
    report = check_layer(layer, {"x": rng.normal(size=(4, 3)), "w": rng.normal(size=(3, 2))})
    assert report.passed


def test_an_import_that_fails_binds_a_stub_that_raises_when_used(tmp_path):
    path = _write(tmp_path / "plots_i23.py", (
        "import numpy as np\nimport plotting_lib_absent_i23 as plt\n"
        "from plotting_lib_absent_i23 import show, savefig\nimport absent_i23.sub\n"
        "def square(x):\n    return x * x\n\ndef plot(y):\n    plt.plot(y)\n"))
    loaded = load(path)
    assert loaded.definitions_only and loaded.module.square(3) == 9
    assert [s.split(" (")[0] for s in loaded.stubbed] == ["plt", "show", "savefig", "absent_i23"]
    assert "line 2: ModuleNotFoundError" in loaded.stubbed[0]
    with pytest.raises(ModuleNotFoundError, match=r"`plt` is not available: `import "
                                                  r"plotting_lib_absent_i23 as plt` failed"):
        loaded.module.plot([1, 2])


def test_sys_exit_at_import_propagates(tmp_path):
    path = _write(tmp_path / "exits_i23.py", "import sys\nsys.exit(2)\n")
    with pytest.raises(SystemExit):
        load(path)


def test_a_script_that_imports_fine_runs_whole(tmp_path):
    path = _write(tmp_path / "fine_i23.py", "import numpy as np\nW = np.random.randn(3)\n")
    first, second = load(path, seed=7), load(path, seed=7)
    assert not first.definitions_only and "definitions only" not in first.how
    assert np.array_equal(first.module.W, second.module.W)
    np.random.seed(7)  # noqa: NPY002
    assert np.array_equal(first.module.W, np.random.randn(3))  # noqa: NPY002


def test_seed_seeds_random_too(tmp_path):
    path = _write(tmp_path / "rand_i23.py", "import random\nR = random.random()\n")
    random.seed(3)
    expected = random.random()
    assert load(path, seed=3).module.R == expected
    assert load(path, seed=3).module.R == load(path, seed=3).module.R


def test_the_working_directory_is_the_files_own_and_is_restored(tmp_path):
    _write(tmp_path / "proj" / "data.txt", "4.5\n")
    path = _write(tmp_path / "proj" / "reads_i23.py", "V = float(open('data.txt').read())\n")
    before = Path.cwd()
    assert load(path).module.V == 4.5 and Path.cwd() == before


@pytest.mark.parametrize(("kwargs", "message"), [
    pytest.param({"seed": -1}, "`seed` must be a non-negative integer", id="seed"),
    pytest.param({"import_budget": 0}, "`import_budget` must be a positive number", id="budget"),
])
def test_input_validation(tmp_path, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        load(_write(tmp_path / "ok_i23.py", "X = 1\n"), **kwargs)


# --- files inside folders with __init__.py -------------------------------------------------------


def test_a_file_in_a_package_imports_its_neighbour_folders_as_its_author_runs_it(tmp_path):
    _write(tmp_path / "course" / "__init__.py", "")
    _write(tmp_path / "course" / "hw2" / "__init__.py", "")
    _write(tmp_path / "course" / "hw2" / "utils" / "__init__.py", "")
    _write(tmp_path / "course" / "hw2" / "utils" / "grad_i23.py", "K = 2.0\n")
    path = _write(tmp_path / "course" / "hw2" / "layers_i23.py",
                  "from utils.grad_i23 import K\nfrom course.hw2.utils import grad_i23\n"
                  "def scale(x):\n    return K * x * grad_i23.K\n")
    loaded = load(path)
    assert loaded.module.scale(1.0) == 4.0 and "standalone file" in loaded.how
    assert sys.path[0] == str(tmp_path / "course" / "hw2") and sys.path[1] == str(tmp_path)


def test_a_neighbour_of_the_same_name_in_another_project_is_not_reused(tmp_path):
    for name, value in (("a", 1), ("b", 2)):
        _write(tmp_path / name / "helper_i23.py", f"V = {value}\n")
        _write(tmp_path / name / "main_i23.py", "from helper_i23 import V\n")
    assert load(str(tmp_path / "a" / "main_i23.py")).module.V == 1
    assert load(str(tmp_path / "b" / "main_i23.py")).module.V == 2
