"""A household behind the simulated meter: appliances switching, mains voltage, earth leakage.

Everything runs on simulated seconds and one seeded random generator, so runs repeat. A fault event
(an Excursion: surge, sag, overload, earth leak) can be laid over it; it draws no random numbers, so
a run without one is the same as before.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(slots=True)
class Appliance:
    name: str
    watts: float
    mean_on: float  # seconds
    mean_off: float
    on: bool = False
    next_toggle: float = 0.0


@dataclass(frozen=True, slots=True)
class Excursion:
    """A fault event on top of the household: the mains off its usual level, an extra load, a leak."""

    mains_v: float | None = None  # the open-circuit mains voltage instead of ~230 V
    load_a: float = 0.0  # an extra load drawing about this current
    leak_ma: float = 0.0  # an extra fault current to earth

    def __add__(self, other: Excursion) -> Excursion:
        mains = other.mains_v if other.mains_v is not None else self.mains_v
        return Excursion(mains, self.load_a + other.load_a, self.leak_ma + other.leak_ma)


NO_EXCURSION = Excursion()


@dataclass(frozen=True, slots=True)
class Sample:
    voltage_v: float
    current_a: float
    power_w: float
    leakage_ma: float


class Household:
    """Base load, a cycling fridge and bursts of kettle, microwave, oven and TV."""

    BASE_W = 75.0
    SOURCE_OHMS = 0.28  # line impedance: 2 kW costs ~2.4 V
    NOMINAL_V = 230.0

    def __init__(self, seed: int = 0, start: float = 0.0) -> None:
        # one generator per event stream, each drawn in time order: how finely the caller steps
        # through time changes nothing
        self.rng = rng = random.Random(f"{seed}:appliances")
        self._spikes = random.Random(f"{seed}:leak-spikes")
        self._faults = random.Random(f"{seed}:earth-faults")
        self.seed = seed
        self.t = start
        self.excursion = NO_EXCURSION  # set by the meter, for the time from now on
        self.appliances = [
            Appliance("fridge", 110.0, 18 * 60, 35 * 60),
            Appliance("kettle", 2000.0, 3 * 60, 80 * 60),
            Appliance("microwave", 900.0, 4 * 60, 150 * 60),
            Appliance("oven", 1800.0, 35 * 60, 8 * 3600),
            Appliance("tv", 120.0, 2 * 3600, 6 * 3600),
        ]
        for a in self.appliances:
            a.on = rng.random() < a.mean_on / (a.mean_on + a.mean_off)
            a.next_toggle = start + rng.expovariate(1 / (a.mean_on if a.on else a.mean_off))
        self.leak_spike_until = start
        self.leak_spike_ma = 0.0
        self.next_leak_spike = start + self._spikes.expovariate(1 / (25 * 60))
        self.next_leak_fault = start + self._faults.expovariate(1 / (5 * 3600))

    def load_w(self) -> float:
        return self.BASE_W + sum(a.watts for a in self.appliances if a.on) + self.excursion.load_a * self.NOMINAL_V

    def advance(self, t_new: float, powered: bool) -> tuple[float, float]:
        """Move to t_new. Returns (Wh consumed, the largest brief earth fault on the way in mA, or 0)."""
        wh = 0.0
        leak_fault = 0.0
        while True:
            nxt = min(a.next_toggle for a in self.appliances)
            if nxt > t_new:
                break
            if powered:
                wh += self.load_w() * (nxt - self.t) / 3600
            self.t = nxt
            for a in self.appliances:
                if a.next_toggle <= nxt:
                    a.on = not a.on
                    a.next_toggle = nxt + self.rng.expovariate(1 / (a.mean_on if a.on else a.mean_off))
        if powered:
            wh += self.load_w() * (t_new - self.t) / 3600
        self.t = t_new
        while self.next_leak_spike <= t_new:
            self.leak_spike_ma = self._spikes.uniform(8, 25)
            self.leak_spike_until = self.next_leak_spike + self._spikes.uniform(5, 25)
            self.next_leak_spike += self._spikes.expovariate(1 / (25 * 60))
        while self.next_leak_fault <= t_new:
            size = self._faults.uniform(20, 90)  # drawn even when off, to keep the stream in step
            if powered:  # a damp appliance or a nicked cable: a short fault current to earth
                leak_fault = max(leak_fault, size)
            self.next_leak_fault += self._faults.expovariate(1 / (5 * 3600))
        return wh, leak_fault

    def sample(self, powered: bool) -> Sample:
        """Instantaneous values at the current time, with measurement noise.

        The noise is a function of the seed and the simulated time (per 0.1 s), not of how often
        the host asks, so the same seed gives the same household whatever the host sends."""
        noise = random.Random(f"{self.seed}:{round(self.t, 1)}")
        day = math.sin(2 * math.pi * (self.t % 86400) / 86400)
        p = self.load_w() * noise.uniform(0.97, 1.03) if powered else 0.0
        mains = 230.0 + 2.5 * day if self.excursion.mains_v is None else self.excursion.mains_v
        v_open = mains + noise.gauss(0, 0.4)
        i = p / v_open if powered else 0.0
        v = v_open - self.SOURCE_OHMS * i
        leak = 0.0
        if powered:
            leak = max(0.0, 3.0 + 0.0004 * p + noise.gauss(0, 0.6))
            if self.t < self.leak_spike_until:
                leak += self.leak_spike_ma
            leak += self.excursion.leak_ma
        return Sample(v, i, p, leak)
