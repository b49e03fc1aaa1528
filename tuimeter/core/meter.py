"""The meter's state as the host knows it: the latest value of every dp, and immutable Readings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tuimeter.core.datapoints import DataPoint, DPType
from tuimeter.core.profile import Profile, Scalar


@dataclass(frozen=True, slots=True)
class Reading:
    """What the meter measured, built from the latest values. None = not reported yet."""

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


_READING_FIELDS = {
    "voltage": "voltage_v",
    "current": "current_a",
    "power": "power_w",
    "energy": "energy_kwh",
    "leakage": "leakage_ma",
    "relay": "relay",
    "faults": "faults",
}


@dataclass(frozen=True, slots=True)
class DatapointView:
    """A dp as the user sees it: id, type, name from the profile (if known) and value text."""

    id: int
    type: DPType
    name: str | None
    text: str
    dp: DataPoint


class MeterState:
    """Latest values. Unknown datapoints are kept and shown by id/type/value, never dropped."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.dps: dict[int, DataPoint] = {}
        self.values: dict[str, Scalar] = {}

    def apply(self, dp: DataPoint) -> dict[str, Scalar]:
        """Store a dp; return the role values it set."""
        self.dps[dp.id] = dp
        spec = self.profile.dps.get(dp.id)
        if spec is None or spec.type is not dp.type:
            return {}  # unknown or type mismatch: kept raw, never guessed at
        values = spec.decode(dp)
        self.values.update(values)
        return values

    def reading(self, ts: datetime) -> Reading:
        v = self.values
        fields: dict[str, Any] = {attr: v.get(role) for role, attr in _READING_FIELDS.items()}
        return Reading(ts=ts, **fields)

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
