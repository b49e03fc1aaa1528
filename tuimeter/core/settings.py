"""The meter's writable settings, as the profile describes them: what a person may set, in which
range, and which changes weaken protection. Pure: no I/O, no clock.

A setting is one writable dp (a number, a switch, a one-shot button, a choice) or one record of an
alarm-set dp (17/18: `[code][action 01 trip / 00 alarm only][threshold u16]`), named as `--query`
shows it (`over_voltage_threshold`, `alarm_set_2.over_voltage`). `prepare()` turns what a person typed
into the exact datapoint to send, or refuses with one line saying why; nothing is sent before it passes.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tuimeter.core.datapoints import DataPoint, DPType, make_datapoint
from tuimeter.core.errors import CommandRefused

log = logging.getLogger(__name__)

ALARM_RECORD = 4  # bytes: [code][action][threshold u16]


class SettingKind(StrEnum):
    NUMBER = "number"
    SWITCH = "switch"
    BUTTON = "button"  # a one-shot action: writes "true" (clear energy, self-test)
    CHOICE = "choice"  # an enum
    ALARM = "alarm"  # one record of an alarm set: action (trip / alarm only) and threshold


class SettingRefused(CommandRefused):
    """A write that will not be sent; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Range:
    min: float
    max: float
    step: float = 1.0

    def text(self, unit: str) -> str:
        u = f" {unit}" if unit else ""
        step = f", step {_num(self.step)}" if self.step != 1 else ""
        return f"{_num(self.min)}–{_num(self.max)}{u}{step}"


@dataclass(frozen=True, slots=True)
class Weakening:
    """When a new value weakens protection, and the risk in plain words."""

    above: float | None = None
    below: float | None = None
    alarm_only: bool = False  # an alarm record switched to "alarm only" no longer trips
    risk: str = ""

    def applies(self, value: float | None, trips: bool | None) -> bool:
        if self.alarm_only and trips is False:
            return True
        if value is None:
            return False
        return (self.above is not None and value > self.above) or (self.below is not None and value < self.below)


@dataclass(frozen=True, slots=True)
class AlarmValue:
    """One alarm record as the meter reported it (or as it is to be written)."""

    trips: bool
    threshold: float

    def text(self, unit: str) -> str:
        return f"{'trip' if self.trips else 'alarm only'} at {_num(self.threshold)}{' ' + unit if unit else ''}"


SettingValue = float | int | bool | str | AlarmValue


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    dp: int
    kind: SettingKind
    unit: str = ""
    scale: float = 1.0
    range: Range | None = None  # NUMBER and ALARM: the range for a product not listed in by_product
    by_product: dict[str, Range] = field(default_factory=dict)
    options: tuple[str, ...] = ()  # CHOICE
    code: int | None = None  # ALARM: the record's code
    weakening: Weakening | None = None
    products: tuple[str, ...] = ()  # only these product ids have it (empty: every product)
    title: str = ""  # what it does, for people

    def range_for(self, product_id: str | None) -> Range | None:
        return self.by_product.get(product_id or "", self.range)

    def available(self, product_id: str | None, reported: bool) -> bool:
        """A product-specific setting is offered where the product id says so, or the meter reports it."""
        return not self.products or reported or (product_id in self.products)

    def current(self, dp: DataPoint | None) -> SettingValue | None:
        """The value the meter last reported for this setting, or None (unknown)."""
        if dp is None:
            return None
        value = dp.value
        if self.kind is SettingKind.ALARM:
            record = find_record(dp.raw, self.code) if len(dp.raw) % ALARM_RECORD == 0 else None
            return None if record is None else AlarmValue(record[1] == 0x01, int.from_bytes(record[2:4], "big"))
        if self.kind is SettingKind.CHOICE and isinstance(value, int) and not isinstance(value, bool):
            return self.options[value] if 0 <= value < len(self.options) else str(value)
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return _scaled(value, self.scale)
        return None

    def text(self, value: SettingValue | None) -> str:
        """A value as people read it, with its unit; "unknown" for None."""
        if self.kind is SettingKind.BUTTON:
            return "(action)"
        if value is None:
            return "unknown"
        if isinstance(value, AlarmValue):
            return value.text(self.unit)
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, int | float):
            return f"{_num(value)} {self.unit}".rstrip()
        return str(value)

    def weakens(self, value: SettingValue) -> bool:
        if self.weakening is None:
            return False
        if isinstance(value, AlarmValue):
            return self.weakening.applies(value.threshold, value.trips)
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        return self.weakening.applies(number, None)


@dataclass(frozen=True, slots=True)
class SettingState:
    """A setting as a front end shows it: the meter's confirmed value, its range, a write under way."""

    setting: Setting
    value: SettingValue | None  # from the meter's last report; None: unknown
    range: Range | None  # for this product
    writing: SettingValue | None = None  # a write sent or queued, not confirmed yet: what was asked

    @property
    def name(self) -> str:
        return self.setting.name

    @property
    def text(self) -> str:
        return self.setting.text(self.value)


def states(settings: Sequence[Setting], dps: dict[int, DataPoint], product_id: str | None,
           writing: dict[str, SettingValue]) -> list[SettingState]:
    """The settings this meter has, with what it last reported for each."""
    return [SettingState(s, s.current(dps.get(s.dp)), s.range_for(product_id), writing.get(s.name))
            for s in settings if s.available(product_id, s.dp in dps)]


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """A checked write: the dp to send, what it will read as, and whether it weakens protection."""

    setting: Setting
    old: SettingValue | None
    new: SettingValue
    datapoint: DataPoint
    weakening: str | None  # the risk sentence when it weakens protection

    @property
    def summary(self) -> str:
        return f"{self.setting.name}: {self.setting.text(self.old)} → {self.setting.text(self.new)}"


# ---- what the profile says -----------------------------------------------------------------
def find(settings: Sequence[Setting], profile_name: str, name: str) -> Setting:
    """A setting by name, by dp number, or by `dp.record` (`18.over_voltage`)."""
    key = name.strip()
    for s in settings:
        if key == s.name:
            return s
    head, dot, tail = key.partition(".")
    if head.isdigit():
        dpid = int(head)
        matches = [s for s in settings if s.dp == dpid and (not dot or s.name.endswith(f".{tail}"))]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(s.name for s in matches)
            raise SettingRefused(f"dp {dpid} holds several settings; name one: {names}")
    known = ", ".join(s.name for s in settings) or "none"
    raise SettingRefused(f"{name!r} is not a writable setting of profile {profile_name} (writable: {known})")


# ---- checking and encoding a write -----------------------------------------------------------
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*([^\d\s]*)\s*$")
_TRUE = {"on", "true", "1", "yes"}
_FALSE = {"off", "false", "0", "no"}


def prepare(setting: Setting, text: str | None, reported: DataPoint | None, product_id: str | None,
            wire_type: DPType | None = None) -> PreparedWrite:
    """The datapoint that sets `setting` to what `text` says, sent with the type the meter reported
    for that dp; SettingRefused (one line, nothing sent) when anything is wrong. `reported` is the
    meter's last report of the dp (None: none, or its value is unknown since a write went unconfirmed);
    `wire_type` the type it was reported with, which outlives a forgotten value."""
    kind = reported.type if reported is not None else wire_type
    if kind is None:
        raise SettingRefused(f"the meter has not reported dp {setting.dp} ({setting.name}) yet, so the type to "
                             "send it with is unknown; nothing sent (query the meter first)")
    old = setting.current(reported)
    if setting.kind is SettingKind.ALARM:
        return _prepare_alarm(setting, text, reported, product_id)
    if setting.kind is SettingKind.NUMBER:
        number = _number_value(setting, text, product_id)
        new: SettingValue = number
        dp = _typed(setting, kind, round(number / setting.scale))
    elif setting.kind is SettingKind.SWITCH:
        new = _bool_value(setting, text)
        dp = _typed(setting, kind, new)
    elif setting.kind is SettingKind.BUTTON:
        if text not in (None, "", "press", "on", "true", "1"):
            raise SettingRefused(f"{setting.name} is a one-shot action: give it no value (--set {setting.name})")
        new = True
        dp = _typed(setting, kind, True)
    else:
        new = _choice_value(setting, text)
        dp = _typed(setting, kind, setting.options.index(str(new)))
    return PreparedWrite(setting, old, new, dp, _risk(setting, new))


def _risk(setting: Setting, new: SettingValue) -> str | None:
    if not setting.weakens(new):
        return None
    assert setting.weakening is not None
    return setting.weakening.risk or f"{setting.name} {setting.text(new)} weakens the meter's protection"


def _prepare_alarm(setting: Setting, text: str | None, reported: DataPoint | None,
                   product_id: str | None) -> PreparedWrite:
    """An alarm record is edited inside the buffer the meter last reported: no buffer, no edit."""
    if reported is None:
        raise SettingRefused(f"the meter's dp {setting.dp} buffer is unknown (not reported since a write went "
                             "unconfirmed); nothing sent (query the meter first)")
    old = setting.current(reported)
    if len(reported.raw) % ALARM_RECORD:
        raise SettingRefused(f"the meter's dp {setting.dp} is {len(reported.raw)} bytes, not whole 4-byte records; "
                             "it is not edited")
    new = _alarm_value(setting, text, old, product_id)
    dp = make_datapoint(setting.dp, DPType.RAW, _edited_buffer(setting, reported, new))
    return PreparedWrite(setting, old, new, dp, _risk(setting, new))


def _typed(setting: Setting, kind: DPType, value: bool | int) -> DataPoint:
    """The value in the wire type the meter itself reported (dp 12 is a bool on some, an enum on others)."""
    if kind is DPType.BOOL:
        return make_datapoint(setting.dp, kind, bool(value))
    if kind in (DPType.VALUE, DPType.ENUM):
        return make_datapoint(setting.dp, kind, int(value))
    raise SettingRefused(f"the meter reports dp {setting.dp} as {kind.label}, which {setting.name} cannot be "
                         "written as; nothing sent")


def _number_value(setting: Setting, text: str | None, product_id: str | None) -> float | int:
    match = _NUMBER.match(text or "")
    if match is None:
        raise SettingRefused(f"{setting.name} needs a number{' in ' + setting.unit if setting.unit else ''}, e.g. "
                             f"{setting.name}={_example(setting, product_id)}")
    number, unit = match.groups()
    _check_unit(setting, unit)
    value = float(number)
    limits = setting.range_for(product_id)
    if limits is not None:
        _check_range(setting, value, limits)
    return int(value) if value == int(value) and setting.scale >= 1 else value


def _check_unit(setting: Setting, unit: str) -> None:
    if unit and unit.lower() != setting.unit.lower():
        raise SettingRefused(f"{setting.name} is in {setting.unit or 'no unit'}, not {unit}")


def _check_range(setting: Setting, value: float, limits: Range) -> None:
    if not limits.min <= value <= limits.max:
        raise SettingRefused(f"{setting.name} {_num(value)}{_in(setting.unit)} is out of range "
                             f"{limits.text(setting.unit)}; nothing sent")
    steps = (value - limits.min) / limits.step
    if abs(steps - round(steps)) > 1e-6:
        raise SettingRefused(f"{setting.name} {_num(value)}{_in(setting.unit)} is not on its step of "
                             f"{_num(limits.step)}{_in(setting.unit)} (from {_num(limits.min)}); nothing sent")


def _bool_value(setting: Setting, text: str | None) -> bool:
    word = (text or "").strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise SettingRefused(f"{setting.name} is on or off, not {text!r}")


def _choice_value(setting: Setting, text: str | None) -> str:
    word = (text or "").strip()
    if word not in setting.options:
        raise SettingRefused(f"{setting.name} is one of {', '.join(setting.options)}, not {text!r}")
    return word


def _alarm_value(setting: Setting, text: str | None, old: SettingValue | None,
                 product_id: str | None) -> AlarmValue:
    """`trip@250`, `alarm@250`, `trip`, `alarm`, `250` (keeps the action), with an optional unit."""
    if not isinstance(old, AlarmValue):
        raise SettingRefused(f"the meter's dp {setting.dp} has no record for {setting.name} (code {setting.code}); "
                             "nothing sent")
    action, _, amount = (text or "").strip().partition("@")
    if not amount and _NUMBER.match(action):
        action, amount = "", action
    word = action.strip().lower()
    if word in ("trip", "alarm", "alarm-only", "alarm_only"):
        trips = word == "trip"
    elif word == "":
        trips = old.trips
    else:
        raise SettingRefused(f"{setting.name} takes trip@N, alarm@N, trip, alarm or N, not {text!r}")
    threshold = old.threshold
    if amount:
        match = _NUMBER.match(amount)
        if match is None:
            raise SettingRefused(f"{setting.name}: {amount!r} is not a number")
        _check_unit(setting, match.group(2))
        threshold = float(match.group(1))
        limits = setting.range_for(product_id)
        if limits is not None:
            _check_range(setting, threshold, limits)
        if threshold != int(threshold) or not 0 <= threshold <= 0xFFFF:
            raise SettingRefused(f"{setting.name}: the threshold must be a whole number 0–65535")
    return AlarmValue(trips, int(threshold))


def _edited_buffer(setting: Setting, reported: DataPoint, new: SettingValue) -> bytes:
    """The buffer the meter last reported with only this record changed: every other byte kept."""
    raw = reported.raw
    if len(raw) % ALARM_RECORD:
        raise SettingRefused(f"the meter's dp {setting.dp} is {len(raw)} bytes, not whole 4-byte records; "
                             "it is not edited")
    assert isinstance(new, AlarmValue)
    out = bytearray(raw)
    for i in range(0, len(raw), ALARM_RECORD):
        if raw[i] == setting.code:
            out[i + 1] = 0x01 if new.trips else 0x00
            out[i + 2:i + 4] = int(new.threshold).to_bytes(2, "big")
            return bytes(out)
    raise SettingRefused(f"the meter's dp {setting.dp} has no record for {setting.name}; nothing sent")


def find_record(raw: bytes, code: int | None) -> bytes | None:
    for i in range(0, len(raw) - ALARM_RECORD + 1, ALARM_RECORD):
        if raw[i] == code:
            return raw[i:i + ALARM_RECORD]
    return None


def confirms(written: DataPoint, reported: DataPoint) -> bool:
    """Whether a report is the meter's confirmation of a write: same dp, type and value."""
    return reported.id == written.id and reported.type is written.type and reported.raw == written.raw


# ---- parsing a profile's [dp.setting] --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DpFacts:
    """What a setting needs to know of its dp's profile entry."""

    id: int
    name: str
    type: DPType
    unit: str
    scale: float
    has_alarms: bool


def parse_settings(spec: DpFacts, doc: dict[str, object]) -> tuple[Setting, ...]:
    """The settings a dp's TOML table describes (`[dp.setting]`, or min/max in its alarm records)."""
    if spec.has_alarms:
        return tuple(_alarm_setting(spec, a) for a in _tables(doc.get("alarms", [])) if _is_settable(a))
    table = doc.get("setting")
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise ValueError(f"dp {spec.id}: setting must be a table")
    kind = _kind(spec, table)
    return (Setting(
        name=spec.name, dp=spec.id, kind=kind, unit=spec.unit, scale=spec.scale,
        range=_range(spec.id, table, kind), by_product=_by_product(spec.id, table, kind),
        options=tuple(str(o) for o in _list(table.get("options", []))),
        weakening=_weakening(spec.id, table), products=tuple(str(p) for p in _list(table.get("products", []))),
        title=str(table.get("title", ""))),)


def _is_settable(a: dict[str, object]) -> bool:
    return "min" in a or "max" in a


def _alarm_setting(spec: DpFacts, a: dict[str, object]) -> Setting:
    code = a["id"]
    assert isinstance(code, int)
    return Setting(name=f"{spec.name}.{a['name']}", dp=spec.id, kind=SettingKind.ALARM, unit=str(a.get("unit", "")),
                   range=_range(spec.id, a, SettingKind.ALARM), by_product=_by_product(spec.id, a, SettingKind.ALARM),
                   code=code, weakening=_weakening(spec.id, a), title=str(a.get("title", "")))


def _kind(spec: DpFacts, table: dict[str, object]) -> SettingKind:
    try:
        kind = SettingKind(str(table.get("kind", "")))
    except ValueError:
        kinds = ", ".join(k.value for k in SettingKind if k is not SettingKind.ALARM)
        raise ValueError(f"dp {spec.id}: setting kind {table.get('kind')!r} is not one of {kinds}") from None
    allowed = {SettingKind.NUMBER: (DPType.VALUE,), SettingKind.SWITCH: (DPType.BOOL,),
               SettingKind.BUTTON: (DPType.BOOL, DPType.ENUM, DPType.VALUE), SettingKind.CHOICE: (DPType.ENUM,)}
    if kind is SettingKind.ALARM or spec.type not in allowed[kind]:
        raise ValueError(f"dp {spec.id}: a {kind.value} setting cannot be a {spec.type.label} dp")
    if kind is SettingKind.NUMBER and "min" not in table:
        raise ValueError(f"dp {spec.id}: a number setting needs min and max")
    if kind is SettingKind.CHOICE and not table.get("options"):
        raise ValueError(f"dp {spec.id}: a choice setting needs options")
    return kind


def _range(dpid: int, t: dict[str, object], kind: SettingKind) -> Range | None:
    if kind not in (SettingKind.NUMBER, SettingKind.ALARM) or "min" not in t:
        return None
    lo, hi, step = _finite(dpid, t.get("min")), _finite(dpid, t.get("max")), _finite(dpid, t.get("step", 1))
    if not lo <= hi or step <= 0:
        raise ValueError(f"dp {dpid}: setting range needs min <= max and step > 0")
    return Range(lo, hi, step)


def _by_product(dpid: int, t: dict[str, object], kind: SettingKind) -> dict[str, Range]:
    table = t.get("by_product", {})
    if not isinstance(table, dict):
        raise ValueError(f"dp {dpid}: by_product must be a table of product id → min/max")
    out: dict[str, Range] = {}
    for pid, r in table.items():
        if not isinstance(r, dict):
            raise ValueError(f"dp {dpid}: by_product.{pid} must be a table with min and max")
        merged = {"step": t.get("step", 1), **r}
        found = _range(dpid, merged, kind)
        if found is not None:
            out[str(pid)] = found
    return out


def _weakening(dpid: int, t: dict[str, object]) -> Weakening | None:
    above, below, alarm_only = t.get("weakens_above"), t.get("weakens_below"), t.get("weakens_alarm_only", False)
    if above is None and below is None and not alarm_only:
        return None
    return Weakening(_finite(dpid, above) if above is not None else None,
                     _finite(dpid, below) if below is not None else None, bool(alarm_only), str(t.get("risk", "")))


def _finite(dpid: int, v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"dp {dpid}: expected a number, got {v!r}")
    return float(v)


def _list(v: object) -> list[object]:
    if not isinstance(v, list):
        raise ValueError(f"expected a list, got {v!r}")
    return v


def _tables(v: object) -> list[dict[str, object]]:
    return [a for a in _list(v) if isinstance(a, dict)]


# ---- text ------------------------------------------------------------------------------------
def _num(v: float) -> str:
    return str(int(v)) if float(v) == int(v) else f"{v:g}"


def _in(unit: str) -> str:
    return f" {unit}" if unit else ""


def _scaled(raw: int, scale: float) -> float | int:
    if scale == 1:
        return raw
    return round(raw * scale, 9)


def _example(setting: Setting, product_id: str | None) -> str:
    limits = setting.range_for(product_id)
    return f"{_num(limits.max if limits else 1)}{setting.unit}"
