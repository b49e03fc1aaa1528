"""What the live screen shows, kept up to date from host events (no Textual here).

The session calls `handle()` for every event; it only stores values and queues log lines, so it
stays cheap at any frame rate. The app samples the model on a timer and redraws what changed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from tuimeter.core.commands import Command
from tuimeter.core.events import (
    CommandFinished,
    CommandResult,
    CommandSource,
    DatapointReceived,
    Event,
    FrameLogged,
    LinkChanged,
    LinkState,
    McuRestarted,
    Notice,
    ParseProblem,
    ProductInfoReceived,
    ProfileChosen,
    ReadingUpdated,
    RelayChanged,
    ServiceChanged,
    Tripped,
    command_text,
    log_line,
)
from tuimeter.core.meter import DatapointView, Reading
from tuimeter.core.profile import Profile

METRICS = ("voltage", "current", "power", "energy", "leakage")
READING_ATTR = {
    "voltage": "voltage_v",
    "current": "current_a",
    "power": "power_w",
    "energy": "energy_kwh",
    "leakage": "leakage_ma",
}
HISTORY_SECONDS = 300.0  # the trend covers the recent five minutes...
HISTORY_SLOT = 2.5  # ...in slots of 2.5 s (the last value of each), whatever the report rate
LOG_KEEP = 10_000  # frame-log lines kept in memory and saved by `s` (~2.5 MB); --record keeps everything
FILTERS = ("all", "no heartbeats", "reports only")
DEVICE_ROLES = (
    ("breaker id", "breaker_id"),
    ("over-voltage trip", "over_voltage_threshold"),
    ("under-voltage trip", "under_voltage_threshold"),
    ("over-current trip", "over_current_threshold"),
    ("leakage trip", "leakage_threshold"),
    ("alarm mute", "mute"),
    ("earth leak", "earth_leak"),
)


@dataclass
class MetricState:
    value: float | None = None
    min: float | None = None
    max: float | None = None
    updated: float | None = None  # monotonic time of the last report
    history: deque[tuple[int, float]] = field(
        default_factory=lambda: deque(maxlen=int(HISTORY_SECONDS / HISTORY_SLOT)))

    def add(self, value: float, now: float) -> None:
        self.value = value
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)
        self.updated = now
        slot = int(now // HISTORY_SLOT)
        if self.history and self.history[-1][0] == slot:
            self.history[-1] = (slot, value)
        else:
            self.history.append((slot, value))
        oldest = slot - int(HISTORY_SECONDS / HISTORY_SLOT)
        while self.history and self.history[0][0] <= oldest:
            self.history.popleft()

    def trend(self) -> list[float]:
        return [v for _, v in self.history]


@dataclass(frozen=True, slots=True)
class LogLine:
    ts: datetime
    kind: str  # in, out, error, event
    command: int | None
    text: str

    def render(self) -> str:
        arrow = {"in": "←", "out": "→", "error": "!", "event": "•"}[self.kind]
        return f"{self.ts.strftime('%H:%M:%S.%f')[:-3]} {arrow} {self.text}"

    def shown_by(self, mode: str) -> bool:
        if mode == "no heartbeats":
            return self.command != Command.HEARTBEAT
        if mode == "reports only":
            reports = (Command.DP_REPORT, Command.DP_REPORT_SYNC, Command.DP_COMMAND)
            return self.command in reports or self.kind in ("error", "event")
        return True


class MonitorModel:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.link = LinkState.CONNECTING
        self.link_reason = ""
        self.product: str | None = None
        self.mcu_version: str | None = None
        self.metrics = {name: MetricState() for name in METRICS}
        self.reading: Reading | None = None
        self.relay: bool | None = None
        self.relay_pending: bool | None = None  # the state asked for, while unconfirmed
        self.faults: tuple[str, ...] | None = None
        self.trip: str | None = None  # "tripped: <reasons>, HH:MM:SS" until the relay is on again
        self.settings_revision = 0  # counts events that may change the settings shown (reports, results, profile…)
        self.log: deque[LogLine] = deque(maxlen=LOG_KEEP)
        self.new_lines: deque[LogLine] = deque(maxlen=LOG_KEEP)  # not on screen yet
        self.notices: list[tuple[str, str]] = []  # (text, severity) to raise as notifications
        self.services: dict[str, bool] = {}  # mqtt, metrics: up or down, for the header
        self.restarts = 0
        self.dirty = True

    def handle(self, ev: Event) -> None:
        # frames and parse problems go to the log's own queue; the panels need no redraw for them
        if isinstance(ev, FrameLogged):
            self._line(LogLine(ev.ts, ev.direction, ev.frame.command, f"{ev.text}  | {ev.hex}"))
            return
        if isinstance(ev, ParseProblem):
            raw = f"  | {ev.data.hex(' ').upper()}" if ev.data else ""
            self._line(LogLine(ev.ts, "error", None, f"{ev.kind}: {ev.detail}{raw}"))
            return
        self.dirty = True
        line = log_line(ev)
        if line is not None:
            self._event(ev.ts, line)
        if isinstance(ev, DatapointReceived | CommandFinished | ProfileChosen | ProductInfoReceived | LinkChanged
                      | McuRestarted):
            self.settings_revision += 1
        if isinstance(ev, ReadingUpdated):
            self._reading(ev.reading, ev.roles)
        elif isinstance(ev, LinkChanged):
            self.link, self.link_reason = ev.state, ev.reason
            if ev.state in (LinkState.LINK_LOST, LinkState.RECONNECTING):
                self.notices.append((f"link {ev.state.value}: {ev.reason}", "warning"))
        elif isinstance(ev, McuRestarted):
            self.restarts += 1
            self.notices.append(("the meter's MCU restarted", "warning"))
        elif isinstance(ev, ProductInfoReceived):
            self.product, self.mcu_version = ev.info.product_id or ev.info.text, ev.info.mcu_version
        elif isinstance(ev, RelayChanged):
            self._relay(ev.on)
        elif isinstance(ev, Tripped):
            self.trip = ev.text
            self.notices.append((f"the meter {ev.text}", "error"))
        elif isinstance(ev, ServiceChanged):
            self.services[ev.service] = ev.up
            if ev.level != "info":
                self.notices.append((f"{ev.service}: {ev.detail}", "warning" if ev.level == "warning" else "error"))
        elif isinstance(ev, CommandFinished):
            if ev.result is not CommandResult.REFUSED or ev.source is not CommandSource.KEY:
                # a key's refusal is told where it was raised, at once
                self.notices.append((command_text(ev), "information" if ev.ok else "error"))
        elif isinstance(ev, Notice) and ev.level != "info":
            self.notices.append((ev.text, "warning" if ev.level == "warning" else "error"))

    def _line(self, line: LogLine) -> None:
        self.log.append(line)
        self.new_lines.append(line)

    def _event(self, ts: datetime, text: str) -> None:
        self._line(LogLine(ts, "event", None, text))

    def _reading(self, r: Reading, roles: frozenset[str]) -> None:
        now = self.clock()
        for name, attr in READING_ATTR.items():
            value = getattr(r, attr)
            if name in roles and value is not None:
                self.metrics[name].add(float(value), now)
        if r.faults is not None:
            new = set(r.faults) - set(self.faults or ())
            if new:
                self.notices.append(("fault: " + ", ".join(sorted(new)), "error"))
            self.faults = r.faults
        self._relay(r.relay)
        self.reading = r

    def _relay(self, on: bool | None) -> None:
        self.relay = on
        if on:
            self.trip = None  # on again: the trip is over

    def take_new_lines(self) -> list[LogLine]:
        lines = list(self.new_lines)
        self.new_lines.clear()
        return lines

    def take_notices(self) -> list[tuple[str, str]]:
        n, self.notices = self.notices, []
        return n

    def stale(self, name: str, after: float) -> bool:
        updated = self.metrics[name].updated
        return updated is None or self.clock() - updated > after


def device_rows(profile: Profile, views: list[DatapointView]) -> list[tuple[str, str]]:
    """(label, value) rows for the device panel: settings the profile names, then unknown dps."""
    rows = []
    by_id = {v.id: v for v in views}
    for label, role in DEVICE_ROLES:
        spec = profile.for_role(role)
        if spec is not None and spec.id in by_id:
            rows.append((label, by_id[spec.id].text.split(": ", 1)[-1]))
    for v in sorted(views, key=lambda v: v.id):
        if v.id not in profile.dps:
            rows.append((f"dp {v.id}", f"{v.dp.type.label} {v.dp.display()}"))
    return rows


def leakage_level(leak_ma: float | None, threshold_ma: float | None) -> str:
    """ok, near (at least 70 % of the meter's own trip threshold) or over."""
    if leak_ma is None or not threshold_ma:
        return "ok"
    if leak_ma >= threshold_ma:
        return "over"
    return "near" if leak_ma >= 0.7 * threshold_ma else "ok"
