"""`--debug` and TUIMETER_DEBUG as a user runs them: every layer's log on stderr or in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.waiting import until_sync

TUIMETER = [sys.executable, "-m", "tuimeter"]


def run_until(args: list[str], done: Callable[[str], bool], env: dict[str, str] | None = None,
              what: str = "the condition") -> subprocess.CompletedProcess[str]:
    """Run a headless tuimeter until `done(stderr so far)` holds, then stop it with SIGINT."""
    proc = subprocess.Popen([*TUIMETER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    seen = bytearray()

    def holds() -> bool:
        seen.extend(proc.stderr.read() or b"")  # type: ignore[union-attr]
        if proc.poll() is not None:
            raise AssertionError(f"tuimeter ended early: {seen.decode(errors='replace')}")
        return done(seen.decode(errors="replace"))

    try:
        until_sync(holds, what=what, show=lambda: seen.decode(errors="replace"))
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", (bytes(seen) + (err or b"")).decode())


def test_debug_sends_every_layer_to_stderr() -> None:
    def online(err: str) -> bool:
        return "link online" in err and "tuimeter.host.session" in err

    proc = run_until(["--demo", "--headless", "--debug"], online, what="the session's log of going online")
    assert proc.returncode == 0, proc.stderr
    for layer in ("tuimeter.core.host_state", "tuimeter.core.host", "tuimeter.host.session"):
        assert layer in proc.stderr, layer
    assert "Traceback" not in proc.stderr


def test_tuimeter_debug_names_a_file(tmp_path: Path) -> None:
    log = tmp_path / "tuimeter-debug.log"

    def online(err: str) -> bool:
        return log.exists() and "link online" in log.read_text()

    proc = run_until(["--demo", "--headless"], online, env={"TUIMETER_DEBUG": str(log)},
                     what="'link online' in the debug file")
    assert proc.returncode == 0, proc.stderr
    assert f"debug log: {log}" in proc.stderr
    assert "tuimeter.core.host_state" in log.read_text()


def test_an_unwritable_debug_log_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "debug.log"  # under a file: unwritable even for root
    proc = subprocess.run([*TUIMETER, "--demo", "--headless", "--debug-log", str(target)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0] and "--debug-log" in lines[0], proc.stderr
