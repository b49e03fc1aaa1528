"""`tuimeter PORT --discover` (and `tuimeter replay FILE --discover`): list what the meter reports.

Prints each datapoint the first time it is seen, then, when stopped (Ctrl-C, SIGTERM, `--for S`,
or the end of a replay), a table of every dp with its type, how often it was reported and changed,
its value and a guess at its meaning. `--export PATH` writes PATH.toml (a tuimeter profile) and
PATH-autoexec.bat (an OpenBeken snippet). Never imports Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import TextIO

from tuimeter.analyzer.discovery import Discovery, SeenDatapoint
from tuimeter.analyzer.export import export_discovery
from tuimeter.core.events import DatapointReceived, Event, LinkChanged, ProductInfoReceived, ProfileChosen
from tuimeter.core.profile import format_value, with_unit
from tuimeter.exitcodes import ExitCode
from tuimeter.headless import event_line, install_stop_signals
from tuimeter.host.api import MeterSession

log = logging.getLogger(__name__)


class DiscoverMonitor:
    def __init__(self, source: MeterSession, out: TextIO = sys.stdout) -> None:
        # guesses start from the profile the meter is read through (--profile, or picked later)
        self.discovery = Discovery(base=source.status().profile)
        self.source = source
        self.out = out
        self.out_ok = True
        source.bus.add_listener(self.handle)

    def handle(self, ev: Event) -> None:
        if isinstance(ev, DatapointReceived):
            dp = ev.dp
            if self.discovery.observe(dp, ev.ts.timestamp()):
                self._say(f"{ev.ts:%H:%M:%S}  new {describe_seen(self.discovery, dp.id)}")
        elif isinstance(ev, ProductInfoReceived):
            self.discovery.product_id = ev.info.product_id
            self._say(f"{ev.ts:%H:%M:%S}  product {ev.info.text}")
        elif isinstance(ev, ProfileChosen):
            self.discovery.base = self.source.status().profile
        elif isinstance(ev, LinkChanged):
            self._say(str(event_line(ev)))

    def _say(self, line: str) -> None:
        """A closed stdout (`| head`) ends the printing, never the discovery or its export."""
        if not self.out_ok:
            return
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except (OSError, ValueError):
            self.out_ok = False

    def table(self) -> str:
        rows = [("dp", "type", "reports", "changes", "/min", "value", "meaning")]
        for dpid in sorted(self.discovery.seen):
            s = self.discovery.seen[dpid]
            rate = s.changes_per_minute()
            rows.append((str(dpid), type_text(s), str(s.reports), str(s.changes),
                         "—" if rate is None else f"{rate:.1f}", value_text(self.discovery, dpid),
                         meaning_text(self.discovery, dpid)))
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6]
                         for r in rows) + "\n"


def type_text(s: SeenDatapoint) -> str:
    """The wire type, with the lengths seen for a raw dp ("raw 10B")."""
    if s.type.label == "raw":
        return "raw " + "/".join(str(n) for n in sorted(s.lengths)) + "B"
    return s.type.label


def value_text(d: Discovery, dpid: int) -> str:
    s = d.seen[dpid]
    spec = d.spec(dpid)
    if spec.type is s.type and spec.fields:  # the roles are in the meaning column: values only here
        values = spec.decode(s.last)
        return ", ".join(with_unit(values[f.role], f.scale, f.unit) for f in spec.fields if f.role in values)
    if spec.type is s.type and (spec.role or spec.scale != 1 or spec.unit or spec.bits
                                or spec.alarms):
        return spec.describe(s.last).partition(": ")[2]
    return s.last.display() if not isinstance(s.last.value, int | str) else format_value(s.last.value)


def meaning_text(d: Discovery, dpid: int) -> str:
    spec = d.spec(dpid)
    where = "your edit" if d.edited(dpid) else (g.source if (g := d.guess(dpid)) else "no guess")
    roles = [spec.role] if spec.role else [f.role for f in spec.fields]
    panel = f" → {', '.join(roles)}" if roles and roles != [spec.name] else ""
    return f"{spec.name}{panel} ({where})"


def describe_seen(d: Discovery, dpid: int) -> str:
    s = d.seen[dpid]
    return f"dp {dpid} {type_text(s)}: {value_text(d, dpid)} — {meaning_text(d, dpid)}"


async def run_discover(source: MeterSession, monitor: DiscoverMonitor, *, seconds: float | None,
                       export: str | None, done: asyncio.Event | None = None) -> int:
    """Run until stopped, then print the table and export. The source must already be started."""
    stop = done or asyncio.Event()
    install_stop_signals(stop)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):  # not wait_for: it can swallow a cancel on 3.11 (gh-86296)
            await stop.wait()
    await source.close()
    if not monitor.discovery.seen:
        print("tuimeter: no datapoint was reported; nothing to export", file=sys.stderr)
        return ExitCode.METER
    files: list[Path] = []
    if export:  # first: the files matter more than the table on a terminal that may be gone
        try:
            files = export_discovery(monitor.discovery, export)
            log.info("discovery exported: %s", files)
        except OSError as exc:
            print(f"tuimeter: cannot write the export {export}: {exc.strerror}; choose a writable path",
                  file=sys.stderr)
            return ExitCode.RUNTIME
    monitor._say("\n" + monitor.table().rstrip("\n"))
    if files:
        monitor._say("exported: " + ", ".join(str(f) for f in files))
    return ExitCode.OK
