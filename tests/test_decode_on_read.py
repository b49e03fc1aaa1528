"""Reports are kept and decoded once per read (decode-on-read); that must end exactly where decoding
every report at once ends: same readings, relay events, values and their order. And the headless
configuration (no frame-log or per-dp events) must end where the screen's does."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_host_machine import Rig, dp_report, mcu
from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DataPoint, DPType, make_datapoint
from tuimeter.core.events import Event, ParseProblem, ReadingUpdated, RelayChanged
from tuimeter.core.host import HostConfig, HostMachine
from tuimeter.core.meter import MeterState
from tuimeter.core.profile import Profile, load_profile, parse_profile

HEADLESS = {"log_frames": False, "dp_events": False}  # no per-frame or per-dp events
SCREEN = {"log_frames": True, "dp_events": True}  # a FrameLogged per frame, a DatapointReceived per dp
CONFIGS = pytest.mark.parametrize("config", [HEADLESS, SCREEN], ids=["headless", "screen"])

RELAY_IN_A_FIELD = """
name = "relay-field"
[[dp]]
id = 6
name = "phase_a"
type = "raw"
fields = [
  { role = "voltage", offset = 0, size = 2, scale = 0.1, unit = "V" },
  { role = "relay", offset = 2, size = 1 },
]
[[dp]]
id = 16
name = "switch"
type = "bool"
role = "relay"
"""


def online(config: dict[str, bool], profile: Profile | None = None) -> Rig:
    r = Rig(**config)
    if profile is not None:
        r.m = HostMachine(profile, HostConfig(**config))  # type: ignore[arg-type]
    r.bring_online()
    r.events.clear()
    return r


def readings(events: list[Event]) -> list[ReadingUpdated]:
    return [e for e in events if isinstance(e, ReadingUpdated)]


@CONFIGS
def test_a_shorter_report_keeps_what_the_longer_one_set_in_the_same_read(config: dict[str, bool]) -> None:
    r = online(config)
    ten = bytes.fromhex("09100000010000050007")  # 232.0 V ... leakage 7 mA
    eight = bytes.fromhex("0910000001000005")  # the 8-byte form: no leakage field
    r.reply(dp_report(6, DPType.RAW, ten) + dp_report(6, DPType.RAW, eight))
    (ev,) = readings(r.events)
    assert ev.reading.leakage_ma == 7 and ev.reading.voltage_v == 232.0
    assert "leakage" in ev.roles


@CONFIGS
def test_a_report_of_the_wrong_type_leaves_the_value_set_earlier_in_the_read(config: dict[str, bool]) -> None:
    r = online(config)
    r.reply(dp_report(1, DPType.VALUE, 1234) + dp_report(1, DPType.RAW, b"\x01\x02"))
    (ev,) = readings(r.events)
    assert ev.reading.energy_kwh == 12.34 and "energy" in ev.roles


@CONFIGS
def test_alarm_records_from_two_reports_in_one_read_are_all_kept(config: dict[str, bool]) -> None:
    r = online(config, load_profile("tompd-63"))
    r.reply(dp_report(17, DPType.RAW, bytes.fromhex("01010032")) + dp_report(17, DPType.RAW, bytes.fromhex("03000009")))
    values = r.m.meter.values
    assert "alarm_set_1.short_circuit" in values and "alarm_set_1.overload" in values


@CONFIGS
def test_a_relay_given_by_a_raw_field_still_makes_relay_events(config: dict[str, bool]) -> None:
    r = online(config, parse_profile(RELAY_IN_A_FIELD, "test"))  # start-up's dump left the field at 0
    r.reply(dp_report(6, DPType.RAW, bytes.fromhex("091001")) + dp_report(6, DPType.RAW, bytes.fromhex("091000")))
    assert len([e for e in r.events if isinstance(e, RelayChanged)]) == 2  # 0 → 1 → 0: both seen


# ---- any stream: the fast lane and the per-report path agree ----------------------------------

ALARM_RECORD = st.tuples(st.sampled_from([1, 3, 5]), st.sampled_from([0, 1]), st.integers(0, 0xFFFF)).map(
    lambda t: bytes(t[:2]) + t[2].to_bytes(2, "big"))
KINDS = [
    st.binary(min_size=8, max_size=8).map(lambda b: dp_report(6, DPType.RAW, b)),  # 8-byte phase_a
    st.binary(min_size=10, max_size=10).map(lambda b: dp_report(6, DPType.RAW, b)),  # 10-byte phase_a
    st.binary(min_size=0, max_size=5).map(lambda b: dp_report(6, DPType.RAW, b)),  # too short for its fields
    st.integers(0, 2**31 - 1).map(lambda v: dp_report(1, DPType.VALUE, v)),  # energy
    st.integers(0, 300).map(lambda v: dp_report(15, DPType.VALUE, v)),  # leakage, a second source
    st.booleans().map(lambda v: dp_report(16, DPType.BOOL, v)),  # the relay
    st.binary(min_size=1, max_size=3).map(lambda b: dp_report(1, DPType.RAW, b)),  # energy of the wrong type
    st.binary(min_size=0, max_size=6).map(lambda b: dp_report(99, DPType.RAW, b)),  # unknown dp
    st.lists(ALARM_RECORD, min_size=1, max_size=2).map(  # alarm sets (tompd-63)
        lambda rs: dp_report(17, DPType.RAW, b"".join(rs))),
    st.just(mcu(Command.HEARTBEAT, b"\x01")),
    st.binary(min_size=1, max_size=6).map(lambda b: b.replace(b"\x55", b"\x54")),  # noise
    st.just(mcu(Command.DP_REPORT, bytes.fromhex("0600000a0102"))),  # a unit whose length lies
]
# each kind alone, and two of a kind back to back (what one read of a streaming meter holds)
REPORTS = st.one_of(*KINDS, *(st.tuples(k, k).map(b"".join) for k in KINDS))


def run(config: dict[str, bool], profile: str, stream: bytes, cuts: list[int]) -> tuple[object, ...]:
    r = online(config, load_profile(profile))
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    for a, b in itertools.pairwise(bounds):
        r.reply(stream[a:b])
    meter = r.m.meter
    return ([e.reading for e in readings(r.events)], [e.roles for e in readings(r.events)],
            [(e.on, e.previous) for e in r.events if isinstance(e, RelayChanged)],
            [(e.kind, e.detail) for e in r.events if isinstance(e, ParseProblem)],
            list(meter.values.items()), list(meter.dps.items()), r.m.frames_in, r.m.parser.stats)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Frames drawn from a small pool each time, so that a read often holds several reports of one dp
    (of one shape or of several): what decode-on-read takes one for the other."""
    pool = draw(st.lists(REPORTS, min_size=1, max_size=4))
    return b"".join(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=40)))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["earu-2p63a", "tompd-63"]), streams(), st.lists(st.integers(0, 900), max_size=8))
def test_headless_and_screen_end_the_same_for_any_stream(profile: str, stream: bytes, cuts: list[int]) -> None:
    assert run(HEADLESS, profile, stream, cuts) == run(SCREEN, profile, stream, cuts)


DATAPOINTS = st.one_of(
    st.binary(min_size=0, max_size=12).map(lambda b: make_datapoint(6, DPType.RAW, b)),  # 8-, 10-byte, short
    st.integers(0, 2**31 - 1).map(lambda v: make_datapoint(1, DPType.VALUE, v)),
    st.integers(0, 300).map(lambda v: make_datapoint(15, DPType.VALUE, v)),
    st.binary(min_size=1, max_size=3).map(lambda b: make_datapoint(1, DPType.RAW, b)),  # the wrong type
    st.lists(ALARM_RECORD, min_size=0, max_size=3).map(lambda rs: make_datapoint(17, DPType.RAW, b"".join(rs))),
    st.integers(0, 255).map(lambda v: make_datapoint(9, DPType.BITMAP, v)),
    st.binary(max_size=4).map(lambda b: make_datapoint(99, DPType.RAW, b)),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["earu-2p63a", "tompd-63"]), st.lists(st.lists(DATAPOINTS, max_size=12), max_size=6))
def test_decoding_on_read_ends_where_decoding_each_report_at_once_ends(profile: str,
                                                                       reads: list[list[DataPoint]]) -> None:
    p = load_profile(profile)
    lazy, eager = MeterState(p), MeterState(p)
    for read in reads:
        for dp in read:
            lazy.store(dp)
            eager.apply(dp)
        assert lazy.take_reported() == eager.take_reported()
        assert list(lazy.values.items()) == list(eager.values.items())  # the order of first arrival too
        assert list(lazy.dps.items()) == list(eager.dps.items())
