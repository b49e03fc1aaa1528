"""`tuimeter decode`: frames out of hex dumps and binary captures, decoded with a device profile."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuimeter.analyzer.discovery import Discovery
from tuimeter.core.commands import Command, command_label, parse_product_info, report_payload
from tuimeter.core.datapoints import DataPoint, decode_datapoints
from tuimeter.core.describe import describe_frame
from tuimeter.core.frames import Frame, Junk, ParseError, ParserEvent, StreamParser
from tuimeter.core.meter import MeterState
from tuimeter.core.profile import Profile, choose_profile

_SEPARATORS = re.compile(r"0x|[\s,:;\-]", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]*")


class InputError(ValueError):
    """An input that cannot be read; the message names it and says why."""


def parse_hex(text: str) -> bytes | None:
    """Bytes from a hex dump as terminal programs save it (spaces, newlines, 0x, commas), or None."""
    digits = _SEPARATORS.sub("", text)
    if not digits or not _HEX.fullmatch(digits) or len(digits) % 2:
        return None
    return bytes.fromhex(digits)


def read_input(arg: str) -> tuple[str, bytes]:
    """(label, bytes) for one argument: '-' (stdin), a file (hex dump or binary), or hex text."""
    if arg == "-":
        raw = sys.stdin.buffer.read()
        return "stdin", parse_hex(raw.decode("ascii", "replace")) or raw
    path = Path(arg)
    try:
        exists = path.exists()
    except OSError:  # e.g. a long hex string is no valid file name
        exists = False
    if exists:
        if path.is_dir():
            raise InputError(f"{arg} is a folder; give a capture file")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {arg}: {exc.strerror}") from None
        return arg, parse_hex(raw.decode("ascii", "replace")) or raw
    data = parse_hex(arg)
    if data is None:
        raise InputError(f"{arg!r} is neither a file nor hex bytes (e.g. 55AA0000 0000FF)")
    return "argument", data


@dataclass
class Decoded:
    """Everything found in one or more captures."""

    items: list[dict[str, Any]] = field(default_factory=list)
    frames_per_command: Counter[str] = field(default_factory=Counter)
    frames_per_dp: Counter[int] = field(default_factory=Counter)
    bad_checksums: int = 0
    oversize: int = 0
    junk_bytes: int = 0


def direction_of(frame: Frame, side: str | None) -> str:
    """The capture's side if known; else the version byte: hosts send 0, MCUs 3 (or 0/1 when low-power)."""
    return side or ("host" if frame.version == 0 else "mcu")


def decode_streams(streams: list[tuple[str, str | None, bytes]], profile: Profile | None) -> tuple[Decoded, Profile,
                                                                                                   str]:
    """Decode every stream (label, side or None, bytes); pick the profile from them if none given."""
    parsed = []
    product_id: str | None = None
    seen: dict[int, DataPoint] = {}
    for label, side, data in streams:
        p = StreamParser()
        events = p.feed(data) + p.flush()
        parsed.append((label, side, events))
        for e in events:
            if isinstance(e, Frame):
                if e.command == Command.PRODUCT_INFO and e.payload:
                    product_id = parse_product_info(e.payload).product_id or product_id
                payload = report_payload(e)
                if payload is not None:
                    seen.update({dp.id: dp for dp in decode_datapoints(payload)[0]})
    reason = "chosen with --profile"
    if profile is None:
        profile, reason = choose_profile(product_id, seen)
    meter = MeterState(profile)
    out = Decoded()
    for label, side, events in parsed:
        for e in events:
            out.items.append(_item(e, label, side, meter, out))
    return out, profile, reason


def discover_streams(streams: list[tuple[str, str | None, bytes]]) -> Discovery:
    """Every dp the MCU reported in the captures, for an export (times: the order of the reports)."""
    found = Discovery()
    n = 0
    for _, side, data in streams:
        p = StreamParser()
        for e in p.feed(data) + p.flush():
            if not isinstance(e, Frame) or direction_of(e, side) != "mcu":
                continue
            if e.command == Command.PRODUCT_INFO and e.payload:
                found.product_id = parse_product_info(e.payload).product_id or found.product_id
            payload = report_payload(e)
            for dp in decode_datapoints(payload)[0] if payload is not None else []:
                n += 1
                found.observe(dp, float(n))
    return found


def _item(e: ParserEvent, label: str, side: str | None, meter: MeterState,
          out: Decoded) -> dict[str, Any]:
    if isinstance(e, Junk):
        out.junk_bytes += len(e.data)
        return {"kind": "junk", "source": label, "bytes": len(e.data), "hex": e.data.hex(" ").upper()}
    if isinstance(e, ParseError):
        if e.kind == "bad_checksum":
            out.bad_checksums += 1
        elif e.kind == "oversize":
            out.oversize += 1
        return {"kind": e.kind, "source": label, "detail": e.detail, "hex": e.data.hex(" ").upper()}
    name = command_label(e.command)
    out.frames_per_command[name] += 1
    dps = []
    payload = e.payload if e.command == Command.DP_COMMAND else report_payload(e)
    for dp in decode_datapoints(payload)[0] if payload is not None else []:
        out.frames_per_dp[dp.id] += 1
        meter.apply(dp)
        view = meter.view(dp)
        dps.append({"id": dp.id, "type": dp.type.label, "name": view.name,
                    "value": dp.value.hex() if isinstance(dp.value, bytes) else dp.value, "text": view.text})
    return {"kind": "frame", "source": label, "direction": direction_of(e, side), "version": e.version,
            "command": e.command, "command_name": name, "text": describe_frame(e, meter), "datapoints": dps,
            "hex": e.raw.hex(" ").upper()}


def render_text(d: Decoded, profile: Profile, reason: str) -> str:
    lines = [f"profile: {profile.name} ({reason})"]
    for it in d.items:
        if it["kind"] == "frame":
            lines.append(f"{it['direction']:<4} {it['text']}\n       {it['hex']}")
        elif it["kind"] == "junk":
            lines.append(f"junk {it['bytes']} bytes skipped: {it['hex']}")
        else:
            lines.append(f"!    {it['kind']}: {it['detail']}: {it['hex']}")
    frames = sum(d.frames_per_command.values())
    lines.append(f"\n{frames} frames; {d.bad_checksums} bad checksums; {d.oversize} impossible lengths; "
                 f"{d.junk_bytes} junk bytes")
    if d.frames_per_command:
        lines.append("per command: " + ", ".join(f"{k} {v}" for k, v in d.frames_per_command.most_common()))
    if d.frames_per_dp:
        names = {dpid: spec.name for dpid, spec in profile.dps.items()}
        lines.append("per dp: " + ", ".join(f"{k}{'/' + names[k] if k in names else ''} {v}"
                                             for k, v in sorted(d.frames_per_dp.items())))
    return "\n".join(lines)


def render_json(d: Decoded, profile: Profile, reason: str) -> str:
    return json.dumps({
        "profile": profile.name, "profile_reason": reason, "items": d.items,
        "totals": {"frames": sum(d.frames_per_command.values()), "per_command": dict(d.frames_per_command),
                   "per_dp": {str(k): v for k, v in sorted(d.frames_per_dp.items())},
                   "bad_checksums": d.bad_checksums, "oversize": d.oversize, "junk_bytes": d.junk_bytes},
    }, indent=2)

