"""tuimeter's MQTT bridge against a real Home Assistant Core and a real Mosquitto, as a user sets them up.

Home Assistant (tests/home_assistant.py) is onboarded through its API and gets the MQTT integration
through its config flow; `tuimeter --demo --headless --mqtt …` runs as a user runs it; everything is
checked through HA's own REST and websocket API, and HA's log must hold no warning about our payloads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
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
from tuimeter.bridge.homeassistant import Identity, Topics, discovery_messages

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


def entity_ids(ha: HomeAssistant, node: str) -> dict[str, str]:
    """key → entity id of a node's entities, once HA has all eight in its registry."""
    prefix = f"tuimeter_{node}_"
    wait(lambda: len(ha.entities(prefix)) == len(ENTITIES), what=f"{len(ENTITIES)} entities {prefix}*",
               show=lambda: f"{sorted(ha.entities(prefix))}\n{ha.tail()}")
    return {uid.removeprefix(prefix): e["entity_id"] for uid, e in ha.entities(prefix).items()}


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
    assert all(e["device_id"] == device["id"] and e["entity_category"] is None for e in registry.values())
    no_problems(ha)  # HA's own checks of the configs (units for the device class and more) said nothing

    # every entity as a user needs it
    wait(lambda: all(ha.state(e) not in GONE for e in ids.values()), what="every entity with a state",
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
