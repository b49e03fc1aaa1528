"""What every benchmark shares: the machine it ran on, repeated runs summarised, a recorded stream, a
process's CPU time and wake-ups from /proc, and the one place benchmarks drive tuimeter.core's
HostMachine directly (see "tuimeter.core internals" below: adapt there when the core changes).
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DPType, make_datapoint
from tuimeter.core.frames import encode_frame
from tuimeter.core.host import HostConfig, HostMachine
from tuimeter.core.profile import load_profile
from tuimeter.host.clock import local_now
from tuimeter.sim.mcu import SimulatedMeter

MCU = 3  # the version byte this meter's MCU sends


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"{platform.python_implementation()} {platform.python_version()}")


def summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    """Median of the runs and their spread (min–max), as the docs report them."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "runs": len(values)}


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 2) if reference > 0 else None


def repeat(runs: int, fn: Callable[[], float]) -> list[float]:
    return [fn() for _ in range(runs)]


def phase_a(volts: float, amps: float, watts: float, leak_ma: int) -> bytes:
    """The 10-byte dp 6 of this meter: V(2) 0.1 V, I(3) mA, P(3) W, leakage(2) mA."""
    return (round(volts * 10).to_bytes(2, "big") + round(amps * 1000).to_bytes(3, "big")
            + round(watts).to_bytes(3, "big") + leak_ma.to_bytes(2, "big"))


def recorded_stream(frames: int, seed: int = 1) -> tuple[bytes, int]:
    """A meter's side of the line: mostly dp 6 reports, some heartbeat answers, energy and relay
    reports, and noise between frames. Returns the bytes and how many valid frames they hold."""
    parts = list(stream_parts(frames, seed))
    return b"".join(parts), frames


def stream_chunks(frames: int, size: int, seed: int = 1) -> Iterator[bytes]:
    """The same stream, made as it is read: nothing held but the current read."""
    buf = bytearray()
    for part in stream_parts(frames, seed):
        buf += part
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def stream_parts(frames: int, seed: int = 1) -> Iterator[bytes]:
    rng = random.Random(seed)
    volts, amps = 231.0, 2.0
    valid = 0
    while valid < frames:
        r = rng.random()
        if r < 0.02:  # line noise: a few random bytes (never a whole valid frame)
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))).replace(b"\x55", b"\x54")
            continue
        valid += 1
        if r < 0.90:
            volts = min(260.0, max(200.0, volts + rng.uniform(-0.3, 0.3)))
            amps = min(60.0, max(0.0, amps + rng.uniform(-0.2, 0.2)))
            dp = make_datapoint(6, DPType.RAW, phase_a(volts, amps, volts * amps * 0.97, rng.randrange(0, 8)))
            yield encode_frame(Command.DP_REPORT, dp.encode(), MCU)
        elif r < 0.95:
            yield encode_frame(Command.HEARTBEAT, b"\x01", MCU)
        elif r < 0.99:
            dp = make_datapoint(1, DPType.VALUE, 88848 + valid // 1000)
            yield encode_frame(Command.DP_REPORT, dp.encode(), MCU)
        else:
            dp = make_datapoint(16, DPType.BOOL, True)
            yield encode_frame(Command.DP_REPORT, dp.encode(), MCU)


def chunked(data: bytes, size: int) -> list[bytes]:
    """As a serial port hands them over: reads of up to `size` bytes."""
    return [data[i:i + size] for i in range(0, len(data), size)]


# ---- a process seen from /proc -----------------------------------------------------------------

def _tasks(pid: int) -> list[Path]:
    return list(Path(f"/proc/{pid}/task").iterdir())


def cpu_seconds(pid: int) -> float:
    """CPU time of all the process's threads, from the scheduler's nanosecond count (the first field of
    /proc/PID/task/TID/schedstat; utime + stime in /proc/PID/stat are in 10 ms ticks, too coarse for a
    process that runs a few milliseconds a second). A thread that ends between two readings takes its
    time with it: the processes measured here keep theirs for their lifetime."""
    total = 0
    for task in _tasks(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def context_switches(pid: int) -> int:
    """Wake-ups so far: voluntary + nonvoluntary context switches, summed over the process's threads."""
    total = 0
    for task in _tasks(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                    total += int(line.split()[1])
    return total


def threads(pid: int) -> int:
    return len(_tasks(pid))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---- tuimeter.core internals: everything the benchmarks (and tests/test_performance_structure.py) do
# ---- with HostMachine directly is here. Adapt these three when its constructor or receive() change.

def new_machine(screen: bool) -> HostMachine:
    """Configured as the runner configures it: with a screen, frame-log and per-dp events; without, neither."""
    return HostMachine(load_profile(), HostConfig(log_frames=screen, dp_events=screen))


def machine_receive(m: HostMachine, data: bytes, now: float) -> None:
    """One read handed to the machine at monotonic time `now`, with the wall clock the session reads."""
    m.receive(data, now, local_now())


def online_machine(screen: bool) -> HostMachine:
    """A HostMachine that has run the real start-up against the simulated meter, now online."""
    m = new_machine(screen)
    sim = SimulatedMeter(seed=1, period=3600.0)
    now = 0.0
    m.connection_made(now, local_now())
    while not m.online:
        sim.receive(m.data_to_send(), now)
        machine_receive(m, sim.data_to_send(), now)
        now += 0.01
        sim.tick(now)
        m.tick(now, local_now())
        m.events()
        if now > 30:
            raise RuntimeError("the machine did not come online")
    return m


def timed_cli(doc: str | None, bench: Callable[[float, int], dict[str, Any]], seconds: float = 20.0,
              runs: int = 3) -> None:
    """`--seconds S --runs N`, then the figures as JSON: the command line of the timed benchmarks."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=seconds)
    ap.add_argument("--runs", type=int, default=runs)
    args = ap.parse_args()
    print(json.dumps(bench(args.seconds, args.runs), indent=2))
