"""tuimeter's MQTT bridge against a real Home Assistant Core and a real Mosquitto, as a user sets them up.

Home Assistant (tests/home_assistant.py) is onboarded through its API and gets the MQTT integration
through its config flow; `tuimeter --demo --headless --mqtt …` runs as a user runs it; everything is
checked through HA's own REST and websocket API, and HA's log must hold no warning about our payloads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.broker import Broker
from tests.headless_process import Tuimeter
from tests.home_assistant import HomeAssistant
from tests.waiting import until_sync
from tuimeter.bridge.homeassistant import Identity, Topics, discovery_messages, last_trip_payload, trip_events
from tuimeter.core.events import Tripped

PROFILES = Path(__file__).parent.parent / "tuimeter" / "profiles"
GONE = ("unavailable", "unknown")

# What a user of HA must get for each entity: component, device class, unit, state class
ENTITIES: dict[str, tuple[str, str | None, str | None, str | None]] = {
    "voltage": ("sensor", "voltage", "V", "measurement"),
    "current": ("sensor", "current", "A", "measurement"),
    "power": ("sensor", "power", "W", "measurement"),
    "energy": ("sensor", "energy", "kWh", "total_increasing"),
    "leakage": ("sensor", "current", "mA", "measurement"),
    "relay": ("switch", None, None, None),
    "faults": ("sensor", None, None, None),
    "fault": ("binary_sensor", "problem", None, None),
}
# The settings' entities of the demo meter (EARU, 10-byte), and the trip's: component, entity category
SETTINGS: dict[str, tuple[str, str | None]] = {
    "over_voltage_threshold": ("number", "config"),
    "under_voltage_threshold": ("number", "config"),
    "over_current_threshold": ("number", "config"),
    "leakage_threshold": ("number", "config"),
    "charge_energy": ("number", "config"),
    "switch_prepayment": ("switch", "config"),
    "alarm_mute": ("switch", "config"),
    "clear_energy": ("button", "config"),
    "trip": ("event", None),
    "last_trip": ("sensor", None),
}
# and of its 8-byte relative (TOMPD-63): alarm records are a threshold number and a trip / alarm-only select
ALARMS: dict[str, tuple[str, str | None]] = {
    "alarm_set_2_over_voltage_threshold": ("number", "config"),
    "alarm_set_2_over_voltage_action": ("select", "config"),
    "alarm_set_1_overload_threshold": ("number", "config"),
    "alarm_set_1_short_circuit_threshold": ("sensor", "diagnostic"),  # one possible value (0-0): shown only
    "alarm_set_1_short_circuit_action": ("select", "config"),
    "protection_time": ("number", "config"),
}
LOG_FIELDS = {"voltage": "voltage_v", "current": "current_a", "power": "power_w", "energy": "energy_kwh",
              "leakage": "leakage_ma"}


def wait(pred: Callable[[], object], what: str, show: Callable[[], object] | None = None) -> None:
    """until_sync, polling HA's API a few times a second rather than twenty."""
    until_sync(pred, what=what, show=show, interval=0.2)


@dataclass
class Home:
    ha: HomeAssistant
    broker: Broker


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """One Home Assistant for the module (its start-up is the slow part), with the MQTT integration."""
    ha = HomeAssistant(tmp_path_factory.mktemp("home-assistant"))
    broker = Broker(tmp_path_factory.mktemp("broker"))
    broker.start()
    try:
        ha.start()
        ha.onboard()
        ha.add_mqtt(broker.port)
        yield Home(ha, broker)
    finally:
        ha.stop()
        broker.stop()


def entity_ids(ha: HomeAssistant, node: str, keys: Iterable[str] = (*ENTITIES, *SETTINGS)) -> dict[str, str]:
    """key → entity id of a node's entities, once HA has those of `keys` in its registry."""
    prefix = f"tuimeter_{node}_"
    wanted = set(keys)

    def known() -> dict[str, str]:
        return {uid.removeprefix(prefix): e["entity_id"] for uid, e in ha.entities(prefix).items()}

    wait(lambda: wanted <= set(known()), what=f"{len(wanted)} entities {prefix}*",
         show=lambda: f"missing {sorted(wanted - set(known()))}\n{ha.tail()}")
    return known()


def no_problems(ha: HomeAssistant) -> None:
    problems = ha.problems()
    assert not problems, "Home Assistant warned:\n" + "\n".join(problems)


def numbers_match(states: dict[str, str], reading: dict[str, Any]) -> bool:
    try:
        return all(float(states[key]) == reading[field] for key, field in LOG_FIELDS.items())
    except (ValueError, TypeError):
        return False


def test_home_assistant_takes_the_meter_as_announced_and_switches_it(
        home: Home, run: Callable[..., Tuimeter]) -> None:
    ha = home.ha
    t = run("--mqtt", home.broker.url, "--node-id", "ha1", name="ha1")
    ids = entity_ids(ha, "ha1")

    # the device, from the meter's own identity
    device = ha.device("tuimeter_ha1")
    assert device is not None
    assert (device["model"], device["serial_number"], device["sw_version"]) == \
        ("r9kg2g1uhhyicycb", "FSE-F723C558128885", "1.0.0")
    registry = ha.entities("tuimeter_ha1_")
    assert all(e["device_id"] == device["id"] for e in registry.values())
    assert all(registry[f"tuimeter_ha1_{key}"]["entity_category"] is None for key in ENTITIES)
    no_problems(ha)  # HA's own checks of the configs (units for the device class and more) said nothing

    # every entity as a user needs it
    wait(lambda: all(ha.state(ids[key]) not in GONE for key in ENTITIES), what="every entity with a state",
               show=lambda: str({k: ha.state(e) for k, e in ids.items()}))
    states = ha.states()
    for key, (component, device_class, unit, state_class) in ENTITIES.items():
        attrs = states[ids[key]]["attributes"]
        assert ids[key].startswith(f"{component}."), ids[key]
        assert (attrs.get("device_class"), attrs.get("unit_of_measurement"), attrs.get("state_class")) == \
            (device_class, unit, state_class), key

    # HA's states are the readings tuimeter logged
    def current() -> dict[str, str]:
        all_states = ha.states()
        return {key: str(all_states[ids[key]]["state"]) for key in ENTITIES}

    wait(lambda: any(numbers_match(current(), r) for r in t.readings()),
               what="HA's five sensors equal to one logged reading", show=lambda: f"{current()}\n{t.readings()[-3:]}")
    assert (ha.state(ids["relay"]), ha.state(ids["faults"]), ha.state(ids["fault"])) == ("on", "none", "off")

    # the energy dashboard takes the energy sensor (only the statistics of its first 5-minute run are missing)
    grid = {"type": "grid", "flow_from": [{"stat_energy_from": ids["energy"], "stat_cost": None,
                                           "entity_energy_price": None, "number_energy_price": None}],
            "flow_to": [], "cost_adjustment_day": 0}
    ha.ws("energy/save_prefs", energy_sources=[grid])
    issues = [i for source in ha.ws("energy/validate")["energy_sources"] for i in source
              if i["type"] != "statistics_not_defined"]
    assert issues == []
    statistics = ha.ws("recorder/validate_statistics")
    assert not {eid: v for eid, v in statistics.items() if eid in ids.values()}

    # the relay from HA: switched by the meter, and HA follows the meter's confirmation
    ha.service("switch", "turn_off", entity_id=ids["relay"])
    wait(lambda: ha.state(ids["relay"]) == "off", what="HA's relay off")
    t.wait_output("mqtt relay command: relay off (confirmed by the meter)")
    wait(lambda: any(r["relay"] is False for r in t.readings()), what="the meter's reading with the relay off")
    ha.service("switch", "turn_on", entity_id=ids["relay"])
    wait(lambda: ha.state(ids["relay"]) == "on", what="HA's relay on")
    assert [(e["value"], e["source"], e["result"]) for e in t.events("command")] == \
        [(False, "mqtt", "confirmed"), (True, "mqtt", "confirmed")]

    # a clean stop: every entity unavailable
    assert t.stop() == 0
    wait(lambda: all(ha.state(e) == "unavailable" for e in ids.values()), what="every entity unavailable",
               show=lambda: str({k: ha.state(e) for k, e in ids.items()}))
    no_problems(ha)


async def test_settings_are_numbers_switches_buttons_and_selects_and_a_trip_is_an_event(
        home: Home, run: Callable[..., Tuimeter]) -> None:
    ha = home.ha
    t = run("--mqtt", home.broker.url, "--node-id", "ha5", name="ha5")
    relative = run("--mqtt", home.broker.url, "--node-id", "ha6", "--demo-variant", "8byte", name="ha6")
    ids = entity_ids(ha, "ha5")
    registry = ha.entities("tuimeter_ha5_")
    for key, (component, category) in SETTINGS.items():
        assert ids[key].startswith(f"{component}.") and registry[f"tuimeter_ha5_{key}"]["entity_category"] == category
    threshold = ids["over_voltage_threshold"]
    wait(lambda: ha.state(threshold) not in GONE and ha.state(ids["alarm_mute"]) not in GONE,
         what="the settings with the meter's values")
    states = ha.states()
    attrs = states[threshold]["attributes"]
    assert (attrs["min"], attrs["max"], attrs["step"], attrs["mode"], attrs["unit_of_measurement"],
            attrs["device_class"]) == (250, 300, 1, "box", "V", "voltage")
    assert float(states[threshold]["state"]) == 275  # as the simulated meter reports it
    assert states[ids["leakage_threshold"]]["attributes"]["unit_of_measurement"] == "mA"
    assert (ha.state(ids["alarm_mute"]), ha.state(ids["switch_prepayment"])) == ("off", "off")
    assert ha.state(ids["trip"]) == "unknown" and ha.state(ids["last_trip"]) == "unknown"  # no trip yet
    assert "leakagecurr_alarm" in states[ids["trip"]]["attributes"]["event_types"]
    no_problems(ha)

    # number.set_value: the meter writes it, and HA shows what the meter then reports
    ha.service("number", "set_value", entity_id=threshold, value=260)
    wait(lambda: float(ha.state(threshold) or 0) == 260, what="HA's threshold at 260")
    t.wait_output("mqtt setting command: over_voltage_threshold 260 V (confirmed by the meter)")
    ha.service("switch", "turn_on", entity_id=ids["alarm_mute"])
    wait(lambda: ha.state(ids["alarm_mute"]) == "on", what="HA's alarm mute on")
    ha.service("button", "press", entity_id=ids["clear_energy"])
    t.wait_output("mqtt setting command: clear_energy done (confirmed by the meter)")
    wait(lambda: ha.state(ids["energy"]) == "0.0", what="HA's energy cleared", show=lambda: ha.state(ids["energy"]))

    # a trip as tuimeter publishes it: an event of that fault, and the time in Last trip
    tripped = Tripped(datetime(2026, 12, 1, 22, 30, 0, 125000, tzinfo=UTC), ("leakagecurr_alarm",))
    async with aiomqtt.Client("127.0.0.1", home.broker.port) as c:
        for payload in trip_events(tripped, ["leakagecurr_alarm"]):
            await c.publish("tuimeter/ha5/trip", payload, qos=1)
        await c.publish("tuimeter/ha5/last_trip", last_trip_payload(tripped), qos=1, retain=True)
    wait(lambda: ha.state(ids["trip"]) not in GONE, what="the trip event in HA")
    event = ha.states()[ids["trip"]]["attributes"]
    assert (event["event_type"], event["reasons"]) == ("leakagecurr_alarm", ["leakagecurr_alarm"])
    wait(lambda: ha.state(ids["last_trip"]) not in GONE, what="HA's last trip")
    # (a timestamp sensor shows whole seconds)
    assert datetime.fromisoformat(str(ha.state(ids["last_trip"]))) == tripped.ts.replace(microsecond=0)
    assert ha.states()[ids["last_trip"]]["attributes"]["reasons"] == ["leakagecurr_alarm"]

    # the 8-byte relative's alarm records
    alarm = entity_ids(ha, "ha6", ALARMS)
    registry = ha.entities("tuimeter_ha6_")
    for key, (component, category) in ALARMS.items():
        assert alarm[key].startswith(f"{component}.") and registry[f"tuimeter_ha6_{key}"]["entity_category"] == category
    action, limit = alarm["alarm_set_2_over_voltage_action"], alarm["alarm_set_2_over_voltage_threshold"]
    wait(lambda: ha.state(action) == "trip" and float(ha.state(limit) or 0) == 245, what="trip at 245 V")
    assert ha.states()[action]["attributes"]["options"] == ["trip", "alarm only"]
    ha.service("select", "select_option", entity_id=action, option="alarm only")
    wait(lambda: ha.state(action) == "alarm only", what="HA's over-voltage alarm only")
    relative.wait_output("alarm_set_2.over_voltage alarm only at 245 V (confirmed by the meter)")
    ha.service("number", "set_value", entity_id=limit, value=250)
    wait(lambda: float(ha.state(limit) or 0) == 250, what="HA's over-voltage threshold at 250")
    relative.wait_output("alarm_set_2.over_voltage alarm only at 250 V (confirmed by the meter)")

    assert t.stop() == 0 and relative.stop() == 0
    changes = [(e["name"], e["source"], e["result"], e["reported"]) for e in t.events("setting_change")]
    assert changes == [("over_voltage_threshold", "mqtt", "confirmed", 260), ("alarm_mute", "mqtt", "confirmed", True),
                       ("clear_energy", "mqtt", "confirmed", True)]
    assert [(e["name"], e["reported"]) for e in relative.events("setting_change")] == [
        ("alarm_set_2.over_voltage", {"trips": False, "threshold": 245}),
        ("alarm_set_2.over_voltage", {"trips": False, "threshold": 250})]
    wait(lambda: all(ha.state(e) == "unavailable" for e in [*ids.values(), *alarm.values()]),
         what="every entity unavailable", show=lambda: str({k: ha.state(e) for k, e in ids.items()}))
    no_problems(ha)


def test_an_unconfirmed_command_leaves_home_assistant_at_unknown_and_a_kill_makes_it_unavailable(
        home: Home, run: Callable[..., Tuimeter]) -> None:
    ha = home.ha
    t = run("--mqtt", home.broker.url, "--node-id", "ha2", "--demo-faults", "ignore_relay", name="ha2")
    ids = entity_ids(ha, "ha2")
    wait(lambda: ha.state(ids["relay"]) == "on", what="HA's relay on")
    since = datetime.now(UTC).isoformat()
    ha.service("switch", "turn_off", entity_id=ids["relay"])
    wait(lambda: ha.state(ids["relay"]) == "unknown", what="HA's relay unknown")
    t.wait_output("did not confirm relay off")
    wait(lambda: "unknown" in ha.history(ids["relay"], since), what="the unknown state in HA's history")
    assert "off" not in ha.history(ids["relay"], since)  # never the commanded state

    t.proc.kill()  # no clean stop: the broker's Last Will says offline
    t.proc.wait()
    wait(lambda: all(ha.state(e) == "unavailable" for e in ids.values()), what="every entity unavailable",
               show=lambda: str({k: ha.state(e) for k, e in ids.items()}))
    no_problems(ha)


def test_faults_not_decoded_are_not_shown_as_none(home: Home, run: Callable[..., Tuimeter], tmp_path: Path) -> None:
    """A user's profile that does not decode the fault bitmap: the faults are unknown, never "none"."""
    profile = tmp_path / "no-faults.toml"
    text = (PROFILES / "earu-2p63a.toml").read_text()
    profile.write_text(re.sub(r'(name = "fault"\ntype = "bitmap"\n)role = "faults"\n', r"\1", text))
    assert profile.read_text() != text
    ha = home.ha
    t = run("--mqtt", home.broker.url, "--node-id", "ha3", "--profile", str(profile), name="ha3")
    ids = entity_ids(ha, "ha3")
    wait(lambda: ha.state(ids["voltage"]) not in GONE, what="a voltage in HA")
    assert all(r["faults"] is None for r in t.readings())
    assert ha.state(ids["fault"]) == "unknown"
    assert ha.state(ids["faults"]) == "unavailable"  # a text sensor cannot be unknown (docs/home-automation.md)
    assert t.stop() == 0
    no_problems(ha)


async def test_entities_of_tuimeter_0_1_become_the_prefixed_ones_and_keep_their_entity_ids(
        home: Home, run: Callable[..., Tuimeter]) -> None:
    ha = home.ha
    node = "ha4"
    async with aiomqtt.Client("127.0.0.1", home.broker.port) as c:  # what tuimeter 0.1 left on the broker
        for topic, payload in discovery_messages(Topics("tuimeter", node), Identity("r9kg2g1uhhyicycb"), True):
            old = json.loads(payload) if payload else {}
            component, _, key = topic.split("/")[1:4]
            if old:
                old["unique_id"] = f"{node}_{key}"
                old["origin"]["sw_version"] = "0.1.0"
            await c.publish(f"homeassistant/{component}/{node}_{key}/config", json.dumps(old) if old else "",
                            qos=1, retain=True)

    def legacy() -> dict[str, str]:
        return {e["unique_id"]: e["entity_id"] for e in ha.ws("config/entity_registry/list")
                if str(e["unique_id"]).startswith(f"{node}_")}

    wait(lambda: len(legacy()) == len(ENTITIES), what="the 0.1 entities in HA", show=lambda: str(legacy()))
    before = legacy()

    t = run("--mqtt", home.broker.url, "--node-id", node, name=node)
    ids = entity_ids(ha, node)
    wait(lambda: not [e for e in ha.ws("config/entity_registry/list") if e["unique_id"] in before],
               what="the 0.1 entities gone")
    # the same entity ids as before: history, dashboards and automations carry on
    assert {key: ids[key] for key in ("voltage", "energy", "relay")} == \
        {key: before[f"{node}_{key}"] for key in ("voltage", "energy", "relay")}
    assert t.stop() == 0
    no_problems(ha)
