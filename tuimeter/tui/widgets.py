"""The screen's panels. They only draw what they are given: no I/O, no session access."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Digits, Label, Log, Markdown, Sparkline, Static

from tuimeter.tui.dialogs import ConfirmRelay as ConfirmRelay  # its home was here; tests import it from here
from tuimeter.tui.model import MetricState

_UNSET = object()
MAX_VALUE_CHARS = 6  # what a panel of a 120-column screen holds in large digits, unit beside


class MetricPanel(Vertical):
    """A measurement: large value and unit, min/max since start, the recent trend."""

    def __init__(self, metric: str, title: str, unit: str, fmt: str) -> None:
        super().__init__(id=f"metric-{metric}", classes="metric")
        self.metric = metric
        self.title = title
        self.unit = unit
        self.fmt = fmt
        self.border_title = title
        # children are created here and kept: redraws never query the DOM (which may be tearing down)
        self.digits = Digits("—", classes="digits")
        self.value_text = Label("—", classes="value-text")
        self.minmax = Label("", classes="minmax")
        self.trend = Sparkline([], classes="trend")
        self._shown: dict[str, object] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(classes="reading"):
            yield self.digits
            yield Label(self.unit, classes="unit")
        yield self.value_text
        yield self.minmax
        yield self.trend

    def _text(self, v: float | None) -> str:
        if v is None:
            return "—"
        decimals = int(self.fmt[1])
        text = f"{v:.{decimals}f}"
        while len(text) > MAX_VALUE_CHARS and decimals > 0:  # big numbers drop decimals, not digits
            decimals -= 1
            text = f"{v:.{decimals}f}"
        return text

    def _set(self, key: str, value: object) -> bool:
        """Remember what is on screen; True when it changes."""
        if self._shown.get(key) == value:
            return False
        self._shown[key] = value
        return True

    def show(self, state: MetricState, stale: bool, level: str = "ok", compact: bool = False) -> None:
        value = self._text(state.value)
        if compact and self._set("text", value):
            self.value_text.update(Text.assemble((value, "bold"), f" {self.unit}"), layout=False)
        elif not compact and self._set("digits", value):
            self.digits.update(value)
        lo, hi = self._text(state.min), self._text(state.max)
        minmax = f"{lo}–{hi}" if compact else f"min {lo}  max {hi}"
        if self._set("minmax", minmax):
            self.minmax.update(minmax, layout=False)  # fixed size: no layout pass needed
        # the trend (a bar per 2.5 s) at most once a second: redrawn with the digits, it cost a fifth of the screen
        if self._set("trend", (len(state.history), int(state.updated or 0))):
            self.trend.data = state.trend()
        self.set_class(stale, "stale")
        self.set_class(level == "near", "near")
        self.set_class(level == "over", "over")
        suffix = " · stale" if stale and state.value is not None else ""
        if level == "over":
            suffix += " · OVER TRIP LEVEL"
        elif level == "near":
            suffix += " · near trip level"
        if self._set("title", suffix):  # setting a title repaints the panel, even when it is the same
            self.border_title = self.title + suffix


class RelayPanel(Static):
    """The relay as the meter reported it; why it tripped, when it opened by itself (until it is on again)."""

    def show(self, relay: bool | None, pending: bool | None, read_only: bool, trip: str | None = None) -> None:
        if getattr(self, "_last", None) == (relay, pending, read_only, trip):
            return
        self._last = (relay, pending, read_only, trip)
        if pending is not None:
            state, cls = f"switching {'ON' if pending else 'OFF'}…", "pending"
        elif relay is None:
            state, cls = "unknown", "unknown"
        else:
            state, cls = ("ON" if relay else "OFF"), ("on" if relay else "off")
        tripped = trip is not None and relay is not True and pending is None
        lines = Text.assemble((state, "bold"), "\n", (trip or "", "bold") if tripped else
                              "confirmed by the meter" if pending is None and relay is not None else
                              "waiting for the meter's report" if pending is not None else "not reported yet")
        if read_only:
            lines.append("\nread-only", style="bold")
        self.update(lines, layout=False)
        for c in ("on", "off", "unknown", "pending"):
            self.set_class(c == cls, c)
        self.set_class(tripped, "tripped")


class FaultsPanel(Static):
    def show(self, faults: tuple[str, ...] | None) -> None:
        if getattr(self, "_last", _UNSET) == faults:
            return
        self._last = faults
        if faults is None:
            self.update("not reported yet", layout=False)
        else:
            self.update("\n".join(faults) if faults else "none", layout=False)
        self.set_class(bool(faults), "active")


_SHORT = {"breaker id": "id", "over-voltage trip": "OV", "under-voltage trip": "UV", "over-current trip": "OC",
          "leakage trip": "leak trip", "alarm mute": "mute", "earth leak": "earth leak"}


class DevicePanel(Static):
    """Settings and unknown datapoints; the text comes from the meter, so it is never read as markup."""

    def show(self, rows: list[tuple[str, str]], compact: bool = False) -> None:
        text = self._render_rows(rows, compact)
        last = getattr(self, "_last", None)
        if text != last:
            self._last = text
            # a layout pass only when the number of lines changes (the scroll box must know)
            self.update(Text(text), layout=last is None or last.count("\n") != text.count("\n"))

    @staticmethod
    def _render_rows(rows: list[tuple[str, str]], compact: bool) -> str:
        if not rows:
            return "not reported yet; press u to query"
        elif compact:  # short labels, two settings a line: a small terminal still shows them all
            cells = [f"{_SHORT.get(label, label)} {value}" for label, value in rows]
            head = cells[:1] if rows[0][0] == "breaker id" else []
            rest = cells[len(head):]
            return "\n".join(head + ["  ".join(rest[i:i + 2]) for i in range(0, len(rest), 2)])
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


class FrameLog(Log):
    """Textual's Log, measuring new lines' width right here instead of in a thread worker: that worker
    asks for the app from its thread, which fails once the app is closing (NoActiveAppError, raised
    at exit), and the few lines of a batched write are cheaper to measure than a thread hop."""

    def _update_size(self, updates: int, lines: list[str]) -> None:  # type: ignore[override]  # not a worker
        if lines:
            self._update_maximum_width(updates, max(cell_len(self._process_line(line)) for line in lines))


class StatusBar(Static):
    """Port, link state, product, heartbeat age and counters on one line."""


HELP = """\
# tuimeter

| key | action |
|---|---|
| `r` | toggle the relay (asks first; locked with `--read-only`) |
| `u` | query status: the meter reports every datapoint (0x08) |
| `e` | settings: thresholds, switches, actions; edit one (checked as you type, asks first) |
| `p` | pause / resume the frame log |
| `c` | clear the frame log |
| `f` | filter the frame log: all, no heartbeats, reports only |
| `s` | save the frame log to a file |
| `t` | next theme |
| `d` | discovery: every datapoint seen, its guessed meaning; name, scale, assign to a panel, export |
| `ctrl+p` | command palette: the same actions |
| `?` | this help |
| `q` | quit |

**Dialogs.** Every question shows its keys: `y` confirms, `n` or Esc cancels, and Cancel has the
focus, so a stray Enter changes nothing. With the relay state unknown the relay dialog offers both:
`1` ON, `0` OFF. A setting change that weakens protection asks a second time, naming the risk.

**Settings** (`e`). Every writable setting with the meter's confirmed value, unit and range; ⚠ marks
those whose change can weaken protection. Enter edits the selected one: a number or an alarm record
(`trip@250`, `alarm@250`) is typed and checked as you type, a switch toggles, an action is pressed,
a choice is picked. While a write waits for the meter the row reads *writing…*; a write the meter did
not confirm leaves the value *unknown*. Esc goes back.

**Panels.** Voltage, current, power, energy and leakage show the meter's last report, the lowest
and highest since start, and the last five minutes. A dimmed panel is stale: no report for a while.
Leakage turns yellow near the meter's own trip threshold (dp 104) and red over it.

**Relay.** The state shown is the one the meter reported. After a command it reads
*switching…* until the meter confirms, or a notification says it did not. When the meter opens
the relay by itself on a fault, the panel says why and when (*tripped: …*) until it is on again.

**Header.** Port and speed, link state, product id and MCU version, seconds since the last
heartbeat reply, frames in and out, and parse errors.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape,question_mark,q,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Grid(id="help"):
            yield Markdown(HELP)
