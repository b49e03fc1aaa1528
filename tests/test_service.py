"""Running as a service on a Pi: the generated systemd unit, journald-friendly lines, the header."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.tui_support import OfflineLink
from tests.waiting import TIMEOUT, pilot_until, until_sync
from tuimeter.core.events import ServiceChanged
from tuimeter.tui.app import TuimeterApp
from tuimeter.tui.widgets import StatusBar

TUIMETER = [sys.executable, "-m", "tuimeter"]


def test_systemd_unit_runs_this_command_line_headless(tmp_path: Path) -> None:
    proc = subprocess.run([*TUIMETER, "/dev/serial/by-id/usb-FTDI-if00", "--log", "meter.jsonl",
                           "--mqtt", "mqtt://meter:s3cret@broker.lan", "--metrics", "9105",
                           "--print-systemd-unit"], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert proc.returncode == 0, proc.stderr
    unit = proc.stdout
    assert "[Service]" in unit and "Restart=on-failure" in unit and "WantedBy=multi-user.target" in unit
    (exec_line,) = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")]
    argv = shlex.split(exec_line.removeprefix("ExecStart="))
    assert argv[0].endswith("/tuimeter") or argv[1:3] == ["-m", "tuimeter"]
    assert "/dev/serial/by-id/usb-FTDI-if00" in argv and "--headless" in argv
    assert argv[argv.index("--log") + 1] == str(tmp_path / "meter.jsonl")  # systemd starts services in /
    assert argv[argv.index("--mqtt") + 1] == "mqtt://meter@broker.lan"  # no password in the process list
    assert "s3cret" not in unit and "--mqtt-password-file" in unit
    assert "--print-systemd-unit" not in argv


def test_systemd_unit_needs_a_port() -> None:
    proc = subprocess.run([*TUIMETER, "--demo", "--print-systemd-unit"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "needs the PORT" in proc.stderr


def test_journald_lines_carry_a_priority_and_no_time_of_their_own(tmp_path: Path) -> None:
    journal = tmp_path / "journal"  # stands in for journald's stream: JOURNAL_STREAM names its device:inode
    with journal.open("w") as fh:
        st = os.fstat(fh.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.Popen([*TUIMETER, "--demo", "--headless"], stdout=fh, stderr=subprocess.DEVNULL, env=env)
        try:  # online, and a status line after it
            until_sync(lambda: " kWh" in journal.read_text().partition("link online")[2],
                       what="link online and a reading in the journal", show=journal.read_text)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(TIMEOUT)
        other = subprocess.Popen([*TUIMETER, "--demo", "--headless"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, env=env)
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(other.stdout or ()), daemon=True)
        reader.start()
        try:
            until_sync(lambda: any(" kWh" in ln for ln in seen), what="a reading on the pipe", show=lambda: seen)
        finally:
            other.send_signal(signal.SIGTERM)
            other.wait(TIMEOUT)
            reader.join(TIMEOUT)
    plain = "".join(seen)
    # a child whose stdout is not journald's stream (a pipe, a file) keeps its own times
    assert plain and all(ln[2] == ":" for ln in plain.splitlines())
    lines = journal.read_text().splitlines()
    assert lines and all(ln[:3] in ("<3>", "<4>", "<6>") for ln in lines)
    assert any(ln.startswith("<6>link online") for ln in lines)
    assert not any(ln[3:5].isdigit() and ln[5] == ":" for ln in lines)  # journald adds the time


async def test_header_shows_the_bridges() -> None:
    link = OfflineLink()
    app = TuimeterApp(link, clock=link.clock)
    link.run(5)
    async with app.run_test(size=(160, 48)) as pilot:
        def header() -> str:
            return str(app.query_one(StatusBar).render())

        link.bus.publish([ServiceChanged(link.wall(), "mqtt", True, "connected")])
        await pilot_until(pilot, lambda: "mqtt ✓" in header(), what="mqtt ✓ in the header", show=header)
        link.bus.publish([ServiceChanged(link.wall(), "mqtt", False, "lost the broker", "warning")])
        await pilot_until(pilot, lambda: "mqtt ✗" in header(), what="mqtt ✗ in the header", show=header)
        await pilot_until(pilot, lambda: any("lost the broker" in n.message for n in app._notifications),
                          what="'lost the broker' notified")


def test_unit_is_safe_to_run_forever(tmp_path: Path) -> None:
    from tuimeter.service import systemd_unit

    unit = systemd_unit(["/dev/ttyUSB0", "--mqtt", "mqtt://bob%40home:pw@[fd00::5]:1883"], "/dev/ttyUSB0", "pi")
    (exec_line,) = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")]
    assert "mqtt://bob%%40home@[fd00::5]:1883" in exec_line  # % escaped for systemd, host and port kept
    assert "RestartPreventExitStatus=2" in unit  # a setting to fix is not retried every 5 s
    for oneshot in (["--set", "relay=on"], ["--query"], ["--discover"]):
        proc = subprocess.run([*TUIMETER, "/dev/ttyUSB0", *oneshot, "--print-systemd-unit"], capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 2 and "monitoring service" in proc.stderr  # never a unit that switches at boot
    proc = subprocess.run([*TUIMETER, "/dev/ttyUSB0", "--rec", "x", "--print-systemd-unit"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2  # no abbreviations: --rec is not silently --record


def test_unit_sets_up_the_control_sockets_folder_and_group(tmp_path: Path) -> None:
    from tuimeter.service import systemd_unit

    unit = systemd_unit(["/dev/ttyUSB0", "--control", "here.sock"], "/dev/ttyUSB0", "pi", "meterwatch")
    lines = unit.splitlines()
    assert "User=pi" in lines and "Group=meterwatch" in lines
    assert "RuntimeDirectory=tuimeter" in lines and "RuntimeDirectoryMode=0750" in lines
    assert "sudo usermod -aG meterwatch" in unit  # how another user gets to attach
    (exec_line,) = [ln for ln in lines if ln.startswith("ExecStart=")]
    assert str(Path.cwd() / "here.sock") in exec_line  # systemd starts services in /


def test_under_systemd_the_socket_goes_in_the_runtime_directory(tmp_path: Path) -> None:
    """What RuntimeDirectory=tuimeter does: $RUNTIME_DIRECTORY names the folder; the socket is made there,
    mode 0660, and removed at stop."""
    runtime = tmp_path / "run-tuimeter"
    runtime.mkdir(mode=0o750)
    out = tmp_path / "out.txt"
    proc = subprocess.Popen([*TUIMETER, "--demo", "--headless"], env={**os.environ, "RUNTIME_DIRECTORY": str(runtime)},
                            stdout=out.open("w"), stderr=subprocess.STDOUT)
    try:
        until_sync(lambda: f"tuimeter attach {runtime / 'demo.sock'}" in out.read_text(), what="the socket announced",
                   show=out.read_text)
        assert (runtime / "demo.sock").stat().st_mode & 0o777 == 0o660
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    assert not (runtime / "demo.sock").exists()
