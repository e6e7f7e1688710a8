"""How often the diagnosis headline names each learner mistake right: three shapes x three seeds.

Runs every gradient mistake of ``tests/bn_catalog.py`` and ``tests/learner_catalog.py`` (through
``tests/diagnosis_cases.py``) at the op's three shapes and seeds 0, 1, 2, and every op's correct
layer at the same nine points, and writes the per-mistake hit rate to ``reports/diagnosis.md``.
A hit: the check fails and its headline names the cause written in the catalog for the mistake.

    .venv/bin/python bench/diagnosis.py [--out reports] [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import diagnosis_cases as dc  # noqa: E402
import learner_catalog as lc  # noqa: E402

TARGET = 0.8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows, misses = [], []
    for name, (op, expected) in sorted(dc.mistakes().items(), key=lambda t: (t[1][0], t[0])):
        hits = runs = 0
        for shape in dc.shapes(op):
            for seed in range(args.seeds):
                out = dc.run(name, op, shape, seed, expected=expected)
                runs += 1
                hits += out.right
                if not out.right:
                    misses.append(f"{name} at {shape}, seed {seed}: got {dict(out.got)}")
        cause = ", ".join(f"d{k}: {v}" for k, v in expected.items())
        rows.append((op, name, cause, hits, runs))
    claimed = defaultdict(int)
    for op in sorted([*lc.OPS, "batchnorm"]):
        for shape in dc.shapes(op):
            for seed in range(args.seeds):
                claimed[op] += dc.run("", op, shape, seed, correct=True).failed
    text = _markdown(rows, claimed, misses, args.seeds, time.perf_counter() - start)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "diagnosis.md").write_text(text, encoding="utf-8")
    print(text)
    ok = all(h / r >= TARGET for *_, h, r in rows) and not any(claimed.values())
    return 0 if ok else 1


def _markdown(rows, claimed, misses, seeds, seconds) -> str:
    ops = sorted({r[0] for r in rows})
    below = [r for r in rows if r[3] / r[4] < TARGET]
    lines = [
        "# The diagnosis headline on learners' mistakes",
        "",
        f"`.venv/bin/python bench/diagnosis.py` ({seconds:.0f} s): {len(rows)} mistakes across "
        f"{len(ops)} ops, each at three shapes x {seeds} seeds. A hit: the check fails and the "
        "headline names the cause the catalog writes for the mistake (from the broken code, "
        "not from the diagnosis).",
        "",
        f"- mistakes named right in at least {TARGET:.0%} of runs: "
        f"{len(rows) - len(below)} of {len(rows)}",
        f"- overall hit rate: {sum(r[3] for r in rows)} of {sum(r[4] for r in rows)} runs",
        f"- correct layers with a cause claimed or a failure: "
        f"{sum(claimed.values())} of {len(claimed) * 3 * seeds} runs",
        "",
        "| op | mistake | expected cause | hits |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {op} | {name} | {cause} | {h}/{r} |" for op, name, cause, h, r in rows]
    if misses:
        lines += ["", "## Misses", ""] + [f"- {m}" for m in misses]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
