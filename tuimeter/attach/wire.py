"""The attach socket's line format (docs/attach.md): one JSON object per line, each with a "type".

The service encodes each event once, whatever the number of viewers; a viewer decodes it back into
the same event the service published, so its screen runs on exactly what the service's own would.
Pure functions: no I/O, no asyncio.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tuimeter.core.commands import ProductInfo, parse_product_info
from tuimeter.core.datapoints import DataPoint, DPType, decode_datapoints
from tuimeter.core.events import (
    CommandFinished,
    CommandResult,
    CommandSource,
    DatapointReceived,
    Event,
    FrameLogged,
    LinkChanged,
    LinkState,
    McuRestarted,
    Notice,
    ParseProblem,
    ProductInfoReceived,
    ProfileChosen,
    ReadingUpdated,
    RelayChanged,
    ServiceChanged,
    SettingChange,
    Tripped,
)
from tuimeter.core.frames import Frame
from tuimeter.core.meter import Reading
from tuimeter.core.settings import AlarmValue, SettingValue

PROTOCOL = 1  # bumped on any change a viewer of the previous version would misread
MAX_LINE = 4 * 1024 * 1024  # a snapshot with its history is the longest line (~200 KB); a longer one is not ours


class WireError(ValueError):
    """A line that is not one of ours: not JSON, not an object, or missing what its type needs."""


def dumps(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def loads(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not a JSON line: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise WireError("not a message (a JSON object with a \"type\")")
    return message


# ---- values ---------------------------------------------------------------------------------
def _ts(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds")


def _time(text: object) -> datetime:
    return datetime.fromisoformat(str(text))


def encode_dp(dp: DataPoint) -> list[Any]:
    return [dp.id, int(dp.type), dp.raw.hex()]


def decode_dp(item: object) -> DataPoint:
    if not (isinstance(item, list) and len(item) == 3):
        raise WireError(f"not a datapoint: {item!r}")
    dpid, dptype, raw = int(item[0]), DPType(int(item[1])), bytes.fromhex(str(item[2]))
    dps, problems = decode_datapoints(bytes((dpid, dptype, len(raw) >> 8, len(raw) & 0xFF)) + raw)
    if problems or len(dps) != 1:
        raise WireError(f"not a datapoint: {item!r}")
    return dps[0]


def encode_setting_value(v: SettingValue | str | None) -> Any:
    if isinstance(v, AlarmValue):
        return {"trips": v.trips, "threshold": v.threshold}
    return v


def decode_setting_value(v: Any) -> SettingValue | None:
    if isinstance(v, dict):
        return AlarmValue(bool(v["trips"]), float(v["threshold"]))
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise WireError(f"not a setting value: {v!r}")


def encode_product(info: ProductInfo | None) -> str | None:
    return None if info is None else info.text


def decode_product(text: object) -> ProductInfo | None:
    return None if text is None else parse_product_info(str(text).encode())


# ---- events ---------------------------------------------------------------------------------
def encode_event(ev: Event) -> dict[str, Any] | None:
    """An event as a JSON object; None for one a viewer has no use for."""
    ts = _ts(ev.ts)
    match ev:
        case ReadingUpdated():
            return {"event": "reading", "ts": ts, "reading": ev.reading.as_record(), "roles": sorted(ev.roles)}
        case FrameLogged():
            return encode_frame(ev)
        case DatapointReceived():
            return {"event": "dp", "ts": ts, "dp": encode_dp(ev.dp)}
        case ParseProblem():
            return {"event": "parse", "ts": ts, "kind": ev.kind, "detail": ev.detail, "data": ev.data.hex()}
        case LinkChanged():
            return {"event": "link", "ts": ts, "state": ev.state.value, "reason": ev.reason}
        case RelayChanged():
            return {"event": "relay", "ts": ts, "on": ev.on, "previous": ev.previous}
        case CommandFinished():
            return {"event": "command", "ts": ts, "token": ev.token, "result": ev.result.value,
                    "message": ev.message, "command": ev.command, "value": ev.value, "source": ev.source.value,
                    "setting": _encode_change(ev.setting)}
        case Tripped():
            return {"event": "trip", "ts": ts, "reasons": list(ev.reasons)}
        case Notice():
            return {"event": "notice", "ts": ts, "text": ev.text, "level": ev.level}
        case ServiceChanged():
            return {"event": "service", "ts": ts, "service": ev.service, "up": ev.up, "detail": ev.detail,
                    "level": ev.level}
        case ProductInfoReceived():
            return {"event": "product", "ts": ts, "text": ev.info.text}
        case ProfileChosen():
            return {"event": "profile", "ts": ts, "name": ev.name, "reason": ev.reason}
        case McuRestarted():
            return {"event": "mcu_restarted", "ts": ts}
    return None


def encode_frame(ev: FrameLogged) -> dict[str, Any]:
    """A logged frame without its text: a viewer describes it with its own copy of the state (describing
    is most of what a frame costs to encode, and only a screen reads it)."""
    return {"event": "frame", "ts": _ts(ev.ts), "dir": ev.direction, "raw": ev.frame.raw.hex()}


def _encode_change(c: SettingChange | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"name": c.name, "dp": c.dp, "old": encode_setting_value(c.old), "new": encode_setting_value(c.new),
            "unit": c.unit, "weakening": c.weakening, "reported": encode_setting_value(c.reported)}


def _decode_change(d: Any) -> SettingChange | None:
    if d is None:
        return None
    return SettingChange(d["name"], d["dp"], decode_setting_value(d["old"]), decode_setting_value(d["new"]),
                         d["unit"], bool(d["weakening"]), decode_setting_value(d["reported"]))


def _reading(ts: datetime, r: Mapping[str, Any]) -> Reading:
    faults = r.get("faults")
    return Reading(ts, r.get("voltage_v"), r.get("current_a"), r.get("power_w"), r.get("energy_kwh"),
                   r.get("leakage_ma"), r.get("relay"), tuple(faults) if faults is not None else None)


@dataclass(frozen=True, slots=True)
class FixedText:
    """A logged frame's text as the service described it (with the meter state it had then)."""

    text: str

    def __call__(self, _frame: Frame) -> str:
        return self.text


def decode_event(d: Mapping[str, Any], describe: Callable[[Frame], str] | None = None) -> Event:
    """The event a JSON object encodes; WireError when it is not one. A frame is described by `describe`
    (the viewer's copy of the state), or by the text the service gave it (history)."""
    try:
        return _decode_event(d, describe)
    except WireError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"a bad {d.get('event')!r} event: {type(exc).__name__}: {exc}") from None


def _decode_event(d: Mapping[str, Any], describe: Callable[[Frame], str] | None) -> Event:
    ts = _time(d["ts"])
    kind = d["event"]
    if kind == "reading":
        return ReadingUpdated(ts, _reading(ts, d["reading"]), frozenset(d["roles"]))
    if kind == "frame":
        text = d.get("text")
        return FrameLogged(ts, d["dir"], Frame.from_bytes(bytes.fromhex(d["raw"])),
                           FixedText(text) if isinstance(text, str) else describe)
    if kind == "dp":
        return DatapointReceived(ts, decode_dp(d["dp"]))
    if kind == "parse":
        return ParseProblem(ts, d["kind"], d["detail"], bytes.fromhex(d["data"]))
    if kind == "link":
        return LinkChanged(ts, LinkState(d["state"]), d["reason"])
    if kind == "relay":
        return RelayChanged(ts, d["on"], d["previous"])
    if kind == "command":
        return CommandFinished(ts, d["token"], CommandResult(d["result"]), d["message"], d["command"], d["value"],
                               CommandSource(d["source"]), _decode_change(d["setting"]))
    if kind == "trip":
        return Tripped(ts, tuple(d["reasons"]))
    if kind == "notice":
        return Notice(ts, d["text"], d["level"])
    if kind == "service":
        return ServiceChanged(ts, d["service"], d["up"], d["detail"], d["level"])
    if kind == "product":
        return ProductInfoReceived(ts, parse_product_info(str(d["text"]).encode()))
    if kind == "profile":
        return ProfileChosen(ts, d["name"], d["reason"])
    if kind == "mcu_restarted":
        return McuRestarted(ts)
    raise WireError(f"an event of a kind this viewer does not know: {kind!r}")
