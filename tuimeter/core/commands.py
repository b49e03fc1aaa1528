"""Command words, their names for the frame log, and the small payloads the host builds or reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from tuimeter.core.frames import Frame


class Command(IntEnum):
    HEARTBEAT = 0x00
    PRODUCT_INFO = 0x01
    WORKING_MODE = 0x02
    NETWORK_STATUS = 0x03
    RESET_WIFI = 0x04
    RESET_WIFI_MODE = 0x05
    DP_COMMAND = 0x06
    DP_REPORT = 0x07
    DP_QUERY = 0x08
    OTA_START = 0x0A
    OTA_DATA = 0x0B
    GMT_TIME = 0x0C
    FACTORY_TEST = 0x0D
    WIFI_TEST = 0x0E
    DP_CACHE = 0x10
    LOCAL_TIME = 0x1C
    WEATHER_OPEN = 0x20
    WEATHER_DATA = 0x21
    DP_REPORT_SYNC = 0x22
    DP_REPORT_SYNC_ACK = 0x23
    WIFI_RSSI = 0x24
    HEARTBEAT_STOP = 0x25
    NETWORK_QUERY = 0x2B
    EXTENDED = 0x34
    NEW_FEATURE = 0x37

    @property
    def label(self) -> str:
        return _LABELS.get(self, self.name.lower().replace("_", " "))


_LABELS = {
    Command.HEARTBEAT: "heartbeat",
    Command.PRODUCT_INFO: "product info",
    Command.WORKING_MODE: "working mode",
    Command.NETWORK_STATUS: "network status",
    Command.RESET_WIFI: "reset wi-fi",
    Command.RESET_WIFI_MODE: "reset wi-fi + mode",
    Command.DP_COMMAND: "dp command",
    Command.DP_REPORT: "dp report",
    Command.DP_QUERY: "query all dps",
    Command.LOCAL_TIME: "local time",
    Command.GMT_TIME: "gmt time",
    Command.WIFI_TEST: "wi-fi rf test",
    Command.DP_REPORT_SYNC: "dp report (sync)",
    Command.DP_REPORT_SYNC_ACK: "dp report (sync) ack",
    Command.WIFI_RSSI: "wi-fi rssi",
    Command.NETWORK_QUERY: "network status query",
    Command.EXTENDED: "extended services",
    Command.NEW_FEATURE: "new-feature notice",
}


def command_label(cmd: int) -> str:
    try:
        return Command(cmd).label
    except ValueError:
        return f"cmd 0x{cmd:02X}"


class NetworkState(IntEnum):
    """The status byte of 0x03 and 0x2B."""

    SMARTCONFIG = 0
    AP = 1
    NOT_CONNECTED = 2
    ROUTER = 3
    CLOUD = 4
    LOW_POWER = 5
    SMARTCONFIG_AND_AP = 6


def network_ramp(final: int, pairing: int | None = None) -> list[int]:
    """The status walk a genuine module makes: (pairing →) 2 → 3 → 4, up to `final`."""
    steps = [s for s in (2, 3, 4) if s <= final] if final <= 4 else [2, 3, 4, final]
    if not steps:
        steps = [final]
    if pairing is not None and pairing != steps[0]:
        steps.insert(0, pairing)
    return steps


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """The 0x01 reply: kept verbatim, with the usual keys read out when it is JSON."""

    text: str
    data: dict[str, object] | None

    @property
    def product_id(self) -> str | None:
        p = self.data.get("p") if self.data else None
        return p if isinstance(p, str) else None

    @property
    def mcu_version(self) -> str | None:
        v = self.data.get("v") if self.data else None
        return v if isinstance(v, str) else None


def parse_product_info(payload: bytes) -> ProductInfo:
    text = payload.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or absurdly nested
        return ProductInfo(text, None)
    return ProductInfo(text, data if isinstance(data, dict) else None)


def local_time_payload(t: datetime | None) -> bytes:
    """0x1C answer: [valid, yy-2000, MM, dd, hh, mm, ss, weekday 1=Mon..7=Sun] (OBK layout)."""
    if t is None:
        return bytes(8)
    return bytes((1, t.year - 2000, t.month, t.day, t.hour, t.minute, t.second, t.isoweekday()))


def gmt_time_payload(t: datetime) -> bytes:
    """0x0C answer: [ok, yy-2000, MM, dd, hh, mm, ss] in UTC."""
    return bytes((1, t.year - 2000, t.month, t.day, t.hour, t.minute, t.second))


def report_payload(f: Frame) -> bytes | None:
    """The dp units a frame reports (0x07, 0x22, or a 0x34/0x0B record report), else None."""
    if f.command in (Command.DP_REPORT, Command.DP_REPORT_SYNC):
        return f.payload
    if f.command == Command.EXTENDED and f.payload[:1] == b"\x0b" and len(f.payload) >= 9:
        return f.payload[9:]  # sub-command, 8 time bytes, then dp units
    return None
