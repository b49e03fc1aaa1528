"""Datapoint codec: all six types, validation both ways."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuimeter.core.datapoints import (
    DataPoint,
    DatapointError,
    DPType,
    decode_datapoints,
    encode_datapoints,
    make_datapoint,
)


def test_decode_each_type() -> None:
    payload = bytes.fromhex(
        "060000020102"  # raw
        "10010001 01"  # bool
        "01020004 FFFFFED4"  # value -300 (ESPHome #11631)
        "13030003 414243"  # string
        "65040001 07"  # enum
        "09050004 00000009"  # bitmap, 4 bytes
        .replace(" ", "")
    )
    dps, problems = decode_datapoints(payload)
    assert problems == []
    assert [(d.id, d.type, d.value) for d in dps] == [
        (6, DPType.RAW, b"\x01\x02"),
        (16, DPType.BOOL, True),
        (1, DPType.VALUE, -300),
        (19, DPType.STRING, "ABC"),
        (101, DPType.ENUM, 7),
        (9, DPType.BITMAP, 9),
    ]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("1001000201 00", "bool must be 1 byte"),
        ("01020002 0001", "value must be 4 bytes"),
        ("09050003 000000", "bitmap must be 1, 2 or 4 bytes"),
        ("65040000", "enum must be 1 byte"),
    ],
)
def test_wrong_length_for_type_is_rejected_and_decoding_goes_on(payload: str, problem: str) -> None:
    good = "1001000100"
    dps, problems = decode_datapoints(bytes.fromhex((payload + good).replace(" ", "")))
    assert [d.id for d in dps] == [16]  # the unit after the bad one still decodes
    assert problem in problems[0]


def test_truncated_unit_stops_decoding() -> None:
    dps, problems = decode_datapoints(bytes.fromhex("1001000100" + "06000010" + "0102"))
    assert [d.id for d in dps] == [16]
    assert "exceeds" in problems[0]


def test_unknown_type_stops_decoding() -> None:
    dps, problems = decode_datapoints(bytes.fromhex("10090001 00 1001000101".replace(" ", "")))
    assert dps == []
    assert "unknown type 9" in problems[0]


def test_truncated_header() -> None:
    _, problems = decode_datapoints(b"\x10\x01")
    assert "truncated" in problems[0]


@pytest.mark.parametrize(
    ("dptype", "value"),
    [
        (DPType.BOOL, 1),
        (DPType.VALUE, 2**31),
        (DPType.VALUE, -(2**31) - 1),
        (DPType.ENUM, 256),
        (DPType.BITMAP, -1),
        (DPType.BITMAP, 2**32),
        (DPType.RAW, "text"),
        (DPType.STRING, b"bytes"),
        (DPType.VALUE, True),
    ],
)
def test_encode_refuses_values_that_do_not_fit(dptype: DPType, value: object) -> None:
    with pytest.raises(DatapointError):
        make_datapoint(16, dptype, value)  # type: ignore[arg-type]


def test_bitmap_picks_shortest_width_unless_told() -> None:
    assert make_datapoint(9, DPType.BITMAP, 9).raw == b"\x09"
    assert make_datapoint(9, DPType.BITMAP, 0x100).raw == b"\x01\x00"
    assert make_datapoint(9, DPType.BITMAP, 0x10000).raw == b"\x00\x01\x00\x00"
    assert make_datapoint(9, DPType.BITMAP, 8, length=4).raw == b"\x00\x00\x00\x08"


def test_relay_write_matches_reference_bytes() -> None:
    assert make_datapoint(16, DPType.BOOL, True).encode() == bytes.fromhex("1001000101")
    assert make_datapoint(104, DPType.VALUE, 30).encode() == bytes.fromhex("680200040000001E")


values_for_type = {
    DPType.RAW: st.binary(max_size=40),
    DPType.BOOL: st.booleans(),
    DPType.VALUE: st.integers(-(2**31), 2**31 - 1),
    DPType.STRING: st.text(max_size=30),
    DPType.ENUM: st.integers(0, 255),
    DPType.BITMAP: st.integers(0, 2**32 - 1),
}

dp_st = st.sampled_from(list(DPType)).flatmap(
    lambda t: st.builds(make_datapoint, st.integers(0, 255), st.just(t), values_for_type[t])
)


@settings(max_examples=300, deadline=None)
@given(st.lists(dp_st, max_size=6))
def test_encode_decode_round_trip(dps: list[DataPoint]) -> None:
    decoded, problems = decode_datapoints(encode_datapoints(dps))
    assert problems == []
    assert decoded == dps


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100))
def test_any_payload_decodes_without_raising(payload: bytes) -> None:
    dps, _ = decode_datapoints(payload)
    assert sum(4 + len(d.raw) for d in dps) <= len(payload)
