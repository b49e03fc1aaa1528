"""The asyncio host: owns the port, drives the HostMachine, publishes its events.

Every relay command, from any front end, goes through `set_relay()`: the one command path. Front
ends use it through `MeterSession` (host/api.py) and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tuimeter import logs
from tuimeter.core.events import CommandFinished, CommandSource, Event, LinkState, Notice
from tuimeter.core.host import CommandRefused, HostConfig, HostMachine
from tuimeter.core.profile import Profile
from tuimeter.core.settings import PreparedWrite
from tuimeter.host.api import CommandFailed, MachineViews, SessionStatus
from tuimeter.host.bus import EventBus
from tuimeter.host.clock import local_now
from tuimeter.host.transport import PortError, open_link, read_waiting

__all__ = ["CommandFailed", "CommandRefused", "HostSession", "PortError", "SessionOptions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionOptions:
    port: str
    baud: int = 9600
    reconnect_min: float = 0.25
    reconnect_max: float = 1.0
    no_data_hint_after: float = 5.0
    # Under a fast stream, the port is polled every this many seconds instead of watched: one wake-up
    # and one read take all that arrived meanwhile (a few frames), instead of a wake-up per frame. Adds
    # at most this much latency; a meter reporting every few seconds is read the moment it speaks.
    read_coalesce: float = 0.015


class HostSession(MachineViews[HostMachine]):
    def __init__(self, options: SessionOptions, profile: Profile, config: HostConfig | None = None,
                 candidates: Sequence[Profile] = (), wallclock: Callable[[], datetime] = local_now) -> None:
        """`candidates`: profiles to pick from by the meter's product id or datapoints (none: keep `profile`)."""
        self.options = options
        self.machine = HostMachine(profile, config, candidates)
        self.bus = EventBus()
        self._wall = wallclock
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._lost: asyncio.Future[Exception | None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._runner: asyncio.Task[None] | None = None
        self._waiters: dict[int, asyncio.Future[CommandFinished]] = {}
        self._online = asyncio.Event()
        self._closing = False
        self._taps: list[Callable[[str, bytes], None]] = []
        self._last_read = float("-inf")
        self._polling: asyncio.TimerHandle | None = None  # the port is polled, not watched (a fast stream)
        self.reconnects = 0

    @property
    def link(self) -> LinkState:
        return self.machine.link

    @property
    def port_label(self) -> str:
        return f"{self.options.port} @ {self.options.baud}"

    # ---- what front ends read (MeterSession) -----------------------------------------------
    def status(self) -> SessionStatus:
        m = self.machine
        hb = m.last_heartbeat_reply
        return SessionStatus.of(m, m.link, online=m.online, port_label=self.port_label,
                                heartbeat_age=None if hb is None else max(0.0, self._loop.time() - hb),
                                read_only=m.config.read_only, replay=False)

    def wall_time(self) -> datetime:
        return self._wall()

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the port (PortError if that fails) and keep the link running in the background."""
        await self._open()
        self._runner = asyncio.create_task(self._run(), name="tuimeter-session")
        self._runner.add_done_callback(self._run_ended)

    def _run_ended(self, task: asyncio.Task[None]) -> None:
        """The run loop catches what it expects; anything else must not end it unseen."""
        if task.cancelled() or self._closing:
            return
        exc = task.exception()
        if exc is not None and isinstance(exc, Exception):
            self._internal_error("the session's run loop (the port is no longer watched; restart tuimeter)", exc)

    async def close(self) -> None:
        """Stop: commands still waiting fail, the link turns CLOSED (published), then the bus closes."""
        if self._closing:
            return
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._close_transport()
        self._cancel_timer()
        try:
            self.machine.close(self._wall())
            self._flush()
        finally:
            self._cancel_timer()
            for fut in self._waiters.values():
                if not fut.done():
                    fut.cancel()
            self.bus.close()

    async def _open(self) -> None:
        self._lost = self._loop.create_future()
        self._transport = await open_link(self.options.port, self.options.baud, self._on_data, self._on_lost)
        log.info("port %s open at %d baud", self.options.port, self.options.baud)
        self.machine.connection_made(self._loop.time(), self._wall())
        self._flush()
        self._loop.call_later(self.options.no_data_hint_after, self._check_no_data,
                              self.machine.frames_in, self._transport)

    async def _run(self) -> None:
        while not self._closing:
            assert self._lost is not None
            exc = await self._lost
            log.info("port %s lost: %s", self.options.port, exc or "closed")
            self._close_transport()
            try:
                self.machine.connection_lost(self._loop.time(), self._wall(),
                                             f"port lost: {exc or 'closed'}; reconnecting")
            except Exception as err:  # a bug must not stop the reconnecting
                self._internal_error("the lost port", err)
            self._online.clear()
            self._flush()
            await self._reconnect()

    async def _reconnect(self) -> None:
        """Reopen the port forever, with backoff; an unexpected error is reported and retried the same way."""
        delay = self.options.reconnect_min
        attempt = 0
        while not self._closing:
            await asyncio.sleep(delay)
            attempt += 1
            try:
                await self._open()
            except PortError as exc:
                if attempt == 1 or attempt % 30 == 0:
                    self._notice(f"{exc} (retrying, attempt {attempt})", "warning")
                delay = min(delay * 2, self.options.reconnect_max)
                continue
            except Exception as exc:  # not a port problem we know: say so (traceback logged), keep trying
                self._close_transport()
                if attempt == 1 or attempt % 30 == 0:
                    self._internal_error(f"reopening {self.options.port} (retrying, attempt {attempt})", exc)
                delay = min(delay * 2, self.options.reconnect_max)
                continue
            self.reconnects += 1
            self._notice(f"port {self.options.port} is back after {attempt} attempt(s)")
            return

    def _close_transport(self) -> None:
        if self._polling is not None:
            self._polling.cancel()
            self._polling = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # ---- I/O callbacks ---------------------------------------------------------------------
    def add_tap(self, tap: Callable[[str, bytes], None]) -> None:
        """Called with ("rx", bytes) for every read and ("tx", bytes) for every write, unparsed."""
        self._taps.append(tap)

    def _on_data(self, data: bytes) -> None:
        now = self._loop.time()
        if now - self._last_read < self.options.read_coalesce and self._transport is not None \
                and self._polling is None:
            # bytes are flowing: stop watching the port, read what gathered every read_coalesce seconds
            self._transport.pause_reading()
            self._polling = self._loop.call_later(self.options.read_coalesce, self._poll, self._transport)
        self._last_read = now
        self._received(data)

    def _poll(self, transport: asyncio.Transport) -> None:
        self._polling = None
        if transport is not self._transport or transport.is_closing():  # a port reopened meanwhile is not ours
            return
        data = read_waiting(transport)
        if data:
            self._last_read = self._loop.time()
            self._polling = self._loop.call_later(self.options.read_coalesce, self._poll, transport)
            self._received(data)
        else:  # the stream paused (or the port failed): watch it again; the transport reports a lost port
            transport.resume_reading()

    def _received(self, data: bytes) -> None:
        for tap in self._taps:
            tap("rx", data)
        try:
            self.machine.receive(data, self._loop.time(), self._wall())
        except Exception as exc:  # a bug must not stop the link; say it once, keep going
            self._internal_error("received data", exc)
        finally:
            self._flush()

    def _on_lost(self, exc: Exception | None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(exc)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.machine.tick(self._loop.time(), self._wall())
        except Exception as exc:
            self._internal_error("a timer", exc)
        finally:
            self._flush()  # re-arms the timer, so heartbeats go on whatever happened

    def _internal_error(self, where: str, exc: Exception) -> None:
        log.error("internal error while handling %s", where, exc_info=exc)
        self._notice(f"internal error while handling {where}: {type(exc).__name__}: {exc}; the traceback is in "
                     f"{logs.error_destination()}; please report it with the frame log", "error")

    def _flush(self) -> None:
        """Write what the machine wants sent, publish its events, re-arm its timer."""
        try:
            out = self.machine.data_to_send()
            if out and self._transport is not None and not self._transport.is_closing():
                self._transport.write(out)
                for tap in self._taps:
                    tap("tx", out)
            events = self.machine.events()
            if events:
                self._dispatch(events)
        finally:
            self._arm_timer()

    def _dispatch(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, CommandFinished):
                fut = self._waiters.pop(ev.token, None)
                if fut is not None and not fut.done():
                    fut.set_result(ev)
        if self.machine.link is LinkState.ONLINE:
            self._online.set()
        else:
            self._online.clear()
        self.bus.publish(events)

    def _arm_timer(self) -> None:
        deadline = self.machine.next_deadline()
        if self._timer is not None:
            if deadline is not None and abs(self._timer.when() - deadline) < 1e-6:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None and not self._closing:
            self._timer = self._loop.call_at(max(deadline, self._loop.time()), self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _notice(self, text: str, level: str = "info") -> None:
        if self.bus.closed:
            return
        self.bus.publish([Notice(self._wall(), text, level)])

    def _check_no_data(self, frames_before: int, transport: asyncio.Transport | None) -> None:
        if transport is not self._transport or self._closing or self.machine.frames_in > frames_before:
            return
        got = self.machine.parser.stats.bytes_in
        if got:
            self._notice(f"{got} bytes from {self.options.port} but no valid TuyaMCU frame at "
                         f"{self.options.baud} baud; wrong speed? try --baud "
                         f"{115200 if self.options.baud != 115200 else 9600}", "warning")
        else:
            self._notice(f"nothing received from {self.options.port} in {self.options.no_data_hint_after:g} s; "
                         "check the wiring (adapter TX to module RX, RX to TX, GND) and that the meter is "
                         "powered, or try --baud 115200", "warning")

    def use_profile(self, profile: Profile, reason: str) -> None:
        """Read the meter through another profile from now on; the panels follow at once."""
        self.machine.use_profile(profile, reason, self._wall())
        self._flush()

    # ---- commands --------------------------------------------------------------------------
    async def wait_online(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel on 3.11 (gh-86296)
            await self._online.wait()

    async def set_relay(self, on: bool, source: CommandSource = CommandSource.KEY) -> str:
        """Switch the relay. Returns the meter's confirmation; raises CommandRefused (not sent)
        or CommandFailed (sent, not confirmed). Either way the result is published (CommandFinished)."""
        try:
            token = self.machine.request_relay(on, self._loop.time(), self._wall(), source)
        except CommandRefused:
            self._flush()  # a refusal is an event too
            raise
        return await self._await_result(token)

    async def query(self, source: CommandSource = CommandSource.KEY) -> str:
        """Send 0x08: the meter reports every datapoint."""
        try:
            token = self.machine.request_query(self._loop.time(), self._wall(), source)
        except CommandRefused:
            self._flush()
            raise
        return await self._await_result(token)

    def check_setting(self, name: str, value: str | None) -> PreparedWrite:
        return self.machine.prepare_setting(name, value)

    async def write_setting(self, name: str, value: str | None, source: CommandSource = CommandSource.KEY,
                            allow_weakening: bool = False) -> str:
        try:
            token = self.machine.request_setting(name, value, self._loop.time(), self._wall(), source,
                                                 allow_weakening)
        except CommandRefused:
            self._flush()  # a refusal is an event too
            raise
        return await self._await_result(token)

    async def _await_result(self, token: int) -> str:
        fut: asyncio.Future[CommandFinished] = self._loop.create_future()
        self._waiters[token] = fut
        self._flush()  # may complete at once (e.g. relay already in that state)
        result = await fut
        if not result.ok:
            raise CommandFailed(result.message)
        return result.message
