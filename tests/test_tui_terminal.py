"""The real `tuimeter --demo` in a real terminal (tmux): what a person sees and types."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

if shutil.which("tmux") is None:
    if os.environ.get("CI"):
        raise RuntimeError("tmux is missing; .ci/run installs it")
    pytest.skip("tmux is not installed (sudo apt-get install tmux)", allow_module_level=True)

TUIMETER = str(Path(sys.executable).with_name("tuimeter"))


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "demo")

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen:\n{self.screen()}")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(f"tuimeter-test-{os.getpid()}-{tmp_path.name}")  # a server of its own for each test
    cmd = f"cd {tmp_path} && {TUIMETER} --demo; echo EXIT=$?; sleep 30"
    t("new-session", "-d", "-s", "demo", "-x", "100", "-y", "30", cmd)
    try:
        yield t
    finally:
        subprocess.run(["tmux", "-L", t.socket, "kill-server"], capture_output=True)


def test_demo_in_a_real_terminal(tmux: Tmux) -> None:
    screen = tmux.wait_for("● online")
    screen = tmux.wait_for(" kWh")
    for panel in ("Voltage", "Current", "Power", "Energy", "Leakage", "Relay", "Faults", "Device", "Frame log"):
        assert panel in screen
    assert "FSE-F723C558128885" in screen and "dp report" in screen
    tmux("send-keys", "-t", "demo", "?")
    tmux.wait_for("toggle the relay")
    tmux("send-keys", "-t", "demo", "Escape")
    time.sleep(0.5)  # a key right after ESC would read as Alt+key
    assert "toggle the relay" not in tmux.screen()
    tmux("send-keys", "-t", "demo", "r")
    tmux.wait_for("This switches mains power")
    tmux("send-keys", "-t", "demo", "Tab")  # from Cancel to Switch OFF
    time.sleep(0.2)
    tmux("send-keys", "-t", "demo", "Enter")  # presses the focused button
    tmux.wait_for("relay off (confirmed by the meter)")
    screen = tmux.wait_for("OFF")
    tmux("send-keys", "-t", "demo", "q")
    tmux.wait_for("EXIT=0")


def test_app_exits_when_the_terminal_goes_away(tmux: Tmux) -> None:
    tmux.wait_for("● online")
    pid = tmux("list-panes", "-t", "demo", "-F", "#{pane_pid}").strip()
    demo = subprocess.run(["pgrep", "-P", pid, "-f", "tuimeter"], capture_output=True, text=True).stdout.split()
    assert demo, "the demo process was not found"
    tmux("kill-server")  # like an SSH connection dropping: the terminal hangs up
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{demo[0]}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{demo[0]}").exists(), "tuimeter kept running after its terminal went away"
