"""Every convention of issue 23 through the command line alone, with no Python glue.

The files in ``doorway_files/`` are written from the public conventions (deeplearning.ai's
gradient-checking, L-layer and regularization assignments, nnfs-style and course-style classes,
cs231n's masked temporal loss, an assignment in progress); their backwards are textbook-correct
and are the oracle. Each convention is checked correct (exit 0) and with one planted bug (exit
1, the gradient named), through the default path: the file imported in the supervised worker.
The rest pins down the command line as a typed command: one kind of target, every argument
validated before the file is imported, exit codes from ``kinds.ExitCode``, messages on one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gradcheck.cli import main
from gradcheck.kinds import ExitCode

FILES = Path(__file__).parent / "doorway_files"
NET_DATA = ["--shape", "X=3,6", "--int", "Y=0:2", "--shape", "Y=1,6"]


def _copy(tmp_path: Path, name: str, old: str = "", new: str = "") -> Path:
    """The fixture ``name`` in ``tmp_path``, with ``old`` replaced by ``new`` (a planted bug)."""
    path = tmp_path / name
    shutil.copy(FILES / name, path)
    if old:
        text = path.read_text()
        assert old in text, f"the mutant's text is not in {name}: {old!r}"
        path.write_text(text.replace(old, new, 1))
    return path


def _statuses(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Each gradient's status; ``fail`` when it fails in any of the reports (a class has two)."""
    doc = json.loads(capsys.readouterr().out)
    found: dict[str, str] = {}
    for report in doc.get("reports", [doc]):
        for g in report["results"]:
            if found.get(g["name"]) != "fail":
                found[g["name"]] = g["status"]
    return found


CONVENTIONS = [
    pytest.param("gc_network.py", ["--network", *NET_DATA, "--parameters", "initialize_parameters",
                                   "--kwarg", "layer_dims=[3,4,1]"],
                 "dW1 = 1. / m * np.dot(dZ1, X.T)", "dW1 = 2. / m * np.dot(dZ1, X.T)", "W1",
                 id="network-forward_propagation(X, Y, parameters)"),
    pytest.param("deep_network.py", ["--network", *NET_DATA, "--kwarg", "layer_dims=[3,4,2,1]"],
                 "dZ @ A_prev.T / m", "dZ @ A_prev.T", "W1",
                 id="network-L_model_forward-compute_cost-L_model_backward"),
    pytest.param("reg_network.py", ["--network", "forward_propagation", "--grads",
                                    "backward_propagation_with_regularization", "--cost-fn",
                                    "compute_cost_with_regularization", *NET_DATA,
                                    "--parameters", "initialize_parameters",
                                    "--kwarg", "layer_dims=[3,4,1]", "--kwarg", "lambd=0.7"],
                 "lambd * W2 / m", "lambd * W2 / (2 * m)", "W2", id="network-L2-lambd"),
    pytest.param("reg_network.py", ["--network", "forward_propagation_with_dropout", "--cost-fn",
                                    "compute_cost", *NET_DATA, "--parameters",
                                    "initialize_parameters", "--kwarg", "layer_dims=[3,4,1]",
                                    "--kwarg", "keep_prob=0.8"],
                 "* D1 / keep_prob", "* D1", "W1", id="network-dropout-keep_prob"),
    pytest.param("framework_classes.py", ["--layer", "Layer_Dense", "--kwarg", "n_inputs=4",
                                          "--kwarg", "n_neurons=3", "--shape", "inputs=5,4"],
                 "np.sum(dvalues, axis=0, keepdims=True)",
                 "np.mean(dvalues, axis=0, keepdims=True)", "biases",
                 id="class-nnfs-gradients-on-the-object"),
    pytest.param("framework_classes.py", ["--layer", "Loss_CategoricalCrossentropy", "--shape",
                                          "y_pred=5,3", "--range", "y_pred=0.05:0.95", "--int",
                                          "y_true=0:3", "--shape", "y_true=5"],
                 "-y_true / dvalues / samples", "-y_true / dvalues", "y_pred",
                 id="class-loss-backward(y_pred, y_true)"),
    pytest.param("framework_classes.py", ["--layer",
                                          "Activation_Softmax_Loss_CategoricalCrossentropy",
                                          "--shape", "inputs=5,3", "--int", "y_true=0:3",
                                          "--shape", "y_true=5"],
                 "self.dinputs / samples", "self.dinputs", "inputs",
                 id="class-softmax-and-loss-backward(self.output, y_true)"),
    pytest.param("framework_classes.py", ["--layer", "Affine", "--kwarg", "W=[[1,2,3],[4,5,6]]",
                                          "--kwarg", "b=[0.5,0.1,0.2]", "--shape", "x=4,2"],
                 "self.db = dout.sum(axis=0)", "self.db = dout.sum(axis=0) * 2", "b",
                 id="class-constructor-arrays"),
    pytest.param("framework_classes.py", ["--layer", "Sigmoid", "--shape", "z=4,3"],
                 "self.fn(x) * (1 - self.fn(x))", "self.fn(x)", "z",
                 id="class-activation-object-fn-grad"),
    pytest.param("framework_classes.py", ["--layer", "Scaled", "--forward-kwarg", "scale=1.5",
                                          "--shape", "x=4,3"],
                 "return dout * self.scale", "return dout", "x", id="class-forward-kwarg"),
    pytest.param("framework_classes.py", ["--layer", "TwoLayerNet", "--kwarg", "input_size=5",
                                          "--kwarg", "hidden_size=4", "--kwarg", "output_size=3",
                                          "--forward-kwarg", "reg=0.1", "--shape", "X=6,5",
                                          "--int", "y=0:3", "--shape", "y=6"],
                 "hidden.T @ dscores + 2 * reg * W2", "hidden.T @ dscores + reg * W2", "W2",
                 id="class-model-object-params-and-loss(X, y)"),
    pytest.param("framework_classes.py", ["--layer", "Embedding", "--kwarg", "vocab_size=7",
                                          "--kwarg", "dim=3", "--int", "idx=0:7", "--shape",
                                          "idx=4,2"],
                 "np.add.at(self.dW, self.idx, dout)", "self.dW[self.idx] += dout", "W",
                 id="class-integer-input-parameters-only"),
    pytest.param("masked_loss.py", ["--loss", "temporal_softmax_loss", "--shape", "x=2,3,4",
                                    "--int", "y=0:4", "--shape", "y=2,3", "--kwarg",
                                    "mask=[[true,false,true],[true,true,false]]"],
                 "dx_flat *= mask_flat[:, None]", "pass", "x", id="loss-with-a-boolean-mask"),
]


@pytest.mark.parametrize(("name", "argv", "old", "new", "wrong"), CONVENTIONS)
def test_each_convention_passes_and_its_mutant_fails(tmp_path, capsys, name, argv, old, new,
                                                     wrong):
    correct = _copy(tmp_path, name)
    assert main(["check", str(correct), *argv, "--format", "json"]) == ExitCode.PASS
    assert set(_statuses(capsys).values()) <= {"pass", "zero"}
    (tmp_path / "bug").mkdir()
    mutant = _copy(tmp_path / "bug", name, old, new)
    assert main(["check", str(mutant), *argv, "--format", "json"]) == ExitCode.FAIL
    assert _statuses(capsys).get(wrong) == "fail"


TRAINING = """
import time

parameters = initialize_parameters([3, 4, 1])
for i in range(10 ** 6):  # the script trains at import, as the assignment's last cell does
    time.sleep(0.01)
"""


def test_a_script_that_trains_at_import_is_loaded_definitions_only_and_says_so(tmp_path, capsys):
    path = _copy(tmp_path, "reg_network.py")
    path.write_text(path.read_text() + TRAINING)
    argv = ["check", str(path), "--network", "forward_propagation", "--cost-fn", "compute_cost",
            "--grads", "backward_propagation_with_regularization", *NET_DATA, "--parameters",
            "initialize_parameters", "--kwarg", "layer_dims=[3,4,1]", "--kwarg", "lambd=0"]
    assert main([*argv, "--import-budget", "0.5"]) == ExitCode.PASS
    err = capsys.readouterr().err  # without --debug
    assert "did not finish within 0.5 s" in err and "definitions only" in err
    assert "a for loop" in err


def test_a_notebook_says_how_it_was_loaded(capsys):
    assert main(["check", str(FILES / "course_notebook.ipynb"), "--op", "relu",
                 "--shape", "x=4,3"]) == ExitCode.PASS
    err = capsys.readouterr().err
    assert "as a standalone notebook" in err and "%%bash" in err


def test_a_file_in_progress_checks_what_is_implemented(capsys):
    argv = ["check", str(FILES / "unfinished.py"), "--op", "batchnorm", "--against",
            "batchnorm", "--shape", "x=8,5"]
    assert main(argv) == ExitCode.PASS
    out = capsys.readouterr().out
    alt = next(line for line in out.splitlines() if "batchnorm_backward_alt" in line)
    assert "not implemented: batchnorm_backward_alt returns None" in alt
    assert "forward check" in out.lower()  # --against still ran


def test_a_whole_file_where_every_pair_crashed_exits_3(tmp_path, capsys):
    path = tmp_path / "crashes.py"
    path.write_text("def relu_forward(x):\n    raise ValueError('line one\\nline two')\n\n"
                    "def relu_backward(dout, cache):\n    return dout\n")
    assert main(["check", str(path)]) == ExitCode.LAYER
    captured = capsys.readouterr()
    row = next(line for line in captured.out.splitlines() if line.startswith("relu "))
    assert "line one line two" in row  # folded to one line
    assert "every pair that ran crashed" in captured.err


IMPORT_MARK = "gradcheck_imported_i23.txt"


def _marking_file(tmp_path: Path) -> Path:
    """A file that leaves a mark when imported: the usage errors below must come first."""
    path = tmp_path / "marks.py"
    path.write_text(f"open({str(tmp_path / IMPORT_MARK)!r}, 'w').close()\n"
                    "def relu_forward(x):\n    return x * (x > 0), x\n\n"
                    "def relu_backward(dout, cache):\n    return dout * (cache > 0)\n")
    return path


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--layer", "A", "--op", "relu"], "`--op` and `--layer` name two different",
                 id="layer-and-op"),
    pytest.param(["--loss", "l", "--network", "f"], "`--loss` and `--network` name two",
                 id="loss-and-network"),
    pytest.param(["--forward", "f", "--cost", "c"], "`--forward` and `--cost` name two",
                 id="forward-and-cost"),
    pytest.param(["--grads", "g"], "`--grads` belongs with `--cost` or `--network`",
                 id="grads-without-a-network"),
    pytest.param(["--forward-kwarg", "t=1", "--op", "relu"], "`--forward-kwarg` belongs with "
                 "`--layer`", id="forward-kwarg-without-a-class"),
    pytest.param(["--int", "y=5:1"], "`--int` must look like NAME=LOW:HIGH with LOW < HIGH",
                 id="int-reversed"),
    pytest.param(["--range", "p=1:0", "--shape", "p=3"], "`--range` must look like",
                 id="range-reversed"),
    pytest.param(["--range", "p=0:1"], "`--range p` needs a shape", id="range-without-shape"),
    pytest.param(["--kwarg", "cfg={mode: train}"], "the value must be JSON or a bare word",
                 id="kwarg-malformed-json"),
    pytest.param(["--kwarg", "cfg=" + "[" * 40 + "]" * 40], "nested more than 32 levels",
                 id="kwarg-deep-json"),
    pytest.param(["--kwarg", "cfg=" + "[" * 100000 + "]" * 100000], "nested more than",
                 id="kwarg-json-past-the-recursion-limit"),
    pytest.param(["--import-budget", "-1"], "`--import-budget` must be", id="budget-negative"),
])
def test_usage_errors_exit_2_before_the_file_is_imported(tmp_path, capsys, argv, message):
    path = _marking_file(tmp_path)
    assert main(["check", str(path), *argv]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / IMPORT_MARK).exists()


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--network", "forward_propagation_nope", *NET_DATA],
                 "--network 'forward_propagation_nope' is not a callable", id="no-such-forward"),
    pytest.param(["--network", "--grads", "backprop_nope", *NET_DATA],
                 "--grads 'backprop_nope' is not a callable", id="no-such-backward"),
    pytest.param(["--network", "--parameters", "init_nope", *NET_DATA],
                 "--parameters 'init_nope' is not a callable", id="no-such-initialiser"),
    pytest.param(["--network", "--shape", "X=3,6", "--kwarg", "layer_dims=[3,4,1]"],
                 "no value for Y: add --network forward_propagation --shape Y=D1,D2",
                 id="missing-data-argument"),
    pytest.param(["--network", *NET_DATA, "--shape", "Z=2,2", "--kwarg", "layer_dims=[3,4,1]"],
                 "`Z` names no argument of forward_propagation", id="typo-in-a-data-name"),
])
def test_network_names_not_in_the_file_are_usage_errors(capsys, argv, message):
    assert main(["check", str(FILES / "gc_network.py"), *argv]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and "NoneType" not in err


def test_a_whole_file_run_checks_a_network_when_its_data_are_given(capsys):
    path = str(FILES / "deep_network.py")
    assert main(["check", path, *NET_DATA, "--kwarg", "layer_dims=[3,4,1]"]) == ExitCode.PASS
    out = capsys.readouterr().out
    [row] = [ln for ln in out.splitlines() if ln.startswith("L_model_forw") and " dW1 " in ln]
    assert " pass " in row  # its row in the report's table: no second table of the same check
    assert main(["check", path]) == ExitCode.USAGE  # no data: the row says which flags
    out = capsys.readouterr().out
    assert "a network: no value for X, layer_dims, Y" in out


def test_the_in_process_path_gives_the_same_verdicts(capsys):
    argv = ["check", str(FILES / "framework_classes.py"), "--layer", "Affine", "--kwarg",
            "W=[[1,2,3],[4,5,6]]", "--kwarg", "b=[0.5,0.1,0.2]", "--shape", "x=4,2"]
    assert main([*argv, "--in-process"]) == main(argv) == ExitCode.PASS
    argv = ["check", str(FILES / "gc_network.py"), "--network", *NET_DATA, "--parameters",
            "initialize_parameters", "--kwarg", "layer_dims=[3,4,1]"]
    assert main([*argv, "--in-process"]) == main(argv) == ExitCode.PASS


def test_grouped_help_lists_the_kinds_of_target(capsys):
    assert main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    for words in ("a course pair", "a loss", "a class", "a network", "a cost",
                  "classes (--layer)", "networks (--network, --cost)"):
        assert words in out


def test_a_notebook_runs_its_helpers_and_loads_failing_neighbours_definitions_only(tmp_path,
                                                                                   capsys):
    (tmp_path / "helpers.py").write_text(
        "import numpy as np\nimport plotting_absent_i23\n\n"
        "def relu(z):\n    return np.maximum(0, z), z\n\n"
        "def relu_backward(dA, cache):\n    return dA * (cache > 0)\n")
    cells = ["import numpy as np\n%run '/home/author/course/helpers.py'\n",
             "def scale_forward(x):\n    out, cache = relu(2 * x)\n    return out, cache\n",
             "def scale_backward(dout, cache):\n    return 2 * relu_backward(dout, cache)\n"]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": cell} for cell in cells]}
    path = tmp_path / "assignment.ipynb"
    path.write_text(json.dumps(notebook))
    assert main(["check", str(path), "--op", "scale", "--shape", "x=4,3"]) == ExitCode.PASS
    err = capsys.readouterr().err
    assert "helpers.py (it imports) was loaded definitions only" not in err  # %run, not import
    assert "definitions only" in err  # the helper's import fails, so the notebook falls back


def test_a_package_module_whose_import_fails_is_loaded_definitions_only(tmp_path, capsys):
    pkg = tmp_path / "course"
    (pkg / "classifiers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "classifiers" / "__init__.py").write_text("")
    (pkg / "layers.py").write_text(
        "import numpy as np\nimport torch_absent_i23\n\n"
        "def affine_forward(x, w, b):\n    return x @ w + b, (x, w)\n\n"
        "def affine_backward(dout, cache):\n    x, w = cache\n"
        "    return dout @ w.T, x.T @ dout, dout.sum(0)\n")
    (pkg / "classifiers" / "net.py").write_text(
        "from course.layers import *\n\n"
        "def net_forward(x, w, b):\n    return affine_forward(x, w, b)\n\n"
        "def net_backward(dout, cache):\n    return affine_backward(dout, cache)\n")
    argv = ["check", str(pkg / "classifiers" / "net.py"), "--op", "net", "--shape", "x=4,3",
            "--shape", "w=3,2", "--shape", "b=2"]
    assert main(argv) == ExitCode.PASS
    assert "layers.py (it imports) was loaded definitions only too" in capsys.readouterr().err


def test_a_whole_file_run_says_how_to_check_each_class_with_its_own_arguments(tmp_path, capsys):
    """The hint names the constructor's arguments and the forward's input (new-user trial:
    `--layer Layer_Dense --shape x=N,D` alone raised TypeError for n_inputs)."""
    path = _copy(tmp_path, "framework_classes.py")
    main(["check", str(path)])
    out = " ".join(capsys.readouterr().out.split())
    assert "--layer Layer_Dense --kwarg n_inputs=VALUE --kwarg n_neurons=VALUE --shape inputs=N,D" \
        in out
    assert "its forward also takes y_true" in out
