"""`--record FILE`: every byte each way, with times, in an append-only JSON-lines file.

Format (one JSON object a line):
  {"type": "recording", "version": 1, "port": "/dev/ttyUSB0", "baud": 9600, "started": "<ISO-8601>"}
  {"t": 0.0123, "dir": "tx", "hex": "55aa00000000ff"}      t: seconds since "started"; dir: tx = host → MCU
  {"t": 0.0301, "dir": "rx", "hex": "55aa030000010003"}    rx = MCU → host, as read (not split into frames)
  {"t": 5.1, "type": "event", "event": "setting_change", …}  every settings write attempt, and every trip,
                                                             as in the --log records (readers skip these)
A new header line starts each run appended to the same file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tuimeter.core.events import CommandFinished, Event, Tripped
from tuimeter.sinks import SinkError, event_record, open_append, write_all

log = logging.getLogger(__name__)

RECORDING_VERSION = 1


class Recorder:
    """Queues chunks and writes them with one write() per flush (crash-safe like the record sinks)."""

    def __init__(self, path: str, port: str, baud: int) -> None:
        log.info("recording every byte of %s to %s", port, path)
        self.path = path
        self._fd = open_append(path)
        self._t0 = time.monotonic()
        self._buf: list[str] = []
        self._scheduled = False
        self.failed = False
        self._line({"type": "recording", "version": RECORDING_VERSION, "port": port, "baud": baud,
                    "started": datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")})
        self.flush()

    def _line(self, obj: dict[str, Any]) -> None:
        self._buf.append(json.dumps(obj, separators=(",", ":")) + "\n")

    def tap(self, direction: str, data: bytes) -> None:
        if self.failed:
            return
        self._line({"t": round(time.monotonic() - self._t0, 4), "dir": direction, "hex": data.hex()})
        self._schedule()  # one write per turn of the event loop

    def note(self, ev: Event) -> None:
        """A bus listener: settings writes (whatever their result) and trips go into the recording too,
        so a recording says what the person changed, next to the bytes that did it."""
        if self.failed or not ((isinstance(ev, CommandFinished) and ev.setting is not None) or isinstance(ev, Tripped)):
            return
        record = event_record(ev)
        if record is not None:
            self._line({"t": round(time.monotonic() - self._t0, 4), **record})
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        try:
            self.flush()
        except SinkError as exc:  # the meter keeps running; the recording stops, and says so once
            self.failed = True
            print(f"tuimeter: {exc}; recording stopped", file=sys.stderr)

    def flush(self) -> None:
        if not self._buf:
            return
        data = "".join(self._buf).encode()
        self._buf.clear()
        try:
            write_all(self._fd, data)
        except OSError as exc:
            raise SinkError(f"writing recording {self.path} failed: {exc.strerror}") from None

    def close(self) -> None:
        try:
            if not self.failed:
                self.flush()
        finally:
            os.close(self._fd)


Chunk = tuple[float, str, bytes]  # (t, "tx" | "rx", bytes)


class RecordingError(ValueError):
    """A file that is not a readable recording; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class Recording:
    started: datetime
    port: str
    baud: int
    chunks: list[Chunk]
    runs: list[tuple[float, datetime]] = field(default_factory=list)  # (t where a run begins, its start)
    problems: list[str] = field(default_factory=list)

    def wall_time(self, t: float) -> datetime:
        """When chunk time t happened: from the start of the run it belongs to."""
        offset, started = 0.0, self.started
        for run_t, run_started in self.runs[1:]:
            if run_t >= t:  # a later run begins after the last chunk of the one before
                break
            offset, started = run_t, run_started
        return started + timedelta(seconds=t - offset)


def _header(line: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and obj.get("type") == "recording" else None


def _started(header: dict[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(header["started"]))
    except (KeyError, ValueError):
        return None
    return when if when.tzinfo is not None else when.astimezone()


def parse_recording(text: str) -> Recording | None:
    """A recording's header and (t, dir, bytes) chunks, or None when the text is not one. Lines that
    do not parse (a partial last line after a crash) are skipped; the times of later runs appended to
    the same file continue after the earlier ones (playback skips the gap), and each run keeps its own
    start for the wall-clock time of its readings."""
    lines = text.split("\n")
    first = _header(lines[0]) if lines else None
    if first is None:
        return None
    problems: list[str] = []
    started = _started(first)
    if started is None:
        problems.append("the recording does not say when it started; times are shown from now")
        started = datetime.now(UTC).astimezone()
    baud = first.get("baud")
    chunks: list[Chunk] = []
    runs: list[tuple[float, datetime]] = [(0.0, started)]
    offset = last = 0.0
    for line in lines[1:]:
        header = _header(line)
        if header is not None:
            offset = last
            runs.append((offset, _started(header) or runs[-1][1]))
            continue
        try:
            obj = json.loads(line)
            t, direction, data = offset + float(obj["t"]), str(obj["dir"]), bytes.fromhex(obj["hex"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # blank, cut short by a crash, or not a chunk
        if direction in ("rx", "tx") and math.isfinite(t) and t >= last:
            last = t
            chunks.append((t, direction, data))
    return Recording(started, str(first.get("port", "")), baud if isinstance(baud, int) else 9600, chunks,
                     runs, problems)


def read_recording(text: str) -> list[Chunk] | None:
    recording = parse_recording(text)
    return recording.chunks if recording is not None else None


def load_recording(path: str) -> Recording:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise RecordingError(f"cannot read recording {path}: {exc.strerror}") from None
    recording = parse_recording(text)
    if recording is None:
        raise RecordingError(f"{path} is not a tuimeter recording (make one with --record FILE)")
    if not recording.chunks:
        raise RecordingError(f"recording {path} holds no data")
    return recording
