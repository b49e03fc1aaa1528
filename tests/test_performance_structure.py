"""What the performance budgets rest on, checked without timing anything (timing is in benchmarks/)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import budget_rows
from benchmarks.attach import CONFIGS
from benchmarks.common import chunked, machine_receive, online_machine, recorded_stream
from benchmarks.core import run_core, run_floor
from benchmarks.digits_app import Line
from benchmarks.headless import report
from tests.waiting import until
from tuimeter.attach import wire
from tuimeter.attach.server import ControlServer, Viewer
from tuimeter.core.commands import Command
from tuimeter.core.events import DatapointReceived, FrameLogged, Notice, ReadingUpdated
from tuimeter.core.frames import Frame
from tuimeter.core.profile import load_profile
from tuimeter.host.bus import EventBus
from tuimeter.host.session import HostSession, SessionOptions
from tuimeter.tui.model import LOG_KEEP, MonitorModel

TS = datetime(2026, 11, 24, tzinfo=UTC)
RESULTS = Path(__file__).parents[1] / "docs" / "performance-results.json"
ENCODE = wire.encode_event


def test_the_frame_log_in_memory_is_bounded() -> None:
    model = MonitorModel(lambda: 0.0)
    frame = Frame(3, Command.HEARTBEAT, b"\x01")
    for _ in range(LOG_KEEP * 2 + 7):
        model.handle(FrameLogged(TS, "in", frame))
    assert len(model.log) == LOG_KEEP and len(model.new_lines) <= LOG_KEEP


def test_without_a_screen_no_per_frame_or_per_dp_events_are_made() -> None:
    quiet, screen = online_machine(screen=False), online_machine(screen=True)
    stream, _ = recorded_stream(500)
    for m in (quiet, screen):
        m.events()
        machine_receive(m, stream, 100.0)
    quiet_events, screen_events = quiet.events(), screen.events()
    assert not any(isinstance(e, FrameLogged | DatapointReceived) for e in quiet_events)
    assert sum(isinstance(e, FrameLogged) for e in screen_events) >= 500
    reports = sum(isinstance(e, FrameLogged) and e.frame.command == Command.DP_REPORT for e in screen_events)
    assert sum(isinstance(e, DatapointReceived) for e in screen_events) == reports > 400  # one dp per report
    # both build the same readings from the same bytes
    assert [e.reading._replace(ts=TS) for e in quiet_events if isinstance(e, ReadingUpdated)] == \
        [e.reading._replace(ts=TS) for e in screen_events if isinstance(e, ReadingUpdated)]


def test_core_benchmark_and_its_floor_count_the_same_frames() -> None:
    # the floor is only a fair comparison if it finds exactly the frames the core decodes
    stream, frames = recorded_stream(3000)
    chunks = chunked(stream, 256)
    _, decoded, readings = run_core(chunks, screen=False)
    _, floor = run_floor(chunks)
    assert decoded == floor == frames and readings > 0


async def test_a_burst_reaches_a_batch_listener_in_one_call() -> None:
    bus = EventBus()
    each: list[object] = []
    bursts: list[list[object]] = []
    bus.add_listener(each.append)
    bus.add_batch_listener(lambda batch: bursts.append(list(batch)))
    bus.publish([FrameLogged(TS, "in", Frame(3, 0, b"\x01")), Notice(TS, "hello")])
    assert len(each) == 2 and len(bursts) == 1 and bursts[0] == each  # one call per burst, with all of it
    bus.close()
    await bus.wait_closed()


def test_the_screen_reference_app_shows_every_read_s_newest_report() -> None:
    # the reference Digits app (benchmarks/digits_app.py) is only a fair comparison if it does find
    # the reports: across reads split anywhere, with noise between frames
    shown: list[bytes] = []

    class App:
        def show(self, value: bytes) -> None:
            shown.append(value)

    line = Line(App())  # type: ignore[arg-type]
    stream = b"".join(report(seq) + b"\x55\x00" for seq in range(50))
    for i in range(0, len(stream), 7):
        line.data_received(stream[i:i + 7])
    leakage = [int.from_bytes(v[8:10], "big") for v in shown]
    assert leakage == sorted(set(leakage)) and leakage[-1] == 49 and len(leakage) >= 45


class _Transport:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class _Writer:
    """What ControlServer uses of a viewer's StreamWriter: every line it is given, kept."""

    def __init__(self) -> None:
        self.transport = _Transport()

    def write(self, line: bytes) -> None:
        self.transport.lines.append(line)


async def _served(viewers: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[object], list[_Writer]]:
    """A burst of a screen-configured session (frame log, per-dp events: what --control turns on) published
    to a ControlServer with `viewers` viewers; the events it encoded, and the viewers' writers."""
    encoded: list[object] = []

    def counting(ev: Any) -> Any:
        encoded.append(ev)
        return ENCODE(ev)

    monkeypatch.setattr(wire, "encode_event", counting)
    session = HostSession(SessionOptions(port="/dev/null"), load_profile())
    session.machine = online_machine(screen=True)
    session.machine.events()
    server = ControlServer(session, Path("/nonexistent/tuimeter-test.sock"))
    writers = [_Writer() for _ in range(viewers)]
    server.viewers = [Viewer(n, w, None, None) for n, w in enumerate(writers)]  # type: ignore[arg-type]
    machine_receive(session.machine, b"".join(report(seq) for seq in range(5)), 100.0)
    session.bus.publish(session.machine.events())
    await until(lambda: all(w.transport.lines for w in writers), what="the lines written")  # within SEND_EVERY
    session.bus.close()
    await session.bus.wait_closed()
    return encoded, writers


async def test_with_no_viewer_attached_the_control_server_encodes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # what the control-on, no-viewer budget (benchmarks/attach.py) rests on: the history is kept, no more
    encoded, _ = await _served(0, monkeypatch)
    assert encoded == []


async def test_a_burst_is_encoded_once_and_the_same_line_written_to_every_viewer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # what the 3-viewers-over-1 budget (benchmarks/attach.py) rests on
    one, _ = await _served(1, monkeypatch)
    three, writers = await _served(3, monkeypatch)
    assert len(three) == len(one) and sum(isinstance(e, FrameLogged) and e.direction == "in" for e in three) == 5
    assert len(writers[0].transport.lines) == 1
    assert writers[0].transport.lines == writers[1].transport.lines == writers[2].transport.lines


def test_the_budget_rows_are_those_of_the_results_file_and_of_a_partial_run() -> None:
    # docs/performance-results.json may hold benchmarks merged in later (python -m benchmarks --only NAME
    # --out FILE): its budget rows must still be the ones its results give
    *measured, budgets = json.loads(RESULTS.read_text(encoding="utf-8"))
    assert budgets["benchmark"] == "budgets" and budget_rows(measured) == budgets["rows"]
    attach = [r for r in measured if r["benchmark"] == "viewers attached to a headless service"]
    assert attach and attach[0]["configurations"].keys() == {c.key for c in CONFIGS}
    assert {row["what"].split(":")[0] for row in budget_rows(attach)} == {"viewers"}
