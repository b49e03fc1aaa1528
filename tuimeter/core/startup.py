"""The host's start-up sequence as a table of steps (the protocol reference's recommended order).

After the MCU first answers a heartbeat: 0x01 product info, 0x02 working mode, the 0x03 network
ramp only when the mode reply is empty (cooperative mode: the MCU wants to be told), then 0x08.
The 0x08 dump has no end marker, so it is over once the reports pause (`DumpWindow`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tuimeter.core.commands import Command, network_ramp
from tuimeter.core.host_state import Request, RequestKind


@dataclass(frozen=True, slots=True)
class Step:
    kind: RequestKind
    command: Command
    cooperative_only: bool = False  # sent only when the mode reply was empty
    per_network_state: bool = False  # one request per state of the network ramp


STEPS: tuple[Step, ...] = (
    Step(RequestKind.PRODUCT, Command.PRODUCT_INFO),
    Step(RequestKind.MODE, Command.WORKING_MODE),
    Step(RequestKind.NETWORK, Command.NETWORK_STATUS, cooperative_only=True, per_network_state=True),
    Step(RequestKind.QUERY, Command.DP_QUERY),
)


def requests(steps: tuple[Step, ...], wifi_state: int) -> list[Request]:
    """The requests of `steps`, in order."""
    out: list[Request] = []
    for step in steps:
        if step.per_network_state:
            out += [Request(step.kind, step.command, bytes((s,))) for s in network_ramp(wifi_state)]
        else:
            out.append(Request(step.kind, step.command))
    return out


def before_mode_reply() -> tuple[Step, ...]:
    """The steps sent before the working mode is known."""
    return STEPS[:[s.kind for s in STEPS].index(RequestKind.MODE) + 1]


def after_mode_reply(cooperative: bool) -> tuple[Step, ...]:
    """The steps left once the MCU has answered 0x02 (empty answer: cooperative)."""
    rest = STEPS[len(before_mode_reply()):]
    return tuple(s for s in rest if cooperative or not s.cooperative_only)


@dataclass(slots=True)
class DumpWindow:
    """The start-up dump is over once reports pause for `quiet` s, or `longest` s after it began
    (a meter that never pauses)."""

    quiet: float
    longest: float
    ends: float = 0.0
    deadline: float = 0.0

    def begin(self, now: float) -> None:
        self.ends, self.deadline = now + self.quiet, now + self.longest

    def report_seen(self, now: float) -> None:
        self.ends = min(now + self.quiet, self.deadline)
