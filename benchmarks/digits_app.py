"""The live screen's reference (benchmarks/tui.py): a bare Textual app showing the five values the
real screen's panels show (voltage, current, power, energy, leakage) in `textual.widgets.Digits`,
all five updated from every dp 6 report read from the port, through pyserial-asyncio-fast as tuimeter
reads it. No start-up: it writes one heartbeat so the benchmark's meter starts streaming; frames are
found with the core benchmark's floor loop. Energy is the power integrated over time (the stream
carries no energy report), so it changes as rarely as the meter's own.

    python benchmarks/digits_app.py PORT
"""

from __future__ import annotations

import asyncio
import sys
import time

import serial_asyncio_fast
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.widgets import Digits

HELLO = bytes.fromhex("55aa00000000ff")  # a heartbeat
VALUES = ("voltage", "current", "power", "energy", "leakage")


class Line(asyncio.Protocol):
    def __init__(self, app: DigitsApp) -> None:
        self.app = app
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(HELLO)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        latest = b""
        i, n = 0, len(buf)
        while True:
            i = buf.find(b"\x55\xaa", i)
            if i < 0 or i + 7 > n:
                break
            end = i + 7 + ((buf[i + 4] << 8) | buf[i + 5])
            if end > n:
                break
            if sum(buf[i:end - 1]) & 0xFF == buf[end - 1]:
                if buf[i + 3] == 0x07 and buf[i + 6] == 6 and end - i == 21:  # dp 6, 10 raw bytes
                    latest = buf[i + 10:end - 1]
                i = end
            else:
                i += 1
        self.buf = buf[i:] if i >= 0 else buf[-1:]
        if latest:
            self.app.show(latest)


class DigitsApp(App[None]):
    CSS = "Digits { width: 1fr; border: round $accent; padding: 0 1; }"

    def __init__(self, port: str) -> None:
        super().__init__()
        self.port = port
        self.kwh = 1234.56
        self.last = time.monotonic()

    def compose(self) -> ComposeResult:
        with Horizontal():
            for name in VALUES:
                digits = Digits("—", id=name)
                digits.border_title = name
                yield digits

    async def on_mount(self) -> None:
        self.digits = [self.query_one(f"#{name}", Digits) for name in VALUES]
        await serial_asyncio_fast.create_serial_connection(asyncio.get_running_loop(), lambda: Line(self),
                                                           self.port, baudrate=115200)

    def show(self, v: bytes) -> None:
        """One dp 6 value: V(2) 0.1 V, I(3) mA, P(3) W, leakage(2) mA."""
        now = time.monotonic()
        watts = int.from_bytes(v[5:8], "big")
        self.kwh += watts * (now - self.last) / 3.6e6
        self.last = now
        texts = (f"{int.from_bytes(v[0:2], 'big') / 10:.1f}", f"{int.from_bytes(v[2:5], 'big') / 1000:.3f}",
                 f"{watts}", f"{self.kwh:.2f}", f"{int.from_bytes(v[8:10], 'big')}")
        for digits, text in zip(self.digits, texts, strict=True):
            digits.update(text)


if __name__ == "__main__":
    DigitsApp(sys.argv[1]).run()
