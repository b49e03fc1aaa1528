"""The live monitor: a consumer of the host session's events. All serial work stays in the session."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer

from tuimeter.analyzer.discovery import Discovery
from tuimeter.core.command_path import CommandRefused
from tuimeter.core.events import DatapointReceived, Event, LinkState, ProductInfoReceived, ProfileChosen
from tuimeter.host.api import CommandFailed, MeterSession
from tuimeter.tui.dialogs import ConfirmRelay
from tuimeter.tui.model import FILTERS, MonitorModel, device_rows, leakage_level
from tuimeter.tui.themes import DEFAULT_THEME, DEFAULT_VARIABLES, ThemeError, load_theme_file, shipped_themes
from tuimeter.tui.widgets import (
    DevicePanel,
    FaultsPanel,
    FrameLog,
    HelpScreen,
    MetricPanel,
    RelayPanel,
    StatusBar,
)

log = logging.getLogger(__name__)

REFRESH_S = 0.1  # panels: at most 10 redraws a second, however fast the meter sends
LOG_REFRESH_S = 0.5  # the frame log scrolls in batches (scrolling it is the costliest redraw)
STATUS_REFRESH_S = 0.5  # header counters and heartbeat age
SCREEN_LOG_LINES = 2000
STALE_AFTER_S = 40.0  # the real meter reports about every 15 s
COMPACT_BELOW = (120, 36)  # width, height
FOOTER_ROOM = 100  # columns from which the footer also has room for the settings key
HANGUP_GRACE_S = 2.0

PANELS = (
    ("voltage", "Voltage", "V", ".1f"),
    ("current", "Current", "A", ".3f"),
    ("power", "Power", "W", ".0f"),
    ("energy", "Energy", "kWh", ".2f"),
    ("leakage", "Leakage", "mA", ".0f"),
)

LINK_STYLE = {
    LinkState.CONNECTING: "yellow",
    LinkState.HANDSHAKING: "yellow",
    LinkState.ONLINE: "bold green",
    LinkState.LINK_LOST: "bold red",
    LinkState.RECONNECTING: "bold red",
    LinkState.CLOSED: "dim",
}


EDITED = "edited in the discovery view"


class TuimeterApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "tuimeter"
    BINDINGS = [  # short labels: all of them fit an 80-column footer
        Binding("r", "toggle_relay", "Relay"),
        Binding("r", "relay_locked", "Relay locked"),  # --read-only, replay: explains (check_action picks one)
        Binding("u", "query", "Query"),
        Binding("p", "pause_log", "Pause"),
        Binding("c", "clear_log", "Clear"),
        Binding("f", "cycle_filter", "Filter"),
        Binding("s", "save_log", "Save"),
        Binding("t", "cycle_theme", "Theme", show=False),  # in help and the palette; the footer is full
        Binding("d", "discover", "Discover"),
        # e opens the settings: in the footer only where it fits (the first of the two, while check_action
        # allows it); below FOOTER_ROOM columns the footer is full and the key is the second, unshown one
        Binding("e", "settings_from_footer", "Settings"),
        Binding("e", "settings", "Settings", show=False),  # in help and the palette
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("q,ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, link: MeterSession, *, theme_choice: str | None = None, save_dir: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.link = link
        self.model = MonitorModel(clock)
        link.bus.add_listener(self.model.handle)  # before the session starts: nothing is missed
        self.discovery = Discovery(base=link.status().profile)  # guesses start from the profile in use
        link.bus.add_listener(self._observe)
        self.clock = clock
        self.save_dir = save_dir or Path.cwd()
        self.theme_choice = theme_choice
        self.log_paused = False
        self.log_filter = FILTERS[0]
        self._theme_names: list[str] = []
        self._last_status: Text | None = None
        self.compact = False

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(DEFAULT_VARIABLES)  # for themes (e.g. Textual's own) that do not set them

    @property
    def read_only(self) -> bool:
        status = self.link.status()
        return status.read_only or status.replay

    @property
    def replaying(self) -> bool:
        return self.link.status().replay

    # ---- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="metrics"):
            for metric, title, unit, fmt in PANELS:
                yield MetricPanel(metric, title, unit, fmt)
        with Horizontal(id="state"):
            relay = RelayPanel(id="relay")
            relay.border_title = "Relay"
            yield relay
            faults = FaultsPanel(id="faults")
            faults.border_title = "Faults"
            yield faults
            with VerticalScroll(id="device") as box:  # scrolls when unknown datapoints pile up
                box.border_title = "Device"
                yield DevicePanel(id="device-rows")
        log = FrameLog(id="log", max_lines=SCREEN_LOG_LINES, auto_scroll=True)
        log.border_title = "Frame log"
        yield log
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # widgets are looked up once: the refresh timer may still tick while the app shuts down
        self._status = self.query_one(StatusBar)
        self._metrics = {m: self.query_one(f"#metric-{m}", MetricPanel) for m, *_ in PANELS}
        self._relay = self.query_one(RelayPanel)
        self._faults = self.query_one(FaultsPanel)
        self._device = self.query_one("#device-rows", DevicePanel)
        self._frame_log = self.query_one(FrameLog)
        self._setup_themes()
        self._fit_to_size(self.size.width, self.size.height)
        # three paces: values fast, the log and the header slower (redrawing them is what costs)
        self.set_interval(REFRESH_S, self.refresh_view)
        self.set_interval(LOG_REFRESH_S, self._draw_log)
        self.set_interval(STATUS_REFRESH_S, self._draw_status)
        self.refresh_view()
        self._draw_status()
        if not self.is_headless:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, self.exit)
            loop.add_signal_handler(signal.SIGHUP, self._terminal_gone)

    def _terminal_gone(self) -> None:
        """SSH dropped or the terminal closed. Exit; Textual's shutdown writes to the dead terminal and
        can block there, so a watchdog ends the process if the clean exit has not within 2 s."""
        watchdog = threading.Timer(HANGUP_GRACE_S, os._exit, args=(128 + signal.SIGHUP,))
        watchdog.daemon = True
        watchdog.start()
        self.exit(128 + signal.SIGHUP)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_to_size(event.size.width, event.size.height)

    def _fit_to_size(self, width: int, height: int) -> None:
        self.compact = width < COMPACT_BELOW[0] or height < COMPACT_BELOW[1]
        self.screen.set_class(self.compact, "compact")
        self.model.dirty = True
        self.refresh_bindings()  # the footer's settings key comes and goes with the width

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "settings_from_footer":
            return self.size.width >= FOOTER_ROOM
        if action == "toggle_relay":
            return not self.read_only
        if action == "relay_locked":  # read-only: the key stays live to explain itself
            return self.read_only
        return True

    # ---- themes ----------------------------------------------------------------------------
    def _setup_themes(self) -> None:
        themes, problems = shipped_themes()
        for theme in themes:
            self.register_theme(theme)
        self._theme_names = [t.name for t in themes] or ["textual-dark", "textual-light"]
        for p in problems:
            self.notify(p, severity="warning")
        wanted = self.theme_choice or DEFAULT_THEME
        if wanted.endswith(".toml") or Path(wanted).is_file():
            try:
                theme = load_theme_file(Path(wanted))
            except ThemeError as exc:
                self.notify(f"{exc}; using the default theme", severity="warning", timeout=10)
                wanted = DEFAULT_THEME
            else:
                self.register_theme(theme)
                self._theme_names.append(theme.name)
                wanted = theme.name
        if wanted not in self.available_themes:
            if self.theme_choice:
                self.notify(f"no theme named {wanted!r}; using the default theme", severity="warning")
            wanted = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        self.theme = wanted

    def action_cycle_theme(self) -> None:
        names = self._theme_names
        i = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(i + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    # ---- drawing ---------------------------------------------------------------------------
    def refresh_view(self) -> None:
        """Sample the model and redraw what it says changed (and what ages: staleness, hb age)."""
        model = self.model
        self._check_staleness()
        if model.dirty:
            model.dirty = False
            self._draw_panels()
        for text, severity in model.take_notices():
            self.notify(text, severity=severity, timeout=8 if severity == "error" else 5)  # type: ignore[arg-type]

    def _draw_status(self) -> None:
        m = self.link.status()
        hb = "—" if m.heartbeat_age is None else f"{m.heartbeat_age:.0f}s"
        product = self.model.product or "—"
        if self.model.mcu_version:
            product += f" v{self.model.mcu_version}"
        # Text, not markup: the port name and product id are not ours to interpret
        services = [(f"  {name} {'✓' if up else '✗'}", "" if up else "bold red")
                    for name, up in sorted(self.model.services.items())]
        text = Text.assemble((f"● {m.link.value}", LINK_STYLE.get(m.link, "")), *services,
                             ("  REPLAY" if m.replay else "  READ-ONLY", "bold") if m.read_only or m.replay else "",
                             f"  {m.port_label}  {product}  hb {hb}  "
                             f"⇣{m.frames_in} ⇡{m.frames_out}  err {m.parse_errors}")
        if text != self._last_status:
            self._last_status = text
            self._status.update(text, layout=False)

    def _draw_panels(self) -> None:
        model = self.model
        threshold = self.link.values().get("leakage_threshold")
        for metric, *_ in PANELS:
            state = model.metrics[metric]
            level = leakage_level(state.value, threshold if isinstance(threshold, int | float) else None) \
                if metric == "leakage" else "ok"
            self._metrics[metric].show(
                state, model.stale(metric, STALE_AFTER_S), level, self.compact)
        pending = model.relay_pending if model.relay_pending is not None else None
        self._relay.show(model.relay, pending, self.read_only, model.trip)
        self._faults.show(model.faults)
        self._device.show(device_rows(self.link.status().profile, self.link.datapoints()), self.compact)

    def _check_staleness(self) -> None:
        for metric, *_ in PANELS:
            if self.model.stale(metric, STALE_AFTER_S) != self._metrics[metric].has_class("stale"):
                self.model.dirty = True  # a value just went stale (or fresh): redraw

    def _draw_log(self) -> None:
        if self.log_paused:
            return
        lines = [ln.render() for ln in self.model.take_new_lines() if ln.shown_by(self.log_filter)]
        if lines:
            self._frame_log.write_lines(lines)  # one call per tick: batched

    def _log_title(self) -> None:
        log = self._frame_log
        log.border_title = "Frame log" + (f" · {self.log_filter}" if self.log_filter != "all" else "") + \
            (" · PAUSED" if self.log_paused else "")

    # ---- actions ---------------------------------------------------------------------------
    def action_toggle_relay(self) -> None:
        if self.replaying:
            self.notify("replay: nothing is sent; a recording has no relay to switch", severity="warning")
            return
        if self.read_only:
            self.notify("read-only mode: relay commands are disabled (a --read-only service or view); "
                        "nothing is sent", severity="warning")
            return
        if self.model.relay_pending is not None:
            self.notify("a relay command is already waiting for the meter's confirmation", severity="warning")
            return
        status = self.link.status()
        if not status.online:
            self.notify(f"meter not online ({status.link.value}); relay command not sent", severity="warning")
            return
        self.push_screen(ConfirmRelay(self.model.relay), self._relay_confirmed)

    def action_relay_locked(self) -> None:
        self.action_toggle_relay()

    def _relay_confirmed(self, target: bool | None) -> None:
        if target is None:
            log.info("relay toggle cancelled")
            return
        log.info("relay %s confirmed by the user", "on" if target else "off")
        self.model.relay_pending = target
        self.model.dirty = True
        self.run_worker(self._switch(target), group="relay", exit_on_error=False)

    async def _switch(self, target: bool) -> None:
        try:
            await self._command(self.link.set_relay(target))
        finally:  # confirmed, failed or refused: no longer "switching…"
            self.model.relay_pending = None
            self.model.dirty = True

    async def _command(self, call: Awaitable[str]) -> None:
        """Results arrive as CommandFinished events (notified by the model); refusals are raised here."""
        try:
            await call
        except CommandRefused as exc:
            self.notify(str(exc), severity="warning")
        except CommandFailed:
            pass

    def action_query(self) -> None:
        try:
            self.run_worker(self._command(self.link.query()), group="query", exit_on_error=False)
        except CommandRefused as exc:
            self.notify(str(exc), severity="warning")

    def action_pause_log(self) -> None:
        self.log_paused = not self.log_paused
        self._log_title()
        if not self.log_paused:
            self._rewrite_log()  # with what came in meanwhile, through the filter now set

    def action_clear_log(self) -> None:
        self._frame_log.clear()
        self.model.log.clear()
        self.model.take_new_lines()

    def action_cycle_filter(self) -> None:
        self.log_filter = FILTERS[(FILTERS.index(self.log_filter) + 1) % len(FILTERS)]
        self._log_title()
        if not self.log_paused:  # a paused log keeps its lines until it resumes
            self._rewrite_log()

    def _rewrite_log(self) -> None:
        """The log pane afresh from memory, through the current filter."""
        log = self._frame_log
        log.clear()
        log.write_lines([ln.render() for ln in list(self.model.log)[-SCREEN_LOG_LINES * 4:]
                         if ln.shown_by(self.log_filter)][-SCREEN_LOG_LINES:])
        self.model.take_new_lines()

    def action_save_log(self) -> None:
        path = self.save_dir / f"tuimeter-frames-{datetime.now():%Y%m%d-%H%M%S}.log"
        try:
            with path.open("w", encoding="utf-8") as fh:
                fh.writelines(ln.render() + "\n" for ln in self.model.log)
        except OSError as exc:
            self.notify(f"cannot save the frame log to {path}: {exc.strerror}", severity="error")
            return
        self.notify(f"frame log saved: {path} ({len(self.model.log)} lines)")

    def action_settings(self) -> None:
        from tuimeter.tui.settings_screen import SettingsScreen

        if isinstance(self.screen, SettingsScreen):
            return
        self.push_screen(SettingsScreen(self.link, lambda: self.model.settings_revision, self.clock))

    def action_settings_from_footer(self) -> None:
        self.action_settings()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _observe(self, ev: Event) -> None:
        if isinstance(ev, DatapointReceived):
            self.discovery.observe(ev.dp, ev.ts.timestamp())
        elif isinstance(ev, ProductInfoReceived):
            self.discovery.product_id = ev.info.product_id
        elif isinstance(ev, ProfileChosen) and ev.reason != EDITED:
            self.discovery.base = self.link.status().profile

    def action_discover(self) -> None:
        from tuimeter.tui.discovery import DiscoveryScreen

        self.push_screen(DiscoveryScreen(self.discovery, lambda p: self.link.use_profile(p, EDITED), self.save_dir))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:  # type: ignore[type-arg]
        yield from super().get_system_commands(screen)
        if not self.read_only:
            yield SystemCommand("Toggle relay", "Switch the relay (asks first)", self.action_toggle_relay)
        yield SystemCommand("Query status", "Ask the meter for every datapoint (0x08)", self.action_query)
        yield SystemCommand("Settings", "Thresholds, switches, actions: see and edit (asks first)",
                            self.action_settings)
        yield SystemCommand("Pause or resume the frame log", "Stop or restart scrolling", self.action_pause_log)
        yield SystemCommand("Clear the frame log", "Empty the frame log", self.action_clear_log)
        yield SystemCommand("Filter the frame log", "All, no heartbeats, reports only", self.action_cycle_filter)
        yield SystemCommand("Save the frame log", "Write the frame log to a file", self.action_save_log)
        yield SystemCommand("Next tuimeter theme", "Dark, light, high contrast", self.action_cycle_theme)
        yield SystemCommand("Discover datapoints", "Every dp seen; name, scale, assign, export",
                            self.action_discover)
        yield SystemCommand("Help", "Keys and panels", self.action_help)
