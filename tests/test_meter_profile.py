"""The meter model and device profiles: decoding by the datapoint map, readings, unknown dps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tuimeter.core.datapoints import DPType, decode_datapoints, make_datapoint
from tuimeter.core.frames import Frame
from tuimeter.core.meter import MeterState
from tuimeter.core.profile import ProfileError, load_profile, parse_profile, shipped_profiles

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def meter_with(*frames_hex: str) -> MeterState:
    m = MeterState(load_profile())
    for h in frames_hex:
        for dp in decode_datapoints(Frame.from_bytes(bytes.fromhex(h)).payload)[0]:
            m.apply(dp)
    return m


def test_obk_selftest_vector_8_byte_phase_and_energy() -> None:
    # OpenBeken selftest: 232.6 V, 153 mA, 35 W and dp1 = 3 (0.03 kWh); 8-byte form has no leakage
    m = meter_with("55AA03070014060000080916000099000023010200040000000310")
    r = m.reading(NOW)
    assert (r.voltage_v, r.current_a, r.power_w, r.energy_kwh) == (232.6, 0.153, 35, 0.03)
    assert r.leakage_ma is None


def test_ten_byte_phase_a_reads_residual_current() -> None:
    r = meter_with("55AA0307000E0600000A09BA000000000000000EF8").reading(NOW)
    assert (r.voltage_v, r.current_a, r.power_w, r.leakage_ma) == (249.0, 0.0, 0, 14)


def test_all_three_bytes_of_current_and_power_are_used() -> None:
    # 70 A and 16.1 kW would wrap if only the low 16 bits were read (Z2M's old bug)
    m = MeterState(load_profile())
    raw = (2300).to_bytes(2, "big") + (70_000).to_bytes(3, "big") + (16_100).to_bytes(3, "big") + b"\x00\x05"
    m.apply(make_datapoint(6, DPType.RAW, raw))
    r = m.reading(NOW)
    assert (r.current_a, r.power_w) == (70.0, 16100)


def test_fault_bitmap_names() -> None:
    m = MeterState(load_profile())
    m.apply(make_datapoint(9, DPType.BITMAP, 0x00000009, length=4))  # vendor example: bits 0 and 3
    assert m.reading(NOW).faults == ("short_circuit_alarm", "leakagecurr_alarm")
    m.apply(make_datapoint(9, DPType.BITMAP, 1 << 16 | 1 << 20, length=4))
    assert m.reading(NOW).faults == ("no_balance_alarm", "fault_bit_20")
    m.apply(make_datapoint(9, DPType.BITMAP, 0, length=4))
    assert m.reading(NOW).faults == ()


def test_profile_names_all_17_fault_bits() -> None:
    assert len(load_profile().dps[9].bits) == 17


def test_relay_energy_leakage_dp15_and_device_values() -> None:
    m = MeterState(load_profile())
    for dp in (
        make_datapoint(16, DPType.BOOL, False),
        make_datapoint(1, DPType.VALUE, 123456),
        make_datapoint(15, DPType.VALUE, 12),
        make_datapoint(19, DPType.STRING, "FSE-F723C558128885"),
        make_datapoint(104, DPType.VALUE, 30),
        make_datapoint(105, DPType.BOOL, True),
    ):
        m.apply(dp)
    r = m.reading(NOW)
    assert (r.relay, r.energy_kwh, r.leakage_ma) == (False, 1234.56, 12)
    assert m.values["breaker_id"] == "FSE-F723C558128885"
    assert m.values["leakage_threshold"] == 30
    assert m.values["mute"] is True


def test_unknown_datapoint_is_kept_and_shown_by_id_type_value() -> None:
    m = MeterState(load_profile())
    m.apply(make_datapoint(200, DPType.VALUE, 42))
    m.apply(make_datapoint(34, DPType.RAW, b"\xab\xcd"))
    texts = [v.text for v in m.views()]
    assert texts == ["dp 34 raw abcd", "dp 200 value 42"]
    assert m.reading(NOW).voltage_v is None


def test_type_mismatch_is_kept_raw_not_guessed() -> None:
    m = MeterState(load_profile())
    m.apply(make_datapoint(16, DPType.VALUE, 1))  # relay as a value: not what the profile says
    assert m.reading(NOW).relay is None
    assert "profile says bool" in m.views()[0].text


def test_reading_record_has_the_documented_fields() -> None:
    r = meter_with("55AA0307000E0600000A097400006400001B000023").reading(NOW)
    rec = r.as_record()
    assert list(rec) == ["type", "ts", "voltage_v", "current_a", "power_w", "energy_kwh", "leakage_ma",
                         "relay", "faults"]
    assert rec["ts"] == "2026-11-24T12:00:00.000+00:00"
    assert (rec["voltage_v"], rec["current_a"], rec["power_w"]) == (242.0, 0.1, 27)


def test_shipped_profile_listed() -> None:
    assert "earu-2p63a" in shipped_profiles()


def test_profile_from_file(tmp_path: Path) -> None:
    f = tmp_path / "plug.toml"
    f.write_text('name = "plug"\n[[dp]]\nid = 20\nname = "voltage"\ntype = "value"\nrole = "voltage"\n'
                 'scale = 0.1\nunit = "V"\n')
    m = MeterState(load_profile(str(f)))
    m.apply(make_datapoint(20, DPType.VALUE, 2301))
    assert m.reading(NOW).voltage_v == 230.1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = ", "not valid TOML"),
        ('title = "x"', "missing key 'name'"),
        ('name = "x"\n[[dp]]\nid = 1\nname = "a"\ntype = "float"', "type 'float'"),
        ('name = "x"\n[[dp]]\nid = 1\nname = "a"\ntype = "value"\nrole = "volts"', "role 'volts'"),
        ('name = "x"\n[[dp]]\nid = 300\nname = "a"\ntype = "value"', "not 0..255"),
        ('name = "x"\n[[dp]]\nid = 1\nname = "a"\ntype = "bool"\n[[dp]]\nid = 1\nname = "b"\ntype = "bool"',
         "listed twice"),
    ],
)
def test_broken_profile_gives_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(text, "broken.toml")


def test_unknown_profile_name_lists_shipped_ones() -> None:
    with pytest.raises(ProfileError, match="earu-2p63a"):
        load_profile("no-such-meter")


# ---- dp 17/18 alarm sets: 4-byte records [id][action][threshold u16] ----------------------

def test_alarm_sets_decode_the_vendor_examples_by_id() -> None:
    # cloudcutter #72: set 1 = short circuit → trip, overload → trip at 20 kW;
    # set 2 = over-current → trip at 60 A, over-voltage → trip at 245 V
    m = MeterState(load_profile("tompd-63"))
    m.apply(make_datapoint(17, DPType.RAW, bytes.fromhex("0101000003010014")))
    m.apply(make_datapoint(18, DPType.RAW, bytes.fromhex("0101003C030100F5")))
    assert m.values["alarm_set_1.short_circuit"] == "trip"
    assert m.values["alarm_set_1.overload"] == "trip at 20 kW"
    assert m.values["alarm_set_2.over_current"] == "trip at 60 A"
    assert m.view(m.dps[18]).text == "dp 18 alarm_set_2: over_current trip at 60 A, over_voltage trip at 245 V"


def test_alarm_records_are_walked_by_id_and_unknown_ids_and_stray_bytes_are_shown() -> None:
    m = MeterState(load_profile("tompd-63"))
    # leakage alarm-only at 30 mA first, then an id no source names, then 2 bytes that are no record
    dp = make_datapoint(17, DPType.RAW, bytes.fromhex("0400001E" "0C010007" "ABCD"))
    m.apply(dp)
    assert m.view(dp).text == ("dp 17 alarm_set_1: leakage alarm only at 30 mA, alarm_12 trip at 7, "
                               "2 stray bytes abcd")


def test_alarms_on_a_non_raw_dp_is_a_profile_error() -> None:
    with pytest.raises(ProfileError, match="alarms describe a raw list"):
        parse_profile('name = "x"\n[[dp]]\nid = 17\nname = "a"\ntype = "value"\n'
                      'alarms = [{ id = 1, name = "short" }]', "broken.toml")
