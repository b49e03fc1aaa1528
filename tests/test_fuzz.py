"""A short run of the fuzzer in benchmarks/fuzz.py (the full run: 10^6 streams, see docs/reliability.md)."""

from __future__ import annotations

from benchmarks.fuzz import fuzz, recovery_check


def test_fuzz_short_run_nothing_raises_or_hangs() -> None:
    result = fuzz(5_000, seed=7)
    assert result["streams"] == 5_000
    assert result["noise_only_frames"] > 0  # the recovery class was exercised


def test_noise_between_frames_never_costs_a_frame() -> None:
    recovery_check(3_000, seed=8)
