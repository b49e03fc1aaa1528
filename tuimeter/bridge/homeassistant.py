"""Topics and Home Assistant MQTT discovery payloads (pure functions: no network).

One node (`<prefix>/<node_id>/…`) per meter:
  availability  online/offline, retained; the broker publishes "offline" (Last Will) if tuimeter vanishes
  meter         online/offline, retained: the meter's link (heartbeats answered)
  state         the latest reading as JSON (the headless JSON-lines record), retained
  relay         ON/OFF as the meter last confirmed it, None while unknown, retained
  relay/set     ON/OFF commands in (a retained command is ignored: it would replay on every reconnect)
  settings      every setting the meter has, as it last reported it (JSON; null while unknown), retained
  setting/<name>/set  a setting's commands in, the text `--set` takes (retained ones ignored, as for the relay)
  trip          {"event_type": <fault>, …} per reason of a trip, not retained (an event, not a state)
  last_trip     {"ts": …, "reasons": […]} of the last trip this host saw, retained
Discovery: one retained config per entity at `<discovery_prefix>/<component>/tuimeter_<node_id>/<key>/config`,
unique id `tuimeter_<node_id>_<key>`. Before 0.2 they were `<component>/<node_id>_<key>/config` and
`<node_id>_<key>`; `legacy_configs()` names those so the bridge can take them back (docs/home-automation.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuimeter import __version__
from tuimeter.core.events import Tripped
from tuimeter.core.settings import Range, SettingKind, SettingState
from tuimeter.sinks import json_value

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
    def settings(self) -> str:
        return f"{self.base}/settings"

    def setting_set(self, name: str) -> str:
        return f"{self.base}/setting/{topic_level(name)}/set"

    @property
    def setting_set_filter(self) -> str:
        return f"{self.base}/setting/+/set"

    def setting_level(self, topic: str) -> str | None:
        """The `<name>` of a `setting/<name>/set` topic of this node, or None for any other topic."""
        head, tail = f"{self.base}/setting/", "/set"
        if not (topic.startswith(head) and topic.endswith(tail)):
            return None
        level = topic[len(head):-len(tail)]
        return level if level and "/" not in level else None

    @property
    def trip(self) -> str:
        return f"{self.base}/trip"

    @property
    def last_trip(self) -> str:
        return f"{self.base}/last_trip"

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


def _common(t: Topics, ident: Identity) -> dict[str, Any]:
    return {
        "device": device_block(t, ident),
        "origin": {"name": ORIGIN, "sw_version": __version__},
        "availability": _availability(t),
        "availability_mode": "all",
        "qos": 1,  # for the subscriptions and for commands: a command must not be lost on the way
    }


def _availability(t: Topics) -> list[dict[str, str]]:
    return [{"topic": t.availability}, {"topic": t.meter}]


def _payloads(common: dict[str, Any], out: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    """An empty payload removes the entity (Home Assistant's way): it is not given the common keys."""
    return [(topic, json.dumps({**common, **payload}) if payload else "") for topic, payload in out]


def discovery_messages(t: Topics, ident: Identity, relay_writable: bool) -> list[tuple[str, str]]:
    """(topic, JSON payload) for every reading entity and the relay; all retained. A read-only relay is a
    binary sensor. The settings and trips have their own (settings_discovery, trip_discovery)."""
    availability = _availability(t)
    common = _common(t, ident)
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
    return _payloads(common, out)


# ---- settings ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SettingInfo:
    """What discovery needs of one setting: its name as `--query` shows it, kind, unit, this product's range."""

    name: str
    kind: SettingKind
    unit: str = ""
    range: Range | None = None
    options: tuple[str, ...] = ()

    @classmethod
    def of(cls, state: SettingState) -> SettingInfo:
        s = state.setting
        return cls(s.name, s.kind, s.unit, state.range, s.options)


# the device class Home Assistant knows for a unit (the same names for number and sensor entities)
UNIT_CLASSES = {"V": "voltage", "A": "current", "mA": "current", "W": "power", "kW": "power", "kWh": "energy",
                "Wh": "energy", "°C": "temperature", "s": "duration", "min": "duration", "h": "duration"}
ALARM_TRIP, ALARM_ONLY = "trip", "alarm only"  # the alarm record's action, as the select shows it
ACTION_COMMAND = f"{{{{ 'trip' if value == '{ALARM_TRIP}' else 'alarm' }}}}"  # the text the setting takes
PRESS = "press"  # a button's payload: what `--set NAME` writes
WIRE_RANGE = Range(0, 0xFFFF)  # an alarm threshold without a range in the profile: what the record holds


def topic_level(name: str) -> str:
    """A setting's name as one topic level: itself, but for the characters MQTT gives a meaning."""
    return re.sub(r"[/+#\x00]", "_", name)


def setting_key(name: str) -> str:
    """A setting's name as discovery's object id and unique-id suffix: `alarm_set_2.over_voltage` →
    `alarm_set_2_over_voltage` (Home Assistant takes letters, digits, - and _ only)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def title(name: str) -> str:
    """`alarm_set_2.over_voltage` → `Alarm set 2 over voltage`: the entity's name in Home Assistant."""
    return re.sub(r"[._]+", " ", name).strip().capitalize()


def _value(name: str) -> str:
    return f"value_json[{json.dumps(name)}]"


def _known_availability(t: Topics, name: str) -> list[dict[str, str]]:
    """A text sensor shows any payload, "None" too: it is unavailable instead while the setting is unknown."""
    known = f"{{{{ 'online' if {_value(name)} is not none else 'offline' }}}}"
    return [*_availability(t), {"topic": t.settings, "value_template": known}]


def _precision(step: float) -> int:
    digits = f"{step:.6f}".rstrip("0").partition(".")[2]
    return len(digits)


def _unit(unit: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if unit:
        out["unit_of_measurement"] = unit
    if unit in UNIT_CLASSES:
        out["device_class"] = UNIT_CLASSES[unit]
    return out


def settings_discovery(t: Topics, ident: Identity, settings: Sequence[SettingInfo],
                       writable: bool) -> list[tuple[str, str]]:
    """(topic, payload) for the settings' entities, all retained: `number`, `switch`, `button` and
    `select` (category config), commanding `setting/<name>/set`, with state from the `settings` topic.
    An alarm record is two: a `number` for its threshold and a `select` trip / alarm only. Read-only,
    they are sensors (category diagnostic) and the command entities are removed, as for the relay."""
    out: list[tuple[str, dict[str, Any]]] = []
    for s in settings:
        entities = _writable_setting(t, s) if writable else _read_only_setting(t, s)
        taken = {topic for topic, _ in entities}
        out += entities
        out += [(topic, {}) for topic in _setting_topics(t, s) if topic not in taken]  # the other mode's
    return _payloads(_common(t, ident), out)


def _setting_topics(t: Topics, s: SettingInfo) -> list[str]:
    """Every config topic a setting may have, in either mode."""
    key = setting_key(s.name)
    if s.kind is SettingKind.ALARM:
        return [t.config("number", f"{key}_threshold"), t.config("sensor", f"{key}_threshold"),
                t.config("select", f"{key}_action"), t.config("sensor", f"{key}_action")]
    components = {SettingKind.NUMBER: ("number", "sensor"), SettingKind.SWITCH: ("switch", "binary_sensor"),
                  SettingKind.BUTTON: ("button",), SettingKind.CHOICE: ("select", "sensor")}[s.kind]
    return [t.config(c, key) for c in components]


def _base(t: Topics, key: str, name: str) -> dict[str, Any]:
    return {"name": name, "unique_id": t.unique_id(key), "state_topic": t.settings}


def _writable_setting(t: Topics, s: SettingInfo) -> list[tuple[str, dict[str, Any]]]:
    key, name, command = setting_key(s.name), title(s.name), t.setting_set(s.name)
    v = _value(s.name)
    writes = {"command_topic": command, "entity_category": "config"}
    if s.kind is SettingKind.NUMBER:
        if not _settable_range(s.range):
            return _read_only_setting(t, s)
        return [(t.config("number", key), {**_base(t, key, name), **writes, **_number(s.range, s.unit),
                                           "value_template": f"{{{{ {v} }}}}"})]
    if s.kind is SettingKind.SWITCH:
        return [(t.config("switch", key), {**_base(t, key, name), **writes,
                                           "payload_on": RELAY_ON, "payload_off": RELAY_OFF,
                                           "state_on": RELAY_ON, "state_off": RELAY_OFF,
                                           "value_template": _on_off(v)})]
    if s.kind is SettingKind.BUTTON:
        return [(t.config("button", key), {"name": name, "unique_id": t.unique_id(key), **writes,
                                           "payload_press": PRESS})]
    if s.kind is SettingKind.CHOICE:
        return [(t.config("select", key), {**_base(t, key, name), **writes, "options": list(s.options),
                                           "value_template": f"{{{{ {v} }}}}"})]
    # an alarm record: its threshold alone (a bare number keeps the action), its action alone (trip / alarm
    # keeps the threshold), both written through the setting's one topic
    out: list[tuple[str, dict[str, Any]]] = []
    limits = s.range or WIRE_RANGE
    if _settable_range(limits):
        out.append((t.config("number", f"{key}_threshold"), {
            **_base(t, f"{key}_threshold", f"{name} threshold"), **writes, **_number(limits, s.unit),
            "value_template": _threshold(v)}))
    else:  # one possible threshold (Home Assistant's number needs max > min): shown, not set
        out += _read_only_setting(t, s)[:1]
    out.append((t.config("select", f"{key}_action"), {
        **_base(t, f"{key}_action", f"{name} action"), **writes, "options": [ALARM_TRIP, ALARM_ONLY],
        "value_template": _action(v), "command_template": ACTION_COMMAND}))
    return out


def _read_only_setting(t: Topics, s: SettingInfo) -> list[tuple[str, dict[str, Any]]]:
    key, name, v = setting_key(s.name), title(s.name), _value(s.name)
    shown = {"entity_category": "diagnostic"}
    precision = _precision(s.range.step if s.range else 1)
    if s.kind is SettingKind.NUMBER:
        return [(t.config("sensor", key), {**_base(t, key, name), **shown, **_unit(s.unit),
                                           "suggested_display_precision": precision,
                                           "value_template": f"{{{{ {v} }}}}"})]
    if s.kind is SettingKind.SWITCH:
        return [(t.config("binary_sensor", key), {**_base(t, key, name), **shown, "value_template": _on_off(v),
                                                  "payload_on": RELAY_ON, "payload_off": RELAY_OFF})]
    if s.kind is SettingKind.CHOICE:
        return [(t.config("sensor", key), {**_base(t, key, name), **shown, "value_template": f"{{{{ {v} }}}}",
                                           "availability": _known_availability(t, s.name)})]
    if s.kind is SettingKind.ALARM:
        return [(t.config("sensor", f"{key}_threshold"), {
                    **_base(t, f"{key}_threshold", f"{name} threshold"), **shown, **_unit(s.unit),
                    "suggested_display_precision": 0, "value_template": _threshold(v)}),
                (t.config("sensor", f"{key}_action"), {
                    **_base(t, f"{key}_action", f"{name} action"), **shown, "value_template": _action(v),
                    "availability": _known_availability(t, s.name)})]
    return []  # a button: nothing to show


def _settable_range(r: Range | None) -> bool:
    return r is not None and r.max > r.min


def _number(r: Range | None, unit: str) -> dict[str, Any]:
    assert r is not None
    return {"min": r.min, "max": r.max, "step": r.step, "mode": "box", **_unit(unit)}


def _on_off(v: str) -> str:
    return f"{{{{ 'None' if {v} is none else '{RELAY_ON}' if {v} else '{RELAY_OFF}' }}}}"


def _threshold(v: str) -> str:
    return f"{{% set r = {v} %}}{{{{ 'None' if r is none else r.threshold }}}}"


def _action(v: str) -> str:
    return f"{{% set r = {v} %}}{{{{ 'None' if r is none else '{ALARM_TRIP}' if r.trips else '{ALARM_ONLY}' }}}}"


def settings_payload(states: Sequence[SettingState]) -> str:
    """The `settings` topic: every setting but the buttons, as the meter last reported it (null: unknown).
    Numbers in the setting's unit, switches true/false, choices by name, alarm records {trips, threshold}."""
    return json.dumps({s.name: json_value(s.value) for s in states if s.setting.kind is not SettingKind.BUTTON},
                      separators=(",", ":"), ensure_ascii=False)


# ---- trips -------------------------------------------------------------------------------------
OTHER_FAULT = "other"  # the event type of a fault bit the profile has no name for


def trip_event_types(fault_names: Sequence[str]) -> list[str]:
    return [*dict.fromkeys(fault_names), OTHER_FAULT]


def trip_discovery(t: Topics, ident: Identity, fault_names: Sequence[str]) -> list[tuple[str, str]]:
    """An `event` entity (one event per reason of a trip, its types the profile's fault names) and a
    `Last trip` timestamp sensor with the reasons as attributes."""
    return _payloads(_common(t, ident), [
        (t.config("event", "trip"), {"name": "Trip", "unique_id": t.unique_id("trip"), "state_topic": t.trip,
                                     "event_types": trip_event_types(fault_names), "icon": "mdi:flash-alert"}),
        (t.config("sensor", "last_trip"), {"name": "Last trip", "unique_id": t.unique_id("last_trip"),
                                           "state_topic": t.last_trip, "device_class": "timestamp",
                                           "value_template": "{{ value_json.ts }}",
                                           "json_attributes_topic": t.last_trip,
                                           "json_attributes_template": "{{ {'reasons': value_json.reasons} | tojson }}",
                                           "icon": "mdi:flash-alert-outline"}),
    ])


def _ts(ev: Tripped) -> str:
    return ev.ts.isoformat(timespec="milliseconds")


def trip_events(ev: Tripped, fault_names: Sequence[str]) -> list[str]:
    """The `trip` topic's payloads for one trip: one per reason, in the order the faults were set, each
    with every reason and the time. A fault the profile has no name for is `other`."""
    known = set(fault_names)
    return [json.dumps({"event_type": reason if reason in known else OTHER_FAULT, "fault": reason,
                        "reasons": list(ev.reasons), "ts": _ts(ev)}, separators=(",", ":"))
            for reason in ev.reasons]


def last_trip_payload(ev: Tripped) -> str:
    return json.dumps({"ts": _ts(ev), "reasons": list(ev.reasons)}, separators=(",", ":"))


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
