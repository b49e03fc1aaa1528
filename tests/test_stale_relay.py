"""The stale-relay defect through the live screen: a relay the meter never confirmed stays unknown
after a discovery edit re-reads every datapoint, and the next toggle offers both states and sends."""

from __future__ import annotations

from textual.widgets import Button, DataTable

from tests.test_discovery import answer
from tests.tui_support import OfflineLink
from tests.waiting import pilot_until
from tuimeter.core.commands import Command
from tuimeter.sim.faults import FaultPlan
from tuimeter.tui.app import TuimeterApp
from tuimeter.tui.discovery import DiscoveryScreen
from tuimeter.tui.widgets import ConfirmRelay, RelayPanel


def relay_commands(link: OfflineLink) -> int:
    return sum(f.command == Command.DP_COMMAND for f in link.sim.frames_received)


async def test_an_unconfirmed_relay_stays_unknown_after_a_discovery_edit_and_the_next_toggle_sends() -> None:
    link = OfflineLink()
    link.sim.plan = FaultPlan(ignore_relay=True)  # this meter never confirms
    app = TuimeterApp(link, clock=link.clock)
    link.run(10)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot_until(pilot, lambda: app.model.relay is True)
        await pilot.press("r")
        await pilot.click("#off")
        await pilot_until(pilot, lambda: not app.model.relay_pending and app.model.relay is None)
        assert relay_commands(link) == 1
        await pilot.press("d")  # a discovery edit re-reads every dp through the edited profile
        assert isinstance(app.screen, DiscoveryScreen)
        table = app.screen.query_one(DataTable)
        await pilot_until(pilot, lambda: table.row_count > 0)
        table.move_cursor(row=0)
        await pilot.press("n")
        await answer(pilot, "renamed_by_the_user")
        await pilot.press("escape")
        await pilot_until(pilot, lambda: not isinstance(app.screen, DiscoveryScreen))
        await pilot_until(pilot, lambda: text_of(app.query_one(RelayPanel)).startswith("unknown"),
                          what="the relay panel redrawn after the edit, still unknown")
        assert app.link.status().profile.dps[min(app.link.status().profile.dps)].name == "renamed_by_the_user"
        assert "relay" not in app.link.values()
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmRelay)
        assert {b.id for b in app.screen.query(Button)} == {"on", "off", "cancel"}  # unknown: both offered
        await pilot.click("#on")
        await pilot_until(pilot, lambda: relay_commands(link) == 2)  # sent, not skipped as "already on"


def text_of(widget: object) -> str:
    return str(widget.render())  # type: ignore[attr-defined]
