"""The service's side of the attach socket: a snapshot for each viewer that connects, then every
event as the session publishes it, and viewers' commands through the session's one command path.

Each burst of events is encoded once, whatever the number of viewers, and written to every viewer's
transport without waiting: the transport's buffer is that viewer's bounded queue. A viewer that lets
it grow past `max_backlog` (stuck, or too slow) is dropped; the session and the other viewers never
wait for anyone. With no viewer attached the cost is keeping the recent frames for the next snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import socket
import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuimeter import __version__
from tuimeter.analyzer.export import profile_toml
from tuimeter.attach import wire
from tuimeter.core.datapoints import DataPoint, DPType
from tuimeter.core.events import (
    CommandSource,
    DatapointReceived,
    Event,
    FrameLogged,
    Notice,
    ParseProblem,
    ProfileChosen,
    ReadingUpdated,
    ServiceChanged,
    Tripped,
    log_line,
)
from tuimeter.core.settings import SettingValue
from tuimeter.host.api import CommandFailed, MeterSession, SessionStatus
from tuimeter.host.session import CommandRefused

log = logging.getLogger(__name__)

HISTORY = 300  # frame-log lines a viewer gets on connect
DEFAULT_BACKLOG = 1024 * 1024  # bytes a viewer may fall behind before it is dropped
STATUS_EVERY = 1.0  # seconds: counters and heartbeat age for the viewers' headers
SEND_EVERY = 0.05  # seconds: a viewer's lines are written together, at most this late (the screen redraws at 0.1 s)
SEND_BUFFER = 16 * 1024  # the kernel's share of a viewer's queue: keeps the backlog ours to measure
HELLO_SOURCES = {"attach": CommandSource.ATTACH, "web": CommandSource.WEB}
_FRAME_LOG = (FrameLogged, ParseProblem)  # the frame log's lines: only for viewers that show one


class ControlError(Exception):
    """The socket cannot be served; the message says why and what to do."""


class ControlBusy(ControlError):
    """A running service serves that socket already."""


@dataclass(eq=False)
class Viewer:
    number: int
    writer: asyncio.StreamWriter
    pid: int | None
    uid: int | None
    read_only: bool = False
    source: CommandSource = CommandSource.ATTACH
    frame_log: bool = True  # it shows a frame log (a screen); status-line viewers get no frames
    allowance: int = 0  # the snapshot's bytes: allowed on top of the backlog until it has drained once
    dropped: bool = False
    pending: list[bytes] = field(default_factory=list)  # lines not written yet (see ControlServer._send)

    @property
    def label(self) -> str:
        who = f"pid {self.pid}" if self.pid else "pid unknown"
        return f"viewer {self.number} ({self.source.value}, {who})"


@dataclass
class _Sent:
    """What the viewers were last told of the meter's state: updates carry only what changed."""

    dps: dict[int, DataPoint] = field(default_factory=dict)
    types: dict[int, DPType] = field(default_factory=dict)
    writing: dict[str, SettingValue] = field(default_factory=dict)


class ControlServer:
    def __init__(self, session: MeterSession, path: Path, *, max_backlog: int = DEFAULT_BACKLOG,
                 history: int = HISTORY) -> None:
        self.session = session
        self.path = path
        self.max_backlog = max_backlog
        self.viewers: list[Viewer] = []
        self._history: deque[Event] = deque(maxlen=history)
        self._services: dict[str, ServiceChanged] = {}
        self._trip: Tripped | None = None
        self._sent = _Sent()
        self._server: asyncio.Server | None = None
        self._numbers = itertools.count(1)
        self._commands: asyncio.Queue[tuple[Viewer, dict[str, Any]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._flusher: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        session.bus.add_batch_listener(self._on_batch)

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Serve on `path` (mode 0660), replacing a socket a crashed service left; ControlError if a
        running service holds it or it cannot be made."""
        sock = _bind(self.path)
        self._server = await asyncio.start_unix_server(self._accept, sock=sock, limit=wire.MAX_LINE)
        self._worker = asyncio.create_task(self._run_commands(), name="tuimeter-control-commands")
        self._ticker = self._loop.call_later(STATUS_EVERY, self._tick)
        log.info("serving viewers on %s", self.path)

    async def close(self) -> None:
        """Tell every viewer the service stops, stop serving, remove the socket."""
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
        if self._flusher is not None:
            self._flusher.cancel()
        self._flush()
        bye = wire.dumps({"type": "bye", "reason": "the service stopped"})
        for viewer in list(self.viewers):
            self._close_viewer(viewer, bye)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        with contextlib.suppress(FileNotFoundError):
            if self._server is not None:
                self.path.unlink()
        self._server = None

    # ---- events -> viewers -----------------------------------------------------------------
    def _on_batch(self, events: list[Event]) -> None:
        routine = True  # a report burst (frames, dps, a reading): only the dps it reported can have changed
        reported: set[int] = set()
        for ev in events:
            if isinstance(ev, DatapointReceived):
                reported.add(ev.dp.id)
            elif isinstance(ev, FrameLogged | ParseProblem):
                self._history.append(ev)
                if isinstance(ev, FrameLogged) and ev.direction == "out":
                    routine = False  # a command sent: a write under way shows as "writing…" at once
            elif isinstance(ev, ReadingUpdated):
                if ev.reading.relay:
                    self._trip = None  # on again: the trip is over
            else:
                routine = False
                self._keep(ev)
        if not self.viewers:
            return
        # each event encoded once; per-dp events are not sent (a viewer reads them off the frames it gets)
        encoded = [(isinstance(ev, _FRAME_LOG), e) for ev in events if not isinstance(ev, DatapointReceived)
                   and (e := wire.encode_event(ev)) is not None]
        update: dict[str, Any] = {"type": "update", "state": self._state_changes(reported if routine else None)}
        if not routine and any(isinstance(ev, ProfileChosen) for ev in events):
            update["profile"] = self._profile()
        lines: dict[bool, bytes] = {}  # with the frame log, and without (status-line viewers): each made once
        for viewer in list(self.viewers):
            line = lines.get(viewer.frame_log)
            if line is None:
                chosen = [e for log_only, e in encoded if viewer.frame_log or not log_only]
                line = lines[viewer.frame_log] = wire.dumps({**update, "events": chosen})
            self._send(viewer, line)

    def _keep(self, ev: Event) -> None:
        """What a viewer that attaches later is told of: the log's lines, the bridges, the last trip."""
        if log_line(ev) is not None:
            self._history.append(ev)
        if isinstance(ev, ServiceChanged):
            self._services[ev.service] = ev
        elif isinstance(ev, Tripped):
            self._trip = ev

    def _tick(self) -> None:
        self._ticker = self._loop.call_later(STATUS_EVERY, self._tick)
        if self.viewers:
            self._tell_changes()
            self._broadcast(wire.dumps({"type": "status", "status": _status(self.session.status())}))

    def _tell_changes(self) -> None:
        """State that changed with no event (none is expected, but a viewer must never drift)."""
        state = self._state_changes()
        if state["dps"] or state["gone"] or state["types"] or "writing" in state:
            self._broadcast(wire.dumps({"type": "update", "state": state, "events": []}))

    def _state_changes(self, only: set[int] | None = None) -> dict[str, Any]:
        """The dps, wire types and writes under way that changed since the viewers were last told; `only`:
        look at these dps alone (a report burst forgets nothing; the next full look is at most 1 s away)."""
        now = self.session.state()
        sent = self._sent
        if only is not None:
            fresh = [(dpid, now.dps[dpid]) for dpid in only if dpid in now.dps and sent.dps.get(dpid) != now.dps[dpid]]
            sent.dps.update(fresh)
            types = {str(dpid): int(dp.type) for dpid, dp in fresh if sent.types.get(dpid) is not dp.type}
            sent.types.update((dpid, dp.type) for dpid, dp in fresh)
            return {"dps": [wire.encode_dp(dp) for _, dp in fresh], "gone": [], "types": types}
        dps = [wire.encode_dp(dp) for dpid, dp in now.dps.items() if sent.dps.get(dpid) != dp]
        gone = [dpid for dpid in sent.dps if dpid not in now.dps]
        types = {str(dpid): int(t) for dpid, t in now.types.items() if sent.types.get(dpid) is not t}
        changes: dict[str, Any] = {"dps": dps, "gone": gone, "types": types}
        if dict(now.writing) != sent.writing:
            changes["writing"] = {k: wire.encode_setting_value(v) for k, v in now.writing.items()}
        if dps or gone:
            sent.dps = dict(now.dps)
        if types:
            sent.types = dict(now.types)
        sent.writing = dict(now.writing)
        return changes

    def _broadcast(self, line: bytes) -> None:
        for viewer in list(self.viewers):
            self._send(viewer, line)

    def _send(self, viewer: Viewer, line: bytes) -> None:
        """Queue a line; every viewer's queue is written at most SEND_EVERY later, in one write (waking a
        viewer costs the service more than encoding for it: one wake-up per burst per viewer adds up)."""
        if viewer.dropped:
            return
        viewer.pending.append(line)
        if self._flusher is None:
            self._flusher = self._loop.call_later(SEND_EVERY, self._flush)

    def _flush(self) -> None:
        self._flusher = None
        for viewer in list(self.viewers):
            if viewer.pending:
                self._write(viewer, b"".join(viewer.pending))
                viewer.pending.clear()

    def _write(self, viewer: Viewer, data: bytes) -> None:
        transport = viewer.writer.transport
        if transport.is_closing():
            self._forget(viewer)
            return
        viewer.writer.write(data)
        backlog = transport.get_write_buffer_size()
        if backlog <= self.max_backlog:
            viewer.allowance = 0  # the snapshot has gone: from now on the backlog alone counts
        elif backlog > self.max_backlog + viewer.allowance:
            self._drop(viewer, backlog)

    def _drop(self, viewer: Viewer, backlog: int) -> None:
        text = (f"{viewer.label} dropped: it fell {backlog // 1024} KB behind (stuck, or too slow); "
                "the service and the other viewers carry on")
        log.warning("%s", text)
        viewer.dropped = True
        viewer.writer.transport.abort()  # its backlog is discarded: a viewer that comes back gets a snapshot
        self._forget(viewer)
        self._loop.call_soon(self._publish_notice, text, "warning")

    def _publish_notice(self, text: str, level: str = "info") -> None:
        if not self.session.bus.closed:
            self.session.bus.publish([Notice(self.session.wall_time(), text, level)])

    # ---- viewers ---------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid, uid = _peer(writer)
        viewer = Viewer(next(self._numbers), writer, pid, uid)
        with contextlib.suppress(OSError):
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._tell_changes()  # the others are told what changed first; the snapshot starts from here
        writer.write(wire.dumps(self._hello()))
        writer.write(wire.dumps(self._snapshot()))
        viewer.allowance = writer.transport.get_write_buffer_size()  # what of the snapshot the kernel did not take
        self.viewers.append(viewer)
        log.info("viewer %d attached (pid %s, uid %s); %d attached", viewer.number, pid, uid, len(self.viewers))
        try:
            await self._read_viewer(viewer, reader)
        finally:
            self._forget(viewer)
            writer.close()
            if not viewer.dropped:
                self._publish_notice(f"{viewer.label} left; {len(self.viewers)} attached")

    async def _read_viewer(self, viewer: Viewer, reader: asyncio.StreamReader) -> None:
        while not viewer.dropped:
            try:
                line = await reader.readline()
            except (ConnectionError, asyncio.LimitOverrunError, ValueError):
                return
            if not line:
                return
            try:
                message = wire.loads(line)
            except wire.WireError as exc:
                self._send(viewer, wire.dumps({"type": "error", "message": str(exc)}))
                continue
            kind = message["type"]
            if kind == "hello":
                viewer.read_only = bool(message.get("read_only"))
                viewer.frame_log = bool(message.get("frame_log", True))
                viewer.source = HELLO_SOURCES.get(str(message.get("client")), CommandSource.ATTACH)
                self._publish_notice(f"{viewer.label} attached{' read-only' if viewer.read_only else ''}; "
                                     f"{len(self.viewers)} attached")
            elif kind == "command":
                self._commands.put_nowait((viewer, message))
            else:
                self._send(viewer, wire.dumps({"type": "error", "message": f"unknown message type {kind!r}"}))

    def _forget(self, viewer: Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.remove(viewer)

    def _close_viewer(self, viewer: Viewer, last: bytes) -> None:
        with contextlib.suppress(Exception):
            viewer.writer.write(last)
            viewer.writer.close()
        self._forget(viewer)

    # ---- commands: one at a time, in the order received ------------------------------------
    async def _run_commands(self) -> None:
        while True:
            viewer, message = await self._commands.get()
            result = await self._command(viewer, message)
            if viewer in self.viewers:
                self._send(viewer, wire.dumps({"type": "result", "id": message.get("id"), **result}))

    async def _command(self, viewer: Viewer, m: dict[str, Any]) -> dict[str, Any]:
        name = m.get("command")
        if viewer.read_only:
            return {"result": "refused", "message": "this viewer attached read-only (tuimeter attach --read-only); "
                                                    "nothing sent"}
        try:
            if name == "relay":
                message = await self.session.set_relay(bool(m.get("on")), viewer.source)
            elif name == "query":
                message = await self.session.query(viewer.source)
            elif name == "setting":
                message = await self.session.write_setting(str(m.get("name")), _text(m.get("value")), viewer.source,
                                                           allow_weakening=bool(m.get("allow_weakening")))
            else:
                return {"result": "refused", "message": f"unknown command {name!r}; nothing sent"}
        except CommandRefused as exc:
            return {"result": "refused", "message": str(exc)}
        except CommandFailed as exc:
            return {"result": "unconfirmed", "message": str(exc)}
        except Exception as exc:  # a bug must not stop the command worker for every viewer
            log.exception("a viewer's command failed")
            return {"result": "unconfirmed", "message": f"internal error: {type(exc).__name__}: {exc}"}
        return {"result": "confirmed", "message": message}

    # ---- what a viewer gets on connect -----------------------------------------------------
    def _hello(self) -> dict[str, Any]:
        status = self.session.status()
        return {"type": "hello", "protocol": wire.PROTOCOL, "tuimeter": __version__, "pid": os.getpid(),
                "port": status.port_label, "read_only": status.read_only}

    def _profile(self) -> dict[str, Any]:
        profile = self.session.status().profile
        return {"name": profile.name, "toml": profile_toml(profile)}

    def _snapshot(self) -> dict[str, Any]:
        status = self.session.status()
        sent = self._sent
        history = [e for e in map(_history_item, self._history) if e is not None]
        return {
            "type": "snapshot",
            "status": _status(status),
            "profile": self._profile(),
            "product": wire.encode_product(status.product),
            "state": {"dps": [wire.encode_dp(dp) for dp in sent.dps.values()],
                      "types": {str(k): int(v) for k, v in sent.types.items()},
                      "writing": {k: wire.encode_setting_value(v) for k, v in sent.writing.items()}},
            "history": history,
            "services": [wire.encode_event(ev) for ev in self._services.values()],
            "trip": wire.encode_event(self._trip) if self._trip is not None else None,
        }


def _history_item(ev: Event) -> dict[str, Any] | None:
    """Frames and parse problems as they were; every other line as the text it made (no alerts again)."""
    if isinstance(ev, FrameLogged):
        return {**wire.encode_frame(ev), "text": ev.text}  # described with the state the service has now
    if isinstance(ev, ParseProblem):
        return wire.encode_event(ev)
    text = log_line(ev)
    return None if text is None else wire.encode_event(Notice(ev.ts, text))


def _status(s: SessionStatus) -> dict[str, Any]:
    return {"link": s.link.value, "online": s.online, "port": s.port_label, "frames_in": s.frames_in,
            "frames_out": s.frames_out, "bytes_in": s.bytes_in, "parse_errors": s.parse_errors,
            "heartbeat_age": s.heartbeat_age, "read_only": s.read_only, "replay": s.replay}


def _text(v: object) -> str | None:
    return None if v is None else str(v)


def _peer(writer: asyncio.StreamWriter) -> tuple[int | None, int | None]:
    """The viewer's pid and uid (SO_PEERCRED), for the log."""
    sock = writer.get_extra_info("socket")
    try:
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                             struct.calcsize("3i")))
    except (OSError, AttributeError, struct.error):
        return None, None
    return pid, uid


def _bind(path: Path) -> socket.socket:
    """A listening socket at `path`, mode 0660 (owner and group may attach)."""
    _make_dir(path.parent)
    _clear(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o660)  # before listen(): nobody can connect in between
        sock.listen(16)
    except OSError as exc:
        sock.close()
        raise ControlError(f"cannot serve viewers on {path}: {exc.strerror}; give --control another path "
                           "or --no-control") from None
    sock.setblocking(False)
    return sock


def _make_dir(folder: Path) -> None:
    if folder.is_dir():
        return
    try:
        folder.mkdir(mode=0o700, parents=True)  # ours alone; a systemd RuntimeDirectory= sets its own mode
    except OSError as exc:
        raise ControlError(f"cannot make {folder} for the control socket: {exc.strerror}; give --control "
                           "another path or --no-control") from None


def _clear(path: Path) -> None:
    """Remove a socket left by a service that crashed; refuse to take one a running service serves."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise ControlError(f"{path} exists and is not a socket; remove it or give --control another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("replacing %s, left by a service that stopped without removing it", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM):
            raise ControlError(f"cannot check {path}: {exc.strerror}; give --control another path") from None
    finally:
        probe.close()
    raise ControlBusy(f"another tuimeter service serves {path} (see it with 'tuimeter attach {path}'); give this "
                       "one --control another path")

