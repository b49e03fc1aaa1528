"""Benchmark 1, core throughput: a recorded stream of 10^6 mixed frames through the sans-I/O core
(StreamParser → datapoints → MeterState → Readings, inside HostMachine.receive as the host runs it),
beside a minimal reference loop (find header, check sum, slice) over the same reads, as the floor.
No budget of its own: what the core costs a running tuimeter is in benchmarks/headless.py (the share
of the headless process's CPU that is protocol work).

    python -m benchmarks.core [--frames 1000000] [--runs 5] [--chunk 256]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from benchmarks.common import chunked, machine, machine_receive, online_machine, ratio, recorded_stream, summary


def run_core(chunks: list[bytes], screen: bool) -> tuple[float, int, int]:
    """CPU seconds to take every read through the machine, frames decoded, readings built."""
    m = online_machine(screen)
    before = m.frames_in
    readings = 0
    t0 = time.process_time()
    for chunk in chunks:
        machine_receive(m, chunk, 100.0)
        readings += len(m.events())  # drained as the session does (it hands them to the bus)
        m.data_to_send()
    elapsed = time.process_time() - t0
    return elapsed, m.frames_in - before, readings


def run_floor(chunks: list[bytes]) -> tuple[float, int]:
    """The least any Python parser must do: find 55 AA, read the length, check the sum, slice."""
    frames = 0
    buf = b""
    t0 = time.process_time()
    for chunk in chunks:
        buf += chunk
        i, n = 0, len(buf)
        while True:
            i = buf.find(b"\x55\xaa", i)
            if i < 0 or i + 7 > n:
                break
            end = i + 7 + ((buf[i + 4] << 8) | buf[i + 5])
            if end > n:
                break
            if sum(buf[i:end - 1]) & 0xFF == buf[end - 1]:
                _frame = buf[i:end]
                frames += 1
                i = end
            else:
                i += 1
        buf = buf[i:] if i >= 0 else buf[-1:]
    return time.process_time() - t0, frames


def bench(frames: int, runs: int, chunk: int) -> dict[str, Any]:
    stream, valid = recorded_stream(frames)
    chunks = chunked(stream, chunk)
    core_fps: list[float] = []
    screen_fps: list[float] = []
    floor_fps: list[float] = []
    decoded = 0
    for _ in range(runs):  # interleaved, so a busy moment on the machine hits all three alike
        s, floor_frames = run_floor(chunks)
        floor_fps.append(floor_frames / s)
        s, decoded, _ = run_core(chunks, screen=False)
        core_fps.append(decoded / s)
        s, _, _ = run_core(chunks, screen=True)
        screen_fps.append(decoded / s)
    core, floor = summary(core_fps, 0), summary(floor_fps, 0)
    return {
        "benchmark": "core throughput", "machine": machine(), "frames": valid, "bytes": len(stream),
        "read_size": chunk, "decoded": decoded, "timer": "CPU time of the benchmark process",
        "core_frames_per_s": core, "core_with_frame_log_frames_per_s": summary(screen_fps, 0),
        "reference_floor_frames_per_s": floor, "floor_over_core": ratio(floor["median"], core["median"]),
        "budget": "none of its own (see headless: protocol_work_share_of_headless_cpu)",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=256, help="bytes per read (default 256)")
    args = ap.parse_args()
    print(json.dumps(bench(args.frames, args.runs, args.chunk), indent=2))


if __name__ == "__main__":
    main()
