"""Snapshots of the main screen on a seeded simulation (real core and simulator on a fake clock)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.tui_support import OfflineLink
from tests.waiting import pilot_until
from tuimeter.tui.app import TuimeterApp
from tuimeter.tui.discovery import DiscoveryScreen
from tuimeter.tui.settings_screen import SettingsScreen
from tuimeter.tui.widgets import FrameLog


def seeded_app() -> TuimeterApp:
    link = OfflineLink(seed=7)
    app = TuimeterApp(link, clock=link.clock)
    link.run(60)  # start-up and a minute of reports
    return app


async def settle(pilot: Pilot[int]) -> None:
    """Wait until the screen shows what the model holds: the panels are drawn at mount, the frame log on
    its first 0.5 s tick (however late that comes here); then workers done and the app idle, so the
    picture does not depend on load."""
    app = pilot.app
    assert isinstance(app, TuimeterApp)
    log = app.query_one(FrameLog)
    await pilot_until(pilot, lambda: not app.model.new_lines and log.line_count > 0 and not app.model.dirty,
                      what="the frame log and panels drawn")
    await app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(seeded_app(), terminal_size=size, run_before=settle)


def test_relay_confirmation(snap_compare: Any) -> None:
    assert snap_compare(seeded_app(), press=["r"], terminal_size=(100, 30), run_before=settle)


def test_discovery_view(snap_compare: Any) -> None:
    async def open_discovery(pilot: Pilot[int]) -> None:
        await pilot.press("d")
        await pilot_until(pilot, lambda: isinstance(pilot.app.screen, DiscoveryScreen)
                          and pilot.app.screen.query_one(DataTable).row_count > 0, what="the discovery table")
        await settle(pilot)

    assert snap_compare(seeded_app(), terminal_size=(140, 30), run_before=open_discovery)


async def open_settings(pilot: Pilot[int]) -> None:
    await settle(pilot)
    await pilot.press("e")
    await pilot_until(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen)
                      and pilot.app.screen.query_one(DataTable).row_count > 0, what="the settings table")
    await pilot.pause()


def test_settings_screen(snap_compare: Any) -> None:
    assert snap_compare(seeded_app(), terminal_size=(120, 30), run_before=open_settings)


def test_settings_weakening_edit(snap_compare: Any) -> None:
    async def edit_leakage(pilot: Pilot[int]) -> None:
        await open_settings(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, SettingsScreen)
        screen.table.move_cursor(row=screen.table.get_row_index("leakage_threshold"))
        await pilot.press("enter")
        screen.editor.input.cursor_blink = False  # a blinking cursor would make the picture depend on timing
        screen.editor.input.value = ""
        await pilot.press("4", "0")
        await pilot_until(pilot, lambda: "40 mA" in str(screen.editor.verdict.render()), what="the check shown")

    assert snap_compare(seeded_app(), terminal_size=(120, 30), run_before=edit_leakage)
