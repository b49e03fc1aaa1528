"""The meter's own MCU, modelled on Tuya's MCU SDK and the real captures (sans-I/O).

It uses the core's frame and datapoint codec but keeps its own state machine: version-3 replies,
first heartbeat answered 0x00 and later ones 0x01, empty 0x02 reply (cooperative mode), 0x03
acked, 0x08 answered with one 0x07 frame per dp, 0x06 applied and then reported, frames whose
version byte is not 0x00 ignored, unknown commands ignored. dp 6 is reported every `period`
seconds once the host has queried the dps.

Settings (settings.py) are applied and echoed only when of the right type and within range. The
protections (protection.py) open the relay and raise their fault bit when a reading stays beyond its
threshold for the protection delay; FaultPlan's surge/sag/overload/leak events provoke them on demand.
Protection delays and fault events run on the MCU's clock (`now`), like the report period; `speed`
only hurries the household.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable

from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DataPoint, DPType, decode_datapoints, make_datapoint
from tuimeter.core.frames import MCU_VERSION, Frame, StreamParser, encode_frame
from tuimeter.sim import settings
from tuimeter.sim.faults import FaultPlan
from tuimeter.sim.physics import NO_EXCURSION, Excursion, Household, Sample
from tuimeter.sim.protection import (
    BY_NAME,
    EVENTS,
    LEAKAGE,
    NO_BALANCE_BIT,
    PROTECTION_DELAY_S,
    PROTECTIONS,
    Protection,
)

log = logging.getLogger(__name__)

PRODUCT_JSON = '{"p":"r9kg2g1uhhyicycb","v":"1.0.0","m":0}'  # EARU EAMPDW-TY63 (cloudcutter)
PRODUCT_JSON_8BYTE = '{"p":"wcihaluccfsoayqa","v":"1.0.0","m":0}'  # TOMZN TOMPD-63WIFI (cloudcutter)
BREAKER_ID = "FSE-F723C558128885"  # from the teardown thread
BUTTON_MEAN_S = 2 * 3600.0  # someone presses the front-panel button now and then

# dp id -> wire type, for 0x06 validation (the SDK drops a dp whose id or type it does not know)
DP_TYPES = {1: DPType.VALUE, 6: DPType.RAW, 9: DPType.BITMAP, 11: DPType.BOOL, 12: DPType.BOOL,
            13: DPType.VALUE, 14: DPType.VALUE, 16: DPType.BOOL, 19: DPType.STRING,
            101: DPType.VALUE, 102: DPType.VALUE, 103: DPType.VALUE, 104: DPType.VALUE,
            105: DPType.BOOL, 106: DPType.BOOL}
DUMP_ORDER = (1, 6, 9, 11, 12, 13, 14, 16, 19, 101, 102, 103, 104, 105, 106)
# The 8-byte relatives' alarm sets: the vendor examples (din-meter-datapoints.md §5.3: short circuit →
# trip, overload → trip at 20 kW; over-current → trip at 60 A, over-voltage → trip at 245 V), completed
# to the SWC33v2 layout (leakage → trip at 30 mA, over-temperature → trip at 80 °C; under-voltage → trip
# at 170 V, the EARU's dp 102) so that every protection the sim models has a record.
ALARM_SET_1 = bytes.fromhex("01010000" "03010014" "0401001E" "05010050")
ALARM_SET_2 = bytes.fromhex("0101003C" "030100F5" "040100AA")
BALANCE_WH = {"10byte": 10.0, "8byte": 100.0}  # one count of dp 13/14: 0.01 kWh, 0.1 kWh on TOMPD
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
        self.balance_wh = 0.0  # prepaid credit (dp 13)
        self.faults = 0
        self.values: dict[int, bool | int | str | bytes] = {
            11: False, 12: False, 14: 0, 19: BREAKER_ID,
            101: 275, 102: 170, 103: 50, 104: 50, 105: False, 106: False,
        }
        self._types = dict(DP_TYPES)
        if variant == "8byte":  # TOMPD-63: dp 104 protection time, dp 105 recovery time, both in s
            self.values.update({104: 5, 105: 60, 17: ALARM_SET_1, 18: ALARM_SET_2})
            self._types.update({105: DPType.VALUE, 17: DPType.RAW, 18: DPType.RAW})
        self.writable = settings.WRITABLE[variant]  # dp -> type and range
        self._setters: dict[int, Callable[[DataPoint], None]] = {
            16: self._set_relay, 12: self._clear_energy, 14: self._top_up, 17: self._set_alarms,
            18: self._set_alarms}
        self._beyond_since: dict[str, float] = {}  # protection -> when its reading went past the threshold
        self._alarms_only = 0  # fault bits raised by "alarm only" records: they clear with the reading
        self._events: dict[str, Excursion] = {}  # fault events in progress
        self._events_over: set[str] = set()
        self._last_sample = self.house.sample(True)
        self._reported_energy = self.energy_centi_kwh
        self._reported_balance = self.balance_count

    # ---- outputs ---------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        return b"".join(self.frames_to_send())

    def frames_to_send(self) -> list[bytes]:
        frames, self._out = self._out, []
        return frames

    def next_deadline(self) -> float:
        return min(self.next_report if self.reporting else float("inf"), self.next_button,
                   self.next_silence, self.next_reboot, self.next_request, self._next_event_edge(),
                   self._next_protection())

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

    @property
    def balance_count(self) -> int:
        """dp 13: the credit left, rounded up, so that it shows 0 exactly when the meter cuts off."""
        return math.ceil(self.balance_wh / BALANCE_WH[self.variant])

    @property
    def protection_delay(self) -> float:
        return PROTECTION_DELAY_S if self.variant == "10byte" else float(int(self.values[104]))

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
            ids = list(self._phase_ids)
            if self.balance_count != self._reported_balance:  # only moves in prepaid mode
                ids.insert(0, 13)
            if self.energy_centi_kwh != self._reported_energy:
                ids.insert(0, 1)
            self._report(ids)

    @property
    def _phase_ids(self) -> tuple[int, ...]:
        return (6,) if self.variant == "10byte" else (6, 15)

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
        wh, leak_pulse = self.house.advance(self.sim_time(now), self.relay)
        self.energy_wh += wh
        if self.values[11]:
            self.balance_wh = max(0.0, self.balance_wh - wh)
        self._fault_events(now)
        self._last_sample = self.house.sample(self.relay)
        self._protect(now, leak_pulse)

    # ---- fault events (FaultPlan surge_at, sag_at, overload_at, leak_at) -------------------------
    def _fault_events(self, now: float) -> None:
        """Start and end the fault events due by now; the household carries those in progress."""
        for event in EVENTS:
            window = self.plan.window(event.name)
            if window is None or event.name in self._events_over:
                continue
            if now >= self._t0 + window[1]:
                self._end_event(event.name)
            elif now >= self._t0 + window[0] and event.name not in self._events:
                found = self.threshold(BY_NAME[event.protection])
                if found is None:  # no record for it in the alarm sets: nothing to provoke
                    self._events_over.add(event.name)
                    continue
                self._events[event.name] = event.excursion(found[0])
                log.debug("simulated meter: %s begins: %s", event.name, self._events[event.name])
        self.house.excursion = sum(self._events.values(), NO_EXCURSION)

    def _end_event(self, name: str) -> None:
        if self._events.pop(name, None) is not None:
            log.debug("simulated meter: %s ends", name)
        self._events_over.add(name)
        self.house.excursion = sum(self._events.values(), NO_EXCURSION)

    def _next_event_edge(self) -> float:
        edges = [self._t0 + window[1 if e.name in self._events else 0] for e in EVENTS
                 if e.name not in self._events_over and (window := self.plan.window(e.name)) is not None]
        return min(edges, default=float("inf"))

    # ---- protections -----------------------------------------------------------------------
    def threshold(self, p: Protection) -> tuple[float, bool] | None:
        """(threshold in the reading's unit, whether it trips) for protection p, None if not set."""
        source = p.source.get(self.variant)
        if source is None:
            return None
        if isinstance(source, int):
            return int(self.values[source]) * p.scale, True
        buffer = self.values[source[0]]
        assert isinstance(buffer, bytes)
        found = settings.threshold(buffer, source[1])
        return None if found is None else (found[0] * p.scale, found[1])

    def _next_protection(self) -> float:
        """When a reading beyond its threshold has waited out the protection delay."""
        return min((since + self.protection_delay for name, since in self._beyond_since.items()
                    if not self._alarms_only & 1 << BY_NAME[name].bit), default=float("inf"))

    def _protect(self, now: float, leak_pulse: float = 0.0) -> None:
        if not self.relay:
            self._beyond_since.clear()  # an open relay protects nothing: the timers start afresh
            return
        leak = self.threshold(LEAKAGE)
        if leak is not None and leak[1] and leak_pulse > leak[0]:
            self._trip(LEAKAGE.bit, "brief earth fault", 106)  # too brief for a delay: trips at once
            return
        if self.values[11] and self.balance_count <= 0:
            self._trip(NO_BALANCE_BIT, "prepaid balance exhausted", 13)
            return
        for p in PROTECTIONS:
            if self._check(p, now):
                return

    def _check(self, p: Protection, now: float) -> bool:
        """Time protection p; True if it opened the relay."""
        found = self.threshold(p)
        bit = 1 << p.bit
        if found is None or not p.exceeded(self._last_sample, found[0]):
            self._beyond_since.pop(p.name, None)
            if self._alarms_only & bit:  # an alarm-only fault clears with its reading
                self._alarms_only &= ~bit
                self.faults &= ~bit
                self._report_if_reporting([9])
            return False
        since = self._beyond_since.setdefault(p.name, now)
        if now < since + self.protection_delay or (self._alarms_only & bit and not found[1]):
            return False
        if found[1]:  # (also when an alarm-only record was made a trip one meanwhile)
            self._alarms_only &= ~bit
            self._trip(p.bit, p.name, *((106,) if p is LEAKAGE else ()))
            return True
        log.debug("simulated meter: %s alarm (alarm only, relay stays on)", p.name)
        self._alarms_only |= bit
        self.faults |= bit
        self._report_if_reporting([9])
        return False

    def _trip(self, bit: int, why: str, *also: int) -> None:
        """Open the relay and raise fault bit `bit`; report dp 16, dp 9, `also` and the readings."""
        log.debug("simulated meter: trip (%s)", why)
        self.relay = False
        self.faults |= 1 << bit
        if bit == LEAKAGE.bit:
            self.values[106] = True  # earth leak
        self._beyond_since.clear()
        for event in EVENTS:  # the faulty appliance is cut off: its overload or leak is over
            if event.ends_on_trip and event.name in self._events:
                self._end_event(event.name)
        self._last_sample = self.house.sample(False)
        self._report_if_reporting([16, 9, *also, *self._phase_ids])

    def _report_if_reporting(self, ids: Iterable[int]) -> None:
        if self.reporting:
            self._report(ids)

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
            self._protect(now)  # e.g. the relay back on with no credit left trips at once

    def _apply(self, dp: DataPoint) -> None:
        setting = self.writable.get(dp.id)
        if setting is None or setting.type is not dp.type or not settings.accepts(setting, dp.value):
            # unknown, read-only, wrong type or out of range: dropped without a report, as the SDK does
            log.debug("simulated meter: write of dp %d %s %s ignored", dp.id, dp.type.label, dp.display())
            return
        self._setters.get(dp.id, self._store)(dp)

    def _store(self, dp: DataPoint) -> None:
        self.values[dp.id] = dp.value
        self._report([dp.id])

    def _set_relay(self, dp: DataPoint) -> None:
        assert isinstance(dp.value, bool)
        if self.plan.ignore_relay:
            return
        if dp.value and not self.relay:
            self.faults = self._alarms_only = 0  # switching back on acknowledges the alarm
            self.values[106] = False
        self.relay = dp.value
        self._last_sample = self.house.sample(self.relay)
        self._report([16, 9, 106, 6] if dp.value else [16, 6])

    def _clear_energy(self, dp: DataPoint) -> None:
        if dp.value:
            self.energy_wh = 0.0
            self._report([1])
        self._store(dp)

    def _top_up(self, dp: DataPoint) -> None:
        assert isinstance(dp.value, int)
        self.balance_wh += dp.value * BALANCE_WH[self.variant]
        self._report([13])
        self._store(dp)

    def _set_alarms(self, dp: DataPoint) -> None:
        """Applied record by record, by code; the report shows what the meter kept."""
        old = self.values[dp.id]
        assert isinstance(old, bytes) and isinstance(dp.value, bytes)
        merged = settings.merge_records(old, dp.value, self.writable[dp.id].codes)
        if merged != dp.value:
            log.debug("simulated meter: dp %d written %s, kept %s", dp.id, dp.value.hex(), merged.hex())
        self._store(make_datapoint(dp.id, DPType.RAW, merged))

    def datapoint(self, dpid: int) -> DataPoint:
        if dpid == 1:
            return make_datapoint(1, DPType.VALUE, self.energy_centi_kwh)
        if dpid == 6:
            return make_datapoint(6, DPType.RAW, phase_a_bytes(self._last_sample, self.variant == "10byte"))
        if dpid == 15:
            return make_datapoint(15, DPType.VALUE, round(self._last_sample.leakage_ma))
        if dpid == 9:
            return make_datapoint(9, DPType.BITMAP, self.faults, length=4)
        if dpid == 13:
            return make_datapoint(13, DPType.VALUE, self.balance_count)
        if dpid == 16:
            return make_datapoint(16, DPType.BOOL, self.relay)
        return make_datapoint(dpid, self._types[dpid], self.values[dpid])

    def _report(self, ids: Iterable[int]) -> None:
        for dpid in ids:
            if dpid == 1:
                self._reported_energy = self.energy_centi_kwh
            elif dpid == 13:
                self._reported_balance = self.balance_count
            self._send(Command.DP_REPORT, self.datapoint(dpid).encode())

    def _send(self, cmd: int, payload: bytes) -> None:
        self._out.append(encode_frame(cmd, payload, MCU_VERSION))
