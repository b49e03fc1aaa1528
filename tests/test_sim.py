"""The simulated meter behaves like the real MCU (Tuya's SDK and the captures) and its physics hold."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from tests.waiting import until
from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DPType, decode_datapoints, make_datapoint
from tuimeter.core.frames import Frame, StreamParser, encode_frame
from tuimeter.core.host import HostConfig, HostMachine
from tuimeter.core.meter import MeterState
from tuimeter.core.profile import load_profile
from tuimeter.sim.mcu import DUMP_ORDER, SimulatedMeter
from tuimeter.sim.pty_server import PtyMeterServer


class SimRig:
    def __init__(self, **kw: float) -> None:
        self.sim = SimulatedMeter(**kw)  # type: ignore[arg-type]
        self.parser = StreamParser()
        self.now = 0.0

    def send(self, cmd: int, payload: bytes = b"", version: int = 0) -> list[Frame]:
        self.sim.receive(encode_frame(cmd, payload, version), self.now)
        return self.out()

    def out(self) -> list[Frame]:
        return [f for f in self.parser.feed(self.sim.data_to_send()) if isinstance(f, Frame)]

    def run(self, seconds: float) -> list[Frame]:
        frames: list[Frame] = []
        end = self.now + seconds
        while self.sim.next_deadline() <= end:
            self.now = max(self.now, self.sim.next_deadline())
            self.sim.tick(self.now)
            frames += self.out()
        self.now = end
        self.sim.tick(self.now)
        return frames + self.out()

    def dps(self, frames: list[Frame]) -> list[tuple[int, object]]:
        return [(d.id, d.value) for f in frames for d in decode_datapoints(f.payload)[0]]

    def init(self) -> None:
        for cmd, payload in ((0, b""), (1, b""), (2, b""), (3, b"\x02"), (3, b"\x03"), (3, b"\x04"), (8, b"")):
            self.send(cmd, payload)


def test_replies_like_the_sdk() -> None:
    r = SimRig()
    hb1 = r.send(Command.HEARTBEAT)
    hb2 = r.send(Command.HEARTBEAT)
    assert [f.raw.hex() for f in hb1 + hb2] == ["55aa030000010003", "55aa030000010104"]
    (product,) = r.send(Command.PRODUCT_INFO)
    assert product.version == 3 and b'"p":"r9kg2g1uhhyicycb"' in product.payload
    assert r.send(Command.WORKING_MODE)[0].payload == b""  # cooperative mode
    assert r.send(Command.NETWORK_STATUS, b"\x04")[0].payload == b""  # ack
    assert r.sim.network_state == 4


def test_frames_with_wrong_version_or_unknown_command_are_ignored() -> None:
    r = SimRig()
    assert r.send(Command.HEARTBEAT, version=3) == []
    assert r.send(0x7E) == []


def test_full_dump_one_dp_per_frame() -> None:
    r = SimRig()
    frames = r.send(Command.DP_QUERY)
    assert all(f.command == Command.DP_REPORT and f.version == 3 for f in frames)
    assert [d.id for f in frames for d in decode_datapoints(f.payload)[0]] == list(DUMP_ORDER)
    phase = decode_datapoints(frames[1].payload)[0][0]
    assert phase.type is DPType.RAW and len(phase.raw) == 10
    breaker = dict(r.dps(frames))[19]
    assert breaker == "FSE-F723C558128885"


def test_periodic_phase_reports_only_after_query() -> None:
    r = SimRig(period=5.0)
    assert [d for d, _ in r.dps(r.run(20))] in ([], [105])  # silent except perhaps a button press
    r.send(Command.DP_QUERY)
    ids = [d for d, _ in r.dps(r.run(20.01))]
    assert ids.count(6) == 4


def test_relay_command_applied_then_reported_and_load_drops_to_zero() -> None:
    r = SimRig()
    r.init()
    frames = r.send(Command.DP_COMMAND, make_datapoint(16, DPType.BOOL, False).encode())
    dps = dict(r.dps(frames))
    assert dps[16] is False
    m = MeterState(load_profile())
    for f in frames:
        for d in decode_datapoints(f.payload)[0]:
            m.apply(d)
    reading = m.reading(__import__("datetime").datetime.now())
    assert (reading.current_a, reading.power_w, reading.leakage_ma) == (0.0, 0, 0)
    energy = r.sim.energy_wh
    r.run(600)
    assert r.sim.energy_wh == energy  # relay off: nothing is counted


def test_wrong_type_command_is_dropped_without_report() -> None:
    r = SimRig()
    r.init()
    assert r.send(Command.DP_COMMAND, make_datapoint(16, DPType.VALUE, 0).encode()) == []
    assert r.sim.relay is True


def test_leakage_over_threshold_trips_relay_and_raises_fault_bit_3() -> None:
    r = SimRig(seed=3, speed=3600.0, period=1.0)
    r.init()
    r.send(Command.DP_COMMAND, make_datapoint(104, DPType.VALUE, 10).encode())  # 10 mA: spikes will trip it
    frames = r.run(60)  # an hour of household at 3600x
    m = MeterState(load_profile())
    for f in frames:
        for d in decode_datapoints(f.payload)[0]:
            m.apply(d)
    assert r.sim.relay is False
    assert m.values["relay"] is False
    assert "leakagecurr_alarm" in m.values["faults"]  # type: ignore[operator]
    # switching back on acknowledges the alarm
    back = r.send(Command.DP_COMMAND, make_datapoint(16, DPType.BOOL, True).encode())
    assert dict(r.dps(back))[9] == 0


def test_physics_plausible_over_a_simulated_day() -> None:
    r = SimRig(seed=5, speed=3600.0, period=0.5)
    r.init()
    r.send(Command.DP_COMMAND, make_datapoint(104, DPType.VALUE, 100).encode())  # no trip today
    e0 = r.sim.energy_wh
    frames = r.run(24)  # 24 h
    volts, powers, leaks = [], [], []
    for f in frames:
        for d in decode_datapoints(f.payload)[0]:
            if d.id == 6 and isinstance(d.value, bytes):
                volts.append(int.from_bytes(d.value[0:2], "big") / 10)
                powers.append(int.from_bytes(d.value[5:8], "big"))
                leaks.append(int.from_bytes(d.value[8:10], "big"))
    kwh = (r.sim.energy_wh - e0) / 1000
    assert 3 < kwh < 25  # a household day
    assert min(volts) > 220 and max(volts) < 240
    assert min(powers) >= 70 and max(powers) > 1500  # base load, and a kettle or oven at some point
    assert sorted(leaks)[len(leaks) // 2] < 8  # a few mA
    # sag under load: high-power reports sit lower than low-power ones
    hi = [v for v, p in zip(volts, powers, strict=True) if p > 1500]
    lo = [v for v, p in zip(volts, powers, strict=True) if p < 300]
    assert sum(hi) / len(hi) < sum(lo) / len(lo)


def test_leakage_spikes_now_and_then() -> None:
    r = SimRig(seed=5, speed=60.0, period=0.1)  # a report every 6 simulated seconds
    r.init()
    r.send(Command.DP_COMMAND, make_datapoint(104, DPType.VALUE, 100).encode())  # no trip
    frames = r.run(180)  # 3 simulated hours
    leaks = [int.from_bytes(d.value[8:10], "big") for f in frames for d in decode_datapoints(f.payload)[0]
             if d.id == 6 and isinstance(d.value, bytes)]
    spiky = [x for x in leaks if x > 8]
    assert spiky and len(spiky) < len(leaks) / 10


def test_same_seed_same_run() -> None:
    a, b = SimRig(seed=9, speed=600.0), SimRig(seed=9, speed=600.0)
    for r in (a, b):
        r.init()
    assert [f.raw for f in a.run(30)] == [f.raw for f in b.run(30)]


def test_reboot_answers_next_heartbeat_with_zero_and_stops_reporting() -> None:
    r = SimRig(period=1.0)
    r.init()
    r.sim.reboot(r.now)
    assert r.send(Command.HEARTBEAT)[0].payload == b"\x00"
    assert 6 not in [d for d, _ in r.dps(r.run(5))]


def test_host_machine_and_sim_reach_online_together() -> None:
    sim = SimulatedMeter(seed=1, period=2.0)
    host = HostMachine(load_profile(), HostConfig())
    now = 0.0
    wall = datetime(2026, 4, 6, 15, 51, 37, tzinfo=UTC)
    host.connection_made(now, wall)
    for _ in range(200):
        sim.receive(host.data_to_send(), now)
        host.receive(sim.data_to_send(), now, wall)
        now += 0.05
        sim.tick(now)
        host.tick(now, wall)
    r = host.meter.reading(wall)
    assert host.link.value == "online"
    assert r.voltage_v is not None and 200 < r.voltage_v < 250
    assert r.relay is True and r.faults == ()


def test_same_seed_same_household_whatever_the_host_sends() -> None:
    a, b = SimRig(seed=9, speed=600.0, period=1.0), SimRig(seed=9, speed=600.0, period=1.0)
    for r in (a, b):
        r.init()
    for _ in range(40):  # b's host is chattier: heartbeats between the reports
        b.send(Command.HEARTBEAT)
        b.now += 0.25
    phases_a = [d.value for f in a.run(30) for d in decode_datapoints(f.payload)[0] if d.id == 6]
    phases_b = [d.value for f in b.run(20) for d in decode_datapoints(f.payload)[0] if d.id == 6]
    assert phases_a[-15:] == phases_b[-15:]


async def test_the_simulated_meter_closes_right_after_a_replug(tmp_path: Path) -> None:
    server = PtyMeterServer(SimulatedMeter(seed=1, period=0.3), link=tmp_path / "tty")
    await server.start()
    await asyncio.sleep(0.05)  # the tick loop is waiting for its next deadline
    server.vanish()
    server.restore()  # wakes the tick loop, and in that turn of the loop close() cancels it
    closing = asyncio.ensure_future(server.close())
    try:
        await until(closing.done, timeout=10, what="close() to finish")  # a hang never ends: 10 s says enough
    finally:
        for task in asyncio.all_tasks():  # leave no runaway ticker behind
            if task.get_name().startswith("sim-") and not task.done():
                task.cancel()
        await closing
