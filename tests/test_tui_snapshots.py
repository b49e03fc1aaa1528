"""Snapshots of the main screen on a seeded simulation (real core and simulator on a fake clock)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui_support import OfflineLink
from tuimeter.tui.app import TuimeterApp


def seeded_app() -> TuimeterApp:
    link = OfflineLink(seed=7)
    app = TuimeterApp(link, clock=link.clock)
    link.run(60)  # start-up and a minute of reports
    return app


async def settle(pilot: Pilot[int]) -> None:
    """Let every timer fire and the log's size worker finish, so the picture does not depend on load."""
    await pilot.pause(0.6)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(seeded_app(), terminal_size=size, run_before=settle)


def test_relay_confirmation(snap_compare: Any) -> None:
    assert snap_compare(seeded_app(), press=["r"], terminal_size=(100, 30), run_before=settle)


def test_discovery_view(snap_compare: Any) -> None:
    async def open_discovery(pilot: Pilot[int]) -> None:
        await pilot.press("d")
        await settle(pilot)

    assert snap_compare(seeded_app(), terminal_size=(140, 30), run_before=open_discovery)
