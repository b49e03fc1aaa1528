"""The one command path: what a user's command must pass before it is sent, and what confirms it.

Every command from any front end (keys, --set, MQTT) becomes a Request here and waits in the host's
single queue; one request is outstanding at a time. A relay command completes only when the meter's
own report of the relay dp arrives; one not confirmed in time leaves the relay unknown.
"""

from __future__ import annotations

from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DPType, decode_datapoints, make_datapoint
from tuimeter.core.errors import CommandRefused
from tuimeter.core.events import CommandSource, SettingChange
from tuimeter.core.host_state import Request, RequestKind
from tuimeter.core.profile import Scalar
from tuimeter.core.settings import PreparedWrite, SettingKind, SettingValue, confirms


class WeakeningRefused(CommandRefused):
    """A write that weakens protection, asked for without the explicit second confirmation."""

    def __init__(self, write: PreparedWrite) -> None:
        self.write = write
        self.risk = write.weakening or ""
        super().__init__(f"{self.risk}; {write.summary} is not written without an explicit confirmation")


__all__ = ["CommandRefused", "WeakeningRefused"]


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


# ---- settings: the same path, for every writable dp -------------------------------------------
def check_setting(*, read_only: bool, online: bool, link: str) -> None:
    if read_only:
        raise CommandRefused("read-only mode: settings are not written")
    if not online:
        raise CommandRefused(f"meter not online ({link}); nothing written")


def setting_request(write: PreparedWrite, token: int, source: CommandSource) -> Request:
    return Request(RequestKind.SETTING, Command.DP_COMMAND, write.datapoint.encode(), token, source=source,
                   write=write)


def setting_change(write: PreparedWrite, reported: SettingValue | None = None) -> SettingChange:
    """The event's account of a write, with what the meter reported after it (None: unknown)."""
    return SettingChange(write.setting.name, write.setting.dp, write.old, write.new, write.setting.unit,
                         write.weakening is not None, reported)


def setting_outcome(write: PreparedWrite, payload: bytes) -> tuple[bool, str, SettingValue | None]:
    """Whether the meter's report of the dp confirms the write, the message, and the value reported."""
    dps, _ = decode_datapoints(payload)
    reported = next(dp for dp in dps if dp.id == write.datapoint.id)
    s = write.setting
    if confirms(write.datapoint, reported):
        return True, f"{_asked(write)} (confirmed by the meter)", write.new
    value = s.current(reported) if reported.type is write.datapoint.type else None
    return False, f"{_asked(write)} sent, but the meter reports {s.text(value)}", value


def setting_unconfirmed(write: PreparedWrite, timeout: float) -> str:
    s = write.setting
    return f"the meter did not confirm {_asked(write)} within {timeout:g} s; {s.name} unknown"


def _asked(write: PreparedWrite) -> str:
    s = write.setting
    return f"{s.name} done" if s.kind is SettingKind.BUTTON else f"{s.name} {s.text(write.new)}"


def reports_any(payload: bytes, dpid: int) -> bool:
    dps, _ = decode_datapoints(payload)
    return any(dp.id == dpid for dp in dps)
