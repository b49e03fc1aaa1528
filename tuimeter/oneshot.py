"""One-shot commands: start up, do one thing, print the answer, exit."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from tuimeter.core.events import CommandSource
from tuimeter.core.profile import format_value
from tuimeter.exitcodes import ExitCode
from tuimeter.host.session import CommandFailed, CommandRefused, HostSession

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



async def set_relay(session: HostSession, on: bool, timeout: float) -> int:
    await wait_ready(session, timeout)
    try:
        message = await session.set_relay(on, CommandSource.CLI)
    except CommandRefused as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except CommandFailed as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return ExitCode.METER
    log.info("--set: %s", message)
    print(message)
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
