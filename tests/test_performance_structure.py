"""What the performance budgets rest on, checked without timing anything (timing is in benchmarks/)."""

from __future__ import annotations

from datetime import UTC, datetime

from benchmarks.common import chunked, machine_receive, online_machine, recorded_stream
from benchmarks.core import run_core, run_floor
from benchmarks.digits_app import Line
from benchmarks.headless import report
from tuimeter.core.commands import Command
from tuimeter.core.events import DatapointReceived, FrameLogged, Notice, ReadingUpdated
from tuimeter.core.frames import Frame
from tuimeter.host.bus import EventBus
from tuimeter.tui.model import LOG_KEEP, MonitorModel

TS = datetime(2026, 11, 24, tzinfo=UTC)


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
