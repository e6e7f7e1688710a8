"""Hostile and broken input: a clear answer every time, an exit code that means it, nothing lost.

Each row is one bad input a new user could give, to the command line (run in process with
``main``, in a scratch directory) or to the Python API. Every CLI row asserts the exit code, the
key words of the message, that no traceback appears, that stdout holds only the report, and that
no file outside ``--out`` changed. Every API row asserts the exception type and key words, and
that the caller's arrays and the layer's state are bit-identical afterwards. Ctrl-C is tested with
a real SIGINT sent to a child process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from gradcheck import BatchNorm, GradcheckError, InvalidArgument, LayerError
from gradcheck._guard import CheckTimeout
from gradcheck.check import check_grads, check_layer
from gradcheck.cli import main
from gradcheck.layer import from_class, from_functions
from gradcheck.properties import check_layer_property
from gradcheck.report import write_reports

HOSTILE = textwrap.dedent(
    '''
    import os, sys, threading, time
    import numpy as np

    print("debug: importing hostile layers")

    def scale_forward(x, w):
        return x * w, (x, w)

    def scale_backward(dout, cache):
        x, w = cache
        return dout * w, (dout * x).sum(0)

    def printing_forward(x, w):
        print("debug: forward", x.shape)
        return x * w, (x, w)

    def printing_backward(dout, cache):
        print("debug: backward")
        return scale_backward(dout, cache)

    def fdwrite_forward(x, w):
        os.write(1, b"debug: raw write to file descriptor 1\\n")
        return x * w, (x, w)

    def wrong_backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        return dx * 1.01, dw

    def exit0_forward(x, w):
        sys.exit(0)

    def exitstr_forward(x, w):
        sys.exit("bye")

    def exit0_backward(dout, cache):
        sys.exit(0)

    def kbint_forward(x, w):
        raise KeyboardInterrupt

    def raise_forward(x, w):
        raise ValueError("student bug")

    def raise_backward(dout, cache):
        raise IndexError("tuple index out of range")

    def none_forward(x, w):
        out = x * w

    def noneout_forward(x, w):
        return None, (x, w)

    def triple_forward(x, w):
        return x * w, (x, w), "extra"

    def nan_forward(x, w):
        return x * w * np.nan, (x, w)

    def int_forward(x, w):
        return np.ones(x.shape, dtype=int), (x, w)

    def str_forward(x, w):
        return "out", (x, w)

    CALLS = [0]

    def shifting_forward(x, w):
        CALLS[0] += 1
        out = x * w
        return (out if CALLS[0] == 1 else out[:-1]), (x, w)

    def dict_backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        return {"x": dx, "w": dw}

    def complex_backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        return dx + 5j, dw

    def complexzero_backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        return dx + 0j, dw

    def nonegrad_backward(dout, cache):
        return scale_backward(dout, cache)[0], None

    def short_backward(dout, cache):
        return scale_backward(dout, cache)[0]

    def strgrad_backward(dout, cache):
        return "dx", "dw"

    def shapegrad_backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        return dx[:-1], dw

    def nangrad_backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        return dx * np.nan, dw

    def mutating_forward(x, w):
        out = x * w
        x += 1.0
        return out, (x - 1.0, w)

    def doutmut_backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        dout *= 2.0
        return dx, dw

    def random_backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        return dx + np.random.default_rng().normal(size=dx.shape) * 1e-3, dw

    def sleep_forward(x, w):
        sys.stderr.write("SLEEPING\\n")
        sys.stderr.flush()
        time.sleep(60)
        return x * w, (x, w)

    def swallow_forward(x, w):
        while True:
            try:
                time.sleep(10)
            except Exception:
                pass

    def spin_forward(x, w):
        while True:
            pass

    class Affine:
        def __init__(self, d):
            self.params = {"w": np.linspace(0.5, 2.0, d), "b": np.zeros(d)}
            self.grads = {}
        def forward(self, x):
            self.x = x
            return x * self.params["w"] + self.params["b"]
        def backward(self, dout):
            self.grads["w"] = (dout * self.x).sum(0)
            self.grads["b"] = dout.sum(0)
            return dout * self.params["w"]

    class PrintingAffine(Affine):
        def __init__(self, d):
            print("debug: building PrintingAffine")
            super().__init__(d)
        def forward(self, x):
            print("debug: PrintingAffine.forward")
            return super().forward(x)

    class ExitInit(Affine):
        def __init__(self, d):
            sys.exit(0)

    class Locked(Affine):
        def __init__(self, d):
            super().__init__(d)
            self.lock = threading.Lock()
    '''
)

FILES = {
    "hostile.py": HOSTILE,
    "exit_at_import.py": "import sys\nsys.exit(0)\n",
    "kbint_at_import.py": "raise KeyboardInterrupt\n",
    "raise_at_import.py": "raise ImportError('No module named torch')\n",
    "syntax_error.py": "def broken(:\n",
    "notes.txt": "not python\n",
}

S = ["--shape", "x=4,3", "--shape", "w=3"]  # the inputs of every pair in HOSTILE
SYM = ["--shape", "x=N,3", "--shape", "w=3", "--examples", "3"]  # property mode


def pair(fwd, bwd="scale_backward"):
    return ["check", "hostile.py", "--forward", f"{fwd}_forward", "--backward", bwd]


def op(extra=(), *, shapes=S):
    return ["check", "hostile.py", "--op", "scale", *shapes, *extra]


def cli(argv, code, *words, id):
    return pytest.param(argv, code, words, id=id)


CLI_CASES = [
    # --- the layer exits or is interrupted: never exit 0, never a traceback ---
    cli([*pair("exit0"), *S], 3, "sys.exit(0)", "during forward", id="exit0-in-forward"),
    cli([*pair("exitstr"), *S], 3, "sys.exit('bye')", "forward", id="exit-str-in-forward"),
    cli([*pair("scale", "exit0_backward"), *S], 3, "sys.exit(0)", "during backward",
        id="exit0-in-backward"),
    cli(["check", "exit_at_import.py", "--op", "scale", *S], 3, "sys.exit(0)",
        "during import of exit_at_import.py", id="exit0-at-import"),
    cli(["check", "hostile.py", "--layer", "ExitInit", "--kwarg", "d=3", "--shape", "x=4,3"], 3,
        "sys.exit(0)", "construction of the layer", id="exit0-in-constructor"),
    cli([*pair("exit0"), *SYM], 3, "sys.exit(0)", "forward", id="exit0-in-property-mode"),
    # a layer raising KeyboardInterrupt is not the user pressing Ctrl-C (that reaches only
    # gradcheck's own process, test_worker.py): the layer misbehaved, exit 3
    cli([*pair("kbint"), *S], 3, "KeyboardInterrupt", "forward", id="kbint-raised-in-forward"),
    cli(["check", "kbint_at_import.py", "--op", "scale", *S], 3, "KeyboardInterrupt",
        "import", id="kbint-raised-at-import"),
    # --- --shape: no silent reinterpretation ---
    cli(op(shapes=["--shape", "x=-4,3", "--shape", "w=3"]), 2, "positive integer", "'-4'",
        id="shape-negative"),
    cli(op(shapes=["--shape", "x=4.5,3", "--shape", "w=3"]), 2, "'4.5'", "whole number",
        id="shape-float"),
    cli(op(shapes=["--shape", "x=4x3", "--shape", "w=3"]), 2, "separate dimensions with commas",
        "4,3", id="shape-4x3"),
    cli(op(shapes=["--shape", "x=0,3", "--shape", "w=3"]), 2, "at least 1", id="shape-zero"),
    cli(op(shapes=["--shape", "x=4,3", "--shape", "x=5,3", "--shape", "w=3"]), 2, "'x' twice",
        id="shape-twice"),
    cli(op(shapes=["--shape", "x=4,,3", "--shape", "w=3"]), 2, "got ''", id="shape-empty-dim"),
    cli(op(shapes=["--shape", "x=4,", "--shape", "w=3"]), 2, "got ''", id="shape-trailing-comma"),
    cli(op(shapes=["--shape", "x=", "--shape", "w=3"]), 2, "NAME=D1,D2", id="shape-no-dims"),
    cli(op(shapes=["--shape", "=4,3"]), 2, "NAME=D1,D2", id="shape-no-name"),
    cli(op(shapes=["--shape", "x4,3"]), 2, "NAME=D1,D2", id="shape-no-equals"),
    cli(op(shapes=["--shape", "my-x=4,3"]), 2, "identifier", "'my-x'", id="shape-bad-name"),
    cli(op(shapes=["--shape", "x=4,3", "--shape", "é=3"]), 2, "`--shape é`", "names no parameter",
        id="shape-unicode-name-unknown"),
    cli(op(shapes=["--shape", "x=+4,3", "--shape", "w=3"]), 2, "'+4'", id="shape-plus-sign"),
    cli(op(shapes=["--shape", "x=4,3;", "--shape", "w=3"]), 2, "'3;'", id="shape-junk"),
    cli(op(shapes=["--shape", "x=100000,100000", "--shape", "w=100000"]), 2,
        "--max-elements", "GB", id="shape-74-GiB"),
    cli(op(shapes=["--shape", "x=99999999999999999999999,3", "--shape", "w=3"]), 2,
        "--max-elements", id="shape-absurd-dimension"),
    cli(op(shapes=["--shape", "x=N,100000000", "--shape", "w=100000000"]), 2, "--max-elements",
        id="shape-huge-symbolic"),
    cli(op(["--max-elements", "10"]), 2, "15 elements", "--max-elements 10",
        id="shape-over-lowered-limit"),
    cli(["check", "hostile.py", "--op", "scale"], 2, "no shape for `x`", id="shape-none"),
    cli(op(shapes=["--shape", "X=4,3", "--shape", "w=3"]), 2, "`--shape X` names no parameter",
        "w, x", id="shape-X-for-x-function"),
    cli(["check", "hostile.py", "--layer", "Affine", "--kwarg", "d=3", "--shape", "x=4,3",
         "--shape", "w=3"], 2, "needs the shape of its one input", id="class-two-shapes"),
    cli(op(shapes=["--shape", "x=4,3", "--shape", "w=3", "--shape", "v=3"]), 2,
        "`--shape v` names no parameter", id="shape-unknown-input"),
    # --- --kwarg: JSON or a bare word, nothing else ---
    cli(op(["--kwarg", "bn_param={mode: train}"]), 2, "JSON", "bn_param", id="kwarg-bad-json"),
    cli(op(["--kwarg", "mode=per-channel"]), 2, "JSON or a bare word", id="kwarg-hyphen-word"),
    cli(op(["--kwarg", "a=1", "--kwarg", "a=2"]), 2, "'a' twice", id="kwarg-twice"),
    cli(op(["--kwarg", "mode"]), 2, "NAME=JSON", id="kwarg-no-equals"),
    cli(op(["--kwarg", "d="]), 2, "JSON", "''", id="kwarg-empty-value"),
    cli(op(["--kwarg", "1d=3"]), 2, "identifier", id="kwarg-bad-name"),
    cli(op(["--kwarg", 'cfg={"a": 1'], ), 2, "JSON", id="kwarg-unclosed-brace"),
    # --- numbers and choices ---
    cli(op(["--seed=-1"]), 2, "`--seed` must be a non-negative integer", id="seed-negative"),
    cli(op(["--seed", "abc"]), 2, "invalid int value", id="seed-not-int"),
    cli(op(["--seed", "1.5"]), 2, "invalid int value", id="seed-float"),
    cli(op(["--examples", "0"]), 2, "`--examples` must be a positive integer", id="examples-0"),
    cli(op(["--timeout", "-1"]), 2, "`--timeout`", id="timeout-negative"),
    cli(op(["--timeout", "nan"]), 2, "finite", id="timeout-nan"),
    cli(op(["--timeout", "inf"]), 2, "finite", id="timeout-inf"),
    cli(op(["--timeout", "1e308"]), 2, "`--timeout`", "1e+07", id="timeout-overflows-the-timer"),
    cli(op(["--max-elements", "-5"]), 2, "`--max-elements` must be a positive", id="max-neg"),
    cli(op(["--dtype", "float16"]), 2, "invalid choice", id="dtype-float16"),
    cli(op(["--dtype", "int32"]), 2, "invalid choice", id="dtype-int"),
    cli(op(["--mode", "fast"]), 2, "invalid choice", id="mode-unknown"),
    cli(op(["--method", "magic"]), 2, "invalid choice", id="method-unknown"),
    cli(op(["--format", "yaml"]), 2, "invalid choice", id="format-unknown"),
    cli(["check", "hostile.py", "--forward", "nothere_forward", "--backward", "scale_backward",
         *S], 2, "'nothere_forward' is not a callable", id="forward-missing"),
    cli(["check", "hostile.py:nothere", *S], 2, "'nothere'", id="file-name-missing"),
    cli([], 2, "required", id="no-command"),
    cli(["check"], 2, "required", id="no-file"),
    # --- files ---
    cli(["check", "missing.py", "--op", "scale", *S], 2, "must be an existing file",
        id="file-missing"),
    cli(["check", "sub", "--op", "scale", *S], 2, "must be an existing file", id="file-is-dir"),
    cli(["check", "notes.txt", "--op", "scale", *S], 2, "notes.txt", id="file-not-python"),
    # the user's own file crashing at import is the layer crashing (3), not a usage error
    cli(["check", "raise_at_import.py", "--op", "scale", *S], 3, "ImportError", "torch",
        id="file-raises-at-import"),
    cli(["check", "syntax_error.py", "--op", "scale", *S], 3, "SyntaxError",
        id="file-syntax-error"),
    cli(["check", "hostile.py", "--op", "nothere", *S], 2, "'nothere_forward' is not a callable",
        id="op-missing"),
    cli(["check", "hostile.py", "--layer", "Affine", "--kwarg", "e=3", "--shape", "x=4,3"], 2,
        "Affine", "unexpected keyword", id="class-bad-kwarg"),
    # --- --out: refused before the check runs ---
    cli(op(["--out", ""]), 2, "empty string", id="out-empty"),
    cli(op(["--out", "notes.txt"]), 2, "is a file", id="out-is-file"),
    cli(op(["--out", "notes.txt/reports"]), 2, "goes through the file", id="out-through-file"),
    cli(op(["--out", "dangling"]), 2, "symbolic link", "does not exist", id="out-dangling-link"),
    cli(op(["--out", "dangling/reports"]), 2, "symbolic link", id="out-through-dangling-link"),
    cli(op(["--out", "/proc/self/gradcheck-reports"]), 2, "not writable", id="out-unwritable"),
    cli(op(["--out", "clash"]), 2, "holds a directory named 'results.json'", id="out-clash"),
    cli(op(["--out", "a" * 300]), 2, "cannot be used", "File name too long",
        id="out-name-too-long"),
    cli(["run", "--out", ""], 2, "empty string", id="run-out-empty"),
    # --- the layer crashes or returns something unusable: exit 3 ---
    cli([*pair("raise"), *S], 3, "forward raised ValueError: student bug", id="forward-raises"),
    cli([*pair("scale", "raise_backward"), *S], 3, "backward raised IndexError",
        id="backward-raises"),
    cli([*pair("none"), *S], 3, "got None", "missing `return`", id="forward-returns-None"),
    cli([*pair("noneout"), *S], 3, "returned None as its output", id="forward-output-None"),
    cli([*pair("triple"), *S], 3, "could not use what the forward returned", "(out, cache)",
        id="forward-returns-3"),
    cli([*pair("nan"), *S], 3, "12 NaN or inf of 12 outputs", id="forward-returns-nan"),
    cli([*pair("int"), *S], 3, "dtype int", "expected floats", id="forward-returns-int"),
    cli([*pair("str"), *S], 3, "str", "expected floats", id="forward-returns-str"),
    cli([*pair("shifting"), *S], 3, "changed shape between calls", "(4, 3)", "(3, 3)",
        id="forward-output-shape-changes"),
    cli([*pair("scale", "dict_backward"), *S], 3, "a dict for dx", "tuple",
        id="backward-returns-dict"),
    cli([*pair("scale", "complex_backward"), *S], 3, "complex dx", "imaginary part", "5",
        id="backward-complex-gradient"),
    cli([*pair("scale", "nonegrad_backward"), *S], 3, "None for dw", "shape (3,)",
        id="backward-None-gradient"),
    cli([*pair("scale", "short_backward"), *S], 3, "no gradient for `w`", id="backward-short"),
    cli([*pair("scale", "strgrad_backward"), *S], 3, "str", "for dx", id="backward-strings"),
    cli(["check", "hostile.py", "--layer", "Locked", "--kwarg", "d=3", "--shape", "x=4,3"], 3,
        "could not copy the layer", "lock", id="class-holds-lock"),
    # 2 s: the worker's start (an interpreter, NumPy) counts against the limit too, and on a
    # busy machine it can take most of half a second, so the alarm would name the import
    cli([*pair("spin"), *S, "--timeout", "2"], 3, "did not finish within 2 s", "forward",
        "--timeout", id="forward-spins-forever"),
    cli([*pair("swallow"), *S, "--timeout", "0.5"], 3, "did not finish within 0.5 s",
        id="forward-swallows-the-timeout"),
    cli([*pair("spin"), *SYM, "--timeout", "0.5"], 3, "did not finish within 0.5 s",
        id="property-mode-spins-forever"),
    # --- a real bug is a failure (1), not a pass, not a crash ---
    cli([*pair("scale", "wrong_backward"), *S], 1, id="wrong-gradient"),
    cli([*pair("scale", "shapegrad_backward"), *S], 1, id="gradient-wrong-shape"),
    cli([*pair("scale", "nangrad_backward"), *S], 1, id="gradient-nan"),
    cli([*pair("mutating"), *S], 1, id="forward-mutates-input"),
    cli([*pair("scale", "doutmut_backward"), *S], 1, id="backward-mutates-dout"),
    cli([*pair("scale", "random_backward"), *S], 1, id="backward-nondeterministic"),
    cli([*pair("scale", "wrong_backward"), *SYM], 1, "FAIL", id="property-mode-wrong-gradient"),
]


def scratch_tree(root: Path, skip: str | None) -> dict[str, tuple[int, int]]:
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if skip and (rel == skip or rel.startswith(skip + os.sep)):
            continue
        st = path.lstat()
        found[rel] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "sub").mkdir()
    (tmp_path / "clash" / "results.json").mkdir(parents=True)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the user's file may not change ours
    return tmp_path


def out_of(argv: list[str]) -> str | None:
    return argv[argv.index("--out") + 1] if "--out" in argv else None


@pytest.mark.parametrize(("argv", "code", "words"), CLI_CASES)
def test_cli_hostile_input(scratch, capsys, argv, code, words):
    before = scratch_tree(scratch, out_of(argv))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    for word in words:
        assert word in err + out, (word, err)
    if code in (2, 3, 130):
        assert out == "" and len(err.strip().splitlines()[-1]) > 20  # one clear message
    if code == 1:
        assert "FAIL" in out
    assert "debug:" not in out  # the layer's prints never reach stdout
    assert scratch_tree(scratch, out_of(argv)) == before


def test_cli_count_is_at_least_70():
    assert len(CLI_CASES) >= 70


# --- good input that used to be reinterpreted or polluted: exit 0 and a clean report -------


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        pytest.param([*pair("printing", "printing_backward"), *S], {"x": "pass", "w": "pass"},
                     id="printing-layer-json"),
        pytest.param(["check", "hostile.py", "--layer", "PrintingAffine", "--kwarg", "d=3",
                      "--shape", "x=4,3"], {"x": "pass", "w": "pass", "b": "pass"},
                     id="printing-class-json"),
        pytest.param([*pair("scale", "complexzero_backward"), *S], {"x": "pass", "w": "pass"},
                     id="complex-gradient-zero-imaginary-accepted"),
    ],
)
def test_stdout_is_only_the_report(scratch, capfd, argv, expect):
    before = scratch_tree(scratch, None)
    assert main([*argv, "--format", "json"]) == 0
    out, err = capfd.readouterr()  # the worker prints to the file descriptor, not sys.stderr
    doc = json.loads(out)
    results = doc["results"] if "results" in doc else [
        r for each in doc["reports"] for r in each["results"]]
    assert {r["name"]: r["status"] for r in results} == expect
    assert "Traceback" not in err
    if "printing" in argv[3]:
        assert "debug:" in err
    assert scratch_tree(scratch, None) == before  # no __pycache__, no .hypothesis


@pytest.mark.parametrize("mode", ["full", "directional"])
def test_property_mode_honours_mode_and_writes_nothing(scratch, capsys, mode):
    before = scratch_tree(scratch, None)
    assert main([*op(shapes=SYM), "--mode", mode, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["mode"] for r in doc["results"]} == {mode}
    assert scratch_tree(scratch, None) == before
    assert not (scratch / ".hypothesis").exists()


def test_out_directory_is_the_only_change(scratch, capsys):
    before = scratch_tree(scratch, "reports")
    assert main([*op(), "--out", "reports/new"]) == 0
    assert sorted(p.name for p in (scratch / "reports" / "new").iterdir()) == [
        "results.json", "summary.html", "summary.md", "summary.txt"]
    assert scratch_tree(scratch, "reports") == before


def test_inconclusive_verdict_is_exit_4(monkeypatch, scratch, capsys):
    from gradcheck.results import CheckReport

    monkeypatch.setattr(CheckReport, "verdict", property(lambda self: "inconclusive"))
    assert main(op()) == 4


# --- a real Ctrl-C, a real stdout: a child process ----------------------------------------


def child(argv, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "gradcheck", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigint_to_a_child_exits_130_without_traceback(scratch):
    proc = child([*pair("sleep"), *S, "--out", "reports"], scratch)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    while line and "SLEEPING" not in line:
        line = proc.stderr.readline()
    assert "SLEEPING" in line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err and out == ""
    assert not (scratch / "reports").exists()


def test_child_stdout_is_json_even_when_the_layer_writes_to_fd_1(scratch):
    proc = child([*pair("fdwrite"), *S, "--format", "json"], scratch)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["passed"] is True
    assert "raw write to file descriptor 1" in err


def test_child_exit0_in_forward_is_exit_3(scratch):
    proc = child([*pair("exit0"), *S], scratch)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3 and "sys.exit(0)" in err and "Traceback" not in err


# --- the API ------------------------------------------------------------------------------


def course(forward, backward):
    return from_functions(forward, backward)


def scale_forward(x, w):
    return x * w, (x, w)


def scale_backward(dout, cache):
    x, w = cache
    return dout * w, (dout * x).sum(0)


def xw():
    rng = np.random.default_rng(7)
    return {"x": rng.normal(size=(4, 3)), "w": rng.normal(size=3)}


def backward_returning(make):
    def backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        return make(dx, dw)

    return backward


def forward_returning(make):
    def forward(x, w):
        return make(x, w), (x, w)

    return forward


def exiting_forward(x, w):
    sys.exit(0)


def exiting_backward(dout, cache):
    sys.exit(0)


def sleeping(x, w):
    while True:
        try:
            time.sleep(10)
        except Exception:
            pass


class Stateful:
    """A layer written to the protocol, holding state a check must not lose."""

    name = "stateful"

    def __init__(self):
        self.w = np.array([1.0, 2.0, 3.0])
        self.running = np.zeros(3)
        self.calls = 0
        self.history = []

    def forward(self, inputs):
        self.calls += 1
        self.running += 1.0  # in place, through the caller's own reference
        self.history.append(self.calls)
        self.w = self.w * 2  # rebound
        return inputs["x"] * 2.0, inputs["x"]

    def backward(self, dout, cache):
        return {"x": dout * 2.0}


class Locking(Stateful):
    def __init__(self, log_path):
        super().__init__()
        self.lock = threading.Lock()
        self.log = open(log_path, "w")  # held open on purpose


class Slotted:
    __slots__ = ("calls", "name", "scale")

    def __init__(self):
        self.name, self.scale, self.calls = "slotted", np.array([2.0]), 0

    def forward(self, inputs):
        self.calls += 1
        self.scale[0] += 1.0
        return inputs["x"] * 2.0, inputs["x"]

    def backward(self, dout, cache):
        return {"x": dout * 2.0}


def oracle_state(obj):
    """An independent record of an object's state: bytes of arrays, reprs, identities."""
    names = set(getattr(obj, "__dict__", {}))
    names |= {n for c in type(obj).__mro__ for n in getattr(c, "__slots__", ()) if hasattr(obj, n)}
    record = {}
    for n in sorted(names):
        v = getattr(obj, n)
        if isinstance(v, np.ndarray):
            record[n] = (id(v), v.dtype.str, v.shape, v.tobytes())
        elif isinstance(v, (int, float, str, list, dict, tuple)):
            record[n] = (id(v) if isinstance(v, (list, dict)) else None, repr(v))
        else:
            record[n] = ("identity", id(v))
    return record


def api(call, error, *words, id):
    return pytest.param(call, error, words, id=id)


BN = BatchNorm(3)


def wrong_f(x):
    return x * 2  # a vector, not a scalar


API_CASES = [
    # --- wrt ---
    api(lambda i: check_layer(BN, i, wrt=[]), InvalidArgument, "`wrt`", "nothing would be checked",
        id="wrt-empty"),
    api(lambda i: check_layer(BN, i, wrt=5), InvalidArgument, "`wrt`", "int", id="wrt-int"),
    api(lambda i: check_layer(BN, i, wrt=[1]), InvalidArgument, "`wrt`", "1", id="wrt-list-int"),
    api(lambda i: check_layer(BN, i, wrt=b"x"), InvalidArgument, "`wrt`", id="wrt-bytes"),
    api(lambda i: check_layer(BN, i, wrt="nope"), InvalidArgument, "'nope'", id="wrt-unknown"),
    api(lambda i: check_layer(BN, i, wrt=None, seed=-1), InvalidArgument, "`seed`",
        id="seed-negative"),
    api(lambda i: check_layer(BN, i, seed=1.5), InvalidArgument, "`seed`", id="seed-float"),
    api(lambda i: check_layer(BN, i, seed=True), InvalidArgument, "`seed`", id="seed-bool"),
    # --- dout, in the user's terms ---
    api(lambda i: check_layer(BN, i, dout=np.ones((4, 3), dtype=int)), InvalidArgument,
        "`dout` must have a floating dtype", id="dout-int"),
    api(lambda i: check_layer(BN, i, dout=np.full((4, 3), np.nan)), InvalidArgument,
        "`dout` must be finite", id="dout-nan"),
    api(lambda i: check_layer(BN, i, dout=np.ones((3, 4))), InvalidArgument,
        "`dout` must have the output's shape", id="dout-shape"),
    api(lambda i: check_layer(BN, i, dout="abc"), InvalidArgument, "`dout`", id="dout-str"),
    api(lambda i: check_layer(BN, i, dout=np.ones((0,))), InvalidArgument, "`dout`",
        "empty", id="dout-empty"),
    # --- inputs and dtypes ---
    api(lambda i: check_layer(BN, {"x": i["x"].astype(np.longdouble)}), InvalidArgument,
        "float16, float32 or float64", id="input-longdouble"),
    api(lambda i: check_layer(BN, {"x": i["x"] + 0j}), InvalidArgument, "floating dtype",
        "complex128", id="input-complex"),
    api(lambda i: check_layer(BN, {"x": [[1.0, "a"]]}), InvalidArgument, "`inputs['x']`",
        id="input-mixed-list"),
    api(lambda i: check_layer(BN, {"x": np.array([{}, {}])}), InvalidArgument, "objects",
        id="input-object"),
    api(lambda i: check_layer(BN, {"x": np.ones((0, 3))}), InvalidArgument, "empty",
        id="input-empty"),
    api(lambda i: check_layer(BN, {"x": np.full((4, 3), np.inf)}), InvalidArgument, "finite",
        id="input-inf"),
    api(lambda i: check_layer(BN, [i["x"]]), InvalidArgument, "`inputs` must be a non-empty "
        "mapping", id="inputs-list"),
    api(lambda i: check_layer(None, i), InvalidArgument, "`layer`", id="layer-None"),
    # --- options ---
    api(lambda i: check_layer(BN, i, timeout=-1), InvalidArgument, "`timeout`", id="timeout-neg"),
    api(lambda i: check_layer(BN, i, timeout="10"), InvalidArgument, "`timeout`", id="timeout-str"),
    api(lambda i: check_layer(BN, i, timeout=float("nan")), InvalidArgument, "finite",
        id="timeout-nan"),
    api(lambda i: check_layer(BN, i, timeout=1e308), InvalidArgument, "1e7", id="timeout-huge"),
    api(lambda i: check_layer(BN, i, method="magic"), InvalidArgument, "`method`", id="method"),
    api(lambda i: check_layer(BN, i, mode="fast"), InvalidArgument, "`mode`", id="mode"),
    api(lambda i: check_layer(BN, i, tolerance="tight"), InvalidArgument, "`tolerance`",
        id="tolerance"),
    api(lambda i: check_layer_property(BN, {"x": ("N", "3")}, mode="fast"), InvalidArgument,
        "`mode`", id="property-mode-unknown"),
    # --- check_grads: the small tier's own words ---
    api(lambda i: check_grads(wrong_f, lambda x: 2 * np.ones_like(x), i["w"]), InvalidArgument,
        "`f` must return a scalar", "(3,)", id="check-grads-vector-f"),
    api(lambda i: check_grads(lambda x: None, lambda x: x, i["w"]), LayerError,
        "returned None", id="check-grads-f-None"),
    api(lambda i: check_grads(lambda x: np.sum(x**2), lambda x: None, i["w"]), LayerError,
        "`grad` must return an array", id="check-grads-grad-None"),
    # --- what the layer returns ---
    api(lambda i: check_layer(course(scale_forward, backward_returning(
        lambda dx, dw: (dx + 5j, dw))), i), LayerError, "imaginary part", id="complex-grad"),
    api(lambda i: check_layer(course(scale_forward, backward_returning(
        lambda dx, dw: (dx, None))), i), LayerError, "None for dw", id="None-grad"),
    api(lambda i: check_layer(course(scale_forward, backward_returning(
        lambda dx, dw: {"x": dx, "w": dw})), i), LayerError, "a dict for dx", id="dict-grads"),
    api(lambda i: check_layer(course(scale_forward, backward_returning(
        lambda dx, dw: (dx, {"w": dw}))), i), LayerError, "a dict for dw", id="dict-grad"),
    api(lambda i: check_layer(course(scale_forward, backward_returning(
        lambda dx, dw: (dx, np.array(["a", "b", "c"])))), i), LayerError, "dtype <U1",
        id="string-grad"),
    api(lambda i: check_layer(course(forward_returning(lambda x, w: None), scale_backward), i),
        LayerError, "returned None as its output", id="None-output"),
    api(lambda i: check_layer(course(exiting_forward, scale_backward), i), LayerError,
        "sys.exit(0)", "during forward", id="exit-forward"),
    api(lambda i: check_layer(course(scale_forward, exiting_backward), i), LayerError,
        "sys.exit(0)", "during backward", id="exit-backward"),
    api(lambda i: check_layer(course(sleeping, scale_backward), i, timeout=0.3), CheckTimeout,
        "did not finish within 0.3 s", "pass a larger `timeout`", id="timeout"),
    api(lambda i: check_layer(from_class(BatchNormWithLock(3)), {"x": i["x"]}), LayerError,
        "could not copy the layer", id="class-with-lock"),
    api(lambda i: check_layer(from_class(BatchNormWithLock(3)), {"X": i["x"]}), InvalidArgument,
        "must include 'x'", id="class-input-X"),
    api(lambda i: check_layer(course(scale_forward, scale_backward), {"x": i["x"]}),
        InvalidArgument, "must include 'w'", id="function-missing-input"),
    api(lambda i: check_layer(course(scale_forward, scale_backward), {**i, "v": i["w"]}),
        InvalidArgument, "'v'", id="function-unknown-input"),
]


class BatchNormWithLock:
    def __init__(self, d):
        self.params, self.grads = {"w": np.linspace(0.5, 2.0, d)}, {}
        self.lock = threading.Lock()

    def forward(self, x):
        self.x = x
        return x * self.params["w"]

    def backward(self, dout):
        self.grads["w"] = (dout * self.x).sum(0)
        return dout * self.params["w"]


@pytest.mark.parametrize(("call", "error", "words"), API_CASES)
def test_api_hostile_input(call, error, words):
    inputs = xw()
    before = {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in inputs.items()}
    bn_state = oracle_state(BN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error) as info:
            call(inputs)
    assert isinstance(info.value, GradcheckError)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in inputs.items()} == before
    assert oracle_state(BN) == bn_state


def test_api_count_is_at_least_40():
    assert len(API_CASES) >= 40


# --- state that cannot be copied, __slots__, Ctrl-C: nothing lost -------------------------


def test_lock_and_open_file_are_left_alone_and_the_rest_restored(tmp_path):
    layer = Locking(tmp_path / "log.txt")
    running = layer.running
    before = oracle_state(layer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = check_layer(layer, {"x": xw()["x"]})
    said = " ".join(str(w.message) for w in caught)
    assert report.passed and "attributes lock, log cannot be copied" in said
    assert "state changed during the check (attributes calls, history, running, w)" in said
    assert oracle_state(layer) == before and layer.running is running
    assert not layer.lock.locked() and not layer.log.closed
    layer.log.close()


def test_slots_layer_is_restored():
    layer = Slotted()
    scale = layer.scale
    before = oracle_state(layer)
    with pytest.warns(UserWarning, match="state changed.*calls, scale"):
        check_layer(layer, {"x": xw()["x"]})
    assert oracle_state(layer) == before and layer.scale is scale and layer.scale[0] == 2.0


def test_ctrl_c_in_forward_propagates_and_restores_state():
    class Interrupting(Stateful):
        def forward(self, inputs):
            super().forward(inputs)
            raise KeyboardInterrupt

    layer = Interrupting()
    before = oracle_state(layer)
    with pytest.raises(KeyboardInterrupt):
        check_layer(layer, {"x": xw()["x"]})
    assert oracle_state(layer) == before


def test_timeout_restores_state_and_lifts_the_alarm():
    class Slow(Stateful):
        def forward(self, inputs):
            super().forward(inputs)
            time.sleep(5)
            return inputs["x"] * 2.0, inputs["x"]

    layer = Slow()
    before = oracle_state(layer)
    with pytest.raises(CheckTimeout, match="stopped in the layer's forward"):
        check_layer(layer, {"x": xw()["x"]}, timeout=0.2)
    assert oracle_state(layer) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.default_int_handler, None)


def test_timeout_off_the_main_thread_warns_and_runs():
    found = {}

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found["report"] = check_layer(BatchNorm(3), xw() | {}, timeout=5, wrt="x")
            found["warnings"] = [str(w.message) for w in caught]

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert found["report"].passed
    assert any("main thread" in w for w in found["warnings"])


# --- writing reports: interruption and kill -9 leave no temporary files -------------------


def reports_for():
    return [check_layer(BatchNorm(3), {"x": xw()["x"]})]


def test_ctrl_c_while_writing_leaves_no_temporary_file(tmp_path, monkeypatch):
    reports = reports_for()

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_reports(reports, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_stale_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    stale = tmp_path / ".gradcheck-tmp-summary.txt.abc123.tmp"
    fresh = tmp_path / ".gradcheck-tmp-results.json.def456.tmp"
    theirs = tmp_path / ".summary.txt.old.tmp"  # not ours: never touched
    for path in (stale, fresh, theirs):
        path.write_text("partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(theirs, (old, old))
    write_reports(reports_for(), tmp_path)
    assert not stale.exists() and fresh.exists() and theirs.exists()


def test_cli_write_error_is_exit_2(scratch, capsys, monkeypatch):
    def full(*_args, **_kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gradcheck.report._write_atomic", full)
    assert main([*op(), "--out", "reports"]) == 2
    err = capsys.readouterr().err
    assert "could not be written" in err and "No space left" in err and "Traceback" not in err
