"""What the host answers when the MCU asks it something: one table, command → answer.

The MCU may ask at any moment, in every phase of the start-up and after it (the protocol reference's
"MCU-initiated requests"). Each answer is a pure function of the request and a few facts the host
holds (`AnswerContext`); anything with an effect beyond the reply says so in `Answer.effect`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from tuimeter.core.commands import Command, gmt_time_payload, local_time_payload


class Effect(Enum):
    """What the host does beyond replying."""

    NONE = "none"
    REPAIR_NETWORK = "repair network"  # the MCU reset its Wi-Fi pairing: report the network ramp again


@dataclass(frozen=True, slots=True)
class AnswerContext:
    wall: datetime  # local time, with its UTC offset
    network_state: int  # the last state reported with 0x03 (or the configured final state)
    rssi_dbm: int


@dataclass(frozen=True, slots=True)
class Answer:
    command: int
    payload: bytes
    effect: Effect = Effect.NONE
    pairing: int = 0  # with REPAIR_NETWORK: the pairing state the ramp starts from (0 smartconfig, 1 AP)


def _first_byte(payload: bytes) -> int:
    return payload[0] if payload else 0


def _reset_wifi(cmd: Command) -> Callable[[bytes, AnswerContext], Answer]:
    def answer(payload: bytes, ctx: AnswerContext) -> Answer:
        # 0x05 carries the pairing mode: 0 smartconfig, 1 AP; anything else is read as 0
        pairing = 1 if cmd == Command.RESET_WIFI_MODE and payload[:1] == b"\x01" else 0
        return Answer(cmd, b"", Effect.REPAIR_NETWORK, pairing)
    return answer


ANSWERS: dict[int, Callable[[bytes, AnswerContext], Answer]] = {
    Command.LOCAL_TIME: lambda p, c: Answer(Command.LOCAL_TIME, local_time_payload(c.wall)),
    Command.GMT_TIME: lambda p, c: Answer(Command.GMT_TIME, gmt_time_payload(c.wall.astimezone(UTC))),
    Command.NETWORK_QUERY: lambda p, c: Answer(Command.NETWORK_QUERY, bytes((c.network_state,))),
    # a wired host has no radio: a plausible fixed strength
    Command.WIFI_RSSI: lambda p, c: Answer(Command.WIFI_RSSI, c.rssi_dbm.to_bytes(1, "big", signed=True)),
    Command.WIFI_TEST: lambda p, c: Answer(Command.WIFI_TEST, b"\x00\x00"),  # RF test: no router found
    Command.DP_REPORT_SYNC: lambda p, c: Answer(Command.DP_REPORT_SYNC_ACK, b"\x01"),  # reports applied
    # extended services: 0x0B record reports are applied; every sub-command is answered [sub, ok]
    Command.EXTENDED: lambda p, c: Answer(Command.EXTENDED, bytes((_first_byte(p), 0x00))),
    Command.NEW_FEATURE: lambda p, c: Answer(Command.NEW_FEATURE, bytes((_first_byte(p), 0x00))),
    Command.HEARTBEAT_STOP: lambda p, c: Answer(Command.HEARTBEAT_STOP, b""),
    Command.RESET_WIFI: _reset_wifi(Command.RESET_WIFI),
    Command.RESET_WIFI_MODE: _reset_wifi(Command.RESET_WIFI_MODE),
}


def answer(command: int, payload: bytes, ctx: AnswerContext) -> Answer | None:
    """The host's answer to an MCU request, or None when `command` is not one (a reply or a report)."""
    make = ANSWERS.get(command)
    if make is None or (command == Command.EXTENDED and not payload):
        return None
    return make(payload, ctx)
