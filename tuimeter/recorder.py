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


def read_recording(text: str) -> list[tuple[float, str, bytes]] | None:
    """(t, dir, bytes) chunks of a recording, or None when the text is not one. A partial last line is
    skipped; times of later runs continue after the earlier ones."""
    lines = text.split("\n")
    if not lines or '"type":"recording"' not in lines[0].replace(" ", ""):
        return None
    chunks: list[tuple[float, str, bytes]] = []
    offset = last = 0.0
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # blank, or a line cut short by a crash
        if obj.get("type") == "recording":
            offset = last
            continue
        last = offset + float(obj["t"])
        chunks.append((last, str(obj["dir"]), bytes.fromhex(obj["hex"])))
    return chunks
