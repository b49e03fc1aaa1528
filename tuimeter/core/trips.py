"""Trips: the meter opened its relay by itself because of a fault (meter-settings.md §6).

A relay report of OFF that tuimeter did not command, next to fault bits newly set (in the same burst,
or within TRIP_WINDOW either way), is a trip; its reasons are those fault names. An OFF with no new
fault (someone pressed the meter's button) is not a trip, and neither are faults that were already
set when the meter was first read. Pure: every call brings its time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from tuimeter.core.events import Tripped

log = logging.getLogger(__name__)

TRIP_WINDOW = timedelta(seconds=5)


class TripDetector:
    def __init__(self) -> None:
        self._relay: bool | None = None
        self._faults: frozenset[str] | None = None  # None: not known yet (start, or forgotten)
        self._off_at: datetime | None = None  # an uncommanded OFF waiting for its faults
        self._new_faults: dict[str, datetime] = {}  # newly set fault → when, waiting for an OFF

    def observe(self, ts: datetime, relay: bool | None, faults: tuple[str, ...] | None,
                commanded_off: bool) -> Tripped | None:
        """One reading's relay and faults; a Tripped when they make a trip."""
        self._expire(ts)
        if faults is not None:
            known = frozenset(faults)
            if self._faults is not None:
                for name in known - self._faults:
                    self._new_faults.setdefault(name, ts)
            for name in list(self._new_faults):
                if name not in known:  # cleared again before the relay went off
                    del self._new_faults[name]
            self._faults = known
        else:
            self._faults = None
        if self._relay is True and relay is False and not commanded_off:
            self._off_at = ts
        elif relay is True:
            self._off_at = None
        self._relay = relay
        if self._off_at is not None and self._new_faults:
            reasons = tuple(sorted(self._new_faults, key=lambda n: (self._new_faults[n], n)))
            self._off_at, self._new_faults = None, {}
            log.info("trip: %s", ", ".join(reasons))
            return Tripped(ts, reasons)
        return None

    def _expire(self, ts: datetime) -> None:
        if self._off_at is not None and ts - self._off_at > TRIP_WINDOW:
            self._off_at = None
        self._new_faults = {n: t for n, t in self._new_faults.items() if ts - t <= TRIP_WINDOW}
