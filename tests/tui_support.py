"""A deterministic link for screen tests: the real HostMachine and SimulatedMeter, stepped on a fake clock.

Only the serial port is left out, so snapshots of a seeded simulation come out the same every run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from textual.app import App
from textual.command import CommandList, CommandPalette

from tuimeter.core.command_path import CommandRefused
from tuimeter.core.events import CommandFinished, CommandSource
from tuimeter.core.host import HostConfig, HostMachine
from tuimeter.core.profile import Profile, load_profile
from tuimeter.core.settings import PreparedWrite
from tuimeter.host.api import CommandFailed, MachineViews, SessionStatus
from tuimeter.host.bus import EventBus
from tuimeter.sim.mcu import SimulatedMeter

START = datetime(2026, 11, 24, 18, 30, tzinfo=UTC)
STEP = 0.05


class OfflineLink(MachineViews[HostMachine]):
    """A MeterSession (tuimeter/host/api.py) without a port."""

    port_label = "/dev/ttyUSB0 @ 9600"

    def __init__(self, seed: int = 7, read_only: bool = False) -> None:
        self.now = 0.0
        self.machine = HostMachine(load_profile(), HostConfig(read_only=read_only))
        self.bus = EventBus()
        self.sim = SimulatedMeter(seed=seed, period=2.0, speed=30.0)
        self.machine.connection_made(self.now, self.wall())
        self._publish()

    def wall(self) -> datetime:
        return START + timedelta(seconds=round(self.now, 3))

    def wall_time(self) -> datetime:
        return self.wall()

    def status(self) -> SessionStatus:
        m = self.machine
        hb = m.last_heartbeat_reply
        return SessionStatus.of(m, m.link, online=m.online, port_label=self.port_label,
                                heartbeat_age=None if hb is None else self.now - hb, read_only=m.config.read_only,
                                replay=False)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.machine.close(self.wall())
        self._publish()

    def clock(self) -> float:
        return self.now

    def _publish(self) -> list[object]:
        events = self.machine.events()
        self.bus.publish(events)
        return list(events)

    def run(self, seconds: float) -> list[object]:
        seen: list[object] = []
        for _ in range(round(seconds / STEP)):
            self.sim.receive(self.machine.data_to_send(), self.now)
            self.machine.receive(self.sim.data_to_send(), self.now, self.wall())
            self.now = round(self.now + STEP, 6)
            self.sim.tick(self.now)
            self.machine.tick(self.now, self.wall())
            seen += self._publish()
        return seen

    async def _until_done(self, token: int) -> str:
        for _ in range(200):
            for ev in self.run(STEP):
                if isinstance(ev, CommandFinished) and ev.token == token:
                    if not ev.ok:
                        raise CommandFailed(ev.message)
                    return ev.message
        raise CommandFailed("no answer")

    def use_profile(self, profile: Profile, reason: str) -> None:
        self.machine.use_profile(profile, reason, self.wall())
        self._publish()

    async def set_relay(self, on: bool, source: CommandSource = CommandSource.KEY) -> str:
        token = self.machine.request_relay(on, self.now, self.wall(), source)
        return await self._until_done(token)

    def check_setting(self, name: str, value: str | None) -> PreparedWrite:
        return self.machine.prepare_setting(name, value)

    async def write_setting(self, name: str, value: str | None, source: CommandSource = CommandSource.KEY,
                            allow_weakening: bool = False) -> str:
        try:
            token = self.machine.request_setting(name, value, self.now, self.wall(), source, allow_weakening)
        except CommandRefused:
            self._publish()  # a refusal is an event too, as HostSession publishes it
            raise
        return await self._until_done(token)

    async def query(self, source: CommandSource = CommandSource.KEY) -> str:
        token = self.machine.request_query(self.now, self.wall(), source)
        return await self._until_done(token)


def palette_offers(app: App[object], text: str) -> bool:
    """The command palette is open and highlights a command reading `text` (it searches in the
    background, then highlights the best hit)."""
    if not isinstance(app.screen, CommandPalette):
        return False
    hits = app.screen.query_one(CommandList)
    return hits.highlighted is not None and text in str(hits.get_option_at_index(hits.highlighted).prompt)
