"""Run every benchmark and print their figures: `python -m benchmarks [--quick] [--out results.json]`.

--quick runs fewer frames, seconds and runs (about 3 minutes); the figures in docs/performance.md come
from the full run (about 20 minutes on a 2-core machine). Budgets are ratios against references
measured in the same run, so a slower or busier day moves both; still, run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import core, headless, memory, pace, startup, tui


def run_all(quick: bool) -> list[dict[str, Any]]:
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("core", lambda: core.bench(100_000 if quick else 1_000_000, 3 if quick else 5, 256)),
        ("headless", lambda: headless.bench(8.0 if quick else 20.0, 1 if quick else 3)),
        ("pace", lambda: pace.bench(20.0 if quick else 60.0, 1)),
        ("tui", lambda: tui.bench(8.0 if quick else 20.0, 1 if quick else 3)),
        ("startup", lambda: startup.bench(3 if quick else 7)),
        ("memory", lambda: memory.bench(100_000 if quick else 1_000_000)),
    ]
    results = []
    for name, step in steps:
        t0 = time.monotonic()
        print(f"running {name} …", file=sys.stderr, flush=True)
        result = step()
        result["took_s"] = round(time.monotonic() - t0, 1)
        print(json.dumps(result, indent=2), flush=True)
        results.append(result)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller runs, for a first look")
    ap.add_argument("--out", metavar="FILE", help="also write all results to FILE as JSON")
    args = ap.parse_args()
    results = run_all(args.quick)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
