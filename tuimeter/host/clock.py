"""The wall clock the sessions hand to the sans-I/O core: local time with its UTC offset."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone


class LocalClock:
    """Asking the OS for the zone costs more than the rest of a frame's handling, so the offset is
    looked up again only once a minute (DST changes are picked up)."""

    def __init__(self) -> None:
        self._until = 0.0
        self._tz: timezone = UTC

    def __call__(self) -> datetime:
        t = time.time()
        if t >= self._until:
            self._tz = timezone(timedelta(seconds=time.localtime(t).tm_gmtoff))
            self._until = t + 60 - t % 60  # at the next whole minute: zone changes happen on one
        return datetime.fromtimestamp(t, self._tz)


local_now = LocalClock()
