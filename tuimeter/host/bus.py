"""Fan-out of host events to any number of consumers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from tuimeter.core.events import Event

_CLOSED = object()


class Subscription:
    """An async iterator over events. Unbounded by default, so a logger loses nothing; a UI
    may pass `maxsize`, and then the oldest events are dropped (and counted) when it falls behind."""

    def __init__(self, bus: EventBus, maxsize: int, skip: tuple[type, ...] = ()) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize)
        self.skip = skip  # event types this consumer never reads: they are not queued at all
        self.dropped = 0

    def _put(self, item: object) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    async def get(self) -> Event | None:
        """The next event, or None once the bus has closed."""
        item = await self._queue.get()
        return None if item is _CLOSED else item  # type: ignore[return-value]

    def empty(self) -> bool:
        return self._queue.empty()

    def get_nowait(self) -> Event | None:
        """An already queued event, or None."""
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        return None if item is _CLOSED else item  # type: ignore[return-value]

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while (event := await self.get()) is not None:
            yield event

    def close(self) -> None:
        self._bus._subs.discard(self)


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._batch_listeners: list[Callable[[list[Event]], None]] = []

    def subscribe(self, maxsize: int = 0, skip: tuple[type, ...] = ()) -> Subscription:
        sub = Subscription(self, maxsize, skip)
        self._subs.add(sub)
        return sub

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
            for sub in self._subs:
                if not isinstance(event, sub.skip):
                    sub._put(event)
        for batch in self._batch_listeners:
            batch(events)

    def close(self) -> None:
        for sub in self._subs:
            sub._put(_CLOSED)
