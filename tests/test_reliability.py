"""Faults injected by the simulated meter, each on its own, over a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tuimeter.core.commands import Command
from tuimeter.core.datapoints import decode_datapoints
from tuimeter.core.events import Event, FrameLogged, LinkState, ReadingUpdated
from tuimeter.core.host import HostConfig
from tuimeter.core.profile import load_profile
from tuimeter.host.session import CommandFailed, HostSession, SessionOptions
from tuimeter.records import read_csv, read_jsonl
from tuimeter.sim.faults import FaultPlan
from tuimeter.sim.mcu import SimulatedMeter
from tuimeter.sim.pty_server import PtyMeterServer

NOISY = FaultPlan(noise=0.3, bursts=0.1, stray=0.2, bad_checksum=0.2, truncate=0.1, absurd_length=0.05)
TUIMETER = [sys.executable, "-m", "tuimeter"]


async def serve(tmp_path: Path, plan: FaultPlan | None = None, period: float = 0.1,
                **kw: object) -> PtyMeterServer:
    loop = asyncio.get_running_loop()
    meter = SimulatedMeter(seed=11, period=period, start=loop.time(), faults=plan, **kw)  # type: ignore[arg-type]
    server = PtyMeterServer(meter, link=tmp_path / "ttyMETER", seed=11)
    await server.start()
    return server


@pytest.fixture
async def stack() -> AsyncIterator[list[object]]:
    """Things to close at the end of a test, last opened first."""
    items: list[object] = []
    yield items
    for item in reversed(items):
        await item.close()  # type: ignore[attr-defined]


async def connect(server: PtyMeterServer, stack: list[object], reconnect_min: float = 0.25,
                  auto_profile: bool = False, **config: object) -> tuple[HostSession, list[Event]]:
    options = SessionOptions(port=server.port, reconnect_min=reconnect_min)
    session = HostSession(options, load_profile(), HostConfig(**config),  # type: ignore[arg-type]
                          auto_profile=auto_profile)
    events: list[Event] = []
    session.bus.add_listener(events.append)
    await session.start()
    stack.append(session)
    return session, events


async def until(pred: Callable[[], bool], timeout: float = 10.0) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not pred():
        if loop.time() - t0 > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
    return loop.time() - t0


def frames_in(events: list[Event]) -> list[bytes]:
    return [e.frame.raw for e in events if isinstance(e, FrameLogged) and e.direction == "in"]


async def test_noise_never_changes_a_value_and_every_intact_frame_is_decoded(tmp_path: Path,
                                                                            stack: list[object]) -> None:
    server = await serve(tmp_path, NOISY, period=0.03)
    stack.append(server)
    session, events = await connect(server, stack)
    await session.wait_online(10)
    await asyncio.sleep(3.0)
    server.meter.reporting = False  # let the line go quiet, so every stalled candidate is settled
    await asyncio.sleep(1.0)
    injector = server.injector
    assert injector is not None
    accepted = frames_in(events)
    # nothing the host acted on was a mangled frame ...
    assert set(accepted) <= injector.intact
    # ... and nothing sent intact was lost in the noise
    assert len(accepted) == injector.sent_intact
    kinds = injector.injected
    assert all(kinds[k] > 5 for k in ("noise", "bursts", "stray", "bad_checksum", "truncate", "absurd_length"))
    stats = session.machine.parser.stats
    assert stats.bad_checksums > 0 and stats.oversize > 0 and stats.bytes_skipped > 0
    assert stats.bytes_in == stats.frame_bytes + stats.bytes_skipped + session.machine.parser.buffered
    readings = [e.reading for e in events if isinstance(e, ReadingUpdated)]
    assert len(readings) > 20 and all(200 < (r.voltage_v or 230) < 250 for r in readings)


async def test_dribbled_bytes_still_make_frames_and_relay_works(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, FaultPlan(dribble=True), period=0.5)
    stack.append(server)
    session, _ = await connect(server, stack)
    await session.wait_online(10)
    assert "confirmed" in await session.set_relay(False)


async def test_silence_means_link_lost_within_three_heartbeats_then_recovery(tmp_path: Path,
                                                                            stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.2)
    stack.append(server)
    session, events = await connect(server, stack, heartbeat_interval=0.5, heartbeat_timeout=0.3)
    await session.wait_online(10)
    loop = asyncio.get_running_loop()
    server.meter.silent_until = loop.time() + 3.0
    took = await until(lambda: session.link is LinkState.LINK_LOST, 5)
    assert took <= 3 * 0.5 + 0.3  # three heartbeat periods (the last reply may be up to one period old)
    await until(lambda: session.link is LinkState.ONLINE, 8)  # answers again: start-up re-run
    n = sum(isinstance(e, ReadingUpdated) for e in events)
    await asyncio.sleep(0.6)
    assert sum(isinstance(e, ReadingUpdated) for e in events) > n  # readings resume


async def test_some_heartbeats_unanswered_the_link_keeps_recovering(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, FaultPlan(heartbeat_answers=0.5), period=0.2)
    stack.append(server)
    session, events = await connect(server, stack, heartbeat_interval=0.2, heartbeat_timeout=0.1,
                                    handshake_interval=0.2)
    await session.wait_online(10)
    await asyncio.sleep(4.0)
    await until(lambda: session.link is LinkState.ONLINE, 10)
    readings = [e for e in events if isinstance(e, ReadingUpdated)]
    assert len(readings) > 10


async def test_reboot_detected_and_startup_rerun_within_2_s(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.5)  # reports slower than the 0.3 s the dump needs to go quiet
    stack.append(server)
    session, _ = await connect(server, stack, heartbeat_interval=0.5)
    await session.wait_online(10)
    loop = asyncio.get_running_loop()
    server.meter.reboot(loop.time())
    await until(lambda: session.link is LinkState.HANDSHAKING, 3)  # the 0x00 reply was seen
    took = await until(lambda: session.link is LinkState.ONLINE, 3)
    assert took < 2.0
    assert server.meter.reporting


async def test_port_gone_and_back_100_times_without_leaking(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.5)
    stack.append(server)
    session, _ = await connect(server, stack, reconnect_min=0.02)
    await session.wait_online(10)
    fds = len(os.listdir("/proc/self/fd"))
    tasks = len(asyncio.all_tasks())
    for _ in range(100):
        server.vanish()
        await until(lambda: session.link is LinkState.RECONNECTING, 3)
        server.restore()
        await until(lambda: session.link is not LinkState.RECONNECTING, 3)
    took = await until(lambda: session.link is LinkState.ONLINE, 3)
    assert took < 2.0
    assert session.reconnects == 100
    await asyncio.sleep(0.2)
    assert len(os.listdir("/proc/self/fd")) <= fds
    assert len(asyncio.all_tasks()) <= tasks


async def test_mcu_requests_at_any_moment_are_answered(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, FaultPlan(requests_every=0.05), period=0.3)
    stack.append(server)
    session, _ = await connect(server, stack)
    await session.wait_online(10)
    await asyncio.sleep(2.0)
    asked = server.meter.requests_sent
    answered = [f.command for f in server.meter.frames_received]
    replies = {Command.LOCAL_TIME: Command.LOCAL_TIME, Command.NETWORK_QUERY: Command.NETWORK_QUERY,
               Command.WIFI_RSSI: Command.WIFI_RSSI, Command.WIFI_TEST: Command.WIFI_TEST,
               Command.DP_REPORT_SYNC: Command.DP_REPORT_SYNC_ACK, Command.EXTENDED: Command.EXTENDED,
               Command.RESET_WIFI: Command.RESET_WIFI, Command.RESET_WIFI_MODE: Command.RESET_WIFI_MODE}
    assert sum(asked.values()) > 20
    for request, reply in replies.items():
        assert answered.count(reply) >= asked[request] - 1, Command(request).name  # the last may be in flight
    assert session.link is LinkState.ONLINE


async def test_eight_byte_variant_with_dp15_leakage(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.2, variant="8byte")
    stack.append(server)
    session, events = await connect(server, stack, auto_profile=True)
    await session.wait_online(10)
    await until(lambda: any(isinstance(e, ReadingUpdated) and "leakage" in e.roles and "voltage" in e.roles
                            for e in events), 5)
    r = session.machine.meter.reading(session.machine.wall_time())
    assert r.voltage_v is not None and r.leakage_ma is not None
    phase = session.machine.meter.dps[6]
    assert len(phase.raw) == 8 and 15 in session.machine.meter.dps
    # the profile was picked from the product id, and it reads the alarm-set records
    assert session.machine.profile.name == "tompd-63"
    assert session.machine.meter.values["alarm_set_2.over_voltage"] == "trip at 245 V"


async def test_unconfirmed_relay_command_fails_once_and_state_is_unknown(tmp_path: Path,
                                                                        stack: list[object]) -> None:
    server = await serve(tmp_path, FaultPlan(ignore_relay=True), period=0.3)
    stack.append(server)
    session, _ = await connect(server, stack, relay_timeout=1.0)
    await session.wait_online(10)
    with pytest.raises(CommandFailed, match="did not confirm"):
        await session.set_relay(False)
    assert session.machine.meter.reading(session.machine.wall_time()).relay is None
    await asyncio.sleep(1.0)
    assert [f.command for f in server.meter.frames_received].count(Command.DP_COMMAND) == 1


# ---- headless log durability ---------------------------------------------------------------

def phase_values(frames: list[bytes]) -> list[tuple[float, float, float]]:
    out = []
    for raw in frames:
        for dp in decode_datapoints(raw[6:-1])[0]:
            if dp.id == 6 and isinstance(dp.value, bytes):
                v = dp.value
                out.append((int.from_bytes(v[0:2], "big") / 10, int.from_bytes(v[2:5], "big") / 1000,
                            int.from_bytes(v[5:8], "big")))
    return out


async def test_sigterm_loses_nothing_received(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.05)
    stack.append(server)
    sent: list[tuple[float, bytes]] = []
    original = server.meter.frames_to_send

    def recording() -> list[bytes]:
        frames = original()
        sent.extend((time.monotonic(), f) for f in frames)
        return frames

    server.meter.frames_to_send = recording  # type: ignore[method-assign]
    log = tmp_path / "m.jsonl"
    proc = await asyncio.create_subprocess_exec(*TUIMETER, server.port, "--headless", "--log", str(log),
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.sleep(3.0)
    stop_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert await proc.wait() == 0
    logged = [(r["voltage_v"], r["current_a"], r["power_w"]) for r in read_jsonl(log).records
              if r["type"] == "reading"]
    delivered = phase_values([f for t, f in sent if t < stop_at - 0.3])  # well before the signal
    assert len(delivered) > 20
    for values in delivered:  # every report the host had received is in the log
        assert values in logged


async def test_kill_9_at_random_moments_leaves_only_complete_records(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.01)
    stack.append(server)
    rng = random.Random(5)
    for fmt in ("jsonl", "csv"):
        log = tmp_path / f"crash.{fmt}"
        for _ in range(25):  # 50 trials in all, appending to the same file as a restarted service would
            proc = await asyncio.create_subprocess_exec(*TUIMETER, server.port, "--headless", "--log", str(log),
                                                        "--format", fmt, stdout=subprocess.DEVNULL,
                                                        stderr=subprocess.DEVNULL)
            await asyncio.sleep(rng.uniform(0.4, 0.9))
            proc.kill()
            await proc.wait()
            records = read_jsonl(log) if fmt == "jsonl" else read_csv(log)  # raises on a corrupt complete line
            assert records.partial is None or not records.partial.endswith("\n")
        records = read_jsonl(log) if fmt == "jsonl" else read_csv(log)
        readings = [r for r in records.records if r.get("type", "reading") == "reading"]
        assert len(readings) > 25
        if fmt == "csv":
            assert all(set(r) == set(records.records[0]) for r in records.records)
            assert log.read_text().count("ts,voltage_v") == 1


def test_reader_tolerates_a_partial_last_line_and_writer_repairs_it(tmp_path: Path) -> None:
    log = tmp_path / "m.jsonl"
    log.write_text('{"type": "reading", "voltage_v": 230.1}\n{"type": "read')
    got = read_jsonl(log)
    assert got.records == [{"type": "reading", "voltage_v": 230.1}] and got.partial == '{"type": "read'
    from tuimeter.sinks import RecordSink

    RecordSink(str(log), "jsonl").close()  # reopening for append cuts the half line off
    assert log.read_text() == '{"type": "reading", "voltage_v": 230.1}\n'
