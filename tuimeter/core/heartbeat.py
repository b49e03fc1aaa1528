"""The heartbeat (0x00): when the next one is due, what a reply says, when the link counts as lost.

Until the MCU first answers, the host knocks every `handshake_interval` seconds; once online, a
heartbeat every `interval` seconds, each with a `timeout`; `missed_limit` unanswered in a row mean the
link is lost. The reply's byte is 0x00 on the first heartbeat since the MCU booted, 0x01 after: a 0x00
once online means the MCU restarted.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuimeter.core.commands import Command
from tuimeter.core.frames import Frame
from tuimeter.core.host_state import Request, RequestKind


@dataclass(slots=True)
class Heartbeat:
    handshake_interval: float
    interval: float
    timeout: float
    missed_limit: int
    next_due: float = 0.0
    missed: int = 0
    last_reply: float | None = None  # monotonic time of the last reply

    @staticmethod
    def request() -> Request:
        return Request(RequestKind.HEARTBEAT, Command.HEARTBEAT)

    @staticmethod
    def is_reply(f: Frame) -> bool:
        return f.command == Command.HEARTBEAT and len(f.payload) == 1

    @staticmethod
    def says_restarted(f: Frame) -> bool:
        return f.payload[0] == 0x00

    def answered(self, now: float) -> None:
        self.last_reply = now
        self.missed = 0
        self.next_due = now + self.interval

    def unanswered(self, now: float) -> bool:
        """One more unanswered heartbeat; True when that makes the link lost (else ask again now)."""
        self.missed += 1
        self.next_due = now
        return self.missed >= self.missed_limit
