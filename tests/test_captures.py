"""Golden vectors: every real capture from the teardown thread gives the frames and readings listed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, load_captures
from tuimeter.core.datapoints import decode_datapoints
from tuimeter.core.frames import Frame, StreamParser
from tuimeter.core.meter import MeterState
from tuimeter.core.profile import load_profile

CAPTURES = load_captures()


def parse_all(hex_text: str) -> list[Frame]:
    p = StreamParser()
    events = p.feed(bytes.fromhex(hex_text)) + p.flush()
    return [e for e in events if isinstance(e, Frame)]


def expected_dp(d: dict[str, Any]) -> tuple[int, str, object]:
    value = d["value"]
    return d["id"], d["type"], bytes.fromhex(value) if d["type"] == "raw" else value


@pytest.mark.parametrize("cap", CAPTURES, ids=[c["name"] for c in CAPTURES])
def test_capture_frames(cap: dict[str, Any]) -> None:
    frames = parse_all(cap["hex"])
    expected = cap["expect"]["frames"]
    assert len(frames) == len(expected)
    for f, e in zip(frames, expected, strict=True):
        assert (f.version, f.command) == (e["ver"], e["cmd"])
        if "data" in e:
            assert f.payload.hex() == e["data"]
        if "dps" in e:
            dps, problems = decode_datapoints(f.payload)
            assert problems == []
            assert [(d.id, d.type.label, d.value) for d in dps] == [expected_dp(x) for x in e["dps"]]


@pytest.mark.parametrize("cap", [c for c in CAPTURES if "reading" in c["expect"]],
                         ids=[c["name"] for c in CAPTURES if "reading" in c["expect"]])
def test_capture_reading(cap: dict[str, Any]) -> None:
    meter = MeterState(load_profile())
    for f in parse_all(cap["hex"]):
        for dp in decode_datapoints(f.payload)[0]:
            if dp.id == 6:  # the reading the capture lists is the phase_a report's
                meter.apply(dp)
    r = meter.reading(datetime.now(UTC))
    for key, value in cap["expect"]["reading"].items():
        assert getattr(r, key) == pytest.approx(value), key


def test_noise_captures_hold_no_frame_and_do_not_hang() -> None:
    for cap in CAPTURES:
        if not cap["expect"]["frames"]:
            p = StreamParser()
            assert [e for e in p.feed(bytes.fromhex(cap["hex"])) + p.flush() if isinstance(e, Frame)] == []
            assert p.buffered == 0


def test_repo_copy_matches_shared_captures() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "captures" / "teardown-thread.json"
    if not shared.exists():
        pytest.skip("no ../shared beside this checkout")
    assert shared.read_bytes() == (DATA / "teardown-thread.json").read_bytes()
