"""The host side of TuyaMCU as a sans-I/O state machine: bytes and clocks in, bytes and events out.

Where things are:
- phases and how they change: core/host_state.py (one table; `_change()` here is its only caller)
- the start-up sequence: core/startup.py (a table of steps)
- the heartbeat: core/heartbeat.py
- the command path (relay, query): core/command_path.py
- answers to MCU-initiated requests: core/mcu_requests.py (one table)
- what is done with reports (meter state, readings, profile pick): core/reader.py

One request is outstanding at a time. Its reply and its timeout are dispatched on (request kind,
phase) through `_ON_REPLY` and `_ON_TIMEOUT` below.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tuimeter.core import command_path, startup
from tuimeter.core.command_path import CommandRefused, WeakeningRefused
from tuimeter.core.commands import Command, command_label, network_ramp, report_payload
from tuimeter.core.datapoints import DPType
from tuimeter.core.events import (
    CommandFinished,
    CommandResult,
    CommandSource,
    FrameLogged,
    LinkChanged,
    LinkState,
    McuRestarted,
    Notice,
    SettingChange,
)
from tuimeter.core.frames import Frame, encode_frame
from tuimeter.core.heartbeat import Heartbeat
from tuimeter.core.host_state import HostState, Phase, Request, RequestKind, Trigger
from tuimeter.core.mcu_requests import AnswerContext, Effect, answer
from tuimeter.core.profile import Profile
from tuimeter.core.reader import MeterReader
from tuimeter.core.settings import PreparedWrite, SettingKind, SettingRefused, SettingValue, find

__all__ = ["CommandRefused", "HostConfig", "HostMachine", "Phase", "WeakeningRefused"]

log = logging.getLogger(__name__)


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
    setting_timeout: float = 3.0  # a settings write not confirmed by the meter's report in this time failed
    dump_quiet: float = 0.3  # after the start-up 0x08, online once the reports pause this long...
    dump_max: float = 2.0  # ...or this long after the first report, for a meter that never pauses
    read_only: bool = False
    rssi_dbm: int = -50  # answer to 0x24; a wired host has no radio, so a plausible fixed value
    log_frames: bool = True  # a FrameLogged event per frame, for the screen's frame log (headless skips it)
    dp_events: bool = True  # a DatapointReceived event per dp, for the screen and discovery (headless skips it)


_DP_REPORT = int(Command.DP_REPORT)


class HostMachine(MeterReader):
    """Drive it with connection_made/receive/tick/connection_lost/close; collect data_to_send() and
    events(). `candidates`: the profiles to pick from by product id or reported dps (none: keep `profile`)."""

    def __init__(self, profile: Profile, config: HostConfig | None = None,
                 candidates: Sequence[Profile] = ()) -> None:
        self.config = c = config or HostConfig()
        super().__init__(profile, log_frames=c.log_frames, dp_events=c.dp_events, candidates=candidates)
        self.state = HostState()
        self.heartbeat = Heartbeat(c.handshake_interval, c.heartbeat_interval, c.heartbeat_timeout,
                                   c.missed_heartbeats)
        self.dump = startup.DumpWindow(c.dump_quiet, c.dump_max)
        self._out = bytearray()
        self._tokens = itertools.count(1)
        self._pending: Request | None = None
        self._startup: deque[Request] = deque()  # start-up steps still to send
        self._queue: deque[Request] = deque()  # user commands and network ramps, once running
        self._net_state: int | None = None
        self._connected = False

    # ---- outputs ---------------------------------------------------------------------------
    @property
    def link(self) -> LinkState:
        return self.state.link

    @property
    def phase(self) -> Phase:
        return self.state.phase

    @property
    def online(self) -> bool:
        return self.state.phase is Phase.RUNNING

    @property
    def last_heartbeat_reply(self) -> float | None:
        return self.heartbeat.last_reply

    @property
    def relay_pending(self) -> bool:
        return any(r.kind is RequestKind.RELAY for r in self._user_requests())

    def _user_requests(self) -> list[Request]:
        return [r for r in (self._pending, *self._queue) if r is not None and r.token is not None]

    def writing(self) -> dict[str, SettingValue]:
        return {r.write.setting.name: r.write.new for r in self._user_requests() if r.write is not None}

    @property
    def _product_id(self) -> str | None:
        return self.product.product_id if self.product is not None else None

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def next_deadline(self) -> float | None:
        """When tick() must next run (monotonic seconds), or None when nothing is timed."""
        times = []
        if self.state.phase is Phase.DUMP:
            times.append(self.dump.ends)
        if self._pending is not None:
            times.append(self._pending.deadline)
        elif self.state.phase is Phase.RUNNING and self._connected:
            times.append(0.0 if self._queue else self.heartbeat.next_due)
        stall = self.parser.stall_deadline()
        if stall is not None:
            times.append(stall + 0.001)
        return min(times) if times else None

    # ---- the one place phases change -------------------------------------------------------
    def _change(self, trigger: Trigger, reason: str = "") -> None:
        link = self.state.process(trigger)
        if link is not None:
            log.info("link %s: %s", link.value, reason)
            self._events.append(LinkChanged(self._ts, link, reason))

    # ---- connection ------------------------------------------------------------------------
    def connection_made(self, now: float, wall: datetime) -> None:
        self._ts = wall
        self._connected = True
        self._take(self.parser.flush(), now)  # what was left of the old connection is accounted for
        self._start_handshake(now, Trigger.PORT_OPENED, "port open; waiting for the MCU's heartbeat reply")

    def connection_lost(self, now: float, wall: datetime, reason: str) -> None:
        self._ts = wall
        self._connected = False
        self._fail_all("port closed")
        self._forget_relay()
        self._change(Trigger.PORT_LOST, reason)
        self._emit_reading()

    def close(self, wall: datetime, reason: str = "session closed") -> None:
        """The session ends: commands still waiting fail, and the link is CLOSED."""
        self._ts = wall
        self._connected = False
        self._fail_all(reason)
        if self.state.phase is not Phase.CLOSED:
            self._change(Trigger.CLOSE, reason)

    def _start_handshake(self, now: float, trigger: Trigger, reason: str) -> None:
        self._fail_all("start-up restarted")
        if trigger is Trigger.HEARTBEATS_MISSED:
            self._forget_relay()
        self._change(trigger, reason)
        self.heartbeat.missed = 0
        self._send_request(self.heartbeat.request(), now, self.config.handshake_interval)

    def _fail_all(self, why: str) -> None:
        """Every request outstanding or queued is dropped; user commands among them fail."""
        pending = self._pending
        for req in [r for r in (pending, *self._queue) if r is not None]:
            done, result = (("sent but not confirmed", CommandResult.UNCONFIRMED) if req is pending
                            else ("not sent", CommandResult.REFUSED))
            self._finish(req, result, f"{req.kind.value} command {done}: {why}")
        self._pending = None
        self._queue.clear()
        self._startup.clear()
        if pending is not None and pending.kind is RequestKind.RELAY:
            self._forget_relay()
        if pending is not None and pending.write is not None:
            self.meter.forget_dp(pending.write.datapoint.id)

    # ---- commands from the user (the command path) -----------------------------------------
    def request_relay(self, on: bool, now: float, wall: datetime,
                      source: CommandSource = CommandSource.KEY) -> int:
        """Queue 0x06 relay=on/off. Completes (CommandFinished) only on the meter's own report.
        A refusal raises CommandRefused, and is recorded as a REFUSED CommandFinished first."""
        self._ts = wall
        token = next(self._tokens)
        req = Request(RequestKind.RELAY, Command.DP_COMMAND, token=token, relay_on=on, source=source)
        try:
            relay_dp = command_path.check_relay(
                read_only=self.config.read_only, relay_dp=self._relay_dp, profile=self.profile.name,
                online=self.online, link=self.link.value, pending=self.relay_pending)
        except CommandRefused as exc:
            self._finish(req, CommandResult.REFUSED, str(exc))
            raise
        if self.meter.values.get("relay") is on:
            self._finish(req, CommandResult.CONFIRMED, f"relay already {command_path.on_off(on)}; nothing sent")
            return token
        log.info("relay %s requested by %s (token %d)", command_path.on_off(on), source.value, token)
        self._queue.append(command_path.relay_request(relay_dp, on, token, source))
        self._pump(now)
        return token

    def request_query(self, now: float, wall: datetime, source: CommandSource = CommandSource.KEY) -> int:
        """Queue 0x08; completes when the first report of the dump arrives."""
        self._ts = wall
        token = next(self._tokens)
        try:
            command_path.check_query(online=self.online, link=self.link.value)
        except CommandRefused as exc:
            self._finish(command_path.query_request(token, source), CommandResult.REFUSED, str(exc))
            raise
        self._queue.append(command_path.query_request(token, source))
        self._pump(now)
        return token

    def prepare_setting(self, name: str, text: str | None) -> PreparedWrite:
        """Check a write without sending anything: the exact dp it would send, old → new, and the risk
        when it weakens protection. Raises CommandRefused with the reason."""
        command_path.check_setting(read_only=self.config.read_only, online=self.online, link=self.link.value)
        return self.prepare_write(name, text)

    def request_setting(self, name: str, text: str | None, now: float, wall: datetime,
                        source: CommandSource = CommandSource.KEY, allow_weakening: bool = False) -> int:
        """Queue a settings write (0x06 with the type the meter reported). It completes only on the
        meter's own report of that dp with the value written; refusals raise CommandRefused (recorded
        first as a REFUSED CommandFinished). A change that weakens protection needs `allow_weakening`."""
        self._ts = wall
        token = next(self._tokens)
        write: PreparedWrite | None = None
        try:
            write = self.prepare_setting(name, text)
            if write.weakening and not allow_weakening:
                raise WeakeningRefused(write)
        except CommandRefused as exc:
            self._refuse_setting(token, name, text, source, write, exc)
            raise
        req = command_path.setting_request(write, token, source)
        if write.old == write.new and write.setting.kind is not SettingKind.BUTTON:
            already = f"{write.setting.name} already {write.setting.text(write.new)}; nothing sent"
            self._finish(req, CommandResult.CONFIRMED, already, command_path.setting_change(write, write.old))
            return token
        log.info("setting %s by %s (token %d)%s", write.summary, source.value, token,
                 ": weakens protection" if write.weakening else "")
        self._queue.append(req)
        self._pump(now)
        return token

    def _refuse_setting(self, token: int, name: str, text: str | None, source: CommandSource,
                        write: PreparedWrite | None, exc: CommandRefused) -> None:
        if write is not None:
            change = command_path.setting_change(write, write.old)
        else:
            try:
                setting = find(self.profile.settings, self.profile.name, name)
                old = setting.current(self.meter.dps.get(setting.dp))
                change = SettingChange(setting.name, setting.dp, old, text, setting.unit, reported=old)
            except SettingRefused:
                change = SettingChange(name, None, None, text)
        req = Request(RequestKind.SETTING, Command.DP_COMMAND, token=token, source=source)
        self._finish(req, CommandResult.REFUSED, str(exc), change)

    # ---- input -----------------------------------------------------------------------------
    def receive(self, data: bytes, now: float, wall: datetime) -> None:
        self._ts = wall
        items = self.parser.feed(data, now)
        if items:
            self._take(items, now)
        self._emit_reading()
        self._pump(now)

    def tick(self, now: float, wall: datetime) -> None:
        self._ts = wall
        self._take(self.parser.check_timeout(now), now)
        req = self._pending
        if req is not None and now >= req.deadline:
            self._pending = None
            self._dispatch(_ON_TIMEOUT, req, None, now)
        if self.state.phase is Phase.DUMP and now >= self.dump.ends:
            self._pick_by_fit()  # the dump is in: go by its datapoints, if nothing else said
            self._change(Trigger.DUMP_DONE, "start-up complete")
            self.heartbeat.next_due = now + self.config.heartbeat_interval
        self._emit_reading()
        self._pump(now)

    def _on_frame(self, f: Frame, now: float) -> None:
        if self.state.phase is Phase.DUMP:
            self.dump.report_seen(now)
        if f.command == _DP_REPORT:  # most frames by far: a report, nothing to answer
            payload: bytes | None = f.payload
            self._apply_report(f.payload)
        else:
            payload = report_payload(f)
            if payload is not None:
                self._apply_report(payload)
            self._answer(f)
        req = self._pending
        if req is not None and self._matches(req, f, payload):
            self._pending = None
            self._dispatch(_ON_REPLY, req, f, now)

    def _answer(self, f: Frame) -> None:
        """Answer a request the MCU made (core/mcu_requests.py); anything else is a reply or a report."""
        state = self._net_state if self._net_state is not None else self.config.wifi_state
        ans = answer(f.command, f.payload, AnswerContext(self._ts, state, self.config.rssi_dbm))
        if ans is None:
            return
        self._send(ans.command, ans.payload)
        if ans.effect is Effect.REPAIR_NETWORK:
            self._events.append(Notice(self._ts, "the meter reset its Wi-Fi pairing; reporting the network again"))
            for s in network_ramp(self.config.wifi_state, ans.pairing):
                self._queue.append(Request(RequestKind.NETWORK, Command.NETWORK_STATUS, bytes((s,))))

    def _matches(self, req: Request, f: Frame, reported: bytes | None) -> bool:
        if req.kind is RequestKind.QUERY:
            return reported is not None
        if req.kind is RequestKind.RELAY:
            return reported is not None and command_path.reports_dp(reported, self._relay_dp, DPType.BOOL)
        if req.kind is RequestKind.SETTING:
            return (reported is not None and req.write is not None
                    and command_path.reports_any(reported, req.write.datapoint.id))
        if req.kind is RequestKind.HEARTBEAT:
            return Heartbeat.is_reply(f)
        return f.command == req.command

    def _dispatch(self, table: _Table, req: Request, f: Frame | None, now: float) -> None:
        handler = table.get((req.kind, self.state.phase))
        if handler is None:  # a request outlived its phase: nothing to do but say so
            log.warning("%s %s in phase %s: ignored", req.kind.value, "reply" if f else "timeout",
                        self.state.phase.value)
            return
        handler(self, req, f, now)

    # ---- replies, by (request, phase) ------------------------------------------------------
    def _handshake_answered(self, req: Request, f: Frame | None, now: float) -> None:
        assert f is not None
        self.heartbeat.answered(now)
        if Heartbeat.says_restarted(f) and self.state.was_online:
            self._events.append(McuRestarted(self._ts))
            self._forget_relay()
        self._change(Trigger.HEARTBEAT_ANSWERED)
        self._begin_startup(now)

    def _heartbeat_answered(self, req: Request, f: Frame | None, now: float) -> None:
        assert f is not None
        self.heartbeat.answered(now)
        if Heartbeat.says_restarted(f):
            self._events.append(McuRestarted(self._ts))
            self._fail_all("the MCU restarted")
            self._forget_relay()
            self._change(Trigger.MCU_RESTARTED, "the MCU restarted; running start-up again")
            self._begin_startup(now)

    def _product_answered(self, req: Request, f: Frame | None, now: float) -> None:
        assert f is not None
        self._on_product(f)
        self._next_step(now)

    def _mode_answered(self, req: Request, f: Frame | None, now: float) -> None:
        assert f is not None
        cooperative = not f.payload  # an empty reply: the MCU wants to be told the network state
        self._startup.extend(startup.requests(startup.after_mode_reply(cooperative), self.config.wifi_state))
        self._next_step(now)

    def _network_step_answered(self, req: Request, f: Frame | None, now: float) -> None:
        self._net_state = req.payload[0]
        self._next_step(now)

    def _network_answered(self, req: Request, f: Frame | None, now: float) -> None:
        self._net_state = req.payload[0]

    def _startup_query_answered(self, req: Request, f: Frame | None, now: float) -> None:
        # the dump has no end marker: wait for a quiet moment before sending anything else
        self.dump.begin(now)
        self._change(Trigger.QUERY_ANSWERED)

    def _query_answered(self, req: Request, f: Frame | None, now: float) -> None:
        self._finish(req, CommandResult.CONFIRMED, "query sent; the meter is reporting")

    def _setting_answered(self, req: Request, f: Frame | None, now: float) -> None:
        assert f is not None and req.write is not None
        payload = f.payload if f.command == _DP_REPORT else report_payload(f)
        assert payload is not None
        ok, message, reported = command_path.setting_outcome(req.write, payload)
        self._finish(req, CommandResult.CONFIRMED if ok else CommandResult.UNCONFIRMED, message,
                     command_path.setting_change(req.write, reported))

    def _setting_unconfirmed(self, req: Request, f: Frame | None, now: float) -> None:
        assert req.write is not None
        self._finish(req, CommandResult.UNCONFIRMED,
                     command_path.setting_unconfirmed(req.write, self.config.setting_timeout),
                     command_path.setting_change(req.write, None))
        self.meter.forget_dp(req.write.datapoint.id)  # unknown until the meter reports it, never the old value

    def _relay_answered(self, req: Request, f: Frame | None, now: float) -> None:
        ok, message = command_path.relay_outcome(req.relay_on, self.meter.values.get("relay"))
        self._finish(req, CommandResult.CONFIRMED if ok else CommandResult.UNCONFIRMED, message)

    # ---- timeouts, by (request, phase) -----------------------------------------------------
    def _knock_again(self, req: Request, f: Frame | None, now: float) -> None:
        self._send_request(req, now, self.config.handshake_interval)  # every second until answered

    def _heartbeat_missed(self, req: Request, f: Frame | None, now: float) -> None:
        if self.heartbeat.unanswered(now):
            self._start_handshake(now, Trigger.HEARTBEATS_MISSED,
                                  f"{self.heartbeat.missed} heartbeats unanswered; the meter is not responding")

    def _retried(self, req: Request, now: float) -> bool:
        """Send a request again if it has tries left."""
        if req.attempts >= self.config.step_attempts:
            return False
        self._send_request(req, now, self.config.step_timeout)
        return True

    def _step_timed_out(self, req: Request, f: Frame | None, now: float) -> None:
        if not self._retried(req, now):
            self._start_handshake(now, Trigger.STEP_FAILED, f"no reply to {command_label(req.command)} after "
                                                            f"{req.attempts} tries; restarting start-up")

    def _retry_or_fail(self, req: Request, f: Frame | None, now: float) -> None:
        if not self._retried(req, now):
            self._finish(req, CommandResult.UNCONFIRMED,
                         f"no reply to {command_label(req.command)} after {req.attempts} tries")

    def _relay_unconfirmed(self, req: Request, f: Frame | None, now: float) -> None:
        self._finish(req, CommandResult.UNCONFIRMED,
                     command_path.relay_unconfirmed(req.relay_on, self.config.relay_timeout))
        self._forget_relay()

    # ---- sending ---------------------------------------------------------------------------
    def _begin_startup(self, now: float) -> None:
        self._startup = deque(startup.requests(startup.before_mode_reply(), self.config.wifi_state))
        self._next_step(now)

    def _next_step(self, now: float) -> None:
        if self._startup:
            self._send_request(self._startup.popleft(), now, self.config.step_timeout)

    def _pump(self, now: float) -> None:
        """Send the next queued request, or a due heartbeat, when nothing is outstanding."""
        if self._pending is not None or self.state.phase is not Phase.RUNNING or not self._connected:
            return
        if self._queue:
            req = self._queue.popleft()
            self._send_request(req, now, self._timeout_of(req))
        elif now >= self.heartbeat.next_due:
            self._send_request(self.heartbeat.request(), now, self.config.heartbeat_timeout)

    def _timeout_of(self, req: Request) -> float:
        if req.kind is RequestKind.RELAY:
            return self.config.relay_timeout
        if req.kind is RequestKind.SETTING:
            return self.config.setting_timeout
        return self.config.step_timeout

    def _relay_off_commanded(self) -> bool:
        queued = any(r.kind is RequestKind.RELAY and r.relay_on is False for r in self._user_requests())
        return queued or super()._relay_off_commanded()

    def _send_request(self, req: Request, now: float, timeout: float) -> None:
        self._note_sent(req.command, req.payload)
        req.attempts += 1
        req.deadline = now + timeout
        self._pending = req
        self._send(req.command, req.payload)

    def _send(self, cmd: int, payload: bytes) -> None:
        if not self._connected:
            return
        self._out += encode_frame(cmd, payload)
        self.frames_out += 1
        if self._log_frames:
            self._events.append(FrameLogged(self._ts, "out", Frame(0x00, cmd, payload), self.describe_frame))

    def _finish(self, req: Request, result: CommandResult, message: str,
                change: SettingChange | None = None) -> None:
        if req.token is not None:
            log.info("command %d from %s %s: %s", req.token, req.source.value, result.value, message)
            if change is None and req.write is not None:
                change = command_path.setting_change(req.write, None if result is not CommandResult.REFUSED
                                                     else req.write.old)
            self._events.append(CommandFinished(self._ts, req.token, result, message, req.kind.value,
                                                req.relay_on, req.source, change))


_Handler = Callable[[HostMachine, Request, Frame | None, float], None]
_Table = dict[tuple[RequestKind, Phase], _Handler]
_STEPS = (RequestKind.PRODUCT, RequestKind.MODE, RequestKind.NETWORK, RequestKind.QUERY)

_ON_REPLY: _Table = {
    (RequestKind.HEARTBEAT, Phase.HANDSHAKE): HostMachine._handshake_answered,
    (RequestKind.HEARTBEAT, Phase.RUNNING): HostMachine._heartbeat_answered,
    (RequestKind.PRODUCT, Phase.STARTUP): HostMachine._product_answered,
    (RequestKind.MODE, Phase.STARTUP): HostMachine._mode_answered,
    (RequestKind.NETWORK, Phase.STARTUP): HostMachine._network_step_answered,
    (RequestKind.NETWORK, Phase.RUNNING): HostMachine._network_answered,
    (RequestKind.QUERY, Phase.STARTUP): HostMachine._startup_query_answered,
    (RequestKind.QUERY, Phase.RUNNING): HostMachine._query_answered,
    (RequestKind.RELAY, Phase.RUNNING): HostMachine._relay_answered,
    (RequestKind.SETTING, Phase.RUNNING): HostMachine._setting_answered,
}

_ON_TIMEOUT: _Table = {
    (RequestKind.HEARTBEAT, Phase.HANDSHAKE): HostMachine._knock_again,
    (RequestKind.HEARTBEAT, Phase.RUNNING): HostMachine._heartbeat_missed,
    **{(kind, Phase.STARTUP): HostMachine._step_timed_out for kind in _STEPS},
    (RequestKind.NETWORK, Phase.RUNNING): HostMachine._retry_or_fail,
    (RequestKind.QUERY, Phase.RUNNING): HostMachine._retry_or_fail,
    (RequestKind.RELAY, Phase.RUNNING): HostMachine._relay_unconfirmed,
    (RequestKind.SETTING, Phase.RUNNING): HostMachine._setting_unconfirmed,
}
