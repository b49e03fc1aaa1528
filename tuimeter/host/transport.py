"""Serial transport: any pyserial URL through pyserial-asyncio-fast, with errors a user can act on."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable

import serial
import serial_asyncio_fast


class PortError(Exception):
    """The port cannot be opened; str() is one line naming the problem and the fix."""


class _LinkProtocol(asyncio.Protocol):
    def __init__(self, on_data: Callable[[bytes], None], on_lost: Callable[[Exception | None], None]) -> None:
        self._on_data = on_data
        self._on_lost = on_lost

    def data_received(self, data: bytes) -> None:
        self._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(exc)


async def open_link(
    port: str,
    baud: int,
    on_data: Callable[[bytes], None],
    on_lost: Callable[[Exception | None], None],
) -> asyncio.Transport:
    """Open `port` (a device path or any pyserial URL) at `baud` 8N1 and flush stale input."""
    is_url = "://" in port
    if not is_url and os.path.isdir(port):
        raise PortError(f"{port} is a directory, not a serial port; give the device, e.g. /dev/ttyUSB0")
    kwargs: dict[str, object] = {"baudrate": baud, "bytesize": 8, "parity": "N", "stopbits": 1}
    if not is_url:
        kwargs["exclusive"] = True  # a second program on the same UART garbles both
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await serial_asyncio_fast.create_serial_connection(
            loop, lambda: _LinkProtocol(on_data, on_lost), port, **kwargs)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortError(describe_open_error(port, exc)) from None
    ser = getattr(transport, "serial", None)
    if ser is not None and not is_url:
        with contextlib.suppress(serial.SerialException, OSError):
            ser.reset_input_buffer()  # power-up garbage and stale bytes are not the meter's answer
    return transport


READ_SIZE = 4096  # > 0.3 s of 115200 baud: polled every 15 ms, all that is waiting comes in one read


def read_waiting(transport: asyncio.Transport) -> bytes:
    """What the port holds right now, read past the transport (b"" when nothing is waiting, and on an
    error: the transport meets it and reports the lost port as soon as it reads again itself)."""
    ser = getattr(transport, "serial", None)
    if ser is None:
        return b""
    try:
        if type(ser) is serial.Serial and isinstance(ser.fd, int):  # a plain device: one read(2), no select()
            return os.read(ser.fd, READ_SIZE)
        return bytes(ser.read(READ_SIZE))  # URL handlers (spy:// traces what it reads, socket://) their own way
    except (OSError, serial.SerialException):  # BlockingIOError included: nothing waiting
        return b""


def describe_open_error(port: str, exc: BaseException) -> str:
    """Turn pyserial's and the OS's errors into one line with the fix."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or "No such file" in text:
        return f"cannot open {port}: no such device; check the cable, or run 'tuimeter --list-ports'"
    if code == errno.EACCES or "Permission denied" in text:
        return (f"cannot open {port}: permission denied; add yourself to the port's group "
                "('sudo usermod -aG dialout $USER', then log in again)")
    if code == errno.EBUSY or "exclusively lock" in text or "Resource temporarily unavailable" in text:
        return (f"cannot open {port}: the port is busy; close the other program using it "
                "(another tuimeter, a terminal, ModemManager)")
    if code == errno.EISDIR:
        return f"{port} is a directory, not a serial port; give the device, e.g. /dev/ttyUSB0"
    if code == errno.ENOTTY or "Inappropriate ioctl" in text:
        return f"cannot use {port}: it is not a serial port; give the device, e.g. /dev/ttyUSB0"
    if code == errno.ECONNREFUSED or "refused" in text.lower():
        return f"cannot connect to {port}: connection refused; is the serial server running on that host and port?"
    if "expected a string in the form" in text or ("invalid" in text.lower() and "://" in port):
        return f"cannot open {port}: not a valid port URL ({text})"
    return f"cannot open {port}: {text}"


def list_ports() -> list[tuple[str, str, str]]:
    """(device, description, hardware id) of every serial port the OS knows."""
    from serial.tools import list_ports as lp

    return sorted((p.device, p.description, p.hwid) for p in lp.comports())
