"""End to end over a real pseudo-terminal: HostSession (pyserial-asyncio-fast) against the simulated meter."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.waiting import TIMEOUT, until
from tuimeter.core.commands import Command
from tuimeter.core.events import Event, LinkChanged, LinkState, McuRestarted, Notice, ReadingUpdated
from tuimeter.core.host import CommandRefused, HostConfig
from tuimeter.core.profile import load_profile
from tuimeter.host.session import HostSession, PortError, SessionOptions
from tuimeter.sim.mcu import SimulatedMeter
from tuimeter.sim.pty_server import PtyMeterServer


async def open_session(port: str, **config: object) -> HostSession:
    session = HostSession(SessionOptions(port=port), load_profile(), HostConfig(**config))  # type: ignore[arg-type]
    return session


async def wait_for(events: list[Event], pred: Callable[[Event], object], what: str, start: int = 0) -> Event:
    """The first event from index `start` on for which pred holds, once there is one."""
    return await until(lambda: next((e for e in events[start:] if pred(e)), None), what=what)


def readings(events: list[Event]) -> int:
    return sum(isinstance(e, ReadingUpdated) for e in events)


def record(session: HostSession) -> list[Event]:
    events: list[Event] = []
    session.bus.add_listener(events.append)
    return events


async def test_handshake_order_and_readings(server: PtyMeterServer) -> None:
    session = await open_session(server.port)
    events = record(session)
    await session.start()
    try:
        await session.wait_online(TIMEOUT)
        reading = await wait_for(events, lambda e: isinstance(e, ReadingUpdated) and e.reading.voltage_v,
                                 "a reading with a voltage")
        assert isinstance(reading, ReadingUpdated)
        assert 200 < (reading.reading.voltage_v or 0) < 250
        assert reading.reading.relay is True
        received = [(f.command, f.payload) for f in server.meter.frames_received]
        assert received[:7] == [(0, b""), (1, b""), (2, b""), (3, b"\x02"), (3, b"\x03"), (3, b"\x04"), (8, b"")]
        # periodic reports keep coming
        n = readings(events)
        await until(lambda: readings(events) >= n + 2, what="two more readings")
    finally:
        await session.close()


async def test_relay_set_and_confirmed_by_meter(server: PtyMeterServer) -> None:
    session = await open_session(server.port)
    await session.start()
    try:
        await session.wait_online(TIMEOUT)
        message = await session.set_relay(False)
        assert "relay off (confirmed by the meter)" in message
        assert server.meter.relay is False
        assert session.reading().power_w == 0
        assert "confirmed" in await session.set_relay(True)
        assert server.meter.relay is True
    finally:
        await session.close()


async def test_read_only_never_sends_relay_command(server: PtyMeterServer) -> None:
    session = await open_session(server.port, read_only=True)
    await session.start()
    try:
        await session.wait_online(TIMEOUT)
        with pytest.raises(CommandRefused, match="read-only"):
            await session.set_relay(False)
        # a frame sent after the refusal: once the meter has answered it, anything sent before it has arrived
        await session.query()
        assert Command.DP_QUERY in [f.command for f in server.meter.frames_received]
        assert Command.DP_COMMAND not in [f.command for f in server.meter.frames_received]
        assert server.meter.relay is True
    finally:
        await session.close()


async def test_mcu_restart_detected_and_startup_rerun(server: PtyMeterServer) -> None:
    session = await open_session(server.port, heartbeat_interval=0.3)
    events = record(session)
    await session.start()
    try:
        await session.wait_online(TIMEOUT)
        loop = asyncio.get_running_loop()
        server.meter.reboot(loop.time())
        restarted = await wait_for(events, lambda e: isinstance(e, McuRestarted), "the restart noticed")
        start = events.index(restarted)  # only what comes after the restart counts: not the first "online"
        # start-up runs again: its dump ends by the 2 s cap when this fast-reporting meter (every 0.3 s =
        # the quiet gap) never pauses long enough
        await wait_for(events, lambda e: isinstance(e, LinkChanged) and e.state is LinkState.ONLINE,
                       "online again after the restart", start)
        assert server.meter.reporting  # the sim was initialised again
        n = readings(events)
        await until(lambda: readings(events) > n, what="readings again after the restart")
    finally:
        await session.close()


async def test_port_vanishes_and_returns(server: PtyMeterServer) -> None:
    session = await open_session(server.port)
    events = record(session)
    await session.start()
    try:
        await session.wait_online(TIMEOUT)
        server.vanish()
        await wait_for(events, lambda e: isinstance(e, LinkChanged) and e.state is LinkState.RECONNECTING,
                       "reconnecting after the unplug")
        # the behaviour under test, not a wait for something: the port stays away a while (several reopen
        # attempts, with backoff up to 1 s), which fail quietly meanwhile
        await asyncio.sleep(1.5)
        assert session.link is LinkState.RECONNECTING
        server.restore()
        # reopened (backoff ≤ 1 s), then start-up, whose dump ends by the 2 s cap when this fast-reporting
        # meter (every 0.3 s = the quiet gap) never pauses long enough
        await session.wait_online(TIMEOUT)
        assert session.reconnects == 1
        assert any(isinstance(e, Notice) and "back" in e.text for e in events)
        n = readings(events)
        await until(lambda: readings(events) > n, what="readings again after the replug")
    finally:
        await session.close()


async def test_no_leaked_file_descriptors_over_unplug_cycles(server: PtyMeterServer) -> None:
    session = await open_session(server.port)
    await session.start()

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    try:
        await session.wait_online(TIMEOUT)
        fds_before = open_fds()
        for _ in range(10):
            server.vanish()
            await until(lambda: session.link is LinkState.RECONNECTING, what="the unplug noticed")
            server.restore()
            await session.wait_online(TIMEOUT)
        # closed ports go away as the loop gets to them: no leak stays
        await until(lambda: open_fds() <= fds_before, what=f"no more than the {fds_before} fds open before",
                    show=open_fds)
    finally:
        await session.close()


async def test_missing_port_is_a_clear_error(tmp_path: Path) -> None:
    session = await open_session(str(tmp_path / "ttyUSB9"))
    with pytest.raises(PortError, match="no such device; check the cable"):
        await session.start()


async def test_silent_port_gives_wiring_hint(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        session = HostSession(SessionOptions(port=os.ttyname(slave), no_data_hint_after=0.3), load_profile())
        events = record(session)
        await session.start()
        os.write(master, b"\xf0\x0f" * 20)  # what a wrong baud rate looks like
        note = await wait_for(events, lambda e: isinstance(e, Notice) and e.level == "warning", "the hint")
        assert isinstance(note, Notice) and "--baud 115200" in note.text
        await session.close()
    finally:
        os.close(master)
        os.close(slave)


async def test_socket_url_to_a_tcp_serial_server() -> None:
    """socket://host:port, as to a ser2net-style server: here a real TCP server in front of the sim."""
    loop = asyncio.get_running_loop()
    meter = SimulatedMeter(seed=3, period=0.3, start=loop.time())

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def pump_out() -> None:
            while True:
                meter.tick(loop.time())
                if data := meter.data_to_send():
                    writer.write(data)
                await asyncio.sleep(0.02)  # the serial server's own pace, as ser2net's polling would be

        out = asyncio.create_task(pump_out())
        try:
            while data := await reader.read(1024):
                meter.receive(data, loop.time())
        finally:
            out.cancel()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = await open_session(f"socket://127.0.0.1:{port}")
    try:
        await session.start()
        await session.wait_online(TIMEOUT)
        assert "confirmed" in await session.set_relay(False)
        assert meter.relay is False
    finally:
        await session.close()
        server.close()
        await server.wait_closed()


async def test_spy_url_traces_both_directions(server: PtyMeterServer, tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    session = await open_session(f"spy://{server.path}?file={trace}")
    await session.start()
    try:
        await session.wait_online(TIMEOUT)
    finally:
        await session.close()
    text = trace.read_text()
    assert "TX" in text and "RX" in text
    assert "55 AA 00 00 00 00 FF" in text.upper()  # our first heartbeat, as the spy saw it


async def test_refused_socket_url_is_a_clear_error() -> None:
    session = await open_session("socket://127.0.0.1:9")
    with pytest.raises(PortError, match="connection refused"):
        await session.start()
