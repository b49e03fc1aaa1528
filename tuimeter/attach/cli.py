"""Placeholder for `tuimeter attach` (being built on main): take main's file when merging."""

from __future__ import annotations

import sys

from tuimeter.exitcodes import ExitCode


def main_attach(argv: list[str]) -> int:
    print("tuimeter attach: not in this build yet", file=sys.stderr)
    return ExitCode.USAGE
