"""The meter's state as the host knows it: the latest value of every dp, and immutable Readings."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from tuimeter.core.datapoints import DataPoint, DPType, decode_value
from tuimeter.core.profile import Profile, Scalar


class Reading(NamedTuple):
    """What the meter measured, built from the latest values. None = not reported yet. (A NamedTuple:
    immutable, and built once per read of the port, where a frozen dataclass cost more than a frame.)"""

    ts: datetime
    voltage_v: float | None = None
    current_a: float | None = None
    power_w: float | None = None
    energy_kwh: float | None = None
    leakage_ma: float | None = None
    relay: bool | None = None
    faults: tuple[str, ...] | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "type": "reading",
            "ts": self.ts.isoformat(timespec="milliseconds"),
            "voltage_v": self.voltage_v,
            "current_a": self.current_a,
            "power_w": self.power_w,
            "energy_kwh": self.energy_kwh,
            "leakage_ma": self.leakage_ma,
            "relay": self.relay,
            "faults": list(self.faults) if self.faults is not None else None,
        }


_unit_header = operator.itemgetter(slice(0, 4))  # a dp unit's id, type and length


def _shape(item: DataPoint | bytes) -> tuple[int, int]:
    """Type and value length of a kept report."""
    return (item[1], len(item) - 4) if isinstance(item, bytes) else (item.type, len(item.raw))


_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__: the same tuple, faster


@dataclass(frozen=True, slots=True)
class DatapointView:
    """A dp as the user sees it: id, type, name from the profile (if known) and value text."""

    id: int
    type: DPType
    name: str | None
    text: str
    dp: DataPoint


class MeterState:
    """Latest values. Unknown datapoints are kept and shown by id/type/value, never dropped.

    Reports are kept as they come and decoded when the state is next read: a fast meter sends
    several reports of a dp per read of the port, and only the newest reaches a Reading."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._dps: dict[int, DataPoint] = {}
        self._values: dict[str, Scalar] = {}
        # newest report of each dp not decoded yet, in the order they came (so that two dps giving
        # the same value end as they would one by one): a DataPoint, or the bytes of one raw or
        # 4-byte value unit
        self._pending: dict[int, DataPoint | bytes] = {}
        self._reported: set[str] = set()  # keys set since take_reported()
        self._alarm_ids = frozenset(spec.id for spec in profile.dps.values() if spec.alarms)

    @property
    def dps(self) -> dict[int, DataPoint]:
        """Every dp seen: its latest report."""
        if self._pending:
            self._decode_pending()
        return self._dps

    @property
    def values(self) -> dict[str, Scalar]:
        """Role (or name) → value, from every dp so far."""
        if self._pending:
            self._decode_pending()
        return self._values

    def store(self, dp: DataPoint) -> None:
        """Keep a dp; it is decoded when the state is next read."""
        self._keep(dp.id, dp, (dp.type, len(dp.raw)))

    def store_raw_units(self, units: list[bytes]) -> None:
        """Keep reports that are one dp unit each, raw or a 4-byte value (`id type len len value`,
        checked by the caller)."""
        last = units[-1]
        if len(set(map(_unit_header, units))) == 1 and last[0] not in self._alarm_ids:
            # one dp, one shape (a streaming meter): the newest is all that counts
            self._keep(last[0], last, (last[1], len(last) - 4))
            return
        for unit in units:
            self._keep(unit[0], unit, (unit[1], len(unit) - 4))

    def _keep(self, dpid: int, item: DataPoint | bytes, shape: tuple[int, int]) -> None:
        """A report replaces the pending one of its dp only where decoding both in turn would end the
        same: its dp is the newest pending (the first-arrival order of dps and values is kept), it has
        the same type and length (it sets the same keys), and it is no alarm set (whose keys follow its
        records). Otherwise what is pending is decoded first."""
        pending = self._pending
        prev = pending.get(dpid)
        if prev is not None and (next(reversed(pending)) != dpid or _shape(prev) != shape
                                 or dpid in self._alarm_ids):
            self._decode_pending()
            pending = self._pending
        pending[dpid] = item

    def apply(self, dp: DataPoint) -> dict[str, Scalar]:
        """Keep a dp and decode it now; return the role values it set."""
        if self._pending:
            self._decode_pending()
        self._dps[dp.id] = dp
        return self._decode(dp)

    def take_reported(self) -> set[str]:
        """The keys the meter has set since the last call."""
        if self._pending:
            self._decode_pending()
        reported, self._reported = self._reported, set()
        return reported

    def _decode_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if isinstance(item, bytes):  # a raw or 4-byte value unit, valid by its shape
                dptype, raw = DPType(item[1]), item[4:]
                dp = _new_tuple(DataPoint, (item[0], dptype, decode_value(dptype, raw), raw))
            else:
                dp = item
            self._dps[dp.id] = dp
            self._decode(dp)

    def _decode(self, dp: DataPoint) -> dict[str, Scalar]:
        spec = self.profile.dps.get(dp.id)
        if spec is None or spec.type is not dp.type:
            return {}  # unknown or type mismatch: kept raw, never guessed at
        values = spec.decode(dp)
        self._values.update(values)
        self._reported.update(values)
        return values

    def reading(self, ts: datetime) -> Reading:
        g = self.values.get
        return _new_tuple(Reading, (ts, g("voltage"), g("current"), g("power"), g("energy"), g("leakage"),
                                    g("relay"), g("faults")))

    def view(self, dp: DataPoint) -> DatapointView:
        spec = self.profile.dps.get(dp.id)
        if spec is None:
            return DatapointView(dp.id, dp.type, None, f"dp {dp.id} {dp.type.label} {dp.display()}", dp)
        if spec.type is not dp.type:
            text = f"dp {dp.id} {spec.name}: type {dp.type.label}, profile says {spec.type.label}: {dp.display()}"
            return DatapointView(dp.id, dp.type, spec.name, text, dp)
        return DatapointView(dp.id, dp.type, spec.name, f"dp {dp.id} {spec.describe(dp)}", dp)

    def views(self) -> list[DatapointView]:
        return [self.view(dp) for _, dp in sorted(self.dps.items())]
