"""The one command path: what a user's command must pass before it is sent, and what confirms it.

Every command from any front end (keys, --set, MQTT) becomes a Request here and waits in the host's
single queue; one request is outstanding at a time. A relay command completes only when the meter's
own report of the relay dp arrives; one not confirmed in time leaves the relay unknown.
"""

from __future__ import annotations

from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DPType, decode_datapoints, make_datapoint
from tuimeter.core.events import CommandSource
from tuimeter.core.host_state import Request, RequestKind
from tuimeter.core.profile import Scalar


class CommandRefused(Exception):
    """A command the host will not send; the message says why."""


def on_off(on: bool | None) -> str:
    return "on" if on else "off"


def check_relay(*, read_only: bool, relay_dp: int | None, profile: str, online: bool, link: str,
                pending: bool) -> int:
    """The relay dp to write, or CommandRefused with the reason nothing will be sent."""
    if read_only:
        raise CommandRefused("read-only mode: relay commands are disabled")
    if relay_dp is None:
        raise CommandRefused(f"profile {profile} has no relay datapoint")
    if not online:
        raise CommandRefused(f"meter not online ({link}); relay command not sent")
    if pending:
        raise CommandRefused("a relay command is already waiting for the meter's confirmation")
    return relay_dp


def check_query(*, online: bool, link: str) -> None:
    if not online:
        raise CommandRefused(f"meter not online ({link}); query not sent")


def relay_request(relay_dp: int, on: bool, token: int, source: CommandSource) -> Request:
    payload = make_datapoint(relay_dp, DPType.BOOL, on).encode()
    return Request(RequestKind.RELAY, Command.DP_COMMAND, payload, token, relay_on=on, source=source)


def query_request(token: int, source: CommandSource) -> Request:
    return Request(RequestKind.QUERY, Command.DP_QUERY, token=token, source=source)


def reports_dp(payload: bytes, dpid: int | None, dptype: DPType) -> bool:
    """Whether a report's units include `dpid` with the type commands to it are sent with."""
    dps, _ = decode_datapoints(payload)
    return any(dp.id == dpid and dp.type is dptype for dp in dps)


def relay_outcome(asked: bool | None, reported: Scalar | None) -> tuple[bool, str]:
    """The result of a relay command, from the state the meter reported after it."""
    if reported is asked:
        return True, f"relay {on_off(asked)} (confirmed by the meter)"
    return False, f"relay command {on_off(asked)} sent, but the meter reports {on_off(bool(reported))}"


def relay_unconfirmed(asked: bool | None, timeout: float) -> str:
    return f"the meter did not confirm relay {on_off(asked)} within {timeout:g} s; relay state unknown"
