"""The simulated meter's writable settings: type and range of each (one table), the alarm-set records.

Sources: /work/shared/reference/meter-settings.md §1–§3 and din-meter-datapoints.md §3–§5.3. A write of
another type, outside its range, or of a read-only dp is dropped without a report, as the SDK drops a dp
it cannot use: only the meter's echo tells the host what it accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tuimeter.core.datapoints import DPType, DPValue

RECORD = 4  # alarm-set record: [code][action 01 trip / 00 alarm only][threshold u16 BE]
ACTIONS = (0x00, 0x01)  # alarm only, trip


@dataclass(frozen=True, slots=True)
class Writable:
    """One writable dp: its wire type, the inclusive range of a value dp, the per-code threshold ranges
    of an alarm set (a raw list of records)."""

    type: DPType
    low: int = 0
    high: int = 0
    codes: Mapping[int, tuple[int, int]] = field(default_factory=dict)


BOOL = Writable(DPType.BOOL)

WRITABLE: Mapping[str, Mapping[int, Writable]] = {
    # EARU EAMPDW-TY63, pid r9kg2g1uhhyicycb (its cloudcutter schema)
    "10byte": {
        11: BOOL,  # prepaid mode
        12: BOOL,  # clear energy
        14: Writable(DPType.VALUE, 0, 999_999),  # top-up, ×0.01 kWh
        16: BOOL,  # relay
        101: Writable(DPType.VALUE, 250, 300),  # over-voltage trip, V
        102: Writable(DPType.VALUE, 150, 190),  # under-voltage trip, V
        103: Writable(DPType.VALUE, 1, 63),  # over-current trip, A
        104: Writable(DPType.VALUE, 10, 100),  # leakage trip, mA
        105: BOOL,  # alarm mute
    },
    # TOMZN TOMPD-63WIFI, pid wcihaluccfsoayqa; alarm-set ranges are the SWC33v2 figures
    "8byte": {
        11: BOOL,
        12: BOOL,
        14: Writable(DPType.VALUE, 0, 99_999),  # top-up, ×0.1 kWh on TOMPD
        16: BOOL,
        17: Writable(DPType.RAW, codes={
            1: (0, 0),  # short circuit: threshold unused
            3: (1, 30),  # overload, kW
            4: (10, 99),  # leakage, mA
            5: (10, 85),  # over-temperature, °C
        }),
        18: Writable(DPType.RAW, codes={
            1: (1, 80),  # over-current, A
            # over-voltage, V: the references give no range; the EMS/WDYK dp 101 range is assumed
            3: (230, 300),
            # under-voltage, V: SWC33v2 says 120–300, but an under-voltage trip at or above the nominal
            # 230 V would open the relay on healthy mains; capped at 210, the highest dp 102 maximum seen
            4: (120, 210),
            8: (1, 210),  # low prepaid balance, kWh (a report interval on some models)
        }),
        104: Writable(DPType.VALUE, 1, 30),  # protection time, s (all protections)
        105: Writable(DPType.VALUE, 1, 500),  # recovery time, s
    },
}


def accepts(setting: Writable, value: DPValue) -> bool:
    """Whether the meter takes this value (the type was checked already). An alarm set is taken when
    its length is a whole number of records; its records are checked one by one by merge_records."""
    if setting.type is DPType.VALUE:
        return isinstance(value, int) and setting.low <= value <= setting.high
    if setting.type is DPType.RAW:
        return isinstance(value, bytes) and len(value) % RECORD == 0
    return True


def records(buffer: bytes) -> dict[int, bytes]:
    """An alarm set's records by code, in buffer order (a repeated code: the last one counts)."""
    return {buffer[i]: buffer[i:i + RECORD] for i in range(0, len(buffer) - RECORD + 1, RECORD)}


def record_valid(record: bytes, codes: Mapping[int, tuple[int, int]]) -> bool:
    if record[0] not in codes or record[1] not in ACTIONS:
        return False
    low, high = codes[record[0]]
    return low <= int.from_bytes(record[2:4], "big") <= high


def merge_records(old: bytes, written: bytes, codes: Mapping[int, tuple[int, int]]) -> bytes:
    """Apply a written alarm set record by record, by code: a valid record replaces the one with its
    code (or is added); an invalid one (unknown code or action, threshold out of range) leaves the old.
    Codes the write leaves out keep their records: a partial write never drops a protection."""
    merged = records(old)
    for code, record in records(written).items():
        if record_valid(record, codes):
            merged[code] = record
    return b"".join(merged.values())


def threshold(buffer: bytes, code: int) -> tuple[int, bool] | None:
    """(threshold, trips) of the record with this code, or None when the set has none."""
    record = records(buffer).get(code)
    if record is None:
        return None
    return int.from_bytes(record[2:4], "big"), record[1] == 0x01
