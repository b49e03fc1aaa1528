"""Benchmark 5, memory: 10^6 frames through the headless path and through the live screen, each in a
fresh process, with the resident set size read at 10^4, 10^5 and 10^6 frames, and the peak.

The session is fed in-process (its serial transport replaced by the bytes), so a million frames take
seconds, not the 30 minutes a real 115200-baud line would; everything after the port is the real code:
HostSession, HostMachine, the event bus, and the headless monitor writing JSON lines, or the Textual
app with its model, panels and frame log.

    python -m benchmarks.memory [--frames 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import machine, stream_chunks

CHECKPOINTS = (10_000, 100_000, 1_000_000)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Transport:
    """Stands in for the serial transport: writes go nowhere, reads are fed by the benchmark."""

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def feed(session: Any, frames: int, pause: Any) -> dict[str, float]:
    from benchmarks.common import online_machine

    session.machine = online_machine(screen=session.machine.config.log_frames)
    session._transport = _Transport()
    marks: dict[str, float] = {}
    checkpoints = list(CHECKPOINTS)
    for chunk in stream_chunks(frames, 256):  # made as read: the benchmark holds no stream in memory
        session._on_data(chunk)
        await pause()
        if checkpoints and session.machine.frames_in >= checkpoints[0]:
            marks[f"rss_mb_at_{checkpoints.pop(0)}"] = round(rss_mb(), 1)
    marks["peak_mb"] = round(peak_mb(), 1)
    return marks


async def headless(frames: int) -> dict[str, float]:
    from tuimeter.core.host import HostConfig
    from tuimeter.core.profile import load_profile
    from tuimeter.headless import HeadlessMonitor, HeadlessOptions
    from tuimeter.host.session import HostSession, SessionOptions

    session = HostSession(SessionOptions(port="bench"), load_profile(), HostConfig(log_frames=False, dp_events=False))
    with tempfile.TemporaryDirectory() as tmp, open("/dev/null", "w") as devnull:
        monitor = HeadlessMonitor(session, HeadlessOptions(str(Path(tmp) / "m.jsonl")), out=devnull)
        consumer = asyncio.create_task(monitor.consume())
        marks = await feed(session, frames, lambda: asyncio.sleep(0))
        session.bus.close()
        await consumer
    return marks


async def screen(frames: int) -> dict[str, float]:
    from tuimeter.core.host import HostConfig
    from tuimeter.core.profile import load_profile
    from tuimeter.host.session import HostSession, SessionOptions
    from tuimeter.tui.app import TuimeterApp

    session = HostSession(SessionOptions(port="bench"), load_profile(), HostConfig())
    app = TuimeterApp(session)
    async with app.run_test(size=(160, 48)) as pilot:
        tick = {"n": 0}

        async def pause() -> None:
            tick["n"] += 1
            if tick["n"] % 20 == 0:  # let the screen redraw now and then, as it does on its timers
                await pilot.pause()

        marks = await feed(session, frames, pause)
        marks["log_lines_kept"] = len(app.model.log)
    return marks


def run_child(kind: str, frames: int) -> dict[str, float]:
    """Each measurement in a fresh process: peak RSS is per process."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--child", kind, "--frames", str(frames)],
                         capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def bench(frames: int) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "memory", "machine": machine(), "frames": frames}
    for kind in ("headless", "screen"):
        marks: dict[str, Any] = run_child(kind, frames)
        first, last = marks.get(f"rss_mb_at_{CHECKPOINTS[0]}"), marks.get(f"rss_mb_at_{CHECKPOINTS[-1]}")
        marks["growth_mb_10k_to_1m"] = round(last - first, 1) if first is not None and last is not None else None
        result[kind] = marks
    result["budget"] = "peak RSS headless <= 40 MB, screen <= 100 MB; growth from 10^4 to 10^6 frames <= 5 MB"
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--child", choices=("headless", "screen"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = headless if args.child == "headless" else screen
        print(json.dumps(asyncio.run(fn(args.frames))))
        return
    print(json.dumps(bench(args.frames), indent=2))


if __name__ == "__main__":
    main()
