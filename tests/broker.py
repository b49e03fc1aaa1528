"""A real Mosquitto broker for the tests, on a free localhost port; .ci/run installs it."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.waiting import TIMEOUT, until_sync

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


def require_mosquitto() -> str:
    """The broker's path; in CI its absence is a failure, elsewhere the tests are skipped with the fix."""
    if MOSQUITTO is None or MOSQUITTO_PASSWD is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is missing; .ci/run installs it (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed (sudo apt-get install mosquitto)")
    return MOSQUITTO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    def __init__(self, folder: Path, users: dict[str, str] | None = None, tls: bool = False) -> None:
        self.binary = require_mosquitto()
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        # started as root, mosquitto drops to user "mosquitto", which cannot read pytest's private folders
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}"]
        if tls:
            ca, cert, key = make_certificates(folder)
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
            self.ca = ca
        self.scheme = "mqtts" if tls else "mqtt"
        if users:
            pwfile = folder / "passwords"
            pwfile.touch()
            for user, password in users.items():
                subprocess.run([str(MOSQUITTO_PASSWD), "-b", str(pwfile), user, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log = self.conf.with_name("mosquitto.log")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("ab"))

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1.0).close()
            except OSError:
                return False
            return True

        until_sync(listening, what=f"mosquitto listening on port {self.port}",
                   show=lambda: self.log.read_text()[-500:])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(TIMEOUT)
            self.proc = None


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed (openssl)."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=tuimeter test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return ca, cert, key
