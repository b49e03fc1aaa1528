"""`--print-systemd-unit`: the command line it is given, as a systemd service (docs/raspberry-pi.md)."""

from __future__ import annotations

import getpass
import grp
import os
import shlex
import sys
from pathlib import Path

# options whose value is a file: systemd starts services in /, so relative paths must become absolute
PATH_OPTIONS = ("--log", "--record", "--mqtt-password-file", "--mqtt-ca", "--profile", "--theme", "--control")


def _program() -> list[str]:
    script = Path(sys.executable).with_name("tuimeter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tuimeter"]


def _without_password(url: str) -> tuple[str, bool]:
    """The URL with only its password taken out (host, brackets and port untouched)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url, False
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}@{host}{slash}{path}", True


def _systemd_escape(text: str) -> str:
    """systemd expands % specifiers and $ variables in ExecStart; keep them literal."""
    return text.replace("%", "%%").replace("$", "$$")


def service_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """The arguments the service runs with, and notes for the reader of the unit."""
    out, notes = [], []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        opt, eq, inline = arg.partition("=")
        value = inline if eq else (items[i + 1] if i + 1 < len(items) else "")
        takes_value = opt in PATH_OPTIONS or opt == "--mqtt"
        if arg == "--print-systemd-unit":
            i += 1
            continue
        if takes_value:
            if opt == "--mqtt":
                value, had = _without_password(value)
                if had:
                    notes.append("the MQTT password was left out of ExecStart (anyone can read it there): "
                                 "put it in a file only the service user can read and add --mqtt-password-file")
            elif opt != "--profile" or os.path.exists(value):
                value = value if value == "-" else os.path.abspath(value)
            out += [opt, value]
            i += 1 if eq else 2
            continue
        out.append(arg)
        i += 1
    if "--headless" not in out:
        out.append("--headless")
    if "--mqtt" in out and "--mqtt-password-file" not in out and os.environ.get("TUIMETER_MQTT_PASSWORD"):
        notes.append("$TUIMETER_MQTT_PASSWORD is set here but not in the unit: use --mqtt-password-file "
                     "(or an EnvironmentFile= readable only by the service user)")
    return out, notes


def _group() -> str:
    try:
        return grp.getgrgid(os.getgid()).gr_name
    except KeyError:
        return str(os.getgid())


def systemd_unit(argv: list[str], port: str, user: str | None = None, group: str | None = None) -> str:
    args, notes = service_argv(argv)
    group = group or _group()
    lines = [
        "# tuimeter as a service: save as /etc/systemd/system/tuimeter.service, then",
        "#   sudo systemctl daemon-reload && sudo systemctl enable --now tuimeter",
        "#   journalctl -u tuimeter -f",
        *[f"# NOTE: {n}" for n in notes],
        "[Unit]",
        f"Description=tuimeter: TuyaMCU energy meter on {port}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={user or getpass.getuser()}",
        "# the control socket's group: its members may attach ('tuimeter attach'; docs/attach.md). To let",
        f"# another user watch: sudo usermod -aG {group} THEM (they log in again)",
        f"Group={group}",
        "# the serial port's group (ls -l the device: dialout, or plugdev on some Raspberry Pi OS releases)",
        "SupplementaryGroups=dialout",
        "# /run/tuimeter, made at start and removed at stop: the control socket (mode 0660) goes in it",
        "RuntimeDirectory=tuimeter",
        "RuntimeDirectoryMode=0750",
        f"ExecStart={_systemd_escape(shlex.join(_program() + args))}",
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=5",
        "# exit 2 is a setting to fix (bad option, refused login, busy metrics port): restarting cannot help",
        "RestartPreventExitStatus=2",
        "# SIGTERM stops it cleanly: records flushed, MQTT told 'offline', port closed",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=10",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def print_systemd_unit(port: str, argv: list[str]) -> int:
    sys.stdout.write(systemd_unit(argv, port))
    return 0
