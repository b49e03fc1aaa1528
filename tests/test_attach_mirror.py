"""An attached view holds exactly what the service holds: the real HostMachine and simulated meter on a
fake clock (tests/tui_support.py) behind a real control socket, and an AttachedSession on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.tui_support import OfflineLink
from tests.waiting import until
from tuimeter.attach.client import AttachedSession
from tuimeter.attach.server import ControlServer
from tuimeter.core.events import DatapointReceived, FrameLogged, LinkState


def differences(service: OfflineLink, view: AttachedSession) -> list[str]:
    """What the view shows otherwise than the service (empty: the same)."""
    found = []
    if dict(view.values()) != dict(service.values()):
        found.append(f"values: {dict(view.values())} != {dict(service.values())}")
    if [d.text for d in view.datapoints()] != [d.text for d in service.datapoints()]:
        found.append("the Device panel's datapoints")
    if view.settings() != service.settings():
        found.append("settings")
    if view.reading()._replace(ts=None) != service.reading()._replace(ts=None):
        found.append(f"reading: {view.reading()} != {service.reading()}")
    a, b = view.status(), service.status()
    if (a.link, a.online, a.product, a.profile.name) != (b.link, b.online, b.product, b.profile.name):
        found.append(f"status: {a} != {b}")
    return found


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[OfflineLink, AttachedSession]]:
    service = OfflineLink(seed=7)
    server = ControlServer(service, tmp_path / "s.sock")
    await server.start()
    view = AttachedSession(tmp_path / "s.sock", wallclock=service.wall)
    await view.start()
    yield service, view
    await view.close()
    await server.close()


async def test_the_view_mirrors_start_up_reports_and_a_write(pair: tuple[OfflineLink, AttachedSession]) -> None:
    service, view = pair
    service.run(30)  # start-up, the dump, reports
    await until(lambda: not differences(service, view), what="the view equal to the service",
                show=lambda: differences(service, view))
    assert view.status().online and view.reading().voltage_v is not None
    assert "confirmed" in await service.write_setting("over_voltage_threshold", "270")
    await until(lambda: not differences(service, view), what="the write mirrored",
                show=lambda: differences(service, view))
    assert next(s.value for s in view.settings() if s.name == "over_voltage_threshold") == 270


async def test_what_the_service_forgets_the_view_forgets(pair: tuple[OfflineLink, AttachedSession]) -> None:
    service, view = pair
    service.run(30)
    await until(lambda: view.reading().relay is True, what="the relay on in the view")
    service.machine.connection_lost(service.now, service.wall(), "port lost: unplugged")  # the relay is unknown now
    service.bus.publish(service.machine.events())
    await until(lambda: view.status().link is LinkState.RECONNECTING, what="the view told the port is lost")
    assert view.reading().relay is None and "relay" not in view.values()
    assert not differences(service, view)


async def test_a_view_that_attaches_later_gets_the_same_state(tmp_path: Path) -> None:
    service = OfflineLink(seed=7)
    server = ControlServer(service, tmp_path / "s.sock")
    await server.start()
    service.run(30)  # everything happens before the view attaches: the snapshot alone must carry it
    view = AttachedSession(tmp_path / "s.sock", wallclock=service.wall)
    try:
        await view.start()
        assert not differences(service, view)
    finally:
        await view.close()
        await server.close()


async def test_the_discovery_view_gets_every_dp_report_and_status_lines_get_no_frames(
        pair: tuple[OfflineLink, AttachedSession], tmp_path: Path) -> None:
    service, view = pair
    lines = AttachedSession(tmp_path / "s.sock", history=False, wallclock=service.wall)  # as attach --headless
    await lines.start()
    kinds: dict[str, list[object]] = {"service": [], "view": [], "lines": []}
    service.bus.add_listener(lambda ev: kinds["service"].append(ev))
    view.bus.add_listener(lambda ev: kinds["view"].append(ev))
    lines.bus.add_listener(lambda ev: kinds["lines"].append(ev))
    try:
        service.run(30)

        def reports(name: str) -> list[tuple[int, bytes]]:
            return [(ev.dp.id, ev.dp.raw) for ev in kinds[name] if isinstance(ev, DatapointReceived)]

        await until(lambda: len(reports("view")) == len(reports("service")) > 10, what="every dp report in the view",
                    show=lambda: (len(reports("view")), len(reports("service"))))
        assert reports("view") == reports("service")  # what the discovery view counts, in order
        await until(lambda: lines.reading().voltage_v is not None, what="readings for the status lines")
        assert not any(isinstance(ev, FrameLogged | DatapointReceived) for ev in kinds["lines"])
    finally:
        await lines.close()


async def test_a_write_under_way_shows_as_writing_in_the_view(pair: tuple[OfflineLink, AttachedSession]) -> None:
    service, view = pair
    service.run(30)

    def writing() -> object:
        return next(s.writing for s in view.settings() if s.name == "over_voltage_threshold")

    await until(lambda: view.status().online, what="the view online")
    service.machine.request_setting("over_voltage_threshold", "270", service.now, service.wall())
    service._publish()  # the write goes out; the meter has not answered yet
    await until(lambda: writing() == 270, what="'writing… 270' in the view", show=writing)
    service.run(5)  # the meter reports the new value
    await until(lambda: writing() is None and not differences(service, view), what="the write confirmed in the view")
