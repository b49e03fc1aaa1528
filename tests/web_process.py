"""`tuimeter web SOCKET …` in a process of its own: each browser tab runs `tuimeter attach SOCKET`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.waiting import TIMEOUT, until_sync
from tuimeter.attach.web import PASSWORD_ENV

__all__ = ["WebProcess"]


class WebProcess:
    """The server, its output collected, and the first line it prints once it serves."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.out = tmp_path / "web.out.txt"
        inherited = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}  # only a test's own password
        full_env = {**inherited, "XDG_STATE_HOME": str(tmp_path / "state"), **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "tuimeter", "web", *args], env=full_env,
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

