"""Benchmark 6, headless at a real meter's pace: `tuimeter simulate --link PATH --period 3` (one dp 6
report every 3 s; the energy report when it changes) and `tuimeter PATH --headless --log FILE` (its
default heartbeat, every 15 s), as two processes. After the first reading and a few seconds more,
the host's wake-ups (voluntary + nonvoluntary context switches of all its threads, from
/proc/PID/task/*/status) and CPU (scheduler time from /proc/PID/task/*/schedstat) are counted over
the measured interval. Absolute budgets: wake-ups are counted, not timed, and the CPU budget is far
above what a few wake-ups a second cost on any machine.

    python -m benchmarks.pace [--seconds 60] [--runs 1]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import context_switches, cpu_seconds, machine, summary, threads, timed_cli

PERIOD = 3.0
SETTLE = 5.0  # seconds after the first reading before counting
WAKEUPS_BUDGET = 5.0  # per second, on average
CPU_BUDGET = 0.2  # % of a core


def _wait(what: str, done: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout:.0f} s: no")
        time.sleep(0.05)


def _readings(log: Path) -> int:
    return log.read_bytes().count(b'"type": "reading"') if log.exists() else 0


def run_once(seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        link, log = Path(tmp) / "meter", Path(tmp) / "meter.jsonl"
        sim = subprocess.Popen([sys.executable, "-m", "tuimeter", "simulate", "--link", str(link),
                                "--period", str(PERIOD)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait("the simulated meter's link", link.exists)
            host = subprocess.Popen([sys.executable, "-m", "tuimeter", str(link), "--headless", "--log", str(log)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                _wait("a first reading", lambda: _readings(log) > 0)
                time.sleep(SETTLE)
                r0, w0, c0, t0 = _readings(log), context_switches(host.pid), cpu_seconds(host.pid), time.monotonic()
                time.sleep(seconds)
                r1, w1, c1, t1 = _readings(log), context_switches(host.pid), cpu_seconds(host.pid), time.monotonic()
                nthreads = threads(host.pid)
            finally:
                host.terminate()
                host.wait(10)
        finally:
            sim.terminate()
            sim.wait(10)
    wall = t1 - t0
    return {"wakeups_per_s": (w1 - w0) / wall, "cpu_percent": (c1 - c0) / wall * 100,
            "readings_per_s": (r1 - r0) / wall, "threads": nthreads}


def bench(seconds: float, runs: int) -> dict[str, Any]:
    results = [run_once(seconds) for _ in range(runs)]
    wakeups = summary([r["wakeups_per_s"] for r in results], 2)
    cpu = summary([r["cpu_percent"] for r in results], 3)
    return {
        "benchmark": "headless at a real meter's pace", "machine": machine(),
        "meter": f"tuimeter simulate --period {PERIOD:.0f} (dp 6 every {PERIOD:.0f} s); host heartbeat every 15 s",
        "seconds_per_run": seconds,
        "wakeups_per_s": wakeups, "wakeups_budget": WAKEUPS_BUDGET, "wakeups_met": wakeups["median"] <= WAKEUPS_BUDGET,
        "cpu_percent_of_a_core": cpu, "cpu_budget": CPU_BUDGET, "cpu_met": cpu["median"] <= CPU_BUDGET,
        "readings_per_s": summary([r["readings_per_s"] for r in results], 2),
        "threads": summary([r["threads"] for r in results], 0),
        "budget": f"<= {WAKEUPS_BUDGET:.0f} wake-ups a second on average and <= {CPU_BUDGET} % of a core",
    }


def main() -> None:
    timed_cli(__doc__, bench, seconds=60.0, runs=1)


if __name__ == "__main__":
    main()
