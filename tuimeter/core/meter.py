"""The meter's state as the host knows it: the latest value of every dp, and immutable Readings."""

from __future__ import annotations

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


def _number(v: Scalar | None) -> float | None:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


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

    Reports are kept as they come and decoded, in arrival order, when the state is next read (once
    per read of the port, when its Reading is built). Every value comes from a stored report, so
    forgetting a value forgets its report too: only a new report from the meter brings it back."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._dps: dict[int, DataPoint] = {}
        self._values: dict[str, Scalar] = {}
        self._pending: list[DataPoint] = []  # reports not decoded yet, in the order they came
        self._reported: set[str] = set()  # keys set since take_reported()
        self._alarm_ids = frozenset(spec.id for spec in profile.dps.values() if spec.alarms)
        self._types: dict[int, DPType] = {}  # each dp's wire type as reported: kept when a value is forgotten

    @property
    def dps(self) -> dict[int, DataPoint]:
        """Every dp seen: its latest report."""
        if self._pending:
            self._decode_pending()
        return self._dps

    @property
    def values(self) -> dict[str, Scalar]:
        """Role (or name) → value, from every dp so far. Read it; change it only through forget()."""
        if self._pending:
            self._decode_pending()
        return self._values

    def store(self, dp: DataPoint) -> None:
        """Keep a report; it is decoded when the state is next read. A report right after one of the same
        dp, type and length sets exactly the keys that one set, in the same place: it takes its place
        (a streaming meter's run of dp 6 reports in one read is decoded once). Alarm sets are kept
        whole: their keys follow their records."""
        pending = self._pending
        if pending:
            last = pending[-1]
            if (last.id == dp.id and last.type is dp.type and len(last.raw) == len(dp.raw)
                    and dp.id not in self._alarm_ids):
                pending[-1] = dp
                return
        pending.append(dp)

    def apply(self, dp: DataPoint) -> dict[str, Scalar]:
        """Keep a report and decode it now; return the values it set."""
        if self._pending:
            self._decode_pending()
        self._dps[dp.id] = dp
        self._types[dp.id] = dp.type
        return self._decode(dp)

    def forget(self, key: str) -> Scalar | None:
        """Make a value unknown: the report it came from goes too, with every value that report set,
        so nothing (a re-decode through another profile included) can bring it back but a new report.
        Returns the value forgotten, or None."""
        if self._pending:
            self._decode_pending()
        before = self._values.pop(key, None)
        for dpid, dp in list(self._dps.items()):
            spec = self.profile.dps.get(dpid)
            if spec is not None and spec.type is dp.type and key in (values := spec.decode(dp)):
                del self._dps[dpid]
                for k in values:
                    self._values.pop(k, None)
        return before

    def type_of(self, dpid: int) -> DPType | None:
        """The wire type the meter reported this dp with (still known after its value is forgotten)."""
        if self._pending:
            self._decode_pending()
        return self._types.get(dpid)

    @property
    def types(self) -> dict[int, DPType]:
        """Each dp's wire type as reported (kept when its value is forgotten). Read it, do not change it."""
        if self._pending:
            self._decode_pending()
        return self._types

    def note_type(self, dpid: int, dptype: DPType) -> None:
        """A dp's wire type known without its value (an attached viewer is told it by the service)."""
        self._types[dpid] = dptype

    def forget_dp(self, dpid: int) -> None:
        """Make every value of a dp unknown (a write to it went unconfirmed): its report goes."""
        if self._pending:
            self._decode_pending()
        dp = self._dps.pop(dpid, None)
        spec = self.profile.dps.get(dpid)
        if dp is not None and spec is not None and spec.type is dp.type:
            for k in spec.decode(dp):
                self._values.pop(k, None)

    def take_reported(self) -> set[str]:
        """The keys the meter has set since the last call."""
        if self._pending:
            self._decode_pending()
        reported, self._reported = self._reported, set()
        return reported

    def _decode_pending(self) -> None:
        pending, self._pending = self._pending, []
        for dp in pending:
            self._dps[dp.id] = dp
            self._types[dp.id] = dp.type
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
        relay, faults = g("relay"), g("faults")
        return Reading(ts, _number(g("voltage")), _number(g("current")), _number(g("power")), _number(g("energy")),
                       _number(g("leakage")), relay if isinstance(relay, bool) else None,
                       faults if isinstance(faults, tuple) else None)

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
