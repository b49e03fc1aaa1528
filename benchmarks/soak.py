"""Soak: the host against a noisy, flaky simulated meter on a real pseudo-terminal, a simulated
day at high speed. Memory must stay flat, counters must add up, nothing may raise.

    python -m benchmarks.soak [--hours 24] [--speed 1440] [--period 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from tuimeter.core.events import Event, LinkChanged, McuRestarted, Notice, ReadingUpdated
from tuimeter.core.host import HostConfig
from tuimeter.core.profile import load_profile
from tuimeter.host.session import HostSession, SessionOptions
from tuimeter.sim.faults import FaultPlan
from tuimeter.sim.mcu import SimulatedMeter
from tuimeter.sim.pty_server import PtyMeterServer

PLAN = FaultPlan(noise=0.2, bursts=0.05, stray=0.1, bad_checksum=0.05, truncate=0.05, absurd_length=0.02,
                 heartbeat_answers=0.9, requests_every=2.0, reboot_every=20.0)


async def soak(hours: float, speed: float, period: float, seed: int = 3) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    failures: list[str] = []
    loop.set_exception_handler(lambda _loop, ctx: failures.append(str(ctx.get("exception") or ctx["message"])))
    seconds = hours * 3600 / speed
    counts: Counter[str] = Counter()

    def count(ev: Event) -> None:
        counts[type(ev).__name__] += 1
        if isinstance(ev, Notice) and ev.level == "error":
            failures.append(ev.text)

    with tempfile.TemporaryDirectory() as tmp:
        meter = SimulatedMeter(seed=seed, period=period, speed=speed, start=loop.time(), faults=PLAN)
        server = PtyMeterServer(meter, link=Path(tmp) / "tty", seed=seed)
        await server.start()
        session = HostSession(SessionOptions(port=server.port), load_profile(),
                              HostConfig(heartbeat_interval=1.0, heartbeat_timeout=0.5))
        session.bus.add_listener(count)
        await session.start()
        tracemalloc.start()
        memory: list[int] = []
        t0 = time.monotonic()
        for _ in range(10):
            await asyncio.sleep(seconds / 10)
            gc.collect()
            memory.append(tracemalloc.get_traced_memory()[0])
        meter.reporting = False  # quiet line: every frame in flight settles
        meter.plan = FaultPlan()
        await asyncio.sleep(1.0)
        elapsed = time.monotonic() - t0
        tracemalloc.stop()
        m, stats = session.machine, session.machine.parser.stats
        injector = server.injector
        assert injector is not None
        result = {
            "simulated_hours": hours, "wall_seconds": round(elapsed, 1),
            "frames_in": m.frames_in, "frames_out": m.frames_out,
            "intact_frames_sent": injector.sent_intact,
            "readings": counts[ReadingUpdated.__name__], "mcu_restarts": counts[McuRestarted.__name__],
            "link_changes": counts[LinkChanged.__name__],
            "faults_injected": dict(injector.injected), "mcu_requests": sum(meter.requests_sent.values()),
            "bad_checksums": stats.bad_checksums, "oversize": stats.oversize, "stalled": stats.stalled,
            "bytes_in": stats.bytes_in, "bytes_skipped": stats.bytes_skipped,
            "bytes_accounted": stats.bytes_in == stats.frame_bytes + stats.bytes_skipped + m.parser.buffered,
            "memory_kib_after_10pct": memory[0] // 1024, "memory_kib_end": memory[-1] // 1024,
            "memory_growth_kib": (memory[-1] - memory[0]) // 1024,
            "failures": failures,
        }
        await session.close()
        await server.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--speed", type=float, default=1440.0, help="simulated seconds per real second")
    ap.add_argument("--period", type=float, default=0.05, help="real seconds between dp 6 reports")
    args = ap.parse_args()
    result = asyncio.run(soak(args.hours, args.speed, args.period))
    result["machine"] = f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
