"""The supervised worker (gradcheck.worker): a layer cannot write the verdict, the exit code or
the reports, and cannot outlive or outrun the check.

Every attack runs the real command in a subprocess, with a layer whose backward is wrong (the
gradient of ``x * w`` with ``dx`` 1% too large): the only honest outcome is FAIL with exit 1, or
exit 3 with the cause when the layer's process dies. The attacks are the ones issue 22 lists and
their obvious variants.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from gradcheck.worker.wire import Arena, Channel, Handle, WireError, decode, encode

WRONG = """
import numpy as np

def scale_forward(x, w):
    return x * w, (x, w)

def scale_backward(dout, cache):
    x, w = cache
    return dout * w * 1.01, (dout * x).sum(0)
"""
ARGS = ["--op", "scale", "--shape", "x=4,3", "--shape", "w=3"]


def run(tmp_path: Path, attack: str, *extra: str, timeout: float = 60.0,
        body: str = WRONG) -> subprocess.CompletedProcess[str]:
    """``gradcheck check layer.py`` on the wrong layer with ``attack`` at its top level."""
    (tmp_path / "layer.py").write_text(body + "\n" + textwrap.dedent(attack))
    return subprocess.run(
        [sys.executable, "-m", "gradcheck", "check", "layer.py", *ARGS, *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def verdict(stdout: str) -> str:
    return "pass" if json.loads(stdout)["passed"] else "fail"


# --- a wrong backward is always FAIL, exit 1, whatever the file does at import ---------------

PATCHES = {
    "exit-code-helper": """
        import gradcheck.cli
        gradcheck.cli._exit_code = lambda *a, **k: 0
    """,
    "check-layer": """
        import gradcheck, gradcheck.check
        real = gradcheck.check.check_layer
        def fake(*a, **k):
            import dataclasses
            report = real(*a, **k)
            return dataclasses.replace(report, results=tuple(
                dataclasses.replace(r, status="pass") for r in report.results))
        gradcheck.check.check_layer = gradcheck.check_layer = fake
    """,
    "budget": """
        import gradcheck.tolerance as t
        t.Tolerance.__init__.__defaults__  # touched, then replaced
        import gradcheck._engine.ladder as ladder
        ladder.judge_elements = lambda *a, **k: None
    """,
    "numpy-functions": """
        import numpy
        numpy.max = lambda *a, **k: 0.0
        numpy.abs = lambda a, *r, **k: a * 0
        numpy.allclose = lambda *a, **k: True
        numpy.isfinite = lambda a, *r, **k: numpy.ones(numpy.shape(a), bool)
    """,
    "sys-modules": """
        import sys, types
        import gradcheck.check
        fake = types.ModuleType("gradcheck.tolerance")
        sys.modules["gradcheck.tolerance"] = fake
        sys.modules["gradcheck.report"] = fake
        sys.modules["gradcheck.check"] = fake
    """,
    "builtins": """
        import builtins
        builtins.print = lambda *a, **k: None
        builtins.max = lambda *a, **k: 0
    """,
    "dup2-stdout": """
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    """,
    "signal-handlers": """
        import signal
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
            signal.signal(s, signal.SIG_IGN)
    """,
}


@pytest.mark.parametrize("attack", list(PATCHES.values()), ids=list(PATCHES))
def test_patching_at_import_cannot_pass_a_wrong_backward(tmp_path, attack):
    done = run(tmp_path, attack, "--format", "json")
    assert done.returncode == 1, done.stderr
    assert verdict(done.stdout) == "fail"


@pytest.mark.parametrize("when", ["at-import", "in-backward"])
def test_writing_on_every_descriptor_is_no_verdict_at_worst(tmp_path, when):
    """The layer's process can write into its own channel: the parent then reads garbage and
    stops with exit 3, no verdict; stdout stays the parent's alone."""
    forge = textwrap.dedent("""
        import os
        def forge():
            forged = b'{"passed": true, "reports": []}'
            for fd in range(0, 64):
                try:
                    os.write(fd, forged)
                except OSError:
                    pass
    """)
    call = "forge()" if when == "at-import" else textwrap.dedent("""
        def scale_backward(dout, cache):
            forge()
            return dout, dout.sum(0)
    """)
    done = run(tmp_path, forge + call, "--format", "json")
    assert done.returncode == 3, done.stderr
    assert "no verdict" in done.stderr and done.stdout == ""


def test_a_reused_output_buffer_is_owned_by_the_checker(tmp_path):
    body = """
import numpy as np
_DX = np.zeros((4, 3))
_DW = np.zeros(3)

def scale_forward(x, w):
    return x * w, (x, w)

def scale_backward(dout, cache):
    x, w = cache
    np.multiply(dout, w * 1.01, out=_DX)   # wrong, into a buffer reused by every call
    np.sum(dout * x, axis=0, out=_DW)
    return _DX, _DW
"""
    for mode in ([], ["--in-process"]):
        done = run(tmp_path, "", "--format", "json", *mode, body=body)
        assert done.returncode == 1, (mode, done.stderr)
        assert verdict(done.stdout) == "fail"


# --- the layer's process ending is exit 3 with its cause, never 0 ----------------------------


@pytest.mark.parametrize(("attack", "words"), [
    pytest.param("""
        import os
        def scale_backward(dout, cache):
            os._exit(0)
    """, ["exited with status 0", "backward"], id="os-exit-0-in-backward"),
    pytest.param("""
        import os
        os._exit(0)
    """, ["exited with status 0", "import"], id="os-exit-0-at-import"),
    pytest.param("""
        import ctypes
        def scale_forward(x, w):
            ctypes.string_at(0)
    """, ["SIGSEGV"], id="segfault-in-forward"),
    pytest.param("""
        import os, signal
        def scale_backward(dout, cache):
            os.kill(os.getpid(), signal.SIGKILL)
    """, ["SIGKILL"], id="killed-in-backward"),
])
def test_a_lost_worker_is_exit_3_with_its_cause(tmp_path, attack, words):
    done = run(tmp_path, attack)
    assert done.returncode == 3, done.stderr
    for word in words:
        assert word in done.stderr
    assert "no verdict" in done.stderr
    assert done.stdout == ""


def test_the_memory_limit_ends_the_check_with_exit_3(tmp_path):
    done = run(tmp_path, """
        import numpy as np
        def scale_forward(x, w):
            hog = np.ones(10**9)   # 8 GB
            return x * w, (x, w)
    """, "--max-memory", "512M")
    assert done.returncode == 3, done.stderr
    assert "MemoryError" in done.stderr or "killed" in done.stderr


# --- the time limit is the parent's: no signal handling in the layer defeats it --------------


@pytest.mark.parametrize("attack", [
    pytest.param("""
        import signal
        def scale_forward(x, w):
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            while True:
                pass
    """, id="ignores-sigalrm"),
    pytest.param("""
        import signal
        def scale_forward(x, w):
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, lambda *a: None)
            while True:
                signal.setitimer(signal.ITIMER_REAL, 0)
    """, id="resets-timers"),
    pytest.param("""
        import ctypes, signal
        def scale_forward(x, w):
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM, signal.SIGINT])
            ctypes.CDLL(None).sleep(1000)   # in C, with the alarm blocked
    """, id="sleeps-in-c"),
])
def test_timeout_stops_a_layer_that_defends_itself(tmp_path, attack):
    start = time.monotonic()
    done = run(tmp_path, attack, "--timeout", "5", timeout=30)
    took = time.monotonic() - start
    assert done.returncode == 3, done.stderr
    assert "5" in done.stderr and "timeout" in done.stderr.lower()
    assert took < 6.0 + 2.5, took  # the limit, plus the interpreters starting on a busy machine


# --- nothing the layer leaves behind outlives the check or writes the reports ----------------


LEFTOVERS = {
    "non-daemon-thread": """
        import threading, time, pathlib, json
        def forge():
            time.sleep(1.5)
            pathlib.Path("out/results.json").write_text(json.dumps({"verdict": "pass"}))
        threading.Thread(target=forge).start()
    """,
    "atexit": """
        import atexit, pathlib, json
        atexit.register(lambda: pathlib.Path("out/results.json").write_text(
            json.dumps({"verdict": "pass"})))
    """,
    "detached-child": """
        import os, time, pathlib, json
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(1.5)
                pathlib.Path("out/results.json").write_text(json.dumps({"verdict": "pass"}))
            os._exit(0)
    """,
    "forged-files-now": """
        import pathlib, json
        pathlib.Path("out").mkdir(exist_ok=True)
        for name in ("results.json", "summary.txt"):
            pathlib.Path("out", name).write_text(json.dumps({"verdict": "pass"}))
    """,
}


@pytest.mark.parametrize("attack", list(LEFTOVERS.values()), ids=list(LEFTOVERS))
def test_reports_are_the_parents_and_nothing_outlives_the_check(tmp_path, attack):
    start = time.monotonic()
    done = run(tmp_path, attack, "--out", "out", timeout=30)
    assert time.monotonic() - start < 10  # a leftover thread does not keep the command alive
    assert done.returncode == 1, done.stderr
    time.sleep(2.5)  # long enough for anything left behind to try
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["passed"] is False
    assert "FAIL" in (tmp_path / "out" / "summary.txt").read_text()


def test_chdir_at_import_does_not_move_a_relative_out(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    done = run(tmp_path, """
        import os
        os.chdir("elsewhere")
    """, "--out", "reports")
    assert done.returncode == 1, done.stderr
    assert (tmp_path / "reports" / "results.json").is_file()
    assert not (tmp_path / "elsewhere" / "reports").exists()


def test_an_out_directory_swapped_for_a_symlink_is_refused(tmp_path):
    target = tmp_path / "victim"
    target.mkdir()
    (tmp_path / "out").mkdir()
    done = run(tmp_path, f"""
        import os
        os.rename("out", "out.moved")
        os.symlink({str(target)!r}, "out")
    """, "--out", "out")
    assert done.returncode == 2, done.stderr
    assert "refusing to write" in done.stderr and "symbolic link" in done.stderr
    assert list(target.iterdir()) == []


def test_the_layers_prints_never_reach_stdout(tmp_path):
    done = run(tmp_path, """
        import sys, os
        print("noise at import")
        sys.stdout.write("more noise")
        os.write(1, b"raw noise")
    """, "--format", "json")
    assert done.returncode == 1
    assert verdict(done.stdout) == "fail"  # stdout is exactly the report
    assert "noise at import" in done.stderr and "raw noise" in done.stderr


def test_ctrl_c_reaches_gradcheck_not_the_layer(tmp_path):
    (tmp_path / "layer.py").write_text(WRONG + textwrap.dedent("""
        import time
        def scale_forward(x, w):
            time.sleep(1000)
    """))
    proc = subprocess.Popen([sys.executable, "-m", "gradcheck", "check", "layer.py", *ARGS],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(3.0)
    proc.send_signal(2)  # SIGINT, as Ctrl-C sends it to the foreground process
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "interrupted" in err


# --- the wire: what the parent accepts from the worker -----------------------------------------


@pytest.mark.parametrize("value", [
    np.arange(6.0).reshape(2, 3), np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.array([1 + 2j], np.complex64), np.float32(3.5), (1, [2.0, None], {"a": "b"}),
    np.zeros((0, 3)), np.array(True),
])
def test_values_cross_the_boundary_unchanged(value):
    tree, buffers = encode(value)
    back = decode(json.loads(json.dumps(tree)), buffers)
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and back.shape == value.shape
        assert np.array_equal(back, value)
        assert back.flags.f_contiguous == value.flags.f_contiguous
        assert back.flags.owndata and back.flags.writeable
    else:
        assert repr(back) == repr(value)


@pytest.mark.parametrize(("tree", "buffers", "words"), [
    pytest.param({"A": 0, "dtype": "|O", "shape": [1], "order": "C"}, [b"\0" * 8],
                 "does not carry", id="object-dtype"),
    pytest.param({"A": 0, "dtype": "<f8", "shape": [2], "order": "C"}, [b"\0" * 8],
                 "came with 8 bytes", id="short-buffer"),
    pytest.param({"A": 3, "dtype": "<f8", "shape": [1], "order": "C"}, [b"\0" * 8],
                 "buffer 3", id="missing-buffer"),
    pytest.param({"A": 0, "dtype": "[('a', '<f8')]", "shape": [1], "order": "C"}, [b"\0" * 8],
                 "dtype", id="record-dtype"),
    pytest.param({"P": "cos\nsystem\n"}, [], "unexpected keys", id="unknown-key"),
    pytest.param({"A": 0, "dtype": "<f8", "shape": [-1], "order": "C"}, [b""], "shape",
                 id="negative-shape"),
])
def test_the_parent_refuses_malformed_messages(tree, buffers, words):
    with pytest.raises(WireError, match=words):
        decode(tree, buffers)


def test_objects_stay_in_the_worker_as_handles():
    kept = []

    def keep(value):
        kept.append(value)
        return Handle(len(kept), type(value).__name__)

    tree, _ = encode({"cache": (object(), lambda: 1)}, keep)
    back = decode(tree, [])
    assert back == {"cache": (Handle(1, "object"), Handle(2, "function"))}
    with pytest.raises(WireError, match="cannot send"):
        encode(object())


def test_a_truncated_message_is_the_end_of_the_channel():
    read, write = os.pipe()
    os.write(write, b"\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00{")
    os.close(write)
    with pytest.raises(WireError, match="end of file"):
        Channel(read, -1).receive()
    os.close(read)


def _loopback(size: int = 1 << 20) -> tuple[Channel, Arena, list[int]]:
    """A channel that reads what it sends, its arrays through one process's shared arena."""
    fds = Arena.segments(size)
    if fds is None:
        pytest.skip("no sealed shared memory here (memfd_create is Linux only)")
    arena = Arena(fds[:2], fds[:2], size)
    read, write = os.pipe()
    return Channel(read, write, arena=arena), arena, [read, write, *fds]


def test_arrays_through_shared_memory_are_copied_into_arrays_the_parent_owns():
    channel, arena, fds = _loopback()
    try:
        sent = np.arange(4096.0).reshape(64, 64)
        tree, buffers = encode({"x": sent, "small": np.ones(3)})
        channel.send(tree, buffers)
        header, received = channel.receive()
        assert channel.counts["shared_bytes"] == 2 * sent.nbytes  # sent and received
        back = decode(header, received)
        arena.outgoing[0][:] = 0  # the sender writes its segment again: our copy stays
        assert np.array_equal(back["x"], sent) and np.array_equal(back["small"], np.ones(3))
        assert back["x"].flags.owndata and back["x"].flags.writeable
    finally:
        for fd in fds:
            os.close(fd)


def test_a_shared_segment_cannot_be_shrunk_by_the_other_side():
    fds = Arena.segments(1 << 20)
    if fds is None:
        pytest.skip("no sealed shared memory here (memfd_create is Linux only)")
    try:
        with pytest.raises(PermissionError):
            os.ftruncate(fds[0], 4096)  # reading past a truncated file's end would be SIGBUS
    finally:
        for fd in fds:
            os.close(fd)


def test_a_buffer_outside_the_shared_segment_is_refused():
    channel, _, fds = _loopback()
    write = fds[1]
    try:
        head = b'{"A": 0, "dtype": "<f8", "shape": [8], "order": "C"}'
        os.write(write, struct.pack("<QI", len(head), 1) + head
                 + struct.pack("<QQQ", 64 | 1 << 63, 0, (1 << 20) - 8))
        with pytest.raises(WireError, match="not there"):
            channel.receive()
    finally:
        for fd in fds:
            os.close(fd)


def test_a_batch_of_perturbed_forwards_gives_the_in_process_outputs():
    from gradcheck import BatchNorm, isolated

    layer = BatchNorm(3)
    x = np.random.default_rng(0).normal(size=(5, 3))
    inputs = {"x": x, "gamma": np.ones(3), "beta": np.zeros(3)}
    ks, values = np.arange(15), x.reshape(-1) + 1e-3
    with isolated(layer) as remote:
        found = list(remote.forward_perturbed(inputs, "x", x, ks, values, False))
        again = list(remote.forward_perturbed(inputs, "x", x, ks[:3], values[:3], True))
    assert len(found) == 15 and len(again) == 3
    for k, (out, cache) in zip(ks, found, strict=True):
        here = x.copy()
        here.flat[k] = values[k]
        assert cache is None
        assert np.array_equal(out, layer.forward({**inputs, "x": here})[0])
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(found, again, strict=False))


def test_a_batch_stopped_early_leaves_the_next_requests_their_own_answers():
    from gradcheck import BatchNorm, isolated

    layer = BatchNorm(3)
    x = np.random.default_rng(1).normal(size=(200, 3))
    inputs = {"x": x, "gamma": np.ones(3), "beta": np.zeros(3)}
    ks, values = np.arange(600), x.reshape(-1) + 1e-3
    with isolated(layer) as remote:
        stream = remote.forward_perturbed(inputs, "x", x, ks, values, False)
        for _ in range(17):  # the first message (16 points, to time the layer), then two more
            next(stream)  # queued, one of them read
        out, _ = remote.forward(inputs)  # the abandoned batch's answer is read and dropped
        with pytest.raises(RuntimeError, match="dropped"):
            for _ in range(600):
                next(stream)
        stream.close()
        again, _ = remote.forward(inputs)
    assert np.array_equal(out, layer.forward(inputs)[0]) and np.array_equal(again, out)


# --- the same numbers on both sides of the boundary --------------------------------------------

BN = """
import numpy as np

def bn_forward(x, gamma, beta):
    mu = x.mean(axis=0)
    xc = x - mu
    std = np.sqrt((xc * xc).mean(axis=0) + 1e-5)
    return gamma * xc / std + beta, (xc / std, std, gamma)

def bn_backward(dout, cache):
    xhat, std, gamma = cache
    g = dout * gamma
    dx = (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)

def relu_forward(x):
    return np.maximum(x, 0.0), x

def relu_backward(dout, cache):
    return (dout * (cache > 0),)
"""


@pytest.fixture(scope="module")
def both_sides(tmp_path_factory):
    from gradcheck.doorway import open_module
    from gradcheck.worker.remote import RemoteWorkshop
    from gradcheck.worker.supervisor import Worker

    path = tmp_path_factory.mktemp("bn") / "bn_pair.py"
    path.write_text(BN)
    worker = Worker()
    try:
        yield open_module(str(path)), RemoteWorkshop(worker, str(path))
    finally:
        worker.close()


def _numbers(report):
    return [(r.status, r.method, r.nfev, r.max_abs_error, r.worst_index) for r in report.results]


@pytest.mark.parametrize("method", ["auto", "complex", "central", "richardson"])
@pytest.mark.parametrize("mode", ["full", "sampled", "directional"])
@pytest.mark.parametrize("op", ["bn", "relu"])
def test_the_worker_computes_the_same_verdict_bit_for_bit(both_sides, method, mode, op):
    """Batched evaluations behind the boundary give exactly the in-process numbers."""
    from gradcheck import check_layer

    here, there = both_sides
    rng = np.random.default_rng(5)
    if op == "bn":
        inputs = {"x": rng.normal(1.0, 2.0, (40, 3)), "gamma": rng.normal(1.0, 0.5, 3),
                  "beta": rng.normal(size=3)}
    else:
        inputs = {"x": rng.normal(size=(30, 4))}
    local = here.pair_layer(op, f"{op}_forward", f"{op}_backward", {})
    remote = there.pair_layer(op, f"{op}_forward", f"{op}_backward", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = check_layer(local, inputs, method=method, mode=mode)
        b = check_layer(remote, inputs, method=method, mode=mode)
    assert _numbers(a) == _numbers(b)


# --- the worker from Python: gradcheck.isolated ------------------------------------------------


def test_isolated_file_pair_is_judged_here(tmp_path):
    from gradcheck import check_layer, isolated

    path = tmp_path / "layer.py"
    path.write_text(WRONG + "\nimport gradcheck.check\ngradcheck.check.check_layer = None\n")
    rng = np.random.default_rng(0)
    with isolated(file=str(path), forward="scale_forward", backward="scale_backward") as layer:
        report = check_layer(layer, {"x": rng.normal(size=(4, 3)), "w": rng.normal(size=3)})
    assert [r.status for r in report.results] == ["fail", "pass"]


def test_isolated_needs_a_picklable_layer():
    from gradcheck import InvalidArgument, from_callables, isolated

    with pytest.raises(InvalidArgument, match="pickling it raised"), isolated(
            from_callables(lambda x: np.sum(x), lambda x: np.ones_like(x))):
        pass
    with pytest.raises(InvalidArgument, match="exactly one"), isolated():
        pass


# --- a pool of workers (--workers N) -----------------------------------------------------------


def test_a_pool_gives_the_numbers_of_one_worker(tmp_path):
    from gradcheck import check_layer
    from gradcheck.worker.remote import RemoteWorkshop, Replicated
    from gradcheck.worker.supervisor import Worker

    path = tmp_path / "bn_pair.py"
    path.write_text(BN)
    inputs = {"x": np.random.default_rng(2).normal(size=(30, 3)), "gamma": np.ones(3),
              "beta": np.zeros(3)}
    workers = [Worker(), Worker()]
    try:
        pool = Replicated([RemoteWorkshop(w, str(path)) for w in workers])
        one = RemoteWorkshop(workers[0], str(path))
        for method in ("complex", "richardson"):
            a = check_layer(one.pair_layer("bn", "bn_forward", "bn_backward", {}), inputs,
                            method=method, mode="full")
            b = check_layer(pool.pair_layer("bn", "bn_forward", "bn_backward", {}), inputs,
                            method=method, mode="full")
            assert _numbers(a) == _numbers(b)
    finally:
        for w in workers:
            w.close()


def test_a_layer_that_depends_on_its_process_runs_in_one_worker(tmp_path):
    (tmp_path / "layer.py").write_text("""
import os
import numpy as np

def pid_forward(x):
    return x * (1.0 + 1e-3 * (os.getpid() % 7)), None

def pid_backward(dout, cache):
    return (dout * (1.0 + 1e-3 * (os.getpid() % 7)),)
""")
    done = subprocess.run(
        [sys.executable, "-m", "gradcheck", "check", "layer.py", "--op", "pid", "--shape",
         "x=6,5", "--mode", "full", "--workers", "2", "--format", "json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    warned = " ".join(doc.get("warnings", []) + [w for r in doc.get("reports", [])
                                                  for w in r.get("warnings", [])])
    assert "different outputs in the pool's worker processes" in warned


# --- the adversary's second round ----------------------------------------------------------------


def test_a_deep_chain_of_detached_processes_is_ended_before_the_reports(tmp_path):
    """A helper in its own session that hides behind a chain of 150 parents: all are found
    (whole subtrees, stopped before killed), so nothing rewrites the reports afterwards."""
    done = run(tmp_path, """
        import os, time, pathlib, json
        if os.fork() == 0:
            os.setsid()
            for depth in range(150):
                if os.fork() != 0:
                    os.wait()
                    os._exit(0)
            time.sleep(2.0)
            pathlib.Path("out/results.json").write_text(json.dumps({"passed": True}))
            os._exit(0)
    """, "--out", "out", timeout=60)
    assert done.returncode == 1, done.stderr
    time.sleep(3.0)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["passed"] is False


def test_sigterm_from_the_layer_ends_everything_without_a_verdict(tmp_path):
    done = run(tmp_path, """
        import os, signal, time, pathlib
        if os.fork() == 0:
            os.setsid()
            time.sleep(2.0)
            pathlib.Path("late.txt").write_text("still here")
            os._exit(0)
        time.sleep(0.5)
        os.kill(os.getppid(), signal.SIGTERM)
        time.sleep(5)
    """, timeout=60)
    assert done.returncode == 128 + 15, done.stderr
    assert "without a verdict" in done.stderr
    time.sleep(3.0)
    assert not (tmp_path / "late.txt").exists()


def test_a_frame_larger_than_the_memory_limit_is_refused_unread(tmp_path):
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = run(tmp_path, """
        import os, struct, sys
        def scale_forward(x, w):
            fd = int(sys.argv[2])   # the worker's answer channel
            head = b'{"ok": {"result": null, "changed": {}, "handles_changed": []}}'
            os.write(fd, struct.pack("<QI", len(head), 1) + head + struct.pack("<Q", 1 << 30))
            os.write(fd, b"\\0" * (1 << 20))
            import time
            time.sleep(30)
    """, "--max-memory", "256M", timeout=60)
    assert done.returncode == 3, done.stderr
    assert "more than" in done.stderr and "no verdict" in done.stderr
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # kilobytes: the parent never held the gigabyte. ru_maxrss is the largest of all children so
    # far: under xdist an earlier child (a worker that imported torch, ~700 MB) may have set it,
    # and then it stays equal.
    assert after <= max(before, 400_000)


def test_code_planted_in_gradcheck_after_the_worker_starts_never_runs_here(tmp_path):
    import shutil

    import gradcheck

    copy = tmp_path / "site"
    shutil.copytree(Path(gradcheck.__file__).parent, copy / "gradcheck",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "layer.py").write_text(WRONG + textwrap.dedent(f"""
        import glob
        for path in glob.glob({str(copy / "gradcheck")!r} + "/**/*.py", recursive=True):
            with open(path, "a") as f:
                f.write("\\nimport os as _o\\n_o._exit(0)\\n")
    """))
    done = subprocess.run(
        [sys.executable, "-m", "gradcheck", "check", "layer.py", *ARGS],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"})
    # the worker may run it (it imports after the layer): no verdict at worst, never exit 0
    assert done.returncode in (1, 3), done.stderr
    assert "PASS" not in done.stdout
