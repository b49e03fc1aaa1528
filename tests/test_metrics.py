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
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.broker import free_port
from tests.waiting import TIMEOUT, until, until_sync
from tuimeter.bridge import parse_address
from tuimeter.bridge.metrics import MeterCollector, setting_metric
from tuimeter.core.events import Tripped
from tuimeter.core.host import HostConfig
from tuimeter.core.profile import load_profile
from tuimeter.host.session import HostSession, SessionOptions
from tuimeter.records import read_jsonl
from tuimeter.sim.pty_server import PtyMeterServer

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
            ready = "tuimeter_voltage_volts" in m and "tuimeter_setting_over_voltage_threshold_volts" in m
            return m if ready and value(m, "tuimeter_link_up") == 1 else None

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
        # the settings, each a gauge in its base unit, as the simulated meter reports them
        settings = {name: (kind, value(m, name)) for name, (kind, _) in m.items()
                    if name.startswith("tuimeter_setting_")}
        assert settings == {"tuimeter_setting_over_voltage_threshold_volts": ("gauge", 275),
                            "tuimeter_setting_under_voltage_threshold_volts": ("gauge", 170),
                            "tuimeter_setting_over_current_threshold_amperes": ("gauge", 50),
                            "tuimeter_setting_leakage_threshold_amperes": ("gauge", 0.05),
                            "tuimeter_setting_charge_energy_joules": ("gauge", 0)}
        # trips, by reason: every fault the profile names, from 0
        kind, trips = m["tuimeter_trips"]
        assert kind == "counter"
        assert trips["tuimeter_trips_total[('meter', 'din1'), ('reason', 'leakagecurr_alarm')]"] == 0
        faults = load_profile("earu-2p63a").for_role("faults")
        assert faults is not None and len(trips) == len(faults.bits)
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


def test_a_setting_s_gauge_is_named_in_its_base_unit() -> None:
    assert setting_metric("over_voltage_threshold", "V") == ("tuimeter_setting_over_voltage_threshold_volts", 1.0)
    assert setting_metric("leakage_threshold", "mA") == ("tuimeter_setting_leakage_threshold_amperes", 1e-3)
    assert setting_metric("alarm_set_2.over_voltage", "V")[0] == "tuimeter_setting_alarm_set_2_over_voltage_volts"
    assert setting_metric("charge_energy", "kWh") == ("tuimeter_setting_charge_energy_joules", 3.6e6)
    assert setting_metric("alarm_set_1.overload", "kW") == ("tuimeter_setting_alarm_set_1_overload_watts", 1e3)
    assert setting_metric("countdown", "") == ("tuimeter_setting_countdown", 1.0)


async def test_settings_follow_the_meter_s_reports_and_trips_are_counted_by_reason(server: PtyMeterServer) -> None:
    session = HostSession(SessionOptions(port=server.port), load_profile("earu-2p63a"), HostConfig())
    registry = CollectorRegistry()
    registry.register(MeterCollector(session, "din1"))

    def families() -> dict[str, list[tuple[dict[str, str], float]]]:
        text = generate_latest(registry).decode()
        return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}

    def gauge(name: str) -> float | None:
        samples = families().get(name)
        return samples[0][1] if samples else None

    def trips() -> dict[str, float]:
        return {labels["reason"]: v for labels, v in families()["tuimeter_trips"]}

    assert not [n for n in families() if n.startswith("tuimeter_setting_")]  # nothing reported yet: left out
    await session.start()
    try:
        await session.wait_online(TIMEOUT)
        await until(lambda: gauge("tuimeter_setting_over_voltage_threshold_volts") == 275, what="the threshold gauge")
        await session.write_setting("over_voltage_threshold", "260")
        await until(lambda: gauge("tuimeter_setting_over_voltage_threshold_volts") == 260, what="the confirmed value")
        assert set(trips().values()) == {0}
        session.bus.publish([Tripped(session.wall_time(), ("leakagecurr_alarm",))])
        session.bus.publish([Tripped(session.wall_time(), ("overload_alarm", "leakagecurr_alarm", "fault_bit_20"))])
        counts = trips()
        assert (counts["leakagecurr_alarm"], counts["overload_alarm"], counts["fault_bit_20"], counts["surge_alarm"]) \
            == (2, 1, 1, 0)
    finally:
        await session.close()
    assert "tuimeter_setting_over_voltage_threshold_volts" not in families()  # the link is down: not current
