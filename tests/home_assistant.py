"""A real Home Assistant Core for the tests, on loopback: started in a folder of its own, onboarded
through its API, with the MQTT integration added through its config flow against a real Mosquitto.
Installed by `python3 -m tests.home_assistant_setup` (`.ci/run` does); without it the tests are skipped
with that command, and in CI (CI=1) they fail."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.broker import free_port
from tests.home_assistant_setup import INSTALL_COMMAND, VERSION, hass
from tests.waiting import TIMEOUT, until_sync

CLIENT_ID = "http://127.0.0.1/"
# what HA says on this machine whatever tuimeter does: running with --skip-pip, on Python 3.11
NOT_OURS = re.compile(r"Skipping pip installation|Support for the running Python version")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ (WARNING|ERROR|CRITICAL) ")

CONFIGURATION = """\
homeassistant:
  name: tuimeter test
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
websocket_api:
onboarding:
config:
history:
energy:
recorder:
  commit_interval: 0
logger:
  default: warning
"""


def require_home_assistant() -> Path:
    exe = hass()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(f"Home Assistant {VERSION} is not installed; .ci/run installs it ({INSTALL_COMMAND})")
        pytest.skip(f"Home Assistant {VERSION} is not installed for this test: {INSTALL_COMMAND} "
                    "(about 4 min and 700 MB, under ~/.cache/tuimeter)")
    return exe


class HomeAssistant:
    def __init__(self, folder: Path) -> None:
        self.exe = require_home_assistant()
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "home-assistant.out"
        self.token = ""
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # ---- life ------------------------------------------------------------------------------
    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        self.proc = subprocess.Popen([str(self.exe), "-c", str(self.folder), "--skip-pip"],
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        # HA's start-up is the heaviest thing in the suite: a longer deadline than other waits
        until_sync(self._listening, timeout=4 * TIMEOUT, what=f"Home Assistant answering on {self.url}",
                   show=self.tail, interval=0.2)

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Home Assistant exited ({self.proc.returncode}):\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/onboarding", timeout=2):
                return True
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        if self._ws is not None:
            self._ws.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    # ---- set-up as a new user does it ------------------------------------------------------
    def onboard(self) -> None:
        """The onboarding's first step creates the owner; its auth code is traded for a token."""
        user = self._post("/api/onboarding/users", {"client_id": CLIENT_ID, "name": "Test", "username": "test",
                                                    "password": "tuimeter-test-pw", "language": "en"})
        data = f"grant_type=authorization_code&code={user['auth_code']}&client_id={CLIENT_ID}".encode()
        req = urllib.request.Request(f"{self.url}/auth/token", data=data, method="POST")
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            self.token = json.load(resp)["access_token"]

    def add_mqtt(self, broker_port: int) -> None:
        """Settings → Devices & services → Add integration → MQTT: broker and port."""
        flow = self._post("/api/config/config_entries/flow", {"handler": "mqtt", "show_advanced_options": False})
        assert flow["type"] == "form" and flow["step_id"] == "broker", flow
        done = self._post(f"/api/config/config_entries/flow/{flow['flow_id']}",
                          {"broker": "127.0.0.1", "port": broker_port})
        assert done["type"] == "create_entry" and done["result"]["state"] == "loaded", done

    # ---- REST and websocket API ------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(f"{self.url}{path}", method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from None

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self._call("GET", "/api/states")}

    def state(self, entity_id: str) -> str | None:
        s = self.states().get(entity_id)
        return None if s is None else str(s["state"])

    def service(self, domain: str, name: str, **data: Any) -> None:
        self._post(f"/api/services/{domain}/{name}", data)

    def history(self, entity_id: str, since: str) -> list[str]:
        rows = self._call("GET", f"/api/history/period/{since}?filter_entity_id={entity_id}&minimal_response"
                                 "&no_attributes")
        return [str(r["state"]) for r in rows[0]] if rows else []

    def ws(self, kind: str, **data: Any) -> Any:
        if self._ws is None:
            self._ws = connect(f"ws://127.0.0.1:{self.port}/api/websocket", open_timeout=TIMEOUT)
            assert json.loads(self._ws.recv(TIMEOUT))["type"] == "auth_required"
            self._ws.send(json.dumps({"type": "auth", "access_token": self.token}))
            assert json.loads(self._ws.recv(TIMEOUT))["type"] == "auth_ok"
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "type": kind, **data}))
        while True:
            reply = json.loads(self._ws.recv(TIMEOUT))
            if reply.get("id") == msg_id:
                assert reply["success"], reply
                return reply["result"]

    def entities(self, unique_prefix: str) -> dict[str, dict[str, Any]]:
        """The entity registry's MQTT entries whose unique id starts so, by unique id."""
        return {e["unique_id"]: e for e in self.ws("config/entity_registry/list")
                if e["platform"] == "mqtt" and str(e["unique_id"]).startswith(unique_prefix)}

    def device(self, identifier: str) -> dict[str, Any] | None:
        return next((d for d in self.ws("config/device_registry/list")
                     if ["mqtt", identifier] in d["identifiers"]), None)

    def problems(self) -> list[str]:
        """HA's own warnings and errors (with what follows them), but for the lines this machine causes."""
        out: list[str] = []
        keeping = False
        for line in self.log.read_text(errors="replace").splitlines():
            if LOG_LINE.match(line):
                keeping = not NOT_OURS.search(line)
                if keeping:
                    out.append(line)
            elif keeping and not re.match(r"^\d{4}-", line):  # a traceback or a wrapped message
                out[-1] += "\n" + line
            else:
                keeping = False
        return out
