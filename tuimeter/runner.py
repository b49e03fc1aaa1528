"""Wires validated options (options.py) to a session and a front end (screen, headless, one-shot)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuimeter import logs
from tuimeter.core.events import Notice
from tuimeter.core.host import HostConfig
from tuimeter.core.profile import Profile, ProfileError, load_profile, shipped_profiles
from tuimeter.exitcodes import ExitCode
from tuimeter.host.api import MeterSession
from tuimeter.host.session import HostSession, PortError, SessionOptions
from tuimeter.options import DebugOptions, FrontEnd, ReplayOptions, RunOptions
from tuimeter.terminal import has_screen

if TYPE_CHECKING:
    from tuimeter.attach.server import ControlServer

log = logging.getLogger(__name__)

DEMO_SEED, DEMO_PERIOD, DEMO_SPEED = 7, 2.0, 30.0


def run(options: RunOptions) -> int:
    try:
        return asyncio.run(_run(options))
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def run_replay(options: ReplayOptions) -> int:
    try:
        return asyncio.run(_replay(options))
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def _fail(message: object, code: ExitCode = ExitCode.USAGE) -> int:
    print(f"tuimeter: {message}", file=sys.stderr)
    return code


def _setup_logging(debug: DebugOptions, front_end: FrontEnd) -> int | None:
    """The log's destination (logs.py); an exit code when it cannot be written."""
    on, path = logs.from_environment(debug.debug, debug.debug_log)
    try:
        line = logs.setup(on, path, screen=front_end is FrontEnd.SCREEN)
    except logs.LogError as exc:
        return _fail(exc)
    if line:
        print(f"tuimeter: {line}", file=sys.stderr)
    return None


def _profiles(name: str | None) -> tuple[Profile, list[Profile]]:
    """The profile to start with, and the candidates to pick from when none was given."""
    if name:
        return load_profile(name), []
    return load_profile(), [load_profile(n) for n in shipped_profiles()]


async def _replay(options: ReplayOptions) -> int:
    from tuimeter.headless import HeadlessMonitor, HeadlessOptions, run_monitor
    from tuimeter.host.replay import ReplaySession
    from tuimeter.recorder import RecordingError, load_recording
    from tuimeter.sinks import SinkError

    if (code := _setup_logging(options.debug, options.front_end)) is not None:
        return code
    try:
        profile, candidates = _profiles(options.profile)
        recording = load_recording(options.file)
    except (ProfileError, RecordingError) as exc:
        return _fail(exc)
    session = ReplaySession(recording, options.file, profile, speed=options.speed, candidates=candidates)
    if options.front_end is FrontEnd.DISCOVER:
        from tuimeter.analyzer.discover_cli import DiscoverMonitor, run_discover

        discover = DiscoverMonitor(session)
        await session.start()
        return await run_discover(session, discover, seconds=options.discover_options.for_seconds,
                                  export=options.discover_options.export, done=session.finished)
    if options.front_end is FrontEnd.SCREEN:
        return await _live(session, options.theme)
    try:
        monitor = HeadlessMonitor(session, HeadlessOptions(options.log, options.format, 0.0, 0.0))
    except SinkError as exc:
        return _fail(exc)
    await session.start()
    return await run_monitor(session, monitor, session.finished)


@contextlib.asynccontextmanager
async def _demo_port(options: RunOptions) -> AsyncIterator[str]:
    """The built-in simulated meter on a pseudo-terminal in this process."""
    from tuimeter.sim.faults import FaultPlan
    from tuimeter.sim.mcu import SimulatedMeter
    from tuimeter.sim.pty_server import PtyMeterServer

    loop = asyncio.get_running_loop()
    faults = options.demo_faults if isinstance(options.demo_faults, FaultPlan) else None
    meter = SimulatedMeter(seed=DEMO_SEED, period=DEMO_PERIOD, speed=DEMO_SPEED, start=loop.time(),
                           faults=faults, variant=options.demo_variant)
    server = PtyMeterServer(meter, seed=DEMO_SEED)
    try:
        yield await server.start()
    finally:
        await server.close()


async def _run(options: RunOptions) -> int:
    if (code := _setup_logging(options.debug, options.front_end)) is not None:
        return code
    try:
        profile, candidates = _profiles(options.profile)
    except ProfileError as exc:
        return _fail(exc)
    screen = options.front_end is FrontEnd.SCREEN
    viewers = options.serves_viewers  # an attached screen has a frame log and a discovery view too
    config = HostConfig(wifi_state=options.wifi_state, heartbeat_interval=options.heartbeat,
                        read_only=options.read_only,
                        log_frames=screen or viewers,  # only screens have a frame log to fill
                        dp_events=screen or viewers or options.front_end is FrontEnd.DISCOVER)  # discovery views
    async with contextlib.AsyncExitStack() as stack:
        port = await stack.enter_async_context(_demo_port(options)) if options.demo else options.port
        assert port is not None  # RunOptions: a PORT or --demo
        if options.demo:
            print(f"tuimeter: demo on a simulated meter at {port}", file=sys.stderr)
        log.info("%s on %s (%s)", options.front_end.value, port, options)
        session = HostSession(SessionOptions(port=port, baud=options.baud), profile, config, candidates)
        if options.record:
            from tuimeter.recorder import Recorder
            from tuimeter.sinks import SinkError

            try:
                recorder = Recorder(options.record, port, options.baud)
            except SinkError as exc:
                return _fail(str(exc).replace("log", "recording", 1))
            stack.callback(recorder.close)
            session.add_tap(recorder.tap)
            session.bus.add_listener(recorder.note)
        problem = await _start_bridges(options, session, stack)
        if problem is not None:
            return problem
        control = _control(options, session, stack)
        return await _front_end(options, session, control)
    return ExitCode.USAGE  # unreachable; keeps type checkers content


async def _start_bridges(options: RunOptions, session: HostSession, stack: contextlib.AsyncExitStack) -> int | None:
    """--metrics and --mqtt, before the port opens; an exit code when a setting cannot work."""
    b = options.bridges
    if not b.any:
        return None
    from tuimeter.bridge import default_node_id

    node_id = b.node_id or ("demo" if options.demo else default_node_id(options.port or ""))
    if b.mqtt:
        from tuimeter.bridge.mqtt import BrokerRefused, MqttBridge, MqttConfigError, MqttSettings

        try:
            settings = MqttSettings.parse(b.mqtt, node_id=node_id, prefix=b.mqtt_prefix,
                                          discovery_prefix=b.mqtt_discovery_prefix,
                                          password_file=b.mqtt_password_file, ca_file=b.mqtt_ca)
            bridge = MqttBridge(session, settings, read_only=options.read_only,
                                allow_weakening=b.mqtt_allow_weakening)
            await bridge.check_login()
        except (MqttConfigError, BrokerRefused) as exc:
            return _fail(exc)
        bridge.start()
        stack.push_async_callback(bridge.close)
    if b.metrics:  # after the MQTT login check: its "up" line must reach the front end
        from tuimeter.bridge.metrics import MeterCollector, MetricsError, MetricsServer
        from tuimeter.core.events import ServiceChanged

        server = MetricsServer(MeterCollector(session, node_id), *b.metrics)
        try:
            server.start()
        except MetricsError as exc:
            return _fail(exc)
        stack.callback(server.close)
        up = [ServiceChanged(session.wall_time(), "metrics", True, f"serving {server.url}")]
        asyncio.get_running_loop().call_soon(session.bus.publish, up)  # once the front end listens
    return None


def _control(options: RunOptions, session: HostSession, stack: contextlib.AsyncExitStack) -> Control | None:
    """The control socket for viewers, listening to the session from before it starts (so the history a
    viewer gets is complete); it starts serving once the port is open."""
    if not options.serves_viewers:
        return None
    from tuimeter.attach.paths import own_dir, socket_name
    from tuimeter.attach.server import ControlServer

    given = options.control.path
    path = Path(given) if given is not None else own_dir() / socket_name(None if options.demo else options.port)
    server = ControlServer(session, path, max_backlog=options.control.backlog)
    stack.push_async_callback(server.close)
    return Control(server, given is not None)


@dataclass(frozen=True, slots=True)
class Control:
    server: ControlServer
    explicit: bool  # --control PATH: failing to serve it is fatal; the default place falls back


async def _serve(control: Control | None, session: MeterSession) -> int | None:
    """Serve viewers; an exit code when --control PATH cannot be served. At the default place, a
    socket another running tuimeter serves makes this one serve beside it (NAME-PID.sock)."""
    if control is None:
        return None
    from tuimeter.attach.server import ControlBusy, ControlError

    server = control.server
    try:
        try:
            await server.start()
        except ControlBusy:
            if control.explicit:
                raise
            server.path = server.path.with_name(f"{server.path.stem}-{os.getpid()}.sock")
            await server.start()
    except ControlError as exc:
        if control.explicit:
            return _fail(exc)
        session.bus.publish([Notice(session.wall_time(), f"{exc}; serving no viewers", "warning")])
        return None
    session.bus.publish([Notice(session.wall_time(), f"viewers attach with: tuimeter attach {server.path}")])
    return None


def _port_problem(exc: PortError, port: str | None) -> str:
    """The port's error, with the way to the service that holds it when a tuimeter service does."""
    if port is None or "busy" not in str(exc):
        return str(exc)
    from tuimeter.attach.paths import holder_of

    holder = holder_of(port)
    if holder is None:
        return str(exc)
    pid = holder.hello.get("pid", "?") if holder.hello else "?"
    return (f"cannot open {port}: a tuimeter service (pid {pid}) has it open; see its live screen with "
            f"'tuimeter attach {holder.path}' (or stop it: 'sudo systemctl stop tuimeter')")


async def _live(session: MeterSession, theme: str | None, control: Control | None = None,
                port: str | None = None) -> int:
    """The Textual screen, in this event loop, beside the session."""
    if not has_screen():
        return _fail("the live screen needs a terminal; use --headless for logs and pipes")
    from tuimeter.tui.app import TuimeterApp

    app = TuimeterApp(session, theme_choice=theme)
    try:
        await session.start()
    except PortError as exc:
        return _fail(_port_problem(exc, port), ExitCode.PORT)
    if (code := await _serve(control, session)) is not None:
        await session.close()
        return code
    try:
        await app.run_async()
    finally:
        await session.close()
    return app.return_code or ExitCode.OK


async def _discover(options: RunOptions, session: HostSession) -> int:
    from tuimeter.analyzer.discover_cli import DiscoverMonitor, run_discover

    monitor = DiscoverMonitor(session)
    try:
        await session.start()
    except PortError as exc:
        return _fail(exc, ExitCode.PORT)
    return await run_discover(session, monitor, seconds=options.discover.for_seconds, export=options.discover.export)


async def _front_end(options: RunOptions, session: HostSession, control: Control | None) -> int:
    from tuimeter import oneshot
    from tuimeter.headless import HeadlessMonitor, HeadlessOptions, run_monitor
    from tuimeter.sinks import RecordSink, SinkError

    front = options.front_end
    if front is FrontEnd.DISCOVER:
        return await _discover(options, session)
    if front is FrontEnd.SCREEN:
        return await _live(session, options.theme, control, options.port)
    monitor = None
    records = None
    if front is FrontEnd.SET and options.log:  # every write attempt goes into the log too
        try:
            records = RecordSink(options.log, "jsonl")
        except SinkError as exc:
            return _fail(exc)
    if front is FrontEnd.HEADLESS:
        try:
            monitor = HeadlessMonitor(session, HeadlessOptions(options.log, options.format, options.every,
                                                               options.flush_every))
        except SinkError as exc:
            return _fail(exc)
    try:
        await session.start()
    except PortError as exc:
        return _fail(_port_problem(exc, options.port), ExitCode.PORT)
    if (code := await _serve(control, session)) is not None:
        await session.close()
        return code
    if monitor is not None:
        return await run_monitor(session, monitor)
    try:
        if front is FrontEnd.SET:
            return await oneshot.apply_sets(session, options.sets, options.allow_weakening, options.timeout,
                                            records)
        if front is FrontEnd.SETTINGS:
            return await oneshot.list_settings(session, options.json, options.timeout)
        return await oneshot.query(session, options.json, options.timeout)
    except oneshot.MeterSilent as exc:
        return _fail(exc, ExitCode.METER)
    finally:
        await session.close()
        if records is not None:
            records.close()
