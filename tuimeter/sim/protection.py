"""The meter's protections (which reading, which threshold, which fault bit) and the fault events that
provoke them on demand (FaultPlan's surge, sag, overload and leak)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tuimeter.sim.physics import Excursion, Sample

# 10-byte variant: the references give no protection delay for dp 101–103; an assumed 2 s of the MCU's
# clock. The 8-byte variant has its own, dp 104 (protection time, s).
PROTECTION_DELAY_S = 2.0
BEYOND = 10.0  # how far past its threshold a fault event takes the reading (V, A or mA)


@dataclass(frozen=True, slots=True)
class Protection:
    name: str
    bit: int  # its fault bit in dp 9 (din-meter-datapoints.md §5.2)
    reading: Callable[[Sample], float]
    above: bool  # trips above the threshold, else below it
    # where each variant keeps the threshold: a value dp, or (alarm-set dp, record code)
    source: Mapping[str, int | tuple[int, int]]
    scale: float = 1.0  # the threshold's unit in the reading's (kW → W)

    def exceeded(self, sample: Sample, threshold: float) -> bool:
        value = self.reading(sample)
        return value > threshold if self.above else value < threshold


PROTECTIONS = (
    Protection("over_voltage", 10, lambda s: s.voltage_v, True, {"10byte": 101, "8byte": (18, 3)}),
    Protection("under_voltage", 11, lambda s: s.voltage_v, False, {"10byte": 102, "8byte": (18, 4)}),
    Protection("over_current", 8, lambda s: s.current_a, True, {"10byte": 103, "8byte": (18, 1)}),
    Protection("leakage", 3, lambda s: s.leakage_ma, True, {"10byte": 104, "8byte": (17, 4)}),
    Protection("overload", 2, lambda s: s.power_w, True, {"8byte": (17, 3)}, scale=1000.0),
)
BY_NAME = {p.name: p for p in PROTECTIONS}
LEAKAGE = BY_NAME["leakage"]
NO_BALANCE_BIT = 16  # prepaid credit exhausted


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """A FaultPlan event: `<name>_at` seconds after the start, for `<name>_for` (or `event_for`)."""

    name: str
    protection: str  # the protection it provokes
    excursion: Callable[[float], Excursion]  # threshold -> what the household sees
    ends_on_trip: bool  # a faulty appliance is cut off by the trip; mains trouble goes on


EVENTS = (
    FaultEvent("surge", "over_voltage", lambda t: Excursion(mains_v=t + BEYOND), ends_on_trip=False),
    FaultEvent("sag", "under_voltage", lambda t: Excursion(mains_v=t - BEYOND), ends_on_trip=False),
    FaultEvent("overload", "over_current", lambda t: Excursion(load_a=t + BEYOND), ends_on_trip=True),
    FaultEvent("leak", "leakage", lambda t: Excursion(leak_ma=t + BEYOND), ends_on_trip=True),
)
