"""A short run of the fuzzer in benchmarks/fuzz.py (the full run: 10^6 streams, see docs/reliability.md)."""

from __future__ import annotations

import pytest

import benchmarks.fuzz
from benchmarks.fuzz import fuzz, recovery_check


def test_fuzz_short_run_nothing_raises_or_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    # the benchmark calls a stream slower than 0.25 s a hang; on a busy machine that is only a slow stream,
    # so here no stream has a time limit of its own: a real hang is one past the suite's per-test timeout
    monkeypatch.setattr(benchmarks.fuzz, "SLOW_STREAM_S", float("inf"))
    result = fuzz(5_000, seed=7)
    assert result["streams"] == 5_000
    assert result["noise_only_frames"] > 0  # the recovery class was exercised


def test_noise_between_frames_never_costs_a_frame() -> None:
    recovery_check(3_000, seed=8)
