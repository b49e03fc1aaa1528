"""Waiting for a condition, the one way the suite waits.

A test waits for what it needs to see, never for a fixed time: the deadline only bounds the failure
case, so it is generous (CI is a shared, busy 2-core machine); a passing test goes on the moment the
condition holds. On timeout the failure says what was awaited, and what was last seen if `show` is
given. The condition may raise to give up early (a process that died, say).

    await until(lambda: session.link is LinkState.ONLINE, what="the link back online")
    until_sync(lambda: "link online" in out.read_text(), what="'link online' on stdout", show=out.read_text)
    await pilot_until(pilot, lambda: "OFF" in panel_text(), what="the relay panel saying OFF")
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from textual.pilot import Pilot

T = TypeVar("T")

TIMEOUT = 30.0  # seconds; generous on purpose, see above
INTERVAL = 0.02  # between polls of an in-process condition
SYNC_INTERVAL = 0.05  # between polls of files, processes, terminals
PILOT_INTERVAL = 0.05  # the app runs its timers and redraws in between


class Timeout(AssertionError):
    """A condition did not hold before the deadline."""


def _describe(pred: Callable[[], object]) -> str:
    name = getattr(pred, "__name__", "")
    if name and name != "<lambda>":
        return name
    try:
        source = " ".join(inspect.getsource(pred).split())
    except (OSError, TypeError):
        return repr(pred)
    return source if len(source) <= 300 else source[:297] + "..."


def _fail(pred: Callable[[], object], timeout: float, what: str | None, show: Callable[[], object] | None,
          last: object) -> Timeout:
    message = f"timed out after {timeout:g} s waiting for {what or _describe(pred)}"
    if show is not None:
        try:
            seen: object = show()
        except Exception as exc:  # the failure report must not hide the timeout
            seen = f"<show() raised {exc!r}>"
        message += f"\nlast seen: {seen!s}" if isinstance(seen, str) and "\n" in seen else f"; last seen: {seen!r}"
    elif last is not None and last is not False:
        message += f"; the condition last gave {last!r}"
    return Timeout(message)


def until_sync(pred: Callable[[], T], timeout: float = TIMEOUT, what: str | None = None,
               show: Callable[[], object] | None = None, interval: float = SYNC_INTERVAL) -> T:
    """Poll `pred` until it returns something truthy, and return that; raise Timeout at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise _fail(pred, timeout, what, show, last)
        time.sleep(interval)


async def until(pred: Callable[[], T], timeout: float = TIMEOUT, what: str | None = None,
                show: Callable[[], object] | None = None, interval: float = INTERVAL,
                pause: Callable[[float], Awaitable[object]] = asyncio.sleep) -> T:
    """until_sync for asyncio tests: the event loop runs between polls (`pause`)."""
    deadline = time.monotonic() + timeout
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise _fail(pred, timeout, what, show, last)
        await pause(interval)


async def pilot_until(pilot: Pilot[Any], pred: Callable[[], T], timeout: float = TIMEOUT, what: str | None = None,
                      show: Callable[[], object] | None = None, interval: float = PILOT_INTERVAL) -> T:
    """until for Textual Pilot tests: `pilot.pause()` between polls, so timers fire and the screen redraws."""
    return await until(pred, timeout, what, show, interval, pause=pilot.pause)
