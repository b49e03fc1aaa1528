"""`tuimeter --demo --headless …` as a user runs it, in a process of its own, with its output and log."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.waiting import TIMEOUT, until_sync
from tuimeter.records import read_jsonl

__all__ = ["TUIMETER", "Tuimeter"]

TUIMETER = [sys.executable, "-m", "tuimeter"]


class Tuimeter:
    """`tuimeter --demo --headless --mqtt …` as a user runs it, with its output collected."""

    def __init__(self, tmp_path: Path, *args: str, name: str = "meter") -> None:
        self.log = tmp_path / f"{name}.jsonl"
        self.out = tmp_path / f"{name}.out.txt"
        self.proc = subprocess.Popen([*TUIMETER, "--demo", "--headless", "--log", str(self.log), *args],
                                     stdout=self.out.open("w"), stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.out.read_text()

    def wait_output(self, text: str) -> None:
        def seen() -> bool:
            if text in self.output():
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"tuimeter exited ({self.proc.returncode}) before {text!r}:\n{self.output()}")
            return False

        until_sync(seen, what=f"{text!r} in the output", show=self.output)

    def readings(self) -> list[dict[str, Any]]:
        return [r for r in read_jsonl(self.log).records if r["type"] == "reading"] if self.log.exists() else []

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in read_jsonl(self.log).records if r["type"] == "event" and r["event"] == name]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(TIMEOUT)
