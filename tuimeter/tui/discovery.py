"""The discovery view (key d): every datapoint seen, what it probably means, and the user's edits.

Edits go live at once: the app reads the meter through the edited profile, so a dp assigned to
the voltage panel fills it. `e` exports the profile TOML and an OpenBeken autoexec snippet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Label, Static

from tuimeter.analyzer.discover_cli import meaning_text, type_text, value_text
from tuimeter.analyzer.discovery import Discovery
from tuimeter.analyzer.export import export_discovery
from tuimeter.core.datapoints import DPType
from tuimeter.core.profile import Profile, format_value

COLUMNS = ("dp", "type", "value", "meaning", "reports", "changes", "/min", "history")
REFRESH_S = 0.5


class AskText(ModalScreen[str | None]):
    """One line of input: Enter keeps it, Escape cancels."""

    BINDINGS = [("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str) -> None:
        super().__init__()
        self.question = question
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="ask"):
            yield Label(self.question)
            yield Input(self.value, id="answer")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DiscoveryScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,d", "app.pop_screen", "Back"),
        Binding("n", "rename", "Name"),
        Binding("x", "scale", "Scale"),
        Binding("u", "unit", "Unit"),
        Binding("a", "assign", "Panel"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self, discovery: Discovery, apply: Callable[[Profile], None], save_dir: Path) -> None:
        super().__init__()
        self.discovery = discovery
        self._apply = apply
        self.save_dir = save_dir
        self._drawn = -1

    def compose(self) -> ComposeResult:
        yield Static("Discovery: every datapoint the meter reported. Select a row; n name, x scale, u unit, "
                     "a panel, e export.", id="discovery-hint")
        table: DataTable[str | Text] = DataTable(id="discovery-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.redraw()
        self.set_interval(REFRESH_S, self.redraw)

    def redraw(self) -> None:
        d = self.discovery
        if d.revision == self._drawn:
            return
        self._drawn = d.revision
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for dpid in sorted(d.seen):
            s = d.seen[dpid]
            rate = s.changes_per_minute()
            table.add_row(str(dpid), type_text(s), Text(value_text(d, dpid)), Text(meaning_text(d, dpid)),
                          str(s.reports), str(s.changes), "—" if rate is None else f"{rate:.1f}",
                          Text(self._history(dpid)), key=str(dpid))
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def _history(self, dpid: int) -> str:
        s = self.discovery.seen[dpid]
        if s.type in (DPType.RAW, DPType.STRING):
            return "—"
        spec = self.discovery.spec(dpid)
        values = []
        for _, dp in list(s.history)[-4:]:
            decoded = spec.decode(dp) if spec.type is dp.type else {"": dp.value}
            values.append(" ".join(format_value(v) for v in decoded.values()))
        return " → ".join(values)

    # ---- editing ---------------------------------------------------------------------------
    def _selected(self) -> int | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            self.notify("no datapoint seen yet", severity="warning")
            return None
        return int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or 0)

    def _ask(self, what: str, current: str, change: Callable[[int, str], object]) -> None:
        dpid = self._selected()
        if dpid is None:
            return

        def done(answer: str | None) -> None:
            if answer is None:
                return
            try:
                change(dpid, answer)
            except ValueError as exc:
                self.notify(f"dp {dpid}: {exc}", severity="error")
                return
            self._changed()

        self.app.push_screen(AskText(f"{what} for dp {dpid}", current.format(spec=self.discovery.spec(dpid))), done)

    def action_rename(self) -> None:
        self._ask("Name", "{spec.name}", lambda dpid, a: self.discovery.edit(dpid, name=a))

    def action_scale(self) -> None:
        self._ask("Scale (raw × scale = value; e.g. 0.1)", "{spec.scale:g}",
                  lambda dpid, a: self.discovery.edit(dpid, scale=_number(a)))

    def action_unit(self) -> None:
        self._ask("Unit", "{spec.unit}", lambda dpid, a: self.discovery.edit(dpid, unit=a))

    def action_assign(self) -> None:
        dpid = self._selected()
        if dpid is None:
            return
        if self.discovery.spec(dpid).type is DPType.RAW:
            self.notify("a raw dp feeds panels through its layout (fields) in the profile file; "
                        "export, edit the fields, load it with --profile", severity="warning")
            return
        role = self.discovery.next_role(dpid)
        self.discovery.assign(dpid, role)
        self.notify(f"dp {dpid} → {role or 'no panel'}")
        self._changed()

    def _changed(self) -> None:
        self._apply(self.discovery.profile(self._export_name()))
        self.redraw()

    def _export_name(self) -> str:
        return f"discovered-{self.discovery.product_id or 'meter'}"

    def action_export(self) -> None:
        if not self.discovery.seen:
            self.notify("no datapoint seen yet; nothing to export", severity="warning")
            return
        try:
            files = export_discovery(self.discovery, str(self.save_dir / self._export_name()))
        except OSError as exc:
            self.notify(f"cannot export to {self.save_dir}: {exc.strerror}", severity="error")
            return
        self.notify("exported: " + ", ".join(f.name for f in files) + f" in {self.save_dir}", timeout=8)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
