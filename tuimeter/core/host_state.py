"""The host's phases and the one table of how they change (modelled on h11's `_state.py`).

Every change of phase, and of the link state users see, goes through `HostState.process()`: a
trigger either has a row in TRANSITIONS for the current phase, or it is a bug (HostStateError).

    IDLE ──port opened──▶ HANDSHAKE ──heartbeat answered──▶ STARTUP ──start-up query answered──▶ DUMP
      ▲                     ▲   ▲                            │   ▲                                │
      │                     │   └──a step failed 3 times─────┘   └──the MCU restarted──┐     reports pause
      │                     │                                                          │          ▼
      └──port lost (any)    └──────────────3 heartbeats unanswered────────────────── RUNNING ◀────┘
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from tuimeter.core.events import CommandSource, LinkState
from tuimeter.core.settings import PreparedWrite

log = logging.getLogger(__name__)


class Phase(Enum):
    IDLE = "idle"  # no port (not opened yet, or lost)
    HANDSHAKE = "handshake"  # a heartbeat every second until the MCU answers
    STARTUP = "startup"  # the start-up steps, one at a time (core/startup.py)
    DUMP = "dump"  # the start-up query's reports are coming in; nothing else is sent
    RUNNING = "running"  # online: heartbeats, user commands, MCU requests
    CLOSED = "closed"


class Trigger(Enum):
    PORT_OPENED = "port opened"
    HEARTBEAT_ANSWERED = "heartbeat answered"
    STEP_FAILED = "start-up step failed"
    QUERY_ANSWERED = "start-up query answered"
    DUMP_DONE = "start-up dump done"
    MCU_RESTARTED = "MCU restarted"
    HEARTBEATS_MISSED = "heartbeats missed"
    PORT_LOST = "port lost"
    CLOSE = "closed"


_OPEN = (Phase.HANDSHAKE, Phase.STARTUP, Phase.DUMP, Phase.RUNNING)

# (phase, trigger) → (next phase, link state shown to the user; None: unchanged)
TRANSITIONS: dict[tuple[Phase, Trigger], tuple[Phase, LinkState | None]] = {
    (Phase.IDLE, Trigger.PORT_OPENED): (Phase.HANDSHAKE, LinkState.HANDSHAKING),
    (Phase.HANDSHAKE, Trigger.HEARTBEAT_ANSWERED): (Phase.STARTUP, None),  # "link lost" stays until online
    (Phase.STARTUP, Trigger.STEP_FAILED): (Phase.HANDSHAKE, LinkState.HANDSHAKING),
    (Phase.STARTUP, Trigger.QUERY_ANSWERED): (Phase.DUMP, None),
    (Phase.DUMP, Trigger.DUMP_DONE): (Phase.RUNNING, LinkState.ONLINE),
    (Phase.RUNNING, Trigger.MCU_RESTARTED): (Phase.STARTUP, LinkState.HANDSHAKING),
    (Phase.RUNNING, Trigger.HEARTBEATS_MISSED): (Phase.HANDSHAKE, LinkState.LINK_LOST),
    **{(p, Trigger.PORT_LOST): (Phase.IDLE, LinkState.RECONNECTING) for p in (Phase.IDLE, *_OPEN)},
    **{(p, Trigger.CLOSE): (Phase.CLOSED, LinkState.CLOSED) for p in (Phase.IDLE, *_OPEN)},
}


class HostStateError(RuntimeError):
    """A trigger the current phase has no transition for: a bug in the host machine."""


@dataclass(slots=True)
class HostState:
    phase: Phase = Phase.IDLE
    link: LinkState = LinkState.CONNECTING
    was_online: bool = False  # online at least once since the machine was made

    def process(self, trigger: Trigger) -> LinkState | None:
        """Apply a trigger; returns the new link state when it changed, else None."""
        try:
            phase, link = TRANSITIONS[self.phase, trigger]
        except KeyError:
            raise HostStateError(f"no transition from {self.phase.value} on {trigger.value}") from None
        log.debug("%s --%s--> %s", self.phase.value, trigger.value, phase.value)
        self.phase = phase
        if phase is Phase.RUNNING:
            self.was_online = True
        if link is None or link is self.link:
            return None
        self.link = link
        return link


class RequestKind(Enum):
    """What the one outstanding request is; replies and timeouts dispatch on (kind, phase)."""

    HEARTBEAT = "heartbeat"
    PRODUCT = "product info"
    MODE = "working mode"
    NETWORK = "network status"
    QUERY = "query"
    RELAY = "relay"
    SETTING = "setting"


@dataclass(slots=True)
class Request:
    kind: RequestKind
    command: int
    payload: bytes = b""
    token: int | None = None  # a user command's, for its CommandFinished
    relay_on: bool | None = None  # RELAY: the state asked for
    source: CommandSource = CommandSource.KEY  # a user command's: who asked
    write: PreparedWrite | None = None  # SETTING: the checked write and what confirms it
    attempts: int = 0
    deadline: float = 0.0
