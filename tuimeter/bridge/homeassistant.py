"""Topics and Home Assistant MQTT discovery payloads (pure functions: no network).

One node (`<prefix>/<node_id>/…`) per meter:
  availability  online/offline, retained; the broker publishes "offline" (Last Will) if tuimeter vanishes
  meter         online/offline, retained: the meter's link (heartbeats answered)
  state         the latest reading as JSON (the headless JSON-lines record), retained
  relay         ON/OFF as the meter last confirmed it, None while unknown, retained
  relay/set     ON/OFF commands in (a retained command is ignored: it would replay on every reconnect)
Discovery: one retained config per entity at `<discovery_prefix>/<component>/<node_id>_<key>/config`.
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

    def config(self, component: str, key: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node_id}_{key}/config"


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


def discovery_messages(t: Topics, ident: Identity, relay_writable: bool) -> list[tuple[str, str]]:
    """(topic, JSON payload) for every entity; all retained. A read-only relay is a binary sensor."""
    common: dict[str, Any] = {
        "device": device_block(t, ident),
        "origin": {"name": "tuimeter", "sw_version": __version__},
        "availability": [{"topic": t.availability}, {"topic": t.meter}],
        "availability_mode": "all",
    }
    out: list[tuple[str, dict[str, Any]]] = []
    for key, name, device_class, unit, state_class, field, precision in SENSORS:
        out.append((t.config("sensor", key), {
            "name": name, "unique_id": f"{t.node_id}_{key}", "state_topic": t.state,
            "value_template": f"{{{{ value_json.{field} }}}}", "device_class": device_class,
            "unit_of_measurement": unit, "state_class": state_class, "suggested_display_precision": precision,
        }))
    relay = {"name": "Relay", "unique_id": f"{t.node_id}_relay", "state_topic": t.relay,
             "payload_on": RELAY_ON, "payload_off": RELAY_OFF}
    if relay_writable:
        out.append((t.config("switch", "relay"), {**relay, "command_topic": t.relay_set,
                                                  "state_on": RELAY_ON, "state_off": RELAY_OFF}))
        out.append((t.config("binary_sensor", "relay"), {}))  # a read-only run before left one: remove it
    else:
        out.append((t.config("binary_sensor", "relay"), {**relay, "device_class": "power"}))
        out.append((t.config("switch", "relay"), {}))
    out.append((t.config("sensor", "faults"), {
        "name": "Faults", "unique_id": f"{t.node_id}_faults", "state_topic": t.state,
        "value_template": "{{ value_json.faults | join(', ') if value_json.faults else 'none' }}",
        "icon": "mdi:alert-circle-outline"}))
    out.append((t.config("binary_sensor", "fault"), {
        "name": "Fault", "unique_id": f"{t.node_id}_fault", "state_topic": t.state, "device_class": "problem",
        "value_template": "{{ 'ON' if value_json.faults else 'OFF' }}"}))
    return [(topic, json.dumps({**common, **payload}) if payload else "") for topic, payload in out]
