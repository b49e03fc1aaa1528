"""`--record FILE`: every byte each way, with times, in an append-only JSON-lines file.

Format (one JSON object a line):
  {"type": "recording", "version": 1, "port": "/dev/ttyUSB0", "baud": 9600, "started": "<ISO-8601>"}
  {"t": 0.0123, "dir": "tx", "hex": "55aa00000000ff"}      t: seconds since "started"; dir: tx = host → MCU
  {"t": 0.0301, "dir": "rx", "hex": "55aa030000010003"}    rx = MCU → host, as read (not split into frames)
A new header line starts each run appended to the same file.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tuimeter.sinks import SinkError, open_append, write_all

RECORDING_VERSION = 1


class Recorder:
    """Queues chunks and writes them with one write() per flush (crash-safe like the record sinks)."""

    def __init__(self, path: str, port: str, baud: int) -> None:
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
        if not self._scheduled:  # one write per turn of the event loop
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


def parse_recording(text: str) -> Recording | None:
    """A recording's header and (t, dir, bytes) chunks, or None when the text is not one. Lines that
    do not parse (a partial last line after a crash) are skipped; times of later runs appended to
    the same file continue after the earlier ones."""
    lines = text.split("\n")
    if not lines or '"type":"recording"' not in lines[0].replace(" ", ""):
        return None
    header = json.loads(lines[0])
    chunks: list[Chunk] = []
    offset = last = 0.0
    for line in lines[1:]:
        try:
            obj = json.loads(line)
            if obj.get("type") == "recording":
                offset = last
                continue
            t, direction, data = offset + float(obj["t"]), str(obj["dir"]), bytes.fromhex(obj["hex"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # blank, cut short by a crash, or not a chunk
        if direction in ("rx", "tx"):
            last = t
            chunks.append((t, direction, data))
    try:
        started = datetime.fromisoformat(str(header.get("started")))
    except ValueError:
        started = datetime.now(UTC).astimezone()
    return Recording(started, str(header.get("port", "")), int(header.get("baud", 9600)), chunks)


def read_recording(text: str) -> list[Chunk] | None:
    recording = parse_recording(text)
    return recording.chunks if recording is not None else None


def load_recording(path: str) -> Recording:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise RecordingError(f"cannot read recording {path}: {exc.strerror}") from None
    try:
        recording = parse_recording(text)
    except (ValueError, TypeError):
        recording = None
    if recording is None:
        raise RecordingError(f"{path} is not a tuimeter recording (make one with --record FILE)")
    if not recording.chunks:
        raise RecordingError(f"recording {path} holds no data")
    return recording
