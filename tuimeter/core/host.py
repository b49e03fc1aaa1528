"""The host side of TuyaMCU as a sans-I/O state machine (bytes and clock in; bytes and events out).

Start-up follows the protocol reference's recommended sequence: heartbeat every 1 s until
answered, 0x01 product info, 0x02 working mode, the 0x03 network ramp when the mode reply is
empty, then 0x08; after that a heartbeat every 15 s with a reply timeout. One request is
outstanding at a time. MCU-initiated requests are answered at once, in every phase.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from tuimeter.core.commands import (
    Command,
    ProductInfo,
    command_label,
    gmt_time_payload,
    local_time_payload,
    network_ramp,
    parse_product_info,
)
from tuimeter.core.datapoints import (
    DataPoint,
    DatapointError,
    DPType,
    decode_datapoints,
    decode_value,
    make_datapoint,
)
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
)
from tuimeter.core.frames import MCU_VERSION, Frame, Junk, ParseError, ParserEvent, StreamParser, encode_frame
from tuimeter.core.meter import MeterState
from tuimeter.core.profile import READING_ROLES, Profile, choose_profile


@dataclass(frozen=True, slots=True)
class HostConfig:
    wifi_state: int = 4  # many meters need "cloud connected" before they behave
    handshake_interval: float = 1.0  # heartbeat period until the MCU first answers
    heartbeat_interval: float = 15.0
    heartbeat_timeout: float = 3.0
    missed_heartbeats: int = 3  # this many unanswered in a row = link lost
    step_timeout: float = 1.0  # start-up and query requests
    step_attempts: int = 3
    relay_timeout: float = 3.0
    dump_quiet: float = 0.3  # after the start-up 0x08, online once the reports pause this long...
    dump_max: float = 2.0  # ...or this long after the first report, for a meter that never pauses
    read_only: bool = False
    rssi_dbm: int = -50  # answer to 0x24; a wired host has no radio, so a plausible fixed value
    listen_only: bool = False  # replay: decode a recorded conversation, send nothing, command nothing
    log_frames: bool = True  # a FrameLogged event per frame, for the screen's frame log (headless skips it)
    dp_events: bool = True  # a DatapointReceived event per dp, for the screen and discovery (headless skips it)


class CommandRefused(Exception):
    """A command the host will not send; the message says why."""


class _LocalClock:
    """Local time with its UTC offset. Asking the OS for the zone costs more than the rest of a
    frame's handling, so the offset is looked up again only once a minute (DST changes are picked up)."""

    def __init__(self) -> None:
        self._until = 0.0
        self._tz: timezone = UTC

    def __call__(self) -> datetime:
        t = time.time()
        if t >= self._until:
            self._tz = timezone(timedelta(seconds=time.localtime(t).tm_gmtoff))
            self._until = t + 60 - t % 60  # at the next whole minute: zone changes happen on one
        return datetime.fromtimestamp(t, self._tz)


_local_now = _LocalClock()


@dataclass(slots=True)
class _Request:
    kind: str  # heartbeat, product, mode, network, query, relay
    command: int
    payload: bytes = b""
    token: int | None = None
    relay_on: bool | None = None
    attempts: int = 0
    deadline: float = 0.0


class HostMachine:
    """Drive it with connection_made/receive/tick; collect data_to_send() and events()."""

    def __init__(self, profile: Profile, config: HostConfig | None = None,
                 wallclock: Callable[[], datetime] = _local_now, auto_profile: bool = False) -> None:
        self.config = config or HostConfig()
        self.profile = profile
        self.meter = MeterState(profile)
        self._auto_profile = auto_profile  # pick a shipped profile from the product id or the dps
        # without per-frame events, one-unit raw reports come out of the parser as bare payloads
        self.parser = StreamParser(raw_units=not (self.config.log_frames or self.config.dp_events))
        self._tx_parser = StreamParser()  # listen-only: the recorded host's side, for the frame log
        self._first_dp_at: float | None = None
        self._batch_ts: datetime | None = None
        self.product: ProductInfo | None = None
        self.link = LinkState.CONNECTING
        self.frames_in = 0
        self.frames_out = 0
        self.last_heartbeat_reply: float | None = None
        self.last_frame_at: float | None = None
        self._wall = wallclock
        self._out = bytearray()
        self._events: list[Event] = []
        self._tokens = itertools.count(1)
        self._pending: _Request | None = None
        self._startup: deque[_Request] = deque()  # remaining start-up steps
        self._queue: deque[_Request] = deque()  # user commands and network ramps once online
        self._phase = "idle"  # idle, handshake, startup, dump, running
        self._dump_ends = self._dump_deadline = 0.0
        self._next_heartbeat = 0.0
        self._missed = 0
        self._net_state: int | None = None
        self._connected = False
        self._was_online = False
        self._reading_dirty = False
        self._roles_reported: set[str] = set()
        self._relay_dp = self._relay_dp_of(profile)
        self._relay_ids = self._relay_ids_of(profile)

    @staticmethod
    def _relay_dp_of(profile: Profile) -> int | None:
        """The dp relay commands go to."""
        relay = profile.for_role("relay")
        return relay.id if relay is not None and relay.type is DPType.BOOL else None

    @staticmethod
    def _relay_ids_of(profile: Profile) -> frozenset[int]:
        """Every dp whose report can set the relay value: decoded at once, for RelayChanged events."""
        return frozenset(s.id for s in profile.dps.values()
                         if (not s.fields and (s.role or s.name) == "relay")
                         or any(f.role == "relay" for f in s.fields))

    def use_profile(self, profile: Profile, reason: str) -> None:
        """Read the meter through another profile from now on (every dp seen is decoded again)."""
        self._roles_reported |= self.meter.take_reported() & _READING_ROLES  # this burst's, through the old map
        self.profile = profile
        seen = self.meter.dps
        self.meter = MeterState(profile)
        for dp in seen.values():  # values read through the new map count as reported now
            self.meter.store(dp)
        self._relay_dp = self._relay_dp_of(profile)
        self._relay_ids = self._relay_ids_of(profile)
        self._events.append(ProfileChosen(self._stamp(), profile.name, reason))
        self._reading_dirty = bool(seen)
        self._emit_reading()

    # ---- outputs ---------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def events(self) -> list[Event]:
        ev, self._events = self._events, []
        return ev

    def next_deadline(self) -> float | None:
        """When tick() must next run (monotonic seconds), or None when nothing is timed."""
        times = []
        if self._phase == "listen" and self._auto_profile and self._first_dp_at is not None:
            times.append(self._first_dp_at + self.config.dump_max)
        if self._phase == "dump":
            times.append(self._dump_ends)
        if self._pending is not None:
            times.append(self._pending.deadline)
        elif self._phase == "running" and self._connected:
            times.append(0.0 if self._queue else self._next_heartbeat)
        stall = self.parser.stall_deadline()
        if stall is not None:
            times.append(stall + 0.001)
        return min(times) if times else None

    def wall_time(self) -> datetime:
        return self._wall()

    def _stamp(self) -> datetime:
        """The time for events: one clock reading per batch of bytes (receive/tick), else now."""
        return self._batch_ts if self._batch_ts is not None else self._wall()

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def relay_pending(self) -> bool:
        return (self._pending is not None and self._pending.kind == "relay") or any(
            r.kind == "relay" for r in self._queue)

    # ---- connection ------------------------------------------------------------------------
    def connection_made(self, now: float) -> None:
        if self.config.listen_only:  # nothing is ever sent: _connected stays False
            self._phase = "listen"
            self._set_link(LinkState.HANDSHAKING, "replay: waiting for the recorded meter's first frame")
            return
        self._connected = True
        self._handle_items(self.parser.flush(), now)  # what was left of the old connection is accounted for
        self._start_handshake(now, LinkState.HANDSHAKING, "port open; waiting for the MCU's heartbeat reply")

    def connection_lost(self, now: float, reason: str) -> None:
        self._connected = False
        self._fail_all("port closed")
        self._forget_relay()
        self._phase = "idle"
        self._set_link(LinkState.RECONNECTING, reason)

    def _set_link(self, state: LinkState, reason: str = "") -> None:
        if state is not self.link:
            self.link = state
            self._events.append(LinkChanged(self._stamp(), state, reason))

    def _start_handshake(self, now: float, state: LinkState, reason: str) -> None:
        self._fail_all("start-up restarted")
        if state is LinkState.LINK_LOST:
            self._forget_relay()
        self._phase = "handshake"
        self._missed = 0
        self._set_link(state, reason)
        self._send_request(_Request("heartbeat", Command.HEARTBEAT), now, self.config.handshake_interval)

    def _start_startup(self, now: float) -> None:
        self._phase = "startup"
        self._startup = deque([_Request("product", Command.PRODUCT_INFO), _Request("mode", Command.WORKING_MODE)])
        self._advance_startup(now)

    def _fail_all(self, why: str) -> None:
        sent_relay = self._pending is not None and self._pending.kind == "relay"
        for req in ([self._pending] if self._pending else []) + list(self._queue):
            if req.token is not None:
                done = "sent but not confirmed" if req is self._pending else "not sent"
                self._finish(req, False, f"{req.kind} command {done}: {why}")
        self._pending = None
        self._queue.clear()
        self._startup.clear()
        if sent_relay:
            self._forget_relay()

    def _forget_relay(self) -> None:
        """The relay may have changed without a report (restart, lost link, unconfirmed command):
        show it as unknown until the meter reports it again, and never skip a command on an old value."""
        before = self.meter.values.pop("relay", None)
        if before is not None:
            self._events.append(RelayChanged(self._stamp(), None, before if isinstance(before, bool) else None))
            self._reading_dirty = True

    # ---- commands from the user ------------------------------------------------------------
    def request_relay(self, on: bool, now: float) -> int:
        """Queue 0x06 relay=on/off. Completes (CommandFinished) only on the meter's own report."""
        if self.config.listen_only:
            raise CommandRefused("replay: there is no meter to command")
        if self.config.read_only:
            raise CommandRefused("read-only mode: relay commands are disabled")
        if self._relay_dp is None:
            raise CommandRefused(f"profile {self.profile.name} has no relay datapoint")
        if self._phase != "running":
            raise CommandRefused(f"meter not online ({self.link.value}); relay command not sent")
        if self.relay_pending:
            raise CommandRefused("a relay command is already waiting for the meter's confirmation")
        token = next(self._tokens)
        if self.meter.values.get("relay") is on:
            self._events.append(CommandFinished(self._stamp(), token, True,
                                                f"relay already {'on' if on else 'off'}; nothing sent"))
            return token
        payload = make_datapoint(self._relay_dp, DPType.BOOL, on).encode()
        self._queue.append(_Request("relay", Command.DP_COMMAND, payload, token, relay_on=on))
        self._pump(now)
        return token

    def request_query(self, now: float) -> int:
        """Queue 0x08; completes when the first report of the dump arrives."""
        if self.config.listen_only:
            raise CommandRefused("replay: there is no meter to query")
        if self._phase != "running":
            raise CommandRefused(f"meter not online ({self.link.value}); query not sent")
        token = next(self._tokens)
        self._queue.append(_Request("query", Command.DP_QUERY, token=token))
        self._pump(now)
        return token

    # ---- input -----------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> None:
        self._batch_ts = self._wall()
        try:
            items = self.parser.feed(data, now)
            if items:
                self._handle_items(items, now)
            self._emit_reading()
            self._pump(now)
        finally:
            self._batch_ts = None

    def observe_sent(self, data: bytes, now: float) -> None:
        """Listen-only: bytes the recorded host sent, shown in the frame log like our own."""
        for item in self._tx_parser.feed(data, now):
            if isinstance(item, Frame):
                self.frames_out += 1
                self._events.append(FrameLogged(self._stamp(), "out", item, self.describe_frame))

    def finish_listening(self) -> None:
        """Listen-only: the recording has ended; settle the profile and say so."""
        if self._auto_profile and self.meter.dps:
            self._pick_profile_by_fit()
        self._emit_reading()
        self._set_link(LinkState.CLOSED, "end of the recording")

    def _pick_profile_by_fit(self) -> None:
        """No product id we know: go by the datapoints reported so far."""
        self._auto_profile = False
        self.use_profile(*choose_profile(None, self.meter.dps))

    def tick(self, now: float) -> None:
        self._batch_ts = self._wall()
        try:
            self._tick(now)
        finally:
            self._batch_ts = None

    def _tick(self, now: float) -> None:
        self._handle_items(self.parser.check_timeout(now), now)
        if (self._phase == "listen" and self._auto_profile and self._first_dp_at is not None
                and now >= self._first_dp_at + self.config.dump_max):
            self._pick_profile_by_fit()
        req = self._pending
        if req is not None and now >= req.deadline:
            self._pending = None
            self._on_timeout(req, now)
        if self._phase == "dump" and now >= self._dump_ends:
            if self._auto_profile:  # the dump is in: go by its datapoints
                self._pick_profile_by_fit()
            self._phase = "running"
            self._was_online = True
            self._next_heartbeat = now + self.config.heartbeat_interval
            self._set_link(LinkState.ONLINE, "start-up complete")
        self._emit_reading()
        self._pump(now)

    def _emit_reading(self) -> None:
        """One Reading per batch of bytes: the frames of one report burst make one reading."""
        reported = self.meter.take_reported()
        if reported:
            reported &= _READING_ROLES
            if reported:
                self._roles_reported |= reported
                self._reading_dirty = True
        if self._reading_dirty:
            self._reading_dirty = False
            ts = self._stamp()
            roles, self._roles_reported = frozenset(self._roles_reported), set()
            self._events.append(_new_tuple(ReadingUpdated, (ts, self.meter.reading(ts), roles)))

    def _handle_items(self, items: list[ParserEvent], now: float) -> None:
        """Every frame and parse problem of one read, in order.

        The hot path: while no request waits for a reply, the runs of bare raw-unit reports the
        parser hands over (a streaming meter's measurements) go to the meter state whole, to be
        decoded once per read when the Reading is built; the items between them one by one."""
        others = self.parser.others if self.parser.raw_units else None
        i, n, k = 0, len(items), 0
        units = 0
        while i < n:
            if others is not None and self._pending is None and self._phase in _FAST_PHASES:
                while k < len(others) and others[k] < i:
                    k += 1
                j = others[k] if k < len(others) else n  # the next item that is not a unit
                run = items[i:j]
                if run and self._relay_ids.isdisjoint(map(_unit_id, run)):  # type: ignore[arg-type]
                    self.meter.store_raw_units(run)  # type: ignore[arg-type]  # the parser says these are units
                    units += j - i
                    i = j
                    if i == n:
                        break
            self._handle_item(items[i], now)
            i += 1
        if units:
            self._reports_stored(units, now)

    def _handle_item(self, item: ParserEvent, now: float) -> None:
        if item.__class__ is bytes:  # a bare unit while a reply is awaited: the general way
            item = _new_tuple(Frame, (MCU_VERSION, _DP_REPORT, item))
        if item.__class__ is Frame:
            payload = item[2]
            n = len(payload)
            # a report of one dp unit that is not the relay, while no reply is awaited: just kept
            if (item[1] == _DP_REPORT and n >= 4 and self._pending is None
                    and payload[0] not in self._relay_ids and ((payload[2] << 8) | payload[3]) + 4 == n
                    and payload[1] <= _BITMAP and self._phase in _FAST_PHASES):
                dp = self._single_unit(payload)
                if dp is not None:  # else a value that breaks its type's rules: said the general way
                    self.meter.store(dp)
                    self._reports_stored(1, now)
                    ts = self._stamp()
                    if self.config.log_frames:
                        self._events.append(FrameLogged(ts, "in", item, self.describe_frame))
                    if self.config.dp_events:
                        self._events.append(DatapointReceived(ts, dp, self.meter.view))
                    return
            self._on_frame_in(item, now)
        elif isinstance(item, ParseError):
            self._events.append(ParseProblem(self._stamp(), item.kind, item.detail, item.data))
        elif isinstance(item, Junk):
            self._events.append(ParseProblem(self._stamp(), "junk", f"{len(item.data)} bytes skipped", item.data))

    @staticmethod
    def _single_unit(payload: bytes) -> DataPoint | None:
        """The DataPoint of a payload that is one unit (checked by the caller); None if its value
        breaks its type's rules."""
        dptype, raw = _TYPES[payload[1]], payload[4:]
        try:
            return _new_tuple(DataPoint, (payload[0], dptype, decode_value(dptype, raw), raw))
        except DatapointError:
            return None

    def _frames_seen(self, count: int, now: float) -> None:
        """What every frame received updates (the same `now` for a whole read)."""
        self.frames_in += count
        self.last_frame_at = now
        if self._phase == "dump":
            self._dump_ends = min(now + self.config.dump_quiet, self._dump_deadline)

    def _reports_stored(self, count: int, now: float) -> None:
        self._frames_seen(count, now)
        if self._first_dp_at is None:
            self._first_dp_at = now

    def _on_frame_in(self, item: Frame, now: float) -> None:
        self._frames_seen(1, now)
        if self._phase == "listen" and self.link is not LinkState.ONLINE:
            self._set_link(LinkState.ONLINE, "replay: the recorded meter is talking")
        if self.config.log_frames:
            self._events.append(FrameLogged(self._stamp(), "in", item, self.describe_frame))
        self._on_frame(item, now)

    def _on_frame(self, f: Frame, now: float) -> None:
        cmd = f.command
        if cmd == _DP_REPORT:  # most frames by far: a report, nothing to answer
            if self._first_dp_at is None:
                self._first_dp_at = now
            self._apply_dps(f.payload)
            if self._pending is not None and self._phase != "listen" and self._matches(self._pending, f):
                req, self._pending = self._pending, None
                self._on_reply(req, f, now)
            return
        reported = report_payload(f) if cmd in _REPORT_COMMANDS else None
        if reported is not None:
            if self._first_dp_at is None:
                self._first_dp_at = now
            self._apply_dps(reported)
        if self._phase == "listen":
            self._on_recorded_frame(f)
            return
        if cmd in _MCU_REQUESTS:
            self._answer(f)
        if self._pending is not None and self._matches(self._pending, f):
            req, self._pending = self._pending, None
            self._on_reply(req, f, now)

    def _answer(self, f: Frame) -> None:
        """Answer a request the MCU made."""
        cmd = f.command
        if cmd == Command.DP_REPORT_SYNC:
            self._reply(Command.DP_REPORT_SYNC_ACK, b"\x01")
        elif cmd == Command.EXTENDED and f.payload:
            self._reply(Command.EXTENDED, bytes((f.payload[0], 0x00)))
        elif cmd == Command.HEARTBEAT_STOP:
            self._reply(Command.HEARTBEAT_STOP, b"")
        elif cmd == Command.LOCAL_TIME:
            self._reply(Command.LOCAL_TIME, local_time_payload(self._stamp()))
        elif cmd == Command.GMT_TIME:
            self._reply(Command.GMT_TIME, gmt_time_payload(self._stamp().astimezone(UTC)))
        elif cmd == Command.NETWORK_QUERY:
            state = self._net_state if self._net_state is not None else self.config.wifi_state
            self._reply(Command.NETWORK_QUERY, bytes((state,)))
        elif cmd == Command.WIFI_RSSI:
            self._reply(Command.WIFI_RSSI, self.config.rssi_dbm.to_bytes(1, "big", signed=True))
        elif cmd == Command.WIFI_TEST:
            self._reply(Command.WIFI_TEST, b"\x00\x00")
        elif cmd == Command.NEW_FEATURE:
            self._reply(Command.NEW_FEATURE, bytes((f.payload[0] if f.payload else 0, 0x00)))
        elif cmd in (Command.RESET_WIFI, Command.RESET_WIFI_MODE):
            self._reply(cmd, b"")
            # 0x05 carries the pairing mode: 0 smartconfig, 1 AP; anything else is read as 0
            pairing = 1 if cmd == Command.RESET_WIFI_MODE and f.payload[:1] == b"\x01" else 0
            self._events.append(Notice(self._stamp(), "the meter reset its Wi-Fi pairing; reporting the network again"))
            for state in network_ramp(self.config.wifi_state, pairing):
                self._queue.append(_Request("network", Command.NETWORK_STATUS, bytes((state,))))

    def _matches(self, req: _Request, f: Frame) -> bool:
        if req.kind in ("query", "relay"):
            payload = report_payload(f)
            return payload is not None and (req.kind == "query" or self._reports_relay(payload))
        if req.kind == "heartbeat":
            return f.command == Command.HEARTBEAT and len(f.payload) == 1
        return f.command == req.command

    def _reports_relay(self, payload: bytes) -> bool:
        dps, _ = decode_datapoints(payload)
        return any(dp.id == self._relay_dp and dp.type is DPType.BOOL for dp in dps)

    def _apply_dps(self, payload: bytes) -> None:
        """Every dp of a report into the meter state; one event per dp. The hot path: it runs for
        every report, so it is one loop without further calls where it can be."""
        dps, problems = decode_datapoints(payload)
        ts = self._stamp()
        events = self._events
        meter = self.meter
        for p in problems:
            events.append(ParseProblem(ts, "datapoint", p, payload))
        for dp in dps:
            before = meter.values.get("relay")
            values = meter.apply(dp)
            if self.config.dp_events:
                events.append(DatapointReceived(ts, dp, meter.view))
            if "relay" in values and values["relay"] != before:
                after = values["relay"]
                events.append(RelayChanged(ts, after if isinstance(after, bool) else None,
                                           before if isinstance(before, bool) else None))

    # ---- requests and replies --------------------------------------------------------------
    def _on_reply(self, req: _Request, f: Frame, now: float) -> None:
        kind = req.kind
        if kind == "heartbeat":
            self.last_heartbeat_reply = now
            self._missed = 0
            restarted = f.payload[0] == 0x00
            if self._phase == "handshake":
                if restarted and self._was_online:
                    self._events.append(McuRestarted(self._stamp()))
                    self._forget_relay()
                self._start_startup(now)
            elif restarted:
                self._events.append(McuRestarted(self._stamp()))
                self._fail_all("the MCU restarted")
                self._forget_relay()
                self._set_link(LinkState.HANDSHAKING, "the MCU restarted; running start-up again")
                self._start_startup(now)
            else:
                self._next_heartbeat = now + self.config.heartbeat_interval
        elif kind == "product":
            self._on_product(f)
            self._advance_startup(now)
        elif kind == "mode":
            if not f.payload:  # cooperative: the MCU wants to be told the network state
                ramp = network_ramp(self.config.wifi_state)
                self._startup.extendleft(reversed(
                    [_Request("network", Command.NETWORK_STATUS, bytes((s,))) for s in ramp]))
            self._startup.append(_Request("query", Command.DP_QUERY))
            self._advance_startup(now)
        elif kind == "network":
            self._net_state = req.payload[0]
            self._advance_startup(now)
        elif kind == "query":
            if self._phase == "startup":
                # the dump has no end marker: wait for a quiet moment before sending anything else
                self._phase = "dump"
                self._dump_ends = now + self.config.dump_quiet
                self._dump_deadline = now + self.config.dump_max
            else:
                self._finish(req, True, "query sent; the meter is reporting")
        elif kind == "relay":
            confirmed = self.meter.values.get("relay")
            if confirmed is req.relay_on:
                self._finish(req, True, f"relay {'on' if confirmed else 'off'} (confirmed by the meter)")
            else:
                self._finish(req, False, f"relay command {'on' if req.relay_on else 'off'} sent, "
                                         f"but the meter reports {'on' if confirmed else 'off'}")

    def _on_product(self, f: Frame) -> None:
        self.product = parse_product_info(f.payload)
        self._events.append(ProductInfoReceived(self._stamp(), self.product))
        if self._auto_profile and self.product.product_id:
            profile, why = choose_profile(self.product.product_id, {})
            if why.startswith("product id"):
                self._auto_profile = False
                self.use_profile(profile, why)

    def _on_recorded_frame(self, f: Frame) -> None:
        """Listen-only: what the live host learns from replies, learnt from the recorded ones."""
        if f.command == Command.PRODUCT_INFO and f.payload:
            self._on_product(f)
        elif f.command == Command.HEARTBEAT and f.payload == b"\x00" and self.frames_in > 1:
            self._events.append(McuRestarted(self._stamp()))
            self._forget_relay()

    def _advance_startup(self, now: float) -> None:
        if self._phase != "startup":
            return
        if self._startup:
            req = self._startup.popleft()
            self._send_request(req, now, self.config.step_timeout)

    def _on_timeout(self, req: _Request, now: float) -> None:
        if req.kind == "heartbeat" and self._phase == "handshake":
            self._send_request(req, now, self.config.handshake_interval)  # keep knocking every second
        elif req.kind == "heartbeat":
            self._missed += 1
            if self._missed >= self.config.missed_heartbeats:
                self._start_handshake(now, LinkState.LINK_LOST,
                                      f"{self._missed} heartbeats unanswered; the meter is not responding")
            else:
                self._next_heartbeat = now  # ask again straight away
        elif req.kind == "relay":
            self._finish(req, False, f"the meter did not confirm relay {'on' if req.relay_on else 'off'} "
                                     f"within {self.config.relay_timeout:g} s; relay state unknown")
            self._forget_relay()
        elif req.attempts < self.config.step_attempts:
            self._send_request(req, now, self.config.step_timeout)
        elif self._phase == "startup":
            self._start_handshake(now, LinkState.HANDSHAKING,
                                  f"no reply to {command_label(req.command)} after {req.attempts} tries; "
                                  "restarting start-up")
        else:
            if req.token is not None:
                self._finish(req, False, f"no reply to {command_label(req.command)} after {req.attempts} tries")

    def _pump(self, now: float) -> None:
        """Send the next queued request when nothing is outstanding."""
        if self._pending is not None or self._phase != "running" or not self._connected:
            return
        if self._queue:
            req = self._queue.popleft()
            timeout = self.config.relay_timeout if req.kind == "relay" else self.config.step_timeout
            self._send_request(req, now, timeout)
        elif now >= self._next_heartbeat:
            self._send_request(_Request("heartbeat", Command.HEARTBEAT), now, self.config.heartbeat_timeout)

    def _send_request(self, req: _Request, now: float, timeout: float) -> None:
        req.attempts += 1
        req.deadline = now + timeout
        self._pending = req
        self._send(req.command, req.payload)

    def _reply(self, cmd: int, payload: bytes) -> None:
        self._send(cmd, payload)

    def _send(self, cmd: int, payload: bytes) -> None:
        if not self._connected:
            return
        frame = Frame(0x00, cmd, payload)
        self._out += encode_frame(cmd, payload)
        self.frames_out += 1
        if self.config.log_frames:
            self._events.append(FrameLogged(self._stamp(), "out", frame, self.describe_frame))

    def _finish(self, req: _Request, ok: bool, message: str) -> None:
        if req.token is not None:
            self._events.append(CommandFinished(self._stamp(), req.token, ok, message))

    # ---- frame text for the log ------------------------------------------------------------
    def describe_frame(self, f: Frame) -> str:
        return describe_frame(f, self.meter)


_DP_REPORT = int(Command.DP_REPORT)
_READING_ROLES = frozenset(READING_ROLES)
_FAST_PHASES = ("running", "dump")
_REPORT_COMMANDS = frozenset((int(Command.DP_REPORT), int(Command.DP_REPORT_SYNC), int(Command.EXTENDED)))
# what the MCU may ask of the host, each answered in _answer(); anything else is a reply or a report
_MCU_REQUESTS = frozenset(int(c) for c in (
    Command.DP_REPORT_SYNC, Command.EXTENDED, Command.HEARTBEAT_STOP, Command.LOCAL_TIME, Command.GMT_TIME,
    Command.NETWORK_QUERY, Command.WIFI_RSSI, Command.WIFI_TEST, Command.NEW_FEATURE, Command.RESET_WIFI,
    Command.RESET_WIFI_MODE))
_TYPES = tuple(DPType)
_BITMAP = int(DPType.BITMAP)
_unit_id = operator.itemgetter(0)  # a dp unit's first byte: its id
_new_tuple = tuple.__new__  # builds a NamedTuple (DataPoint, ReadingUpdated) without its Python-level __new__: faster


def report_payload(f: Frame) -> bytes | None:
    """The dp units a frame reports (0x07, 0x22, or a 0x34/0x0B record report), else None."""
    if f.command in (Command.DP_REPORT, Command.DP_REPORT_SYNC):
        return f.payload
    if f.command == Command.EXTENDED and f.payload[:1] == b"\x0b" and len(f.payload) >= 9:
        return f.payload[9:]  # sub-command, 8 time bytes, then dp units
    return None


def describe_frame(f: Frame, meter: MeterState) -> str:
    """One line for the frame log: command name and decoded payload."""
    label = command_label(f.command)
    if f.command in (Command.DP_REPORT, Command.DP_COMMAND, Command.DP_REPORT_SYNC):
        dps, problems = decode_datapoints(f.payload)
        parts = [meter.view(dp).text for dp in dps] + [f"! {p}" for p in problems]
        return f"{label}: " + "; ".join(parts) if parts else label
    if f.command == Command.HEARTBEAT and len(f.payload) == 1:
        return f"{label} reply: " + ("first since MCU boot" if f.payload[0] == 0 else "running")
    if f.command == Command.PRODUCT_INFO and f.payload:
        return f"{label}: {parse_product_info(f.payload).text}"
    if f.command in (Command.NETWORK_STATUS, Command.NETWORK_QUERY) and len(f.payload) == 1:
        return f"{label}: state {f.payload[0]}"
    if f.command == Command.WORKING_MODE and f.version != 0:
        return f"{label}: " + ("cooperative (empty)" if not f.payload else f"module GPIOs {f.payload.hex(' ')}")
    if f.payload:
        return f"{label}: {f.payload.hex(' ')}"
    return label
