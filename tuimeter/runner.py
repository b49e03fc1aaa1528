"""Wires the parsed command line to a session and a front end (headless or one-shot)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tuimeter.cli import EXIT_METER, EXIT_PORT, EXIT_USAGE
from tuimeter.core.host import HostConfig
from tuimeter.core.profile import ProfileError, load_profile
from tuimeter.host.session import HostSession, PortError, SessionOptions

if TYPE_CHECKING:
    from tuimeter.host.replay import ReplaySession

DEMO_SEED, DEMO_PERIOD, DEMO_SPEED = 7, 2.0, 30.0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


def run_replay(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_replay(args))
    except KeyboardInterrupt:
        return 130


async def _replay(args: argparse.Namespace) -> int:
    from tuimeter.cli import discover_problem
    from tuimeter.headless import HeadlessMonitor, HeadlessOptions, run_monitor
    from tuimeter.host.replay import ReplaySession
    from tuimeter.recorder import RecordingError, load_recording
    from tuimeter.sinks import SinkError

    problem = discover_problem(args) or ("--log goes with --headless" if args.log and not args.headless else None)
    if problem:
        print(f"tuimeter: {problem}; see 'tuimeter replay --help'", file=sys.stderr)
        return EXIT_USAGE
    try:
        profile = load_profile(args.profile) if args.profile else load_profile()
        recording = load_recording(args.file)
    except (ProfileError, RecordingError) as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    session = ReplaySession(recording, args.file, profile, speed=args.speed, auto_profile=args.profile is None)
    if args.discover:
        from tuimeter.analyzer.discover_cli import DiscoverMonitor, run_discover

        discover = DiscoverMonitor(session, session.machine)
        await session.start()
        return await run_discover(session, discover, seconds=args.for_seconds, export=args.export,
                                  done=session.finished)
    if not args.headless:
        return await _live(args, session)
    try:
        monitor = HeadlessMonitor(session, HeadlessOptions(args.log, args.format, 0.0, 0.0))
    except SinkError as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    await session.start()
    return await run_monitor(session, monitor, session.finished)


@contextlib.asynccontextmanager
async def _demo_port(args: argparse.Namespace) -> AsyncIterator[str]:
    """The built-in simulated meter on a pseudo-terminal in this process."""
    from tuimeter.sim.mcu import SimulatedMeter
    from tuimeter.sim.pty_server import PtyMeterServer

    loop = asyncio.get_running_loop()
    meter = SimulatedMeter(seed=DEMO_SEED, period=DEMO_PERIOD, speed=DEMO_SPEED, start=loop.time(),
                           faults=args.demo_faults, variant=args.demo_variant)
    server = PtyMeterServer(meter, seed=DEMO_SEED)
    try:
        yield await server.start()
    finally:
        await server.close()


async def _run(args: argparse.Namespace) -> int:
    try:
        profile = load_profile(args.profile) if args.profile else load_profile()
    except ProfileError as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    screen = not (args.headless or args.set_relay is not None or args.query or args.discover)
    config = HostConfig(wifi_state=args.wifi_state, heartbeat_interval=args.heartbeat, read_only=args.read_only,
                        log_frames=screen,  # only the screen has a frame log to fill
                        dp_events=screen or args.discover)  # per-dp events: the screen's discovery view, --discover
    async with contextlib.AsyncExitStack() as stack:
        port = await stack.enter_async_context(_demo_port(args)) if args.demo else args.port
        if args.demo:
            print(f"tuimeter: demo on a simulated meter at {port}", file=sys.stderr)
        session = HostSession(SessionOptions(port=port, baud=args.baud), profile, config,
                              auto_profile=args.profile is None)
        if args.record:
            from tuimeter.recorder import Recorder
            from tuimeter.sinks import SinkError

            try:
                recorder = Recorder(args.record, port, args.baud)
            except SinkError as exc:
                print(f"tuimeter: {str(exc).replace('log', 'recording', 1)}", file=sys.stderr)
                return EXIT_USAGE
            stack.callback(recorder.close)
            session.add_tap(recorder.tap)
        problem = await _start_bridges(args, session, stack)
        if problem is not None:
            return problem
        return await _front_end(args, session)
    return EXIT_USAGE  # unreachable; keeps type checkers content


async def _start_bridges(args: argparse.Namespace, session: HostSession,
                         stack: contextlib.AsyncExitStack) -> int | None:
    """--metrics and --mqtt, before the port opens; an exit code when a setting cannot work."""
    if not (args.mqtt or args.metrics):
        return None
    from tuimeter.bridge import default_node_id

    node_id = args.node_id or ("demo" if args.demo else default_node_id(args.port))
    if args.mqtt:
        from tuimeter.bridge.mqtt import BrokerRefused, MqttBridge, MqttConfigError, MqttSettings

        try:
            settings = MqttSettings.parse(args.mqtt, node_id=node_id, prefix=args.mqtt_prefix,
                                          discovery_prefix=args.mqtt_discovery_prefix,
                                          password_file=args.mqtt_password_file, ca_file=args.mqtt_ca)
            bridge = MqttBridge(session, settings, read_only=args.read_only)
            await bridge.check_login()
        except (MqttConfigError, BrokerRefused) as exc:
            print(f"tuimeter: {exc}", file=sys.stderr)
            return EXIT_USAGE
        bridge.start()
        stack.push_async_callback(bridge.close)
    if args.metrics:  # after the MQTT login check: its "up" line must reach the front end
        from tuimeter.bridge.metrics import MeterCollector, MetricsError, MetricsServer
        from tuimeter.core.events import ServiceChanged

        server = MetricsServer(MeterCollector(session.machine, session.bus, node_id), *args.metrics)
        try:
            server.start()
        except MetricsError as exc:
            print(f"tuimeter: {exc}", file=sys.stderr)
            return EXIT_USAGE
        stack.callback(server.close)
        up = [ServiceChanged(session.machine.wall_time(), "metrics", True, f"serving {server.url}")]
        asyncio.get_running_loop().call_soon(session.bus.publish, up)  # once the front end listens
    return None


async def _live(args: argparse.Namespace, session: HostSession | ReplaySession) -> int:
    """The Textual screen, in this event loop, beside the session."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):  # Textual draws on stderr
        print("tuimeter: the live screen needs a terminal; use --headless for logs and pipes", file=sys.stderr)
        return EXIT_USAGE
    from tuimeter.tui.app import TuimeterApp

    app = TuimeterApp(session, theme_choice=args.theme)
    try:
        await session.start()
    except PortError as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return EXIT_PORT
    try:
        await app.run_async()
    finally:
        await session.close()
    return app.return_code or 0


async def _discover(args: argparse.Namespace, session: HostSession) -> int:
    from tuimeter.analyzer.discover_cli import DiscoverMonitor, run_discover

    monitor = DiscoverMonitor(session, session.machine)
    try:
        await session.start()
    except PortError as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return EXIT_PORT
    return await run_discover(session, monitor, seconds=args.for_seconds, export=args.export)


async def _front_end(args: argparse.Namespace, session: HostSession) -> int:
    from tuimeter import oneshot
    from tuimeter.headless import HeadlessMonitor, HeadlessOptions, run_monitor
    from tuimeter.sinks import SinkError

    if args.discover:
        return await _discover(args, session)
    if not (args.headless or args.set_relay is not None or args.query):
        return await _live(args, session)
    monitor = None
    if args.set_relay is None and not args.query:
        try:
            monitor = HeadlessMonitor(session, HeadlessOptions(args.log, args.format, args.every, args.flush_every))
        except SinkError as exc:
            print(f"tuimeter: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        await session.start()
    except PortError as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return EXIT_PORT
    if monitor is not None:
        return await run_monitor(session, monitor)
    try:
        if args.set_relay is not None:
            return await oneshot.set_relay(session, args.set_relay, args.timeout)
        return await oneshot.query(session, args.json, args.timeout)
    except oneshot.MeterSilent as exc:
        print(f"tuimeter: {exc}", file=sys.stderr)
        return EXIT_METER
    finally:
        await session.close()
