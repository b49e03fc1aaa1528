from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.broker import Broker
from tests.headless_process import Tuimeter
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


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PtyMeterServer]:
    """The simulated meter on a real pseudo-terminal (reports every 0.3 s), reachable at a link path."""
    loop = asyncio.get_running_loop()
    srv = PtyMeterServer(SimulatedMeter(seed=2, period=0.3, start=loop.time()), link=tmp_path / "ttyMETER")
    await srv.start()
    yield srv
    await srv.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free localhost port, anonymous."""
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Callable[..., Tuimeter]]:
    """Start `tuimeter --demo --headless` processes; whatever is still running at the end is killed."""
    started: list[Tuimeter] = []

    def start(*args: str, name: str = "meter") -> Tuimeter:
        t = Tuimeter(tmp_path, *args, name=name)
        started.append(t)
        return t

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait()
