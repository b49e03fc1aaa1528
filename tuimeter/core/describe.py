"""One line of text per frame, for the screen's frame log and the analyzer (`tuimeter decode`)."""

from __future__ import annotations

from tuimeter.core.commands import Command, command_label, parse_product_info
from tuimeter.core.datapoints import decode_datapoints
from tuimeter.core.frames import Frame
from tuimeter.core.meter import MeterState


def describe_frame(f: Frame, meter: MeterState) -> str:
    """Command name and decoded payload; datapoints named through the meter's profile."""
    label = command_label(f.command)
    if f.command in (Command.DP_REPORT, Command.DP_COMMAND, Command.DP_REPORT_SYNC):
        dps, problems = decode_datapoints(f.payload)
        parts = [meter.view(dp).text for dp in dps] + [f"! {p}" for p in problems]
        return f"{label}: " + "; ".join(parts) if parts else label
    if f.command == Command.HEARTBEAT and len(f.payload) == 1:
        return f"{label} reply: " + ("first since MCU boot" if f.payload[0] == 0 else "running")
    if f.command == Command.PRODUCT_INFO and f.payload:
        return f"{label}: {parse_product_info(f.payload).text}"
    if f.command in (Command.NETWORK_STATUS, Command.NETWORK_QUERY) and len(f.payload) == 1:
        return f"{label}: state {f.payload[0]}"
    if f.command == Command.WORKING_MODE and f.version != 0:
        return f"{label}: " + ("cooperative (empty)" if not f.payload else f"module GPIOs {f.payload.hex(' ')}")
    if f.payload:
        return f"{label}: {f.payload.hex(' ')}"
    return label
