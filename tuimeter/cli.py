"""Command line. Kept light: heavy modules are imported only on the path that needs them,
so `--help` and `--version` stay fast and the headless path never imports Textual."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tuimeter import __version__
from tuimeter.exitcodes import ExitCode

DESCRIPTION = """\
Run, watch and control a TuyaMCU energy meter (EARU EAMPDW-TY63 / WDYK 2P63A and relatives)
from the UART its Wi-Fi module used. PORT is a device (/dev/ttyUSB0, /dev/serial/by-id/...)
or a pyserial URL (socket://host:port, spy:///dev/ttyUSB0?file=trace.txt)."""

EPILOG = """\
other commands:
  tuimeter decode [HEX|FILE|-]... [--host FILE] [--mcu FILE] [--json] [--profile NAME|FILE]
                 [--export PATH]
                        decode captured frames (and export what they show as a profile)
  tuimeter replay FILE [--speed X] [--headless] [--log FILE]
                        play a --record recording into the live screen (or headless)
  tuimeter attach [SOCKET] [--read-only] [--headless]
                        the live screen (or status lines) of a running tuimeter service
  tuimeter web [SOCKET] [--bind HOST:PORT] [--password-file FILE]
                        the attached live screen, served to browsers
  tuimeter simulate [--link PATH] [--seed N] [--period S] [--speed X]
                        serve a simulated meter on a pseudo-terminal

exit codes: 0 ok, 1 runtime failure (e.g. the log became unwritable), 2 bad arguments,
            3 port cannot be opened, 4 the meter did not answer or confirm"""


class _Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs: object) -> None:
        # no abbreviations: `--rec` must not silently mean `--record` (the systemd unit maps full names)
        super().__init__(allow_abbrev=False, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(ExitCode.USAGE, f"tuimeter: {message}; see 'tuimeter --help'\n")


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return v


def _non_negative(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return v


def _set_item(text: str) -> tuple[str, str | None]:
    """`NAME=VALUE` or a bare `NAME` (a one-shot action); `relay=on|off` switches the relay."""
    key, eq, value = text.partition("=")
    name = key.strip()
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE, e.g. over_voltage_threshold=265")
    if name == "relay" and value.strip().lower() not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected relay=on or relay=off")
    return name, value.strip() if eq else None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tuimeter", description=DESCRIPTION, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("port", nargs="?", metavar="PORT", help="serial device or pyserial URL")
    p.add_argument("--demo", action="store_true", help="run on the built-in simulated meter (no hardware)")
    p.add_argument("--headless", action="store_true", help="no live screen: status lines and records only")
    p.add_argument("--log", metavar="FILE", help="append machine records to FILE ('-' = stdout)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="record format (default jsonl)")
    p.add_argument("--record", metavar="FILE",
                   help="keep every byte each way, with times, appended to FILE (tuimeter decode reads it)")
    p.add_argument("--every", type=_non_negative, default=0.0, metavar="S",
                   help="at most one reading per S seconds (default: every reading)")
    p.add_argument("--flush-every", type=_non_negative, default=0.0, metavar="S",
                   help="write records at most S seconds late, in fewer, larger writes (kind to SD cards); "
                        "default 0: each burst as soon as it is handled")
    p.add_argument("--set", type=_set_item, dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="write a setting (as --settings names it, or a dp number; a unit suffix is accepted: "
                        "over_voltage_threshold=265, 104=30mA, clear_energy, alarm_set_2.over_voltage=trip@250) "
                        "or switch the relay (relay=on|off); repeatable, applied in order, each confirmed by "
                        "the meter before the next; then exit")
    p.add_argument("--i-understand-weaker-protection", action="store_true", dest="allow_weakening",
                   help="with --set: allow a change that weakens the meter's protection (e.g. a leakage trip "
                        "above 30 mA); without it such a change is refused with the risk")
    p.add_argument("--settings", action="store_true",
                   help="list every writable setting with its confirmed value, unit and range, exit")
    p.add_argument("--query", action="store_true", help="print every datapoint the meter reports, exit")
    p.add_argument("--json", action="store_true", help="with --query or --settings: JSON output")
    _add_discover(p)
    p.add_argument("--read-only", action="store_true", help="never send a relay or datapoint command")
    p.add_argument("--baud", type=int, default=9600, help="serial speed (default 9600; some MCUs use 115200)")
    p.add_argument("--wifi-state", type=int, choices=range(0, 7), default=4, metavar="0-6",
                   help="network state reported to the MCU at the end of the ramp (default 4: cloud connected)")
    p.add_argument("--heartbeat", type=_positive, default=15.0, metavar="S",
                   help="heartbeat period once online (default 15 s)")
    p.add_argument("--timeout", type=_positive, default=10.0, metavar="S",
                   help="for --set, --settings and --query: how long to wait for the meter (default 10 s)")
    p.add_argument("--theme", default=None, metavar="NAME|FILE",
                   help="colour theme: tuimeter-dark (default), tuimeter-light, tuimeter-contrast, or a theme file")
    p.add_argument("--profile", default=None, metavar="NAME|FILE",
                   help="device profile (default: picked from the meter's product id or datapoints)")
    _add_bridges(p)
    _add_control(p)
    p.add_argument("--print-systemd-unit", action="store_true",
                   help="print a systemd unit that runs this command line headless, and exit (docs/raspberry-pi.md)")
    p.add_argument("--list-ports", action="store_true", help="list serial ports and exit")
    _add_sim_faults(p, "--demo-faults", "--demo-variant")
    _add_debug(p)
    p.add_argument("--version", action="version", version=f"tuimeter {__version__}")
    return p


def _add_debug(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true",
                   help="log what every layer does: to stderr, or with the live screen to "
                        "~/.local/state/tuimeter/debug.log (also: TUIMETER_DEBUG=1)")
    p.add_argument("--debug-log", metavar="FILE", help="with --debug: log to FILE (also: TUIMETER_DEBUG=FILE)")


def _metrics_address(text: str) -> tuple[str, int]:
    from tuimeter.bridge import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_bridges(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("home automation (docs/home-automation.md)")
    g.add_argument("--mqtt", metavar="URL",
                   help="publish readings and the relay to an MQTT broker with Home Assistant discovery: "
                        "mqtt://[user[:password]@]host[:port] or mqtts://… (TLS)")
    g.add_argument("--mqtt-password-file", metavar="FILE",
                   help="read the MQTT password from FILE (or set $TUIMETER_MQTT_PASSWORD): "
                        "a password in the URL is visible in the process list")
    g.add_argument("--mqtt-ca", metavar="FILE", help="with mqtts://: the CA certificate that signed the broker's")
    g.add_argument("--mqtt-allow-weakening", action="store_true",
                   help="accept settings changes over MQTT that weaken the meter's protection (e.g. a leakage "
                        "trip above 30 mA); without it they are refused")
    g.add_argument("--mqtt-prefix", default="tuimeter", metavar="TOPIC", help="topic prefix (default tuimeter)")
    g.add_argument("--mqtt-discovery-prefix", default="homeassistant", metavar="TOPIC",
                   help="Home Assistant discovery prefix (default homeassistant)")
    g.add_argument("--node-id", metavar="NAME",
                   help="this meter's name in MQTT topics, Home Assistant ids and the Prometheus 'meter' label "
                        "(default: host name and port, e.g. pi4-ttyUSB0)")
    g.add_argument("--metrics", type=_metrics_address, metavar="[HOST:]PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (HOST defaults to 127.0.0.1)")


def _backlog_kb(text: str) -> int:
    try:
        kb = int(text)
    except ValueError:
        kb = 0
    if kb < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of KB of at least 1, got {text!r}")
    return kb * 1024


def _add_control(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("viewers: tuimeter attach and tuimeter web (docs/attach.md)")
    g.add_argument("--control", metavar="PATH",
                   help="serve this session to viewers on the Unix socket PATH (default: "
                        "$RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR/tuimeter or /tmp/tuimeter-UID, named after the port)")
    g.add_argument("--no-control", action="store_true", help="serve no viewers")
    g.add_argument("--viewer-backlog", type=_backlog_kb, default=1024 * 1024, metavar="KB",
                   help="drop a viewer that falls this far behind (stuck or too slow; default 1024 KB)")


def _add_discover(p: argparse.ArgumentParser) -> None:
    p.add_argument("--discover", action="store_true",
                   help="no live screen: list every datapoint the meter reports, with a guess at its meaning")
    p.add_argument("--for", type=_positive, dest="for_seconds", default=None, metavar="S",
                   help="with --discover: stop after S seconds (default: at Ctrl-C)")
    p.add_argument("--export", metavar="PATH",
                   help="with --discover: write PATH.toml (a profile) and PATH-autoexec.bat (OpenBeken)")


def build_decode_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tuimeter decode",
                description="Decode TuyaMCU captures: hex dumps (any spacing, 0x, commas), binary files, or '-'.")
    p.add_argument("inputs", nargs="*", metavar="HEX|FILE|-", help="hex bytes, a capture file, or - for stdin")
    p.add_argument("--host", metavar="FILE", help="capture of the host (module TX) side")
    p.add_argument("--mcu", metavar="FILE", help="capture of the MCU (module RX) side")
    p.add_argument("--json", action="store_true", help="JSON for machines")
    p.add_argument("--profile", metavar="NAME|FILE", help="device profile (default: chosen from the capture)")
    p.add_argument("--export", metavar="PATH",
                   help="also write what the MCU reported as PATH.toml (a profile) and PATH-autoexec.bat (OpenBeken)")
    return p


def build_replay_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tuimeter replay",
                description="Play a recording made with --record into the live screen, or headless with "
                            "--headless. Nothing is sent anywhere: there is no meter, only what was recorded.")
    p.add_argument("file", metavar="FILE", help="a recording made with --record FILE")
    p.add_argument("--speed", type=_positive, default=1.0, metavar="X",
                   help="playback speed: 1 = as recorded (default), 10 = ten times faster")
    p.add_argument("--headless", action="store_true", help="status lines (and --log records) instead of the screen")
    p.add_argument("--log", metavar="FILE", help="with --headless: append machine records to FILE ('-' = stdout)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="record format (default jsonl)")
    p.add_argument("--profile", default=None, metavar="NAME|FILE",
                   help="device profile (default: picked from the recorded product id or datapoints)")
    p.add_argument("--theme", default=None, metavar="NAME|FILE", help="colour theme for the screen")
    _add_discover(p)
    _add_debug(p)
    return p


def build_sim_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tuimeter simulate",
                description="Serve a simulated meter on a pseudo-terminal and print its device path.")
    p.add_argument("--link", metavar="PATH", help="also make PATH a symlink to the device")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1): same seed, same household")
    p.add_argument("--period", type=_positive, default=3.0, metavar="S",
                   help="seconds between dp 6 reports (default 3; the real meter: ~15)")
    p.add_argument("--speed", type=_positive, default=1.0, metavar="X",
                   help="simulated seconds per real second for the household (default 1)")
    _add_sim_faults(p, "--faults", "--variant")
    return p


def _fault_plan(text: str) -> object:
    from tuimeter.sim.faults import FaultPlan

    try:
        return FaultPlan.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_sim_faults(p: argparse.ArgumentParser, faults: str, variant: str) -> None:
    p.add_argument(faults, type=_fault_plan, default=None, metavar="SPEC",
                   help="inject faults: a preset (noisy, flaky) or e.g. 'noise=0.2,bad_checksum=0.05,"
                        "truncate=0.05,stray=0.1,bursts=0.05,absurd_length=0.02,dribble,heartbeat_answers=0.7,"
                        "silence_every=600,silence_for=20,reboot_every=300,requests_every=30,"
                        "unplug_every=120,unplug_for=2,ignore_relay' (see docs/reliability.md)")
    p.add_argument(variant, choices=("10byte", "8byte"), default="10byte",
                   help="10byte: this meter; 8byte: relatives with an 8-byte phase_a and leakage in dp 15")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list[:1] == ["decode"]:
            from tuimeter.analyzer.cli import run_decode
            from tuimeter.options import DecodeOptions, OptionsError

            try:
                return run_decode(DecodeOptions.from_args(build_decode_parser().parse_args(args_list[1:])))
            except OptionsError as exc:
                return _usage(str(exc), "tuimeter decode", "")
        if args_list[:1] == ["replay"]:
            from tuimeter.options import OptionsError, ReplayOptions
            from tuimeter.runner import run_replay

            try:
                return run_replay(ReplayOptions.from_args(build_replay_parser().parse_args(args_list[1:])))
            except OptionsError as exc:
                return _usage(str(exc), see="tuimeter replay --help")
        if args_list[:1] == ["attach"]:
            from tuimeter.attach.cli import main_attach

            return main_attach(args_list[1:])
        if args_list[:1] == ["web"]:
            from tuimeter.attach.web import main_web

            return main_web(args_list[1:])
        if args_list[:1] == ["simulate"]:
            from tuimeter.options import SimulateOptions
            from tuimeter.sim.cli import run_simulate

            return run_simulate(SimulateOptions.from_args(build_sim_parser().parse_args(args_list[1:])))
        args = build_parser().parse_args(args_list)
        return _dispatch(args, args_list)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # e.g. `tuimeter decode … | head`: the reader has gone, so stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK


def _dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    if args.list_ports:
        from tuimeter.host.transport import list_ports

        ports = list_ports()
        for device, desc, hwid in ports:
            print(f"{device}\t{desc}\t{hwid}")
        if not ports:
            print("no serial ports found; is the USB-UART adapter plugged in?", file=sys.stderr)
        return ExitCode.OK
    from tuimeter.options import OptionsError, RunOptions

    try:
        options = RunOptions.from_args(args)
    except OptionsError as exc:
        return _usage(str(exc))
    if options.print_systemd_unit:
        from tuimeter.service import print_systemd_unit

        assert options.port is not None  # checked by RunOptions
        return print_systemd_unit(options.port, argv)
    from tuimeter.runner import run

    return run(options)


def _usage(message: str, prog: str = "tuimeter", see: str = "tuimeter --help") -> int:
    """One line naming the problem (and where to read more), exit 2."""
    print(f"{prog}: {message}" + (f"; see '{see}'" if see else ""), file=sys.stderr)
    return ExitCode.USAGE
