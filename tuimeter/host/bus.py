"""Fan-out of host events to any number of consumers, all called in the event loop's thread.

Each listener runs in isolation: one that raises is logged with its traceback, and the other
listeners, and later events (its own too), still run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from tuimeter.core.events import Event

log = logging.getLogger(__name__)


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Callable[[Event], None]] = []
        self._batch_listeners: list[Callable[[list[Event]], None]] = []
        self._closed = asyncio.Event()
        self.listener_errors = 0

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Called synchronously for each event (keep it cheap; no I/O)."""
        self._listeners.append(callback)

    def add_batch_listener(self, callback: Callable[[list[Event]], None]) -> None:
        """Called synchronously once per publish with all its events (a burst from the meter), after
        the per-event listeners: a consumer that writes can do so once per burst, without a task."""
        self._batch_listeners.append(callback)

    def publish(self, events: Iterable[Event]) -> None:
        events = list(events)
        for event in events:
            for cb in self._listeners:
                try:
                    cb(event)
                except Exception:
                    self._failed(cb, event)
        for batch in self._batch_listeners:
            try:
                batch(events)
            except Exception:
                self._failed(batch, events[0] if events else None)

    def _failed(self, listener: object, event: Event | None) -> None:
        self.listener_errors += 1
        name = getattr(listener, "__qualname__", repr(listener))
        log.exception("event listener %s failed on %s; the other listeners go on", name, type(event).__name__)

    def close(self) -> None:
        """No more events: wait_closed() returns."""
        self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()
