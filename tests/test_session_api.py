"""What every front end relies on of a running session: listeners isolated from each other, CLOSED
published at the end, a run loop that reports and survives the unexpected, tracebacks kept in the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.waiting import until
from tuimeter import logs
from tuimeter.core.events import Event, LinkChanged, LinkState, Notice, ReadingUpdated
from tuimeter.core.host import HostConfig
from tuimeter.core.profile import load_profile
from tuimeter.host import session as session_module
from tuimeter.host.bus import EventBus
from tuimeter.host.session import HostSession, SessionOptions
from tuimeter.sim.pty_server import PtyMeterServer

T = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger("tuimeter")
    saved = (root.handlers[:], root.level, root.propagate, logs.error_destination())
    yield
    for h in root.handlers:
        h.close()
    root.handlers[:], root.level, root.propagate = saved[0], saved[1], saved[2]
    logs._destination = saved[3]


def test_a_listener_that_raises_is_logged_and_the_others_and_later_events_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[Event] = []
    bursts: list[int] = []

    def broken(ev: Event) -> None:
        raise RuntimeError("a bug in one consumer")

    bus.add_listener(broken)
    bus.add_listener(seen.append)
    bus.add_batch_listener(lambda evs: bursts.append(len(evs)))
    with caplog.at_level(logging.ERROR, logger="tuimeter"):
        bus.publish([Notice(T, "one"), Notice(T, "two")])
        bus.publish([Notice(T, "three")])
    assert [e.text for e in seen] == ["one", "two", "three"]  # type: ignore[union-attr]
    assert bursts == [2, 1]
    failures = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(failures) == 3 and all(r.exc_info and "a bug in one consumer" in str(r.exc_info[1])
                                      for r in failures)


async def test_closing_a_session_publishes_closed(server: PtyMeterServer) -> None:
    session = HostSession(SessionOptions(port=server.port), load_profile(), HostConfig())
    links: list[LinkState] = []
    session.bus.add_listener(lambda e: links.append(e.state) if isinstance(e, LinkChanged) else None)
    await session.start()
    await session.wait_online(30)
    await session.close()
    assert links[-1] is LinkState.CLOSED and session.status().link is LinkState.CLOSED
    assert session.bus.closed


async def test_an_unexpected_error_while_reopening_the_port_is_reported_and_retried(
        server: PtyMeterServer, monkeypatch: pytest.MonkeyPatch) -> None:
    session = HostSession(SessionOptions(port=server.port), load_profile(), HostConfig())
    events: list[Event] = []
    session.bus.add_listener(events.append)
    await session.start()
    try:
        await session.wait_online(30)
        real_open = session_module.open_link
        failures = 2

        async def flaky_open(*args: object, **kw: object) -> asyncio.Transport:
            nonlocal failures
            if failures:
                failures -= 1
                raise RuntimeError("something nobody expected")
            return await real_open(*args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(session_module, "open_link", flaky_open)
        server.vanish()
        await until(lambda: failures == 0, what="two failed reopen attempts")
        server.restore()
        await until(lambda: session.status().online and session.reconnects == 1, what="the session online again")
        errors = [e for e in events if isinstance(e, Notice) and e.level == "error"]
        assert errors and "something nobody expected" in errors[0].text and "retrying" in errors[0].text
        n = sum(isinstance(e, ReadingUpdated) for e in events)
        await until(lambda: sum(isinstance(e, ReadingUpdated) for e in events) > n, what="readings after the reopen")
    finally:
        await session.close()


async def test_an_internal_error_keeps_its_traceback_in_the_debug_log_and_says_where(
        server: PtyMeterServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    log_file = tmp_path / "debug.log"
    logs.setup(True, str(log_file), screen=False)
    session = HostSession(SessionOptions(port=server.port), load_profile(), HostConfig())
    events: list[Event] = []
    session.bus.add_listener(events.append)
    await session.start()
    try:
        await session.wait_online(30)
        real_receive = session.machine.receive

        def receive_once_broken(data: bytes, now: float, wall: datetime) -> None:
            monkeypatch.setattr(session.machine, "receive", real_receive)
            raise ValueError("decoder bug")

        monkeypatch.setattr(session.machine, "receive", receive_once_broken)
        await until(lambda: any(isinstance(e, Notice) and e.level == "error" for e in events), what="the error notice")
        (notice,) = [e for e in events if isinstance(e, Notice) and e.level == "error"]
        assert "decoder bug" in notice.text and str(log_file) in notice.text  # type: ignore[union-attr]
        n = sum(isinstance(e, ReadingUpdated) for e in events)
        await until(lambda: sum(isinstance(e, ReadingUpdated) for e in events) > n, what="readings after the error")
    finally:
        await session.close()
    text = log_file.read_text()
    assert "Traceback" in text and "ValueError: decoder bug" in text
    assert "tuimeter.core.host_state" in text and "tuimeter.host.session" in text  # every layer logs
