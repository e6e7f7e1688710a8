"""How gradcheck's verdicts fare on the adversarial catalogue (tests/adversary_catalog.py).

Runs ``gradcheck.check_layer`` on every case in modes full, sampled, directional and auto for
several seeds (the seed drives both the inputs and the check). The backward is wrapped: at every
call whose ``dout`` has the inputs' dtype, the correct backward is evaluated on the same ``dout``
and cache, so each bug's size is measured exactly, per gradient, as ``||bug - true||_inf /
||true||_inf`` (the 2-norm ratio is recorded as well). ``size_first`` is the size at the first such
call; the verdicts are classified with ``size``, the largest over those calls (they agree except
for a layout-dependent forward, whose first call may see a copy with another memory order).

Counts:
  false alarm      a correct case with a gradient whose status is fail, shape or nonfinite
                   ('inconclusive' is counted separately, as a rate)
  miss > det       a bug gradient with size > its reported ``detectable`` (and > 0) whose status
                   is not fail/shape/nonfinite (ratio size/detectable recorded)
  gross miss       a bug gradient of size > 1e-6 with status pass, zero or kink (split into those
                   above detectable and those where `detectable` itself says the check had no
                   power, yet the status is pass/zero/kink rather than inconclusive)
  crash            an exception from gradcheck (listed with its message)
  not exercised    a bug identical to the correct backward on the inputs gradcheck passed

    .venv/bin/python bench/adversary.py [--seeds 3] [--mode full,sampled,directional,auto]
        [--family SUBSTR] [--case SUBSTR] [--jobs 2] [--json PATH] [--timeout 120]

To measure a given tree of gradcheck, put it first on the path: ``PYTHONPATH=/path/to/tree``.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import adversary_catalog as ac  # noqa: E402

FAILS = {"fail", "shape", "nonfinite"}
QUIET_PASS = {"pass", "zero", "kink"}
MODES = ("full", "sampled", "directional", "auto")
GROSS = 1e-6

CASES: list[ac.Case] = ac.cases()


def _sizes(bug: Any, true: Any) -> tuple[float, float]:
    """(inf-norm, 2-norm) relative size of bug - true; inf when shapes differ or non-finite."""
    try:
        b = np.asarray(bug)
        t = np.asarray(true)
    except Exception:
        return math.inf, math.inf
    if b.shape != t.shape or not np.issubdtype(b.dtype, np.number):
        return math.inf, math.inf
    b = b.astype(np.float64)
    t = t.astype(np.float64)
    if not np.all(np.isfinite(b)):
        return math.inf, math.inf
    d = b - t
    if not np.any(d):
        return 0.0, 0.0
    ti, t2 = float(np.max(np.abs(t))), float(np.linalg.norm(t))
    di, d2 = float(np.max(np.abs(d))), float(np.linalg.norm(d))
    return (di / ti if ti else math.inf), (d2 / t2 if t2 else math.inf)


def _f(v: Any) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v


def run_task(task: tuple[int, str, int, float]) -> dict[str, Any]:
    import warnings

    import gradcheck

    ci, mode, seed, timeout = task
    case = CASES[ci]
    inputs = case.make_inputs(np.random.default_rng(seed))
    names = list(inputs)
    in_dtype = np.result_type(*inputs.values())
    rec: dict[str, Any] = {"sizes": None, "first": None, "calls": 0, "measured": 0}

    def backward(dout, cache):
        grads = case.backward(dout, cache)
        rec["calls"] += 1
        if np.asarray(dout).dtype == in_dtype:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                true = case.correct_backward(dout, cache)
            sz = [_sizes(g, t) for g, t in zip(grads, true, strict=False)]
            rec["measured"] += 1
            if rec["first"] is None:
                rec["first"] = sz
                rec["sizes"] = sz
            else:
                rec["sizes"] = [(max(a[0], b[0]), max(a[1], b[1]))
                                for a, b in zip(rec["sizes"], sz, strict=False)]
        return grads

    row: dict[str, Any] = {"family": case.family, "case": case.name, "kind": case.kind,
                           "mode": mode, "seed": seed, "grads": {}, "crash": None,
                           "problems": [], "sized": False}
    t0 = time.perf_counter()
    try:
        layer = gradcheck.from_functions(case.forward, backward)
        report = gradcheck.check_layer(layer, inputs, mode=mode, seed=seed, timeout=timeout)
    except Exception as e:
        row["crash"] = f"{type(e).__name__}: {e}"[:400]
        row["traceback"] = traceback.format_exc()[-1500:]
        row["seconds"] = time.perf_counter() - t0
        return row
    row["seconds"] = time.perf_counter() - t0
    row["problems"] = [str(p)[:200] for p in (getattr(report, "problems", None) or [])]
    row["verdict"] = str(report.verdict)  # a run problem (a backward that mutates) fails it too
    row["sized"] = rec["sizes"] is not None
    row["backward_calls"] = rec["calls"]
    row["measured_calls"] = rec["measured"]
    sizes = rec["sizes"] or [(math.nan, math.nan)] * len(names)
    first = rec["first"] or [(math.nan, math.nan)] * len(names)
    for r in report.results:
        i = names.index(r.name) if r.name in names else None
        ok = i is not None and i < len(sizes)
        s_inf, s_2 = sizes[i] if ok else (math.nan, math.nan)
        row["grads"][r.name] = {
            "status": str(r.status), "detectable": _f(getattr(r, "detectable", None)),
            "size": s_inf, "size_first": first[i][0] if ok else math.nan, "size2": s_2,
            "max_abs_error": _f(getattr(r, "max_abs_error", None)),
            "budget": _f(getattr(r, "budget", None)), "method": str(getattr(r, "method", "")),
            "mode_used": str(getattr(r, "mode", "")),
            "message": str(getattr(r, "message", "") or "")[:300],
        }
    return row


def _init_worker() -> None:
    # warnings keep their default filters (a checker may rely on them); only their printing goes
    sys.stderr = open(os.devnull, "w")


# ----------------------------------------------------------------------------------------------
# aggregation


def classify(row: dict[str, Any]) -> dict[str, Any]:
    """Per-row verdict: for correct cases fa/inc/ok; for bugs caught/missed/inc/notex, and the
    gradient-level misses above detectable and gross misses."""
    out: dict[str, Any] = {"misses": [], "gross": []}
    if row["crash"]:
        out["verdict"] = "crash"
        return out
    statuses = {n: g["status"] for n, g in row["grads"].items()}
    any_fail = any(s in FAILS for s in statuses.values()) or row.get("verdict") == "fail"
    any_inc = any(s == "inconclusive" for s in statuses.values())
    if row["kind"] == "correct":
        out["verdict"] = "fa" if any_fail else ("inc" if any_inc else "ok")
        return out
    exercised = any((g["size"] > 0 or math.isinf(g["size"])) for g in row["grads"].values()
                    if not math.isnan(g["size"]))
    if not row["sized"]:
        exercised = True  # could not measure: judge by the verdict alone
    if not exercised:
        out["verdict"] = "notex"
    else:
        out["verdict"] = "caught" if any_fail else ("inc" if any_inc else "missed")
    if row.get("verdict") == "fail":  # the report failed: whatever a gradient said is moot
        return out
    for n, g in row["grads"].items():
        s, det = g["size"], g["detectable"]
        if math.isnan(s) or s <= 0 or g["status"] in FAILS:
            continue
        if det is not None and det > 0 and s > det:
            out["misses"].append((n, s / det if math.isfinite(s) else math.inf))
        elif det == 0 and s > 0:
            out["misses"].append((n, math.inf))
        if s > GROSS and g["status"] in QUIET_PASS:
            out["gross"].append((n, s))
            if not (det is not None and math.isfinite(det) and det >= s):
                out.setdefault("gross_claim", []).append(n)
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    fam_mode: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(float))
    totals: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(float))
    examples: list[dict[str, Any]] = []
    for row in rows:
        c = classify(row)
        keys = [(row["family"], row["mode"])]
        for agg in (fam_mode[keys[0]], totals[row["mode"]]):
            if c["verdict"] == "crash":
                agg["crash"] += 1
                continue
            if row["kind"] == "correct":
                agg["correct_cases"] += 1
                agg["fa"] += c["verdict"] == "fa"
                agg["inc_cases"] += c["verdict"] == "inc"
                for g in row["grads"].values():
                    agg["c_" + g["status"]] += 1
            else:
                agg["bug_cases"] += 1
                agg[c["verdict"]] += 1
                agg[{"bug": "real_", "precision": "prec_"}.get(row["kind"], "synth_")
                    + c["verdict"]] += 1
                agg["miss_det"] += len(c["misses"])
                agg["miss_det_quiet"] += sum(row["grads"][n]["status"] in QUIET_PASS
                                             for n, _ in c["misses"])
                agg["gross"] += len(c["gross"])
                agg["gross_claim"] += len(c.get("gross_claim", []))
                for _, ratio in c["misses"]:
                    agg["worst_ratio"] = max(agg["worst_ratio"], ratio)
        if c["verdict"] == "crash":
            examples.append({"type": "crash", "family": row["family"], "case": row["case"],
                             "mode": row["mode"], "seed": row["seed"], "message": row["crash"]})
        elif c["verdict"] == "fa" or (row["kind"] == "correct" and c["verdict"] == "inc"):
            for n, g in row["grads"].items():
                if g["status"] in FAILS or g["status"] == "inconclusive":
                    kind = "false_alarm" if g["status"] in FAILS else "inconclusive"
                    examples.append({"type": kind, "family": row["family"], "case": row["case"],
                                     "mode": row["mode"], "seed": row["seed"], "grad": n, **g})
        for n, ratio in c["misses"]:
            g = row["grads"][n]
            examples.append({"type": "miss", "family": row["family"], "case": row["case"],
                             "mode": row["mode"], "seed": row["seed"], "grad": n,
                             "ratio": ratio, "gross": any(m == n for m, _ in c["gross"]), **g})
        for n, _s in c["gross"]:
            if not any(m == n for m, _ in c["misses"]):
                g = row["grads"][n]
                examples.append({"type": "gross_miss", "family": row["family"],
                                 "case": row["case"], "mode": row["mode"], "seed": row["seed"],
                                 "grad": n, "ratio": None, "gross": True, **g})
    return {"fam_mode": fam_mode, "totals": totals, "examples": examples}


def _fmt_ratio(v: float) -> str:
    if not v:
        return "-"
    return "inf" if math.isinf(v) else f"{v:.1e}"


def render(summary: dict[str, Any], modes: list[str]) -> str:
    lines = []
    hdr = (f"{'family':26s} {'mode':11s} | {'correct: pass kink zero inc fail':33s} {'FA':>3s} | "
           f"{'bugs: caught miss inc notex':28s} | {'miss>det':>8s} {'gross':>5s} "
           f"{'worst s/det':>11s} {'crash':>5s}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    order = [x.name for x in ac.families()]
    fams = sorted({f for f, _ in summary["fam_mode"]}, key=order.index)
    for fam in fams:
        for mode in modes:
            a = summary["fam_mode"].get((fam, mode))
            if a is None:
                continue
            fails = a["c_fail"] + a["c_shape"] + a["c_nonfinite"]
            corr = (f"{int(a['c_pass']):5d} {int(a['c_kink']):4d} {int(a['c_zero']):4d} "
                    f"{int(a['c_inconclusive']):3d} {int(fails):4d}")
            bugs = (f"{int(a['caught']):6d} {int(a['missed']):4d} {int(a['inc']):3d} "
                    f"{int(a['notex']):5d}")
            lines.append(f"{fam:26s} {mode:11s} | {'':8s}{corr:25s} {int(a['fa']):3d} | "
                         f"{'':6s}{bugs:22s} | {int(a['miss_det']):8d} {int(a['gross']):5d} "
                         f"{_fmt_ratio(a['worst_ratio']):>11s} {int(a['crash']):5d}")
    lines.append("")
    lines.append("TOTALS per mode")
    lines.append(f"{'mode':11s} {'correct':>7s} {'FA':>4s} {'FA%':>6s} {'inc':>4s} {'inc%':>6s} | "
                 f"{'bugs':>5s} {'caught':>6s} {'missed':>6s} {'inc':>4s} {'notex':>5s} | "
                 f"{'missed: real/prec/synth':>23s} | {'miss>det (quiet)':>16s} {'gross':>5s} "
                 f"{'g>det':>5s} {'crash':>5s}")
    for mode in modes:
        a = summary["totals"].get(mode)
        if a is None:
            continue
        nc = max(a["correct_cases"], 1)
        lines.append(f"{mode:11s} {int(a['correct_cases']):7d} {int(a['fa']):4d} "
                     f"{100 * a['fa'] / nc:5.1f}% "
                     f"{int(a['inc_cases']):4d} {100 * a['inc_cases'] / nc:5.1f}% | "
                     f"{int(a['bug_cases']):5d} {int(a['caught']):6d} {int(a['missed']):6d} "
                     f"{int(a['inc']):4d} {int(a['notex']):5d} | {'':8s}{int(a['real_missed']):5d} "
                     f"{int(a['prec_missed']):4d} {int(a['synth_missed']):5d} | "
                     f"{int(a['miss_det']):8d} "
                     f"{'(' + str(int(a['miss_det_quiet'])) + ')':>7s} "
                     f"{int(a['gross']):5d} {int(a['gross_claim']):5d} {int(a['crash']):5d}")
    # inconclusive rate per family (correct cases, all modes)
    inc_fam: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (fam, _mode), a in summary["fam_mode"].items():
        inc_fam[fam][0] += a["inc_cases"]
        inc_fam[fam][1] += a["correct_cases"]
    rates = [(f, v[0] / v[1]) for f, v in inc_fam.items() if v[1] and v[0]]
    if rates:
        lines.append("")
        lines.append("inconclusive rate of correct cases, per family (all modes): " + ", ".join(
            f"{f} {100 * r:.0f}%" for f, r in sorted(rates, key=lambda t: -t[1])))
    return "\n".join(lines)


def render_examples(summary: dict[str, Any], limit: int = 25) -> str:
    ex = summary["examples"]
    lines = []

    def one(e: dict[str, Any]) -> str:
        size = e.get("size")
        det = e.get("detectable")
        size_s = "None" if size is None else f"{size:.2e}"
        det_s = "None" if det is None else f"{det:.1e}"
        return (f"  {e['family']}/{e['case']} [{e['mode']}, seed {e['seed']}] "
                f"d{e.get('grad', '')}: {e.get('status', '')} size {size_s} vs detectable "
                f"{det_s} ({e.get('method', '')}, {e.get('mode_used', '')})"
                f"  msg: {str(e.get('message', ''))[:160]!r}")

    fa = [e for e in ex if e["type"] == "false_alarm"]
    lines.append(f"FALSE ALARMS ({len(fa)} gradients)")
    lines += [one(e) for e in fa[:limit]]
    misses = sorted([e for e in ex if e["type"] == "miss"],
                    key=lambda e: -(e["ratio"] if e["ratio"] is not None else 0))
    lines.append(f"\nMISSES ABOVE DETECTABLE ({len(misses)} gradients), worst first")
    lines += [one(e) + f" ratio {_fmt_ratio(e['ratio'])}" for e in misses[:limit]]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in ex:
        if e["type"] in ("miss", "gross_miss"):
            groups[(e["family"], e["case"], e["status"])].append(e)
    lines.append(f"\nMISSES GROUPED by family/case/status ({len(groups)} groups): count, modes, "
                 f"largest size, smallest detectable, worst size/detectable")
    for (fam, case, status), es in sorted(groups.items(), key=lambda kv: -max(
            (e["ratio"] or 0) if e["ratio"] is not None else e["size"] for e in kv[1])):
        modes = ",".join(sorted({e["mode"] for e in es}))
        dets = [e["detectable"] for e in es if e["detectable"] is not None]
        ratios = [e["ratio"] for e in es if e["ratio"] is not None]
        worst = _fmt_ratio(max(ratios) if ratios else 0)
        lines.append(f"  {fam}/{case} {status} x{len(es)} [{modes}] "
                     f"size<={max(e['size'] for e in es):.1e} "
                     f"det>={min(dets) if dets else float('nan'):.1e} worst {worst}"
                     f"{' GROSS' if any(e.get('gross') for e in es) else ''}")
    gross = sorted([e for e in ex if e["type"] in ("miss", "gross_miss") and e.get("gross")],
                   key=lambda e: -e["size"])
    lines.append(f"\nGROSS MISSES (size > {GROSS:g}, status pass/zero/kink: "
                 f"{len(gross)} gradients)")
    lines += [one(e) for e in gross[:limit]]
    crashes = [e for e in ex if e["type"] == "crash"]
    lines.append(f"\nCRASHES ({len(crashes)})")
    lines += [f"  {e['family']}/{e['case']} [{e['mode']}, seed {e['seed']}]: {e['message'][:200]}"
              for e in crashes[:limit]]
    inc = [e for e in ex if e["type"] == "inconclusive"]
    lines.append(f"\nINCONCLUSIVE on correct cases ({len(inc)} gradients), first few")
    lines += [one(e) for e in inc[:10]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--mode", default=",".join(MODES),
                    help="comma-separated subset of " + ",".join(MODES))
    ap.add_argument("--family", default="", help="substring filter on family names")
    ap.add_argument("--case", default="", help="substring filter on case names")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--timeout", type=float, default=120.0, help="per check (check_layer timeout)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--examples", type=int, default=25)
    ap.add_argument("--catalog", default="adversary_catalog",
                    help="catalogue module under tests/ (default adversary_catalog)")
    args = ap.parse_args(argv)
    if args.catalog != "adversary_catalog":
        import importlib

        global ac, CASES
        ac = importlib.import_module(args.catalog)
        CASES = ac.cases()
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}")
    tasks = [(i, m, s, args.timeout) for i, c in enumerate(CASES)
             if args.family in c.family and args.case in c.name
             for m in modes for s in range(args.seeds)]
    import gradcheck
    print(f"gradcheck from {Path(gradcheck.__file__).parent}; {len(tasks)} checks "
          f"({len({t[0] for t in tasks})} cases x {len(modes)} modes x {args.seeds} seeds), "
          f"{args.jobs} jobs", flush=True)
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    if args.jobs > 1:
        with mp.get_context("fork").Pool(args.jobs, initializer=_init_worker) as pool:
            for row in pool.imap_unordered(run_task, tasks, chunksize=2):
                rows.append(row)
    else:
        _saved = sys.stderr
        _init_worker()
        try:
            rows = [run_task(t) for t in tasks]
        finally:
            sys.stderr = _saved
    wall = time.time() - t0
    rows.sort(key=lambda r: (r["family"], r["case"], r["mode"], r["seed"]))
    summary = summarize(rows)
    print(render(summary, modes))
    print()
    print(render_examples(summary, args.examples))
    slow = sorted(rows, key=lambda r: -r.get("seconds", 0))[:5]
    print(f"\n{len(rows)} checks in {wall:.1f} s wall; slowest: " + ", ".join(
        f"{r['family']}/{r['case']}[{r['mode']}] {r.get('seconds', 0):.2f}s" for r in slow))
    if args.json:
        payload = {"gradcheck": str(Path(gradcheck.__file__).parent), "seeds": args.seeds,
                   "modes": modes, "wall_seconds": wall, "rows": rows,
                   "totals": {m: dict(a) for m, a in summary["totals"].items()},
                   "examples": summary["examples"]}
        Path(args.json).write_text(json.dumps(payload, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
