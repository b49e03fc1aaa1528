"""Device profiles: a meter's datapoint map (names, units, scaling, raw layouts, fault bits) as data.

Profiles are TOML files; the ones shipped live in `tuimeter/profiles/`. Code never hard-codes a
dpId: it asks the profile which dp plays a role (voltage, relay, ...).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from tuimeter.core.datapoints import DataPoint, DPType
from tuimeter.core.settings import ALARM_RECORD, DpFacts, Setting, parse_settings

# Roles a Reading is built from, and the device-panel roles.
READING_ROLES = ("voltage", "current", "power", "energy", "leakage", "relay", "faults")
OTHER_ROLES = (
    "breaker_id",
    "over_voltage_threshold",
    "under_voltage_threshold",
    "over_current_threshold",
    "leakage_threshold",
    "mute",
    "earth_leak",
)
ROLES = READING_ROLES + OTHER_ROLES
DEFAULT_PROFILE = "earu-2p63a"

Scalar = float | int | bool | str | tuple[str, ...] | bytes


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Field:
    """One number inside a raw dp: big-endian unsigned at offset..offset+size."""

    role: str
    offset: int
    size: int
    scale: float
    unit: str


@dataclass(frozen=True, slots=True)
class Alarm:
    """One kind of record in an alarm-set raw dp (17/18): `[id][action][threshold u16]`."""

    id: int
    name: str
    unit: str = ""




def alarm_records(raw: bytes, alarms: tuple[Alarm, ...]) -> list[tuple[str, bool, int, str]]:
    """(name, trips, threshold, unit) for each whole 4-byte record, walked by id, not by position."""
    known = {a.id: a for a in alarms}
    out = []
    for i in range(0, len(raw) - ALARM_RECORD + 1, ALARM_RECORD):
        aid, action, threshold = raw[i], raw[i + 1], int.from_bytes(raw[i + 2:i + 4], "big")
        alarm = known.get(aid, Alarm(aid, f"alarm_{aid}"))
        out.append((alarm.name, action == 0x01, threshold, alarm.unit))
    return out


def _alarm_text(trips: bool, threshold: int, unit: str) -> str:
    action = "trip" if trips else "alarm only"
    return f"{action} at {threshold} {unit}".rstrip() if unit or threshold else action


@dataclass(frozen=True, slots=True)
class DPSpec:
    id: int
    name: str
    type: DPType
    role: str | None = None
    scale: float = 1.0
    unit: str = ""
    writable: bool = False
    fields: tuple[Field, ...] = ()
    bits: tuple[str, ...] = ()
    alarms: tuple[Alarm, ...] = ()
    # (role, end, mask, divisor, scale) per field, worked out once: decoding runs for every reading
    _plan: tuple[tuple[str, int, int, int, float], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = tuple((f.role, f.offset + f.size, (1 << 8 * f.size) - 1, _divisor(f.scale), f.scale)
                     for f in self.fields)
        object.__setattr__(self, "_plan", plan)

    def decode(self, dp: DataPoint) -> dict[str, Scalar]:
        """Values this dp gives, keyed by role (or by the dp's name when it has no role)."""
        value = dp.value
        if self._plan and isinstance(value, bytes):
            return self.decode_fields(value)
        if self.alarms and isinstance(dp.value, bytes):
            alarms: dict[str, Scalar] = {}
            for name, trips, threshold, unit in alarm_records(dp.value, self.alarms):
                key = f"{self.name}.{name}"
                key = key if key not in alarms else f"{key}_{len(alarms)}"  # a repeated id is shown, not merged
                alarms[key] = _alarm_text(trips, threshold, unit)
            return alarms
        key = self.role or self.name
        if self.bits and isinstance(dp.value, int) and not isinstance(dp.value, bool):
            return {key: fault_names(dp.value, self.bits)}
        if isinstance(dp.value, int) and not isinstance(dp.value, bool):
            return {key: _scaled(dp.value, self.scale)}
        return {key: dp.value}

    def decode_fields(self, value: bytes) -> dict[str, Scalar]:
        """The fields of a raw value (those it is long enough for): the whole value read as one
        big-endian number once, each field shifted and masked out of it."""
        out: dict[str, Scalar] = {}
        n = len(value)
        whole = int.from_bytes(value, "big")
        for role, end, mask, divisor, scale in self._plan:
            if end <= n:
                raw = (whole >> ((n - end) << 3)) & mask
                # as _scaled(), with the divisor worked out once
                out[role] = raw if divisor == 1 else raw / divisor if divisor else round(raw * scale, 9)
        return out

    def describe(self, dp: DataPoint) -> str:
        values = self.decode(dp)
        if self.fields:
            fields = {f.role: f for f in self.fields}
            parts = [f"{k} {with_unit(v, fields[k].scale, fields[k].unit)}" for k, v in values.items()]
            return f"{self.name}: " + ", ".join(parts)
        if self.alarms:
            rest = len(dp.raw) % ALARM_RECORD
            parts = [f"{k[len(self.name) + 1:]} {format_value(v)}" for k, v in values.items()]
            parts += [f"{rest} stray bytes {dp.raw[-rest:].hex()}"] if rest else []
            return f"{self.name}: " + (", ".join(parts) or "none")
        (value,) = values.values()
        if isinstance(value, tuple):
            return f"{self.name}: " + (", ".join(value) if value else "none")
        return f"{self.name}: {with_unit(value, self.scale, self.unit)}"


def with_unit(value: Scalar, scale: float, unit: str) -> str:
    text = format_value(value, _decimals(scale))
    return f"{text} {unit}" if unit else text


def _decimals(scale: float) -> int | None:
    """Digits after the point that a scale gives (0.1 → 1, 0.25 → 2); None for a whole-number scale."""
    if scale == int(scale):
        return None
    return next((d for d in range(1, 10) if abs(scale * 10**d - round(scale * 10**d)) < 1e-9), 9)


def _scaled(raw: int, scale: float) -> float | int:
    if scale == 1:
        return raw
    divisor = _divisor(scale)
    return raw / divisor if divisor else round(raw * scale, 9)


def _divisor(scale: float) -> int:
    """10 for 0.1, 1000 for 0.001: dividing by it is exact to the last digit (raw × 0.1 is not);
    0 when the scale is no such fraction (then raw × scale, rounded)."""
    inverse = 1 / scale
    return round(inverse) if abs(inverse - round(inverse)) < 1e-9 and scale <= 1 else 0


def format_value(v: Scalar, decimals: int | None = None) -> str:
    if decimals is not None and isinstance(v, int | float) and not isinstance(v, bool):
        return f"{v:.{decimals}f}"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, tuple):
        return ",".join(v) or "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def fault_names(value: int, bits: tuple[str, ...]) -> tuple[str, ...]:
    names = []
    bit = 0
    while value >> bit:
        if (value >> bit) & 1:
            names.append(bits[bit] if bit < len(bits) else f"fault_bit_{bit}")
        bit += 1
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    title: str
    product_ids: tuple[str, ...]
    dps: dict[int, DPSpec]
    source: str
    settings: tuple[Setting, ...] = ()  # every writable setting, in dp order (the relay is not one)

    def for_role(self, role: str) -> DPSpec | None:
        for spec in self.dps.values():
            if spec.role == role or any(f.role == role for f in spec.fields):
                return spec
        return None


def load_profile(name_or_path: str = DEFAULT_PROFILE) -> Profile:
    """Load a shipped profile by name, or a profile file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from None
        return parse_profile(text, str(path))
    shipped = resources.files("tuimeter") / "profiles" / f"{name_or_path}.toml"
    if not shipped.is_file():
        raise ProfileError(f"no profile named {name_or_path!r}; shipped: {', '.join(shipped_profiles())}")
    return parse_profile(shipped.read_text(encoding="utf-8"), f"{name_or_path}.toml")


def choose_profile(product_id: str | None, seen: dict[int, DataPoint]) -> tuple[Profile, str]:
    """The shipped profile for a meter: by its product id when a profile lists it, else the one
    whose datapoint map best fits the dp ids and types the meter reported. Returns it and why."""
    profiles = [load_profile(name) for name in shipped_profiles()]
    chosen = choose_from(profiles, product_id, seen)
    if chosen is None:
        return load_profile(DEFAULT_PROFILE), "default (nothing reported yet)"
    return chosen


def choose_from(profiles: list[Profile], product_id: str | None,
                seen: dict[int, DataPoint]) -> tuple[Profile, str] | None:
    if product_id:
        for p in profiles:
            if product_id in p.product_ids:
                return p, f"product id {product_id}"
    if not seen or not profiles:
        return None

    def fit(p: Profile) -> tuple[int, bool]:
        score = 0
        for dpid, dp in seen.items():
            spec = p.dps.get(dpid)
            if spec is None:
                continue
            if spec.type is not dp.type:
                score -= 2
                continue
            score += 1
            if spec.fields and max(f.offset + f.size for f in spec.fields) == len(dp.raw):
                score += 1  # a raw layout of exactly this length (e.g. 10- vs 8-byte phase_a)
        return score, p.name == DEFAULT_PROFILE

    best = max(profiles, key=fit)
    return best, f"best fit to {len(seen)} reported datapoints"


def shipped_profiles() -> list[str]:
    folder = resources.files("tuimeter") / "profiles"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def parse_profile(text: str, source: str) -> Profile:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML ({exc})") from None
    try:
        raw_dps = [d for d in doc.get("dp", [])]
        dps = [_parse_dp(d) for d in raw_dps]
        settings = [s for d, raw in sorted(zip(dps, raw_dps, strict=True), key=lambda pair: pair[0].id)
                    for s in parse_settings(DpFacts(d.id, d.name, d.type, d.unit, d.scale, bool(d.alarms)), raw)]
        for setting in settings:
            if not dps[[d.id for d in dps].index(setting.dp)].writable:
                raise ValueError(f"dp {setting.dp}: {setting.name} is described as a setting, but the dp is not "
                                 "writable = true")
        profile = Profile(
            name=str(doc["name"]),
            title=str(doc.get("title", doc["name"])),
            product_ids=tuple(str(p) for p in doc.get("product_ids", [])),
            dps={d.id: d for d in dps},
            source=source,
            settings=tuple(settings),
        )
    except KeyError as exc:
        raise ProfileError(f"{source}: missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"{source}: {exc}") from None
    if len(profile.dps) != len(dps):
        raise ProfileError(f"{source}: a dp id is listed twice")
    return profile


def _parse_dp(d: dict[str, object]) -> DPSpec:
    dpid = d["id"]
    if not isinstance(dpid, int) or not 0 <= dpid <= 255:
        raise ValueError(f"dp id {dpid!r} is not 0..255")
    try:
        dptype = DPType[str(d["type"]).upper()]
    except KeyError:
        kinds = "raw, bool, value, string, enum, bitmap"
        raise ValueError(f"dp {dpid}: type {d['type']!r} is not one of {kinds}") from None
    role = d.get("role")
    if role is not None and role not in ROLES:
        raise ValueError(f"dp {dpid}: role {role!r} is not one of {', '.join(ROLES)}")
    fields = tuple(_parse_field(dpid, f) for f in _list(d.get("fields", [])))
    if fields and dptype is not DPType.RAW:
        raise ValueError(f"dp {dpid}: fields describe a raw layout; this dp is {dptype.label}")
    if d.get("bits") and dptype is not DPType.BITMAP:
        raise ValueError(f"dp {dpid}: bits name a bitmap's bits; this dp is {dptype.label}")
    alarms = tuple(_parse_alarm(dpid, a) for a in _list(d.get("alarms", [])))
    if alarms and (dptype is not DPType.RAW or fields):
        raise ValueError(f"dp {dpid}: alarms describe a raw list of 4-byte records, without fields")
    return DPSpec(
        id=dpid,
        name=str(d["name"]),
        type=dptype,
        role=str(role) if role is not None else None,
        scale=float(_number(d.get("scale", 1))),
        unit=str(d.get("unit", "")),
        writable=bool(d.get("writable", False)),
        fields=fields,
        bits=tuple(str(b) for b in _list(d.get("bits", []))),
        alarms=alarms,
    )


def _parse_alarm(dpid: int, a: object) -> Alarm:
    if not isinstance(a, dict):
        raise ValueError(f"dp {dpid}: each alarm must be a table")
    aid = a["id"]
    if not isinstance(aid, int) or not 0 <= aid <= 255:
        raise ValueError(f"dp {dpid}: alarm id {aid!r} is not 0..255")
    return Alarm(aid, str(a["name"]), str(a.get("unit", "")))


def _parse_field(dpid: int, f: object) -> Field:
    if not isinstance(f, dict):
        raise ValueError(f"dp {dpid}: each field must be a table")
    role = str(f["role"])
    if role not in ROLES:
        raise ValueError(f"dp {dpid}: field role {role!r} is not one of {', '.join(ROLES)}")
    offset, size = f["offset"], f["size"]
    if not isinstance(offset, int) or not isinstance(size, int) or offset < 0 or not 1 <= size <= 8:
        raise ValueError(f"dp {dpid}: field {role} needs offset >= 0 and size 1..8")
    return Field(role, offset, size, float(_number(f.get("scale", 1))), str(f.get("unit", "")))


def _list(v: object) -> list[object]:
    if not isinstance(v, list):
        raise ValueError(f"expected a list, got {v!r}")
    return v


def _number(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"expected a number, got {v!r}")
    return float(v)
