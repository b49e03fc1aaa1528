"""Machine records of readings and events: JSON lines or CSV, appended, one complete line at a time."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from typing import Any

from tuimeter.core.events import (
    CommandFinished,
    Event,
    LinkChanged,
    LinkState,
    McuRestarted,
    Notice,
    ProductInfoReceived,
    ProfileChosen,
    ReadingUpdated,
    RelayChanged,
    ServiceChanged,
    Tripped,
)
from tuimeter.core.meter import Reading
from tuimeter.core.settings import AlarmValue, SettingValue

log = logging.getLogger(__name__)

CSV_FIELDS = ("ts", "voltage_v", "current_a", "power_w", "energy_kwh", "leakage_ma", "relay", "faults")

_LINK_EVENTS = {
    LinkState.ONLINE: "link_up",
    LinkState.LINK_LOST: "link_lost",
    LinkState.RECONNECTING: "port_lost",
    LinkState.HANDSHAKING: "handshaking",
}


class SinkError(Exception):
    """The record file cannot be written; str() names the problem and the fix."""


def json_value(v: SettingValue | str | None) -> Any:
    """A setting's value in a record: numbers and booleans as they are, an alarm record as an object."""
    if isinstance(v, AlarmValue):
        return {"trips": v.trips, "threshold": v.threshold}
    return v


def event_record(ev: Event) -> dict[str, Any] | None:
    """The JSON-lines record for an event worth logging, or None."""
    ts = ev.ts.isoformat(timespec="milliseconds")
    if isinstance(ev, ReadingUpdated):
        return ev.reading.as_record()
    if isinstance(ev, LinkChanged) and ev.state in _LINK_EVENTS:
        return {"type": "event", "ts": ts, "event": _LINK_EVENTS[ev.state], "reason": ev.reason}
    if isinstance(ev, McuRestarted):
        return {"type": "event", "ts": ts, "event": "mcu_restart"}
    if isinstance(ev, RelayChanged):
        return {"type": "event", "ts": ts, "event": "relay_change", "relay": ev.on, "previous": ev.previous}
    if isinstance(ev, ProfileChosen):
        return {"type": "event", "ts": ts, "event": "profile", "profile": ev.name, "reason": ev.reason}
    if isinstance(ev, ProductInfoReceived):
        return {"type": "event", "ts": ts, "event": "product_info", "product_id": ev.info.product_id,
                "mcu_version": ev.info.mcu_version, "raw": ev.info.text}
    if isinstance(ev, Notice) and ev.level != "info":
        return {"type": "event", "ts": ts, "event": "notice", "level": ev.level, "text": ev.text}
    if isinstance(ev, CommandFinished) and ev.setting is not None:
        s = ev.setting
        return {"type": "event", "ts": ts, "event": "setting_change", "name": s.name, "dp": s.dp,
                "old": json_value(s.old), "new": json_value(s.new), "reported": json_value(s.reported),
                "unit": s.unit, "source": ev.source.value, "result": ev.result.value, "weakening": s.weakening,
                "text": ev.message}
    if isinstance(ev, CommandFinished):
        return {"type": "event", "ts": ts, "event": "command", "command": ev.command, "value": ev.value,
                "source": ev.source.value, "result": ev.result.value, "text": ev.message}
    if isinstance(ev, Tripped):
        return {"type": "event", "ts": ts, "event": "trip", "reasons": list(ev.reasons)}
    if isinstance(ev, ServiceChanged):
        return {"type": "event", "ts": ts, "event": f"{ev.service}_{'up' if ev.up else 'down'}",
                "level": ev.level, "text": ev.detail}
    return None


def open_append(path: str) -> int:
    """An O_APPEND descriptor; a partial last line left by a crash is cut off first."""
    if path == "-":
        return sys.stdout.fileno()
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SinkError(f"cannot write log {path}: folder {folder} does not exist; "
                        "create it or pick another --log path")
    if os.path.isdir(path):
        example = os.path.join(path, "meter.jsonl")
        raise SinkError(f"cannot write log {path}: it is a folder; give a file name, e.g. {example}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except PermissionError:
        raise SinkError(f"cannot write log {path}: permission denied; pick a folder you can write to, "
                        "or fix its owner") from None
    except OSError as exc:
        raise SinkError(f"cannot write log {path}: {exc.strerror}") from None
    try:
        _cut_partial_line(fd)
    except OSError as exc:
        os.close(fd)
        raise SinkError(f"cannot repair the end of log {path}: {exc.strerror}") from None
    return fd


def _cut_partial_line(fd: int) -> None:
    """A crash mid-write can leave half a line at the end; appending after it would glue the next
    record to it. Cut the file back to its last complete line (the half line held no record)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    tail_start = max(0, size - 65536)
    tail = os.pread(fd, size - tail_start, tail_start)
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    os.ftruncate(fd, tail_start + cut + 1 if cut >= 0 else (0 if tail_start == 0 else size))


def write_all(fd: int, data: bytes) -> None:
    """Write everything, going on after a short write."""
    while data:
        data = data[os.write(fd, data):]


class RecordSink:
    """Appends whole lines. Records are batched in memory and written with one write() per flush:
    a process killed at any moment leaves only complete lines (a short write on a full disk aside)."""

    def __init__(self, path: str, fmt: str) -> None:
        log.info("%s records to %s", fmt, path)
        self.path = path
        self.format = fmt
        self._fd = open_append(path)
        self._buf: list[str] = []
        self._needs_header = fmt == "csv" and (path == "-" or os.fstat(self._fd).st_size == 0)

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def write(self, ev: Event) -> None:
        """Queue the record for an event (if it has one); flush() writes it."""
        if self.format == "csv":
            if isinstance(ev, ReadingUpdated):
                self._buf.append(self._csv_line(ev.reading))
            return
        record = event_record(ev)
        if record is not None:
            self._buf.append(json.dumps(record, separators=(", ", ": ")) + "\n")

    def _csv_line(self, r: Reading) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if self._needs_header:
            w.writerow(CSV_FIELDS)
            self._needs_header = False
        rec = r.as_record()
        rec["faults"] = ";".join(rec["faults"]) if rec["faults"] is not None else None
        w.writerow("" if rec[k] is None else rec[k] for k in CSV_FIELDS)
        return buf.getvalue()

    def flush(self) -> None:
        if not self._buf:
            return
        data = "".join(self._buf).encode("utf-8")
        self._buf.clear()
        try:
            write_all(self._fd, data)
        except OSError as exc:
            raise SinkError(f"writing log {self.path} failed: {exc.strerror}; "
                            "free some space or pick another --log path") from None

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self.path != "-":
                os.close(self._fd)
