"""Benchmark results to ``bench.md`` (GitHub tables and prose) and ``bench.json``.

Both files are written atomically (a temporary file in the same directory, then ``os.replace``).
In the JSON, NaN and inf become ``null`` and NumPy scalars plain numbers.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from bench import baselines

__all__ = ["markdown", "to_jsonable", "write"]

DASH = "–"


def _num(value: Any, fmt: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    return format(value, fmt)


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _table(rows: list[list[Any]], headers: Sequence[str]) -> str:
    return tabulate(rows, headers=list(headers), tablefmt="github", disable_numparse=True)


# ------------------------------------------------------------------------------------ header


def _load(values: Sequence[float] | None) -> str:
    return DASH if not values else ", ".join(f"{v:.2f}" for v in values)


def _allocator(memory: dict[str, Any]) -> str:
    text = f"Memory allocator: {memory['setting']}."
    default, pinned = memory.get("default_s"), memory.get("pinned_s")
    if default and pinned:
        text += (f" Why: one complex128 forward at {_shape(memory['shape'])} in a fresh process "
                 f"took {default * 1e3:.3g} ms with glibc's default thresholds and "
                 f"{pinned * 1e3:.3g} ms pinned ({default / pinned:.1f}×): with the defaults "
                 "its 256 KiB temporaries get fresh pages (page faults) on every call, or not, "
                 "depending on what the process did before. Every checker here calls that "
                 "forward, so all of them run with pinned thresholds; gradcheck's users get "
                 "whatever their process has (`--default-malloc` measures that).")
    return text


def _header(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    if m["torch_threads"]:
        torch = f"torch {m['torch']} ({m['torch_threads']} threads)"
    else:
        torch = f"torch not used ({result['torch_status']}; installed: {m['torch'] or 'no'})"
    return [
        "# gradcheck benchmarks",
        "",
        f"`{result['command'].strip()}` (configuration `{result['config']['name']}`), "
        f"{m['date']}, total run time {result['total_seconds']:.0f} s.",
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} CPUs ({m['cpus_usable']} usable), "
        f"{m['platform']}; Python {m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, "
        f"{torch}; gradcheck {m['gradcheck']}. Load average (1, 5, 15 min) before the run "
        f"{_load(m.get('load_average_at_start'))}, after it "
        f"{_load(m.get('load_average_at_end'))}: a load above 0 before the run means other work "
        f"shared the {m['cpu_count']} CPUs, and the times are then inflated and noisier.",
        "",
        _allocator(result["allocator"]),
        "",
        "Layer: the reference BatchNorm in training mode, float64, `x = 5*randn + 12`, gamma "
        "ones, beta zeros. A *full verdict* judges dx, dgamma and dbeta. Every checker runs the "
        "same NumPy forward and backward (torch through a `torch.autograd.Function` wrapper).",
        "",
    ]


# ----------------------------------------------------------------------------------- targets


def _t1(t: dict[str, Any]) -> str:
    head = "**T1: a full verdict at 256x64 at least 100× faster than `torch.autograd.gradcheck`"
    if t["met"] is None:
        return f"{head} (default).** {t['text']}."
    verdict = "MET" if t["met"] else "NOT MET"
    per_eval = t["ours"] / t["nfev"]
    text = (f"{head} (default): {verdict}.** gradcheck's fastest full mode ({t['method']}) took "
            f"{t['ours']:.3g} s, torch's default mode {t['torch']:.3g} s in the same run: "
            f"{t['ratio']:.1f}× faster")
    if t["met"]:
        return text + "."
    return text + (
        f", {100 / t['ratio']:.0f}× short of the target (it needs ≤ {t['needed_s']:.3g} s). "
        f"Why: on a black-box layer every element needs its own directional derivative, so a "
        f"full verdict costs {t['nfev']} forward evaluations (one per element of x, gamma and "
        f"beta); one forward at 256x64 takes {t['forward_floor_s'] / t['nfev'] * 1e3:.2f} ms, a "
        f"floor of {t['forward_floor_s']:.3g} s before any overhead (measured "
        f"{per_eval * 1e3:.2f} ms per evaluation). The target needs "
        f"{t['needed_s'] / t['nfev'] * 1e6:.0f} µs per evaluation, "
        f"{t['forward_floor_s'] / t['needed_s']:.0f}× less than one forward costs, so no "
        "trimming of the checker's overhead closes it. What would: evaluating many perturbed "
        "inputs per forward call (an optional batched forward in the Layer protocol, so NumPy "
        "runs one large operation instead of thousands of small ones), or a fast mode "
        "(sampled or directional), which judges every element through random directions with a "
        "stated miss bound instead of a full verdict"
        + (f"; the fastest, {t['fast_label']}, took {t['fast_s']:.3g} s here, "
           f"{t['torch'] / t['fast_s']:.0f}× faster than torch's default." if t["fast_s"]
           else "."))


def _sens_text(kind: str, s: dict[str, Any] | None) -> str:
    what = "dx·(1+δ)" if kind == "scaled" else "one element of dx off by δ·max|dx|"
    if s is None:
        return f"{what}: not comparable (a checker flagged nothing or did not run)"
    if s["lower_bound"]:
        torch = "flags no δ up to 100"
    elif s["torch"] > 1e-2:
        torch = f"flags nothing up to 1e-2 and first flags δ = {s['torch']:g}"
    else:
        torch = f"down to {s['torch']:g}"
    bound = "more than " if s["lower_bound"] else ""
    return (f"{what}: gradcheck flags δ down to {s['ours']:g}, torch fast_mode {torch}: "
            f"{bound}{s['ratio']:.0e}× smaller")


def _calls(c: dict[str, Any]) -> str:
    """Evaluations, calls of the forward, and what auto's probe added."""
    text = f"{c['nfev']} evaluations, {_num(c['forward_calls'], 'd')} forward calls"
    if c["probe"] is not None:
        text += (f", of which the probe added {c['probe']['forward_calls']} calls and "
                 f"{c['probe']['seconds']:.3g} s")
    return text


def _verdicts(t: dict[str, Any]) -> str:
    met = [c["label"] for c in t["candidates"] if c["met"]]
    missed = [c["label"] for c in t["candidates"] if not c["met"]]
    return (f"Met by: {', '.join(met) or 'none'}; missed by: {', '.join(missed) or 'none'}.")


def _others(t: dict[str, Any]) -> str:
    """The fastest fast mode over every method, when it is neither auto nor complex."""
    f = t.get("fastest_any")
    if f is None or f["method"] in ("auto", "complex"):
        return ""
    return (f" (Over every method the fastest fast mode was {f['label']} at {f['seconds']:.3g} s; "
            "the targets are judged for auto, the default, and complex, see the speed table.)")


def _spread(c: dict[str, Any], t: dict[str, Any]) -> str:
    """The runs behind a time ratio, and a warning when the verdict sits near the 3× line."""
    ours, torch = c.get("times_s") or [], t.get("torch_times_s") or []
    if len(ours) < 2 or len(torch) < 2:
        return ""
    best = min(ours) / min(torch)
    text = (f" of the medians, {best:.2f}× of the fastest runs (runs: {min(ours):.3g}–"
            f"{max(ours):.3g} s against {min(torch):.3g}–{max(torch):.3g} s")
    if (best <= 3) != (c["time_ratio"] <= 3) or abs(c["time_ratio"] / 3 - 1) < 0.2:
        text += "; close to the 3× line, so this part of the verdict can change from run to run"
    return text + ")"


def _t2(t: dict[str, Any]) -> str:
    head = ("**T2: gradcheck's fastest fast mode (sampled or directional) at 256x64 within 3× of "
            "torch's fast_mode time while flagging perturbations ≥ 1000× smaller")
    if t["met"] is None:
        return f"{head}.** {t['text']}."
    verdict = f"MET by {', '.join(t['met_by'])}" if t["met"] else "NOT MET"
    best = t["candidates"][0]
    rows = "; ".join(
        f"{c['label']} {c['seconds']:.3g} s = {c['time_ratio']:.1f}× "
        f"({'within' if c['time_ok'] else 'outside'} 3×; {_calls(c)})" for c in t["candidates"])
    sens = []
    for mode, ratios in t["sensitivity"].items():
        used = sorted({m for v in ratios.values() if v for m in v["methods_used"]})
        sens.append(f"{mode} (method auto, which chose {', '.join(used) or '–'}): "
                    + "; ".join(_sens_text(k, v) for k, v in ratios.items()))
    text = (f"{head}: {verdict}.** The fastest is {best['label']}: {best['seconds']:.3g} s "
            f"against torch fast_mode's {t['torch']:.3g} s ({t['torch_nfev']} forward calls) in "
            f"the same run, {best['time_ratio']:.1f}×{_spread(best, t)}. Each fast mode with "
            f"method auto (the default, complex-step probe included) and complex (no probe): "
            f"{rows}. "
            f"Sensitivity, swept with method auto (when auto chose the complex step throughout, "
            f"the complex rows share its estimates): {' | '.join(sens)}. "
            f"{_verdicts(t)}{_others(t)}")
    if not best["time_ok"]:
        floor = best["nfev"] * t["forward_s"]
        torch_floor = t["torch_nfev"] * t["forward_real_s"]
        text += (
            f" Why the time: {best['label']} makes {best['nfev']} evaluations of the complex128 "
            f"forward ({t['forward_s'] * 1e3:.3g} ms each, a floor of {floor * 1e3:.3g} ms) "
            f"where torch makes {t['torch_nfev']} calls of the float64 forward "
            f"({t['forward_real_s'] * 1e3:.3g} ms each, {torch_floor * 1e3:.3g} ms): "
            f"{floor / torch_floor:.1f}× in the forward alone; the other "
            f"{(best['seconds'] - floor) * 1e3:.3g} ms of its {best['seconds'] * 1e3:.3g} ms go "
            "to everything else (the analytic run, the checker's own work"
            + (", auto's probe" if best["probe"] else "") + ").")
        if best["mode"] == "directional":
            text += (
                f" The {best['nfev']} evaluations are 8 directions that move x, gamma and beta "
                "together where their budgets allow, one complex step each (its rounding "
                "bounded by the term magnitudes); torch compares one projection per input with "
                "real forwards. What remains is the per-evaluation work and the complex "
                "forward's cost over a real one.")
        else:
            text += (
                f" Most of the {best['nfev']} evaluations are the element sample (every index of "
                "every axis, the corners, 32 random elements); directional mode skips it.")
    return text


def _miss(c: dict[str, Any], norms: dict[str, float]) -> str:
    return ", ".join(f"d{k} {_num(v)} (‖d{k}‖₂ ≈ {_num(norms.get(k))})"
                     for k, v in c["miss_norm"].items())


def _t3(t: dict[str, Any]) -> str:
    head = ("**T3: a 1M-element spatial BatchNorm (32x32x32x32) verified in at most 2 s by "
            "gradcheck's fastest fast mode, with its mode and miss bound")
    if t["met"] is None:
        return f"{head}.** {t['text']}."
    verdict = f"MET by {', '.join(t['met_by'])}" if t["met"] else "NOT MET"
    best = t["candidates"][0]
    rows = "; ".join(f"{c['label']} {c['seconds']:.3g} s ({'met' if c['met'] else 'missed'}; "
                     f"{c['coverage']}; {_calls(c)})" for c in t["candidates"])
    text = (f"{head}: {verdict}.** The fastest is {best['label']} (mode {best['mode']}, method "
            f"{best['method']}): {best['seconds']:.3g} s; stated miss bound (an error of at least "
            f"this 2-norm is caught with probability ≥ 1 - 1e-6): "
            f"{_miss(best, t['grad_norms'])}. Each fast mode with method auto (the default, "
            f"complex-step probe included) and complex (no probe), in the same run: {rows}. "
            f"{_verdicts(t)}{_others(t)} One forward at this size costs "
            f"{t['forward_s'] * 1e3:.3g} ms in complex128 and {t['forward_real_s'] * 1e3:.3g} ms "
            f"in float64, so 2 s allows about {2.0 / t['forward_s']:.0f} complex evaluations.")
    probes = [c for c in t["candidates"] if c["probe"] is not None]
    if probes:
        p = probes[0]["probe"]
        text += (f" Method auto first runs the complex-step safety probe once over x, gamma "
                 f"and beta together (a quick dense comparison; the thorough one only on a "
                 f"disagreement), every call a forward of the whole 1M-element layer; here it "
                 f"added "
                 f"{p['forward_calls']} forward calls and {p['seconds']:.3g} s to "
                 f"{probes[0]['mode']} mode. `method=\"complex\"` skips it, for a forward "
                 "known to carry the imaginary part.")
    return text


def _targets(result: dict[str, Any]) -> list[str]:
    t1, t2, t3 = result["targets"]
    return ["## Targets", "", f"- {_t1(t1)}", f"- {_t2(t2)}", f"- {_t3(t3)}", ""]


# ------------------------------------------------------------------------------------ tables


def _verdict(record: dict[str, Any]) -> str:
    if record["status"] != "measured":
        return DASH
    return "pass" if record["passed"] else "FLAGGED"


def _time(record: dict[str, Any]) -> str:
    if record["status"] == "measured":
        return _num(record["median_s"])
    est = record["estimate_s"]
    return f"skipped (est. {_num(est)} s)" if est is not None else f"skipped ({record['reason']})"


SPEED_HEADERS = ("shape", "elements", "checker", "method", "mode", "judged", "forward evals",
                 "forward calls", "backward calls", "time (s, median)", "runs", "verdict")


def _speed(records: Sequence[dict[str, Any]]) -> list[str]:
    rows = [[_shape(r["shape"]), r["elements"], r["checker"], r["method"], r["mode"],
             r["coverage"] or DASH, _num(r["nfev"], "d"), _num(r.get("forward_calls"), "d"),
             _num(r["backward_calls"], "d"),
             _time(r), r["runs"] or DASH, _verdict(r)]
            for r in records if r["section"] == "speed"]
    return [
        "## 1. Speed and cost of a full verdict", "",
        "Median wall time over `runs` runs (5 when a run is under 0.5 s, 3 under 2 s, else 1); "
        "forward evaluations as counted by each checker (torch: calls of the wrapped forward). "
        "*Skipped* rows were estimated above the time limit and not run; the estimate is "
        "predicted evaluations × the measured cost of one forward at that size × the overhead "
        "measured at the previous size (torch default: time grows with the Jacobian, "
        "inputs × outputs). *Forward calls* are counted at the layer: gradcheck's evaluations "
        "plus its analytic run and, with method *auto*, the complex-step safety probe (the "
        "difference between an auto row and the complex row of the same mode); the course "
        "checker's plus its analytic run. gradcheck's fast modes: *sampled* estimates a "
        "sample of elements and compares 8 random directions; *directional* compares only "
        "the 8 directions, shared by dx, dgamma and dbeta where their budgets allow (one "
        "complex-step evaluation each: 8 at any size). Method auto is timed for the fast "
        "modes only.", "",
        _table(rows, SPEED_HEADERS), "",
    ]


def _flag(flag: bool | None) -> str:
    return DASH if flag is None else ("X" if flag else ".")


def _sensitivity(result: dict[str, Any]) -> list[str]:
    sweeps = result["sensitivity"]
    if not sweeps:
        return ["## 2. Sensitivity", "", "Not measured.", ""]
    deltas = sweeps[0]["deltas"]
    headers = ["checker", "shape", "bug", *(f"{d:.0e}" for d in deltas), "smallest flagged δ"]
    rows = [[s["label"], _shape(s["shape"]),
             "dx·(1+δ)" if s["kind"] == "scaled" else f"dx{tuple(s['index'])} += δ·max|dx|",
             *map(_flag, s["flags"]), _smallest(s)] for s in sweeps]
    alarm_rows = [[a["label"], _shape(a["shape"]), a["runs"], a["false_positives"],
                   _num(a["median_s"]), _alarm_note(a)] for a in result["false_positives"]]
    return [
        "## 2. Sensitivity", "",
        "Each checker judged a backward with an injected bug in dx, δ from 1e-2 down by decades "
        "(seed 0). `X` flagged, `.` passed, `–` not run (a sweep stops after two passes in a "
        "row). *Smallest flagged δ*: every δ from 1e-2 down to it was flagged; when 1e-2 was "
        "not flagged, δ = 0.1, 1, 10, 100 were tried. gradcheck runs with its defaults "
        f"(method auto, which chose: {_methods_used(result)}). The course checker flags when "
        f"`rel_error > {baselines.COURSE_THRESHOLD:g}`.", "",
        _table(rows, headers), "",
        *_sensitivity_notes(result), "",
        f"False positives on the correct backward ({result['config']['seeds']} seeds: "
        "`x = 5*randn + 12` from seed s, the checker's own seed s):", "",
        _table(alarm_rows, ["checker", "shape", "runs", "false positives",
                            "time per check (s, median)", "note"]), "",
    ]


def _sensitivity_notes(result: dict[str, Any]) -> list[str]:
    notes = []
    course = [a for a in result["false_positives"] if a["label"] == "course checker"]
    if course and course[0]["false_positives"]:
        errs = [d["rel_error"]["x"] for d in course[0]["details"]]
        notes.append(
            f"- The course checker flags the *correct* backward at {_shape(course[0]['shape'])}: "
            f"its dx `rel_error` is {min(errs):.2g} to {max(errs):.2g} (threshold "
            f"{baselines.COURSE_THRESHOLD:g}). Its numerical dx is good to about 1e-9 of max|dx| "
            "(section 3); the elementwise `|a-n|/(|a|+|n|)` blows that up on elements of dx near "
            "zero, which a larger N makes more likely. Its smallest flagged δ is meaningless.")
    for tol in result.get("torch_fast_tolerance", []):
        notes.append(
            f"- torch's fast mode at {_shape(tol['shape'])}: with u, v drawn as torch draws them "
            f"(uniform on [0, 1), normalised), |vᵀJu| for dx is about {tol['vJu']:.2g} while "
            f"its tolerance atol·sum(u)·sum(v) is about {tol['atol_scaled']:.2g}, "
            f"{tol['ratio']:.0f}× larger: dx must be wrong by more than that factor before it "
            "can be flagged (BatchNorm's dx has zero mean per channel, so the large constant "
            "part of a non-negative v contributes nothing).")
    return notes


def _smallest(sweep: dict[str, Any]) -> str:
    if sweep["flags_correct"]:
        return "– (flags the correct backward too)"
    if sweep["smallest_flagged"]:
        return f"{sweep['smallest_flagged']:g}"
    above = sweep["first_flagged_above"]
    return f"none; first flags δ = {above:g}" if above else "none, not even δ = 100"


def _methods_used(result: dict[str, Any]) -> str:
    used = {d.get("method_used") for a in result["false_positives"] for d in a["details"]}
    return ", ".join(sorted(m for m in used if m)) or DASH


def _alarm_note(alarm: dict[str, Any]) -> str:
    errors = [d["rel_error"]["x"] for d in alarm["details"] if "rel_error" in d]
    if errors:
        return f"dx rel_error on correct code: {min(errors):.2g} to {max(errors):.2g}"
    misses = [d["miss_norm"].get("x") for d in alarm["details"] if d.get("miss_norm")]
    return f"miss bound for dx ≈ {_num(misses[0])}" if misses else ""


ACC_HEADERS = ("shape", "gradient", "method", "forward evals", "max |n−e| / max |e|",
               "max |n−e| / |e| (elementwise)", "stated bound covers the error")


def _accuracy(acc: dict[str, Any]) -> list[str]:
    rows = [[_shape(r["shape"]), r["gradient"], r["method"], r["nfev"],
             _num(r["rel_to_max"], ".2e"),
             _num(r["rel_elementwise"], ".2e"),
             DASH if r["bound_covers"] is None else f"{100 * r['bound_covers']:.0f}% of elements"]
            for r in acc["rows"]]
    margins = ", ".join(f"{k}: {v:.1e}" for k, v in acc["exact_margin"].items())
    caveat = ("" if acc["exact_is_wide"] else " **On this platform np.longdouble is float64: "
              "`e` is no more exact than the analytic row; read the table as agreement only.**")
    return [
        "## 3. Accuracy of the numerical methods", "",
        f"`n` is a numerical gradient of `L = <g, BatchNorm(x)>` (g standard normal) computed in "
        f"float64; `e` the exact gradient: {acc['exact']}. The two independent backward forms "
        f"agree there to {margins} (relative), so `e` is exact to well below float64's 1.1e-16. "
        "The complex step, central and Richardson rows are gradcheck's engines with their error "
        "bounds; the course row is CS231n's h = 1e-5 central difference; the analytic row is the "
        "float64 backward the checkers judge." + caveat, "",
        _table(rows, ACC_HEADERS), "",
    ]


def _scale(result: dict[str, Any]) -> list[str]:
    fits = [[f["label"], f["layout"], f["points"], f"{f['min_elements']}–{f['max_elements']}",
             f"{f['time_exponent']:.2f}", f"{f['nfev_exponent']:.2f}"] for f in result["scale"]]
    measured = [r for r in result["speed"] if r["status"] == "measured"
                and r["checker"] == "gradcheck"]
    sizes = sorted({r["elements"] for r in measured})
    labels = list(dict.fromkeys(r["label"] for r in measured))
    points = [[label, *(_num(next((r["median_s"] for r in measured if r["label"] == label
                                   and r["elements"] == n), None)) for n in sizes)]
              for label in labels]
    return [
        "## 4. Scale", "",
        "Growth exponent `k` in `time ∝ elements^k`, fitted with `np.polyfit` on log-log over "
        "the measured sizes with at least 1000 elements (the speed table plus extra 2-D sizes "
        "for gradcheck's complex step), 2-D and 4-D layouts apart. Full mode needs one "
        "evaluation per element (evaluations exponent 1) and each evaluation costs "
        "O(elements) once per-call overhead is amortised, so its time exponent tends to 2 "
        "from below. Sampled mode's evaluations follow the longest axis (every index of every "
        "axis is sampled): nearly constant for the 4-D shapes, growing with N for 2-D "
        "(1024x256 samples all 1024 rows), so its time grows about linearly, through the cost "
        "of one forward. Directional mode makes the same 8 evaluations at every size "
        "(evaluations exponent 0), so its time follows the cost of one forward: an exponent "
        "below 1 where fixed per-call costs still dominate (the smaller 2-D sizes), about 1 "
        "or somewhat above over the 4-D sizes; with method auto the probe's calls, also a "
        "fixed number per input, add a term of the same kind.", "",
        _table(fits, ["checker", "layout", "points", "elements", "time exponent",
                      "evaluations exponent"]),
        "", "gradcheck's time (s) by number of elements:", "",
        _table(points, ["checker", *map(str, sizes)]), "",
    ]


def _skipped(result: dict[str, Any]) -> list[str]:
    if not result["skipped"]:
        return []
    return ["## Skipped", "", *(f"- {s}" for s in result["skipped"]), ""]


def markdown(result: dict[str, Any]) -> str:
    """The whole ``bench.md``."""
    lines = (_header(result) + _targets(result) + _speed(result["speed"])
             + _sensitivity(result) + _accuracy(result["accuracy"]) + _scale(result)
             + _skipped(result))
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------- json


def to_jsonable(value: Any) -> Any:
    """Plain JSON types; NaN and inf as ``None``."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(result: dict[str, Any], out_dir: Path) -> None:
    """Write ``bench.md`` and ``bench.json`` into ``out_dir``."""
    _atomic_write(out_dir / "bench.md", markdown(result))
    _atomic_write(out_dir / "bench.json",
                  json.dumps(to_jsonable(result), indent=1, allow_nan=False) + "\n")
