"""Serve a SimulatedMeter on a pseudo-terminal, so any program can open it like a serial port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import tty
from pathlib import Path

from tuimeter.sim.faults import LineInjector
from tuimeter.sim.mcu import SimulatedMeter

log = logging.getLogger(__name__)


class PtyMeterServer:
    """The meter's side of a pty pair. `path` is the device the host opens; `link`, if given,
    is a symlink kept pointing at it (also across vanish()/restore(), like /dev/serial/by-id)."""

    def __init__(self, meter: SimulatedMeter, link: str | Path | None = None, seed: int = 0) -> None:
        self.meter = meter
        self.plan = meter.plan
        self.injector = LineInjector(self.plan, seed) if self.plan.mangles else None
        self.link = Path(link) if link is not None else None
        self.unplugs = 0
        self._unplug_rng = random.Random(f"{seed}:unplug")
        self._pending = bytearray()  # bytes not yet written (dribble mode, or a full pty buffer)
        self._dribbler: asyncio.Task[None] | None = None
        self._unplugger: asyncio.Task[None] | None = None
        self.path = ""
        self.bytes_in = 0
        self.bytes_out = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def port(self) -> str:
        """What a host should open: the link if there is one, else the device path."""
        return str(self.link) if self.link is not None else self.path

    @property
    def online(self) -> bool:
        return self._master is not None

    async def start(self) -> str:
        self._open_pty()
        self._ticker = asyncio.create_task(self._tick_loop(), name="sim-ticker")
        if self.plan.dribble:
            self._dribbler = asyncio.create_task(self._dribble_loop(), name="sim-dribble")
        if self.plan.unplug_every > 0:
            self._unplugger = asyncio.create_task(self._unplug_loop(), name="sim-unplug")
        return self.port

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass through unchanged
        os.set_blocking(master, False)
        self._master, self._slave = master, slave  # holding the slave keeps master reads from EIO
        self.path = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.path)
            tmp.replace(self.link)  # atomic: a reader never sees the link missing mid-update
        asyncio.get_running_loop().add_reader(master, self._on_readable)

    def _close_pty(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None

    def vanish(self) -> None:
        """Unplug: close the pty (the host's reads fail) and remove the link."""
        log.info("simulated meter unplugged")
        self._close_pty()
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    def restore(self) -> None:
        """Plug back in: a new pty, the link pointing at it again."""
        log.info("simulated meter plugged back in")
        if self._master is None:
            self._open_pty()
            self._wake.set()

    async def close(self) -> None:
        for task in (self._ticker, self._dribbler, self._unplugger):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.vanish()

    def _on_readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        self.bytes_in += len(data)
        self.meter.receive(data, time.monotonic())
        self._flush()
        self._wake.set()  # a command may have changed the next deadline

    def _flush(self) -> None:
        frames = self.meter.frames_to_send()
        if not frames or self._master is None:
            return
        data = self.injector.process(frames) if self.injector is not None else b"".join(frames)
        if self.plan.dribble:
            self._pending += data  # the dribble task writes them one by one
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        try:
            n = os.write(self._master, data)
        except (BlockingIOError, OSError):
            return  # nobody is reading and the pty buffer is full: a UART would lose these too
        self.bytes_out += n

    async def _dribble_loop(self) -> None:
        while True:
            if self._pending:
                self._write(bytes(self._pending[:1]))
                del self._pending[:1]
                await asyncio.sleep(0.001)  # about one byte time at 9600 baud
            else:
                await asyncio.sleep(0.01)

    async def _unplug_loop(self) -> None:
        while True:
            await asyncio.sleep(self._unplug_rng.expovariate(1 / self.plan.unplug_every))
            self.vanish()
            self.unplugs += 1
            await asyncio.sleep(self.plan.unplug_for)
            self.restore()

    async def _tick_loop(self) -> None:
        while True:
            now = time.monotonic()
            self.meter.tick(now)
            self._flush()
            delay = min(max(self.meter.next_deadline() - time.monotonic(), 0.01), 1.0)
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that meets the
            # wake-up (gh-86296), and close() would then wait for this loop for ever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
