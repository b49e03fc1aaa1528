"""The meter's settings: what the profiles say may be written, how a write is checked and encoded, and
the one command path that sends it and takes only the meter's own report as confirmation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.tui_support import OfflineLink
from tuimeter.core.command_path import CommandRefused, WeakeningRefused
from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DataPoint, DPType, decode_datapoints, make_datapoint
from tuimeter.core.events import CommandFinished, CommandResult, CommandSource, Tripped
from tuimeter.core.profile import ProfileError, load_profile, parse_profile
from tuimeter.core.settings import AlarmValue, Setting, SettingKind, SettingRefused, find, prepare
from tuimeter.core.trips import TripDetector
from tuimeter.sim.faults import FaultPlan

EARU, EMS = "r9kg2g1uhhyicycb", "kzy0cr7cs3nkpumw"


def setting(profile: str, name: str) -> Setting:
    p = load_profile(profile)
    return find(p.settings, p.name, name)


def value_dp(dpid: int, v: int) -> DataPoint:
    return make_datapoint(dpid, DPType.VALUE, v)


# ---- the profiles --------------------------------------------------------------------------

def test_shipped_profiles_describe_every_writable_dp_the_references_list() -> None:
    earu = {s.name: s for s in load_profile("earu-2p63a").settings}
    assert {s.dp for s in earu.values()} == {11, 12, 14, 101, 102, 103, 104, 105, 115}
    assert (earu["clear_energy"].kind, earu["alarm_mute"].kind, earu["charge_energy"].kind) == \
        (SettingKind.BUTTON, SettingKind.SWITCH, SettingKind.NUMBER)
    tompd = {s.name: s for s in load_profile("tompd-63").settings}
    assert {"alarm_set_1.leakage", "alarm_set_2.over_current", "alarm_set_2.over_voltage", "protection_time",
            "recovery_time", "self_test"} <= set(tompd)
    assert tompd["alarm_set_2.over_current"].code == 1 and tompd["alarm_set_1.leakage"].unit == "mA"
    assert [s.name for s in load_profile("plug-meter").settings] == ["countdown"]


def test_ranges_by_product_id_and_the_narrower_one_for_an_unknown_product() -> None:
    over, under = setting("earu-2p63a", "over_voltage_threshold"), setting("earu-2p63a", "under_voltage_threshold")
    assert (over.range_for(EARU).min, over.range_for(EMS).min, over.range_for(None).min) == (250, 230, 250)
    assert (under.range_for(EARU).max, under.range_for(EMS).max, under.range_for("other").max) == (190, 210, 190)


def test_a_product_only_setting_is_offered_on_that_product_or_when_the_meter_reports_it() -> None:
    reset = setting("earu-2p63a", "reset_total_energy")
    assert not reset.available(EARU, reported=False)
    assert reset.available(EMS, reported=False) and reset.available(EARU, reported=True)


def test_a_users_profile_can_widen_or_narrow_a_range() -> None:
    text = (resources.files("tuimeter") / "profiles" / "earu-2p63a.toml").read_text()
    wider = parse_profile(text.replace("min = 10\nmax = 100", "min = 10\nmax = 300"), "mine.toml")
    s = find(wider.settings, wider.name, "leakage_threshold")
    assert s.range_for(EARU).max == 300 and s.weakening is not None  # still marked above 30 mA


@pytest.mark.parametrize(("table", "message"), [
    ('kind = "dial"', "setting kind 'dial' is not one of"),
    ('kind = "number"', "needs min and max"),
    ('kind = "number"\nmin = 5\nmax = 1', "min <= max"),
    ('kind = "switch"', "cannot be a value dp"),
])
def test_a_broken_setting_in_a_profile_is_one_clear_error(table: str, message: str) -> None:
    text = f'name = "x"\n[[dp]]\nid = 101\nname = "t"\ntype = "value"\nwritable = true\n[dp.setting]\n{table}\n'
    with pytest.raises(ProfileError, match=message):
        parse_profile(text, "mine.toml")
    with pytest.raises(ProfileError, match="not writable"):
        parse_profile(text.replace("writable = true\n", "").replace(table, 'kind = "number"\nmin = 1\nmax = 2'),
                      "mine.toml")


# ---- checking and encoding ----------------------------------------------------------------

def test_numbers_take_the_unit_shown_or_none_and_are_checked_against_range_and_step() -> None:
    s = setting("earu-2p63a", "over_voltage_threshold")
    reported = value_dp(101, 275)
    w = prepare(s, "265", reported, EARU)
    assert (w.old, w.new, w.datapoint) == (275, 265, value_dp(101, 265))
    assert prepare(s, "265V", reported, EARU).datapoint == prepare(s, "265 v", reported, EARU).datapoint
    for text, why in (("320", "out of range 250–300 V"), ("230", "out of range"), ("265 mA", "in V, not mA"),
                      ("high", "needs a number")):
        with pytest.raises(SettingRefused, match=why):
            prepare(s, text, reported, EARU)
    assert prepare(s, "230", reported, EMS).new == 230  # this product's range
    energy = setting("earu-2p63a", "charge_energy")
    assert prepare(energy, "12.34", value_dp(14, 0), EARU).datapoint == value_dp(14, 1234)  # × 0.01 kWh
    with pytest.raises(SettingRefused, match=r"not on its step of 0\.01"):
        prepare(energy, "1.234", value_dp(14, 0), EARU)


def test_a_dp_the_meter_has_not_reported_is_not_written_and_a_write_goes_with_the_reported_type() -> None:
    s = setting("earu-2p63a", "clear_energy")
    with pytest.raises(SettingRefused, match="has not reported dp 12"):
        prepare(s, None, None, EARU)
    assert prepare(s, None, make_datapoint(12, DPType.BOOL, False), EARU).datapoint.type is DPType.BOOL
    # some products report dp 12 as an enum ["empty"]: the write follows the meter (meter-settings.md)
    as_enum = prepare(s, None, make_datapoint(12, DPType.ENUM, 0), EARU).datapoint
    assert (as_enum.type, as_enum.value) == (DPType.ENUM, 1)
    with pytest.raises(SettingRefused, match="one-shot action"):
        prepare(s, "42", make_datapoint(12, DPType.BOOL, False), EARU)


def test_weakening_is_marked_with_the_risk_in_plain_words() -> None:
    s = setting("earu-2p63a", "leakage_threshold")
    assert prepare(s, "30", value_dp(104, 50), EARU).weakening is None
    risk = prepare(s, "31", value_dp(104, 50), EARU).weakening
    assert risk == "Above 30 mA the leakage trip no longer protects people from electric shock"


SET_2 = bytes.fromhex("0101003C030100F5")  # over-current trip at 60 A, over-voltage trip at 245 V


def test_an_alarm_record_edit_rewrites_only_that_record() -> None:
    s = setting("tompd-63", "alarm_set_2.over_voltage")
    reported = make_datapoint(18, DPType.RAW, SET_2)
    assert s.current(reported) == AlarmValue(True, 245)
    w = prepare(s, "trip@250", reported, None)
    assert w.datapoint.raw == bytes.fromhex("0101003C030100FA")
    assert prepare(s, "alarm", reported, None).datapoint.raw == bytes.fromhex("0101003C030000F5")
    assert prepare(s, "260V", reported, None).new == AlarmValue(True, 260)
    current = setting("tompd-63", "alarm_set_2.over_current")
    assert prepare(current, "alarm@60", reported, None).weakening is not None  # alarm only: no longer trips
    with pytest.raises(SettingRefused, match="out of range 230–300 V"):
        prepare(s, "trip@320", reported, None)
    with pytest.raises(SettingRefused, match="is 9 bytes, not whole 4-byte records"):
        prepare(s, "trip@250", make_datapoint(18, DPType.RAW, SET_2 + b"\x01"), None)
    with pytest.raises(SettingRefused, match="has not reported dp 18"):
        prepare(s, "trip@250", None, None)
    with pytest.raises(SettingRefused, match=r"has no record for alarm_set_2\.over_voltage"):
        prepare(s, "trip@250", make_datapoint(18, DPType.RAW, SET_2[:4]), None)


@given(st.lists(st.tuples(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9]), st.booleans(), st.integers(0, 0xFFFF)),
                min_size=1, max_size=8, unique_by=lambda r: r[0]),
       st.integers(230, 300), st.booleans())
def test_an_alarm_edit_keeps_every_other_byte(records: list[tuple[int, bool, int]], threshold: int,
                                              trips: bool) -> None:
    raw = b"".join(bytes((code, int(t))) + v.to_bytes(2, "big") for code, t, v in records)
    s = setting("tompd-63", "alarm_set_2.over_voltage")
    reported = make_datapoint(18, DPType.RAW, raw)
    if 3 not in [r[0] for r in records]:
        with pytest.raises(SettingRefused):
            prepare(s, f"{'trip' if trips else 'alarm'}@{threshold}", reported, None)
        return
    out = prepare(s, f"{'trip' if trips else 'alarm'}@{threshold}", reported, None).datapoint.raw
    i = [r[0] for r in records].index(3) * 4
    assert out[:i] == raw[:i] and out[i + 4:] == raw[i + 4:]
    assert out[i:i + 4] == bytes((3, int(trips))) + threshold.to_bytes(2, "big")


# ---- the command path, against the simulated meter -----------------------------------------

def finished(events: list[object]) -> list[CommandFinished]:
    return [e for e in events if isinstance(e, CommandFinished)]


def writes_sent(link: OfflineLink, dpid: int) -> list[DataPoint]:
    out = []
    for f in link.sim.frames_received:
        if f.command == Command.DP_COMMAND:
            out += [dp for dp in decode_datapoints(f.payload)[0] if dp.id == dpid]
    return out


def online_link(read_only: bool = False) -> OfflineLink:
    link = OfflineLink(read_only=read_only)
    link.run(10)
    assert link.machine.online
    return link


def test_a_write_is_confirmed_only_by_the_meters_report_of_the_written_value() -> None:
    link = online_link()
    m = link.machine
    m.request_setting("over_voltage_threshold", "265", link.now, link.wall(), CommandSource.CLI)
    assert next(s for s in m.settings() if s.name == "over_voltage_threshold").writing == 265
    (done,) = finished(link.run(3))
    assert done.result is CommandResult.CONFIRMED and done.source is CommandSource.CLI
    assert done.setting is not None and (done.setting.old, done.setting.new, done.setting.reported) == (275, 265, 265)
    assert link.sim.values[101] == 265
    assert next(s for s in m.settings() if s.name == "over_voltage_threshold").value == 265


def test_a_meter_that_reports_another_value_has_not_confirmed_and_its_value_is_what_it_reports() -> None:
    link = online_link()
    real_apply = link.sim._apply
    link.sim._apply = lambda dp: real_apply(value_dp(101, 280) if dp.id == 101 else dp)  # type: ignore[method-assign]
    link.machine.request_setting("over_voltage_threshold", "265", link.now, link.wall())
    (done,) = finished(link.run(3))
    assert done.result is CommandResult.UNCONFIRMED and "the meter reports 280 V" in done.message
    assert next(s for s in link.machine.settings() if s.name == "over_voltage_threshold").value == 280


def test_an_unconfirmed_write_makes_the_value_unknown_and_the_same_write_is_sent_again() -> None:
    link = online_link()
    real_apply = link.sim._apply
    link.sim._apply = lambda dp: None if dp.id == 104 else real_apply(dp)  # type: ignore[method-assign]
    m = link.machine
    m.request_setting("leakage_threshold", "20", link.now, link.wall())
    (done,) = finished(link.run(5))
    assert done.result is CommandResult.UNCONFIRMED and "did not confirm" in done.message
    state = next(s for s in m.settings() if s.name == "leakage_threshold")
    assert state.value is None and state.text == "unknown"  # never the old 50 mA
    assert "leakage_threshold" not in m.meter.values
    link.sim._apply = real_apply  # type: ignore[method-assign]
    # the same value again is sent, not skipped as "already 20": the value is unknown, its type is not
    m.request_setting("leakage_threshold", "20", link.now, link.wall())
    (again,) = finished(link.run(3))
    assert again.result is CommandResult.CONFIRMED and again.setting is not None and again.setting.old is None
    assert len(writes_sent(link, 104)) == 2 and link.sim.values[104] == 20


def test_refusals_send_nothing_and_are_events_too() -> None:
    link = online_link()
    m = link.machine
    cases = (("over_voltage_threshold", "320", "out of range"), ("nonesuch", "1", "not a writable setting"),
             ("leakage_threshold", "40", "electric shock"))
    for name, text, why in cases:
        with pytest.raises(CommandRefused, match=why):
            m.request_setting(name, text, link.now, link.wall(), CommandSource.MQTT)
    refused = finished(m.events())
    assert [e.result for e in refused] == [CommandResult.REFUSED] * 3
    assert refused[2].setting is not None and refused[2].setting.weakening
    with pytest.raises(WeakeningRefused):
        m.request_setting("leakage_threshold", "40", link.now, link.wall())
    link.run(2)
    assert writes_sent(link, 101) == [] and writes_sent(link, 104) == []
    m.request_setting("leakage_threshold", "40", link.now, link.wall(), allow_weakening=True)
    (done,) = finished(link.run(3))
    assert done.ok and done.setting is not None and done.setting.weakening


def test_read_only_refuses_every_write() -> None:
    link = online_link(read_only=True)
    with pytest.raises(CommandRefused, match="read-only mode: settings are not written"):
        link.machine.request_setting("over_voltage_threshold", "265", link.now, link.wall())
    with pytest.raises(CommandRefused, match="read-only"):
        link.machine.prepare_setting("alarm_mute", "on")
    link.run(2)
    assert writes_sent(link, 101) == []


def test_writes_queue_one_at_a_time_in_order() -> None:
    link = online_link()
    m = link.machine
    for name, text in (("over_voltage_threshold", "260"), ("under_voltage_threshold", "180"), ("alarm_mute", "on")):
        m.request_setting(name, text, link.now, link.wall())
    done = finished(link.run(6))
    assert [e.setting.name for e in done if e.setting] == ["over_voltage_threshold", "under_voltage_threshold",
                                                           "alarm_mute"]
    assert all(e.ok for e in done)
    sent = [f for f in link.sim.frames_received if f.command == Command.DP_COMMAND]
    assert [decode_datapoints(f.payload)[0][0].id for f in sent] == [101, 102, 105]


def test_a_write_cut_off_by_an_mcu_restart_is_not_sent_again_after_the_new_start_up() -> None:
    link = online_link()
    real_apply = link.sim._apply
    link.sim._apply = lambda dp: None if dp.id == 101 else real_apply(dp)  # type: ignore[method-assign]
    link.machine.request_setting("over_voltage_threshold", "265", link.now, link.wall())
    link.run(0.5)
    link.sim.reboot(link.now)
    events = link.run(30)
    assert any(isinstance(e, CommandFinished) and not e.ok for e in events)
    assert link.machine.online and len(writes_sent(link, 101)) == 1  # never resent by itself


# ---- trips ------------------------------------------------------------------------------------

def test_an_uncommanded_off_with_new_fault_bits_is_a_trip_and_a_commanded_one_is_not() -> None:
    t0 = datetime(2026, 12, 1, 14, 2, 31, tzinfo=UTC)
    d = TripDetector()
    assert d.observe(t0, True, ("ov_vol",), False) is None  # faults already set at the start: no trip
    assert d.observe(t0 + timedelta(seconds=1), True, ("ov_vol",), False) is None
    trip = d.observe(t0 + timedelta(seconds=2), False, ("ov_vol", "ov_cr"), False)
    assert isinstance(trip, Tripped) and trip.reasons == ("ov_cr",)
    assert trip.text == "tripped: ov_cr, 14:02:33"
    d2 = TripDetector()
    d2.observe(t0, True, (), False)
    assert d2.observe(t0 + timedelta(seconds=1), False, (), True) is None  # tuimeter switched it off
    d3 = TripDetector()
    d3.observe(t0, True, (), False)
    assert d3.observe(t0 + timedelta(seconds=1), False, (), False) is None  # off, no fault yet…
    late = d3.observe(t0 + timedelta(seconds=3), False, ("leakagecurr_alarm",), False)
    assert late is not None and late.reasons == ("leakagecurr_alarm",)  # …the faults a moment later
    d4 = TripDetector()
    d4.observe(t0, True, (), False)
    d4.observe(t0 + timedelta(seconds=1), False, (), False)
    assert d4.observe(t0 + timedelta(seconds=20), False, ("ov_cr",), False) is None  # too far apart


@pytest.mark.parametrize(("fault", "reason"), [("surge_at", "ov_vol"), ("sag_at", "undervoltage_alarm"),
                                               ("overload_at", "ov_cr"), ("leak_at", "leakagecurr_alarm")])
def test_each_of_the_simulated_meters_protections_is_reported_as_a_trip_with_its_reason(fault: str,
                                                                                      reason: str) -> None:
    link = online_link()
    link.sim.plan = FaultPlan.parse(f"{fault}={link.now + 1:g}")
    trips = [e for e in link.run(10) if isinstance(e, Tripped)]
    assert [t.reasons for t in trips] == [(reason,)]
    assert link.machine.meter.values.get("relay") is False


def test_the_settings_page_lists_every_setting_of_every_shipped_profile() -> None:
    from pathlib import Path

    from tuimeter.core.profile import shipped_profiles

    page = (Path(__file__).parent.parent / "docs" / "settings.md").read_text()
    missing = [(p, s.name) for p in shipped_profiles() for s in load_profile(p).settings if f"`{s.name}`" not in page]
    assert not missing
