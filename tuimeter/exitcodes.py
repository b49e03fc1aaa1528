"""The exit codes of every tuimeter command, in one place (docs/cli.md lists them)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    RUNTIME = 1  # a failure while running, e.g. the log became unwritable
    USAGE = 2  # bad arguments or settings, or a command refused before anything was sent
    PORT = 3  # the port cannot be opened
    METER = 4  # the meter did not answer, or did not confirm a command
    INTERRUPTED = 130  # Ctrl-C
