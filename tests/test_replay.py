"""tuimeter replay: a recording plays back into the headless monitor and the live screen."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from textual.widgets import Digits, Log

from tests.test_tui import text_of
from tests.waiting import pilot_until, until_sync
from tuimeter.core.profile import load_profile
from tuimeter.host.replay import ReplaySession
from tuimeter.recorder import load_recording
from tuimeter.records import read_jsonl
from tuimeter.tui.app import TuimeterApp
from tuimeter.tui.widgets import ConfirmRelay, StatusBar

TUIMETER = [sys.executable, "-m", "tuimeter"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real session with the simulated meter: its recording and the readings logged live."""
    d = tmp_path_factory.mktemp("rec")
    rec, log = d / "session.rec", d / "live.jsonl"
    proc = subprocess.Popen([*TUIMETER, "--demo", "--headless", "--record", str(rec), "--log", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until_sync(lambda: log.exists() and len(readings(log)) >= 3, what="3 readings logged live")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    return rec, log


def readings(path: Path) -> list[dict[str, object]]:
    return [r for r in read_jsonl(path).records if r["type"] == "reading"]


def test_replay_headless_gives_the_live_readings_at_the_recorded_times(recorded: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    rec, live = recorded
    out = tmp_path / "replayed.jsonl"
    proc = subprocess.run([*TUIMETER, "replay", str(rec), "--speed", "20", "--headless", "--log", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "product id r9kg2g1uhhyicycb" in proc.stdout  # the profile was picked as it was live
    assert "replay finished" in proc.stdout and "end of the recording" in proc.stdout
    live_r, replay_r = readings(live), readings(out)
    assert len(live_r) >= 3
    assert [{k: v for k, v in r.items() if k != "ts"} for r in replay_r] == \
        [{k: v for k, v in r.items() if k != "ts"} for r in live_r]
    for a, b in zip(live_r, replay_r, strict=True):  # stamped with the time they were recorded
        gap = datetime.fromisoformat(str(a["ts"])) - datetime.fromisoformat(str(b["ts"]))
        assert abs(gap.total_seconds()) < 0.1


async def test_replay_plays_into_the_live_screen_and_sends_nothing(recorded: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    rec, live = recorded
    last = readings(live)[-1]
    session = ReplaySession(load_recording(str(rec)), str(rec), load_profile(), speed=5)
    app = TuimeterApp(session, save_dir=tmp_path)
    await session.start()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot_until(pilot, session.finished.is_set, what="the end of the replay")
        await pilot_until(pilot, lambda: app.query_one("#metric-voltage .digits", Digits).value
                          == f"{last['voltage_v']:.1f}", what="the last recorded voltage shown")
        await pilot_until(pilot, lambda: "closed" in text_of(app.query_one(StatusBar)),
                          what="closed in the header")  # the end of the recording
        status = text_of(app.query_one(StatusBar))
        assert "REPLAY" in status and "replay of session.rec ×5" in status
        log = "\n".join(app.query_one(Log).lines)
        assert "55 AA 00 00 00 00 FF" in log  # the recorded host's heartbeat, shown as sent
        await pilot.press("r")
        await pilot_until(pilot, lambda: any("recording has no relay" in n.message for n in app._notifications),
                          what="'no relay' notified")
        assert not isinstance(app.screen, ConfirmRelay)
        await pilot.press("u")
        await pilot_until(pilot, lambda: any("no meter to query" in n.message for n in app._notifications),
                          what="'no meter to query' notified")
    await session.close()


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read recording"),
    ("55 AA 00 00 00 00 FF\n", "is not a tuimeter recording (make one with --record FILE)"),
    ('{"type":"recording","version":1,"port":"x","baud":9600,"started":"2026-11-24T12:00:00+00:00"}\n',
     "holds no data"),
])
def test_a_file_that_is_no_recording_is_one_clear_line(tmp_path: Path, content: str | None,
                                                       message: str) -> None:
    path = tmp_path / "x.rec"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run([*TUIMETER, "replay", str(path), "--headless"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [message in line for line in proc.stderr.splitlines()] == [True]


def test_each_run_of_a_recording_keeps_its_own_start_time() -> None:
    from tuimeter.recorder import parse_recording

    text = "\n".join([
        '{"type":"recording","version":1,"port":"p","baud":9600,"started":"2026-11-24T12:00:00+00:00"}',
        '{"t":1.0,"dir":"rx","hex":"55aa030000010003"}',
        '{"type":"recording","version":1,"port":"p","baud":9600,"started":"2026-11-24T13:00:00+00:00"}',
        '{"t":2.0,"dir":"rx","hex":"55aa030000010104"}',
        '{"t":NaN,"dir":"rx","hex":"00"}',
    ])
    rec = parse_recording(text)
    assert rec is not None and [t for t, _, _ in rec.chunks] == [1.0, 3.0]  # played back to back
    assert rec.wall_time(1.0).isoformat() == "2026-11-24T12:00:01+00:00"
    assert rec.wall_time(3.0).isoformat() == "2026-11-24T13:00:02+00:00"  # the second run's own clock
