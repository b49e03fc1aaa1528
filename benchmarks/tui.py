"""Benchmark 3, the live screen under load: a meter streaming 50 dp 6 reports a second over a pty.

Two views of the same app:
- the real `tuimeter PORT` in a real terminal (tmux, 160x48): its CPU share, and with the meter
  silent after start-up (idle);
- the same app driven in-process (Textual's headless run_test, 160x48): frame written → the leakage
  panel showing that frame's sequence number (p50/p99), and Textual's message-queue length sampled
  over the run (it must stay bounded).

    python -m benchmarks.tui [--seconds 20] [--runs 3]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import tty
from pathlib import Path
from typing import Any

from benchmarks.common import machine, percentile, summary, timed_cli
from benchmarks.headless import Meter, cpu_seconds, peak_rss_mb

RATE = 50.0
SIZE = (160, 48)


def _pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


async def terminal_cpu(seconds: float, rate: float) -> tuple[float, float]:
    """CPU seconds per wall second of the real app in tmux (rate 0: the meter goes silent), and its
    peak resident set size in MB."""
    master, slave, port = _pty()
    meter = Meter(master, handshake=True, rate=rate)
    loop = asyncio.get_running_loop()
    loop.add_reader(master, meter.on_readable)
    sock = f"tuimeter-bench-{os.getpid()}-{time.monotonic_ns()}"
    exe = str(Path(sys.executable).with_name("tuimeter"))
    subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-s", "b", "-x", str(SIZE[0]), "-y", str(SIZE[1]),
                    f"{exe} {port}"], check=True)
    streamer = asyncio.create_task(meter.stream())
    try:
        pid = 0
        deadline = time.monotonic() + 20
        while not pid:
            # the Python process itself, not the tmux server whose command line also names it
            out = subprocess.run(["pgrep", "-f", f"python[0-9.]* {exe} {port}"], capture_output=True,
                                 text=True).stdout.split()
            pid = int(out[0]) if out else 0
            if time.monotonic() > deadline:
                raise RuntimeError("tuimeter did not start in tmux")
            await asyncio.sleep(0.1)
        while not meter.streaming:
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
    busy_runs = [asyncio.run(terminal_cpu(seconds, RATE)) for _ in range(runs)]
    busy = [cpu * 100 for cpu, _ in busy_runs]
    idle = [asyncio.run(terminal_cpu(seconds, 0.0))[0] * 100 for _ in range(runs)]
    pilot = [asyncio.run(in_process(seconds)) for _ in range(runs)]
    return {
        "benchmark": "live screen under load", "machine": machine(), "terminal": f"tmux {SIZE[0]}x{SIZE[1]}",
        "rate": f"{RATE:.0f} dp 6 frames/s", "seconds_per_run": seconds,
        "cpu_percent_of_a_core_at_50_fps": summary(busy, 2),
        "cpu_percent_of_a_core_idle": summary(idle, 2),
        "peak_rss_mb": summary([mb for _, mb in busy_runs], 1),
        "frame_to_panel_p50_ms": summary([p["p50_ms"] for p in pilot], 1),
        "frame_to_panel_p99_ms": summary([p["p99_ms"] for p in pilot], 1),
        "panel_updates_per_run": summary([p["updates"] for p in pilot], 0),
        "message_queue_max": summary([p["queue_max"] for p in pilot], 0),
        "message_queue_mean": summary([p["queue_mean"] for p in pilot], 2),
        "budget": "<= 20 % of one core at 50 frames/s, <= 2 % idle; p99 <= 100 ms; queue bounded",
    }


def main() -> None:
    timed_cli(__doc__, bench)


if __name__ == "__main__":
    main()
