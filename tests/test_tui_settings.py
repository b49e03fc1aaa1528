"""The settings screen (key e), the confirmation dialogs' keys and the trip on the relay panel, driven by
Textual's Pilot against the real host machine and simulated meter on a fake clock (tests/tui_support.py)."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.tui_support import OfflineLink
from tests.waiting import pilot_until
from tuimeter.core.commands import Command
from tuimeter.sim.faults import FaultPlan
from tuimeter.tui.app import TuimeterApp
from tuimeter.tui.dialogs import ConfirmRelay
from tuimeter.tui.widgets import RelayPanel


def started(link: OfflineLink) -> TuimeterApp:
    app = TuimeterApp(link, clock=link.clock)
    link.run(10)  # start-up done, every dp reported
    return app


def text_of(widget: object) -> str:
    return str(widget.render())  # type: ignore[attr-defined]


def dialog_text(app: TuimeterApp) -> str:
    return "\n".join(text_of(label) for label in app.screen.query("Label"))


def writes_sent(link: OfflineLink) -> int:
    return sum(f.command == Command.DP_COMMAND for f in link.sim.frames_received)


def notified(app: TuimeterApp, text: str) -> bool:
    return any(text in n.message for n in app._notifications)


async def dialog(pilot: Pilot[Any], app: TuimeterApp, kind: type) -> None:
    await pilot_until(pilot, lambda: isinstance(app.screen, kind), what=f"the {kind.__name__} dialog",
                      show=lambda: app.screen)


async def test_relay_dialog_keys() -> None:
    link = OfflineLink()
    link.sim.plan = FaultPlan(ignore_relay=True)  # unconfirmed: the state becomes unknown
    app = started(link)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await pilot_until(pilot, lambda: app.model.relay is True, what="relay on")
        for key in ("enter", "n", "escape"):
            await pilot.press("r")
            await dialog(pilot, app, ConfirmRelay)
            assert "y switch OFF" in dialog_text(app)
            await pilot.press(key)
            await pilot_until(pilot, lambda: not isinstance(app.screen, ConfirmRelay), what=f"{key} cancelled")
        assert writes_sent(link) == 0
        await pilot.press("r")
        await dialog(pilot, app, ConfirmRelay)
        await pilot.press("y")
        await pilot_until(pilot, lambda: writes_sent(link) == 1 and app.model.relay is None and
                          not app.model.relay_pending, what="the relay command sent, unconfirmed: unknown")
        await pilot.press("r")  # unknown: ON and OFF offered, so y alone picks neither
        await dialog(pilot, app, ConfirmRelay)
        assert "1 ON · 0 OFF" in dialog_text(app)
        await pilot.press("y")
        await pilot_until(pilot, lambda: notified(app, "press 1 for ON or 0 for OFF"), what="y explained")
        assert isinstance(app.screen, ConfirmRelay)
        await pilot.press("enter")  # Cancel has the focus here too
        await pilot_until(pilot, lambda: not isinstance(app.screen, ConfirmRelay), what="cancelled")
        assert writes_sent(link) == 1
        link.sim.plan = FaultPlan()
        await pilot.press("r")
        await dialog(pilot, app, ConfirmRelay)
        await pilot.press("1")
        await pilot_until(pilot, lambda: writes_sent(link) == 2 and app.model.relay is True, what="switched ON")


async def test_a_trip_shows_on_the_relay_panel_until_the_relay_is_on_again() -> None:
    link = OfflineLink()
    app = started(link)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        panel = app.query_one(RelayPanel)
        await pilot_until(pilot, lambda: text_of(panel).startswith("ON"), what="relay on")
        link.sim._trip()  # earth leakage: the meter opens the relay itself, fault bit set
        link.run(1)
        await pilot_until(pilot, lambda: "tripped: leakagecurr_alarm, 18:30:10" in text_of(panel),
                          what="the trip on the relay panel", show=lambda: text_of(panel))
        assert text_of(panel).startswith("OFF") and panel.has_class("tripped")
        await pilot_until(pilot, lambda: notified(app, "tripped: leakagecurr_alarm"), what="the trip notified")
        await pilot.press("r")
        await dialog(pilot, app, ConfirmRelay)
        await pilot.press("y")
        await pilot_until(pilot, lambda: text_of(panel).startswith("ON") and "tripped" not in text_of(panel),
                          what="on again, the trip gone", show=lambda: text_of(panel))
