"""Topics and Home Assistant MQTT discovery payloads (pure functions: no network).

One node (`<prefix>/<node_id>/…`) per meter:
  availability  online/offline, retained; the broker publishes "offline" (Last Will) if tuimeter vanishes
  meter         online/offline, retained: the meter's link (heartbeats answered)
  state         the latest reading as JSON (the headless JSON-lines record), retained
  relay         ON/OFF as the meter last confirmed it, None while unknown, retained
  relay/set     ON/OFF commands in (a retained command is ignored: it would replay on every reconnect)
Discovery: one retained config per entity at `<discovery_prefix>/<component>/tuimeter_<node_id>/<key>/config`,
unique id `tuimeter_<node_id>_<key>`. Before 0.2 they were `<component>/<node_id>_<key>/config` and
`<node_id>_<key>`; `legacy_configs()` names those so the bridge can take them back (docs/home-automation.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tuimeter import __version__

RELAY_ON, RELAY_OFF, RELAY_UNKNOWN = "ON", "OFF", "None"
ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    node_id: str
    discovery_prefix: str = "homeassistant"

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.node_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def meter(self) -> str:
        return f"{self.base}/meter"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def relay(self) -> str:
        return f"{self.base}/relay"

    @property
    def relay_set(self) -> str:
        return f"{self.base}/relay/set"

    @property
    def ha_status(self) -> str:
        return f"{self.discovery_prefix}/status"

    @property
    def object_prefix(self) -> str:
        """What sets this node's entities apart from any other device's in Home Assistant."""
        return f"tuimeter_{self.node_id}"

    def config(self, component: str, key: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.object_prefix}/{key}/config"

    def unique_id(self, key: str) -> str:
        return f"{self.object_prefix}_{key}"


@dataclass(frozen=True, slots=True)
class Identity:
    """What the meter told about itself; the device block is built from it."""

    product_id: str | None = None
    mcu_version: str | None = None
    breaker_id: str | None = None


# key, name, device_class, unit, state_class, record field, display precision
SENSORS = (
    ("voltage", "Voltage", "voltage", "V", "measurement", "voltage_v", 1),
    ("current", "Current", "current", "A", "measurement", "current_a", 3),
    ("power", "Power", "power", "W", "measurement", "power_w", 0),
    ("energy", "Energy", "energy", "kWh", "total_increasing", "energy_kwh", 2),
    ("leakage", "Leakage current", "current", "mA", "measurement", "leakage_ma", 0),
)


def device_block(t: Topics, ident: Identity) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [f"tuimeter_{t.node_id}"],
        "name": f"Energy meter {t.node_id}",
        "manufacturer": "Tuya MCU meter (via tuimeter)",
        "model": ident.product_id or "unknown product id",
    }
    if ident.breaker_id:
        device["serial_number"] = ident.breaker_id
    if ident.mcu_version:
        device["sw_version"] = ident.mcu_version
    return device


# Home Assistant's MQTT entities take "None" as unknown, except a text sensor, which shows any payload
FAULTS_KNOWN = "{{ 'online' if value_json.faults is not none else 'offline' }}"
FAULTS_TEXT = "{{ value_json.faults | join(', ') if value_json.faults else 'none' }}"
FAULT_ON = "{{ 'None' if value_json.faults is none else 'ON' if value_json.faults else 'OFF' }}"
ORIGIN = "tuimeter"


def discovery_messages(t: Topics, ident: Identity, relay_writable: bool) -> list[tuple[str, str]]:
    """(topic, JSON payload) for every entity; all retained. A read-only relay is a binary sensor."""
    availability = [{"topic": t.availability}, {"topic": t.meter}]
    common: dict[str, Any] = {
        "device": device_block(t, ident),
        "origin": {"name": ORIGIN, "sw_version": __version__},
        "availability": availability,
        "availability_mode": "all",
        "qos": 1,  # for the subscriptions and for commands: a relay command must not be lost on the way
    }
    out: list[tuple[str, dict[str, Any]]] = []
    for key, name, device_class, unit, state_class, field, precision in SENSORS:
        out.append((t.config("sensor", key), {
            "name": name, "unique_id": t.unique_id(key), "state_topic": t.state,
            "value_template": f"{{{{ value_json.{field} }}}}", "device_class": device_class,
            "unit_of_measurement": unit, "state_class": state_class, "suggested_display_precision": precision,
        }))
    relay = {"name": "Relay", "unique_id": t.unique_id("relay"), "state_topic": t.relay,
             "payload_on": RELAY_ON, "payload_off": RELAY_OFF}
    if relay_writable:
        out.append((t.config("switch", "relay"), {**relay, "command_topic": t.relay_set,
                                                  "state_on": RELAY_ON, "state_off": RELAY_OFF}))
        out.append((t.config("binary_sensor", "relay"), {}))  # a read-only run before left one: remove it
    else:
        out.append((t.config("binary_sensor", "relay"), {**relay, "device_class": "power"}))
        out.append((t.config("switch", "relay"), {}))
    out.append((t.config("sensor", "faults"), {
        "name": "Faults", "unique_id": t.unique_id("faults"), "state_topic": t.state,
        "value_template": FAULTS_TEXT, "icon": "mdi:alert-circle-outline",
        # unknown faults: unavailable, since this text sensor cannot say unknown
        "availability": [*availability, {"topic": t.state, "value_template": FAULTS_KNOWN}]}))
    out.append((t.config("binary_sensor", "fault"), {
        "name": "Fault", "unique_id": t.unique_id("fault"), "state_topic": t.state, "device_class": "problem",
        "value_template": FAULT_ON}))
    return [(topic, json.dumps({**common, **payload}) if payload else "") for topic, payload in out]


LEGACY_ENTITIES = (("sensor", "voltage"), ("sensor", "current"), ("sensor", "power"), ("sensor", "energy"),
                   ("sensor", "leakage"), ("sensor", "faults"), ("switch", "relay"), ("binary_sensor", "relay"),
                   ("binary_sensor", "fault"))


def legacy_configs(t: Topics) -> dict[str, str]:
    """Discovery topic → unique id, as tuimeter 0.1 published them (no tuimeter prefix)."""
    return {f"{t.discovery_prefix}/{component}/{t.node_id}_{key}/config": f"{t.node_id}_{key}"
            for component, key in LEGACY_ENTITIES}


def is_legacy_config(t: Topics, topic: str, payload: str) -> bool:
    """A retained config that tuimeter 0.1 published for this node (and no other device's)."""
    expected = legacy_configs(t).get(topic)
    if expected is None or not payload:
        return False
    try:
        config = json.loads(payload)
    except ValueError:
        return False
    return (isinstance(config, dict) and config.get("unique_id") == expected
            and isinstance(config.get("origin"), dict) and config["origin"].get("name") == ORIGIN)
