"""Where tuimeter's `logging` goes: `--debug` (or TUIMETER_DEBUG=1) sends every layer's log to stderr,
or to a file with the live screen (which draws on the terminal) or with `--debug-log FILE`
(TUIMETER_DEBUG=FILE). Without it, warnings and errors (internal errors with their tracebacks) still
go to stderr headless, or to a file with the live screen, and `error_destination()` says where."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ENV = "TUIMETER_DEBUG"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_root = logging.getLogger("tuimeter")
_destination = "no log (run with --debug to keep tracebacks)"


class LogError(Exception):
    """The debug log cannot be written; the message names the file and the fix."""


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tuimeter"


def from_environment(debug: bool, debug_log: str | None) -> tuple[bool, str | None]:
    """--debug/--debug-log, or else TUIMETER_DEBUG: 1/true/yes → on; anything else non-empty → that file."""
    value = os.environ.get(ENV, "").strip()
    if debug or debug_log or not value or value.lower() in ("0", "false", "no"):
        return debug or debug_log is not None, debug_log
    return True, None if value.lower() in ("1", "true", "yes") else value


def setup(debug: bool, debug_log: str | None, *, screen: bool) -> str | None:
    """Install the handler; returns a line to show the user (where the log is) or None."""
    global _destination
    path: Path | None = Path(debug_log) if debug_log else None
    if path is None and screen:  # the screen owns the terminal
        path = state_dir() / "debug.log"
    level = logging.DEBUG if debug else logging.WARNING
    handler: logging.Handler
    if path is None:
        handler = logging.StreamHandler(sys.stderr)
        _destination = "stderr"
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # without --debug the file is made only when there is something to put in it
            handler = logging.FileHandler(path, encoding="utf-8", delay=not debug)
        except OSError as exc:
            raise LogError(f"cannot write the log {path}: {exc.strerror}; give --debug-log a writable file") from None
        _destination = str(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    _root.handlers[:] = [handler]
    _root.setLevel(level)
    _root.propagate = False
    return f"debug log: {_destination}" if debug else None


def error_destination() -> str:
    """Where an internal error's traceback went, for the message that reports it."""
    return _destination
