"""One-shot commands: start up, do one thing, print the answer, exit."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from tuimeter.core.command_path import WeakeningRefused
from tuimeter.core.events import CommandFinished, CommandSource
from tuimeter.core.profile import format_value
from tuimeter.exitcodes import ExitCode
from tuimeter.host.session import CommandFailed, CommandRefused, HostSession
from tuimeter.sinks import RecordSink, json_value

log = logging.getLogger(__name__)


class MeterSilent(Exception):
    """The meter did not complete start-up in time."""


async def wait_ready(session: HostSession, timeout: float) -> None:
    """Online: the host goes online only once the start-up's 0x08 dump has gone quiet."""
    try:
        await session.wait_online(timeout)
    except TimeoutError:
        port = session.options.port
        status = session.status()
        hint = (f"received {status.bytes_in} bytes but no valid frame; wrong speed? try --baud "
                f"{115200 if session.options.baud != 115200 else 9600}") if status.bytes_in and not status.frames_in \
            else "check the wiring and that the meter is powered, or try --baud 115200"
        raise MeterSilent(f"no start-up with the meter on {port} within {timeout:g} s; {hint}") from None



WEAKENING_FLAG = "--i-understand-weaker-protection"


async def apply_sets(session: HostSession, sets: Sequence[tuple[str, str | None]], allow_weakening: bool,
                     timeout: float, records: RecordSink | None = None) -> int:
    """Each --set in order, each confirmed by the meter before the next; the first that fails stops the
    rest (2: refused, nothing sent; 4: sent, not confirmed). `records`: --log, for every attempt."""
    if records is not None:
        session.bus.add_listener(lambda ev: records.write(ev) if isinstance(ev, CommandFinished) else None)
    await wait_ready(session, timeout)
    for i, (name, value) in enumerate(sets):
        code = await _apply_one(session, name, value, allow_weakening)
        if records is not None:
            records.flush()
        if code is not ExitCode.OK:
            rest = [f"{n}={v}" if v is not None else n for n, v in sets[i + 1:]]
            if rest:
                print(f"tuimeter: not applied: {', '.join(rest)}", file=sys.stderr)
            return code
    return ExitCode.OK


async def _apply_one(session: HostSession, name: str, value: str | None, allow_weakening: bool) -> ExitCode:
    try:
        if name == "relay":
            message = await session.set_relay((value or "").lower() == "on", CommandSource.CLI)
        else:
            message = await session.write_setting(name, value, CommandSource.CLI, allow_weakening)
    except WeakeningRefused as exc:
        print(f"tuimeter: {exc.risk}; {exc.write.summary} not written: add {WEAKENING_FLAG} to write it anyway",
              file=sys.stderr)
        return ExitCode.USAGE
    except CommandRefused as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except CommandFailed as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return ExitCode.METER
    log.info("--set: %s", message)
    print(message)
    return ExitCode.OK


def settings_report(session: HostSession) -> list[dict[str, Any]]:
    out = []
    for st in session.settings():
        s, r, w = st.setting, st.range, st.setting.weakening
        out.append({
            "name": s.name, "dp": s.dp, "kind": s.kind.value, "value": json_value(st.value), "text": st.text,
            "unit": s.unit, "min": r.min if r else None, "max": r.max if r else None, "step": r.step if r else None,
            "options": list(s.options) or None, "title": s.title,
            "weakens": None if w is None else {"above": w.above, "below": w.below, "alarm_only": w.alarm_only,
                                               "risk": w.risk},
        })
    return out


async def list_settings(session: HostSession, as_json: bool, timeout: float) -> int:
    await wait_ready(session, timeout)
    report = settings_report(session)
    if as_json:
        print(json.dumps(report, indent=2))
        return ExitCode.OK
    if not report:
        print(f"profile {session.status().profile.name} has no writable settings")
        return ExitCode.OK
    rows = []
    for st in session.settings():
        s = st.setting
        limits = st.range.text(s.unit) if st.range else ", ".join(s.options) if s.options else s.kind.value
        warn = f" (weakens protection: {s.weakening.risk})" if s.weakening else ""
        rows.append((s.name, st.text, limits, f"{s.title}{warn}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row[:3], widths, strict=True)) + f"  {row[3]}")
    return ExitCode.OK


def query_report(session: HostSession) -> dict[str, Any]:
    status = session.status()
    info = status.product
    views = session.datapoints()
    values = session.values()
    return {
        "product": {"text": info.text, "product_id": info.product_id, "mcu_version": info.mcu_version}
        if info else None,
        "profile": status.profile.name,
        "datapoints": [
            {"id": v.id, "type": v.type.label, "name": v.name,
             "value": v.dp.value.hex() if isinstance(v.dp.value, bytes) else v.dp.value,
             "raw": v.dp.raw.hex(), "text": v.text}
            for v in views
        ],
        "values": {k: (list(val) if isinstance(val, tuple) else val.hex() if isinstance(val, bytes) else val)
                   for k, val in values.items()},
        "reading": session.reading().as_record(),
    }


async def query(session: HostSession, as_json: bool, timeout: float) -> int:
    await wait_ready(session, timeout)
    report = query_report(session)
    if as_json:
        print(json.dumps(report, indent=2))
        return ExitCode.OK
    if report["product"]:
        print(f"product: {report['product']['text']}")
    print(f"profile: {report['profile']}")
    for v in session.datapoints():
        print(f"  {v.text}")
    values = session.values()
    if values:
        print("values: " + ", ".join(f"{k}={format_value(val)}" for k, val in values.items()))
    return ExitCode.OK
