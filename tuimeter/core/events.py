"""Events the host publishes: one stream that the TUI, the headless runner and every sink read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import NamedTuple

from tuimeter.core.commands import ProductInfo, command_label
from tuimeter.core.datapoints import DataPoint
from tuimeter.core.frames import Frame
from tuimeter.core.meter import Reading
from tuimeter.core.settings import SettingValue


class LinkState(StrEnum):
    CONNECTING = "connecting"  # opening the port the first time
    HANDSHAKING = "handshaking"  # port open, start-up sequence running
    ONLINE = "online"  # start-up done, heartbeats answered
    LINK_LOST = "link lost"  # heartbeats unanswered; start-up re-runs when the MCU answers
    RECONNECTING = "reconnecting"  # the port went away; reopening with backoff
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class LinkChanged:
    ts: datetime
    state: LinkState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class McuRestarted:
    ts: datetime


@dataclass(frozen=True, slots=True)
class ProductInfoReceived:
    ts: datetime
    info: ProductInfo


@dataclass(frozen=True, slots=True)
class ProfileChosen:
    ts: datetime
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class DatapointReceived:
    """A dp the meter reported (for the discovery view and --discover)."""

    ts: datetime
    dp: DataPoint


class ReadingUpdated(NamedTuple):
    """A new Reading; one per read of the port that reported something (a NamedTuple: built that often)."""

    ts: datetime
    reading: Reading
    roles: frozenset[str] = frozenset()  # the reading roles the meter reported in this burst


@dataclass(frozen=True, slots=True)
class RelayChanged:
    ts: datetime
    on: bool | None  # None: unknown (a command went unconfirmed)
    previous: bool | None


class CommandSource(StrEnum):
    """Who asked for a command: recorded with its result, so a log tells a key from MQTT."""

    KEY = "key"  # the live screen
    CLI = "cli"  # a one-shot run (--set relay=…, --query)
    MQTT = "mqtt"
    ATTACH = "attach"  # a screen attached to the service (tuimeter attach)
    WEB = "web"  # a browser's view (tuimeter web)


class CommandResult(StrEnum):
    CONFIRMED = "confirmed"  # the meter's own report shows it done (or it already was)
    REFUSED = "refused"  # nothing was sent
    UNCONFIRMED = "unconfirmed"  # sent, and the meter did not confirm it: the value is unknown


@dataclass(frozen=True, slots=True)
class SettingChange:
    """What a settings write was about: the values as the meter's report gives them (None: unknown)."""

    name: str  # as the person gave it when it is not a setting of the profile
    dp: int | None
    old: SettingValue | None  # the confirmed value before the write
    new: SettingValue | str | None  # what was asked (as typed, when it did not parse)
    unit: str = ""
    weakening: bool = False  # it weakens protection
    reported: SettingValue | None = None  # what the meter reported after the write (None: unknown)


@dataclass(frozen=True, slots=True)
class CommandFinished:
    """The end of one user command, from any front end: every attempt has one, a refused one too."""

    ts: datetime
    token: int
    result: CommandResult
    message: str
    command: str = ""  # "relay", "query", "setting"
    value: bool | None = None  # what was asked (relay: on/off)
    source: CommandSource = CommandSource.KEY
    setting: SettingChange | None = None  # a settings write

    @property
    def ok(self) -> bool:
        return self.result is CommandResult.CONFIRMED


@dataclass(frozen=True, slots=True)
class Tripped:
    """The meter opened its relay by itself, with fault bits newly set: why it tripped."""

    ts: datetime
    reasons: tuple[str, ...]  # the fault names, as the profile names the bits

    @property
    def text(self) -> str:
        return f"tripped: {', '.join(self.reasons) or 'no reason reported'}, {self.ts:%H:%M:%S}"


def command_text(ev: CommandFinished) -> str:
    """One line for people: who asked, and what became of it (the screen, headless lines)."""
    if ev.source is CommandSource.KEY:
        return ev.message if ev.result is not CommandResult.REFUSED else f"refused: {ev.message}"
    refused = " refused" if ev.result is CommandResult.REFUSED else ""
    return f"{ev.source.value} {ev.command} command{refused}: {ev.message}"


class ParseProblem(NamedTuple):
    """Bytes that were not a valid frame or dp (a NamedTuple: noise can bring many)."""

    ts: datetime
    kind: str  # bad_checksum, oversize, stalled, junk, datapoint
    detail: str
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should read: a hint, a retry, a warning."""

    ts: datetime
    text: str
    level: str = "info"  # info, warning, error


@dataclass(frozen=True, slots=True)
class ServiceChanged:
    """A bridge to the outside (mqtt, metrics) connected, lost its peer, or gave up."""

    ts: datetime
    service: str  # mqtt, metrics
    up: bool
    detail: str = ""
    level: str = "info"  # info, warning, error


@dataclass(eq=False)
class FrameLogged:
    """A frame in ("in") or out ("out"); the text is worked out only when someone reads it."""

    ts: datetime
    direction: str
    frame: Frame
    describe: Callable[[Frame], str] | None = field(repr=False, default=None)

    @cached_property
    def text(self) -> str:
        if self.describe is not None:
            return self.describe(self.frame)
        return command_label(self.frame.command)

    @property
    def hex(self) -> str:
        return self.frame.raw.hex(" ").upper()


Event = (
    LinkChanged
    | McuRestarted
    | ProductInfoReceived
    | ProfileChosen
    | DatapointReceived
    | ReadingUpdated
    | RelayChanged
    | CommandFinished
    | ParseProblem
    | Notice
    | ServiceChanged
    | FrameLogged
    | Tripped
)


def log_line(ev: Event) -> str | None:
    """The line an event makes in the frame log (None: frames and parse problems make their own, and
    readings none): one wording for the screen and for an attached viewer's history."""
    match ev:
        case LinkChanged():
            return f"link {ev.state.value}" + (f": {ev.reason}" if ev.reason else "")
        case McuRestarted():
            return "the meter's MCU restarted; start-up runs again"
        case ProductInfoReceived():
            return f"product info: {ev.info.text}"
        case Tripped():
            return ev.text
        case ProfileChosen():
            return f"profile {ev.name} ({ev.reason})"
        case ServiceChanged():
            return f"{ev.service} {'up' if ev.up else 'down'}: {ev.detail}"
        case CommandFinished():
            return command_text(ev)
        case Notice():
            return ev.text
    return None
