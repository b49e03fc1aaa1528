"""`tuimeter attach [SOCKET]`: the live screen (or status lines) of a running service."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tuimeter.attach.paths import Found, find_services, runtime_dirs
from tuimeter.core.events import CommandSource
from tuimeter.exitcodes import ExitCode
from tuimeter.terminal import has_screen

SOURCES = {"attach": CommandSource.ATTACH, "web": CommandSource.WEB}


def build_attach_parser() -> argparse.ArgumentParser:
    from tuimeter.cli import _Parser

    p = _Parser(prog="tuimeter attach",
                description="Show the live screen of a running tuimeter (a service, or another screen) without "
                            "taking its port: the same panels, keys and frame log, fed by the service; commands "
                            "go through the service and are confirmed by the meter.")
    p.add_argument("socket", nargs="?", metavar="SOCKET",
                   help="the service's control socket (default: the one running service; see docs/attach.md)")
    p.add_argument("--read-only", action="store_true", help="a view that sends nothing, whatever the permissions")
    p.add_argument("--headless", action="store_true", help="status lines (and --log records) instead of the screen")
    p.add_argument("--log", metavar="FILE", help="with --headless: append machine records to FILE ('-' = stdout)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="record format (default jsonl)")
    p.add_argument("--theme", default=None, metavar="NAME|FILE", help="colour theme for the screen")
    p.add_argument("--via", choices=tuple(SOURCES), default="attach", help=argparse.SUPPRESS)  # tuimeter web's tabs
    return p


def main_attach(argv: list[str]) -> int:
    args = build_attach_parser().parse_args(argv)
    if args.log and not args.headless:
        return _fail("--log goes with --headless; see 'tuimeter attach --help'", ExitCode.USAGE)
    if args.socket:
        path = Path(args.socket)
    else:
        chosen = choose_service(find_services())
        if isinstance(chosen, int):
            return chosen
        path = chosen
    try:
        return asyncio.run(_attach(path, args))
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def choose_service(found: list[Found]) -> Path | int:
    """The one running service, or an exit code after saying why there is none to pick."""
    running = [f for f in found if f.running]
    if len(running) == 1:
        return running[0].path
    if running:
        lines = "\n".join(f"  tuimeter attach {f.path}    # {f.hello.get('port') if f.hello else ''}"
                          for f in running)
        print(f"tuimeter attach: {len(running)} services are running; pick one:\n{lines}", file=sys.stderr)
        return ExitCode.USAGE
    if found:  # only sockets this user may not open
        return _fail(found[0].problem, ExitCode.PORT)
    looked = ", ".join(str(d) for d in runtime_dirs())
    return _fail(f"no tuimeter service is running (looked in {looked}); start one with "
                 "'tuimeter PORT --headless' (or 'sudo systemctl start tuimeter'), or give its SOCKET",
                 ExitCode.PORT)


def _fail(message: str, code: ExitCode) -> int:
    print(f"tuimeter attach: {message}", file=sys.stderr)
    return code


async def _attach(path: Path, args: argparse.Namespace) -> int:
    from tuimeter.attach.client import AttachedSession, AttachError

    headless = args.headless
    if not headless and not has_screen():
        return _fail("the live screen needs a terminal; use --headless for status lines", ExitCode.USAGE)
    session = AttachedSession(path, read_only=args.read_only, source=SOURCES[args.via], history=not headless)
    # the front end listens before the session starts: the snapshot's events reach it
    if headless:
        from tuimeter.headless import HeadlessMonitor, HeadlessOptions, run_monitor
        from tuimeter.sinks import SinkError

        try:
            monitor = HeadlessMonitor(session, HeadlessOptions(args.log, args.format))
        except SinkError as exc:
            return _fail(str(exc), ExitCode.USAGE)
    else:
        from tuimeter.tui.app import TuimeterApp

        app = TuimeterApp(session, theme_choice=args.theme)
    try:
        await session.start()
    except AttachError as exc:
        return _fail(str(exc), ExitCode.PORT)
    if headless:
        return await run_monitor(session, monitor)
    try:
        await app.run_async()
    finally:
        await session.close()
    return app.return_code or ExitCode.OK
