"""The real `tuimeter --demo` in a real terminal (tmux): what a person sees and types."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.waiting import until_sync

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

    def wait_for(self, text: str) -> str:
        """The screen, once `text` is on it."""
        def showing() -> str:
            screen = self.screen()
            return screen if text in screen else ""

        return until_sync(showing, what=f"{text!r} on the screen", show=self.screen, interval=0.2)

    def wait_gone(self, text: str) -> None:
        until_sync(lambda: text not in self.screen(), what=f"{text!r} gone from the screen", show=self.screen,
                   interval=0.2)

    def focused(self, label: str) -> bool:
        """Whether the button labelled `label` has the focus: Textual draws its label in reverse video."""
        styled = self("capture-pane", "-p", "-e", "-t", "demo")
        found = re.search(r"((?:\x1b\[[0-9;]*m)+) " + re.escape(label) + " ", styled)
        return found is not None and any(reverse(sgr) for sgr in re.findall(r"\x1b\[([0-9;]*)m", found.group(1)))


def reverse(sgr: str) -> bool:
    """Whether an SGR sequence's parameters (e.g. "1;7", "38;5;224") switch reverse video on."""
    params = [int(p or 0) for p in sgr.split(";")]
    i = 0
    while i < len(params):
        if params[i] in (38, 48, 58):  # a colour: 5;n or 2;r;g;b follow, not attributes
            i += 3 if params[i + 1:i + 2] == [5] else 5
            continue
        if params[i] == 7:
            return True
        i += 1
    return False


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
    tmux.wait_gone("toggle the relay")  # ESC read on its own (a key sent right after it would read as Alt+key)
    tmux("send-keys", "-t", "demo", "r")
    tmux.wait_for("This switches mains power")
    # a stray Enter never switches mains: Switch OFF is never the focused one, Cancel is once focus is drawn
    until_sync(lambda: not tmux.focused("Switch OFF") and tmux.focused("Cancel"), what="the focus on Cancel",
               show=tmux.screen)
    tmux("send-keys", "-t", "demo", "Tab")  # from Cancel to Switch OFF
    until_sync(lambda: tmux.focused("Switch OFF"), what="the focus on Switch OFF", show=tmux.screen)
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
    until_sync(lambda: not Path(f"/proc/{demo[0]}").exists(), what="tuimeter to exit after its terminal went away")
