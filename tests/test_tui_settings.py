"""The settings screen (key e), the confirmation dialogs' keys and the trip on the relay panel, driven by
Textual's Pilot against the real host machine and simulated meter on a fake clock (tests/tui_support.py)."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.tui_support import OfflineLink, palette_offers
from tests.waiting import pilot_until, until
from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DataPoint, DPType
from tuimeter.core.events import CommandFinished
from tuimeter.core.profile import load_profile, parse_profile
from tuimeter.host.api import CommandFailed
from tuimeter.sim.faults import FaultPlan
from tuimeter.sim.mcu import SimulatedMeter
from tuimeter.sim.settings import Writable
from tuimeter.tui.app import TuimeterApp
from tuimeter.tui.dialogs import ConfirmRelay, ConfirmSetting, ConfirmWeakening
from tuimeter.tui.settings_screen import SettingsScreen
from tuimeter.tui.widgets import HelpScreen, RelayPanel

OV = "over_voltage_threshold"  # dp 101, 275 V on the simulated meter, 250–300 V
LEAK = "leakage_threshold"  # dp 104, 50 mA; above 30 mA it weakens protection


class SteppedLink(OfflineLink):
    """An OfflineLink whose commands wait until the test steps the clock (`run`), as a real meter takes
    its time to answer: what the screen shows while a write is under way can be seen."""

    def __init__(self, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.finished: dict[int, CommandFinished] = {}
        self.waiting: set[int] = set()  # commands asked for, not answered yet
        self.bus.add_listener(self._seen)

    def _seen(self, ev: object) -> None:
        if isinstance(ev, CommandFinished):
            self.finished[ev.token] = ev

    async def _until_done(self, token: int) -> str:
        self._publish()  # a result known at once is out now, not at the next step
        self.waiting.add(token)
        try:
            await until(lambda: token in self.finished, what=f"command {token} answered (the test steps the clock)")
        finally:
            self.waiting.discard(token)
        ev = self.finished[token]
        if not ev.ok:
            raise CommandFailed(ev.message)
        return ev.message


async def answer(pilot: Pilot[Any], link: SteppedLink, seconds: float = 1.0) -> None:
    """Once the screen's command is asked for (its worker runs when it runs), step the meter's clock."""
    await pilot_until(pilot, lambda: link.waiting, what="a command asked for")
    link.run(seconds)


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


def settings_screen(app: TuimeterApp) -> SettingsScreen:
    screen = app.screen
    assert isinstance(screen, SettingsScreen), screen
    return screen


def nothing_under_way(app: TuimeterApp) -> bool:
    """No write waits for confirmation and none is on its way (a write is marked pending before its worker)."""
    screen = next(s for s in app.screen_stack if isinstance(s, SettingsScreen))
    return not screen.pending and not any(w.group == "settings" and not w.is_finished for w in app.workers)


def value_shown(app: TuimeterApp, name: str) -> str:
    screen = app.screen_stack[-1]
    if not isinstance(screen, SettingsScreen):
        screen = next(s for s in app.screen_stack if isinstance(s, SettingsScreen))
    return str(screen.query_one("#settings-table", DataTable).get_cell(name, "value"))


def verdict(app: TuimeterApp) -> str:
    return text_of(settings_screen(app).editor.verdict)


async def open_settings(pilot: Pilot[Any], app: TuimeterApp) -> SettingsScreen:
    await pilot.press("e")
    await pilot_until(pilot, lambda: isinstance(app.screen, SettingsScreen)
                      and app.screen.query_one(DataTable).row_count > 0, what="the settings table")
    return settings_screen(app)


async def select(pilot: Pilot[Any], screen: SettingsScreen, name: str) -> None:
    screen.table.move_cursor(row=screen.table.get_row_index(name))
    await pilot.pause()


async def type_value(pilot: Pilot[Any], app: TuimeterApp, name: str, text: str) -> None:
    """Select the row, Enter to edit, and type `text` over what the editor starts with."""
    screen = settings_screen(app)
    await select(pilot, screen, name)
    await pilot.press("enter")
    await pilot_until(pilot, lambda: screen.editor.state is not None and screen.editor.input.has_focus,
                      what="the editor open")
    screen.editor.input.value = ""
    await pilot.press(*text)
    await pilot_until(pilot, lambda: screen.editor.input.value == text, what=f"{text!r} typed")


async def dialog(pilot: Pilot[Any], app: TuimeterApp, kind: type) -> None:
    await pilot_until(pilot, lambda: isinstance(app.screen, kind), what=f"the {kind.__name__} dialog",
                      show=lambda: app.screen)


async def test_edit_confirm_writing_then_the_meters_value() -> None:
    link = SteppedLink()
    app = started(link)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        screen = await open_settings(pilot, app)
        assert value_shown(app, OV) == "275 V"
        row = screen.table.get_row(OV)
        assert "250–300 V" in str(row[3]) and "Over-voltage trip" in str(row[4])
        assert str(screen.table.get_row(LEAK)[0]) == "⚠" and str(row[0]) == ""  # weakening marked, others not
        await type_value(pilot, app, OV, "265")
        assert verdict(app) == "275 V → 265 V"
        await pilot.press("enter")
        await dialog(pilot, app, ConfirmSetting)
        assert "over_voltage_threshold: 275 V → 265 V" in dialog_text(app)
        assert "y write" in dialog_text(app) and "Esc cancel" in dialog_text(app)
        await pilot.press("y")
        await pilot_until(pilot, lambda: value_shown(app, OV) == "writing… 265 V", what="writing… on the row",
                          show=lambda: value_shown(app, OV))
        assert link.sim.values[101] == 275  # the clock has not moved: the meter has it not yet
        await pilot.press("enter")  # the same setting again, while the first write waits
        await pilot_until(pilot, lambda: notified(app, "waiting for the meter's confirmation"),
                          what="the second edit refused")
        await answer(pilot, link, 1)
        await pilot_until(pilot, lambda: value_shown(app, OV) == "265 V", what="the confirmed 265 V",
                          show=lambda: value_shown(app, OV))
        assert link.sim.values[101] == 265
        assert writes_sent(link) == 1
        await pilot_until(pilot, lambda: notified(app, "265 V (confirmed by the meter)"), what="the confirmation")


async def test_out_of_range_is_refused_as_typed_and_enter_sends_nothing() -> None:
    link = SteppedLink()
    app = started(link)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await open_settings(pilot, app)
        await type_value(pilot, app, OV, "32")
        assert "→ 32 V" not in verdict(app) and "out of range 250–300 V" in verdict(app)  # checked as typed
        await pilot.press("0")
        await pilot_until(pilot, lambda: "320 V is out of range" in verdict(app), what="320 refused",
                          show=lambda: verdict(app))
        await pilot.press("enter")
        await pilot_until(pilot, lambda: notified(app, "320 V is out of range"), what="the refusal notified")
        assert isinstance(app.screen, SettingsScreen)  # no dialog
        assert nothing_under_way(app)
        link.run(2)
        assert writes_sent(link) == 0 and link.sim.values[101] == 275
        await pilot.press("escape")  # the editor closes; a second Esc goes back
        assert settings_screen(app).editor.state is None
        await pilot.press("escape")
        assert not isinstance(app.screen, SettingsScreen)


async def test_read_only_shows_the_values_and_refuses_with_the_reason() -> None:
    link = SteppedLink(read_only=True)
    app = started(link)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        screen = await open_settings(pilot, app)
        assert value_shown(app, OV) == "275 V" and value_shown(app, LEAK) == "50 mA"
        assert "Read-only" in text_of(screen.query_one("#settings-hint"))
        await select(pilot, screen, OV)
        await pilot.press("enter")
        await pilot_until(pilot, lambda: notified(app, "read-only mode: settings are not written"),
                          what="the session's reason notified")
        assert screen.editor.state is None and app.screen is screen  # no editor, no dialog
        await select(pilot, screen, "alarm_mute")  # a switch would toggle at once: refused the same way
        await pilot.press("enter")
        assert app.screen is screen
        assert nothing_under_way(app)
        link.run(2)
        assert writes_sent(link) == 0


async def test_weakening_needs_the_second_dialog_and_cancelling_it_sends_nothing() -> None:
    link = SteppedLink()
    app = started(link)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await open_settings(pilot, app)
        await type_value(pilot, app, LEAK, "40")
        assert "50 mA → 40 mA" in verdict(app) and "no longer protects people from electric shock" in verdict(app)
        await pilot.press("enter")
        await dialog(pilot, app, ConfirmSetting)
        assert "a second question follows" in dialog_text(app)
        await pilot.press("y")
        await dialog(pilot, app, ConfirmWeakening)
        text = dialog_text(app)
        assert "Above 30 mA the leakage trip no longer protects people from electric shock" in text
        assert "leakage_threshold: 50 mA → 40 mA" in text
        await pilot.press("escape")  # one confirmation only: nothing is sent
        await pilot_until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="back on the settings")
        for key in ("enter", "n"):  # a stray Enter on the second dialog, and n, cancel too
            await pilot.press("enter")  # the editor still holds 40
            await dialog(pilot, app, ConfirmSetting)
            await pilot.press("y")
            await dialog(pilot, app, ConfirmWeakening)
            await pilot.press(key)
            await pilot_until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="back on the settings")
        assert nothing_under_way(app)
        link.run(2)
        assert writes_sent(link) == 0 and link.sim.values[104] == 50
        assert value_shown(app, LEAK) == "50 mA"
        await pilot.press("enter")
        await dialog(pilot, app, ConfirmSetting)
        await pilot.press("y")
        await dialog(pilot, app, ConfirmWeakening)
        await pilot.press("y")  # at once: the first dialog's y held down, not an answer
        await pilot_until(pilot, lambda: notified(app, "read the risk first"), what="the held y not taken")
        assert isinstance(app.screen, ConfirmWeakening) and writes_sent(link) == 0
        link.run(1)
        await pilot.press("y")
        await pilot_until(pilot, lambda: value_shown(app, LEAK) == "writing… 40 mA", what="writing… 40 mA")
        await answer(pilot, link, 1)
        await pilot_until(pilot, lambda: value_shown(app, LEAK) == "40 mA", what="the confirmed 40 mA",
                          show=lambda: value_shown(app, LEAK))
        assert link.sim.values[104] == 40 and writes_sent(link) == 1


async def test_a_stray_enter_n_and_escape_cancel_the_settings_dialog() -> None:
    link = SteppedLink()
    app = started(link)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await open_settings(pilot, app)
        await type_value(pilot, app, OV, "265")
        for key in ("enter", "n", "escape"):
            await pilot.press("enter")
            await dialog(pilot, app, ConfirmSetting)
            await pilot.press(key)
            await pilot_until(pilot, lambda: isinstance(app.screen, SettingsScreen), what=f"{key} cancelled")
        assert nothing_under_way(app)
        link.run(2)
        assert writes_sent(link) == 0 and value_shown(app, OV) == "275 V"


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


async def test_an_unconfirmed_write_leaves_the_value_unknown_and_the_same_value_is_sent_again() -> None:
    link = SteppedLink()
    apply = link.sim._apply

    def deaf_to_dp_101(dp: DataPoint) -> None:
        if dp.id != 101:
            apply(dp)

    link.sim._apply = deaf_to_dp_101  # type: ignore[method-assign]
    app = started(link)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await open_settings(pilot, app)
        await type_value(pilot, app, OV, "265")
        await pilot.press("enter")
        await dialog(pilot, app, ConfirmSetting)
        await pilot.press("y")
        await pilot_until(pilot, lambda: value_shown(app, OV) == "writing… 265 V", what="writing…")
        await answer(pilot, link, 4)  # past the 3 s the host waits for the meter's report
        await pilot_until(pilot, lambda: value_shown(app, OV) == "unknown", what="the value unknown",
                          show=lambda: value_shown(app, OV))
        await pilot_until(pilot, lambda: notified(app, "did not confirm over_voltage_threshold 265 V"),
                          what="the failure notified")
        assert writes_sent(link) == 1
        link.sim._apply = apply  # type: ignore[method-assign]
        await type_value(pilot, app, OV, "265")
        assert verdict(app) == "unknown → 265 V"  # the same value again: sent, not skipped as "already 265"
        await pilot.press("enter")
        await dialog(pilot, app, ConfirmSetting)
        await pilot.press("y")
        await pilot_until(pilot, lambda: value_shown(app, OV) == "writing… 265 V", what="writing… again")
        await answer(pilot, link, 1)
        await pilot_until(pilot, lambda: value_shown(app, OV) == "265 V", what="the confirmed 265 V")
        assert link.sim.values[101] == 265 and writes_sent(link) == 2


async def test_a_switch_toggles_and_a_button_is_pressed() -> None:
    link = SteppedLink()
    app = started(link)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        screen = await open_settings(pilot, app)
        before = value_shown(app, "alarm_mute")
        after = "off" if before == "on" else "on"
        await select(pilot, screen, "alarm_mute")
        await pilot.press("enter")  # a switch toggles: straight to the question
        await dialog(pilot, app, ConfirmSetting)
        assert f"alarm_mute: {before} → {after}" in dialog_text(app)
        await pilot.press("y")
        await pilot_until(pilot, lambda: value_shown(app, "alarm_mute") == f"writing… {after}", what="writing…")
        await answer(pilot, link, 1)
        await pilot_until(pilot, lambda: value_shown(app, "alarm_mute") == after, what=f"alarm_mute {after}")
        link.sim.energy_wh = 5000.0
        await select(pilot, screen, "clear_energy")
        await pilot.press("e")
        await dialog(pilot, app, ConfirmSetting)
        assert "Press clear_energy?" in dialog_text(app) and "press (a one-shot action)" in dialog_text(app)
        await pilot.press("y")
        await pilot_until(pilot, lambda: value_shown(app, "clear_energy") == "pressing…", what="pressing…")
        await answer(pilot, link, 1)
        await pilot_until(pilot, lambda: value_shown(app, "clear_energy") == "(action)", what="pressed")
        assert link.sim.energy_wh < 5000.0 and writes_sent(link) == 2


async def test_an_alarm_record_takes_trip_at_text() -> None:
    link = SteppedLink()
    link.sim = SimulatedMeter(seed=7, period=2.0, speed=30.0, variant="8byte")  # TOMPD-63: alarm records
    link.use_profile(load_profile("tompd-63"), "the test's meter")
    app = started(link)
    name = "alarm_set_2.over_voltage"
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        screen = await open_settings(pilot, app)
        assert value_shown(app, name) == "trip at 245 V"
        await select(pilot, screen, name)
        await pilot.press("enter")
        await pilot_until(pilot, lambda: screen.editor.input.value == "trip@245", what="the record as text")
        await type_value(pilot, app, name, "trip@250")
        assert verdict(app) == "trip at 245 V → trip at 250 V"
        await pilot.press("enter")
        await dialog(pilot, app, ConfirmSetting)
        await pilot.press("y")
        await answer(pilot, link, 1)
        await pilot_until(pilot, lambda: value_shown(app, name) == "trip at 250 V", what="trip at 250 V",
                          show=lambda: value_shown(app, name))


CHOICE_DP = """
[[dp]]
id = 107
name = "buzzer_mode"
type = "enum"
writable = true
[dp.setting]
kind = "choice"
options = ["quiet", "loud", "off"]
title = "Buzzer (a choice made up for the test)"
"""


async def test_a_choice_is_picked_from_a_list() -> None:
    link = SteppedLink()
    link.sim.writable = {**link.sim.writable, 107: Writable(DPType.ENUM, 0, 2)}
    link.sim._types[107] = DPType.ENUM
    link.sim.values[107] = 0
    shipped = (resources.files("tuimeter") / "profiles" / "earu-2p63a.toml").read_text(encoding="utf-8")
    link.use_profile(parse_profile(shipped + CHOICE_DP, "test"), "the test's profile")
    app = started(link)
    link.sim._report([107])
    link.run(0.5)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        screen = await open_settings(pilot, app)
        assert value_shown(app, "buzzer_mode") == "quiet"
        assert str(screen.table.get_row("buzzer_mode")[3]) == "quiet / loud / off"
        await select(pilot, screen, "buzzer_mode")
        await pilot.press("enter")
        await pilot_until(pilot, lambda: screen.editor.options.has_focus, what="the list of choices")
        assert "unchanged" in verdict(app)
        await pilot.press("down")
        await pilot_until(pilot, lambda: verdict(app) == "quiet → loud", what="quiet → loud",
                          show=lambda: verdict(app))
        await pilot.press("enter")
        await dialog(pilot, app, ConfirmSetting)
        await pilot.press("y")
        await answer(pilot, link, 1)
        await pilot_until(pilot, lambda: value_shown(app, "buzzer_mode") == "loud", what="loud")
        assert link.sim.values[107] == 1


async def test_a_trip_shows_on_the_relay_panel_until_the_relay_is_on_again() -> None:
    link = OfflineLink()
    app = started(link)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        panel = app.query_one(RelayPanel)
        await pilot_until(pilot, lambda: text_of(panel).startswith("ON"), what="relay on")
        # earth leakage over the threshold: after its delay the meter opens the relay itself, fault bit set
        link.sim.plan = FaultPlan.parse(f"leak_at={link.now + 0.5:g}")
        link.run(4)
        await pilot_until(pilot, lambda: re.search(r"tripped: leakagecurr_alarm, \d\d:\d\d:\d\d", text_of(panel)),
                          what="the trip on the relay panel", show=lambda: text_of(panel))
        assert text_of(panel).startswith("OFF") and panel.has_class("tripped")
        await pilot_until(pilot, lambda: notified(app, "tripped: leakagecurr_alarm"), what="the trip notified")
        await pilot.press("r")
        await dialog(pilot, app, ConfirmRelay)
        await pilot.press("y")
        await pilot_until(pilot, lambda: text_of(panel).startswith("ON") and "tripped" not in text_of(panel),
                          what="on again, the trip gone", show=lambda: text_of(panel))


async def test_the_key_is_in_help_and_the_palette_and_in_the_footer_where_it_fits() -> None:
    link = OfflineLink()
    app = started(link)
    async with app.run_test(size=(80, 24)) as pilot:
        def footer() -> set[str]:  # what the footer shows: the active bindings marked to be shown
            return {b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}

        await pilot_until(pilot, lambda: "Discover" in footer(), what="the footer")
        assert "Settings" not in footer()  # full at 80 columns
        await pilot.resize_terminal(120, 36)
        await pilot_until(pilot, lambda: "Settings" in footer(), what="Settings in a wide footer",
                          show=footer)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "| `e` | settings" in app.screen.query_one("Markdown").source  # type: ignore[attr-defined]
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"Settings")
        await pilot_until(pilot, lambda: palette_offers(app, "Settings"), what="Settings offered")
        await pilot.press("enter")
        await pilot_until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="the settings screen")
