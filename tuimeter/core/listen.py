"""Replay's machine: a recorded conversation decoded as the live host would, with nothing sent.

Its own small machine (no start-up, no heartbeats, no commands): the link is HANDSHAKING until the
recorded meter's first frame, ONLINE after it, CLOSED at the end of the recording. What the live host
learns from replies (product id, an MCU restart) it learns from the recorded ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tuimeter.core.command_path import CommandRefused
from tuimeter.core.commands import Command, report_payload
from tuimeter.core.events import FrameLogged, LinkChanged, LinkState, McuRestarted
from tuimeter.core.frames import Frame, StreamParser
from tuimeter.core.profile import Profile
from tuimeter.core.reader import MeterReader

__all__ = ["CommandRefused", "ListenMachine"]


class ListenMachine(MeterReader):
    def __init__(self, profile: Profile, *, candidates: Sequence[Profile] = (), dump_max: float = 2.0,
                 log_frames: bool = True, dp_events: bool = True) -> None:
        super().__init__(profile, log_frames=log_frames, dp_events=dp_events, candidates=candidates)
        self.link = LinkState.CONNECTING
        self._dump_max = dump_max  # no product id known: pick the profile this long after the first report
        self._first_report_at: float | None = None
        self._tx_parser = StreamParser()  # the recorded host's side, for the frame log

    def _set_link(self, state: LinkState, reason: str) -> None:
        if state is not self.link:
            self.link = state
            self._events.append(LinkChanged(self._ts, state, reason))

    def start(self, wall: datetime) -> None:
        self._ts = wall
        self._set_link(LinkState.HANDSHAKING, "replay: waiting for the recorded meter's first frame")

    def next_deadline(self) -> float | None:
        times = []
        if self.picking_profile and self._first_report_at is not None:
            times.append(self._first_report_at + self._dump_max)
        stall = self.parser.stall_deadline()
        if stall is not None:
            times.append(stall + 0.001)
        return min(times) if times else None

    def receive(self, data: bytes, now: float, wall: datetime) -> None:
        """Bytes the recorded meter sent."""
        self._ts = wall
        self._take(self.parser.feed(data, now), now)
        self._emit_reading()

    def observe_sent(self, data: bytes, now: float, wall: datetime) -> None:
        """Bytes the recorded host sent: shown in the frame log like our own."""
        self._ts = wall
        for item in self._tx_parser.feed(data, now):
            if isinstance(item, Frame):
                self.frames_out += 1
                self._note_sent(item.command, item.payload)
                if self._log_frames:
                    self._events.append(FrameLogged(wall, "out", item, self.describe_frame))

    def tick(self, now: float, wall: datetime) -> None:
        self._ts = wall
        self._take(self.parser.check_timeout(now), now)
        if self.picking_profile and self._first_report_at is not None and now >= self._first_report_at + self._dump_max:
            self._pick_by_fit()
        self._emit_reading()

    def finish(self, wall: datetime) -> None:
        """The recording has ended: settle the profile and say so."""
        self._ts = wall
        if self.picking_profile and self.meter.dps:
            self._pick_by_fit()
        self._emit_reading()
        self._set_link(LinkState.CLOSED, "end of the recording")

    def close(self, wall: datetime) -> None:
        self._ts = wall
        self._set_link(LinkState.CLOSED, "replay closed")

    def _on_frame(self, f: Frame, now: float) -> None:
        if self.link is not LinkState.ONLINE and self.link is not LinkState.CLOSED:
            self._set_link(LinkState.ONLINE, "replay: the recorded meter is talking")
        payload = report_payload(f)
        if payload is not None:
            if self._first_report_at is None:
                self._first_report_at = now
            self._apply_report(payload)
        elif f.command == Command.PRODUCT_INFO and f.payload:
            self._on_product(f)
        elif f.command == Command.HEARTBEAT and f.payload == b"\x00" and self.frames_in > 1:
            self._events.append(McuRestarted(self._ts))
            self._forget_relay()
