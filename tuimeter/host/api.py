"""What every front end and bridge may use of a running session: `MeterSession`.

HostSession (a live port) and ReplaySession (a recording) provide it; the live screen, the headless
monitor, one-shot commands, discovery, MQTT and metrics use nothing else of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Generic, Protocol, TypeVar

from tuimeter.core.commands import ProductInfo
from tuimeter.core.datapoints import DataPoint, DPType
from tuimeter.core.events import CommandSource, LinkState
from tuimeter.core.meter import DatapointView, Reading
from tuimeter.core.profile import Profile, Scalar
from tuimeter.core.reader import MeterReader
from tuimeter.core.settings import PreparedWrite, SettingState, SettingValue
from tuimeter.host.bus import EventBus

M = TypeVar("M", bound=MeterReader)


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """A snapshot, taken when asked for."""

    link: LinkState
    online: bool  # start-up done: commands can be sent
    port_label: str  # the port and speed, or what is replayed
    frames_in: int
    frames_out: int
    bytes_in: int
    parse_errors: int
    heartbeat_age: float | None  # seconds since the last heartbeat reply; None: none yet
    product: ProductInfo | None
    profile: Profile
    read_only: bool  # --read-only: nothing that changes the meter is sent
    replay: bool  # a recording: nothing is sent at all

    @classmethod
    def of(cls, m: MeterReader, link: LinkState, *, online: bool, port_label: str, heartbeat_age: float | None,
           read_only: bool, replay: bool) -> SessionStatus:
        return cls(link, online, port_label, m.frames_in, m.frames_out, m.parser.stats.bytes_in,
                   m.parser.stats.errors, heartbeat_age, m.product, m.profile, read_only, replay)


@dataclass(frozen=True, slots=True)
class MeterStateView:
    """The meter's state as reported, without copying (read it at once; it changes with the next report)."""

    dps: Mapping[int, DataPoint]  # every dp's latest report
    types: Mapping[int, DPType]  # every dp's wire type (kept when its value is forgotten)
    writing: Mapping[str, SettingValue]  # setting name → the value a write under way asked for


class MeterSession(Protocol):
    bus: EventBus

    def status(self) -> SessionStatus: ...

    def values(self) -> Mapping[str, Scalar]:
        """Role (or name) → the value the meter last reported; a value not known is absent."""
        ...

    def reading(self) -> Reading:
        """The meter's current values as a Reading, stamped now."""
        ...

    def datapoints(self) -> list[DatapointView]:
        """Every dp the meter has reported, by id, as the profile reads it."""
        ...

    def wall_time(self) -> datetime:
        """The time the session stamps its events with."""
        ...

    def state(self) -> MeterStateView:
        """The raw reports behind values() and settings(): what an attached viewer mirrors."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def set_relay(self, on: bool, source: CommandSource = CommandSource.KEY) -> str:
        """The meter's confirmation; raises CommandRefused (not sent) or CommandFailed (not confirmed).
        Either way the result is published as a CommandFinished naming `source`."""
        ...

    async def query(self, source: CommandSource = CommandSource.KEY) -> str: ...

    def settings(self) -> list[SettingState]:
        """Every writable setting this meter has, with the value the meter last reported (None: unknown)
        and the value of a write under way."""
        ...

    def check_setting(self, name: str, value: str | None) -> PreparedWrite:
        """What writing `value` would send (old → new, and the risk if it weakens protection); raises
        CommandRefused with the reason it would be refused. Nothing is sent."""
        ...

    async def write_setting(self, name: str, value: str | None, source: CommandSource = CommandSource.KEY,
                            allow_weakening: bool = False) -> str:
        """Write a setting through the one command path: the meter's confirmation, or CommandRefused (not
        sent; a weakening change without `allow_weakening` is a WeakeningRefused) or CommandFailed (sent,
        not confirmed: the setting is unknown until the meter reports it again)."""
        ...

    def use_profile(self, profile: Profile, reason: str) -> None: ...


class CommandFailed(Exception):
    """The meter did not confirm a command; the message says what happened."""


class MachineViews(Generic[M]):
    """values(), reading() and datapoints() of a MeterSession, read from its machine's meter state."""

    machine: M

    def wall_time(self) -> datetime:
        raise NotImplementedError

    def values(self) -> Mapping[str, Scalar]:
        return MappingProxyType(self.machine.meter.values)

    def reading(self) -> Reading:
        return self.machine.meter.reading(self.wall_time())

    def datapoints(self) -> list[DatapointView]:
        return self.machine.meter.views()

    def settings(self) -> list[SettingState]:
        return self.machine.settings()

    def state(self) -> MeterStateView:
        meter = self.machine.meter
        return MeterStateView(meter.dps, meter.types, self.machine.writing())
