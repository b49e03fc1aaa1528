"""The meter's own MCU, modelled on Tuya's MCU SDK and the real captures (sans-I/O).

It uses the core's frame and datapoint codec but keeps its own state machine: version-3 replies,
first heartbeat answered 0x00 and later ones 0x01, empty 0x02 reply (cooperative mode), 0x03
acked, 0x08 answered with one 0x07 frame per dp, 0x06 applied and then reported, frames whose
version byte is not 0x00 ignored, unknown commands ignored. dp 6 is reported every `period`
seconds once the host has queried the dps.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterable

from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DataPoint, DPType, decode_datapoints, make_datapoint
from tuimeter.core.frames import MCU_VERSION, Frame, StreamParser, encode_frame
from tuimeter.sim.faults import FaultPlan
from tuimeter.sim.physics import Household, Sample

PRODUCT_JSON = '{"p":"r9kg2g1uhhyicycb","v":"1.0.0","m":0}'  # EARU EAMPDW-TY63 (cloudcutter)
PRODUCT_JSON_8BYTE = '{"p":"wcihaluccfsoayqa","v":"1.0.0","m":0}'  # TOMZN TOMPD-63WIFI (cloudcutter)
LEAK_TRIP_MA_8BYTE = 30  # the relatives keep their leakage threshold in dp 17 records, not modelled
BREAKER_ID = "FSE-F723C558128885"  # from the teardown thread
LEAK_FAULT_BIT = 3
BUTTON_MEAN_S = 2 * 3600.0  # someone presses the front-panel button now and then

# dp id -> wire type, for 0x06 validation (the SDK drops a dp whose id or type it does not know)
DP_TYPES = {1: DPType.VALUE, 6: DPType.RAW, 9: DPType.BITMAP, 11: DPType.BOOL, 12: DPType.BOOL,
            13: DPType.VALUE, 14: DPType.VALUE, 16: DPType.BOOL, 19: DPType.STRING,
            101: DPType.VALUE, 102: DPType.VALUE, 103: DPType.VALUE, 104: DPType.VALUE,
            105: DPType.BOOL, 106: DPType.BOOL}
DUMP_ORDER = (1, 6, 9, 11, 12, 13, 14, 16, 19, 101, 102, 103, 104, 105, 106)
# The 8-byte relatives' alarm sets (vendor examples, din-meter-datapoints.md §5.3): short circuit → trip,
# overload → trip at 20 kW; over-current → trip at 60 A, over-voltage → trip at 245 V.
ALARM_SET_1 = bytes.fromhex("0101000003010014")
ALARM_SET_2 = bytes.fromhex("0101003C030100F5")
# "10byte": this meter; "8byte": its close relatives (TOMPD-63 family) with leakage in dp 15
VARIANTS = ("10byte", "8byte")
MCU_REQUESTS = (Command.LOCAL_TIME, Command.NETWORK_QUERY, Command.WIFI_RSSI, Command.WIFI_TEST,
                Command.DP_REPORT_SYNC, Command.EXTENDED, Command.RESET_WIFI, Command.RESET_WIFI_MODE)


def phase_a_bytes(s: Sample, ten_byte: bool = True) -> bytes:
    """dp 6 layout: V(2) 0.1 V, I(3) mA, P(3) W, [residual current(2) mA]."""
    v = max(0, min(0xFFFF, round(s.voltage_v * 10)))
    i = max(0, min(0xFFFFFF, round(s.current_a * 1000)))
    p = max(0, min(0xFFFFFF, round(s.power_w)))
    raw = v.to_bytes(2, "big") + i.to_bytes(3, "big") + p.to_bytes(3, "big")
    if ten_byte:
        raw += max(0, min(0xFFFF, round(s.leakage_ma))).to_bytes(2, "big")
    return raw


class SimulatedMeter:
    """Feed it the host's bytes with receive(); call tick() by next_deadline(); send data_to_send()."""

    def __init__(self, seed: int = 1, period: float = 3.0, speed: float = 1.0, start: float = 0.0,
                 faults: FaultPlan | None = None, variant: str = "10byte") -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant {variant!r} is not one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.plan = faults or FaultPlan()
        # separate generators, each drawn only on its own schedule: runs repeat whatever the host sends
        self.rng = random.Random(f"{seed}:button")
        self.fault_rng = random.Random(f"{seed}:mcu-faults")
        self.silent_until = start
        self.next_silence = self._schedule(start, self.plan.silence_every)
        self.next_reboot = self._schedule(start, self.plan.reboot_every)
        self.next_request = self._schedule(start, self.plan.requests_every)
        self.requests_sent: Counter[int] = Counter()
        self.period = period
        self.speed = speed
        self._t0 = start
        self.house = Household(seed, start=8 * 3600.0)  # sim day starts at 08:00
        self.parser = StreamParser()
        self._out: list[bytes] = []  # whole frames: line faults mangle them one by one
        self.heartbeats = 0
        self.network_state: int | None = None
        self.reporting = False
        self.next_report = start
        self.next_button = start + self.rng.expovariate(1 / BUTTON_MEAN_S) / speed
        self.frames_received: deque[Frame] = deque(maxlen=2000)  # what the host sent, for tests
        self.relay = True
        self.energy_wh = random.Random(f"{seed}:energy").uniform(100_000, 900_000)
        self.faults = 0
        self.values: dict[int, bool | int | str | bytes] = {
            11: False, 12: False, 13: 0, 14: 0, 19: BREAKER_ID,
            101: 275, 102: 170, 103: 50, 104: 50, 105: False, 106: False,
        }
        self._types = dict(DP_TYPES)
        if variant == "8byte":  # TOMPD-63: dp 104 protection time, dp 105 recovery time, both in s
            self.values.update({104: 5, 105: 60, 17: ALARM_SET_1, 18: ALARM_SET_2})
            self._types.update({105: DPType.VALUE, 17: DPType.RAW, 18: DPType.RAW})
        self._last_sample = self.house.sample(True)
        self._reported_energy = self.energy_centi_kwh

    # ---- outputs ---------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        return b"".join(self.frames_to_send())

    def frames_to_send(self) -> list[bytes]:
        frames, self._out = self._out, []
        return frames

    def next_deadline(self) -> float:
        return min(self.next_report if self.reporting else float("inf"), self.next_button,
                   self.next_silence, self.next_reboot, self.next_request)

    def silent(self, now: float) -> bool:
        return now < self.silent_until

    def _schedule(self, now: float, mean: float) -> float:
        return now + self.fault_rng.expovariate(1 / mean) if mean > 0 else float("inf")

    @property
    def dump_order(self) -> tuple[int, ...]:
        if self.variant == "10byte":
            return DUMP_ORDER
        return (*DUMP_ORDER[:2], 15, *DUMP_ORDER[2:8], 17, 18, *DUMP_ORDER[8:])

    @property
    def energy_centi_kwh(self) -> int:
        return int(self.energy_wh // 10)

    def sim_time(self, now: float) -> float:
        return 8 * 3600.0 + (now - self._t0) * self.speed

    # ---- input -----------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> None:
        for item in self.parser.feed(data, now):
            if self.silent(now):
                continue
            if isinstance(item, Frame) and item.version == 0x00:  # the SDK ignores other versions
                self.frames_received.append(item)
                self._advance(now)
                self._handle(item, now)

    def tick(self, now: float) -> None:
        self._advance(now)
        self._mcu_faults(now)
        if self.silent(now):
            return
        if now >= self.next_button:
            self.next_button += self.rng.expovariate(1 / BUTTON_MEAN_S) / self.speed
            if self.variant == "10byte":  # on the relatives dp 105 is a recovery time, not a button
                self.values[105] = not self.values[105]
            if self.reporting:
                self._report([105])
        if self.reporting and now >= self.next_report:
            # keep the cadence; after a pause start afresh instead of bursting to catch up
            self.next_report += self.period
            if self.next_report <= now:
                self.next_report = now + self.period
            ids = [6] if self.variant == "10byte" else [6, 15]
            if self.energy_centi_kwh != self._reported_energy:
                ids.insert(0, 1)
            self._report(ids)

    def _mcu_faults(self, now: float) -> None:
        if now >= self.next_silence:
            self.silent_until = now + self.plan.silence_for
            self.next_silence = self._schedule(self.silent_until, self.plan.silence_every)
        if now >= self.next_reboot:
            self.reboot(now)
            self.next_reboot = self._schedule(now, self.plan.reboot_every)
        if now >= self.next_request:
            self.send_request(self.fault_rng.choice(MCU_REQUESTS))
            self.next_request = self._schedule(now, self.plan.requests_every)

    def send_request(self, cmd: int) -> None:
        """An MCU-initiated request, as real MCUs send them at any moment."""
        self.requests_sent[cmd] += 1
        if cmd == Command.DP_REPORT_SYNC:
            self._send(cmd, self.datapoint(6).encode())
        elif cmd == Command.EXTENDED:
            sub = self.fault_rng.choice((0x04, 0x0B))
            tail = bytes(8) + self.datapoint(1).encode() if sub == 0x0B else b""
            self._send(cmd, bytes((sub,)) + tail)
        elif cmd == Command.RESET_WIFI_MODE:
            self._send(cmd, bytes((self.fault_rng.randint(0, 1),)))
        else:
            self._send(cmd, b"")

    def reboot(self, now: float) -> None:
        """Power-cycle the MCU: the next heartbeat is answered 0x00, reports stop until re-init."""
        self.heartbeats = 0
        self.reporting = False
        self.network_state = None
        self.parser = StreamParser()

    # ---- the model -------------------------------------------------------------------------
    def _advance(self, now: float) -> None:
        wh, leak_fault = self.house.advance(self.sim_time(now), self.relay)
        self.energy_wh += wh
        self._last_sample = self.house.sample(self.relay)
        threshold = int(self.values[104]) if self.variant == "10byte" else LEAK_TRIP_MA_8BYTE
        if self.relay and max(leak_fault, self._last_sample.leakage_ma) > threshold:
            self._trip()

    def _trip(self) -> None:
        """Earth leakage over the dp 104 threshold: open the relay, raise fault bit 3."""
        self.relay = False
        self.faults |= 1 << LEAK_FAULT_BIT
        self.values[106] = True  # earth leak
        self._last_sample = self.house.sample(False)
        if self.reporting:
            self._report([16, 9, 106, 6])

    def _handle(self, f: Frame, now: float) -> None:
        cmd = f.command
        if cmd == Command.HEARTBEAT:
            if self.fault_rng.random() >= self.plan.heartbeat_answers:
                return  # this one goes unanswered
            self._send(cmd, b"\x00" if self.heartbeats == 0 else b"\x01")
            self.heartbeats += 1
        elif cmd == Command.PRODUCT_INFO:
            self._send(cmd, (PRODUCT_JSON if self.variant == "10byte" else PRODUCT_JSON_8BYTE).encode())
        elif cmd == Command.WORKING_MODE:
            self._send(cmd, b"")
        elif cmd == Command.NETWORK_STATUS and len(f.payload) == 1:
            self.network_state = f.payload[0]
            self._send(cmd, b"")
        elif cmd == Command.DP_QUERY:
            self._report(self.dump_order)
            self.reporting = True
            self.next_report = now + self.period
        elif cmd == Command.DP_COMMAND:
            dps, _ = decode_datapoints(f.payload)
            for dp in dps:
                self._apply(dp)

    def _apply(self, dp: DataPoint) -> None:
        if self._types.get(dp.id) is not dp.type or dp.id in (1, 6, 9, 13, 19, 106):
            return  # unknown, wrong type, or read-only: dropped without a report, as the SDK does
        if dp.id == 16:
            assert isinstance(dp.value, bool)
            if self.plan.ignore_relay:
                return
            if dp.value and not self.relay:
                self.faults = 0  # switching back on acknowledges the alarm
                self.values[106] = False
            self.relay = dp.value
            self._last_sample = self.house.sample(self.relay)
            self._report([16, 9, 106, 6] if dp.value else [16, 6])
            return
        if dp.id == 12 and dp.value:
            self.energy_wh = 0.0
            self._report([1])
        elif dp.id == 14 and isinstance(dp.value, int):
            self.values[13] = int(self.values[13]) + dp.value
            self._report([13])
        self.values[dp.id] = dp.value
        self._report([dp.id])

    def datapoint(self, dpid: int) -> DataPoint:
        if dpid == 1:
            return make_datapoint(1, DPType.VALUE, self.energy_centi_kwh)
        if dpid == 6:
            return make_datapoint(6, DPType.RAW, phase_a_bytes(self._last_sample, self.variant == "10byte"))
        if dpid == 15:
            return make_datapoint(15, DPType.VALUE, round(self._last_sample.leakage_ma))
        if dpid == 9:
            return make_datapoint(9, DPType.BITMAP, self.faults, length=4)
        if dpid == 16:
            return make_datapoint(16, DPType.BOOL, self.relay)
        return make_datapoint(dpid, self._types[dpid], self.values[dpid])

    def _report(self, ids: Iterable[int]) -> None:
        for dpid in ids:
            if dpid == 1:
                self._reported_energy = self.energy_centi_kwh
            self._send(Command.DP_REPORT, self.datapoint(dpid).encode())

    def _send(self, cmd: int, payload: bytes) -> None:
        self._out.append(encode_frame(cmd, payload, MCU_VERSION))
