"""Faults the simulated meter can inject, each on its own and seeded: a bad line and a bad MCU.

Line faults mangle the bytes on their way out (noise, bursts, stray headers, bad checksums,
truncated frames, absurd lengths, dribbled bytes). The MCU faults (silence, missed heartbeats,
reboots, unsolicited requests, unconfirmed relay commands) live in SimulatedMeter, the port
faults (unplugging) in PtyMeterServer, the protection events (surge, sag, overload, earth leak)
in the household the meter measures. All read one FaultPlan.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, fields

from tuimeter.core.frames import Frame, StreamParser


@dataclass(frozen=True, slots=True)
class FaultPlan:
    # line: probability, per frame the MCU sends, of each mangling
    noise: float = 0.0  # random bytes before the frame
    bursts: float = 0.0  # a burst of 00 or FF bytes before the frame
    stray: float = 0.0  # a stray 55 or 55 AA before or inside the frame
    bad_checksum: float = 0.0
    truncate: float = 0.0  # the frame cut short
    absurd_length: float = 0.0  # a header claiming an impossible length before the frame
    dribble: bool = False  # every byte written on its own, ~1 ms apart
    # MCU
    heartbeat_answers: float = 1.0  # share of heartbeats answered
    silence_every: float = 0.0  # mean seconds between silences (0: never)
    silence_for: float = 20.0
    reboot_every: float = 0.0  # mean seconds between reboots (0: never)
    requests_every: float = 0.0  # mean seconds between MCU-initiated requests (0: never)
    ignore_relay: bool = False  # relay commands dropped, never confirmed
    # port
    unplug_every: float = 0.0  # mean seconds between unplugs (0: never)
    unplug_for: float = 1.0
    # protection events, seconds after the meter started (0: never); each lasts <name>_for seconds
    # (0: event_for) unless a trip ends it (an overload or a leak does not outlive the relay opening)
    surge_at: float = 0.0  # mains 10 V above the over-voltage threshold
    surge_for: float = 0.0
    sag_at: float = 0.0  # mains 10 V below the under-voltage threshold
    sag_for: float = 0.0
    overload_at: float = 0.0  # an extra load drawing 10 A more than the over-current threshold
    overload_for: float = 0.0
    leak_at: float = 0.0  # earth leakage 10 mA over the leakage threshold
    leak_for: float = 0.0
    event_for: float = 30.0

    def window(self, event: str) -> tuple[float, float] | None:
        """(start, end) of protection event `event` (surge, sag, overload, leak) in seconds after the
        meter started, or None if it never happens."""
        at, length = float(getattr(self, f"{event}_at")), float(getattr(self, f"{event}_for"))
        return (at, at + (length or self.event_for)) if at > 0 else None

    @property
    def mangles(self) -> bool:
        return any((self.noise, self.bursts, self.stray, self.bad_checksum, self.truncate, self.absurd_length))

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """`noise=0.1,bad_checksum=0.05,dribble,reboot_every=60` (a bare name sets a flag), or a preset."""
        if spec in PRESETS:
            return PRESETS[spec]
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, text = part.partition("=")
            name = name.strip().replace("-", "_")
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(known)} or a preset: {', '.join(PRESETS)}")
            if known[name].type in ("bool", bool):
                values[name] = text.strip().lower() not in ("0", "false", "no", "off")
                continue
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"fault {name} needs a number, e.g. {name}=0.1") from None
            if number < 0 or (name in _PROBABILITIES and number > 1):
                raise ValueError(f"fault {name}={text}: out of range")
            values[name] = number
        return cls(**values)  # type: ignore[arg-type]


_PROBABILITIES = {"noise", "bursts", "stray", "bad_checksum", "truncate", "absurd_length", "heartbeat_answers"}

PRESETS = {
    "noisy": FaultPlan(noise=0.2, bursts=0.05, stray=0.1, bad_checksum=0.05, truncate=0.05, absurd_length=0.02),
    "flaky": FaultPlan(heartbeat_answers=0.7, reboot_every=300.0, requests_every=30.0, silence_every=600.0),
}


class LineInjector:
    """Mangles outgoing frames by the plan, one write at a time.

    Each write is checked with a fresh parser before it goes out: it must decode to exactly the
    frames meant to arrive intact, and leave no partial frame behind (whose fate would then depend
    on timing). An 8-bit checksum passes one random corruption in 256; such a write is
    indistinguishable from a real frame on the wire, so the injector draws again instead. Every
    frame sent intact is recorded for the tests."""

    TRIES = 4

    def __init__(self, plan: FaultPlan, seed: int = 0) -> None:
        self.plan = plan
        self.rng = random.Random(f"{seed}:line")
        self.intact: set[bytes] = set()  # raw bytes of frames sent unharmed (cleared when large)
        self.sent_intact = 0
        self.injected: Counter[str] = Counter()

    def process(self, frames: list[bytes]) -> bytes:
        for attempt in range(self.TRIES + 1):
            chunk, kinds, arriving = bytearray(), Counter[str](), []
            for f in frames:
                mangled, k, intact = self._mangle(f) if attempt < self.TRIES else (f, [], True)
                chunk += mangled
                kinds.update(k)
                arriving += [f] * intact
            if self._decodes_to(bytes(chunk), arriving):
                break
        self.injected.update(kinds)
        self.sent_intact += len(arriving)
        if len(self.intact) > 50_000:
            self.intact.clear()
        self.intact.update(arriving)
        return bytes(chunk)

    @staticmethod
    def _decodes_to(chunk: bytes, frames: list[bytes]) -> bool:
        parser = StreamParser()
        decoded = [e.raw for e in parser.feed(chunk) if isinstance(e, Frame)]
        return decoded == frames and parser.buffered == 0

    def _mangle(self, f: bytes) -> tuple[bytes, list[str], bool]:
        """The bytes to send for frame f, the faults used, and whether f itself arrives intact."""
        p, rng = self.plan, self.rng
        before, frame, kinds, intact = bytearray(), bytearray(f), [], True
        if rng.random() < p.noise:
            before += rng.randbytes(rng.randint(1, 12))
            kinds.append("noise")
        if rng.random() < p.bursts:
            before += bytes([rng.choice((0x00, 0xFF))]) * rng.randint(4, 32)
            kinds.append("bursts")
        if rng.random() < p.absurd_length:
            before += bytes((0x55, 0xAA, 0x03, 0x07, 0xFF, rng.randint(0, 0xFF)))
            kinds.append("absurd_length")
        if rng.random() < p.truncate:
            # a glitch cuts a copy short; the next frame (here: the frame itself) follows at once
            before += frame[:rng.randint(1, len(frame) - 1)]
            kinds.append("truncate")
        if rng.random() < p.stray:
            stray = rng.choice((b"\x55", b"\x55\xaa"))
            if rng.random() < 0.5:
                before += stray
            else:
                at = rng.randint(2, len(frame) - 1)
                frame[at:at] = stray
                intact = False
            kinds.append("stray")
        if rng.random() < p.bad_checksum:
            frame[-1] ^= rng.randint(1, 0xFF)
            kinds.append("bad_checksum")
            intact = False
        return bytes(before + frame), kinds, intact
