"""--mqtt against a real Mosquitto: Home Assistant discovery, state, relay commands through the one
command path, a broker that restarts or is not there, and wrong credentials."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.broker import Broker
from tests.headless_process import TUIMETER, Tuimeter
from tests.waiting import TIMEOUT, until
from tuimeter.bridge.homeassistant import Identity, Topics, discovery_messages
from tuimeter.bridge.mqtt import MqttBridge, MqttConfigError, MqttSettings
from tuimeter.core.host import HostConfig
from tuimeter.core.profile import load_profile
from tuimeter.host.session import HostSession, SessionOptions


class Watcher:
    """A second MQTT client, like Home Assistant: sees what tuimeter publishes, sends commands."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latest: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.arrivals: list[tuple[str, str]] = []  # (topic, payload) in the order they came

    async def collect(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            payload = m.payload.decode() if isinstance(m.payload, bytes) else str(m.payload)
            self.latest[str(m.topic)] = payload
            self.arrivals.append((str(m.topic), payload))
            self.counts[str(m.topic)] = self.counts.get(str(m.topic), 0) + 1

    async def until(self, pred: Callable[[], bool], what: str | None = None) -> None:
        await until(pred, what=what, show=lambda: f"topics {sorted(self.latest)}", interval=0.05)


async def watching(port: int, body: Callable[[aiomqtt.Client, Watcher], Any]) -> None:
    w = Watcher(port)
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe("#")
        collector = asyncio.create_task(w.collect(client))
        try:
            await body(client, w)
        finally:
            collector.cancel()


def state(w: Watcher, node: str = "t1") -> dict[str, Any]:
    return dict(json.loads(w.latest.get(f"tuimeter/{node}/state", "{}")))


def config_topic(component: str, key: str, node: str = "t1") -> str:
    return f"homeassistant/{component}/tuimeter_{node}/{key}/config"


def config(w: Watcher, component: str, key: str, node: str = "t1") -> dict[str, Any]:
    return dict(json.loads(w.latest[config_topic(component, key, node)]))



# ---- against a real broker -------------------------------------------------------------------

async def test_discovery_state_and_relay_round_trip(broker: Broker, run: Callable[..., Tuimeter]) -> None:
    t = run("--mqtt", broker.url, "--node-id", "t1")

    async def body(client: aiomqtt.Client, w: Watcher) -> None:
        await w.until(lambda: config_ready(w) and state(w).get("voltage_v") is not None)
        volts = config(w, "sensor", "voltage")
        assert (volts["device_class"], volts["unit_of_measurement"], volts["state_class"]) == \
            ("voltage", "V", "measurement")
        assert volts["state_topic"] == "tuimeter/t1/state" and volts["value_template"] == "{{ value_json.voltage_v }}"
        assert volts["unique_id"] == "tuimeter_t1_voltage" and volts["qos"] == 1
        assert [a["topic"] for a in volts["availability"]] == ["tuimeter/t1/availability", "tuimeter/t1/meter"]
        energy = config(w, "sensor", "energy")
        assert (energy["unit_of_measurement"], energy["state_class"]) == ("kWh", "total_increasing")
        assert config(w, "sensor", "leakage")["unit_of_measurement"] == "mA"
        assert config(w, "binary_sensor", "fault")["device_class"] == "problem"
        switch = config(w, "switch", "relay")
        assert switch["command_topic"] == "tuimeter/t1/relay/set" and switch["state_topic"] == "tuimeter/t1/relay"
        assert switch["qos"] == 1  # Home Assistant sends the commands at QoS 1 too
        # discovery goes out once, with the whole identity: the breaker id is in the first config already
        device = config(w, "switch", "relay")["device"]
        assert device["serial_number"] == "FSE-F723C558128885"
        assert device["model"] == "r9kg2g1uhhyicycb" and device["identifiers"] == ["tuimeter_t1"]
        await w.until(lambda: w.latest["tuimeter/t1/meter"] == "online")  # once start-up is complete
        assert w.latest["tuimeter/t1/availability"] == "online"
        assert w.latest["tuimeter/t1/relay"] == "ON"
        # the state topic carries the readings the local log has
        await w.until(lambda: state(w) in [{**r} for r in t.readings()])
        states = w.counts["tuimeter/t1/state"]
        await w.until(lambda: w.counts["tuimeter/t1/state"] >= states + 2, "two more states")
        assert w.counts[config_topic("sensor", "voltage")] == 1  # one config per entity, not one per change

        # a command from "Home Assistant": switched by the meter, confirmed by its report
        await client.publish("tuimeter/t1/relay/set", "OFF", qos=1)
        await w.until(lambda: w.latest["tuimeter/t1/relay"] == "OFF")
        await w.until(lambda: state(w).get("relay") is False)
        t.wait_output("mqtt relay command: relay off (confirmed by the meter)")
        await client.publish("tuimeter/t1/relay/set", "ON", qos=1)
        await w.until(lambda: w.latest["tuimeter/t1/relay"] == "ON")

        # Home Assistant restarts: it announces itself and gets the configs again
        before = w.counts[config_topic("sensor", "voltage")]
        await client.publish("homeassistant/status", "online")
        await w.until(lambda: w.counts[config_topic("sensor", "voltage")] > before)

    await watching(broker.port, body)
    assert t.stop() == 0
    # each command from MQTT is its own event in the log, naming where it came from
    commands = [(e["command"], e["value"], e["source"], e["result"]) for e in t.events("command")]
    assert commands == [("relay", False, "mqtt", "confirmed"), ("relay", True, "mqtt", "confirmed")]
    assert not [e for e in t.events("mqtt_up") if "relay" in e["text"]]
    # a clean stop says offline on both retained topics: a reader of `meter` alone sees no stale "online"
    assert await retained(broker.port, "tuimeter/t1/availability") == "offline"
    assert await retained(broker.port, "tuimeter/t1/meter") == "offline"


async def retained(port: int, topic: str) -> str:
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe(topic)
        async with asyncio.timeout(TIMEOUT):
            async for m in c.messages:
                assert m.retain
                return m.payload.decode() if isinstance(m.payload, bytes) else str(m.payload)
    raise AssertionError(f"no retained message on {topic}")


def config_ready(w: Watcher) -> bool:
    return all(config_topic(c, k) in w.latest for c, k in
               (("sensor", "voltage"), ("sensor", "energy"), ("sensor", "leakage"), ("switch", "relay"),
                ("binary_sensor", "fault"), ("sensor", "faults")))


async def test_retained_command_is_ignored_and_read_only_refuses(broker: Broker,
                                                                run: Callable[..., Tuimeter]) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as c:  # left behind by some other client
        await c.publish("tuimeter/t1/relay/set", "OFF", qos=1, retain=True)
    t = run("--mqtt", broker.url, "--node-id", "t1", "--read-only")

    async def body(client: aiomqtt.Client, w: Watcher) -> None:
        await w.until(lambda: config_topic("binary_sensor", "relay") in w.latest
                      and w.latest.get("tuimeter/t1/relay") == "ON")
        # read-only: the relay is a binary sensor, and the switch entity is removed
        assert config(w, "binary_sensor", "relay")["device_class"] == "power"
        assert w.latest[config_topic("switch", "relay")] == ""
        t.wait_output("ignored a retained relay command")
        await client.publish("tuimeter/t1/relay/set", "OFF", qos=1)
        t.wait_output("mqtt relay command refused: read-only mode")
        states = w.counts["tuimeter/t1/state"]
        await w.until(lambda: w.counts["tuimeter/t1/state"] >= states + 2, "two later states")  # the meter went on
        assert w.latest["tuimeter/t1/relay"] == "ON" and state(w)["relay"] is True

    await watching(broker.port, body)
    assert t.stop() == 0
    assert all(r["relay"] is not False for r in t.readings())  # the relay was never switched
    assert [(e["source"], e["result"]) for e in t.events("command")] == [("mqtt", "refused")]
    assert [e["text"] for e in t.events("notice") if "retained" in e["text"]]  # a warning, not "mqtt_up"


async def test_an_unconfirmed_command_makes_the_relay_unknown_not_stale(broker: Broker,
                                                                      run: Callable[..., Tuimeter]) -> None:
    t = run("--mqtt", broker.url, "--node-id", "t1", "--demo-faults", "ignore_relay")

    async def body(client: aiomqtt.Client, w: Watcher) -> None:
        await w.until(lambda: w.latest.get("tuimeter/t1/relay") == "ON" and w.latest.get("tuimeter/t1/meter")
                      == "online")
        await client.publish("tuimeter/t1/relay/set", "OFF", qos=1)
        await w.until(lambda: w.latest["tuimeter/t1/relay"] == "None")  # Home Assistant's "unknown"
        t.wait_output("did not confirm relay off")

    await watching(broker.port, body)
    assert t.stop() == 0
    assert [(e["value"], e["source"], e["result"]) for e in t.events("command")] == [(False, "mqtt", "unconfirmed")]


async def test_broker_restart_mid_run_keeps_logging_and_reconnects(broker: Broker,
                                                                  run: Callable[..., Tuimeter]) -> None:
    t = run("--mqtt", broker.url, "--node-id", "t1")
    t.wait_output("mqtt up: connected")
    broker.stop()
    t.wait_output("mqtt down: lost the broker")
    during = len(t.readings())
    # readings go on being logged here while the broker is away
    await until(lambda: len(t.readings()) > during, what="a reading logged while the broker is down", interval=0.2)
    broker.start()

    async def body(client: aiomqtt.Client, w: Watcher) -> None:
        await w.until(lambda: state(w).get("voltage_v") is not None and config_ready(w))

    await watching(broker.port, body)
    assert t.output().count("mqtt up: connected") >= 2
    assert t.proc.poll() is None and t.stop() == 0
    assert "Traceback" not in t.output()


async def test_no_broker_at_start_is_reported_and_the_meter_runs(tmp_path: Path,
                                                                run: Callable[..., Tuimeter]) -> None:
    from tests.broker import free_port

    t = run("--mqtt", f"mqtt://127.0.0.1:{free_port()}", "--node-id", "t1")
    t.wait_output("mqtt down: cannot reach the broker")
    t.wait_output(" kWh")
    assert t.stop() == 0 and t.readings()


def test_wrong_credentials_are_one_clear_line_and_the_right_ones_work(tmp_path: Path,
                                                                     run: Callable[..., Tuimeter]) -> None:
    b = Broker(tmp_path, users={"meter": "s3cret"})
    b.start()
    try:
        proc = subprocess.run([*TUIMETER, "--demo", "--headless", "--mqtt", f"mqtt://meter:wrong@127.0.0.1:{b.port}"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert "refused the login" in last and "user 'meter'" in last and "--mqtt-password-file" in last
        pw = tmp_path / "pw"
        pw.write_text("s3cret\n")
        ok = run("--mqtt", f"mqtt://meter@127.0.0.1:{b.port}", "--mqtt-password-file", str(pw))
        ok.wait_output("mqtt up: connected")
        assert ok.stop() == 0
    finally:
        b.stop()


# ---- settings and payloads -------------------------------------------------------------------

def test_password_sources_and_bad_urls(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    s = MqttSettings.parse("mqtts://meter:url%40pw@broker.lan", node_id="n")
    assert (s.host, s.port, s.tls, s.username, s.password) == ("broker.lan", 8883, True, "meter", "url@pw")
    assert MqttSettings.parse("mqtt://meter@h", node_id="n", password_file=str(pw)).password == "from-file"
    assert MqttSettings.parse("mqtt://meter@h", node_id="n", env={"TUIMETER_MQTT_PASSWORD": "env"}).password == "env"
    for url, message in (("http://h", "use mqtt://"), ("mqtt://h:99999", "port"), ("mqtt://", "no broker host")):
        with pytest.raises(MqttConfigError, match=message):
            MqttSettings.parse(url, node_id="n")
    with pytest.raises(MqttConfigError, match="no such file"):
        MqttSettings.parse("mqtts://h", node_id="n", ca_file=str(tmp_path / "none.pem"))
    for node in ("a/+", "kitchen meter", "a.b", ""):
        with pytest.raises(MqttConfigError, match="--node-id"):
            MqttSettings.parse("mqtt://h", node_id=node)
    for url in ("mqtt://[::1", "mqtt://h:0"):
        with pytest.raises(MqttConfigError, match="--mqtt"):
            MqttSettings.parse(url, node_id="n")
    (tmp_path / "latin1").write_bytes(b"p\xe4ss")
    with pytest.raises(MqttConfigError, match="not UTF-8"):
        MqttSettings.parse("mqtt://u@h", node_id="n", password_file=str(tmp_path / "latin1"))
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(MqttConfigError, match="not a PEM certificate"):
        MqttSettings.parse("mqtts://h", node_id="n", ca_file=str(tmp_path / "ca.pem"))


def test_discovery_payloads_name_every_entity_once() -> None:
    msgs = discovery_messages(Topics("tuimeter", "n"), Identity("pid", "1.0.0", "FSE-1"), relay_writable=True)
    configs = {topic: json.loads(p) for topic, p in msgs if p}
    ids = [c["unique_id"] for c in configs.values()]
    assert len(ids) == len(set(ids)) == 8
    assert all(i.startswith("tuimeter_n_") for i in ids)  # no clash with another device's "n_voltage"
    assert all(topic.startswith("homeassistant/") and "/tuimeter_n/" in topic for topic, _ in msgs)
    assert all(c["device"]["serial_number"] == "FSE-1" and c["device"]["model"] == "pid" for c in configs.values())


async def test_the_configs_of_tuimeter_0_1_are_taken_back_before_the_new_ones_go_out(
        broker: Broker, run: Callable[..., Tuimeter]) -> None:
    legacy = {f"homeassistant/{c}/t1_{k}/config": json.dumps({"name": k, "unique_id": f"t1_{k}",
                                                              "origin": {"name": "tuimeter", "sw_version": "0.1.0"}})
              for c, k in (("sensor", "voltage"), ("switch", "relay"))}
    foreign = json.dumps({"name": "Power", "unique_id": "t1_power", "origin": {"name": "other-bridge"}})
    async with aiomqtt.Client("127.0.0.1", broker.port) as c:  # what 0.1 left, and another device's config
        for topic, payload in legacy.items():
            await c.publish(topic, payload, qos=1, retain=True)
        await c.publish("homeassistant/sensor/t1_power/config", foreign, qos=1, retain=True)

    async def body(client: aiomqtt.Client, w: Watcher) -> None:
        await w.until(lambda: all(topic in w.latest for topic in legacy), "the legacy configs, retained")
        t = run("--mqtt", broker.url, "--node-id", "t1")
        await w.until(lambda: config_ready(w) and all(w.latest.get(topic) == "" for topic in legacy))
        for topic in legacy:  # removed first, so Home Assistant frees the entity ids for the new entities
            assert w.arrivals.index((topic, "")) < w.arrivals.index(
                (config_topic("sensor", "voltage"), w.latest[config_topic("sensor", "voltage")]))
        assert w.latest["homeassistant/sensor/t1_power/config"] == foreign  # not ours: left alone
        assert t.stop() == 0

    await watching(broker.port, body)


def test_tls_with_the_brokers_ca_and_a_clear_line_without_it(tmp_path: Path, run: Callable[..., Tuimeter]) -> None:
    b = Broker(tmp_path, tls=True)
    b.start()
    try:
        proc = subprocess.run([*TUIMETER, "--demo", "--headless", "--mqtt", b.url], capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "is not trusted; give the CA that signed it with --mqtt-ca" in proc.stderr.splitlines()[-1]
        ok = run("--mqtt", b.url, "--mqtt-ca", str(b.ca))
        ok.wait_output(f"mqtt up: connected to mqtts://127.0.0.1:{b.port}")
        assert ok.stop() == 0
    finally:
        b.stop()


async def test_close_ends_a_publisher_that_lost_its_cancel() -> None:
    """aiomqtt waits for a PUBACK with asyncio.wait_for, which on Python 3.11 swallows a cancel that comes in
    the loop iteration the PUBACK does (gh-86296); a stop must not then wait for the publisher for ever."""
    session = HostSession(SessionOptions(port="/dev/null"), load_profile("earu-2p63a"), HostConfig())  # not started
    bridge = MqttBridge(session, MqttSettings.parse("mqtt://127.0.0.1", node_id="c1"), read_only=False)
    puback: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def publisher() -> None:  # as _publisher: a publish waiting for its PUBACK, then the next wake-up
        await asyncio.wait_for(puback, TIMEOUT)
        await asyncio.Event().wait()

    bridge._runner = runner = asyncio.create_task(publisher())
    await asyncio.sleep(0)
    puback.set_result(None)  # close() cancels in this same iteration
    async with asyncio.timeout(TIMEOUT) as deadline:
        await bridge.close()
    assert not deadline.expired()  # close() ended it, not this test's deadline (whose cancel would end it too)
    assert runner.cancelled()


def test_only_a_refused_connect_counts_as_a_refused_login() -> None:
    from aiomqtt.exceptions import MqttConnectError

    from tuimeter.bridge.mqtt import _refused

    assert _refused(MqttConnectError(4)) and _refused(MqttConnectError(5))
    assert not _refused(aiomqtt.MqttCodeError(4))  # paho's "not connected": a lost broker, not a bad password
    assert not _refused(MqttConnectError(3))  # server unavailable: worth retrying
