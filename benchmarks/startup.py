"""Benchmark 4, start-up: `tuimeter --help` and `--version` wall time (and that Textual is not
imported for them); headless port-open → first reading on the simulated meter; the live screen's
launch → first paint with the meter's values (in tmux).

    python -m benchmarks.startup [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import machine, summary
from benchmarks.headless import Meter
from benchmarks.tui import _pty

EXE = str(Path(sys.executable).with_name("tuimeter"))


def wall(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([EXE, *args], capture_output=True, check=True)
    return time.perf_counter() - t0


def textual_imported(args: list[str]) -> bool:
    code = ("import sys; from tuimeter.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print('textual' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stderr.strip().splitlines()[-1] == "True"


async def headless_first_reading() -> dict[str, float]:
    """From the host's first byte on the port (it has opened it) to the first reading in the log."""
    master, slave, port = _pty()
    meter = Meter(master, handshake=True, rate=0.0)
    first_byte: list[float] = []
    on_readable = meter.on_readable

    def watch() -> None:
        if not first_byte:
            first_byte.append(time.monotonic())
        on_readable()

    loop = asyncio.get_running_loop()
    loop.add_reader(master, watch)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "m.jsonl"
        t_start = time.monotonic()
        proc = subprocess.Popen([EXE, port, "--headless", "--log", str(log)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while not (log.exists() and b'"reading"' in log.read_bytes()):
                await asyncio.sleep(0.002)
            t_reading = time.monotonic()
        finally:
            proc.terminate()
            proc.wait(10)
            loop.remove_reader(master)
            os.close(master)
            os.close(slave)
    return {"open_to_reading": t_reading - first_byte[0], "start_to_reading": t_reading - t_start,
            "start_to_open": first_byte[0] - t_start}


async def screen_first_paint() -> float:
    """From launching `tuimeter PORT` in a terminal to the screen showing the meter's values."""
    master, slave, port = _pty()
    meter = Meter(master, handshake=True, rate=0.0)
    loop = asyncio.get_running_loop()
    loop.add_reader(master, meter.on_readable)
    sock = f"tuimeter-start-{os.getpid()}-{time.monotonic_ns()}"
    try:
        t0 = time.monotonic()
        subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-s", "b", "-x", "160", "-y", "48",
                        f"{EXE} {port}"], check=True)
        while True:
            screen = subprocess.run(["tmux", "-L", sock, "capture-pane", "-p", "-t", "b"], capture_output=True,
                                    text=True).stdout
            if "FSE-F723C558128885" in screen and "confirmed by the meter" in screen and " kWh" in screen:
                return time.monotonic() - t0
            if time.monotonic() - t0 > 20:
                raise RuntimeError("no values on screen in 20 s")
            await asyncio.sleep(0.01)
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)


def bench(runs: int) -> dict[str, Any]:
    help_s = [wall(["--help"]) for _ in range(runs)]
    version_s = [wall(["--version"]) for _ in range(runs)]
    headless = [asyncio.run(headless_first_reading()) for _ in range(runs)]
    result: dict[str, Any] = {
        "benchmark": "start-up", "machine": machine(),
        "help_s": summary(help_s), "version_s": summary(version_s),
        "textual_imported_by_help_or_version": textual_imported(["--help"]) or textual_imported(["--version"]),
        "headless_port_open_to_first_reading_s": summary([h["open_to_reading"] for h in headless]),
        "headless_process_start_to_port_open_s": summary([h["start_to_open"] for h in headless]),
        "headless_process_start_to_first_reading_s": summary([h["start_to_reading"] for h in headless]),
    }
    if shutil.which("tmux"):
        result["screen_launch_to_values_s"] = summary([asyncio.run(screen_first_paint()) for _ in range(runs)])
    result["budget"] = ("--help/--version <= 0.3 s without Textual; port open → first reading <= 0.5 s beyond the "
                        "meter's replies (the simulated meter answers at once); launch → values on screen <= 1.5 s")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    print(json.dumps(bench(args.runs), indent=2))


if __name__ == "__main__":
    main()
