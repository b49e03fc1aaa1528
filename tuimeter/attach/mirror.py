"""An attached viewer's copy of the service's meter state, kept from the snapshot and the updates.

It holds exactly the reports the service holds (a value the service forgot is gone here too), read
through the service's profile, so values(), the Device panel, settings() and the checks before a
write give here what they give on the service. Nothing in it is ever sent to the meter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuimeter.attach import wire
from tuimeter.core.datapoints import DPType
from tuimeter.core.frames import Frame
from tuimeter.core.profile import Profile
from tuimeter.core.reader import MeterReader
from tuimeter.core.settings import SettingValue


class Mirror(MeterReader):
    def __init__(self, profile: Profile) -> None:
        super().__init__(profile, log_frames=False, dp_events=False)
        self._writes: dict[str, SettingValue] = {}

    def writing(self) -> dict[str, SettingValue]:
        return dict(self._writes)

    def apply(self, changes: Mapping[str, Any]) -> None:
        """What changed on the service: dps reported or gone, wire types, writes under way."""
        for dpid, dptype in changes.get("types", {}).items():
            self.meter.note_type(int(dpid), DPType(int(dptype)))
        for item in changes.get("dps", ()):
            self.meter.store(wire.decode_dp(item))
        for dpid in changes.get("gone", ()):
            self.meter.forget_dp(int(dpid))
        if "writing" in changes:
            self._writes = {}
            for name, value in changes["writing"].items():
                decoded = wire.decode_setting_value(value)
                if decoded is not None:
                    self._writes[str(name)] = decoded

    def _on_frame(self, f: Frame, now: float) -> None:  # a mirror is told states, never fed frames
        raise NotImplementedError("a Mirror takes the service's states, not frames")
