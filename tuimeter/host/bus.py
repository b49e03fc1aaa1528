"""Fan-out of host events to any number of consumers, all called in the event loop's thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from tuimeter.core.events import Event


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Callable[[Event], None]] = []
        self._batch_listeners: list[Callable[[list[Event]], None]] = []
        self._closed = asyncio.Event()

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
                cb(event)
        for batch in self._batch_listeners:
            batch(events)

    def close(self) -> None:
        """No more events: wait_closed() returns."""
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()
