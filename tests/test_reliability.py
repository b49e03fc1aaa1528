"""Faults injected by the simulated meter, each on its own, over a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.waiting import TIMEOUT, until
from tuimeter.core.commands import Command
from tuimeter.core.datapoints import decode_datapoints
from tuimeter.core.events import Event, FrameLogged, LinkChanged, LinkState, ReadingUpdated
from tuimeter.core.host import HostConfig
from tuimeter.core.profile import load_profile, shipped_profiles
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
                          candidates=[load_profile(n) for n in shipped_profiles()] if auto_profile else ())
    events: list[Event] = []
    session.bus.add_listener(events.append)
    await session.start()
    stack.append(session)
    return session, events


def frames_in(events: list[Event]) -> list[bytes]:
    return [e.frame.raw for e in events if isinstance(e, FrameLogged) and e.direction == "in"]


def readings(events: list[Event]) -> int:
    return sum(isinstance(e, ReadingUpdated) for e in events)


async def readings_go_on(events: list[Event], more: int = 2) -> None:
    """Wait until `more` readings have come in after this moment: values show again, or the host has
    been at work a while (the positive marker for a check that something did not happen)."""
    n = readings(events)
    await until(lambda: readings(events) >= n + more, what=f"{more} more readings", show=lambda: readings(events) - n)


async def test_noise_never_changes_a_value_and_every_intact_frame_is_decoded(tmp_path: Path,
                                                                            stack: list[object]) -> None:
    server = await serve(tmp_path, NOISY, period=0.03)
    stack.append(server)
    session, events = await connect(server, stack)
    await session.wait_online(TIMEOUT)
    injector = server.injector
    assert injector is not None
    kinds = injector.injected
    every_kind = ("noise", "bursts", "stray", "bad_checksum", "truncate", "absurd_length")
    await until(lambda: readings(events) > 20 and all(kinds[k] > 5 for k in every_kind),
                what="20 readings and every kind of noise 5 times", show=lambda: (readings(events), dict(kinds)))
    server.meter.reporting = False  # let the line go quiet, so every stalled candidate is settled
    # heartbeats still go both ways on the quiet line (and are mangled too): wait until all sent intact came in
    await until(lambda: len(frames_in(events)) == injector.sent_intact, what="every frame sent intact to arrive",
                show=lambda: f"{len(frames_in(events))} of {injector.sent_intact} arrived")
    accepted = frames_in(events)
    # nothing the host acted on was a mangled frame ...
    assert set(accepted) <= injector.intact
    # ... and nothing sent intact was lost in the noise
    assert len(accepted) == injector.sent_intact
    assert all(kinds[k] > 5 for k in every_kind)
    stats = session.machine.parser.stats
    assert stats.bad_checksums > 0 and stats.oversize > 0 and stats.bytes_skipped > 0
    assert stats.bytes_in == stats.frame_bytes + stats.bytes_skipped + session.machine.parser.buffered
    values = [e.reading for e in events if isinstance(e, ReadingUpdated)]
    assert len(values) > 20 and all(200 < (r.voltage_v or 230) < 250 for r in values)


async def test_dribbled_bytes_still_make_frames_and_relay_works(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, FaultPlan(dribble=True), period=0.5)
    stack.append(server)
    session, _ = await connect(server, stack)
    await session.wait_online(TIMEOUT)
    assert "confirmed" in await session.set_relay(False)


async def test_silence_means_link_lost_within_three_heartbeats_then_recovery(tmp_path: Path,
                                                                            stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.2)
    stack.append(server)
    session, events = await connect(server, stack, heartbeat_interval=0.5, heartbeat_timeout=0.3)
    await session.wait_online(TIMEOUT)
    silent_from = len(events)
    server.meter.silent_until = float("inf")  # silent until the host gives up, however long that takes here
    await until(lambda: session.link is LinkState.LINK_LOST, what="the link declared lost")
    lost = next(i for i, e in enumerate(events) if i >= silent_from and isinstance(e, LinkChanged)
                and e.state is LinkState.LINK_LOST)
    assert isinstance(events[lost], LinkChanged) and "heartbeats unanswered" in events[lost].reason
    # counted in heartbeats, not seconds: three unanswered in a row (one may have been out when it went quiet)
    asked = [e for e in events[silent_from:lost]
             if isinstance(e, FrameLogged) and e.direction == "out" and e.frame.command == Command.HEARTBEAT]
    assert 1 <= len(asked) <= 3
    server.meter.silent_until = 0.0  # answers again: start-up re-run
    await until(lambda: session.link is LinkState.ONLINE, what="the link back online")
    await readings_go_on(events)  # readings resume


async def test_some_heartbeats_unanswered_the_link_keeps_recovering(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, FaultPlan(heartbeat_answers=0.5), period=0.2)
    stack.append(server)
    session, events = await connect(server, stack, heartbeat_interval=0.2, heartbeat_timeout=0.1,
                                    handshake_interval=0.2)
    await session.wait_online(TIMEOUT)
    await readings_go_on(events, 11)  # through losses and recoveries, the values keep coming
    await until(lambda: session.link is LinkState.ONLINE, what="the link online")
    assert readings(events) > 10


async def test_reboot_detected_and_startup_rerun(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.5)  # reports slower than the 0.3 s the dump needs to go quiet
    stack.append(server)
    session, events = await connect(server, stack, heartbeat_interval=0.5)
    await session.wait_online(TIMEOUT)
    loop = asyncio.get_running_loop()
    server.meter.reboot(loop.time())
    await until(lambda: session.link is LinkState.HANDSHAKING, what="handshaking (the 0x00 reply seen)")
    await until(lambda: session.link is LinkState.ONLINE, what="the link back online")
    assert server.meter.reporting  # start-up ran again on the meter: it was queried and reports
    await readings_go_on(events)


async def test_port_gone_and_back_100_times_without_leaking(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.5)
    stack.append(server)
    session, events = await connect(server, stack, reconnect_min=0.02)
    await session.wait_online(TIMEOUT)

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    fds = open_fds()
    tasks = len(asyncio.all_tasks())
    for _ in range(100):
        server.vanish()
        await until(lambda: session.link is LinkState.RECONNECTING, what="reconnecting after the unplug")
        server.restore()
        await until(lambda: session.link is not LinkState.RECONNECTING, what="the port reopened")
    await until(lambda: session.link is LinkState.ONLINE, what="the link online after the last replug")
    assert session.reconnects == 100
    await readings_go_on(events)  # and it shows values again
    # closed ports and finished tasks go away (the last ones as the loop gets to them): no leak stays
    await until(lambda: open_fds() <= fds, what=f"no more than the {fds} fds open before", show=open_fds)
    await until(lambda: len(asyncio.all_tasks()) <= tasks, what=f"no more than the {tasks} tasks before",
                show=lambda: len(asyncio.all_tasks()))


async def test_mcu_requests_at_any_moment_are_answered(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, FaultPlan(requests_every=0.05), period=0.3)
    stack.append(server)
    session, _ = await connect(server, stack)
    # counted from the moment the port is open: opening it flushes what was waiting (stale bytes of a real
    # line), so the host never saw earlier requests. From then on, in start-up and after it, every one counts
    meter = server.meter
    replies = {Command.LOCAL_TIME: Command.LOCAL_TIME, Command.NETWORK_QUERY: Command.NETWORK_QUERY,
               Command.WIFI_RSSI: Command.WIFI_RSSI, Command.WIFI_TEST: Command.WIFI_TEST,
               Command.DP_REPORT_SYNC: Command.DP_REPORT_SYNC_ACK, Command.EXTENDED: Command.EXTENDED,
               Command.RESET_WIFI: Command.RESET_WIFI, Command.RESET_WIFI_MODE: Command.RESET_WIFI_MODE}

    def answers() -> dict[int, int]:
        got = [f.command for f in meter.frames_received]
        return {request: got.count(reply) for request, reply in replies.items()}

    asked_before, answered_before = dict(meter.requests_sent), answers()
    await session.wait_online(TIMEOUT)
    await until(lambda: sum(meter.requests_sent.values()) - sum(asked_before.values()) > 20,
                what="20 requests from the MCU")
    asked = {r: meter.requests_sent[r] - asked_before.get(r, 0) for r in replies}  # what we wait answers for

    def unanswered() -> dict[str, int]:
        now = answers()
        return {Command(r).name: n - (now[r] - answered_before[r]) for r, n in asked.items()
                if now[r] - answered_before[r] < n}

    await until(lambda: not unanswered(), what="an answer to every request asked so far", show=unanswered)
    assert session.link is LinkState.ONLINE


async def test_eight_byte_variant_with_dp15_leakage(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.2, variant="8byte")
    stack.append(server)
    session, events = await connect(server, stack, auto_profile=True)
    await session.wait_online(TIMEOUT)
    await until(lambda: any(isinstance(e, ReadingUpdated) and "leakage" in e.roles and "voltage" in e.roles
                            for e in events), what="a reading with voltage and leakage")
    r = session.reading()
    assert r.voltage_v is not None and r.leakage_ma is not None
    phase = session.machine.meter.dps[6]
    assert len(phase.raw) == 8 and 15 in session.machine.meter.dps
    # the profile was picked from the product id, and it reads the alarm-set records
    assert session.status().profile.name == "tompd-63"
    assert session.values()["alarm_set_2.over_voltage"] == "trip at 245 V"


async def test_unconfirmed_relay_command_fails_once_and_state_is_unknown(tmp_path: Path,
                                                                        stack: list[object]) -> None:
    server = await serve(tmp_path, FaultPlan(ignore_relay=True), period=0.3)
    stack.append(server)
    session, events = await connect(server, stack, relay_timeout=1.0)
    await session.wait_online(TIMEOUT)
    with pytest.raises(CommandFailed, match="did not confirm"):
        await session.set_relay(False)
    assert session.reading().relay is None
    await readings_go_on(events, 4)  # the host carries on a while (a retry would have gone out by now) ...
    assert [f.command for f in server.meter.frames_received].count(Command.DP_COMMAND) == 1  # ... none did


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
    meter = server.meter
    sent: list[bytes] = []
    original = meter.frames_to_send

    def recording() -> list[bytes]:
        frames = original()
        sent.extend(frames)
        return frames

    meter.frames_to_send = recording  # type: ignore[method-assign]
    log = tmp_path / "m.jsonl"
    proc = await asyncio.create_subprocess_exec(*TUIMETER, server.port, "--headless", "--log", str(log),
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await until(lambda: len(phase_values(sent)) > 20, what="20 reports sent to the host")
        # what the host has received, proved without a clock: it answers a request sent after those reports
        # (the line keeps order, and the host handles frames in order)
        answered = sum(f.command == Command.LOCAL_TIME for f in meter.frames_received)
        before = len(sent)
        meter.send_request(Command.LOCAL_TIME)
        await until(lambda: sum(f.command == Command.LOCAL_TIME for f in meter.frames_received) > answered,
                    what="the host's answer to 0x1C")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await proc.wait()
    assert code == 0
    logged = [(r["voltage_v"], r["current_a"], r["power_w"]) for r in read_jsonl(log).records
              if r["type"] == "reading"]
    delivered = phase_values(sent[:before])
    assert len(delivered) > 20
    for values in delivered:  # every report the host had received is in the log
        assert values in logged


def complete_readings(log: Path, fmt: str) -> int:
    """Readings on complete lines (a half line a crash left is cut off by the next run)."""
    if not log.exists():
        return 0
    lines = [ln for ln in log.read_text().splitlines(keepends=True) if ln.endswith("\n")]
    return sum('"type": "reading"' in ln for ln in lines) if fmt == "jsonl" else max(len(lines) - 1, 0)


@pytest.mark.timeout(600)  # 50 runs of tuimeter, each started afresh: minutes on a busy machine
async def test_kill_9_at_random_moments_leaves_only_complete_records(tmp_path: Path, stack: list[object]) -> None:
    server = await serve(tmp_path, period=0.01)
    stack.append(server)
    rng = random.Random(5)
    for fmt in ("jsonl", "csv"):
        log = tmp_path / f"crash.{fmt}"
        for _ in range(25):  # 50 trials in all, appending to the same file as a restarted service would
            before = complete_readings(log, fmt)
            proc = await asyncio.create_subprocess_exec(*TUIMETER, server.port, "--headless", "--log", str(log),
                                                        "--format", fmt, stdout=subprocess.DEVNULL,
                                                        stderr=subprocess.DEVNULL)
            # killed while it writes: once readings flow (start-up takes long on a busy machine), at a random
            # moment within the next half second, about 50 reports (each a write) later at most
            await until(lambda: complete_readings(log, fmt) > before + 1,  # noqa: B023
                        what="new readings in the log")
            await asyncio.sleep(rng.uniform(0.0, 0.5))
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
