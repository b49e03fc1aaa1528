"""The meter's state as the host knows it: the latest value of every dp, and immutable Readings."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from tuimeter.core.datapoints import DataPoint, DPType
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


_unit_id = operator.itemgetter(0)  # a dp unit's first byte: its id
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
        pending = self._pending
        if dp.id in pending:
            del pending[dp.id]  # re-inserted last: the order of arrival is kept
        pending[dp.id] = dp

    def store_raw_units(self, units: list[bytes]) -> None:
        """Keep reports that are one dp unit each, raw or a 4-byte value (`id type len len value`,
        checked by the caller)."""
        latest = dict(zip(map(_unit_id, units), units, strict=True))  # the newest of each dp, at C speed
        if len(latest) > 1:  # several dps: keep their order of arrival exactly
            latest = {}
            for unit in units:
                if unit[0] in latest:
                    del latest[unit[0]]
                latest[unit[0]] = unit
        pending = self._pending
        for dpid, unit in latest.items():
            if dpid in pending:
                del pending[dpid]  # re-inserted last: the order of arrival is kept
            pending[dpid] = unit

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
        specs, dps = self.profile.dps, self._dps
        for item in pending.values():
            if isinstance(item, bytes):
                raw = item[4:]
                if item[1] == DPType.VALUE:
                    value = int.from_bytes(raw, "big", signed=True)
                    dp = dps[item[0]] = _new_tuple(DataPoint, (item[0], DPType.VALUE, value, raw))
                    self._decode(dp)
                    continue
                dp = dps[item[0]] = _new_tuple(DataPoint, (item[0], DPType.RAW, raw, raw))
                spec = specs.get(dp.id)
                if spec is not None and spec.fields and spec.type is DPType.RAW:  # phase_a: straight to its fields
                    values = spec.decode_fields(raw)
                    self._values.update(values)
                    self._reported.update(values)
                    continue
            else:
                dp = dps[item.id] = item
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
