"""Replay files: a failing check's exact inputs, ``dout`` and seed, to run it again bit for bit.

``gradcheck check ... --out DIR`` writes ``DIR/replay.npz`` when the check does not pass and
prints the one command that replays it, ``gradcheck replay DIR/replay.npz``. The file holds
every input the check used (the layer's own parameters included) in the check's dtype, the
upstream gradient, and a JSON record of the seed, the method, the mode, the gradients checked
and how to rebuild the layer (the file and the ``--op``/``--layer`` options). Same inputs, same
``dout``, same seed: the replayed check computes the same numbers, bit for bit.

Layout of the ``.npz``: ``input:<name>`` per input, ``dout``, and ``meta`` (a 0-d string array
holding the JSON record, with ``"format": "gradcheck-replay"`` and ``"version": 1``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradcheck.errors import InvalidArgument
from gradcheck.results import CheckReport

__all__ = ["FILE_NAME", "Replay", "load_replay", "replay_command", "write_replay"]

FILE_NAME = "replay.npz"
_FORMAT, _VERSION = "gradcheck-replay", 1


@dataclass(frozen=True)
class Replay:
    """What a replay file holds."""

    inputs: dict[str, np.ndarray]
    dout: np.ndarray
    seed: int
    method: str
    mode: str
    wrt: list[str]
    layer: dict[str, Any]  # how the command line built the layer (file, op, layer, kwarg, ...)
    case: str = ""  # the report's label (property mode: the shrunk case and its flags)


def _arrays(report: CheckReport) -> tuple[dict[str, np.ndarray], np.ndarray]:
    evidence = next((r.evidence for r in report.results if r.evidence is not None), None)
    if evidence is None:
        raise InvalidArgument(f"`report` of {report.layer} carries no evidence to replay (a "
                              "check that did not reach its numerical side)")
    dtype = np.dtype(report.dtype)
    inputs = {k: np.asarray(v).astype(dtype) for k, v in evidence.inputs.items()}
    return inputs, np.asarray(evidence.dout).astype(dtype)


def write_replay(report: CheckReport, path: str | os.PathLike[str], *, method: str,
                 mode: str, layer: Mapping[str, Any]) -> Path:
    """Write ``report``'s inputs, ``dout`` and seed to ``path`` (atomically).

    Parameters
    ----------
    report : CheckReport
        A check made by :func:`gradcheck.check_layer` (its gradients carry their evidence).
    path : str or path
        The ``.npz`` file to write; its directory must exist.
    method, mode : str
        As given to the check (``auto`` stays ``auto``: the replay repeats the choice).
    layer : mapping
        JSON-ready description of how to rebuild the layer.

    Returns
    -------
    Path
        ``path``.
    """
    inputs, dout = _arrays(report)
    meta = {"format": _FORMAT, "version": _VERSION, "seed": report.seed, "method": method,
            "mode": mode, "wrt": [r.name for r in report.results], "layer": dict(layer),
            "dtype": report.dtype, "case": report.case}
    arrays: dict[str, Any] = {f"input:{k}": v for k, v in inputs.items()}
    arrays.update(dout=dout, meta=np.array(json.dumps(meta)))
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def load_replay(path: str | os.PathLike[str]) -> Replay:
    """Read a replay file written by :func:`write_replay`.

    Raises
    ------
    InvalidArgument
        The file is missing or is not a gradcheck replay file.

    Examples
    --------
    >>> load_replay("missing.npz")
    Traceback (most recent call last):
    ...
    gradcheck.errors.InvalidArgument: `FILE.npz` must be an existing replay file, got 'missing.npz'
    """
    file = Path(path)
    if not file.is_file():
        raise InvalidArgument(f"`FILE.npz` must be an existing replay file, got {str(path)!r}")
    try:
        with np.load(file, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"][()]))
            inputs = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("input:")}
            dout = data["dout"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"`FILE.npz` must be a gradcheck replay file, got {str(path)!r} "
                              f"({type(exc).__name__}: {exc})") from exc
    if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
        raise InvalidArgument(f"`FILE.npz` must be a gradcheck replay file (version {_VERSION}),"
                              f" got {str(path)!r}")
    return Replay(inputs, dout, int(meta["seed"]), meta["method"], meta["mode"],
                  list(meta["wrt"]), dict(meta["layer"]), str(meta.get("case", "")))


def replay_command(path: str | os.PathLike[str]) -> str:
    """The command that replays ``path``.

    Examples
    --------
    >>> replay_command("reports/replay.npz")
    'gradcheck replay reports/replay.npz'
    """
    text = str(path)
    return f"gradcheck replay {text if ' ' not in text else repr(text)}"
