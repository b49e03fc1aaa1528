"""Datapoint (DP) units: `dpid(1) type(1) len(u16 BE) value`, decoded and encoded with validation."""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class DPType(IntEnum):
    RAW = 0
    BOOL = 1
    VALUE = 2
    STRING = 3
    ENUM = 4
    BITMAP = 5

    @property
    def label(self) -> str:
        return self.name.lower()


DPValue = bytes | bool | int | str


class DatapointError(ValueError):
    """A DP unit that breaks the protocol's rules."""


class DataPoint(NamedTuple):
    """One decoded DP unit. `raw` keeps the value bytes exactly as sent. (A NamedTuple: immutable,
    and cheap to build for every report.)"""

    id: int
    type: DPType
    value: DPValue
    raw: bytes

    def display(self) -> str:
        if isinstance(self.value, bytes):
            return self.value.hex()
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if self.type is DPType.BITMAP and isinstance(self.value, int):
            return f"0x{self.value:0{2 * len(self.raw)}X}"
        return str(self.value)

    def encode(self) -> bytes:
        return bytes((self.id, self.type, len(self.raw) >> 8, len(self.raw) & 0xFF)) + self.raw


def _check_length(dptype: DPType, n: int) -> None:
    if dptype in (DPType.BOOL, DPType.ENUM) and n != 1:
        raise DatapointError(f"{dptype.label} must be 1 byte, got {n}")
    if dptype is DPType.VALUE and n != 4:
        raise DatapointError(f"value must be 4 bytes, got {n}")
    if dptype is DPType.BITMAP and n not in (1, 2, 4):
        raise DatapointError(f"bitmap must be 1, 2 or 4 bytes, got {n}")


_TYPES = tuple(DPType)  # indexed by the type byte: no enum lookup per unit


def decode_value(dptype: DPType, raw: bytes) -> DPValue:
    if dptype is DPType.RAW:  # the common case first (phase_a): no length rule to check
        return raw
    if dptype is DPType.VALUE and len(raw) == 4:  # the next most common (energy): valid by its length
        return int.from_bytes(raw, "big", signed=True)
    _check_length(dptype, len(raw))
    if dptype is DPType.BOOL:
        return raw[0] != 0  # lenient, as ESPHome: any non-zero byte is true
    if dptype is DPType.VALUE:
        return int.from_bytes(raw, "big", signed=True)
    if dptype is DPType.STRING:
        return raw.decode("utf-8", errors="replace")
    return int.from_bytes(raw, "big")  # enum, bitmap


def decode_datapoints(payload: bytes) -> tuple[list[DataPoint], list[str]]:
    """Decode every DP unit of a 0x06/0x07/0x22 payload.

    Returns the units and the problems found. A unit whose value breaks its type's rules
    is skipped; a truncated unit or an unknown type stops decoding (the rest is unframed).
    """
    end = len(payload)
    if end >= 4 and payload[1] == 0 and 4 + ((payload[2] << 8) | payload[3]) == end:
        return [DataPoint(payload[0], DPType.RAW, payload[4:], payload[4:])], []  # one raw unit: phase_a
    dps: list[DataPoint] = []
    problems: list[str] = []
    pos = 0
    while pos < end:
        if end - pos < 4:
            problems.append(f"truncated DP header at byte {pos}")
            break
        dpid, typ = payload[pos], payload[pos + 1]
        n = (payload[pos + 2] << 8) | payload[pos + 3]
        if typ > DPType.BITMAP:
            problems.append(f"dp {dpid}: unknown type {typ}")
            break
        if pos + 4 + n > end:
            problems.append(f"dp {dpid}: length {n} exceeds the {end - pos - 4} bytes left")
            break
        raw = payload[pos + 4:pos + 4 + n]
        pos += 4 + n
        dptype = _TYPES[typ]
        try:
            dps.append(DataPoint(dpid, dptype, decode_value(dptype, raw), raw))
        except DatapointError as exc:
            problems.append(f"dp {dpid}: {exc}")
    return dps, problems


def make_datapoint(dpid: int, dptype: DPType, value: DPValue, length: int | None = None) -> DataPoint:
    """Build a DP unit from a Python value, validating it for its type.

    `length` picks the bitmap width (1, 2 or 4); by default the shortest that fits, as the SDK does.
    """
    if not 0 <= dpid <= 255:
        raise DatapointError(f"dp id {dpid} is not 0..255")
    raw: bytes
    if dptype is DPType.RAW:
        if not isinstance(value, bytes | bytearray):
            raise DatapointError("raw value must be bytes")
        raw = bytes(value)
    elif dptype is DPType.BOOL:
        if not isinstance(value, bool):
            raise DatapointError("bool value must be True or False")
        raw = b"\x01" if value else b"\x00"
    elif dptype is DPType.STRING:
        if not isinstance(value, str):
            raise DatapointError("string value must be str")
        raw = value.encode("utf-8")
    else:
        if not isinstance(value, int) or isinstance(value, bool):
            raise DatapointError(f"{dptype.label} value must be an integer")
        raw = _int_bytes(dptype, value, length)
    if len(raw) > 0xFFFF:
        raise DatapointError("value longer than 65535 bytes")
    return DataPoint(dpid, dptype, decode_value(dptype, raw), raw)


def _int_bytes(dptype: DPType, value: int, length: int | None) -> bytes:
    if dptype is DPType.VALUE:
        if not -(2**31) <= value < 2**31:
            raise DatapointError(f"value {value} does not fit a signed 32-bit integer")
        return value.to_bytes(4, "big", signed=True)
    if dptype is DPType.ENUM:
        if not 0 <= value <= 255:
            raise DatapointError(f"enum {value} is not 0..255")
        return bytes((value,))
    if not 0 <= value < 2**32:
        raise DatapointError(f"bitmap {value} does not fit 32 bits")
    if length is None:
        length = 1 if value < 0x100 else 2 if value < 0x10000 else 4
    if length not in (1, 2, 4) or value >= 1 << (8 * length):
        raise DatapointError(f"bitmap {value} does not fit {length} bytes")
    return value.to_bytes(length, "big")


def encode_datapoints(dps: list[DataPoint]) -> bytes:
    return b"".join(dp.encode() for dp in dps)
