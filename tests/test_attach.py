"""One host, many viewers: a headless service on the simulated meter, viewers attached to its control
socket (the live screen under Pilot in this process, `tuimeter attach --headless` in another)."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Digits

from tests.headless_process import TUIMETER, Tuimeter
from tests.waiting import TIMEOUT, pilot_until, until
from tuimeter.attach.client import AttachedSession, AttachError
from tuimeter.core.errors import CommandRefused
from tuimeter.records import read_jsonl
from tuimeter.tui.app import TuimeterApp
from tuimeter.tui.dialogs import ConfirmRelay
from tuimeter.tui.widgets import RelayPanel, StatusBar


def text_of(widget: object) -> str:
    return str(widget.render())  # type: ignore[attr-defined]


class Viewer:
    """`tuimeter attach SOCKET --headless --log FILE` in a process of its own."""

    def __init__(self, tmp_path: Path, sock: Path, *args: str, name: str = "viewer",
                 env: dict[str, str] | None = None) -> None:
        self.log = tmp_path / f"{name}.jsonl"
        self.out = tmp_path / f"{name}.out.txt"
        self.proc = subprocess.Popen([*TUIMETER, "attach", str(sock), "--headless", "--log", str(self.log), *args],
                                     stdout=self.out.open("w"), stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        return self.out.read_text()

    def records(self, kind: str) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [r for r in read_jsonl(self.log).records if r["type"] == kind]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(TIMEOUT)


@pytest.fixture
def viewers(tmp_path: Path) -> Iterator[Callable[..., Viewer]]:
    started: list[Viewer] = []

    def start(sock: Path, *args: str, name: str = "viewer") -> Viewer:
        v = Viewer(tmp_path, sock, *args, name=name)
        started.append(v)
        return v

    yield start
    for v in started:
        if v.proc.poll() is None:
            v.proc.kill()
            v.proc.wait()


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "control" / "meter.sock"


def service(run: Callable[..., Tuimeter], sock: Path, *args: str, name: str = "service") -> Tuimeter:
    svc = run("--control", str(sock), *args, name=name)
    svc.wait_output(f"viewers attach with: tuimeter attach {sock}")
    return svc


@pytest.fixture
async def attached(sock: Path) -> AsyncIterator[Callable[..., AttachedSession]]:
    sessions: list[AttachedSession] = []

    def make(**kw: Any) -> AttachedSession:
        s = AttachedSession(sock, **kw)
        sessions.append(s)
        return s

    yield make
    for s in sessions:
        await s.close()


def reading_keys(r: dict[str, Any]) -> tuple[Any, ...]:
    return r["ts"], r["voltage_v"], r["current_a"], r["power_w"], r["energy_kwh"], r["leakage_ma"], r["relay"]


def panel_value(app: TuimeterApp, metric: str) -> str:
    return str(app.query_one(f"#metric-{metric} .digits", Digits).value)


async def test_two_viewers_show_the_services_values_and_share_a_relay_toggle(
        run: Callable[..., Tuimeter], viewers: Callable[..., Viewer], attached: Callable[..., AttachedSession],
        sock: Path) -> None:
    svc = service(run, sock)
    other = viewers(sock)
    session = attached()
    app = TuimeterApp(session)
    await session.start()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot_until(pilot, lambda: app.model.reading is not None and app.model.reading.voltage_v is not None
                          and app.model.relay is True, what="a reading with the relay on, on the attached screen")
        # the screen shows a reading the service logged, the same one: same time, same values
        logged = {r["ts"]: r for r in svc.readings()}
        await pilot_until(pilot, lambda: app.model.reading is not None and
                          app.model.reading.as_record()["ts"] in {r["ts"] for r in svc.readings()},
                          what="the screen's reading among the service's logged readings")
        shown = app.model.reading.as_record()
        logged = {r["ts"]: r for r in svc.readings()}
        assert reading_keys(shown) == reading_keys(logged[shown["ts"]])
        await pilot_until(pilot, lambda: f"{app.model.reading.voltage_v:.1f}" in panel_value(app, "voltage"),
                          what="the voltage panel showing the reading")
        await pilot_until(pilot, lambda: "● online" in text_of(app.query_one(StatusBar)), what="online in the header")
        assert f"attached to {sock}" in text_of(app.query_one(StatusBar))
        # the other viewer's log holds exactly the service's readings since it attached
        await until(lambda: len(other.records("reading")) >= 2, what="readings in the second viewer's log",
                    show=other.output)
        logged = {r["ts"]: r for r in svc.readings()}
        for r in other.records("reading"):
            if r["ts"] in logged:
                assert reading_keys(r) == reading_keys(logged[r["ts"]])
        assert any(r["ts"] in logged for r in other.records("reading"))
        # the screen's history: frames from before it attached are in its frame log
        assert any(line.kind == "in" for line in app.model.log)

        await pilot.press("r")
        await pilot_until(pilot, lambda: isinstance(app.screen, ConfirmRelay), what="the confirmation dialog")
        await pilot.press("y")
        await until(lambda: any(e.get("source") == "attach" and e.get("result") == "confirmed"
                                for e in svc.events("command")), what="the service confirming the viewer's command",
                    show=svc.output)
        await pilot_until(pilot, lambda: app.model.relay is False, what="the relay off on the attached screen")
        await pilot_until(pilot, lambda: text_of(app.query_one(RelayPanel)).startswith("OFF"), what="OFF on the panel")
        await until(lambda: any(r["relay"] is False for r in other.records("reading")),
                    what="the relay off in the second viewer's log", show=other.output)
        assert any(e.get("source") == "attach" and e.get("result") == "confirmed"
                   for e in other.records("event") if e.get("event") == "command")
    assert svc.proc.poll() is None


async def test_a_read_only_viewer_cannot_switch(run: Callable[..., Tuimeter], attached: Callable[..., AttachedSession],
                                                sock: Path) -> None:
    svc = service(run, sock)
    session = attached(read_only=True)
    await session.start()
    await until(lambda: session.status().online, what="the attached view online")
    assert session.status().read_only
    with pytest.raises(CommandRefused, match="read-only"):
        await session.set_relay(False)
    # whatever a viewer's own code does, the service refuses a read-only viewer's command
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(sock))
    raw.sendall(b'{"type":"hello","protocol":1,"client":"attach","read_only":true}\n'
                b'{"type":"command","id":7,"command":"relay","on":false}\n')
    lines = raw.makefile("rb")
    result = await until(lambda: next((ln for ln in iter(lines.readline, b"") if b'"result"' in ln and b'"id":7' in ln),
                                      None), what="the service's answer")
    raw.close()
    assert b'"refused"' in result and b"read-only" in result
    assert not svc.events("command") and session.reading().relay is True


async def test_a_read_only_service_refuses_a_viewers_toggle_with_its_reason(
        run: Callable[..., Tuimeter], attached: Callable[..., AttachedSession], sock: Path) -> None:
    service(run, sock, "--read-only")
    session = attached()
    await session.start()
    await until(lambda: session.status().online, what="the attached view online")
    assert session.status().read_only  # the header says READ-ONLY
    with pytest.raises(CommandRefused, match="read-only"):
        await session.set_relay(False)


async def test_killing_a_viewer_leaves_the_service_untouched(run: Callable[..., Tuimeter],
                                                            viewers: Callable[..., Viewer], sock: Path) -> None:
    svc = service(run, sock)
    v = viewers(sock)
    await until(lambda: v.records("reading"), what="the viewer's first reading", show=v.output)
    v.proc.kill()
    v.proc.wait()
    await until(lambda: "viewer 1 (attach" in svc.output() and "left" in svc.output(),
                what="the service noting the viewer left", show=svc.output)
    before = len(svc.readings())
    await until(lambda: len(svc.readings()) >= before + 3, what="the service logging on", show=svc.output)
    assert svc.proc.poll() is None


async def test_a_stuck_viewer_is_dropped_and_the_services_log_has_no_gap(
        run: Callable[..., Tuimeter], attached: Callable[..., AttachedSession], sock: Path) -> None:
    svc = service(run, sock, "--viewer-backlog", "16")
    good = attached()
    await good.start()
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(str(sock))  # ... and never reads
    try:
        await until(lambda: good.status().online, what="the good viewer online")
        while "dropped: it fell" not in svc.output():  # queries make the meter report everything: traffic
            await good.query()
            assert svc.proc.poll() is None
            assert len(svc.events("command")) < 500, f"the stuck viewer was never dropped:\n{svc.output()}"
        seen = good.reading().ts
        await until(lambda: good.reading().ts != seen and good.status().online,
                    what="the other viewer still getting readings")
    finally:
        stuck.close()
    assert svc.proc.poll() is None
    stamps = [datetime.fromisoformat(r["ts"]) for r in svc.readings()]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert len(stamps) > 5 and max(gaps) < 15, f"the service's log has a gap: {max(gaps)} s"


async def test_viewers_survive_the_service_restarting(run: Callable[..., Tuimeter], viewers: Callable[..., Viewer],
                                                     attached: Callable[..., AttachedSession], sock: Path) -> None:
    first = service(run, sock, name="first")
    v = viewers(sock)
    session = attached(retry_max=0.5)
    app = TuimeterApp(session)
    await session.start()

    def header() -> str:
        return text_of(app.query_one(StatusBar))

    async with app.run_test(size=(160, 48)) as pilot:
        await pilot_until(pilot, lambda: "● online" in header() and session.reading().relay is True,
                          what="attached, online, relay on")
        assert first.stop() == 0
        await pilot_until(pilot, lambda: "● reconnecting" in header(), what="the header saying the service went",
                          show=header)
        assert any("the service stopped; re-attaching" in ln.text for ln in app.model.log)
        assert not sock.exists()  # removed on exit
        assert session.reading().relay is None and app.model.relay is None  # unknown, never the old value
        with pytest.raises(CommandRefused, match="not attached"):
            await session.set_relay(False)
        await until(lambda: "re-attaching" in v.output(), what="the headless viewer saying so", show=v.output)
        second = service(run, sock, name="second")
        await pilot_until(pilot, lambda: session.reattaches == 1 and "● online" in header(),
                          what="re-attached, online in the header", show=header)
        await pilot_until(pilot, lambda: app.model.relay is True, what="the relay known again")
    await until(lambda: "re-attached" in v.output(), what="the headless viewer back", show=v.output)
    await until(lambda: any(r["ts"] in {x["ts"] for x in second.readings()} for r in v.records("reading")),
                what="the viewer logging the second service's readings", show=v.output)


def drop_privileges_and_attach(sock: Path) -> list[str]:
    """A python that loads tuimeter as root, then runs `tuimeter attach` as nobody (root's own open
    ignores file permissions, and nobody cannot read root's Python)."""
    code = ("import os, sys, asyncio, tuimeter.cli, tuimeter.attach.cli, tuimeter.attach.client, tuimeter.headless, "
            "tuimeter.sinks, tuimeter.records, importlib.readers, importlib.resources, encodings.idna\n"
            "os.setgid(65534); os.setuid(65534)\n"
            f"sys.exit(tuimeter.cli.main(['attach', {str(sock)!r}, '--headless']))\n")
    return [sys.executable, "-c", code]


async def test_permission_denied_on_the_socket_is_one_clear_line(run: Callable[..., Tuimeter]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="tuimeter-test-"))  # outside pytest's folders, which are 0700
    sock = folder / "meter.sock"
    try:
        await _permission_denied(run, sock)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _permission_denied(run: Callable[..., Tuimeter], sock: Path) -> None:
    service(run, sock)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o660
    if os.geteuid() == 0:
        os.chmod(sock.parent, 0o755)  # nobody may reach the socket, not open it
        cmd = drop_privileges_and_attach(sock)
    else:
        os.chmod(sock, 0)
        cmd = [*TUIMETER, "attach", str(sock), "--headless"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"permission denied on {sock}" in lines[0] and "usermod -aG" in lines[0], done.stderr


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """Runtime folders of this test's own: services other tests run are not found."""
    env = dict(os.environ)
    env.pop("RUNTIME_DIRECTORY", None)
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "xdg")
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "xdg").mkdir(exist_ok=True)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return env


def attach_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TUIMETER, "attach", *args, "--headless"], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT)


def test_attach_with_no_service_says_how_to_start_one(tmp_path: Path) -> None:
    done = attach_cli(isolated_env(tmp_path))
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "no tuimeter service is running" in done.stderr
    assert "tuimeter PORT --headless" in done.stderr
    missing = attach_cli(isolated_env(tmp_path), str(tmp_path / "none.sock"))
    assert missing.returncode == 3 and "no tuimeter service at" in missing.stderr


def test_attach_finds_the_one_service_or_lists_several(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    procs = []
    try:
        for n in (1, 2):
            out = tmp_path / f"s{n}.out"
            procs.append((subprocess.Popen([*TUIMETER, "--demo", "--headless"], env=env, stdout=out.open("w"),
                                           stderr=subprocess.STDOUT), out))
            proc, _ = procs[-1]
            from tests.waiting import until_sync

            until_sync(lambda out=out: "viewers attach with" in out.read_text(), what="the service serving",
                       show=out.read_text)
            if n == 1:  # the one running: found without naming it
                one = subprocess.Popen([*TUIMETER, "attach", "--headless"], env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
                assert one.stdout is not None
                line = one.stdout.readline()
                one.terminate()
                one.wait(TIMEOUT)
                assert "attached to" in line and "demo.sock" in line, line
        several = attach_cli(env)
        assert several.returncode == 2
        assert "2 services are running; pick one" in several.stderr
        assert several.stderr.count("tuimeter attach ") == 2  # a demo beside a demo serves demo-PID.sock
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(TIMEOUT)


def test_a_stale_socket_is_replaced_and_a_live_one_is_not_taken(run: Callable[..., Tuimeter], sock: Path) -> None:
    sock.parent.mkdir(parents=True)
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(sock))  # what a killed service leaves behind
    crashed.close()
    first = service(run, sock)
    second = run("--control", str(sock), name="second")
    assert second.proc.wait(TIMEOUT) == 2
    assert "another tuimeter service serves" in second.output() and "--control" in second.output()
    assert first.proc.poll() is None


def test_a_busy_port_names_the_service_that_holds_it(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    out = tmp_path / "service.out"
    proc = subprocess.Popen([*TUIMETER, "--demo", "--headless"], env=env, stdout=out.open("w"),
                            stderr=subprocess.STDOUT)
    try:
        from tests.waiting import until_sync

        until_sync(lambda: "viewers attach with" in out.read_text(), what="the service serving", show=out.read_text)
        port = out.read_text().split("demo on a simulated meter at ", 1)[1].split()[0]
        done = subprocess.run([*TUIMETER, port, "--headless"], capture_output=True, text=True, env=env,
                              timeout=TIMEOUT)
        assert done.returncode == 3
        assert f"a tuimeter service (pid {proc.pid}) has it open" in done.stderr
        assert "tuimeter attach " in done.stderr and done.stderr.count("\n") == 1, done.stderr
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)


async def test_an_attach_error_is_raised_for_a_socket_that_is_not_a_service(tmp_path: Path) -> None:
    path = tmp_path / "x.sock"
    with pytest.raises(AttachError, match="no tuimeter service at"):
        await AttachedSession(path).start()


async def test_a_viewer_writes_a_setting_through_the_services_command_path(
        run: Callable[..., Tuimeter], attached: Callable[..., AttachedSession], sock: Path) -> None:
    svc = service(run, sock)
    session = attached()
    await session.start()
    await until(lambda: session.status().online and any(s.value is not None and s.name == "over_voltage_threshold"
                                                         for s in session.settings()),
                what="the attached view online, with the meter's over-voltage trip")
    with pytest.raises(CommandRefused, match="250"):  # checked here as on the service: nothing sent
        session.check_setting("over_voltage_threshold", "400")
    assert "confirmed" in await session.write_setting("over_voltage_threshold", "265")
    await until(lambda: next(s.value for s in session.settings() if s.name == "over_voltage_threshold") == 265,
                what="265 V confirmed in the view's settings")
    (change,) = svc.events("setting_change")
    assert change["source"] == "attach" and change["result"] == "confirmed" and change["new"] == 265
    # a weakening change needs the second confirmation the screen asks for, on the service's path too
    with pytest.raises(CommandRefused, match="30 mA"):
        await session.write_setting("leakage_threshold", "100", allow_weakening=False)
