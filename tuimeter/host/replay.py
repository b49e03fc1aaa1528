"""`tuimeter replay FILE`: a recording played back through a listen-only HostMachine.

It is a MeterSession (host/api.py) like HostSession, so the live screen and the headless monitor
show a recorded session exactly as they show a live one. The
machine's clock is the recording's: readings carry the times they were recorded at, and the
start-up timing (dump, profile choice) is the original one whatever the playback speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from tuimeter.core.events import CommandSource, Event, LinkState, Notice
from tuimeter.core.listen import CommandRefused, ListenMachine
from tuimeter.core.profile import Profile
from tuimeter.core.settings import PreparedWrite
from tuimeter.host.api import MachineViews, SessionStatus
from tuimeter.host.bus import EventBus
from tuimeter.recorder import Recording

log = logging.getLogger(__name__)

__all__ = ["CommandRefused", "ReplaySession"]


class ReplaySession(MachineViews[ListenMachine]):
    def __init__(self, recording: Recording, path: str, profile: Profile, *, speed: float = 1.0,
                 candidates: Sequence[Profile] = ()) -> None:
        if speed <= 0:
            raise ValueError("speed must be greater than 0")
        self.recording = recording
        self.speed = speed
        self._t = 0.0  # recording time of the chunk being played
        self.machine = ListenMachine(profile, candidates=candidates)
        self.bus = EventBus()
        self.finished = asyncio.Event()
        self._label = f"replay of {Path(path).name}" + (f" ×{speed:g}" if speed != 1 else "")
        self._runner: asyncio.Task[None] | None = None

    @property
    def link(self) -> LinkState:
        return self.machine.link

    @property
    def port_label(self) -> str:
        return self._label

    def _recorded_time(self) -> datetime:
        return self.recording.wall_time(self._t)

    def wall_time(self) -> datetime:
        return self._recorded_time()

    def status(self) -> SessionStatus:
        return SessionStatus.of(self.machine, self.machine.link, online=False, port_label=self._label,
                                heartbeat_age=None, read_only=True, replay=True)

    async def start(self) -> None:
        self.machine.start(self._recorded_time())
        self._publish()
        self.bus.publish([Notice(self._recorded_time(), p, "warning") for p in self.recording.problems])
        self._runner = asyncio.create_task(self._play(), name="tuimeter-replay")

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if not self.bus.closed:
            self.machine.close(self._recorded_time())
            self._publish()
        self.bus.close()

    def use_profile(self, profile: Profile, reason: str) -> None:
        self.machine.use_profile(profile, reason, self._recorded_time())
        self._publish()

    async def set_relay(self, on: bool, source: CommandSource = CommandSource.KEY) -> str:
        raise CommandRefused("replay: there is no meter to command")

    def check_setting(self, name: str, value: str | None) -> PreparedWrite:
        raise CommandRefused("replay: there is no meter to write to")

    async def write_setting(self, name: str, value: str | None, source: CommandSource = CommandSource.KEY,
                            allow_weakening: bool = False) -> str:
        raise CommandRefused("replay: there is no meter to write to")

    async def query(self, source: CommandSource = CommandSource.KEY) -> str:
        raise CommandRefused("replay: there is no meter to query")

    async def _play(self) -> None:
        try:
            await self._play_chunks()
        except Exception as exc:  # a bug must not leave the replay hanging; say it and end
            log.exception("replay stopped by an internal error")
            self.bus.publish([Notice(self._recorded_time(), f"replay stopped by an internal error: "
                                     f"{type(exc).__name__}: {exc}; please report it with the recording",
                                     "error")])
        finally:
            self.finished.set()

    async def _play_chunks(self) -> None:
        loop = asyncio.get_running_loop()
        base = loop.time()
        later_runs = [t for t, _ in self.recording.runs[1:]]
        for t, direction, data in self.recording.chunks:
            await self._tick_until(t, base)
            delay = base + t / self.speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if later_runs and t > later_runs[0]:
                later_runs = [r for r in later_runs if r >= t]
                self._t = t
                self.bus.publish([Notice(self._recorded_time(), "the recording goes on with a later run "
                                         "(appended to the same file)")])
            self._t = t
            if direction == "rx":
                self.machine.receive(data, t, self._recorded_time())
            else:
                self.machine.observe_sent(data, t, self._recorded_time())
            self._publish()
        self.machine.finish(self._recorded_time())
        frames = self.machine.frames_in + self.machine.frames_out
        self.bus.publish([Notice(self._recorded_time(), f"replay finished: {frames} frames")])
        self._publish()

    async def _tick_until(self, t: float, base: float) -> None:
        """Run the machine's timers (stall, profile pick) that fall before recording time t."""
        loop = asyncio.get_running_loop()
        while (deadline := self.machine.next_deadline()) is not None and deadline <= t:
            delay = base + deadline / self.speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._t = max(self._t, deadline)
            self.machine.tick(deadline, self._recorded_time())
            self._publish()

    def _publish(self) -> None:
        events: list[Event] = self.machine.events()
        if events:
            self.bus.publish(events)
