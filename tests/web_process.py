"""`tuimeter web` in a process of its own, serving (for now) `tuimeter --demo` in each browser tab.

`python -m tests.web_process ARGS` is `tuimeter web ARGS` with one change: each tab runs the demo
instead of `tuimeter attach` (until the attach service is merged; then the tests serve a real service).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.waiting import TIMEOUT, until_sync
from tuimeter.attach.web import PASSWORD_ENV, main_web

__all__ = ["WebProcess", "demo_command"]


def demo_command(socket: str | None, read_only: bool) -> list[str]:
    """Stands in for attach_command: the demo, locked as `tuimeter attach --read-only` would be."""
    return [sys.executable, "-m", "tuimeter", "--demo", *(["--read-only"] if read_only else [])]


class WebProcess:
    """The server, its output collected, and the first line it prints once it serves."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.out = tmp_path / "web.out.txt"
        inherited = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}  # only a test's own password
        full_env = {**inherited, "XDG_STATE_HOME": str(tmp_path / "state"), **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.web_process", *args], env=full_env,
                                     stdout=self.out.open("w"), stderr=subprocess.STDOUT,
                                     cwd=Path(__file__).resolve().parents[1])

    def output(self) -> str:
        return self.out.read_text()

    def wait_serving(self) -> str:
        """The start line, once it is printed (the port is bound by then)."""
        def line() -> str:
            found = [ln for ln in self.output().splitlines() if "serving the live screen" in ln]
            if not found and self.proc.poll() is not None:
                raise AssertionError(f"tuimeter web exited ({self.proc.returncode}):\n{self.output()}")
            return found[0] if found else ""

        return until_sync(line, what="tuimeter web serving", show=self.output)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(TIMEOUT)


if __name__ == "__main__":
    sys.exit(main_web(sys.argv[1:], command_for=demo_command))
