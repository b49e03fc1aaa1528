"""--metrics: /metrics scraped over HTTP and read with the Prometheus text parser."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.broker import free_port
from tests.waiting import TIMEOUT, until_sync
from tuimeter.bridge import parse_address
from tuimeter.records import read_jsonl

TUIMETER = [sys.executable, "-m", "tuimeter"]


def scrape(port: int) -> dict[str, tuple[str, dict[str, float]]]:
    """metric family → (type, {sample name + labels: value})."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, tuple[str, dict[str, float]]] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = (fam.type, {s.name + str(sorted(s.labels.items())): s.value for s in fam.samples})
    return out


def value(metrics: dict[str, tuple[str, dict[str, float]]], family: str) -> float:
    (v,) = metrics[family][1].values()
    return v


def test_metrics_follow_the_meter_and_are_conventionally_named(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "m.jsonl"
    started = time.monotonic()
    proc = subprocess.Popen([*TUIMETER, "--demo", "--headless", "--log", str(log), "--metrics", str(port),
                             "--node-id", "din1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def online() -> dict[str, tuple[str, dict[str, float]]] | None:
            try:
                m = scrape(port)
            except OSError:  # not serving yet
                return None
            return m if "tuimeter_voltage_volts" in m and value(m, "tuimeter_link_up") == 1 else None

        until_sync(online, what="metrics with the link up and a voltage")
        m = scrape(port)
        scraped_after = time.monotonic() - started
        scraped = (value(m, "tuimeter_voltage_volts"), value(m, "tuimeter_current_amperes"),
                   value(m, "tuimeter_power_watts"), round(value(m, "tuimeter_leakage_current_amperes") * 1000, 6),
                   round(value(m, "tuimeter_energy_joules") / 3.6e6, 6))

        def logged() -> list[tuple[float, ...]]:
            return [(r["voltage_v"], r["current_a"], r["power_w"], r["leakage_ma"], r["energy_kwh"])
                    for r in read_jsonl(log).records if r["type"] == "reading"]

        # a reading the meter gave, in base units (the log is written once the burst is handled)
        until_sync(lambda: scraped in logged(), what=f"the scraped reading {scraped} in the log",
                   show=lambda: logged()[-3:])
        assert value(m, "tuimeter_relay_closed") == 1
        assert m["tuimeter_energy_joules"][0] == "counter" and m["tuimeter_voltage_volts"][0] == "gauge"
        frames = m["tuimeter_frames"][1]
        assert frames["tuimeter_frames_total[('direction', 'in'), ('meter', 'din1')]"] > 10
        assert value(m, "tuimeter_parse_errors") == 0
        # an age since a heartbeat of this run: no older than the run itself
        assert 0 <= value(m, "tuimeter_heartbeat_age_seconds") <= scraped_after
        assert m["tuimeter_build_info"][1]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0 and f"metrics up: serving http://127.0.0.1:{port}/metrics" in out


def test_metrics_listen_on_localhost_unless_told() -> None:
    assert parse_address("9105") == ("127.0.0.1", 9105)
    assert parse_address("0.0.0.0:9105") == ("0.0.0.0", 9105)
    assert parse_address("[::1]:9105") == ("::1", 9105)
    for bad in ("x", "9105:", "70000"):
        with pytest.raises(ValueError, match="expected"):
            parse_address(bad)


def test_a_busy_metrics_port_is_one_clear_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([*TUIMETER, "--demo", "--headless", "--metrics", str(port)], capture_output=True,
                              text=True, timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in proc.stderr.splitlines()[-1]
