"""`tuimeter web`: the attached live screen, served to browsers with textual-serve (web_server.py).

Each browser tab runs its own `tuimeter attach SOCKET --via web` in a subprocess (textual-serve's model),
so a tab is exactly the terminal view, and closing it ends only that view. The view can switch mains
power, so access is guarded: on a loopback address with no token no login is needed; on any other
address the access token is, or every tab is read-only (docs/attach.md). This module is the command
line; aiohttp and textual-serve are imported only once the arguments and the password are good.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tuimeter import logs
from tuimeter.exitcodes import ExitCode

log = logging.getLogger(__name__)

PROG = "tuimeter web"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
PASSWORD_ENV = "TUIMETER_WEB_PASSWORD"

CommandFor = Callable[[str | None, bool], list[str]]  # (socket, read_only) → a tab's command line


class WebError(Exception):
    """Cannot start; the message names the problem and the fix."""


def attach_command(socket: str | None, read_only: bool) -> list[str]:
    """What each browser tab runs: `tuimeter attach` (it finds the one running service without SOCKET)."""
    return [sys.executable, "-m", "tuimeter", "attach", *([socket] if socket else []), "--via", "web",
            *(["--read-only"] if read_only else [])]


@dataclass(frozen=True)
class Access:
    """Who may use the view: `token` None means no login; `read_only` is passed on to every tab."""

    token: str | None
    loopback: bool
    read_only: bool

    @property
    def label(self) -> str:
        """How the start line describes it."""
        if self.token is not None:
            return "token required" + (", read-only" if self.read_only else "")
        if self.loopback:
            return "loopback only" + (", read-only" if self.read_only else "")
        return (f"read-only: no password for a non-loopback address; set ${PASSWORD_ENV} or --password-file "
                "to allow control")


def is_loopback(host: str) -> bool:
    """Only literal loopback addresses and `localhost`: any other name may resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_bind(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[::1]:PORT` or `:PORT` (host 127.0.0.1) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000 or :8080")
    return host.strip("[]") or DEFAULT_HOST, int(port)


def read_password(file: str | None) -> str | None:
    """The access token: the first line of FILE, stripped, or else $TUIMETER_WEB_PASSWORD; never argv."""
    if file is None:
        return os.environ.get(PASSWORD_ENV, "").strip() or None
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise WebError(f"cannot read the password file {file}: {exc.strerror or exc}; "
                       "give --password-file a readable file") from None
    except UnicodeDecodeError:
        raise WebError(f"the password file {file} is not text; put the access token on its first line") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise WebError(f"the password file {file} is empty; put the access token on its first line")
    return token


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(ExitCode.USAGE, f"{PROG}: {message}; see '{PROG} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    # no abbreviations: `--password SECRET` must not be taken as `--password-file`
    p = _Parser(prog=PROG, allow_abbrev=False,
                description="Serve the live screen of a running tuimeter service to browsers: each tab runs "
                            "its own 'tuimeter attach'. On loopback no login is needed; on any other address "
                            f"the access token (--password-file or ${PASSWORD_ENV}) is, or every view is "
                            "read-only. Open http://HOST:PORT/?token=… once; a cookie keeps it.")
    p.add_argument("socket", nargs="?", metavar="SOCKET",
                   help="the service's socket (default: the one running service)")
    p.add_argument("--bind", type=parse_bind, default=(DEFAULT_HOST, DEFAULT_PORT), metavar="HOST:PORT",
                   help=f"address to serve on (default {DEFAULT_HOST}:{DEFAULT_PORT}; ':8080' keeps the host)")
    p.add_argument("--password-file", metavar="FILE",
                   help=f"the access token, on the first line of FILE (or set ${PASSWORD_ENV}); "
                        "a password on the command line would be visible in the process list")
    p.add_argument("--read-only", action="store_true", help="every view is read-only: nothing is sent")
    return p


def _argv_password(argv: Sequence[str]) -> bool:
    return any(a.split("=", 1)[0] in ("--password", "--token") for a in argv)


def _fail(message: object) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return ExitCode.USAGE


def main_web(argv: list[str], command_for: CommandFor = attach_command) -> int:
    """`tuimeter web …`; `command_for` builds each tab's command (tests serve the demo through it)."""
    if _argv_password(argv):
        return _fail(f"no password on the command line (the process list shows it); "
                     f"use --password-file FILE or ${PASSWORD_ENV}")
    args = build_parser().parse_args(argv)
    host, port = args.bind
    try:
        token = read_password(args.password_file)
    except WebError as exc:
        return _fail(exc)
    os.environ.pop(PASSWORD_ENV, None)  # the tabs' processes have no use for it
    logs.setup(False, None, screen=False)
    loopback = is_loopback(host)
    access = Access(token, loopback, args.read_only or (token is None and not loopback))
    what = args.socket or "the running service"

    def started() -> None:
        print(f"{PROG}: serving the live screen of {what} on http://{url_host(host)}:{port}/ ({access.label})",
              flush=True)

    from tuimeter.attach.web_server import WebServer

    server = WebServer(command_for(args.socket, access.read_only), host, port, access)
    try:
        asyncio.run(server.run(started))
    except WebError as exc:
        return _fail(exc)
    log.debug("stopped")
    return ExitCode.OK
