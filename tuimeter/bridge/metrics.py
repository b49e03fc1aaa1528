"""`--metrics [HOST:]PORT`: a Prometheus /metrics endpoint (prometheus-client, its own thread).

Values are read at scrape time from what the event stream last said, so a scrape costs the meter
loop nothing. Names follow Prometheus conventions: base units (volts, amperes, watts, joules),
`_total` on counters. A value the meter has not reported is left out rather than shown as 0.

Each numeric setting is a gauge of its own, `tuimeter_setting_<name>_<base unit>` (a threshold in mA is
`…_amperes`): one metric, one unit, and no sum over a label that adds volts to amperes. Trips are
`tuimeter_trips_total{reason}`, one count per reason of a trip, every fault the profile names from 0.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tuimeter import __version__
from tuimeter.core.events import CommandFinished, Event, LinkChanged, LinkState, ProfileChosen, ReadingUpdated, Tripped
from tuimeter.core.meter import Reading
from tuimeter.core.profile import DPSpec
from tuimeter.core.settings import AlarmValue, SettingKind, SettingState
from tuimeter.host.api import MeterSession

log = logging.getLogger(__name__)


class MetricsError(Exception):
    """The endpoint could not be served; the message names the address and the fix."""


# a setting's unit → the Prometheus base unit its gauge is in, and the factor to it
BASE_UNITS = {"V": ("volts", 1.0), "A": ("amperes", 1.0), "mA": ("amperes", 1e-3), "W": ("watts", 1.0),
              "kW": ("watts", 1e3), "kWh": ("joules", 3.6e6), "Wh": ("joules", 3.6e3), "s": ("seconds", 1.0),
              "min": ("seconds", 60.0), "h": ("seconds", 3600.0), "°C": ("celsius", 1.0)}


def setting_metric(name: str, unit: str) -> tuple[str, float]:
    """A setting's gauge name and the factor from its unit: `over_voltage_threshold`, V →
    `tuimeter_setting_over_voltage_threshold_volts`; a unit without a base unit here stays out of the name."""
    base, factor = BASE_UNITS.get(unit, ("", 1.0))
    stem = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    return f"tuimeter_setting_{stem}" + (f"_{base}" if base else ""), factor


def setting_number(state: SettingState) -> float | None:
    """A numeric setting's value (an alarm record's threshold), or None: unknown, or not a number."""
    v, kind = state.value, state.setting.kind
    if kind is SettingKind.ALARM and isinstance(v, AlarmValue):
        return float(v.threshold)
    if kind is SettingKind.NUMBER and isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    return None


class MeterCollector(Collector):
    def __init__(self, session: MeterSession, meter: str) -> None:
        self.session = session
        self.meter = meter
        self._reading: Reading | None = None
        self._settings: tuple[SettingState, ...] = ()
        self._trips: dict[str, int] = {}  # reason → trips; replaced whole, never changed in place
        session.bus.add_listener(self._on_event)

    def _on_event(self, ev: Event) -> None:
        # each a reference swap: the scrape thread sees old or new, never half
        if isinstance(ev, ReadingUpdated):
            self._reading = ev.reading
        if isinstance(ev, ReadingUpdated | CommandFinished | LinkChanged | ProfileChosen):
            self._settings = tuple(self.session.settings())  # read on the loop: the scrape thread must not
        elif isinstance(ev, Tripped):
            trips = dict(self._trips)
            for reason in ev.reasons:
                trips[reason] = trips.get(reason, 0) + 1
            self._trips = trips

    def collect(self) -> Iterable[Metric]:
        r, m, labels = self._reading, self.session.status(), [self.meter]

        def gauge(name: str, doc: str, value: float | None) -> Iterable[Metric]:
            if value is not None:
                g = GaugeMetricFamily(name, doc, labels=["meter"])
                g.add_metric(labels, float(value))
                yield g

        live = m.link is LinkState.ONLINE  # with the link down, the last values are not current: leave them out
        if r is not None and live:
            yield from gauge("tuimeter_voltage_volts", "Mains voltage the meter reports", r.voltage_v)
            yield from gauge("tuimeter_current_amperes", "Load current", r.current_a)
            yield from gauge("tuimeter_power_watts", "Active power", r.power_w)
            leak = None if r.leakage_ma is None else r.leakage_ma / 1000
            yield from gauge("tuimeter_leakage_current_amperes", "Residual (earth-leakage) current", leak)
            yield from gauge("tuimeter_relay_closed", "1 when the meter reports its relay on",
                             None if r.relay is None else int(r.relay))
            yield from gauge("tuimeter_faults_active", "How many fault bits the meter reports",
                             None if r.faults is None else len(r.faults))
        if r is not None and r.energy_kwh is not None:  # a counter stays: rate() copes with gaps
            energy = CounterMetricFamily("tuimeter_energy_joules", "Energy counter of the meter "
                                         "(it drops when the meter's counter is cleared)", labels=["meter"])
            energy.add_metric(labels, r.energy_kwh * 3.6e6)
            yield energy
        if live:
            yield from self._setting_gauges()
        yield from self._trip_counter(m.profile.for_role("faults"))
        yield from gauge("tuimeter_link_up", "1 when the meter answers heartbeats", int(m.link is LinkState.ONLINE))
        yield from gauge("tuimeter_heartbeat_age_seconds", "Seconds since the meter last answered a heartbeat",
                         m.heartbeat_age)
        frames = CounterMetricFamily("tuimeter_frames", "TuyaMCU frames", labels=["meter", "direction"])
        frames.add_metric([self.meter, "in"], m.frames_in)
        frames.add_metric([self.meter, "out"], m.frames_out)
        yield frames
        errors = CounterMetricFamily("tuimeter_parse_errors", "Bad checksums, impossible lengths, stalled frames",
                                     labels=["meter"])
        errors.add_metric(labels, m.parse_errors)
        yield errors
        info = GaugeMetricFamily("tuimeter_build_info", "tuimeter version", labels=["meter", "version"])
        info.add_metric([self.meter, __version__], 1)
        yield info

    def _setting_gauges(self) -> Iterable[Metric]:
        """The numeric settings as the meter last reported them; an unknown one is left out."""
        for state in self._settings:
            value = setting_number(state)
            if value is None:
                continue
            s = state.setting
            name, factor = setting_metric(s.name, s.unit)
            unit = "" if s.unit in BASE_UNITS or not s.unit else f" (in {s.unit})"
            doc = f"Setting {s.name} as the meter last reported it{unit}" + (f": {s.title}" if s.title else "")
            g = GaugeMetricFamily(name, doc, labels=["meter"])
            g.add_metric([self.meter], value * factor)
            yield g

    def _trip_counter(self, faults: DPSpec | None) -> Iterable[Metric]:
        names = faults.bits if faults is not None else ()
        trips = self._trips
        counter = CounterMetricFamily("tuimeter_trips", "Trips (the meter opened its relay by itself on a fault) "
                                      "since tuimeter started, by reason", labels=["meter", "reason"])
        for reason in dict.fromkeys([*names, *trips]):
            counter.add_metric([self.meter, reason], trips.get(reason, 0))
        yield counter


class MetricsServer:
    def __init__(self, collector: MeterCollector, host: str, port: int) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        self.host, self.port = host, port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._server, self._thread = start_http_server(self.port, self.host, self.registry)
            log.info("serving metrics on %s:%d", self.host, self.port)
        except OSError as exc:
            raise MetricsError(f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror}; "
                               "choose another port with --metrics") from None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
