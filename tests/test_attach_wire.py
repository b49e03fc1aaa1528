"""The attach socket's line format: every event a viewer gets is the event the service published."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuimeter.attach import wire
from tuimeter.core.commands import Command, parse_product_info
from tuimeter.core.datapoints import DPType, make_datapoint
from tuimeter.core.events import (
    CommandFinished,
    CommandResult,
    CommandSource,
    DatapointReceived,
    Event,
    FrameLogged,
    LinkChanged,
    LinkState,
    McuRestarted,
    Notice,
    ParseProblem,
    ProductInfoReceived,
    ProfileChosen,
    ReadingUpdated,
    RelayChanged,
    ServiceChanged,
    SettingChange,
    Tripped,
)
from tuimeter.core.frames import Frame
from tuimeter.core.meter import Reading
from tuimeter.core.settings import AlarmValue

TS = datetime(2026, 12, 2, 14, 2, 31, 123456, tzinfo=timezone(timedelta(hours=1)))


def through_the_socket(ev: Event) -> Event:
    encoded = wire.encode_event(ev)
    assert encoded is not None
    return wire.decode_event(wire.loads(wire.dumps({"type": "update", "events": [encoded]}))["events"][0])


EVENTS: list[Event] = [
    LinkChanged(TS, LinkState.LINK_LOST, "heartbeats unanswered"),
    McuRestarted(TS),
    ProductInfoReceived(TS, parse_product_info(b'{"p":"r9kg2g1uhhyicycb","v":"1.0.0","m":0}')),
    ProfileChosen(TS, "earu-2p63a", "product id r9kg2g1uhhyicycb"),
    DatapointReceived(TS, make_datapoint(9, DPType.BITMAP, 0x0102, 2)),
    ReadingUpdated(TS, Reading(TS, 231.5, 0.315, 73.0, 888.48, 4.0, True, ("over_current",)),
                   frozenset({"voltage", "relay"})),
    ReadingUpdated(TS, Reading(TS), frozenset()),
    RelayChanged(TS, None, True),
    CommandFinished(TS, 3, CommandResult.UNCONFIRMED, "relay off: the meter did not confirm", "relay", False,
                    CommandSource.WEB),
    CommandFinished(TS, 4, CommandResult.CONFIRMED, "alarm set 2 confirmed", "setting", None, CommandSource.ATTACH,
                    SettingChange("alarm_set_2.over_voltage", 18, AlarmValue(True, 250), AlarmValue(False, 260),
                                  "V", True, AlarmValue(False, 260))),
    Tripped(TS, ("over_current", "leakage")),
    Notice(TS, "a warning", "warning"),
    ServiceChanged(TS, "mqtt", False, "broker went away", "warning"),
    ParseProblem(TS, "bad_checksum", "checksum 0x12, expected 0x13", b"\x55\xaa\x03"),
]


@pytest.mark.parametrize("ev", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_arrives_as_it_was_published(ev: Event) -> None:
    assert through_the_socket(ev) == ev


def test_a_logged_frame_arrives_to_be_described_by_the_viewer() -> None:
    frame = Frame(3, Command.DP_REPORT, make_datapoint(1, DPType.BOOL, True).encode())
    ev = FrameLogged(TS, "in", frame, lambda f: "dp report: relay on")
    encoded = wire.encode_event(ev)
    assert encoded is not None and "text" not in encoded  # describing is the viewer's work, not the service's
    line = wire.loads(wire.dumps({"type": "update", "events": [encoded]}))
    got = wire.decode_event(line["events"][0], describe=lambda f: f"described here: {f.command}")
    assert isinstance(got, FrameLogged)
    assert (got.ts, got.direction, got.frame, got.hex) == (TS, "in", frame, ev.hex)
    assert got.text == f"described here: {Command.DP_REPORT}"
    history = wire.decode_event({**encoded, "text": ev.text})  # a snapshot's history: the service's own text
    assert isinstance(history, FrameLogged) and history.text == "dp report: relay on"


@given(st.integers(0, 255), st.sampled_from(list(DPType)), st.binary(max_size=40))
def test_any_datapoint_the_meter_can_report_survives(dpid: int, dptype: DPType, raw: bytes) -> None:
    from tuimeter.core.datapoints import decode_datapoints

    dps, problems = decode_datapoints(bytes((dpid, dptype, len(raw) >> 8, len(raw) & 0xFF)) + raw)
    if problems:
        return  # not a valid dp of that type: the service never has one to send
    (dp,) = dps
    assert wire.decode_dp(wire.encode_dp(dp)) == dp


@pytest.mark.parametrize("line", [b"not json\n", b"[1,2]\n", b'{"no":"type"}\n', b"\xff\xfe\n"])
def test_a_line_that_is_not_ours_is_one_clear_error(line: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.loads(line)


def test_an_event_of_a_newer_kind_is_refused_not_guessed() -> None:
    with pytest.raises(wire.WireError, match="does not know"):
        wire.decode_event({"event": "teleport", "ts": TS.isoformat()})
    with pytest.raises(wire.WireError, match="bad 'relay'"):
        wire.decode_event({"event": "relay", "ts": TS.isoformat()})
