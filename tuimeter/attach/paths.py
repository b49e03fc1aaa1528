"""Where control sockets live, and finding the running services (`tuimeter attach` with no SOCKET).

A systemd unit's `RuntimeDirectory=tuimeter` gives /run/tuimeter ($RUNTIME_DIRECTORY); a login
session has $XDG_RUNTIME_DIR; otherwise a folder of the user's own under /tmp. One socket per port,
named after it (ttyUSB0.sock, demo.sock).
"""

from __future__ import annotations

import grp
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tuimeter.attach import wire

log = logging.getLogger(__name__)

SYSTEM_DIR = Path("/run/tuimeter")  # RuntimeDirectory=tuimeter in the unit --print-systemd-unit writes
PROBE_TIMEOUT = 2.0


def runtime_dirs() -> list[Path]:
    """Where sockets are looked for, the one a new service uses first."""
    dirs: list[Path] = []
    for entry in os.environ.get("RUNTIME_DIRECTORY", "").split(":"):
        if entry:
            dirs.append(Path(entry))
    dirs.append(SYSTEM_DIR)
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        dirs.append(Path(xdg) / "tuimeter")
    dirs.append(Path(tempfile.gettempdir()) / f"tuimeter-{os.getuid()}")
    return list(dict.fromkeys(dirs))


def own_dir() -> Path:
    """The folder a service started here puts its socket in (created, private, when it is ours)."""
    if entry := os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]:
        return Path(entry)
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(xdg) / "tuimeter"
    return Path(tempfile.gettempdir()) / f"tuimeter-{os.getuid()}"


def socket_name(port: str | None) -> str:
    """ttyUSB0 for /dev/ttyUSB0, demo for the simulated meter: one socket per meter."""
    stem = (port or "demo").rstrip("/").rsplit("/", 1)[-1] or "meter"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) + ".sock"


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


@dataclass(frozen=True, slots=True)
class Found:
    """A socket found: a running service (its hello), or why it cannot be attached to."""

    path: Path
    hello: dict[str, object] | None = None
    problem: str = ""  # "permission denied …"; empty when running

    @property
    def running(self) -> bool:
        return self.hello is not None

    def describe(self) -> str:
        if self.hello is None:
            return f"{self.path}: {self.problem}"
        return f"{self.path}: {self.hello.get('port', '?')} (pid {self.hello.get('pid', '?')})"


def permission_hint(path: Path) -> str:
    """What to do about a socket this user may not open."""
    for p in (path, path.parent):
        try:
            group = group_name(p.stat().st_gid)
        except OSError:
            continue
        return (f"permission denied on {path}: only its owner and group {group!r} may attach; join it with "
                f"'sudo usermod -aG {group} $USER' and log in again (or attach as the service's user)")
    return (f"permission denied on {path}: a folder on the way is closed to you; attach as the service's user, "
            "or join its group ('sudo usermod -aG GROUP $USER', GROUP as 'ls -ld' on the folder shows)")


def probe(path: Path, timeout: float = PROBE_TIMEOUT) -> Found:
    """Connect and read the service's hello (blocking; for listing, not for the screen)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        line = sock.makefile("rb").readline(wire.MAX_LINE)
        hello = wire.loads(line)
    except PermissionError:
        return Found(path, problem=permission_hint(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return Found(path, problem="not running (a socket left by a service that stopped without cleaning up)")
    except (OSError, wire.WireError) as exc:
        return Found(path, problem=f"not a tuimeter service ({exc})")
    finally:
        sock.close()
    if hello.get("type") != "hello":
        return Found(path, problem="not a tuimeter service (it did not say hello)")
    return Found(path, hello)


def find_services() -> list[Found]:
    """Every socket in the usual places that is a running service, or that this user may not open."""
    found: list[Found] = []
    for folder in runtime_dirs():
        try:
            paths = sorted(folder.glob("*.sock"))
        except PermissionError:  # a service's folder this user may not enter: say so, do not skip it
            found.append(Found(folder, problem=permission_hint(folder)))
            continue
        except OSError:
            continue
        for path in paths:
            f = probe(path)
            if f.running or "permission denied" in f.problem:
                found.append(f)
    return found


def holder_of(port: str) -> Found | None:
    """The running service that has `port` open, if one is found."""
    for f in find_services():
        if f.hello is not None and str(f.hello.get("port", "")).split(" @ ")[0] == port:
            return f
    return None
