"""Headless monitor: a status line per reading, machine records to a file. Never imports Textual."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from tuimeter.core.events import (
    CommandFinished,
    DatapointReceived,
    Event,
    FrameLogged,
    LinkChanged,
    LinkState,
    McuRestarted,
    Notice,
    ParseProblem,
    ProductInfoReceived,
    ProfileChosen,
    ReadingUpdated,
    RelayChanged,
    ServiceChanged,
    Tripped,
    command_text,
)
from tuimeter.core.meter import Reading
from tuimeter.exitcodes import ExitCode
from tuimeter.host.api import MeterSession
from tuimeter.sinks import RecordSink, SinkError

log = logging.getLogger(__name__)

STATUS_EVERY = 1.0  # seconds between status lines, at most
SKIPPED = (DatapointReceived, FrameLogged, ParseProblem)  # per-datapoint and per-frame events: not read here


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def status_line(r: Reading, color: bool = False) -> str:
    """One readable line: time, V, A, W, kWh, leakage, relay, faults."""
    relay = "?" if r.relay is None else "ON" if r.relay else "OFF"
    faults = "?" if r.faults is None else ",".join(r.faults) or "none"
    parts = [
        r.ts.strftime("%H:%M:%S"),
        f"{_num(r.voltage_v, '6.1f')} V",
        f"{_num(r.current_a, '7.3f')} A",
        f"{_num(r.power_w, '6.0f')} W",
        f"{_num(r.energy_kwh, '10.2f')} kWh",
        f"leak {_num(r.leakage_ma, '3.0f')} mA",
        f"relay {relay:3}",
        f"faults {faults}",
    ]
    if color:
        bold, red, reset = "\x1b[1m", "\x1b[31m", "\x1b[0m"
        parts[1:5] = [f"{bold}{p}{reset}" for p in parts[1:5]]
        if r.faults:
            parts[7] = f"{red}{parts[7]}{reset}"
    return "  ".join(parts)


def event_line(ev: Event) -> str | None:
    t = ev.ts.strftime("%H:%M:%S")
    if isinstance(ev, LinkChanged):
        return f"{t}  link {ev.state.value}" + (f": {ev.reason}" if ev.reason else "")
    if isinstance(ev, McuRestarted):
        return f"{t}  the meter's MCU restarted; running start-up again"
    if isinstance(ev, ProductInfoReceived):
        return f"{t}  product info: {ev.info.text}"
    if isinstance(ev, ProfileChosen):
        return f"{t}  profile {ev.name} ({ev.reason})"
    if isinstance(ev, RelayChanged):
        state = "unknown" if ev.on is None else "on" if ev.on else "off"
        return f"{t}  relay {state}"
    if isinstance(ev, Notice):
        return f"{t}  {ev.level}: {ev.text}" if ev.level != "info" else f"{t}  {ev.text}"
    if isinstance(ev, CommandFinished):
        return f"{t}  {command_text(ev)}"
    if isinstance(ev, Tripped):
        return f"{t}  the meter tripped: {', '.join(ev.reasons)}; relay off"
    if isinstance(ev, ServiceChanged):
        return f"{t}  {ev.service} {'up' if ev.up else 'down'}" + (f": {ev.detail}" if ev.detail else "")
    return None


def writes_to_journal(out: TextIO) -> bool:
    """True when `out` is the very stream journald handed us ($JOURNAL_STREAM is "device:inode"),
    not a file a child of a service was redirected to."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(out.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return dev.isdigit() and ino.isdigit() and (st.st_dev, st.st_ino) == (int(dev), int(ino))


def journal_priority(ev: Event) -> int:
    """sd-daemon(3) priority: 3 error, 4 warning, 6 info."""
    level = getattr(ev, "level", "info")
    if isinstance(ev, LinkChanged) and ev.state in (LinkState.LINK_LOST, LinkState.RECONNECTING):
        level = "warning"
    if (isinstance(ev, CommandFinished) and not ev.ok) or isinstance(ev, Tripped):
        level = "warning"
    return {"error": 3, "warning": 4}.get(level, 6)


@dataclass
class HeadlessOptions:
    log: str | None = None
    format: str = "jsonl"
    every: float = 0.0
    flush_every: float = 0.0  # 0: write each burst of records at once; >0: at most this late


class HeadlessMonitor:
    """Consumes the session's events: prints status and event lines, writes records."""

    def __init__(self, session: MeterSession, options: HeadlessOptions, out: TextIO | None = None) -> None:
        self.session = session
        self.options = options
        self.sink = RecordSink(options.log, options.format) if options.log else None
        # with records on stdout, the human lines move to stderr
        self.out = out or (sys.stderr if options.log == "-" else sys.stdout)
        self.color = self.out.isatty()
        # under systemd (journald sets JOURNAL_STREAM): no times of our own, a syslog priority instead
        self.journal = writes_to_journal(self.out)
        self._last_emit: datetime | None = None
        self._held: ReadingUpdated | None = None  # the newest reading skipped by --every
        self._lines: list[str] = []  # status lines waiting for the next flush
        self._due: float | None = None  # when queued output must be written (monotonic)
        # at most one status line a second for people and journald; --log still gets every reading
        self._status_at = float("-inf")
        self._status_held: ReadingUpdated | None = None
        self._status_timer: asyncio.TimerHandle | None = None
        # Events arrive a burst at a time through a batch listener (no queue, no task switch per burst:
        # this runs on small Pis at line rate); consume() only waits for the bus to close.
        self._timer: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None
        self._failed = asyncio.Event()
        session.bus.add_batch_listener(self._on_burst)  # before the session starts: no event is missed

    def _on_burst(self, events: list[Event]) -> None:
        """Everything one read of the port produced: handled, and written once, right here."""
        if self._error is not None:
            return
        try:
            for ev in events:
                if not isinstance(ev, SKIPPED):
                    self.handle(ev)
            self._flush_when_due()
        except Exception as exc:  # a record file that became unwritable: consume() reports it and ends
            log.error("headless output failed", exc_info=exc)
            self._error = exc
            self._failed.set()

    def _flush_when_due(self) -> None:
        if self._due is None:
            return
        wait = self._due - time.monotonic()
        if wait <= 0:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self._flush_when_due()
        except Exception as exc:
            self._error = exc
            self._failed.set()

    def handle(self, ev: Event) -> None:
        if isinstance(ev, ReadingUpdated) and self.options.every > 0:
            # readings at least --every seconds apart, by the time the meter reported them
            if self._last_emit is not None and (ev.ts - self._last_emit).total_seconds() < self.options.every:
                self._held = ev
                return
            self._last_emit = ev.ts
            self._held = None
        self._emit(ev)

    def _emit(self, ev: Event) -> None:
        if isinstance(ev, ReadingUpdated):
            now = time.monotonic()
            if now - self._status_at < STATUS_EVERY:
                self._status_held = ev  # shown when the second is up, if nothing newer came
            else:
                self._status_at, self._status_held = now, None
                self._queue_line(ev, status_line(ev.reading, self.color))
        else:
            line = event_line(ev)
            if line is not None:
                self._queue_line(ev, line)
        if self.sink is not None:
            self.sink.write(ev)
        if self._lines or (self.sink is not None and self.sink.pending):  # the earliest promise stands
            due = time.monotonic() + self.options.flush_every
            self._due = due if self._due is None else min(self._due, due)
        if self._status_held is not None and self._status_timer is None:
            loop = asyncio.get_running_loop()
            self._status_timer = loop.call_at(loop.time() + self._status_at + STATUS_EVERY - time.monotonic(),
                                              self._show_held_status)

    def _show_held_status(self) -> None:
        """The newest reading's line, once its second is up (stdout only: records are not held)."""
        self._status_timer = None
        held, self._status_held = self._status_held, None
        if held is None:
            return
        self._status_at = time.monotonic()
        self._queue_line(held, status_line(held.reading, self.color))
        with contextlib.suppress(OSError, ValueError):
            self._write_lines()

    def _queue_line(self, ev: Event, line: str) -> None:
        """For journald, the time (the first 10 characters) gives way to a priority."""
        self._lines.append((f"<{journal_priority(ev)}>{line[10:]}" if self.journal else line) + "\n")

    def _write_lines(self) -> None:
        if self._lines:
            self.out.write("".join(self._lines))
            self.out.flush()
            self._lines.clear()

    def flush(self, final: bool = False) -> None:
        """Write what is queued: one write for the status lines, one for the records."""
        self._due = None
        if final and self._status_held is not None:  # the last state is not left unshown at shutdown
            if self._status_timer is not None:
                self._status_timer.cancel()
            self._show_held_status()
        self._write_lines()
        if self.sink is not None:
            self.sink.flush()

    async def consume(self) -> None:
        """Run until the bus closes (or a record write fails, which is raised); write what is left."""
        closed = asyncio.ensure_future(self.session.bus.wait_closed())
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait({closed, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            failed.cancel()
            if self._timer is not None:
                self._timer.cancel()
            if self._error is None and self._held is not None:
                self._emit(self._held)  # the last state the meter reported is not lost at shutdown
            try:
                if self._error is None:
                    self.flush(final=True)
            finally:
                if self.sink is not None:
                    self.sink.close()
        if self._error is not None:
            raise self._error


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)


async def run_monitor(session: MeterSession, monitor: HeadlessMonitor, stop: asyncio.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM (or `stop` is set, e.g. at the end of a replay); returns the exit code."""
    consumer = asyncio.create_task(monitor.consume())
    stop = stop or asyncio.Event()
    install_stop_signals(stop)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({stopper, consumer}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    await session.close()  # closes the bus: the consumer drains what is queued, then ends
    try:
        await consumer
    except SinkError as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return ExitCode.RUNTIME
    return ExitCode.OK
