"""Run every benchmark and print their figures: `python -m benchmarks [--quick] [--out results.json]`.

The JSON starts with what was run (commit, quick or full, when) and ends with the budgets, each
with its figure, its reference measured in the same run and the ratio; that table is also printed
(to stderr) as Markdown, the rows of docs/performance.md's budget table.

--quick runs fewer frames, seconds and runs (about 5 minutes); the figures in docs/performance.md come
from the full run (about 30 minutes on a 2-core machine). Budgets are ratios against references
measured in the same run, so a slower or busier day moves both; still, run it on a quiet machine.

--only NAME runs only the named benchmarks; with --out FILE naming an existing results file, their
results replace (or join) that benchmark's entry in it, each with the run it came from ("run": commit,
start time), and the budget rows are worked out again from the merged file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import attach, core, headless, memory, pace, startup, tui
from benchmarks.common import machine


def run_info(quick: bool) -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent)
        return out.stdout.strip()

    return {"benchmark": "run", "quick": quick, "commit": git("rev-parse", "--short", "HEAD") or None,
            "uncommitted_changes": bool(git("status", "--porcelain", "--", "tuimeter", "benchmarks")),
            "started": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()}


def budget_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per budget: what, the figure, the reference beside it (same run), the ratio, the budget."""
    by = {r["benchmark"]: r for r in results}
    rows: list[dict[str, Any]] = []

    def row(what: str, figure: str, reference: str, ratio: float | None, budget: str, met: bool | None) -> None:
        rows.append({"what": what, "figure": figure, "reference": reference, "ratio": ratio, "budget": budget,
                     "met": met})

    if "headless at line rate" in by:
        for key, m in by["headless at line rate"]["modes"].items():
            name = key.replace("ms", " ms")
            ref = m["reference_reader_cpu_percent_of_a_core"]["median"]
            row(f"headless CPU at line rate, {name} writes", f"{m['tuimeter_cpu_percent_of_a_core']['median']} %",
                f"read-and-discard process {ref} %", m["ratio_tuimeter_over_reference"]["median"],
                f"≤ {m['ratio_budget']}×", m["ratio_met"])
            row(f"headless frame → record p99, {name} writes", f"{m['latency_p99_ms']['median']} ms", "–", None,
                f"≤ {m['latency_p99_budget_ms']:.0f} ms", m["latency_met"])
    if "core throughput" in by and "headless at line rate" in by:
        c, modes = by["core throughput"], by["headless at line rate"]["modes"]
        shares = " / ".join(f"{m['protocol_work_share_of_headless_cpu_percent']['median']} %" for m in modes.values())
        names = " / ".join(key.replace("ms", " ms") for key in modes)
        row(f"core: protocol work's share of the headless CPU ({names} writes); ratio: floor over core",
            shares, f"core {c['core_frames_per_s']['median'] / 1000:.0f} k frames/s, floor "
            f"{c['reference_floor_frames_per_s']['median'] / 1000:.0f} k", c["floor_over_core"], "none", None)
    if "live screen under load" in by:
        t = by["live screen under load"]
        row("live screen CPU at 50 frames/s", f"{t['cpu_percent_of_a_core_at_50_fps']['median']} %",
            f"bare Digits app {t['reference_digits_app_cpu_percent_of_a_core_at_50_fps']['median']} %",
            t["ratio_screen_over_reference"]["median"], f"≤ {t['ratio_budget']}×", t["ratio_met"])
        row("live screen CPU, meter silent", f"{t['cpu_percent_of_a_core_idle']['median']} %", "–", None,
            f"≤ {t['idle_budget_percent']:.0f} %", t["idle_met"])
        p99 = t["frame_to_panel_p99_ms"]["median"]
        row("live screen frame → panel p99 (in-process, 50 frames/s)", f"{p99} ms", "–", None, "≤ 100 ms",
            p99 <= 100)
    if "viewers attached to a headless service" in by:
        a = by["viewers attached to a headless service"]
        cpu = {key: s["median"] for key, s in a["service_cpu_percent_of_a_core"].items()}
        row("viewers: headless service CPU at 50 frames/s, 3 viewers attached (a screen in tmux, 2 headless)",
            f"{cpu['viewers_3']} %", f"no viewer, control socket on {cpu['viewers_0']} %",
            a["ratio_3_viewers_over_0"]["median"], f"≤ {a['viewers_ratio_budget']}×", a["viewers_ratio_met"])
        row("viewers: headless service CPU at 50 frames/s, 3 viewers over 1 (the screen in tmux)",
            f"{cpu['viewers_3']} %",
            f"1 viewer {cpu['viewers_1']} %", a["ratio_3_viewers_over_1"]["median"],
            f"≤ {a['per_viewer_ratio_budget']}×", a["per_viewer_ratio_met"])
        row("viewers: headless service CPU at 50 frames/s, control socket on, no viewer", f"{cpu['viewers_0']} %",
            f"`--no-control` {cpu['no_control']} %", a["ratio_control_over_no_control"]["median"],
            f"≤ {a['control_ratio_budget']}×", a["control_ratio_met"])
        row("viewers: frame → attached panel p99 (in-process attached screen, 50 frames/s)",
            f"{a['frame_to_attached_panel_p99_ms']['median']} ms", "–", None,
            f"≤ {a['panel_p99_budget_ms']:.0f} ms", a["panel_met"])
    if "headless at a real meter's pace" in by:
        p = by["headless at a real meter's pace"]
        row("headless at a real meter's pace: wake-ups", f"{p['wakeups_per_s']['median']} /s", "–", None,
            f"≤ {p['wakeups_budget']:.0f} /s", p["wakeups_met"])
        row("headless at a real meter's pace: CPU", f"{p['cpu_percent_of_a_core']['median']} %", "–", None,
            f"≤ {p['cpu_budget']} %", p["cpu_met"])
    if "start-up" in by:
        st = by["start-up"]
        slowest = max(st["help_s"]["median"], st["version_s"]["median"])
        row("start-up: `--help` / `--version`", f"{st['help_s']['median']} / {st['version_s']['median']} s", "–",
            None, "≤ 0.3 s, no Textual", slowest <= 0.3 and not st["textual_imported_by_help_or_version"])
        opened = st["headless_port_open_to_first_reading_s"]["median"]
        row("start-up: headless port open → first reading", f"{opened} s", "–", None, "≤ 0.5 s", opened <= 0.5)
        if "screen_launch_to_values_s" in st:
            shown = st["screen_launch_to_values_s"]["median"]
            row("start-up: screen launch → values drawn", f"{shown} s", "–", None, "≤ 1.5 s", shown <= 1.5)
    if "memory" in by:
        mem = by["memory"]
        for kind, limit in (("headless", 40), ("screen", 100)):
            row(f"memory: peak RSS, {kind}, {mem['frames']} frames", f"{mem[kind]['peak_mb']} MB", "–", None,
                f"≤ {limit} MB", mem[kind]["peak_mb"] <= limit)
            growth = mem[kind]["growth_mb_10k_to_1m"]
            row(f"memory: RSS growth 10^4 → 10^6 frames, {kind}", "not run (--quick)" if growth is None else
                f"{growth} MB", "–", None, "≤ 5 MB", None if growth is None else growth <= 5)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| what | figure | reference, same run | ratio | budget | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        met = "–" if r["met"] is None else "yes" if r["met"] else "**no**"
        lines.append(f"| {r['what']} | {r['figure']} | {r['reference']} | {ratio} | {r['budget']} | {met} |")
    return "\n".join(lines)


STEPS = ("core", "headless", "pace", "tui", "attach", "startup", "memory")


def steps(quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    return {
        "core": lambda: core.bench(100_000 if quick else 1_000_000, 3 if quick else 5, 256),
        "headless": lambda: headless.bench(8.0 if quick else 20.0, 1 if quick else 3),
        "pace": lambda: pace.bench(20.0 if quick else 60.0, 1),
        "tui": lambda: tui.bench(8.0 if quick else 20.0, 1 if quick else 3),
        "attach": lambda: attach.bench(8.0 if quick else 20.0, 1 if quick else 5),
        "startup": lambda: startup.bench(3 if quick else 7),
        "memory": lambda: memory.bench(100_000 if quick else 1_000_000),
    }


def run_all(quick: bool, only: list[str] | None = None, merge_into: list[dict[str, Any]] | None = None) \
        -> list[dict[str, Any]]:
    """Every benchmark (or those in `only`), then the budget rows. With `merge_into` (the results of an
    earlier run), each new result replaces that run's entry of the same benchmark, carrying its own run
    information, and the budgets are worked out from the merged list."""
    info = run_info(quick)
    todo = steps(quick)
    results = [info] if merge_into is None else [r for r in merge_into if r["benchmark"] != "budgets"]
    for name in only or STEPS:
        t0 = time.monotonic()
        print(f"running {name} …", file=sys.stderr, flush=True)
        result = todo[name]()
        result["took_s"] = round(time.monotonic() - t0, 1)
        if merge_into is not None:
            result["run"] = {k: v for k, v in info.items() if k != "benchmark"}
        print(json.dumps(result, indent=2), flush=True)
        kept = [i for i, r in enumerate(results) if r["benchmark"] == result["benchmark"]]
        if kept:
            results[kept[0]] = result
        else:
            results.append(result)
    rows = budget_rows(results)
    results.append({"benchmark": "budgets", "rows": rows})
    print(markdown(rows), file=sys.stderr, flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller runs, for a first look")
    ap.add_argument("--out", metavar="FILE", help="also write all results to FILE as JSON")
    ap.add_argument("--only", nargs="+", choices=STEPS, metavar="NAME",
                    help=f"run only these ({', '.join(STEPS)}); merged into --out FILE when it exists")
    args = ap.parse_args()
    merge_into = None
    if args.only and args.out and Path(args.out).exists():
        with open(args.out, encoding="utf-8") as fh:
            merge_into = json.load(fh)
    results = run_all(args.quick, args.only, merge_into)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
