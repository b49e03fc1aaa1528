"""Datapoint discovery: what a meter reports, how often it changes, and what it probably means.

Sans-I/O like the core: feed it datapoints with their times, read rows back. Guesses come from the
shipped profiles (the same dp id and type, a raw layout of the same length) and, for ids no
profile knows, from the shape of the value. The user's edits (name, scale, unit, panel) win over
guesses; `profile()` turns the result into a Profile that loads like any shipped one.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field

from tuimeter.core.datapoints import DataPoint, DPType
from tuimeter.core.profile import (
    READING_ROLES,
    ROLES,
    DPSpec,
    Field,
    Profile,
    choose_from,
    load_profile,
    shipped_profiles,
)

HISTORY = 12  # value changes kept per dp

# Which panels (roles) a dp of each type can feed.
ROLES_FOR_TYPE: dict[DPType, tuple[str, ...]] = {
    DPType.VALUE: ("voltage", "current", "power", "energy", "leakage", "over_voltage_threshold",
                   "under_voltage_threshold", "over_current_threshold", "leakage_threshold"),
    DPType.BOOL: ("relay", "mute", "earth_leak"),
    DPType.BITMAP: ("faults",),
    DPType.STRING: ("breaker_id",),
    DPType.ENUM: (),
    DPType.RAW: (),
}


@dataclass(frozen=True, slots=True)
class Guess:
    spec: DPSpec  # name, role, scale, unit, and any raw layout, as the source describes them
    source: str  # "profile tompd-63", or "value shape"


@dataclass(slots=True)
class SeenDatapoint:
    id: int
    type: DPType
    first_seen: float
    last_seen: float
    last: DataPoint
    reports: int = 0
    changes: int = 0
    lengths: set[int] = field(default_factory=set)
    history: deque[tuple[float, DataPoint]] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def changes_per_minute(self) -> float | None:
        span = self.last_seen - self.first_seen
        return self.changes * 60 / span if span > 0 else None


class Discovery:
    """`base` is the profile the meter is read through (given with --profile, or picked): its entries
    come first, and only it or the user can make a dp the relay."""

    def __init__(self, profiles: list[Profile] | None = None, base: Profile | None = None) -> None:
        self.profiles = profiles if profiles is not None else [load_profile(n) for n in _by_default_first()]
        self.base = base
        self.seen: dict[int, SeenDatapoint] = {}
        self.product_id: str | None = None  # from the 0x01 reply: names the meter's own profile, if shipped
        self._edits: dict[int, DPSpec] = {}
        self.revision = 0  # bumps on every change, so views redraw only when something happened

    # ---- input -----------------------------------------------------------------------------
    def observe(self, dp: DataPoint, now: float) -> bool:
        """Count a report; True when this dp id (or its type) is new."""
        self.revision += 1
        s = self.seen.get(dp.id)
        if s is None or s.type is not dp.type:
            s = self.seen[dp.id] = SeenDatapoint(dp.id, dp.type, now, now, dp)
            s.reports, s.lengths = 1, {len(dp.raw)}
            s.history.append((now, dp))
            return True
        s.reports += 1
        s.last_seen = now
        s.lengths.add(len(dp.raw))
        if dp.raw != s.last.raw:
            s.changes += 1
            s.history.append((now, dp))
        s.last = dp
        return False

    # ---- guesses ---------------------------------------------------------------------------
    def home(self) -> Profile | None:
        """The meter's own profile: the base, else the known one it most looks like (product id, dps)."""
        if self.base is not None:
            return self.base
        chosen = choose_from(self.profiles, self.product_id, {i: s.last for i, s in self.seen.items()})
        return chosen[0] if chosen else None

    def guess(self, dpid: int) -> Guess | None:
        """From the meter's own profile when it knows the dp, else from the relative that fits best."""
        s = self.seen.get(dpid)
        if s is None:
            return None
        best: tuple[int, Guess] | None = None
        home = self.home()
        others = [p for p in self.profiles if home is None or p.name != home.name]
        for p in ([home] if home is not None else []) + others:
            spec = p.dps.get(dpid)
            if spec is None or spec.type is not s.type:
                continue
            score, fitted = _fit(spec, len(s.last.raw))
            if fitted is not None and home is not None and p.name == home.name:
                return Guess(fitted, f"profile {p.name}")
            if fitted is not None and fitted.role == "relay":  # a relative's relay is not this meter's
                fitted = dataclasses.replace(fitted, role=None)
            if fitted is not None and (best is None or score > best[0]):
                best = score, Guess(fitted, f"profile {p.name}")
        if best is not None:
            return best[1]
        return self._guess_by_shape(s)

    def _guess_by_shape(self, s: SeenDatapoint) -> Guess | None:
        v = s.last.value
        if s.type is DPType.VALUE and isinstance(v, int) and 1800 <= v <= 2600:
            return Guess(DPSpec(s.id, f"voltage_{s.id}", s.type, "voltage", 0.1, "V"), "value shape: mains in 0.1 V")
        return None

    # ---- the user's edits ------------------------------------------------------------------
    def spec(self, dpid: int) -> DPSpec:
        """What this dp is taken to be: the user's edits, else the guess, else a plain entry."""
        if dpid in self._edits:
            return self._edits[dpid]
        g = self.guess(dpid)
        if g is not None:
            return g.spec
        s = self.seen[dpid]
        return DPSpec(dpid, f"dp_{dpid}", s.type)

    def edited(self, dpid: int) -> bool:
        return dpid in self._edits

    def edit(self, dpid: int, *, name: str | None = None, scale: float | None = None,
             unit: str | None = None) -> DPSpec:
        """Change what a dp is called or how it is scaled."""
        spec = self.spec(dpid)
        if name is not None:
            name = name.strip()
            if not name or any(c.isspace() or c in "\"'\\." for c in name):
                raise ValueError("a name is one word: letters, digits, _ or -")
            spec = dataclasses.replace(spec, name=name)
        if scale is not None:
            if not (math.isfinite(scale) and scale > 0):
                raise ValueError("the scale must be a number greater than 0 (e.g. 0.1 for tenths)")
            spec = dataclasses.replace(spec, scale=scale)
        if unit is not None:
            spec = dataclasses.replace(spec, unit=unit.strip())
        self._edits[dpid] = spec
        self.revision += 1
        return spec

    def assign(self, dpid: int, role: str | None) -> DPSpec:
        """Make this dp feed a panel (a role), or none; the dp that fed it before gives it up."""
        spec = self._with_role(self.spec(dpid), role)
        self._edits[dpid] = spec
        self.revision += 1
        return spec

    def _with_role(self, spec: DPSpec, role: str | None) -> DPSpec:
        if role is not None and (role not in ROLES or role not in ROLES_FOR_TYPE[spec.type]):
            allowed = ", ".join(ROLES_FOR_TYPE[spec.type]) or "none"
            raise ValueError(f"a {spec.type.label} dp cannot feed {role!r}; it can feed: {allowed}")
        if role is not None:  # one dp per panel: whoever had it gives it up
            for other in list(self.seen):
                if other != spec.id and self._holds_role(self.spec(other), role):
                    self._edits[other] = _without_role(self.spec(other), role)
        return dataclasses.replace(spec, role=role)

    @staticmethod
    def _holds_role(spec: DPSpec, role: str) -> bool:
        return spec.role == role or any(f.role == role for f in spec.fields)

    def next_role(self, dpid: int) -> str | None:
        """The next free panel after this dp's current one, for a key that cycles through them (a panel
        another dp feeds is skipped: free it there first)."""
        spec = self.spec(dpid)
        taken = {r for other in self.seen if other != dpid for r in _roles_of(self.spec(other))}
        choices: list[str | None] = [None, *(r for r in ROLES_FOR_TYPE[spec.type] if r not in taken)]
        current = spec.role if spec.role in choices else None
        return choices[(choices.index(current) + 1) % len(choices)]

    # ---- result ----------------------------------------------------------------------------
    def profile(self, name: str = "discovered", title: str = "") -> Profile:
        """Every dp seen, as the profile this discovery amounts to (for the product id seen, if any)."""
        product_ids = (self.product_id,) if self.product_id else ()
        specs = {dpid: self.spec(dpid) for dpid in sorted(self.seen)}
        home = self.home()
        # who keeps a panel two dps claim: the user's edit, then the meter's own profile, then the lower id
        first = sorted(specs, key=lambda i: (i not in self._edits, home is None or i not in home.dps, i))
        _drop_duplicate_roles(specs, first)
        # the settings of the meter's own profile come along for the dps that kept its meaning
        settings = tuple(st for st in (home.settings if home is not None else ())
                         if st.dp in specs and specs[st.dp].writable and specs[st.dp].name == home.dps[st.dp].name
                         and specs[st.dp].type is home.dps[st.dp].type) if home is not None else ()
        return Profile(name, title or f"{name} (made by tuimeter discovery)", product_ids, specs, "discovery",
                       settings)


def _fit(spec: DPSpec, length: int) -> tuple[int, DPSpec | None]:
    """How well a profile's spec fits a dp of this many bytes, and the spec cut to fit."""
    if not spec.fields:
        return 1, spec
    fields = tuple(f for f in spec.fields if f.offset + f.size <= length)
    if not fields:
        return 0, None
    exact = max(f.offset + f.size for f in spec.fields) == length
    return (3 if exact else 2), dataclasses.replace(spec, fields=fields)


def _roles_of(spec: DPSpec) -> set[str]:
    return ({spec.role} if spec.role else set()) | {f.role for f in spec.fields}


def _without_role(spec: DPSpec, role: str) -> DPSpec:
    if spec.role == role:
        return dataclasses.replace(spec, role=None)
    return dataclasses.replace(spec, fields=tuple(f for f in spec.fields if f.role != role))


def _drop_duplicate_roles(specs: dict[int, DPSpec], order: list[int]) -> None:
    """A reading role comes from one dp only: the first in `order`."""
    taken: set[str] = set()
    for dpid in order:
        spec = specs[dpid]
        fields: list[Field] = []
        for f in spec.fields:
            if f.role not in taken:
                taken.add(f.role)
                fields.append(f)
        role = spec.role
        if role is not None and role in READING_ROLES:
            if role in taken:
                role = None
            else:
                taken.add(role)
        specs[dpid] = dataclasses.replace(spec, role=role, fields=tuple(fields))


def _by_default_first() -> list[str]:
    names = shipped_profiles()
    return sorted(names, key=lambda n: n != "earu-2p63a")
