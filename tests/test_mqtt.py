"""--mqtt against a real Mosquitto: Home Assistant discovery, state, relay and settings commands through
the one command path, trips, a broker that restarts or is not there, and wrong credentials."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.broker import Broker
from tests.headless_process import TUIMETER, Tuimeter
from tests.waiting import TIMEOUT, until
from tuimeter.bridge.homeassistant import (
    Identity,
    SettingInfo,
    Topics,
    discovery_messages,
    settings_discovery,
    settings_payload,
    trip_discovery,
)
from tuimeter.bridge.mqtt import MqttBridge, MqttConfigError, MqttSettings
from tuimeter.core.commands import Command
from tuimeter.core.datapoints import decode_datapoints
from tuimeter.core.events import CommandFinished, CommandResult, Event, Tripped
from tuimeter.core.frames import Frame, StreamParser
from tuimeter.core.host import HostConfig
from tuimeter.core.profile import load_profile, shipped_profiles
from tuimeter.core.settings import AlarmValue, SettingState
from tuimeter.host.session import HostSession, SessionOptions
from tuimeter.sim.mcu import SimulatedMeter
from tuimeter.sim.pty_server import PtyMeterServer


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


def settings(w: Watcher, node: str = "t1") -> dict[str, Any]:
    return dict(json.loads(w.latest.get(f"tuimeter/{node}/settings", "{}")))


def setting_topic(name: str, node: str = "t1") -> str:
    return f"tuimeter/{node}/setting/{name}/set"



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

        # the settings: sensors that show what the meter reports, and no entity with a command topic
        await w.until(lambda: config_topic("sensor", "last_trip") in w.latest  # the last config
                      and settings(w).get("over_voltage_threshold") == 275)
        threshold = config(w, "sensor", "over_voltage_threshold")
        assert (threshold["unit_of_measurement"], threshold["device_class"], threshold["entity_category"]) == \
            ("V", "voltage", "diagnostic")
        assert config(w, "binary_sensor", "alarm_mute")["entity_category"] == "diagnostic"
        for component, key in (("number", "over_voltage_threshold"), ("switch", "alarm_mute"),
                               ("button", "clear_energy"), ("number", "leakage_threshold")):
            assert w.latest[config_topic(component, key)] == "", (component, key)  # a writable run's: removed
        ours = [json.loads(p) for topic, p in w.latest.items() if topic.startswith("homeassistant/") and p]
        assert ours and not [c["unique_id"] for c in ours if "command_topic" in c]
        await client.publish(setting_topic("over_voltage_threshold"), "260", qos=1)
        t.wait_output("mqtt setting command refused: read-only mode")
        states = w.counts["tuimeter/t1/state"]
        await w.until(lambda: w.counts["tuimeter/t1/state"] >= states + 2, "two later states")  # the meter went on
        assert w.latest["tuimeter/t1/relay"] == "ON" and state(w)["relay"] is True

    await watching(broker.port, body)
    assert t.stop() == 0
    assert all(r["relay"] is not False for r in t.readings())  # the relay was never switched
    assert [(e["source"], e["result"]) for e in t.events("command")] == [("mqtt", "refused")]
    assert [(e["name"], e["source"], e["result"]) for e in t.events("setting_change")] == \
        [("over_voltage_threshold", "mqtt", "refused")]
    assert [e["text"] for e in t.events("notice") if "retained" in e["text"]]  # a warning, not "mqtt_up"


async def test_settings_are_announced_written_through_the_one_path_and_shown_as_the_meter_reports_them(
        broker: Broker, run: Callable[..., Tuimeter]) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as c:  # left behind by some other client
        await c.publish(setting_topic("over_voltage_threshold"), "260", qos=1, retain=True)
    t = run("--mqtt", broker.url, "--node-id", "t1")

    async def body(client: aiomqtt.Client, w: Watcher) -> None:
        await w.until(lambda: config_topic("sensor", "last_trip") in w.latest
                      and settings(w).get("over_voltage_threshold") is not None)
        # a number per numeric setting, with this product's range (EARU r9kg2g1uhhyicycb: 250-300 V)
        over = config(w, "number", "over_voltage_threshold")
        assert (over["min"], over["max"], over["step"], over["unit_of_measurement"], over["mode"],
                over["entity_category"], over["device_class"]) == (250, 300, 1, "V", "box", "config", "voltage")
        assert over["command_topic"] == setting_topic("over_voltage_threshold")
        assert over["state_topic"] == "tuimeter/t1/settings" and over["qos"] == 1
        assert over["unique_id"] == "tuimeter_t1_over_voltage_threshold"
        assert over["device"]["identifiers"] == ["tuimeter_t1"] and over["device"]["model"] == "r9kg2g1uhhyicycb"
        assert [a["topic"] for a in over["availability"]] == ["tuimeter/t1/availability", "tuimeter/t1/meter"]
        leak = config(w, "number", "leakage_threshold")
        assert (leak["min"], leak["max"], leak["unit_of_measurement"], leak["device_class"]) == \
            (10, 100, "mA", "current")
        charge = config(w, "number", "charge_energy")
        assert (charge["step"], charge["unit_of_measurement"], charge["device_class"]) == (0.01, "kWh", "energy")
        mute = config(w, "switch", "alarm_mute")
        assert (mute["command_topic"], mute["entity_category"]) == (setting_topic("alarm_mute"), "config")
        clear = config(w, "button", "clear_energy")
        assert (clear["command_topic"], clear["payload_press"], clear["entity_category"]) == \
            (setting_topic("clear_energy"), "press", "config")
        assert "reset_total_energy" not in w.latest.get("tuimeter/t1/settings", "")  # the EMS product's only
        assert config_topic("button", "reset_total_energy") not in w.latest
        assert w.latest[config_topic("sensor", "over_voltage_threshold")] == ""  # a read-only run's: removed
        trip = config(w, "event", "trip")
        assert trip["state_topic"] == "tuimeter/t1/trip" and "leakagecurr_alarm" in trip["event_types"]
        assert config(w, "sensor", "last_trip")["device_class"] == "timestamp"
        # the state is what the meter reported; the retained command was not acted on
        await w.until(lambda: settings(w) == {"switch_prepayment": False, "charge_energy": 0,
                                              "over_voltage_threshold": 275, "under_voltage_threshold": 170,
                                              "over_current_threshold": 50, "leakage_threshold": 50,
                                              "alarm_mute": False})
        t.wait_output("ignored a retained setting command '260'")

        # a command: written, and the state changes with the meter's report of it
        await client.publish(setting_topic("over_voltage_threshold"), "260", qos=1)
        await w.until(lambda: settings(w)["over_voltage_threshold"] == 260)
        t.wait_output("mqtt setting command: over_voltage_threshold 260 V (confirmed by the meter)")
        # refused, nothing sent: out of this product's range, garbage, a weakening change without the option
        await client.publish(setting_topic("over_voltage_threshold"), "240", qos=1)
        t.wait_output("over_voltage_threshold 240 V is out of range 250–300 V; nothing sent")
        await client.publish(setting_topic("over_voltage_threshold"), "high", qos=1)
        t.wait_output("over_voltage_threshold needs a number")
        await client.publish(setting_topic("leakage_threshold"), "40", qos=1)
        t.wait_output("the leakage trip no longer protects people from electric shock")
        t.wait_output("accepted over MQTT only when tuimeter runs with --mqtt-allow-weakening")
        await client.publish(setting_topic("leakage_threshold"), "30", qos=1)  # not weakening
        await w.until(lambda: settings(w)["leakage_threshold"] == 30)
        await client.publish(setting_topic("alarm_mute"), "ON", qos=1)  # as Home Assistant's switch sends it
        await w.until(lambda: settings(w)["alarm_mute"] is True)
        await client.publish(setting_topic("clear_energy"), "", qos=1)  # how a retained message is cleared
        t.wait_output("ignored an empty message on tuimeter/t1/setting/clear_energy/set")
        assert state(w)["energy_kwh"] > 0
        await client.publish(setting_topic("clear_energy"), "press", qos=1)
        await w.until(lambda: state(w)["energy_kwh"] == 0)
        assert all(json.loads(p)["over_voltage_threshold"] in (None, 275, 260) and json.loads(p)["leakage_threshold"]
                   in (None, 50, 30) for topic, p in w.arrivals if topic == "tuimeter/t1/settings")

    await watching(broker.port, body)
    assert t.stop() == 0
    # each one a setting_change event in the log, naming MQTT, the weakening one marked
    changes = [(e["name"], e["source"], e["result"], e["weakening"]) for e in t.events("setting_change")]
    assert changes == [("over_voltage_threshold", "mqtt", "confirmed", False),
                       ("over_voltage_threshold", "mqtt", "refused", False),
                       ("over_voltage_threshold", "mqtt", "refused", False),
                       ("leakage_threshold", "mqtt", "refused", True),
                       ("leakage_threshold", "mqtt", "confirmed", False),
                       ("alarm_mute", "mqtt", "confirmed", False),
                       ("clear_energy", "mqtt", "confirmed", False)]
    assert next(e for e in t.events("setting_change") if e["result"] == "confirmed")["reported"] == 260


async def test_a_leak_trip_of_the_simulated_meter_is_a_trip_event_and_the_last_trip(
        broker: Broker, run: Callable[..., Tuimeter]) -> None:
    t = run("--mqtt", broker.url, "--node-id", "t1", "--demo-faults", "leak_at=5")  # 10 mA over the threshold

    async def body(client: aiomqtt.Client, w: Watcher) -> None:
        await w.until(lambda: "tuimeter/t1/last_trip" in w.latest and w.latest.get("tuimeter/t1/relay") == "OFF")
        last = json.loads(w.latest["tuimeter/t1/last_trip"])
        assert last["reasons"] == ["leakagecurr_alarm"]
        (logged,) = t.events("trip")
        assert logged["reasons"] == ["leakagecurr_alarm"] and datetime.fromisoformat(last["ts"]) == \
            datetime.fromisoformat(logged["ts"])
        out = t.output()
        if out.index("mqtt up: connected") < out.index("the meter tripped"):  # (a trip before it is no event)
            await w.until(lambda: "tuimeter/t1/trip" in w.latest)
            assert json.loads(w.latest["tuimeter/t1/trip"]) == {
                "event_type": "leakagecurr_alarm", "fault": "leakagecurr_alarm", "reasons": ["leakagecurr_alarm"],
                "ts": last["ts"]}

    await watching(broker.port, body)
    assert t.stop() == 0


# ---- the bridge in this process, on the simulated meter -----------------------------------------

@contextlib.asynccontextmanager
async def bridged(port: str, broker: Broker, **bridge: Any) -> AsyncIterator[tuple[HostSession, list[Event]]]:
    """A session on the simulated meter with its MQTT bridge (node `in1`), as the runner starts them."""
    session = HostSession(SessionOptions(port=port), load_profile("earu-2p63a"), HostConfig())
    events: list[Event] = []
    session.bus.add_listener(events.append)
    mqtt = MqttBridge(session, MqttSettings.parse(broker.url, node_id="in1"), read_only=False, **bridge)
    await session.start()
    mqtt.start()
    try:
        await session.wait_online(TIMEOUT)
        yield session, events
    finally:
        await mqtt.close()
        await session.close()


def drop_writes(meter: SimulatedMeter, dpid: int) -> None:
    """The meter takes every frame but the host's writes to `dpid`: they go unanswered."""
    parser, take = StreamParser(), meter.receive

    def receive(data: bytes, now: float) -> None:
        for item in parser.feed(data, now):
            if isinstance(item, Frame) and not (item.command == Command.DP_COMMAND and any(
                    dp.id == dpid for dp in decode_datapoints(item.payload)[0])):
                take(item.raw, now)

    meter.receive = receive  # type: ignore[method-assign]


def setting_results(events: list[Event]) -> list[tuple[str, str, CommandResult]]:
    return [(e.setting.name, e.source.value, e.result) for e in events
            if isinstance(e, CommandFinished) and e.setting is not None]


async def test_a_setting_the_meter_does_not_confirm_is_unknown_never_the_value_asked_for(
        server: PtyMeterServer, broker: Broker) -> None:
    drop_writes(server.meter, 102)
    async with bridged(server.port, broker) as (session, events):
        async def body(client: aiomqtt.Client, w: Watcher) -> None:
            await w.until(lambda: settings(w, "in1").get("under_voltage_threshold") == 170)
            await client.publish(setting_topic("under_voltage_threshold", "in1"), "160", qos=1)
            await w.until(lambda: setting_results(events))
            assert setting_results(events) == [("under_voltage_threshold", "mqtt", CommandResult.UNCONFIRMED)]
            await w.until(lambda: settings(w, "in1")["under_voltage_threshold"] is None)  # unknown, not 170
            assert not [p for topic, p in w.arrivals if topic == "tuimeter/in1/settings"
                        and json.loads(p)["under_voltage_threshold"] == 160]  # never what was asked
            await session.query()  # the meter's next report makes it known again: its own value
            await w.until(lambda: settings(w, "in1")["under_voltage_threshold"] == 170)

        await watching(broker.port, body)
    assert server.meter.values[102] == 170


async def test_with_allow_weakening_a_change_that_weakens_protection_is_written(
        server: PtyMeterServer, broker: Broker) -> None:
    async with bridged(server.port, broker, allow_weakening=True) as (_session, events):
        async def body(client: aiomqtt.Client, w: Watcher) -> None:
            await w.until(lambda: settings(w, "in1").get("leakage_threshold") == 50)
            await client.publish(setting_topic("leakage_threshold", "in1"), "80", qos=1)
            await w.until(lambda: settings(w, "in1")["leakage_threshold"] == 80)

        await watching(broker.port, body)
    assert server.meter.values[104] == 80
    (change,) = [e for e in events if isinstance(e, CommandFinished) and e.setting is not None]
    assert change.setting is not None and change.setting.weakening and change.result is CommandResult.CONFIRMED


async def test_a_trip_is_one_event_per_reason_and_a_retained_last_trip(server: PtyMeterServer, broker: Broker) -> None:
    async with bridged(server.port, broker) as (session, _events):
        ts = datetime.fromisoformat("2026-12-01T23:30:00.125+01:00")

        async def body(client: aiomqtt.Client, w: Watcher) -> None:
            await w.until(lambda: config_topic("event", "trip", "in1") in w.latest
                          and w.latest.get("tuimeter/in1/meter") == "online")
            session.bus.publish([Tripped(ts, ("leakagecurr_alarm", "fault_bit_20"))])
            await w.until(lambda: w.counts.get("tuimeter/in1/trip", 0) == 2 and "tuimeter/in1/last_trip" in w.latest)
            trips = [json.loads(p) for topic, p in w.arrivals if topic == "tuimeter/in1/trip"]
            assert [(e["event_type"], e["fault"]) for e in trips] == [("leakagecurr_alarm", "leakagecurr_alarm"),
                                                                     ("other", "fault_bit_20")]
            assert all(e["reasons"] == ["leakagecurr_alarm", "fault_bit_20"]
                       and e["ts"] == "2026-12-01T23:30:00.125+01:00" for e in trips)
            assert json.loads(w.latest["tuimeter/in1/last_trip"]) == {
                "ts": "2026-12-01T23:30:00.125+01:00", "reasons": ["leakagecurr_alarm", "fault_bit_20"]}

        await watching(broker.port, body)
        # a new subscriber gets the last trip, and no trip event: that would be a new trip to it
        async with aiomqtt.Client("127.0.0.1", broker.port) as c:
            await c.subscribe("tuimeter/in1/trip")
            await c.subscribe("tuimeter/in1/last_trip")
            async with asyncio.timeout(TIMEOUT):
                first = await anext(aiter(c.messages))
            assert str(first.topic) == "tuimeter/in1/last_trip" and first.retain

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


def infos(profile: str, product_id: str) -> list[SettingInfo]:
    p = load_profile(profile)
    return [SettingInfo.of(SettingState(s, None, s.range_for(product_id))) for s in p.settings
            if s.available(product_id, False)]


def test_alarm_records_are_a_threshold_number_and_a_trip_or_alarm_select_on_the_one_setting_topic() -> None:
    t = Topics("tuimeter", "n")
    msgs = dict(settings_discovery(t, Identity("wcihaluccfsoayqa"), infos("tompd-63", "wcihaluccfsoayqa"), True))
    threshold = json.loads(msgs[t.config("number", "alarm_set_2_over_voltage_threshold")])
    assert (threshold["min"], threshold["max"], threshold["unit_of_measurement"], threshold["device_class"]) == \
        (230, 300, "V", "voltage")
    action = json.loads(msgs[t.config("select", "alarm_set_2_over_voltage_action")])
    assert action["options"] == ["trip", "alarm only"]
    assert threshold["command_topic"] == action["command_topic"] == "tuimeter/n/setting/alarm_set_2.over_voltage/set"
    assert threshold["value_template"] == \
        '{% set r = value_json["alarm_set_2.over_voltage"] %}{{ \'None\' if r is none else r.threshold }}'
    assert action["command_template"] == "{{ 'trip' if value == 'trip' else 'alarm' }}"  # what the setting takes
    # short circuit has one threshold (0-0): Home Assistant's number needs max > min, so it is only shown
    assert msgs[t.config("number", "alarm_set_1_short_circuit_threshold")] == ""
    shown = json.loads(msgs[t.config("sensor", "alarm_set_1_short_circuit_threshold")])
    assert shown["entity_category"] == "diagnostic"
    assert json.loads(msgs[t.config("select", "alarm_set_1_short_circuit_action")])["command_topic"]
    seconds = json.loads(msgs[t.config("number", "protection_time")])
    assert (seconds["unit_of_measurement"], seconds["device_class"]) == ("s", "duration")

    read_only = dict(settings_discovery(t, Identity("wcihaluccfsoayqa"), infos("tompd-63", "wcihaluccfsoayqa"), False))
    assert set(read_only) >= set(msgs)  # every writable entity's topic is there: given "" to remove it
    assert not [topic for topic, p in read_only.items() if p and "command_topic" in json.loads(p)]
    assert read_only[t.config("select", "alarm_set_2_over_voltage_action")] == ""
    assert json.loads(read_only[t.config("sensor", "alarm_set_2_over_voltage_action")])["availability"][-1] == {
        "topic": "tuimeter/n/settings",
        "value_template": '{{ \'online\' if value_json["alarm_set_2.over_voltage"] is not none else \'offline\' }}'}


def test_every_shipped_profile_gives_unique_ids_and_the_product_s_own_range() -> None:
    t = Topics("tuimeter", "n")
    for name in shipped_profiles():
        p = load_profile(name)
        for pid in (*p.product_ids, None):
            bits = p.for_role("faults")
            msgs = [*discovery_messages(t, Identity(pid), True),
                    *settings_discovery(t, Identity(pid), infos(name, pid or ""), True),
                    *trip_discovery(t, Identity(pid), bits.bits if bits else ())]
            configs = [json.loads(payload) for _, payload in msgs if payload]
            ids = [(topic.split("/")[1], c["unique_id"]) for (topic, _), c in
                   zip([m for m in msgs if m[1]], configs, strict=True)]
            assert len(ids) == len(set(ids)), (name, pid)
    ems = dict(settings_discovery(t, Identity("kzy0cr7cs3nkpumw"), infos("earu-2p63a", "kzy0cr7cs3nkpumw"), True))
    assert json.loads(ems[t.config("number", "under_voltage_threshold")])["min"] == 90  # EMS-63A: 90-210 V
    assert ems[t.config("button", "reset_total_energy")]


def test_the_settings_state_is_what_the_meter_reported() -> None:
    p = load_profile("tompd-63")
    by_name = {s.name: s for s in p.settings}
    states = [SettingState(by_name["protection_time"], 5, None), SettingState(by_name["recovery_time"], None, None),
              SettingState(by_name["alarm_set_2.over_voltage"], AlarmValue(True, 245), None),
              SettingState(by_name["clear_energy"], False, None),
              SettingState(by_name["switch_prepayment"], True, None)]
    assert json.loads(settings_payload(states)) == {
        "protection_time": 5, "recovery_time": None, "alarm_set_2.over_voltage": {"trips": True, "threshold": 245},
        "switch_prepayment": True}  # a button has no state


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


async def test_mqtt_allow_weakening_given_at_start_lets_a_weakening_change_through(
        broker: Broker, run: Callable[..., Tuimeter]) -> None:
    t = run("--mqtt", broker.url, "--node-id", "t1", "--mqtt-allow-weakening")

    async def body(client: aiomqtt.Client, w: Watcher) -> None:
        await w.until(lambda: settings(w).get("leakage_threshold") == 50 and w.latest.get("tuimeter/t1/meter")
                      == "online")
        await client.publish(setting_topic("leakage_threshold"), "40", qos=1)
        await w.until(lambda: settings(w)["leakage_threshold"] == 40)

    await watching(broker.port, body)
    assert t.stop() == 0
    (change,) = t.events("setting_change")
    assert (change["name"], change["new"], change["result"], change["weakening"]) == \
        ("leakage_threshold", 40, "confirmed", True)
