"""Machine records of readings and events: JSON lines or CSV, appended, one complete line at a time."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from typing import IO, Any

from tuimeter.core.events import (
    Event,
    LinkChanged,
    LinkState,
    McuRestarted,
    Notice,
    ProductInfoReceived,
    ReadingUpdated,
    RelayChanged,
)
from tuimeter.core.meter import Reading

CSV_FIELDS = ("ts", "voltage_v", "current_a", "power_w", "energy_kwh", "leakage_ma", "relay", "faults")

_LINK_EVENTS = {
    LinkState.ONLINE: "link_up",
    LinkState.LINK_LOST: "link_lost",
    LinkState.RECONNECTING: "port_lost",
    LinkState.HANDSHAKING: "handshaking",
}


class SinkError(Exception):
    """The record file cannot be written; str() names the problem and the fix."""


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
    if isinstance(ev, ProductInfoReceived):
        return {"type": "event", "ts": ts, "event": "product_info", "product_id": ev.info.product_id,
                "mcu_version": ev.info.mcu_version, "raw": ev.info.text}
    if isinstance(ev, Notice) and ev.level != "info":
        return {"type": "event", "ts": ts, "event": "notice", "level": ev.level, "text": ev.text}
    return None


def _open_append(path: str) -> IO[str]:
    if path == "-":
        return sys.stdout
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SinkError(f"cannot write log {path}: folder {folder} does not exist; "
                        "create it or pick another --log path")
    if os.path.isdir(path):
        example = os.path.join(path, "meter.jsonl")
        raise SinkError(f"cannot write log {path}: it is a folder; give a file name, e.g. {example}")
    try:
        return open(path, "a", encoding="utf-8", newline="")
    except PermissionError:
        raise SinkError(f"cannot write log {path}: permission denied; pick a folder you can write to, "
                        "or fix its owner") from None
    except OSError as exc:
        raise SinkError(f"cannot write log {path}: {exc.strerror}") from None


class RecordSink:
    """Writes whole lines and flushes each, so a crash leaves at most the last line partial."""

    def __init__(self, path: str, fmt: str) -> None:
        self.path = path
        self.format = fmt
        self._fh = _open_append(path)
        self._needs_header = fmt == "csv" and self._is_empty()

    def _is_empty(self) -> bool:
        try:
            return self._fh.tell() == 0 if self._fh is not sys.stdout else True
        except OSError:
            return True

    def write(self, ev: Event) -> None:
        if self.format == "csv":
            if isinstance(ev, ReadingUpdated):
                self._write_line(self._csv_line(ev.reading))
            return
        record = event_record(ev)
        if record is not None:
            self._write_line(json.dumps(record, separators=(", ", ": ")) + "\n")

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

    def _write_line(self, line: str) -> None:
        try:
            self._fh.write(line)
            self._fh.flush()
        except OSError as exc:
            raise SinkError(f"writing log {self.path} failed: {exc.strerror}; "
                            "free some space or pick another --log path") from None

    def close(self) -> None:
        if self._fh is not sys.stdout:
            self._fh.close()
