"""Benchmark 3, the live screen under load: a meter streaming 50 dp 6 reports a second over a pty.

- the real `tuimeter PORT` in a real terminal (tmux, 160x48): its CPU share, and with the meter
  silent after start-up (idle);
- the reference, in the same run and the same way (tmux 160x48, the same meter at the same rate,
  CPU from /proc): benchmarks/digits_app.py, a bare Textual app showing the same five values in
  `textual.widgets.Digits`, all five updated from every report (50 updates a second); the ratio of
  the real app's CPU to it is what the budget (<= 1.5x) is on;
- the same app driven in-process (Textual's headless run_test, 160x48): frame written → the leakage
  panel showing that frame's sequence number (p50/p99), and Textual's message-queue length sampled
  over the run (it must stay bounded).

    python -m benchmarks.tui [--seconds 20] [--runs 3]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
import tty
from pathlib import Path
from typing import Any

from benchmarks.common import cpu_seconds, machine, peak_rss_mb, percentile, summary, timed_cli
from benchmarks.headless import Meter

RATE = 50.0
SIZE = (160, 48)
RATIO_BUDGET = 1.5  # the real app's CPU at 50 frames/s over the reference app's
IDLE_BUDGET = 1.0  # % of a core, the meter silent
REFERENCE_APP = Path(__file__).with_name("digits_app.py")


def _pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


async def terminal_cpu(seconds: float, rate: float, reference: bool = False) -> tuple[float, float]:
    """CPU seconds per wall second of the real app in tmux (rate 0: the meter goes silent), or of the
    reference app (reference=True), and its peak resident set size in MB."""
    master, slave, port = _pty()
    meter = Meter(master, handshake=not reference, rate=rate)
    loop = asyncio.get_running_loop()
    loop.add_reader(master, meter.on_readable)
    sock = f"tuimeter-bench-{os.getpid()}-{time.monotonic_ns()}"
    exe = f"{sys.executable} {REFERENCE_APP}" if reference else str(Path(sys.executable).with_name("tuimeter"))
    # exec: the pane's process is the app itself (a Python process either way)
    subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-s", "b", "-x", str(SIZE[0]), "-y", str(SIZE[1]),
                    f"exec {exe} {port}"], check=True)
    streamer = asyncio.create_task(meter.stream())
    try:
        out = subprocess.run(["tmux", "-L", sock, "display-message", "-p", "-t", "b", "#{pane_pid}"],
                             capture_output=True, text=True, check=True).stdout
        pid = int(out.strip())
        deadline = time.monotonic() + 20
        while not meter.streaming:
            if time.monotonic() > deadline:
                raise RuntimeError("the app in tmux did not start")
            await asyncio.sleep(0.05)
        await asyncio.sleep(5)  # start-up and a few seconds of drawing
        c0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        return (cpu_seconds(pid) - c0) / (time.monotonic() - t0), peak_rss_mb(pid)
    finally:
        meter.stop = True
        streamer.cancel()
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)


async def in_process(seconds: float) -> dict[str, Any]:
    from textual.widgets import Digits

    from tuimeter.core.host import HostConfig
    from tuimeter.core.profile import load_profile
    from tuimeter.host.session import HostSession, SessionOptions
    from tuimeter.tui.app import TuimeterApp

    master, slave, port = _pty()
    meter = Meter(master, handshake=True, rate=RATE)
    loop = asyncio.get_running_loop()
    loop.add_reader(master, meter.on_readable)
    session = HostSession(SessionOptions(port=port, baud=115200), load_profile(), HostConfig())
    app = TuimeterApp(session)
    await session.start()
    streamer = asyncio.create_task(meter.stream())
    latencies: list[float] = []
    queue: list[int] = []
    try:
        async with app.run_test(size=SIZE) as pilot:
            while not meter.streaming or len(meter.sent) < RATE:
                await pilot.pause(0.05)
            digits = app.query_one("#metric-leakage .digits", Digits)
            shown = digits.value
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await asyncio.sleep(0.002)
                queue.append(app._message_queue.qsize())
                if digits.value != shown:
                    shown = digits.value
                    sent = meter.sent.get(int(shown)) if shown.isdigit() else None
                    if sent is not None:
                        latencies.append(time.monotonic() - sent)
    finally:
        meter.stop = True
        streamer.cancel()
        await session.close()
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)
    return {"p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "updates": len(latencies), "queue_max": max(queue), "queue_mean": sum(queue) / len(queue),
            "queue_last_second_max": max(queue[-500:])}


def bench(seconds: float, runs: int) -> dict[str, Any]:
    if shutil.which("tmux") is None:
        raise SystemExit("benchmarks.tui needs tmux (apt-get install tmux)")
    busy_runs, reference = [], []
    for _ in range(runs):  # interleaved, so a busy moment on the machine hits both alike
        busy_runs.append(asyncio.run(terminal_cpu(seconds, RATE)))
        reference.append(asyncio.run(terminal_cpu(seconds, RATE, reference=True))[0] * 100)
    busy = [cpu * 100 for cpu, _ in busy_runs]
    ratios = [b / r for b, r in zip(busy, reference, strict=True)]
    idle = [asyncio.run(terminal_cpu(seconds, 0.0))[0] * 100 for _ in range(runs)]
    pilot = [asyncio.run(in_process(seconds)) for _ in range(runs)]
    return {
        "benchmark": "live screen under load", "machine": machine(), "terminal": f"tmux {SIZE[0]}x{SIZE[1]}",
        "rate": f"{RATE:.0f} dp 6 frames/s", "seconds_per_run": seconds,
        "reference": "benchmarks/digits_app.py: five Digits, all five updated at every report (50 a second); "
                     "the real screen redraws its panels at most 10 times a second",
        "cpu_percent_of_a_core_at_50_fps": summary(busy, 2),
        "reference_digits_app_cpu_percent_of_a_core_at_50_fps": summary(reference, 2),
        "ratio_screen_over_reference": summary(ratios, 2),
        "ratio_budget": RATIO_BUDGET,
        "ratio_met": statistics.median(ratios) <= RATIO_BUDGET,
        "cpu_percent_of_a_core_idle": summary(idle, 2),
        "idle_budget_percent": IDLE_BUDGET,
        "idle_met": statistics.median(idle) <= IDLE_BUDGET,
        "peak_rss_mb": summary([mb for _, mb in busy_runs], 1),
        "frame_to_panel_p50_ms": summary([p["p50_ms"] for p in pilot], 1),
        "frame_to_panel_p99_ms": summary([p["p99_ms"] for p in pilot], 1),
        "panel_updates_per_run": summary([p["updates"] for p in pilot], 0),
        "message_queue_max": summary([p["queue_max"] for p in pilot], 0),
        "message_queue_mean": summary([p["queue_mean"] for p in pilot], 2),
        "budget": f"CPU at 50 frames/s <= {RATIO_BUDGET}x the reference Digits app's; idle <= {IDLE_BUDGET:.0f} % "
                  "of a core; frame → panel p99 <= 100 ms; message queue bounded",
    }


def main() -> None:
    timed_cli(__doc__, bench)


if __name__ == "__main__":
    main()
