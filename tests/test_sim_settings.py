"""The simulated meter's settings and protections behave like the real meter's: writes within range
echoed, others dropped; energy reset, prepaid credit and top-up; trips on over-/under-voltage,
over-current and leakage after the protection delay; the 8-byte alarm-set records edited by code.

Driven as the host drives it (frames in, frames out) on the sim's own clock; what is asserted is what
the meter reports."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DPType, DPValue, decode_datapoints, make_datapoint
from tuimeter.core.frames import Frame, StreamParser, encode_frame
from tuimeter.sim.faults import FaultPlan
from tuimeter.sim.mcu import SimulatedMeter

# fault bits in dp 9 (din-meter-datapoints.md §5.2)
LEAKAGE, OVER_CURRENT, OVER_VOLTAGE, UNDER_VOLTAGE, NO_BALANCE = 3, 8, 10, 11, 16
START_UP = ((Command.HEARTBEAT, b""), (Command.PRODUCT_INFO, b""), (Command.WORKING_MODE, b""),
            (Command.NETWORK_STATUS, b"\x02"), (Command.NETWORK_STATUS, b"\x03"),
            (Command.NETWORK_STATUS, b"\x04"))


@dataclass(frozen=True)
class Phase:
    """dp 6 (and dp 15 on the 8-byte variant) as a user reads them."""

    voltage_v: float
    current_a: float
    leakage_ma: int | None


class Meter:
    """A SimulatedMeter after start-up and the host's 0x08 query, stepped on explicit times."""

    def __init__(self, variant: str = "10byte", faults: FaultPlan | None = None, period: float = 0.5,
                 speed: float = 1.0) -> None:
        self.sim = SimulatedMeter(seed=4, period=period, speed=speed, faults=faults, variant=variant)
        self.parser = StreamParser()
        self.now = 0.0
        for cmd, payload in START_UP:
            self.send(cmd, payload)
        self.dump = dict(self.query())

    def send(self, cmd: int, payload: bytes = b"") -> list[tuple[int, DPValue]]:
        self.sim.receive(encode_frame(cmd, payload, 0), self.now)
        return self.out()

    def write(self, dpid: int, dptype: DPType, value: DPValue) -> list[tuple[int, DPValue]]:
        return self.send(Command.DP_COMMAND, make_datapoint(dpid, dptype, value).encode())

    def query(self) -> list[tuple[int, DPValue]]:
        return self.send(Command.DP_QUERY)

    def out(self) -> list[tuple[int, DPValue]]:
        frames = [f for f in self.parser.feed(self.sim.data_to_send()) if isinstance(f, Frame)]
        return [(d.id, d.value) for f in frames if f.command == Command.DP_REPORT
                for d in decode_datapoints(f.payload)[0]]

    def run_until(self, end: float) -> list[tuple[int, DPValue]]:
        """Tick at every deadline up to `end`, then at `end`: what the meter reported meanwhile."""
        reports: list[tuple[int, DPValue]] = []
        while self.sim.next_deadline() <= end:
            self.now = max(self.now, self.sim.next_deadline())
            self.sim.tick(self.now)
            reports += self.out()
        self.now = end
        self.sim.tick(end)
        return reports + self.out()

    def value(self, dpid: int) -> DPValue:
        """The dp's value in a fresh 0x08 dump."""
        return dict(self.query())[dpid]


def phases(reports: list[tuple[int, DPValue]]) -> list[Phase]:
    out: list[Phase] = []
    for dpid, value in reports:
        if dpid == 6 and isinstance(value, bytes):
            leak = int.from_bytes(value[8:10], "big") if len(value) == 10 else None
            out.append(Phase(int.from_bytes(value[0:2], "big") / 10, int.from_bytes(value[2:5], "big") / 1000, leak))
        elif dpid == 15 and isinstance(value, int) and out:  # the 8-byte variant's leakage follows dp 6
            out[-1] = Phase(out[-1].voltage_v, out[-1].current_a, value)
    return out


def relay_reports(reports: list[tuple[int, DPValue]]) -> list[DPValue]:
    return [v for d, v in reports if d == 16]


def fault_words(reports: list[tuple[int, DPValue]]) -> list[int]:
    return [v for d, v in reports if d == 9 and isinstance(v, int)]


# ---- ranges ----------------------------------------------------------------------------------

RANGES = [  # variant, dp, lowest and highest value the meter takes (meter-settings.md §1, §2, §3)
    ("10byte", 101, 250, 300), ("10byte", 102, 150, 190), ("10byte", 103, 1, 63), ("10byte", 104, 10, 100),
    ("10byte", 14, 0, 999_999), ("8byte", 104, 1, 30), ("8byte", 105, 1, 500), ("8byte", 14, 0, 99_999),
]


@pytest.mark.parametrize(("variant", "dpid", "low", "high"), RANGES)
def test_a_write_within_range_is_echoed_and_kept(variant: str, dpid: int, low: int, high: int) -> None:
    m = Meter(variant)
    for value in (low, high):
        assert (dpid, value) in m.write(dpid, DPType.VALUE, value)
        assert m.value(dpid) == value


@pytest.mark.parametrize(("variant", "dpid", "low", "high"), RANGES)
def test_a_write_out_of_range_is_not_echoed_and_the_old_value_stays(variant: str, dpid: int, low: int,
                                                                   high: int) -> None:
    m = Meter(variant)
    before = m.dump[dpid]
    for value in (low - 1, high + 1):
        assert m.write(dpid, DPType.VALUE, value) == []
    assert m.value(dpid) == before


@pytest.mark.parametrize(("dpid", "dptype", "value"), [
    (101, DPType.BOOL, True), (11, DPType.VALUE, 1), (14, DPType.BOOL, True), (105, DPType.VALUE, 1),
    (101, DPType.STRING, "260"), (1, DPType.VALUE, 0), (13, DPType.VALUE, 100), (106, DPType.BOOL, True),
])
def test_a_write_of_the_wrong_type_or_to_a_read_only_dp_is_ignored(dpid: int, dptype: DPType,
                                                                  value: DPValue) -> None:
    m = Meter()
    assert m.write(dpid, dptype, value) == []
    assert m.value(dpid) == m.dump[dpid]


@pytest.mark.parametrize(("dpid", "value"), [(11, False), (105, True), (105, False), (12, False)])
def test_bool_settings_take_either_value(dpid: int, value: bool) -> None:
    m = Meter()
    assert m.write(dpid, DPType.BOOL, value) == [(dpid, value)]
    assert m.value(dpid) == value


# ---- energy reset, prepaid -------------------------------------------------------------------

def test_clearing_energy_zeroes_dp1_and_echoes_dp12() -> None:
    m = Meter()
    assert isinstance(m.dump[1], int) and m.dump[1] > 0
    assert m.write(12, DPType.BOOL, True) == [(1, 0), (12, True)]
    assert m.value(1) == 0


@pytest.mark.parametrize(("variant", "count_wh"), [("10byte", 10), ("8byte", 100)])
def test_a_top_up_adds_to_the_balance(variant: str, count_wh: int) -> None:
    m = Meter(variant)
    assert m.dump[13] == 0
    assert sorted(m.write(14, DPType.VALUE, 25)) == [(13, 25), (14, 25)]
    assert sorted(m.write(14, DPType.VALUE, 5)) == [(13, 30), (14, 5)]
    assert m.value(13) == 30  # in counts of count_wh: 0.3 kWh or 3 kWh, the profile's scale


def test_prepaid_balance_counts_down_and_the_meter_trips_at_zero() -> None:
    m = Meter(speed=60.0, period=1.0)  # an hour of household a minute
    m.write(104, DPType.VALUE, 100)  # no trip on the household's own earth faults
    m.write(14, DPType.VALUE, 3)  # 0.03 kWh: a few minutes of base load
    assert m.write(11, DPType.BOOL, True) == [(11, True)]
    reports = m.run_until(120)
    balances = [v for d, v in reports if d == 13]
    assert balances[0] < 3 and balances[-1] == 0 and balances == sorted(balances, reverse=True)
    assert relay_reports(reports) == [False]
    assert fault_words(reports)[-1] == 1 << NO_BALANCE
    # back on with no credit: it trips again at once
    back = m.write(16, DPType.BOOL, True)
    assert relay_reports(back) == [True, False] and fault_words(back) == [0, 1 << NO_BALANCE]
    # topped up, it stays on
    m.write(14, DPType.VALUE, 100)
    assert relay_reports(m.write(16, DPType.BOOL, True)) == [True]
    assert relay_reports(m.run_until(130)) == []


def test_prepaid_mode_with_no_credit_cuts_off_at_once() -> None:
    m = Meter()
    reports = m.write(11, DPType.BOOL, True)
    assert reports[0] == (11, True)
    assert relay_reports(reports) == [False] and fault_words(reports) == [1 << NO_BALANCE]


def test_without_prepaid_mode_the_balance_stays() -> None:
    m = Meter(speed=60.0, period=1.0)
    m.write(104, DPType.VALUE, 100)  # no trip on the household's own earth faults
    m.write(14, DPType.VALUE, 3)
    reports = m.run_until(120)
    assert 13 not in dict(reports) and relay_reports(reports) == []
    assert m.value(13) == 3


# ---- trips on thresholds, provoked by fault events -----------------------------------------------

@dataclass(frozen=True)
class Trip:
    event: str
    bit: int
    beyond: str  # what a user sees before the trip

    def seen(self, p: Phase, threshold: float) -> bool:
        return {
            "surge": p.voltage_v > threshold, "sag": p.voltage_v < threshold,
            "overload": p.current_a > threshold, "leak": p.leakage_ma is not None and p.leakage_ma > threshold,
        }[self.event]


TRIPS = [Trip("surge", OVER_VOLTAGE, "V"), Trip("sag", UNDER_VOLTAGE, "V"), Trip("overload", OVER_CURRENT, "A"),
         Trip("leak", LEAKAGE, "mA")]
# the defaults: 10-byte dp 101–104; 8-byte the alarm-set records, and a 5 s protection time (dp 104)
THRESHOLDS = {"10byte": {"surge": 275, "sag": 170, "overload": 50, "leak": 50},
              "8byte": {"surge": 245, "sag": 170, "overload": 60, "leak": 30}}
DELAYS = {"10byte": 2.0, "8byte": 5.0}


@pytest.mark.parametrize("variant", ["10byte", "8byte"])
@pytest.mark.parametrize("trip", TRIPS, ids=lambda t: t.event)
def test_a_fault_event_shows_in_the_readings_then_trips_after_the_delay(trip: Trip, variant: str) -> None:
    at, delay, threshold = 10.0, DELAYS[variant], THRESHOLDS[variant][trip.event]
    m = Meter(variant, FaultPlan.parse(f"{trip.event}_at={at:g}"))
    quiet = m.run_until(at - 0.01)
    assert phases(quiet) and not any(trip.seen(p, threshold) for p in phases(quiet))
    before = m.run_until(at + delay - 0.01)
    assert phases(before) and all(trip.seen(p, threshold) for p in phases(before))  # beyond, relay still on
    assert relay_reports(before) == [] and fault_words(before) == []
    tripped = m.run_until(at + delay + 0.01)
    assert relay_reports(tripped) == [False]
    assert fault_words(tripped) == [1 << trip.bit]
    assert m.value(16) is False and m.value(9) == 1 << trip.bit


@pytest.mark.parametrize("event", ["surge", "sag"])
def test_mains_trouble_outlasts_the_trip_and_ends_after_its_time(event: str) -> None:
    m = Meter(faults=FaultPlan.parse(f"{event}_at=5,{event}_for=20"))
    tripped = m.run_until(10)
    assert relay_reports(tripped) == [False]
    after_trip = phases(m.run_until(20))
    assert all(abs(p.voltage_v - 230) > 40 and p.current_a == 0 for p in after_trip)  # still off, no load
    assert relay_reports(m.write(16, DPType.BOOL, True)) == [True]
    assert relay_reports(m.run_until(23)) == [False]  # back on into the surge/sag: trips again
    m.run_until(26)  # the event is over
    assert relay_reports(m.write(16, DPType.BOOL, True)) == [True]
    healthy = m.run_until(60)
    assert relay_reports(healthy) == [] and all(220 < p.voltage_v < 240 for p in phases(healthy))


@pytest.mark.parametrize("event", ["overload", "leak"])
def test_the_trip_cuts_off_an_overload_or_a_leak(event: str) -> None:
    m = Meter(faults=FaultPlan.parse(f"{event}_at=5,event_for=100"))
    assert relay_reports(m.run_until(10)) == [False]
    assert relay_reports(m.write(16, DPType.BOOL, True)) == [True]
    healthy = m.run_until(40)
    assert relay_reports(healthy) == []
    assert all(p.current_a < 30 and p.leakage_ma is not None and p.leakage_ma < 20 for p in phases(healthy))


def test_a_brief_dip_below_the_threshold_restarts_the_delay() -> None:
    m = Meter(faults=FaultPlan.parse("surge_at=5,surge_for=1.5,event_for=0"))
    reports = m.run_until(30)  # 1.5 s beyond 275 V is shorter than the 2 s delay
    assert relay_reports(reports) == [] and fault_words(reports) == []
    assert any(p.voltage_v > 275 for p in phases(reports))


def test_a_lower_threshold_set_by_the_host_is_the_one_that_trips() -> None:
    m = Meter(faults=FaultPlan.parse("leak_at=5"))
    assert m.write(104, DPType.VALUE, 20) == [(104, 20)]
    reports = m.run_until(8)
    leaks = [p.leakage_ma for p in phases(reports) if p.leakage_ma]
    assert max(leaks) < 50 and max(leaks) > 20  # the event goes 10 mA past the threshold in force
    assert fault_words(reports) == [1 << LEAKAGE]


def test_the_8byte_protection_time_is_dp104() -> None:
    m = Meter("8byte", FaultPlan.parse("overload_at=5"))
    m.write(104, DPType.VALUE, 12)
    assert relay_reports(m.run_until(16.9)) == []
    assert relay_reports(m.run_until(17.1)) == [False]


# ---- 8-byte alarm sets -------------------------------------------------------------------------

def records(*recs: str) -> bytes:
    return bytes.fromhex("".join(recs))


def test_an_alarm_only_record_raises_the_fault_but_keeps_the_relay_on() -> None:
    m = Meter("8byte", FaultPlan.parse("surge_at=5,surge_for=20"))
    set_2 = records("0101003C", "030000F5", "040100AA")  # over-voltage 245 V: alarm only
    assert m.write(18, DPType.RAW, set_2) == [(18, set_2)]
    during = m.run_until(24)
    assert relay_reports(during) == [] and fault_words(during) == [1 << OVER_VOLTAGE]
    assert all(p.current_a > 0 for p in phases(during))  # the load still has power
    after = m.run_until(30)
    assert fault_words(after) == [0]  # the alarm clears with the surge
    assert m.value(16) is True


def test_an_alarm_made_a_trip_while_it_is_raised_trips() -> None:
    m = Meter("8byte", FaultPlan.parse("surge_at=5,surge_for=20"))
    m.write(18, DPType.RAW, records("030000F5"))
    assert fault_words(m.run_until(12)) == [1 << OVER_VOLTAGE]
    made_trip = m.write(18, DPType.RAW, records("030100F5"))  # beyond for longer than the delay already
    assert made_trip[0] == (18, records("0101003C", "030100F5", "040100AA"))
    assert relay_reports(made_trip) == [False] and fault_words(made_trip) == [1 << OVER_VOLTAGE]


def test_an_alarm_set_edit_applies_each_record_in_range_and_keeps_the_old_one_out_of_range() -> None:
    m = Meter("8byte")
    old = m.dump[18]
    assert old == records("0101003C", "030100F5", "040100AA")
    written = records("01010050", "03010136", "040100B4")  # 80 A ok, 310 V out of range, 180 V ok
    ((dpid, reported),) = m.write(18, DPType.RAW, written)
    assert dpid == 18 and reported == records("01010050", "030100F5", "040100B4") != written
    assert m.value(18) == reported


def test_an_alarm_set_edit_goes_by_code_not_position() -> None:
    m = Meter("8byte")
    assert m.dump[17] == records("01010000", "03010014", "0401001E", "05010050")
    # leakage 20 mA and over-temperature 70 °C, in another order; code 2 unknown; action 02 unknown
    written = records("05010046", "02010005", "04010014", "03020005")
    assert m.write(17, DPType.RAW, written) == [(17, records("01010000", "03010014", "04010014", "05010046"))]


def test_an_alarm_set_whose_length_is_not_whole_records_is_ignored() -> None:
    m = Meter("8byte")
    before = m.dump[17]
    assert m.write(17, DPType.RAW, records("0101000003010014", "040100")) == []
    assert m.value(17) == before


def test_alarm_sets_are_only_on_the_8byte_variant() -> None:
    m = Meter("10byte")
    assert m.write(18, DPType.RAW, records("0101003C")) == []


# ---- the plan ----------------------------------------------------------------------------------

def test_fault_events_parse_from_the_demo_faults_spec() -> None:
    plan = FaultPlan.parse("surge_at=5,sag_at=60,sag_for=3,event_for=12")
    assert plan.window("surge") == (5.0, 17.0) and plan.window("sag") == (60.0, 63.0)
    assert plan.window("overload") is None and plan.window("leak") is None
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan.parse("spike_at=5")


def test_same_seed_same_run_with_fault_events() -> None:
    plan = FaultPlan.parse("surge_at=5,overload_at=20,leak_at=40,sag_at=60")
    a, b = Meter(faults=plan, speed=30.0), Meter(faults=plan, speed=30.0)
    for m in (a, b):
        m.run_until(8)
        m.write(16, DPType.BOOL, True)
    assert a.run_until(90) == b.run_until(90)
