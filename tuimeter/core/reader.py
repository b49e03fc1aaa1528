"""What both host machines do with what the meter sends (the live HostMachine and replay's
ListenMachine): frames and parse problems in, reports into the meter state, one Reading per read,
the profile picked from the candidates handed in, and events out.

Sans-I/O: every call brings its clocks (`now`, monotonic seconds; `wall`, the local time for events).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from tuimeter.core.commands import Command, ProductInfo, parse_product_info
from tuimeter.core.datapoints import DPType, decode_datapoints
from tuimeter.core.describe import describe_frame
from tuimeter.core.events import (
    DatapointReceived,
    Event,
    FrameLogged,
    ParseProblem,
    ProductInfoReceived,
    ProfileChosen,
    ReadingUpdated,
    RelayChanged,
)
from tuimeter.core.frames import Frame, Junk, ParseError, ParserEvent, StreamParser
from tuimeter.core.meter import MeterState
from tuimeter.core.profile import READING_ROLES, Profile, choose_from
from tuimeter.core.settings import PreparedWrite, SettingRefused, SettingState, SettingValue, find, prepare
from tuimeter.core.settings import states as setting_states
from tuimeter.core.trips import TRIP_WINDOW, TripDetector

log = logging.getLogger(__name__)

_READING_ROLES = frozenset(READING_ROLES)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _relay_dp_of(profile: Profile) -> int | None:
    """The dp relay commands go to."""
    relay = profile.for_role("relay")
    return relay.id if relay is not None and relay.type is DPType.BOOL else None


def _relay_ids_of(profile: Profile) -> frozenset[int]:
    """Every dp whose report can set the relay value: decoded at once, for RelayChanged events."""
    return frozenset(s.id for s in profile.dps.values()
                     if (not s.fields and (s.role or s.name) == "relay") or any(f.role == "relay" for f in s.fields))


class MeterReader:
    def __init__(self, profile: Profile, *, log_frames: bool, dp_events: bool,
                 candidates: Sequence[Profile] = ()) -> None:
        self.profile = profile
        self.meter = MeterState(profile)
        self.parser = StreamParser()
        self.product: ProductInfo | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.last_frame_at: float | None = None
        self._log_frames = log_frames  # a FrameLogged per frame: only the screen has a frame log
        self._dp_events = dp_events  # a DatapointReceived per dp: the discovery view and --discover
        self._candidates = tuple(candidates)  # pick one of these from the product id or the dps; none: keep
        self._events: list[Event] = []
        self._ts = _EPOCH  # the wall time of the call being handled, for its events (every call brings one)
        self._relay_dp = _relay_dp_of(profile)
        self._relay_ids = _relay_ids_of(profile)
        self._reading_dirty = False
        self._roles_reported: set[str] = set()
        self._trips = TripDetector()
        self._relay_off_sent_at: datetime | None = None  # when the host last sent "relay off"

    # ---- outputs ---------------------------------------------------------------------------
    def events(self) -> list[Event]:
        ev, self._events = self._events, []
        return ev

    def describe_frame(self, f: Frame) -> str:
        return describe_frame(f, self.meter)

    def settings(self) -> list[SettingState]:
        """Every setting this meter has, with the value its last report gave (None: unknown)."""
        product_id = self.product.product_id if self.product is not None else None
        return setting_states(self.profile.settings, self.meter.dps, product_id, self.writing())

    def writing(self) -> dict[str, SettingValue]:
        """Setting name → the value a write under way asked for."""
        return {}

    def prepare_write(self, name: str, text: str | None) -> PreparedWrite:
        """What writing `text` to setting `name` would send, from what the meter reported (nothing is
        sent; the caller checks that sending is allowed at all). Raises SettingRefused with the reason."""
        setting = find(self.profile.settings, self.profile.name, name)
        product_id = self.product.product_id if self.product is not None else None
        wire_type = self.meter.type_of(setting.dp)
        if not setting.available(product_id, wire_type is not None):
            raise SettingRefused(f"{setting.name} is not a setting of this product "
                                 f"({product_id or 'product id unknown'}); nothing sent")
        return prepare(setting, text, self.meter.dps.get(setting.dp), product_id, wire_type)

    @property
    def picking_profile(self) -> bool:
        return bool(self._candidates)

    # ---- the profile -----------------------------------------------------------------------
    def use_profile(self, profile: Profile, reason: str, wall: datetime) -> None:
        """Read the meter through another profile from now on (every dp stored is decoded again)."""
        self._ts = wall
        self._roles_reported |= self.meter.take_reported() & _READING_ROLES  # this burst's, through the old map
        seen = self.meter.dps
        self.profile = profile
        self.meter = MeterState(profile)
        for dp in seen.values():  # values read through the new map count as reported now
            self.meter.store(dp)
        self._relay_dp = _relay_dp_of(profile)
        self._relay_ids = _relay_ids_of(profile)
        log.info("profile %s: %s", profile.name, reason)
        self._events.append(ProfileChosen(wall, profile.name, reason))
        self._reading_dirty = bool(seen)
        self._emit_reading()

    def _pick_by_product(self) -> None:
        if not self._candidates or self.product is None or not self.product.product_id:
            return
        chosen = choose_from(list(self._candidates), self.product.product_id, {})
        if chosen is not None:
            self._candidates = ()
            self.use_profile(*chosen, self._ts)

    def _pick_by_fit(self) -> None:
        """No product id we know: go by the datapoints reported so far."""
        if not self._candidates:
            return
        chosen = choose_from(list(self._candidates), None, self.meter.dps)
        self._candidates = ()
        profile, reason = chosen if chosen is not None else (self.profile, "default (nothing reported yet)")
        self.use_profile(profile, reason, self._ts)

    # ---- input -----------------------------------------------------------------------------
    def _take(self, items: list[ParserEvent], now: float) -> None:
        """Every frame and parse problem of one read, in order."""
        for item in items:
            if isinstance(item, Frame):
                self.frames_in += 1
                self.last_frame_at = now
                if self._log_frames:
                    self._events.append(FrameLogged(self._ts, "in", item, self.describe_frame))
                self._on_frame(item, now)
            elif isinstance(item, ParseError):
                self._events.append(ParseProblem(self._ts, item.kind, item.detail, item.data))
            elif isinstance(item, Junk):
                self._events.append(ParseProblem(self._ts, "junk", f"{len(item.data)} bytes skipped", item.data))

    def _on_frame(self, f: Frame, now: float) -> None:
        raise NotImplementedError

    def _on_product(self, f: Frame) -> None:
        self.product = parse_product_info(f.payload)
        self._events.append(ProductInfoReceived(self._ts, self.product))
        self._pick_by_product()

    def _apply_report(self, payload: bytes) -> None:
        """Every dp of a report into the meter state: kept, and decoded once per read; a dp that can
        set the relay is decoded at once, for its RelayChanged event."""
        dps, problems = decode_datapoints(payload)
        ts, events, meter = self._ts, self._events, self.meter
        for p in problems:
            events.append(ParseProblem(ts, "datapoint", p, payload))
        for dp in dps:
            if dp.id in self._relay_ids:
                before = meter.values.get("relay")
                after = meter.apply(dp).get("relay", before)
                if after != before:
                    events.append(RelayChanged(ts, after if isinstance(after, bool) else None,
                                               before if isinstance(before, bool) else None))
            else:
                meter.store(dp)
            if self._dp_events:
                events.append(DatapointReceived(ts, dp))

    def _forget_relay(self) -> None:
        """The relay may have changed without a report (restart, lost link or port, unconfirmed command):
        it is unknown, with the report it came from, until the meter reports it again."""
        before = self.meter.forget("relay")
        if before is not None:
            log.info("relay state forgotten (was %s)", before)
            self._events.append(RelayChanged(self._ts, None, before if isinstance(before, bool) else None))
            self._reading_dirty = True

    def _emit_reading(self) -> None:
        """One Reading per batch of bytes: the frames of one report burst make one reading."""
        reported = self.meter.take_reported() & _READING_ROLES
        if reported:
            self._roles_reported |= reported
            self._reading_dirty = True
        if self._reading_dirty:
            self._reading_dirty = False
            roles, self._roles_reported = frozenset(self._roles_reported), set()
            reading = self.meter.reading(self._ts)
            self._events.append(ReadingUpdated(self._ts, reading, roles))
            trip = self._trips.observe(self._ts, reading.relay, reading.faults, self._relay_off_commanded())
            if trip is not None:
                self._events.append(trip)

    def _relay_off_commanded(self) -> bool:
        """Whether the host itself switched the relay off just now (then an OFF is no trip)."""
        return self._relay_off_sent_at is not None and self._ts - self._relay_off_sent_at <= TRIP_WINDOW

    def _note_sent(self, command: int, payload: bytes) -> None:
        """A frame the host sent: a relay-off command makes the next OFF no trip."""
        if command != Command.DP_COMMAND or self._relay_dp is None:
            return
        dps, _ = decode_datapoints(payload)
        if any(dp.id == self._relay_dp and dp.value is False for dp in dps):
            self._relay_off_sent_at = self._ts
