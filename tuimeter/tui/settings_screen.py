"""The settings screen (key e): every writable setting with the meter's confirmed value, its range, and
a mark on those whose change can weaken protection; edits are checked by the session as they are
typed, and sent only after the confirmation dialogs (two for a change that weakens protection).

What is checked, sent and confirmed is the session's business (check_setting, write_setting); this
screen only shows what it says. A value changes on screen only when the meter reports it.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tuimeter.core.command_path import CommandRefused
from tuimeter.core.events import CommandSource
from tuimeter.core.settings import AlarmValue, PreparedWrite, SettingKind, SettingState, SettingValue
from tuimeter.host.api import CommandFailed, MeterSession
from tuimeter.tui.dialogs import ConfirmSetting, ConfirmWeakening

REFRESH_S = 0.1
WEAKENS = "⚠"
COLUMNS = (("mark", ""), ("setting", "setting"), ("value", "value"), ("range", "range"), ("title", "what it does"))
HINT = f"Enter edit · u query · Esc back · {WEAKENS} a change can weaken protection"


# ---- what a row shows ------------------------------------------------------------------------
def value_cell(state: SettingState, writing: SettingValue | None) -> Text:
    s = state.setting
    if writing is not None:
        return Text("pressing…" if s.kind is SettingKind.BUTTON else f"writing… {s.text(writing)}", "bold yellow")
    if s.kind is SettingKind.BUTTON:
        return Text("(action)", "dim")
    if state.value is None:
        return Text("unknown", "italic")
    return Text(s.text(state.value), "bold")


def range_text(state: SettingState) -> str:
    s = state.setting
    if s.kind in (SettingKind.NUMBER, SettingKind.ALARM) and state.range is not None:
        limits = state.range.text(s.unit)
        return f"trip@N / alarm@N, N {limits}" if s.kind is SettingKind.ALARM else limits
    return {SettingKind.SWITCH: "on / off", SettingKind.BUTTON: "one-shot action",
            SettingKind.CHOICE: " / ".join(s.options)}.get(s.kind, "")


def row_cells(state: SettingState, writing: SettingValue | None) -> tuple[str | Text, ...]:
    s = state.setting
    mark = Text(WEAKENS, "bold red") if s.weakening is not None else ""
    return mark, s.name, value_cell(state, writing), range_text(state), Text(s.title)


def edit_text(state: SettingState) -> str:
    """What the editor starts with: the confirmed value, in the form the session reads back."""
    value = state.value
    if value is None:
        return ""
    if isinstance(value, AlarmValue):
        return f"{'trip' if value.trips else 'alarm'}@{value.threshold:g}"
    return state.setting.text(value)


def toggled(state: SettingState) -> str:
    return "off" if state.value is True else "on"


def choices(state: SettingState) -> tuple[str, ...]:
    """A choice's options; a switch whose state is unknown is picked like a choice."""
    return state.setting.options if state.setting.kind is SettingKind.CHOICE else ("on", "off")


# ---- the editor --------------------------------------------------------------------------------
class SettingEditor(Vertical):
    """One setting being edited: a line of text (numbers, alarm records) or a list (choices), and what
    the session says of the value as it stands: the refusal, or old → new and the risk."""

    def __init__(self) -> None:
        super().__init__(id="setting-editor")
        self.state: SettingState | None = None
        self.about = Label("", id="setting-about")
        self.input = Input(id="setting-input")
        self.options = OptionList(id="setting-options")
        self.verdict = Static("", id="setting-check")

    def compose(self) -> ComposeResult:
        yield self.about
        yield self.input
        yield self.options
        yield self.verdict
        yield Label(Text.assemble(("Enter", "bold"), " write (asks first) · ", ("Esc", "bold"), " cancel"),
                    classes="keys")

    @property
    def setting_name(self) -> str:
        return "" if self.state is None else self.state.name

    def open(self, state: SettingState) -> None:
        self.state = state
        s = state.setting
        self.border_title = f"Edit {s.name}"
        self.about.update(Text(" · ".join(p for p in (s.title, range_text(state)) if p)))
        picks = s.kind is SettingKind.CHOICE or s.kind is SettingKind.SWITCH
        self.input.display = not picks
        self.options.display = picks
        self.display = True
        if picks:
            options = choices(state)
            self.options.clear_options()
            self.options.add_options([Option(o, id=o) for o in options])
            current = s.text(state.value)
            self.options.highlighted = options.index(current) if current in options else 0
            self.options.focus()
        else:
            self.input.value = edit_text(state)
            self.input.placeholder = "trip@N or alarm@N" if s.kind is SettingKind.ALARM else "a number"
            self.input.focus()

    def close(self) -> None:
        self.state = None
        self.display = False

    @property
    def text(self) -> str:
        if self.options.display:
            i = self.options.highlighted
            return "" if i is None else str(self.options.get_option_at_index(i).id)
        return self.input.value

    def show_check(self, result: PreparedWrite | str) -> None:
        if isinstance(result, str):
            self.verdict.update(Text(f"✗ {result}"))
            self.verdict.set_classes("refused")
            return
        line = Text(result.summary.split(": ", 1)[-1], "bold")
        if unchanged(result):
            line.append("  (unchanged: nothing to write)", "not bold")
        if result.weakening is not None:
            line.append(f"\n{WEAKENS} {result.weakening}")
        self.verdict.update(line)
        self.verdict.set_classes("weakening" if result.weakening is not None else "ok")


def unchanged(write: PreparedWrite) -> bool:
    return write.old == write.new and write.setting.kind is not SettingKind.BUTTON


# ---- the screen --------------------------------------------------------------------------------
class SettingsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("e", "edit", "Edit"),
    ]

    def __init__(self, link: MeterSession, revision: Callable[[], int], clock: Callable[[], float]) -> None:
        super().__init__()
        self.link = link
        self._clock = clock
        self._revision = revision  # the model's count of events that may change what is shown
        self._drawn: object = None
        self._rows: dict[str, tuple[str | Text, ...]] = {}
        self._states: dict[str, SettingState] = {}
        self.pending: dict[str, SettingValue] = {}  # confirmed by the user, not answered by the session yet
        self._pending_changes = 0

    def compose(self) -> ComposeResult:
        status = self.link.status()
        hint = HINT
        if status.read_only or status.replay:
            hint += "\nRead-only: the values are shown; nothing is written."
        yield Static(hint, id="settings-hint")
        table: DataTable[str | Text] = DataTable(id="settings-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Settings · the values the meter reported"
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        editor = SettingEditor()
        editor.display = False
        yield editor
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.table = self.query_one("#settings-table", DataTable)
        self.editor = self.query_one(SettingEditor)
        self.redraw()
        self.set_interval(REFRESH_S, self.redraw)
        self.table.focus()

    def redraw(self) -> None:
        mark = (self._revision(), self._pending_changes)
        if mark == self._drawn:
            return
        self._drawn = mark
        states = self.link.settings()
        self._states = {s.name: s for s in states}
        rows = {s.name: row_cells(s, s.writing if s.writing is not None else self.pending.get(s.name))
                for s in states}
        table = self.table
        if list(rows) != list(self._rows):  # another profile or product: the rows afresh
            row = table.cursor_row
            table.clear()
            for name, cells in rows.items():
                table.add_row(*cells, key=name)
            if table.row_count:
                table.move_cursor(row=min(row, table.row_count - 1))
        else:
            for name, cells in rows.items():
                for (key, _), old, new in zip(COLUMNS, self._rows[name], cells, strict=True):
                    if old != new:
                        table.update_cell(name, key, new, update_width=True)
        self._rows = rows

    def _set_pending(self, name: str, value: SettingValue | None) -> None:
        if value is None:
            self.pending.pop(name, None)
        else:
            self.pending[name] = value
        self._pending_changes += 1  # redrawn at the next tick

    # ---- choosing and editing ------------------------------------------------------------------
    def _selected(self) -> SettingState | None:
        if not self.table.row_count:
            self.notify("the meter has no writable setting in this profile", severity="warning")
            return None
        key = self.table.coordinate_to_cell_key(self.table.cursor_coordinate).row_key.value
        return self._states.get(key or "")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_edit()

    def action_edit(self) -> None:
        state = self._selected()
        if state is None:
            return
        s = state.setting
        if state.writing is not None or s.name in self.pending:
            self.notify(f"a write of {s.name} is waiting for the meter's confirmation", severity="warning")
            return
        status = self.link.status()
        if status.read_only or status.replay:  # the session says why, and nothing is sent
            self._submit(s.name, edit_text(state) or None)
        elif s.kind is SettingKind.BUTTON:
            self._submit(s.name, None)
        elif s.kind is SettingKind.SWITCH and state.value is not None:
            self._submit(s.name, toggled(state))
        else:
            self.editor.open(state)
            self._check()

    def _check(self) -> None:
        if self.editor.state is None:
            return
        try:
            result: PreparedWrite | str = self.link.check_setting(self.editor.setting_name, self.editor.text)
        except CommandRefused as exc:
            result = str(exc)
        self.editor.show_check(result)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._check()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self._check()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit(self.editor.setting_name, self.editor.text)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._submit(self.editor.setting_name, self.editor.text)

    def action_back(self) -> None:
        if self.editor.state is not None:
            self._close_editor()
        else:
            self.app.pop_screen()

    def _close_editor(self) -> None:
        self.editor.close()
        self.table.focus()

    # ---- confirming and writing ----------------------------------------------------------------
    def _submit(self, name: str, text: str | None) -> None:
        """Checked again now (the meter may have reported meanwhile), then asked, then sent."""
        try:
            write = self.link.check_setting(name, text)
        except CommandRefused as exc:
            self.notify(str(exc), severity="warning")
            return
        if unchanged(write):
            self.notify(f"{name} is already {write.setting.text(write.new)}; nothing to write")
            return

        def first(yes: bool | None) -> None:
            if not yes:
                return
            if write.weakening is None:
                self._write(write, text, allow_weakening=False)
            else:
                self.app.push_screen(ConfirmWeakening(write, self._clock), second)

        def second(yes: bool | None) -> None:
            if yes:
                self._write(write, text, allow_weakening=True)

        self.app.push_screen(ConfirmSetting(write), first)

    def _write(self, write: PreparedWrite, text: str | None, allow_weakening: bool) -> None:
        name = write.setting.name
        self._close_editor()
        self._set_pending(name, write.new)
        # on the app: leaving this screen does not abandon the write
        self.app.run_worker(self._send(name, text, allow_weakening), group="settings", exit_on_error=False)

    async def _send(self, name: str, text: str | None, allow_weakening: bool) -> None:
        """The outcome arrives as a CommandFinished (notified by the model); a refusal is told here."""
        try:
            await self.link.write_setting(name, text, CommandSource.KEY, allow_weakening=allow_weakening)
        except CommandRefused as exc:
            self.app.notify(str(exc), severity="warning")
        except CommandFailed:
            pass
        finally:
            self._set_pending(name, None)
