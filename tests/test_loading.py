"""Loading user code: standalone files, files inside packages, ``pkg.mod:Name``."""

from __future__ import annotations

import sys

import pytest

from gradcheck.errors import InvalidArgument, LayerError
from gradcheck.loading import import_root, load, split_target


def _tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


PACKAGE = {
    "proj/course/__init__.py": "",
    "proj/course/utils.py": "SCALE = 3.0\n",
    "proj/course/hw/__init__.py": "",
    "proj/course/hw/layers.py": "def affine_forward(x, w):\n    return x @ w, (x, w)\n",
    "proj/course/hw/all.py": "from .layers import *\nfrom ..utils import SCALE\n",
}


@pytest.mark.parametrize(("target", "expected"), [
    pytest.param("layers.py", ("layers.py", None), id="file"),
    pytest.param("layers.py:Net", ("layers.py", "Net"), id="file-name"),
    pytest.param("pkg.mod:f", ("pkg.mod", "f"), id="module-name"),
    pytest.param("C:\\work\\layers.py", ("C:\\work\\layers.py", None), id="drive-letter"),
])
def test_split_target(target, expected):
    assert split_target(target) == expected


def test_import_root_walks_up_the_packages(tmp_path):
    _tree(tmp_path, PACKAGE)
    root, dotted = import_root(tmp_path / "proj/course/hw/all.py")
    assert (root, dotted) == (tmp_path / "proj", "course.hw.all")
    assert import_root(tmp_path / "proj/course/__init__.py") == (tmp_path / "proj", "course")


def test_a_file_with_relative_imports_loads_as_a_module_of_its_package(tmp_path):
    _tree(tmp_path, PACKAGE)
    loaded = load(str(tmp_path / "proj/course/hw/all.py"))
    assert loaded.module.__name__ == "course.hw.all" and loaded.module.SCALE == 3.0
    assert callable(loaded.module.affine_forward)  # from .layers import *
    assert loaded.root == str(tmp_path / "proj") and "import root" in loaded.how
    assert sys.path[0] == str(tmp_path / "proj")


def test_a_package_of_the_same_name_elsewhere_is_not_reused(tmp_path):
    _tree(tmp_path / "a", PACKAGE)
    _tree(tmp_path / "b", {**PACKAGE, "proj/course/utils.py": "SCALE = 5.0\n"})
    assert load(str(tmp_path / "a/proj/course/hw/all.py")).module.SCALE == 3.0
    assert load(str(tmp_path / "b/proj/course/hw/all.py")).module.SCALE == 5.0


def test_standalone_file_imports_its_neighbours(tmp_path):
    _tree(tmp_path, {"helpers_i12.py": "K = 7\n", "mine.py": "from helpers_i12 import K\n"})
    loaded = load(f"{tmp_path / 'mine.py'}:K")
    assert loaded.module.K == 7 and loaded.attr == "K" and "standalone" in loaded.how


def test_module_name_from_the_current_directory(tmp_path, monkeypatch):
    _tree(tmp_path, PACKAGE)
    monkeypatch.chdir(tmp_path / "proj")
    loaded = load("course.hw.layers:affine_forward")
    assert loaded.module.__name__ == "course.hw.layers" and loaded.attr == "affine_forward"


@pytest.mark.parametrize(("target", "message"), [
    pytest.param("{tmp}/missing.py", "FILE must be an existing file", id="missing"),
    pytest.param("not a module", "must be an existing file or a module name", id="bad-name"),
    pytest.param("no_such_module_i12", "no module named 'no_such_module_i12'", id="no-module"),
])
def test_input_validation(tmp_path, target, message):
    (tmp_path / "boom.py").write_text("1 / 0\n")
    with pytest.raises(InvalidArgument, match=message):
        load(target.replace("{tmp}", str(tmp_path)))


def test_a_file_that_raises_at_import_loads_its_definitions(tmp_path):
    (tmp_path / "boom.py").write_text("def f(x):\n    return 2 * x\n1 / 0\n")
    loaded = load(str(tmp_path / "boom.py"))
    assert loaded.definitions_only and loaded.module.f(3) == 6
    assert "raised ZeroDivisionError at line 3" in loaded.how and loaded.dropped == (
        "line 3: an expression",)


def test_a_file_that_raises_at_import_and_defines_nothing_is_the_layer_crashing(tmp_path):
    (tmp_path / "boom.py").write_text("N = 3\nraise ImportError('No module named torch')\n")
    with pytest.raises(LayerError, match=r"importing .*boom\.py raised ImportError: No module "
                                         r"named torch \(and it defines no function or class"):
        load(str(tmp_path / "boom.py"))


def test_a_file_with_a_syntax_error_is_the_layer_crashing(tmp_path):
    (tmp_path / "boom.py").write_text("def f(x):\n    return 2 *\n")
    with pytest.raises(LayerError, match=r"importing .*boom\.py raised SyntaxError at line 2"):
        load(str(tmp_path / "boom.py"))
