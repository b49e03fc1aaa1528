"""`AttachedSession`: a MeterSession fed by a running service over its control socket.

The live screen and the headless monitor run on it unchanged. Its events are the service's own,
decoded; its values come from a Mirror of the service's meter state; its commands go to the
service, which puts them through its one command path and sends back the meter's answer. When the
service goes away the link reads "reconnecting", the relay is unknown, and the session re-attaches
when the socket is back, as a HostSession reopens a lost port.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tuimeter.attach import wire
from tuimeter.attach.mirror import Mirror
from tuimeter.attach.paths import permission_hint
from tuimeter.core import command_path
from tuimeter.core.commands import report_payload
from tuimeter.core.datapoints import decode_datapoints
from tuimeter.core.errors import CommandRefused
from tuimeter.core.events import (
    CommandSource,
    DatapointReceived,
    Event,
    FrameLogged,
    LinkChanged,
    LinkState,
    Notice,
    ProductInfoReceived,
    ProfileChosen,
    ReadingUpdated,
    RelayChanged,
)
from tuimeter.core.profile import READING_ROLES, Profile, ProfileError, load_profile, parse_profile
from tuimeter.core.settings import PreparedWrite
from tuimeter.host.api import CommandFailed, MachineViews, SessionStatus
from tuimeter.host.bus import EventBus
from tuimeter.host.clock import local_now

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0  # the service answers at once; a busy Pi gets room
START_HINT = "start one with 'tuimeter PORT --headless' (or 'sudo systemctl start tuimeter')"
LOCAL_PROFILE = ("the profile applies to this view only; the service reads the meter with its own "
                 "(restart the service with --profile FILE to change that)")


class AttachError(Exception):
    """The service cannot be attached to; the message says why and what to do."""


class AttachedSession(MachineViews[Mirror]):
    def __init__(self, path: Path, *, read_only: bool = False, source: CommandSource = CommandSource.ATTACH,
                 history: bool = True, wallclock: Callable[[], datetime] = local_now,
                 retry_min: float = 0.25, retry_max: float = 2.0) -> None:
        """`read_only`: this view sends nothing; `history`: publish the service's recent frame log on attach
        (the screen wants it; status lines do not)."""
        self.path = path
        self.viewer_read_only = read_only
        self.source = source
        self.history = history
        self.bus = EventBus()
        self.machine = Mirror(load_profile())  # the service's profile replaces it on attach
        self.retry = (retry_min, retry_max)
        self.reattaches = 0
        self._wall = wallclock
        self._loop = asyncio.get_running_loop()
        self._service: dict[str, Any] = {}
        self._status: dict[str, Any] = {}
        self._status_at = 0.0
        self._link = LinkState.CONNECTING
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        self._results: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    # ---- what front ends read --------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self._writer is not None

    @property
    def port_label(self) -> str:
        port = self._service.get("port")
        return f"attached to {self.path}" + (f" ({port})" if port else "")

    def wall_time(self) -> datetime:
        return self._wall()

    def status(self) -> SessionStatus:
        s = self._status
        hb = s.get("heartbeat_age")
        if hb is not None and self.attached:
            hb = float(hb) + self._loop.time() - self._status_at
        m = self.machine
        online = self.attached and self._link is LinkState.ONLINE  # the events are fresher than the status line
        return SessionStatus(self._link, online, self.port_label,
                             int(s.get("frames_in", 0)), int(s.get("frames_out", 0)), int(s.get("bytes_in", 0)),
                             int(s.get("parse_errors", 0)), hb, m.product, m.profile,
                             self.viewer_read_only or bool(s.get("read_only")), bool(s.get("replay")))

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Attach (AttachError if the service cannot be reached), then follow it in the background."""
        await self._attach()
        self._runner = asyncio.create_task(self._run(), name="tuimeter-attach")

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._detach("this view closed")
        self.bus.close()

    async def _attach(self) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.path), limit=wire.MAX_LINE)
        except FileNotFoundError:
            raise AttachError(f"no tuimeter service at {self.path}; {START_HINT}") from None
        except PermissionError:
            raise AttachError(permission_hint(self.path)) from None
        except ConnectionRefusedError:
            raise AttachError(f"no service is running at {self.path} (a socket left by one that stopped); "
                              f"{START_HINT}") from None
        except OSError as exc:
            raise AttachError(f"cannot attach to {self.path}: {exc.strerror or exc}") from None
        try:
            writer.write(wire.dumps({"type": "hello", "protocol": wire.PROTOCOL, "client": self.source.value,
                                     "read_only": self.viewer_read_only, "frame_log": self.history}))
            hello = await self._first(reader, "hello")
            if hello.get("protocol") != wire.PROTOCOL:
                raise AttachError(f"the service at {self.path} speaks attach protocol {hello.get('protocol')} "
                                  f"(tuimeter {hello.get('tuimeter', '?')}); this tuimeter speaks {wire.PROTOCOL}: "
                                  "run the same tuimeter version for both")
            snapshot = await self._first(reader, "snapshot")
            self._service = hello
            self._take_snapshot(snapshot)
        except BaseException:
            writer.close()
            raise
        self._reader, self._writer = reader, writer
        log.info("attached to %s (%s)", self.path, hello.get("port"))

    async def _first(self, reader: asyncio.StreamReader, kind: str) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(reader.readline(), HELLO_TIMEOUT)
            message = wire.loads(line)
        except (TimeoutError, ConnectionError, ValueError) as exc:
            reason = "no answer" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise AttachError(f"{self.path} is not a tuimeter service that answers ({reason})") from None
        if message.get("type") != kind:
            raise AttachError(f"{self.path}: expected the service's {kind}, got {message.get('type')!r}")
        return message

    async def _run(self) -> None:
        while not self._closing:
            reason = await self._follow()
            self._detach(reason)
            await self._reattach()

    async def _follow(self) -> str:
        """Take the service's lines until it goes; why it went."""
        assert self._reader is not None
        reason = "the service stopped"
        while True:
            try:
                line = await self._reader.readline()
            except (ConnectionError, ValueError) as exc:
                return f"the connection broke ({exc or type(exc).__name__})"
            if not line:
                return reason
            try:
                message = wire.loads(line)
                if message["type"] == "bye":
                    reason = str(message.get("reason", reason))
                else:
                    self._take(message)
            except (wire.WireError, KeyError, TypeError, ValueError, ProfileError) as exc:
                log.warning("a line from the service was not understood: %s", exc)
                self._publish([Notice(self._wall(), f"a line from the service was not understood ({exc}); "
                                      "are the service and this view the same tuimeter version?", "warning")])

    def _detach(self, reason: str) -> None:
        """The service is gone: commands waiting are unknown, the relay is unknown until it reports again."""
        if self._writer is None:
            return
        self._writer.close()
        self._reader = self._writer = None
        for fut in self._results.values():
            if not fut.done():
                fut.set_result({"result": "unconfirmed", "message": f"{reason} before the meter confirmed; the "
                                "result is unknown until the meter reports again"})
        self._results.clear()
        if self.bus.closed or self._closing:
            return
        events: list[Event] = [LinkChanged(self._wall(), LinkState.RECONNECTING,
                                           f"{reason}; re-attaching when {self.path} is back")]
        self._link = LinkState.RECONNECTING
        before = self.machine.meter.forget("relay")
        if before is not None:
            events.append(RelayChanged(self._wall(), None, before if isinstance(before, bool) else None))
        self._publish(events)

    async def _reattach(self) -> None:
        delay, top = self.retry
        attempt = 0
        while not self._closing:
            await asyncio.sleep(delay)
            attempt += 1
            try:
                await self._attach()
            except AttachError as exc:
                if attempt == 1 or attempt % 60 == 0:
                    self._publish([Notice(self._wall(), f"{exc} (retrying, attempt {attempt})", "warning")])
                delay = min(delay * 2, top)
                continue
            self.reattaches += 1
            self._publish([Notice(self._wall(), f"re-attached to {self.path} after {attempt} attempt(s)")])
            return

    # ---- the service's lines ---------------------------------------------------------------
    def _take(self, m: dict[str, Any]) -> None:
        kind = m["type"]
        if kind == "update":
            self._take_update(m)
        elif kind == "status":
            self._status, self._status_at = m["status"], self._loop.time()
        elif kind == "result":
            fut = self._results.pop(int(m["id"]), None)
            if fut is not None and not fut.done():
                fut.set_result(m)
        elif kind == "error":
            log.warning("the service says: %s", m.get("message"))

    def _take_snapshot(self, snap: dict[str, Any]) -> None:
        mirror = Mirror(self._profile(snap["profile"]))
        mirror.product = wire.decode_product(snap["product"])
        mirror.apply(snap["state"])
        self.machine = mirror
        self._status, self._status_at = snap["status"], self._loop.time()
        self._link = LinkState(self._status["link"])
        ts = self._wall()
        events: list[Event] = [wire.decode_event(e) for e in snap["history"]] if self.history else []
        events.append(LinkChanged(ts, self._link, f"attached to {self.path} ({self._service.get('port')})"))
        if mirror.product is not None:
            events.append(ProductInfoReceived(ts, mirror.product))
        events.append(ProfileChosen(ts, mirror.profile.name, "the service's profile"))
        events += [wire.decode_event(e) for e in snap["services"]]
        roles = frozenset(mirror.meter.take_reported() & set(READING_ROLES))
        events.append(ReadingUpdated(ts, mirror.meter.reading(ts), roles))
        if snap.get("trip"):
            events.append(wire.decode_event(snap["trip"]))
        self._publish(events)

    def _take_update(self, m: dict[str, Any]) -> None:
        if "profile" in m:
            self.machine.use_profile(self._profile(m["profile"]), "the service's profile", self._wall())
            self.machine.events()  # the service's own ProfileChosen and reading follow
        self.machine.apply(m["state"])
        events: list[Event] = []
        for item in m["events"]:
            ev = wire.decode_event(item, self.machine.describe_frame)
            events.append(ev)
            if isinstance(ev, FrameLogged):
                events += _reported(ev)
            elif isinstance(ev, LinkChanged):
                self._link = ev.state
            elif isinstance(ev, ProductInfoReceived):
                self.machine.product = ev.info
        self._publish(events)

    @staticmethod
    def _profile(d: dict[str, Any]) -> Profile:
        return parse_profile(str(d["toml"]), f"{d.get('name', 'profile')} (the service's)")

    def _publish(self, events: list[Event]) -> None:
        if events and not self.bus.closed:
            self.bus.publish(events)

    # ---- commands: sent to the service, answered by the meter ------------------------------
    async def _command(self, message: dict[str, Any]) -> str:
        if self.viewer_read_only:
            raise CommandRefused("this view is read-only (tuimeter attach --read-only); nothing is sent")
        if self._writer is None:
            raise CommandRefused(f"not attached: the service at {self.path} is not running; nothing sent")
        token = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._results[token] = fut
        self._writer.write(wire.dumps({"type": "command", "id": token, **message}))
        answer = await fut
        text = str(answer.get("message", ""))
        if answer.get("result") == "confirmed":
            return text
        if answer.get("result") == "refused":
            raise CommandRefused(text)
        raise CommandFailed(text)

    async def set_relay(self, on: bool, source: CommandSource = CommandSource.KEY) -> str:
        return await self._command({"command": "relay", "on": on})

    async def query(self, source: CommandSource = CommandSource.KEY) -> str:
        return await self._command({"command": "query"})

    def check_setting(self, name: str, value: str | None) -> PreparedWrite:
        status = self.status()
        command_path.check_setting(read_only=status.read_only, online=status.online, link=self._link.value)
        return self.machine.prepare_write(name, value)

    async def write_setting(self, name: str, value: str | None, source: CommandSource = CommandSource.KEY,
                            allow_weakening: bool = False) -> str:
        self.check_setting(name, value)  # refused here as on the service, before anything is sent
        return await self._command({"command": "setting", "name": name, "value": value,
                                    "allow_weakening": allow_weakening})

    def use_profile(self, profile: Profile, reason: str) -> None:
        self.machine.use_profile(profile, reason, self._wall())
        self._publish([*self.machine.events(), Notice(self._wall(), LOCAL_PROFILE, "warning")])


def _reported(ev: FrameLogged) -> list[Event]:
    """The per-dp events of a report the meter sent, as the service's reader makes them (they are not on
    the wire: the frame carries them)."""
    payload = report_payload(ev.frame) if ev.direction == "in" else None
    if payload is None:
        return []
    dps, _ = decode_datapoints(payload)
    return [DatapointReceived(ev.ts, dp) for dp in dps]
