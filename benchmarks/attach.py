"""Benchmark 7, viewers attached to a headless service: a meter streaming 50 dp 6 reports a second over
a pseudo-terminal into `tuimeter PORT --headless --log FILE --control SOCK`, with 0, 1 and 3 viewers
attached (real `tuimeter attach SOCK` processes: the first the live screen in tmux at 160x48, the
others `--headless --log FILE`), and the same service with `--no-control` (the service as it was
before it served viewers). The service's CPU per wall second (all its threads, from /proc) over the
same window after a warm-up; the configurations interleaved within each round, rotated from round to
round, so a busy moment on the machine hits them alike.

Budgets: the service's CPU with 3 viewers over its CPU with none (control on), with 3 viewers over
with 1 (what each further viewer costs), and control on with no viewer over --no-control (the cost
of the per-frame events and the history kept for a snapshot); each the median of the rounds' ratios.
The viewers' own CPU and the machine's load are reported beside them.

Latency: frame written on the pty → the attached live screen's leakage panel showing that frame's
sequence number: an AttachedSession and the real TuimeterApp in this process (Textual run_test,
160x48), beside two `--headless` viewer processes, polled every 2 ms. The floor: the service reads a
busy port every 15 ms, writes a viewer's lines at most 50 ms late (tuimeter.attach.server.SEND_EVERY),
and a reading waits up to 0.1 s for the panels' next redraw
(tuimeter.tui.app.REFRESH_S); like benchmarks.tui, each redraw is timed from the newest frame it
shows. Also frame → record in the service's own log and in a headless viewer's log.

    python -m benchmarks.attach [--seconds 20] [--runs 5]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import context_switches, cpu_seconds, machine, percentile, summary, timed_cli
from benchmarks.headless import Meter, tail_latencies
from benchmarks.tui import _pty

RATE = 50.0
SIZE = (160, 48)
WARMUP_S = 5.0  # after the last viewer attached: its snapshot sent, the screen's start-up drawn
TAIL_S = 0.002  # how often the record files are polled for latency
VIEWERS_RATIO_BUDGET = 1.25  # service CPU with 3 viewers / with none (control on)
PER_VIEWER_RATIO_BUDGET = 1.25  # service CPU with 3 viewers / with 1: a burst is encoded once for all
CONTROL_RATIO_BUDGET = 1.25  # service CPU with the control socket on, no viewer / --no-control
PANEL_P99_BUDGET_MS = 150.0


@dataclass(frozen=True)
class Config:
    key: str
    what: str
    control: bool
    screens: int  # `tuimeter attach SOCK` in tmux
    headless: int  # `tuimeter attach SOCK --headless --log FILE`

    @property
    def viewers(self) -> int:
        return self.screens + self.headless


CONFIGS = (
    Config("no_control", "--no-control (the reference)", control=False, screens=0, headless=0),
    Config("viewers_0", "control on, no viewer", control=True, screens=0, headless=0),
    Config("viewers_1", "1 viewer: the live screen in tmux", control=True, screens=1, headless=0),
    Config("viewers_3", "3 viewers: the live screen in tmux, 2 --headless --log", control=True, screens=1,
           headless=2),
)


def machine_busy() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy (all cores) and idle, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / hz, idle / hz


@dataclass
class Service:
    """The service on a pty fed by the benchmark's meter, and the viewers attached to it."""

    config: Config
    tmp: Path
    meter: Meter = field(init=False)
    proc: subprocess.Popen[bytes] = field(init=False)
    viewers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    screen_pids: list[int] = field(default_factory=list)
    tmux: list[str] = field(default_factory=list)  # the tmux servers we started (-L names)

    @property
    def sock(self) -> Path:
        return self.tmp / "service.sock"

    @property
    def out(self) -> Path:
        return self.tmp / "service.out"

    @property
    def log(self) -> Path:
        return self.tmp / "service.jsonl"

    def viewer_log(self, i: int) -> Path:
        return self.tmp / f"viewer-{i}.jsonl"

    def output(self) -> str:
        try:
            return self.out.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@contextlib.asynccontextmanager
async def service(config: Config) -> AsyncIterator[Service]:
    """The service streaming, its viewers attached (the output says so for each pid), until the block ends."""
    master, slave, port = _pty()
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="tuimeter-bench-") as tmp:
        s = Service(config, Path(tmp))
        s.meter = Meter(master, handshake=True, rate=RATE)
        loop.add_reader(master, s.meter.on_readable)
        control = ["--control", str(s.sock)] if config.control else ["--no-control"]
        with s.out.open("wb") as out:
            s.proc = subprocess.Popen([sys.executable, "-m", "tuimeter", port, "--headless", "--log", str(s.log),
                                       *control], stdout=out, stderr=subprocess.STDOUT)
        streamer = asyncio.create_task(s.meter.stream())
        try:
            await _until(lambda: s.meter.streaming and (not config.control or "viewers attach with" in s.output()),
                         "the service streaming" + (" and serving viewers" if config.control else ""), s)
            for i in range(config.screens):
                name = f"tuimeter-bench-{os.getpid()}-{time.monotonic_ns()}"
                s.tmux.append(name)
                cmd = f"exec {sys.executable} -m tuimeter attach {s.sock}"  # the pane's process is the viewer
                subprocess.run(["tmux", "-L", name, "new-session", "-d", "-s", f"v{i}", "-x", str(SIZE[0]),
                                "-y", str(SIZE[1]), cmd], check=True)
                pid = subprocess.run(["tmux", "-L", name, "display-message", "-p", "-t", f"v{i}", "#{pane_pid}"],
                                     capture_output=True, text=True, check=True).stdout
                s.screen_pids.append(int(pid.strip()))
            for i in range(config.headless):
                s.viewers.append(subprocess.Popen([sys.executable, "-m", "tuimeter", "attach", str(s.sock),
                                                   "--headless", "--log", str(s.viewer_log(i))],
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            pids = s.screen_pids + [v.pid for v in s.viewers]
            await _until(lambda: all(f"pid {pid}) attached" in s.output() for pid in pids),
                         f"{len(pids)} viewer(s) attached", s)
            yield s
        finally:
            s.meter.stop = True
            streamer.cancel()
            for name in s.tmux:
                subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True)
            for v in s.viewers:
                v.terminate()
            for v in s.viewers:
                v.wait(10)
            s.proc.terminate()
            s.proc.wait(10)
            loop.remove_reader(master)
            os.close(master)
            os.close(slave)


async def _until(cond: Callable[[], bool], what: str, s: Service, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if s.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"waiting for {what}: the service said:\n{s.output()[-2000:]}")
        await asyncio.sleep(0.05)


class Tail:
    """frame → record latencies from a record file, in a thread (benchmarks.headless.tail_latencies)."""

    def __init__(self, log: Path, meter: Meter) -> None:
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=tail_latencies, args=(log, meter, self.stop, self.latencies),
                                       kwargs={"interval": TAIL_S}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


async def run_once(config: Config, seconds: float) -> dict[str, Any]:
    async with service(config) as s:
        tails = [Tail(s.log, s.meter)] + ([Tail(s.viewer_log(0), s.meter)] if config.headless else [])
        try:
            await asyncio.sleep(WARMUP_S)
            for t in tails:
                t.latencies.clear()
            pid = s.proc.pid
            viewer_pids = {"screen": s.screen_pids, "headless": [v.pid for v in s.viewers]}
            v0 = {kind: [cpu_seconds(p) for p in ps] for kind, ps in viewer_pids.items()}
            (b0, i0), c0, w0, t0 = machine_busy(), cpu_seconds(pid), context_switches(pid), time.monotonic()
            await asyncio.sleep(seconds)
            (b1, i1), c1, w1, t1 = machine_busy(), cpu_seconds(pid), context_switches(pid), time.monotonic()
            v1 = {kind: [cpu_seconds(p) for p in ps] for kind, ps in viewer_pids.items()}
        finally:
            for t in tails:
                t.close()
        wall = t1 - t0
        alive = all(v.poll() is None for v in s.viewers) and all(Path(f"/proc/{p}").exists() for p in s.screen_pids)
        result: dict[str, Any] = {
            "cpu_per_wall_s": (c1 - c0) / wall, "wakeups_per_s": (w1 - w0) / wall,
            "machine_busy_percent": (b1 - b0) / ((b1 - b0) + (i1 - i0)) * 100,
            "viewer_cpu_per_wall_s": {kind: [(b - a) / wall for a, b in zip(v0[kind], v1[kind], strict=True)]
                                      for kind in v0},
            "viewers_dropped": s.output().count(" dropped: "), "viewers_alive": alive,
            "records": len(tails[0].latencies),
            "service_record_p99_ms": percentile(tails[0].latencies, 99) * 1000,
        }
        if config.headless:
            viewer = tails[1].latencies
            result |= {"viewer_records": len(viewer), "viewer_record_p50_ms": percentile(viewer, 50) * 1000,
                       "viewer_record_p99_ms": percentile(viewer, 99) * 1000}
        return result


async def panel_latency(seconds: float) -> dict[str, Any]:
    """Frame written → the attached screen's leakage panel showing it: an AttachedSession and the real
    TuimeterApp here (run_test), beside the 3-viewer configuration's two headless viewer processes."""
    from textual.widgets import Digits

    from tuimeter.attach.client import AttachedSession
    from tuimeter.tui.app import TuimeterApp

    async with service(Config("panel", "an in-process screen and 2 --headless", True, 0, 2)) as s:
        session = AttachedSession(s.sock)
        app = TuimeterApp(session)  # listening before the session starts, as `tuimeter attach` does
        await session.start()
        latencies: list[float] = []
        try:
            async with app.run_test(size=SIZE) as pilot:
                digits = app.query_one("#metric-leakage .digits", Digits)
                deadline = time.monotonic() + 20
                while not digits.value.isdigit():
                    if time.monotonic() > deadline:
                        raise RuntimeError("the attached screen showed no leakage")
                    await pilot.pause(0.05)
                await pilot.pause(2.0)
                shown = digits.value
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    await asyncio.sleep(0.002)
                    if digits.value != shown:
                        shown = digits.value
                        sent = s.meter.sent.get(int(shown)) if shown.isdigit() else None
                        if sent is not None:
                            latencies.append(time.monotonic() - sent)
        finally:
            await session.close()
    return {"p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": max(latencies) * 1000, "updates": len(latencies)}


def bench(seconds: float, runs: int) -> dict[str, Any]:
    if shutil.which("tmux") is None:
        raise SystemExit("benchmarks.attach needs tmux (apt-get install tmux)")
    by: dict[str, list[dict[str, Any]]] = {c.key: [] for c in CONFIGS}
    for round_ in range(runs):
        shift = round_ % len(CONFIGS)
        for config in CONFIGS[shift:] + CONFIGS[:shift]:
            by[config.key].append(asyncio.run(run_once(config, seconds)))
    panel = [asyncio.run(panel_latency(seconds)) for _ in range(runs)]

    def cpu(key: str) -> list[float]:
        return [r["cpu_per_wall_s"] * 100 for r in by[key]]

    # each round's ratio (the configurations of a round ran within a couple of minutes), then the median
    three = [a / b for a, b in zip(cpu("viewers_3"), cpu("viewers_0"), strict=True)]
    one = [a / b for a, b in zip(cpu("viewers_1"), cpu("viewers_0"), strict=True)]
    per_viewer = [a / b for a, b in zip(cpu("viewers_3"), cpu("viewers_1"), strict=True)]
    control = [a / b for a, b in zip(cpu("viewers_0"), cpu("no_control"), strict=True)]
    idle = cpu("viewers_0")
    p99 = summary([p["p99_ms"] for p in panel], 1)

    def viewer_cpu(key: str, kind: str) -> dict[str, Any] | None:
        values = [v * 100 for r in by[key] for v in r["viewer_cpu_per_wall_s"][kind]]
        return summary(values, 2) if values else None

    return {
        "benchmark": "viewers attached to a headless service", "machine": machine(),
        "rate": f"{RATE:.0f} dp 6 frames/s", "seconds_per_run": seconds, "warmup_s": WARMUP_S,
        "configurations": {c.key: c.what for c in CONFIGS},
        "cpu": "the service process's threads' scheduler time (/proc/PID/task/*/schedstat) per wall second",
        "service_cpu_percent_of_a_core": {c.key: summary(cpu(c.key), 2) for c in CONFIGS},
        "service_cpu_percent_runs": {c.key: [round(v, 3) for v in cpu(c.key)] for c in CONFIGS},
        "service_wakeups_per_s": {c.key: summary([r["wakeups_per_s"] for r in by[c.key]], 0) for c in CONFIGS},
        "ratio_3_viewers_over_0": summary(three, 2),
        "ratio_1_viewer_over_0": summary(one, 2),
        "ratio_3_viewers_over_1": summary(per_viewer, 2),
        "ratio_control_over_no_control": summary(control, 2),
        "noise_0_viewers_max_over_min": round(max(idle) / min(idle), 2),
        "noise_no_control_max_over_min": round(max(cpu("no_control")) / min(cpu("no_control")), 2),
        "viewers_ratio_budget": VIEWERS_RATIO_BUDGET,
        "viewers_ratio_met": statistics.median(three) <= VIEWERS_RATIO_BUDGET,
        "per_viewer_ratio_budget": PER_VIEWER_RATIO_BUDGET,
        "per_viewer_ratio_met": statistics.median(per_viewer) <= PER_VIEWER_RATIO_BUDGET,
        "control_ratio_budget": CONTROL_RATIO_BUDGET,
        "control_ratio_met": statistics.median(control) <= CONTROL_RATIO_BUDGET,
        "viewer_cpu_percent_of_a_core": {
            "screen_in_tmux_1_viewer": viewer_cpu("viewers_1", "screen"),
            "screen_in_tmux_3_viewers": viewer_cpu("viewers_3", "screen"),
            "headless_3_viewers": viewer_cpu("viewers_3", "headless"),
        },
        "machine_busy_percent": {c.key: summary([r["machine_busy_percent"] for r in by[c.key]], 1) for c in CONFIGS},
        "viewers_dropped": sum(r["viewers_dropped"] for rs in by.values() for r in rs),
        "viewers_all_alive": all(r["viewers_alive"] for rs in by.values() for r in rs),
        "service_frame_to_record_p99_ms": {c.key: summary([r["service_record_p99_ms"] for r in by[c.key]], 2)
                                           for c in CONFIGS},
        "headless_viewer_frame_to_record_p50_ms": summary([r["viewer_record_p50_ms"] for r in by["viewers_3"]], 2),
        "headless_viewer_frame_to_record_p99_ms": summary([r["viewer_record_p99_ms"] for r in by["viewers_3"]], 2),
        "frame_to_attached_panel_p50_ms": summary([p["p50_ms"] for p in panel], 1),
        "frame_to_attached_panel_p99_ms": p99,
        "frame_to_attached_panel_max_ms": summary([p["max_ms"] for p in panel], 1),
        "panel_updates_per_run": summary([p["updates"] for p in panel], 0),
        "panel_p99_budget_ms": PANEL_P99_BUDGET_MS,
        "panel_met": p99["median"] <= PANEL_P99_BUDGET_MS,
        "budget": f"service CPU with 3 viewers / with none <= {VIEWERS_RATIO_BUDGET}x; with 3 / with 1 <= "
                  f"{PER_VIEWER_RATIO_BUDGET}x; control on, no viewer / "
                  f"--no-control <= {CONTROL_RATIO_BUDGET}x; frame → attached panel p99 <= "
                  f"{PANEL_P99_BUDGET_MS:.0f} ms (panels redraw every 0.1 s)",
    }


def main() -> None:
    timed_cli(__doc__, bench, seconds=20.0, runs=5)


if __name__ == "__main__":
    main()
