"""Unplug the simulated meter's port 100 times; time each replug → online and count open files.

    python -m benchmarks.unplug [--cycles 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

from tuimeter.core.events import LinkState
from tuimeter.core.host import HostConfig
from tuimeter.core.profile import load_profile
from tuimeter.host.session import HostSession, SessionOptions
from tuimeter.sim.mcu import SimulatedMeter
from tuimeter.sim.pty_server import PtyMeterServer


async def wait_for(pred: object, timeout: float = 5.0) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not pred():  # type: ignore[operator]
        if loop.time() - t0 > timeout:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)
    return loop.time() - t0


async def unplug(cycles: int, away: float) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory() as tmp:
        # the real meter reports every ~15 s: the start-up dump goes quiet at once
        server = PtyMeterServer(SimulatedMeter(seed=1, period=15.0, start=loop.time()), link=Path(tmp) / "tty")
        await server.start()
        session = HostSession(SessionOptions(port=server.port), load_profile(), HostConfig())
        await session.start()
        await session.wait_online(10)
        fds = len(os.listdir("/proc/self/fd"))
        times = []
        for _ in range(cycles):
            server.vanish()
            await wait_for(lambda: session.link is LinkState.RECONNECTING)
            await asyncio.sleep(away)
            server.restore()
            times.append(await wait_for(lambda: session.link is LinkState.ONLINE))
        await asyncio.sleep(0.2)
        result = {
            "cycles": cycles, "away_s": away,
            "replug_to_online_ms": {"median": round(statistics.median(times) * 1000),
                                    "p95": round(sorted(times)[int(0.95 * len(times)) - 1] * 1000),
                                    "max": round(max(times) * 1000)},
            "open_files_before": fds, "open_files_after": len(os.listdir("/proc/self/fd")),
            "reconnects": session.reconnects,
        }
        await session.close()
        await server.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--away", type=float, default=1.5, help="seconds the port stays away each time")
    args = ap.parse_args()
    result = asyncio.run(unplug(args.cycles, args.away))
    result["machine"] = f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
