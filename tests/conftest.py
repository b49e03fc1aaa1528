from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.broker import Broker
from tuimeter.sim.mcu import SimulatedMeter
from tuimeter.sim.pty_server import PtyMeterServer

DATA = Path(__file__).parent / "data"

# no time limits in the suite (timing is for benchmarks/): no per-example deadline, no "too slow" health check
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


def load_captures() -> list[dict[str, Any]]:
    doc = json.loads((DATA / "teardown-thread.json").read_text())
    return list(doc["captures"])


@pytest.fixture
def captures() -> list[dict[str, Any]]:
    return load_captures()


async def close_meter(srv: PtyMeterServer) -> None:
    """srv.close(), without hanging the suite on a known simulator bug: on Python 3.11, when the tick loop's
    wake-up (a byte from the host) meets close()'s cancel, asyncio.wait_for swallows the cancel and the
    loop runs on, so close() waits for ever (gh-86296; test_sim's strict xfail reproduces it). A task that
    was asked to stop and still runs is asked again."""
    await finish_closing(srv.close())


class SafelyClosingServer(PtyMeterServer):
    """A PtyMeterServer whose close() is close_meter(), for code that closes its own (benchmarks.soak)."""

    async def close(self) -> None:
        await finish_closing(super().close())


async def finish_closing(close: Coroutine[Any, Any, None]) -> None:
    closing = asyncio.ensure_future(close)
    while not closing.done():
        await asyncio.wait({closing}, timeout=1.0)
        for task in asyncio.all_tasks():
            if task.get_name().startswith("sim-") and task.cancelling() and not task.done():
                task.cancel()
    closing.result()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PtyMeterServer]:
    """The simulated meter on a real pseudo-terminal (reports every 0.3 s), reachable at a link path."""
    loop = asyncio.get_running_loop()
    srv = PtyMeterServer(SimulatedMeter(seed=2, period=0.3, start=loop.time()), link=tmp_path / "ttyMETER")
    await srv.start()
    yield srv
    await close_meter(srv)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free localhost port, anonymous."""
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()
