"""`--mqtt URL`: readings, the relay, the settings and trips to an MQTT broker, with Home Assistant discovery.

The bridge is one more consumer of the session's event stream, and commands from MQTT go through the
session's `set_relay()` and `write_setting()`, the same single command path as the keyboard: read-only
mode refuses them, a change that weakens protection is refused unless tuimeter was started with
--mqtt-allow-weakening, and the relay and settings topics change only when the meter itself reports
the new value.
A broker that is down or unreachable never stops the meter: the bridge retries with backoff and
says so on the event stream (headless lines, the screen's header).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from tuimeter.bridge.homeassistant import (
    OFFLINE,
    ONLINE,
    PRESS,
    RELAY_OFF,
    RELAY_ON,
    RELAY_UNKNOWN,
    Identity,
    SettingInfo,
    Topics,
    discovery_messages,
    is_legacy_config,
    last_trip_payload,
    legacy_configs,
    settings_discovery,
    settings_payload,
    topic_level,
    trip_discovery,
    trip_events,
)
from tuimeter.core.command_path import CommandRefused, WeakeningRefused
from tuimeter.core.events import (
    CommandFinished,
    CommandSource,
    Event,
    LinkChanged,
    LinkState,
    Notice,
    ProductInfoReceived,
    ProfileChosen,
    ReadingUpdated,
    RelayChanged,
    ServiceChanged,
    Tripped,
)
from tuimeter.core.meter import Reading
from tuimeter.core.settings import SettingState
from tuimeter.host.api import CommandFailed, MeterSession
from tuimeter.host.clock import local_now

log = logging.getLogger(__name__)

PASSWORD_ENV = "TUIMETER_MQTT_PASSWORD"
RECONNECT_MIN, RECONNECT_MAX = 1.0, 15.0
STABLE_AFTER = 30.0  # a connection dropped sooner (kicked, denied) keeps the backoff growing
# Discovery waits for the meter's identity (complete once start-up is done, dump included), so Home
# Assistant gets one config per entity, not one before and one after the breaker id. A meter that
# never comes online is announced anyway after this long: its device then shows as unavailable.
ANNOUNCE_AFTER = 30.0
# On a new connection, the retained configs of tuimeter 0.1 (unprefixed unique ids) arrive first and are
# removed before the new ones go out, so Home Assistant frees their entity ids for the new entities.
LEGACY_GRACE = 1.0


class MqttConfigError(ValueError):
    """An --mqtt setting that cannot work; the message says which and how to fix it."""


class BrokerRefused(Exception):
    """The broker refused the login (wrong user or password, not authorised), or its TLS certificate
    is not trusted: settings to fix, which retrying will not cure."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    ca_file: str | None
    topics: Topics

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str, *, node_id: str, prefix: str = "tuimeter", discovery_prefix: str = "homeassistant",
              password_file: str | None = None, ca_file: str | None = None,
              env: dict[str, str] | None = None) -> MqttSettings:
        """From `mqtt://user:pass@host:1883` or `mqtts://…`; the password may instead come from
        --mqtt-password-file or $TUIMETER_MQTT_PASSWORD, which keep it out of the process list."""
        try:
            parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        except ValueError as exc:
            raise MqttConfigError(f"--mqtt {url}: {exc}") from None
        if parts.scheme not in ("mqtt", "mqtts"):
            raise MqttConfigError(f"--mqtt {url}: use mqtt://host[:port] or mqtts://host[:port]")
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise MqttConfigError(f"--mqtt {url}: the port is not a number 1-65535")
        if not parts.hostname:
            raise MqttConfigError(f"--mqtt {url}: no broker host (e.g. mqtt://localhost)")
        tls = parts.scheme == "mqtts"
        password = unquote(parts.password) if parts.password is not None else None
        if password_file:
            try:
                password = Path(password_file).read_text(encoding="utf-8").strip("\r\n")
            except OSError as exc:
                raise MqttConfigError(f"--mqtt-password-file {password_file}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise MqttConfigError(f"--mqtt-password-file {password_file}: not UTF-8 text") from None
        elif password is None:
            password = (env if env is not None else dict(os.environ)).get(PASSWORD_ENV)
        if ca_file and not Path(ca_file).is_file():
            raise MqttConfigError(f"--mqtt-ca {ca_file}: no such file")
        if ca_file:
            try:
                ssl.create_default_context(cafile=ca_file)
            except (ssl.SSLError, OSError) as exc:
                raise MqttConfigError(f"--mqtt-ca {ca_file}: not a PEM certificate ({exc})") from None
        if ca_file and not tls:
            raise MqttConfigError("--mqtt-ca goes with an mqtts:// URL")
        if not node_id or any(not (c.isascii() and (c.isalnum() or c in "-_")) for c in node_id):
            raise MqttConfigError(f"--node-id {node_id!r}: letters, digits, - and _ only "
                                  "(Home Assistant ignores discovery topics with anything else)")
        for name, value in (("--mqtt-prefix", prefix), ("--mqtt-discovery-prefix", discovery_prefix)):
            if not value or any(c in value for c in "+#") or value.startswith("/") or value.endswith("/"):
                raise MqttConfigError(f"{name} {value!r}: a topic part with no + # or leading/trailing /")
        return cls(parts.hostname, port or (8883 if tls else 1883), tls,
                   unquote(parts.username) if parts.username else None, password, ca_file,
                   Topics(prefix, node_id, discovery_prefix))


def _untrusted(exc: BaseException) -> bool:
    """The broker's TLS certificate did not verify (aiomqtt wraps the ssl error, or only its text)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _refused(exc: aiomqtt.MqttError) -> bool:
    """A CONNACK refusal that retrying will not cure: bad user name or password, not authorised.
    Only a connect error counts: paho's own error 4 ("not connected") is a different thing."""
    if not isinstance(exc, MqttConnectError):
        return False
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return value in (4, 5, 134, 135)


@dataclass(frozen=True, slots=True)
class Announcement:
    """What a discovery says; a change of any of it (the identity complete, another profile) announces again."""

    identity: Identity
    writable: bool
    settings: tuple[SettingInfo, ...]
    faults: tuple[str, ...]


class MqttBridge:
    def __init__(self, link: MeterSession, settings: MqttSettings, read_only: bool,
                 clock: Callable[[], datetime] = local_now, *, allow_weakening: bool = False) -> None:
        self.link = link
        self.settings = settings
        self.topics = settings.topics
        self.read_only = read_only
        self.allow_weakening = allow_weakening  # --mqtt-allow-weakening: given at start, never over MQTT
        self._now = clock
        self._reading: Reading | None = None
        self._relay: bool | None = None
        self._meter_online = False
        self._identity = Identity()
        self._identity_complete = False  # the meter finished start-up once: product id and dump are in
        self._announced: Announcement | None = None  # what this connection's discovery said (None: nothing yet)
        self._configs: set[str] = set()  # the discovery topics given a config, to take back what is gone
        self._trips_due: list[Tripped] = []  # trips seen while connected, for the `trip` event topic
        self._last_trip: Tripped | None = None
        self._discovery_due = True  # again, whatever the identity: a new connection, Home Assistant restarted
        self._started = 0.0
        self._hold_until = 0.0
        self._wake: asyncio.TimerHandle | None = None
        self._dirty = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._commands: set[asyncio.Task[None]] = set()
        self.connected = False
        self._sent: dict[str, str] = {}  # what this connection last published per topic
        # unique per process: two clients with one id make the broker drop them in turns
        self._client_id = f"tuimeter-{self.topics.node_id}-{os.getpid()}-{secrets.token_hex(3)}"
        link.bus.add_listener(self._on_event)

    # ---- what the meter says ---------------------------------------------------------------
    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, ReadingUpdated):
            self._reading = ev.reading
            self._note_breaker()
        elif isinstance(ev, RelayChanged):
            self._relay = ev.on
        elif isinstance(ev, LinkChanged):
            self._meter_online = ev.state is LinkState.ONLINE
            if self._meter_online:
                self._note_breaker()
                self._identity_complete = True
        elif isinstance(ev, ProductInfoReceived):
            self._identity = Identity(ev.info.product_id, ev.info.mcu_version, self._identity.breaker_id)
        elif isinstance(ev, Tripped):
            self._last_trip = ev
            if self.connected:  # a trip from while the broker was away is not an event any more (last_trip has it)
                self._trips_due.append(ev)
        elif not (isinstance(ev, ProfileChosen) or (isinstance(ev, CommandFinished) and ev.setting is not None)):
            return
        self._dirty.set()

    def _note_breaker(self) -> None:
        breaker = self.link.values().get("breaker_id")
        if isinstance(breaker, str) and breaker != self._identity.breaker_id:
            self._identity = Identity(self._identity.product_id, self._identity.mcu_version, breaker)

    # ---- lifecycle -------------------------------------------------------------------------
    def _client_for(self) -> aiomqtt.Client:
        s = self.settings
        tls = aiomqtt.TLSParameters(ca_certs=s.ca_file, cert_reqs=ssl.CERT_REQUIRED) if s.tls else None
        return aiomqtt.Client(s.host, s.port, username=s.username, password=s.password,
                              identifier=self._client_id, keepalive=30, tls_params=tls,
                              will=aiomqtt.Will(self.topics.availability, OFFLINE, qos=1, retain=True))

    async def check_login(self, timeout: float = 5.0) -> None:
        """Try the broker once at start: a refused login is a setting to fix now (BrokerRefused);
        a broker that cannot be reached is only reported, and the bridge keeps trying."""
        try:
            async with asyncio.timeout(timeout):
                async with self._client_for():
                    pass
        except aiomqtt.MqttError as exc:
            if _refused(exc):
                raise BrokerRefused(self._refusal_text(exc)) from None
            if _untrusted(exc):
                raise BrokerRefused(self._untrusted_text()) from None
        except TimeoutError:
            pass

    def _untrusted_text(self) -> str:
        fix = ("is --mqtt-ca the CA that signed it?" if self.settings.ca_file
               else "give the CA that signed it with --mqtt-ca FILE")
        return f"the TLS certificate of MQTT broker {self.settings.where} is not trusted; {fix}"

    def _refusal_text(self, exc: aiomqtt.MqttError) -> str:
        who = f"user {self.settings.username!r}" if self.settings.username else "no user name"
        return (f"MQTT broker {self.settings.where} refused the login ({exc}; {who}); check the user in the "
                f"URL and the password (--mqtt-password-file or ${PASSWORD_ENV})")

    def start(self) -> None:
        self._started = asyncio.get_running_loop().time()
        self._runner = asyncio.create_task(self._run(), name="tuimeter-mqtt")

    async def close(self) -> None:
        """Say "offline" on purpose (the Last Will is for when we cannot), then disconnect. The retained
        `meter` topic goes offline too: a reader of it alone must not see a stopped host's last word."""
        if self._wake is not None:
            self._wake.cancel()
        client = self._client
        if client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError, asyncio.TimeoutError):
                async with asyncio.timeout(2):
                    await client.publish(self.topics.meter, OFFLINE, qos=1, retain=True)
                    await client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
        runner = self._runner
        # Cancelled again until it ends: aiomqtt waits with asyncio.wait_for, which on Python 3.11 swallows a
        # cancel that meets the broker's PUBACK (gh-86296); the publisher would then wait for ever, and so would we
        while runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait({runner}, timeout=1.0)

    async def _run(self) -> None:
        delay, up_since = RECONNECT_MIN, 0.0
        while True:
            try:
                async with self._client_for() as client:
                    self._client = client
                    await self._on_connected(client)
                    up_since = asyncio.get_running_loop().time()
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._publisher(client))
                        tg.create_task(self._listener(client))
            except* aiomqtt.MqttError as group:
                exc = group.exceptions[0]
                assert isinstance(exc, aiomqtt.MqttError)
                if self.connected and asyncio.get_running_loop().time() - up_since > STABLE_AFTER:
                    delay = RECONNECT_MIN  # it was a working connection: come back quickly
                self._down(exc, delay)
            self._client = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def _down(self, exc: aiomqtt.MqttError, delay: float) -> None:
        was = self.connected
        self.connected = False
        if _refused(exc):
            text, level = self._refusal_text(exc), "error"
        elif _untrusted(exc):
            text, level = self._untrusted_text(), "error"
        elif was:
            text, level = f"lost the broker {self.settings.where} ({exc}); readings are still logged here", "warning"
        else:
            text, level = f"cannot reach the broker {self.settings.where} ({exc})", "warning"
        self._service(False, f"{text}; retrying in {delay:g} s", level)

    def _service(self, up: bool, detail: str, level: str = "info") -> None:
        log.info("mqtt %s: %s", "up" if up else "down", detail)
        self.link.bus.publish([ServiceChanged(self._now(), "mqtt", up, detail, level)])

    async def _on_connected(self, client: aiomqtt.Client) -> None:
        t = self.topics
        await client.subscribe(t.relay_set, qos=1)
        await client.subscribe(t.setting_set_filter, qos=1)
        await client.subscribe(t.ha_status, qos=1)
        for topic in legacy_configs(t):
            await client.subscribe(topic, qos=1)
        await client.publish(t.availability, ONLINE, qos=1, retain=True)
        self._sent.clear()  # a new connection (perhaps a restarted broker without its retained store): all again
        self._discovery_due = True
        self._hold_until = asyncio.get_running_loop().time() + LEGACY_GRACE
        self._dirty.set()
        self.connected = True
        self._service(True, f"connected to {self.settings.where} as {t.base}")

    # ---- out: state and discovery ----------------------------------------------------------
    async def _publisher(self, client: aiomqtt.Client) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._publish_all(client)

    def _announcement(self, states: list[SettingState]) -> Announcement:
        status = self.link.status()
        faults = status.profile.for_role("faults")
        return Announcement(self._identity, not (self.read_only or status.read_only or status.replay),
                            tuple(SettingInfo.of(s) for s in states), faults.bits if faults is not None else ())

    async def _publish_all(self, client: aiomqtt.Client) -> None:
        t = self.topics
        states = self.link.settings()
        now = self._announcement(states)
        if (self._discovery_due or self._announced != now) and self._may_announce():
            self._discovery_due = False
            self._announced = now
            log.info("mqtt: discovery for %s, %d settings", now.identity, len(now.settings))
            messages = [*discovery_messages(t, now.identity, now.writable),
                        *settings_discovery(t, now.identity, now.settings, now.writable),
                        *trip_discovery(t, now.identity, now.faults)]
            announced = {topic for topic, payload in messages}
            # a setting this meter no longer has (another profile or product id): its entities go
            messages += [(topic, "") for topic in sorted(self._configs - announced)]
            for topic, payload in messages:
                await self._send(client, topic, payload, again=True)
            self._configs = {topic for topic, payload in messages if payload}
        await self._send(client, t.meter, ONLINE if self._meter_online else OFFLINE)
        if self._reading is not None:
            await self._send(client, t.state, json.dumps(self._reading.as_record(), separators=(",", ":")))
        # "None" is Home Assistant's unknown: after an unconfirmed command the old state would be a lie
        await self._send(client, t.relay, RELAY_UNKNOWN if self._relay is None else RELAY_ON if self._relay
                         else RELAY_OFF)
        # the values the meter last reported, never what a command asked for (null: unknown)
        await self._send(client, t.settings, settings_payload(states))
        await self._publish_trips(client, now.faults)

    async def _publish_trips(self, client: aiomqtt.Client, faults: tuple[str, ...]) -> None:
        """One `trip` event per reason (not retained: an event replayed on every subscription would be a
        new trip each time), then the retained `last_trip`."""
        while self._trips_due:
            ev = self._trips_due.pop(0)
            for payload in trip_events(ev, faults):
                await client.publish(self.topics.trip, payload, qos=1, retain=False)
        if self._last_trip is not None:
            await self._send(client, self.topics.last_trip, last_trip_payload(self._last_trip))

    def _may_announce(self) -> bool:
        """Whether discovery may go out now; if not, the publisher is woken when it may."""
        now = asyncio.get_running_loop().time()
        ready_at = self._hold_until if self._identity_complete else max(self._hold_until,
                                                                       self._started + ANNOUNCE_AFTER)
        if now >= ready_at:
            return True
        if self._wake is not None:
            self._wake.cancel()
        self._wake = asyncio.get_running_loop().call_at(ready_at, self._dirty.set)
        return False

    async def _send(self, client: aiomqtt.Client, topic: str, payload: str, again: bool = False) -> None:
        """Publish retained, unless this connection already published exactly this."""
        if not again and self._sent.get(topic) == payload:
            return
        await client.publish(topic, payload, qos=1, retain=True)
        self._sent[topic] = payload

    # ---- in: relay commands and Home Assistant's birth message -----------------------------
    async def _listener(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload.decode("utf-8", "replace").strip() if isinstance(
                message.payload, bytes | bytearray) else str(message.payload)
            if topic == self.topics.ha_status and payload == ONLINE:
                self._discovery_due = True  # Home Assistant restarted: it needs the configs again
                self._dirty.set()
            elif topic == self.topics.relay_set:
                self._relay_command(payload, message.retain)
            elif (level := self.topics.setting_level(topic)) is not None:
                self._setting_command(level, topic, payload, message.retain)
            elif message.retain and is_legacy_config(self.topics, topic, payload):
                # tuimeter 0.1's config for this entity: removing it frees the entity id for the new one
                log.info("mqtt: removing the 0.1 discovery config at %s", topic)
                await client.publish(topic, "", qos=1, retain=True)

    def _relay_command(self, payload: str, retained: bool) -> None:
        if retained:  # someone left a retained command: acting on it would switch mains on every reconnect
            self._warn(f"ignored a retained relay command {payload!r} on {self.topics.relay_set}; "
                       "publish commands without retain")
            return
        word = payload.upper()
        if word not in (RELAY_ON, RELAY_OFF):
            self._warn(f"relay command {payload!r} on {self.topics.relay_set} is not ON or OFF; ignored")
            return
        self._spawn(self._switch(word == RELAY_ON))

    def _spawn(self, command: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(command)
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    def _setting_command(self, level: str, topic: str, payload: str, retained: bool) -> None:
        if retained:  # as for the relay: it would be written again on every reconnect
            self._warn(f"ignored a retained setting command {payload!r} on {topic}; publish commands without retain")
            return
        if not payload:  # what clearing a retained message sends to a subscriber: never a button press
            self._warn(f"ignored an empty message on {topic}; a setting takes a value, a button {PRESS!r}")
            return
        # the topic level is the setting's name (a name with / + # has _ in their place)
        name = next((s.name for s in self.link.settings() if topic_level(s.name) == level), level)
        self._spawn(self._write(name, payload))

    def _warn(self, text: str) -> None:
        log.warning("mqtt: %s", text)
        self.link.bus.publish([Notice(self._now(), f"mqtt: {text}", "warning")])

    async def _switch(self, on: bool) -> None:
        """The session publishes the result (a CommandFinished from source mqtt) for every consumer."""
        try:
            await self.link.set_relay(on, CommandSource.MQTT)
        except (CommandRefused, CommandFailed):
            pass
        except Exception:  # a bug: logged with its traceback, and the bridge goes on
            log.exception("relay command from MQTT")
            self._warn("relay command failed by an internal error; see the debug log")
        finally:
            self._dirty.set()  # the relay topic shows the meter's state, whatever became of the command

    async def _write(self, name: str, text: str) -> None:
        """A setting through the one command path; the session publishes the result (a CommandFinished
        from source mqtt, with the setting change), refusals included: garbage, out of range, unknown."""
        try:
            await self.link.write_setting(name, text, CommandSource.MQTT, allow_weakening=self.allow_weakening)
        except WeakeningRefused:
            self.link.bus.publish([Notice(self._now(), "mqtt: changes that weaken the meter's protection are "
                                          "accepted over MQTT only when tuimeter runs with --mqtt-allow-weakening")])
        except (CommandRefused, CommandFailed):
            pass
        except Exception:  # a bug: logged with its traceback, and the bridge goes on
            log.exception("setting command from MQTT")
            self._warn(f"setting command for {name} failed by an internal error; see the debug log")
        finally:
            self._dirty.set()  # the settings topic shows what the meter reports, whatever became of it
