"""The command line as typed, validated options: what cli.py parses becomes one of these, or one
clear OptionsError line; runner.py reads nothing else."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from enum import Enum


class OptionsError(ValueError):
    """A combination of options that cannot work; the message says which and what to do."""


class FrontEnd(Enum):
    SCREEN = "screen"  # the live Textual screen
    HEADLESS = "headless"  # status lines, records
    SET = "set"  # --set: commands in order, each confirmed, exit
    SETTINGS = "settings"  # --settings: every writable setting, exit
    QUERY = "query"  # --query: every dp, exit
    DISCOVER = "discover"  # --discover: every dp with a guess, export


@dataclass(frozen=True, slots=True)
class DebugOptions:
    debug: bool = False
    debug_log: str | None = None


@dataclass(frozen=True, slots=True)
class DiscoverOptions:
    for_seconds: float | None = None
    export: str | None = None


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    mqtt: str | None = None
    mqtt_password_file: str | None = None
    mqtt_ca: str | None = None
    mqtt_prefix: str = "tuimeter"
    mqtt_discovery_prefix: str = "homeassistant"
    node_id: str | None = None
    metrics: tuple[str, int] | None = None
    mqtt_allow_weakening: bool = False  # settings changes over MQTT that weaken protection are refused unless set

    @property
    def any(self) -> bool:
        return bool(self.mqtt or self.metrics)


@dataclass(frozen=True, slots=True)
class ControlOptions:
    path: str | None = None  # --control PATH; None: the default place, named after the port
    enabled: bool = True  # --no-control: False
    backlog: int = 1024 * 1024  # bytes a viewer may fall behind before it is dropped


@dataclass(frozen=True, slots=True)
class RunOptions:
    """`tuimeter PORT …` / `tuimeter --demo …`."""

    port: str | None
    demo: bool
    front_end: FrontEnd
    log: str | None = None
    format: str = "jsonl"
    record: str | None = None
    every: float = 0.0
    flush_every: float = 0.0
    sets: tuple[tuple[str, str | None], ...] = ()  # --set NAME[=VALUE], in order
    allow_weakening: bool = False  # --i-understand-weaker-protection
    json: bool = False
    discover: DiscoverOptions = DiscoverOptions()
    read_only: bool = False
    baud: int = 9600
    wifi_state: int = 4
    heartbeat: float = 15.0
    timeout: float = 10.0
    theme: str | None = None
    profile: str | None = None
    bridges: BridgeOptions = BridgeOptions()
    demo_faults: object | None = None  # a sim.faults.FaultPlan
    demo_variant: str = "10byte"
    print_systemd_unit: bool = False
    debug: DebugOptions = DebugOptions()
    control: ControlOptions = ControlOptions()

    @property
    def serves_viewers(self) -> bool:
        """The live screen and the headless service serve viewers; one-shot commands do not."""
        return self.control.enabled and self.front_end in (FrontEnd.SCREEN, FrontEnd.HEADLESS)

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> RunOptions:
        _check_run(a)
        front = (FrontEnd.DISCOVER if a.discover else FrontEnd.SET if a.sets else FrontEnd.SETTINGS if a.settings
                 else FrontEnd.QUERY if a.query else FrontEnd.HEADLESS if a.headless else FrontEnd.SCREEN)
        return cls(
            port=a.port, demo=a.demo, front_end=front, log=a.log, format=a.format, record=a.record, every=a.every,
            flush_every=a.flush_every, sets=tuple(a.sets), allow_weakening=a.allow_weakening, json=a.json,
            discover=DiscoverOptions(a.for_seconds, a.export), read_only=a.read_only, baud=a.baud,
            wifi_state=a.wifi_state, heartbeat=a.heartbeat, timeout=a.timeout, theme=a.theme, profile=a.profile,
            bridges=BridgeOptions(a.mqtt, a.mqtt_password_file, a.mqtt_ca, a.mqtt_prefix, a.mqtt_discovery_prefix,
                                  a.node_id, a.metrics, a.mqtt_allow_weakening),
            demo_faults=a.demo_faults, demo_variant=a.demo_variant, print_systemd_unit=a.print_systemd_unit,
            debug=DebugOptions(a.debug, a.debug_log),
            control=ControlOptions(a.control, not a.no_control, a.viewer_backlog))


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """`tuimeter replay FILE …`."""

    file: str
    speed: float = 1.0
    headless: bool = False
    log: str | None = None
    format: str = "jsonl"
    profile: str | None = None
    theme: str | None = None
    discover: bool = False
    discover_options: DiscoverOptions = DiscoverOptions()
    debug: DebugOptions = DebugOptions()

    @property
    def front_end(self) -> FrontEnd:
        return FrontEnd.DISCOVER if self.discover else FrontEnd.HEADLESS if self.headless else FrontEnd.SCREEN

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> ReplayOptions:
        problem = discover_problem(a) or ("--log goes with --headless" if a.log and not a.headless else None)
        if problem:
            raise OptionsError(problem)
        return cls(file=a.file, speed=a.speed, headless=a.headless, log=a.log, format=a.format, profile=a.profile,
                   theme=a.theme, discover=a.discover, discover_options=DiscoverOptions(a.for_seconds, a.export),
                   debug=DebugOptions(a.debug, a.debug_log))


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """`tuimeter decode …`."""

    inputs: tuple[str, ...] = ()
    host: str | None = None
    mcu: str | None = None
    json: bool = False
    profile: str | None = None
    export: str | None = None

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> DecodeOptions:
        if a.export is not None:
            from tuimeter.analyzer.export import export_problem

            problem = export_problem(a.export, a.profile)
            if problem:
                raise OptionsError(problem)
        if not (a.inputs or a.host or a.mcu):
            raise OptionsError("give hex bytes, a capture file, - for stdin, or --host/--mcu FILE; "
                               "see 'tuimeter decode --help'")
        return cls(tuple(a.inputs), a.host, a.mcu, a.json, a.profile, a.export)


@dataclass(frozen=True, slots=True)
class SimulateOptions:
    """`tuimeter simulate …`."""

    link: str | None = None
    seed: int = 1
    period: float = 3.0
    speed: float = 1.0
    faults: object | None = None  # a sim.faults.FaultPlan
    variant: str = "10byte"

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> SimulateOptions:
        return cls(a.link, a.seed, a.period, a.speed, a.faults, a.variant)


def _check_run(a: argparse.Namespace) -> None:
    if a.port and a.demo:
        raise OptionsError("give either PORT or --demo, not both")
    if not a.port and not a.demo:
        raise OptionsError("give a PORT (e.g. /dev/ttyUSB0) or --demo")
    if not a.demo and (a.demo_faults is not None or a.demo_variant != "10byte"):
        raise OptionsError("--demo-faults and --demo-variant go with --demo")
    if a.json and not (a.query or a.settings):
        raise OptionsError("--json goes with --query or --settings")
    if sum(map(bool, (a.sets, a.query, a.settings))) > 1:
        raise OptionsError("--set, --settings and --query are separate commands; run one at a time")
    if a.allow_weakening and not a.sets:
        raise OptionsError("--i-understand-weaker-protection goes with --set")
    if a.control and a.no_control:
        raise OptionsError("give either --control PATH or --no-control, not both")
    if a.control and (a.sets or a.query or a.settings or a.discover):
        raise OptionsError("--control goes with the live screen or --headless, not --set, --settings, --query "
                           "or --discover")
    problem = discover_problem(a) or _bridge_problem(a)
    if problem:
        raise OptionsError(problem)


def _bridge_problem(a: argparse.Namespace) -> str | None:
    bridged = a.mqtt or a.metrics
    if bridged and (a.sets or a.settings or a.query or a.discover):
        return ("--mqtt and --metrics go with the live screen or --headless, not --set, --settings, --query or "
                "--discover")
    if not a.mqtt and (a.mqtt_password_file or a.mqtt_ca or a.mqtt_allow_weakening):
        return "--mqtt-password-file, --mqtt-ca and --mqtt-allow-weakening go with --mqtt"
    if a.print_systemd_unit and (a.demo or not a.port):
        return "--print-systemd-unit needs the PORT the service should open (e.g. /dev/serial/by-id/…)"
    if a.print_systemd_unit and (a.sets or a.settings or a.query or a.discover):
        return "--print-systemd-unit makes a monitoring service: leave out --set, --settings, --query and --discover"
    return None


def discover_problem(a: argparse.Namespace) -> str | None:
    if (a.for_seconds is not None or a.export is not None) and not a.discover:
        return "--for and --export go with --discover"
    if a.discover and (getattr(a, "sets", None) or getattr(a, "query", False) or getattr(a, "settings", False)
                       or a.headless or a.log):
        return "--discover runs on its own; leave out --set, --settings, --query, --headless and --log"
    if a.export is not None:
        from tuimeter.analyzer.export import export_problem

        return export_problem(a.export, a.profile)
    return None
