"""A short soak (two simulated hours with noise, reboots and MCU requests); the full day is
benchmarks/soak.py, with its figures in docs/reliability.md."""

from __future__ import annotations

from benchmarks.soak import soak


async def test_short_soak_counters_add_up_and_memory_stays_flat() -> None:
    r = await soak(hours=2.0, speed=1440.0, period=0.05)
    assert r["failures"] == []
    assert r["bytes_accounted"]
    assert r["frames_in"] == r["intact_frames_sent"]  # every intact frame decoded, nothing else
    assert r["readings"] > 20 and r["mcu_restarts"] >= 1 and r["mcu_requests"] > 0
    assert r["bad_checksums"] > 0
    assert r["memory_growth_kib"] < 512
