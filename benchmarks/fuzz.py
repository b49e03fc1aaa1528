"""Fuzz the core: mutated capture and simulator streams through the parser, the datapoint decoder,
the meter model and the frame describer. Nothing may raise or hang; frames with only noise
inserted between them must all come back.

    python -m benchmarks.fuzz [--streams N] [--seed S]      (default: 10^6 streams)
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

from tuimeter.core.datapoints import decode_datapoints
from tuimeter.core.describe import describe_frame
from tuimeter.core.frames import Frame, StreamParser
from tuimeter.core.meter import MeterState
from tuimeter.core.profile import load_profile
from tuimeter.sim.mcu import SimulatedMeter

CAPTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "teardown-thread.json"
SLOW_STREAM_S = 0.25  # a stream taking longer than this counts as a hang


def corpus() -> list[bytes]:
    """The real captures, and streams from the simulated meter (dumps, reports, replies)."""
    streams = [bytes.fromhex(c["hex"]) for c in json.loads(CAPTURES.read_text())["captures"]]
    for seed, variant in ((1, "10byte"), (2, "8byte"), (3, "10byte")):
        sim = SimulatedMeter(seed=seed, period=1.0, speed=600.0, variant=variant)
        for cmd in (0, 0, 1, 2, 3, 8):
            sim.receive(bytes((0x55, 0xAA, 0, cmd, 0, 0, (0xFF + cmd) & 0xFF)), 0.0)
        streams.append(sim.data_to_send())
        for t in range(1, 30):
            sim.tick(float(t))
            streams.append(sim.data_to_send())
        for cmd in (0x1C, 0x2B, 0x22, 0x34, 0x04, 0x05):
            sim.send_request(cmd)
        streams.append(sim.data_to_send())
    return [s for s in streams if s]


def frames_in(stream: bytes) -> list[Frame]:
    p = StreamParser()
    return [e for e in p.feed(stream) + p.flush() if isinstance(e, Frame)]


def mutate(rng: random.Random, stream: bytes, others: list[bytes]) -> tuple[bytes, list[Frame] | None]:
    """A mutated stream, and the frames it must still give (None: no promise beyond not failing)."""
    kind = rng.randrange(7)
    data = bytearray(stream)
    if kind == 0:  # noise between frames (no 55 AA in it): every frame must come back
        frames = frames_in(stream)
        out = bytearray()
        for f in frames:
            out += rng.randbytes(rng.randint(0, 8)).replace(b"\x55\xaa", b"\x55\xab") + f.raw
        return bytes(out), frames
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        at = rng.randrange(len(data))
        if kind == 1:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 2:
            data[at:at] = bytes((rng.choice((0x55, 0xAA, 0x00, 0xFF, rng.randrange(256))),))
        elif kind == 3:
            del data[at:at + rng.randint(1, 4)]
        elif kind == 4:
            other = rng.choice(others)
            data[at:] = other[rng.randrange(len(other)):]
        elif kind == 5:
            data[at:at] = data[at:at + rng.randint(1, 16)]
        else:  # absurd lengths
            data[at:at] = bytes((0x55, 0xAA, 3, 7, rng.randrange(256), rng.randrange(256)))
    return bytes(data), None


def run_stream(stream: bytes, rng: random.Random, meter: MeterState) -> list[Frame]:
    parser = StreamParser(max_length=1024)
    frames: list[Frame] = []
    pos, now = 0, 0.0
    while pos < len(stream):
        n = rng.randint(1, 64)
        events = parser.feed(stream[pos:pos + n], now)
        pos += n
        now += rng.choice((0.001, 0.01, 0.6))  # sometimes a pause longer than the inter-byte timeout
        events += parser.check_timeout(now)
        frames += [e for e in events if isinstance(e, Frame)]
    frames += [e for e in parser.flush() if isinstance(e, Frame)]
    for f in frames:
        for dp in decode_datapoints(f.payload)[0]:
            meter.apply(dp)
        describe_frame(f, meter)
    s = parser.stats
    assert s.bytes_in == s.frame_bytes + s.bytes_skipped, "byte counters inconsistent"
    return frames


def fuzz(streams: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    base = corpus()
    meter = MeterState(load_profile())
    t0 = time.perf_counter()
    slowest, promised, recovered, total_bytes = 0.0, 0, 0, 0
    for i in range(streams):
        stream, expect = mutate(rng, rng.choice(base), base)
        total_bytes += len(stream)
        t = time.perf_counter()
        try:
            frames = run_stream(stream, rng, meter)
        except Exception as exc:
            raise AssertionError(f"stream {i} ({stream.hex()}) raised {exc!r}") from exc
        took = time.perf_counter() - t
        slowest = max(slowest, took)
        if took > SLOW_STREAM_S:
            raise AssertionError(f"stream {i} took {took:.3f} s: {stream.hex()}")
        if expect is not None:
            # pauses inside a frame may drop it as stalled; with none, all must come back
            promised += len(expect)
            recovered += sum(1 for f in frames if f in expect)
    elapsed = time.perf_counter() - t0
    return {"streams": streams, "bytes": total_bytes, "seconds": round(elapsed, 1),
            "streams_per_s": round(streams / elapsed), "slowest_stream_ms": round(slowest * 1000, 2),
            "noise_only_frames": promised, "recovered": recovered, "seed": seed}


def recovery_check(streams: int, seed: int) -> None:
    """Noise between frames, fed without pauses: every frame must come back, exactly."""
    rng = random.Random(seed)
    base = corpus()
    for _ in range(streams):
        stream, expect = mutate(rng, rng.choice(base), base)
        if expect is None:
            continue
        p = StreamParser()
        got = [e for e in p.feed(stream) + p.flush() if isinstance(e, Frame)]
        assert got == expect, stream.hex()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    recovery_check(min(args.streams, 100_000), args.seed)
    result = fuzz(args.streams, args.seed)
    result["machine"] = f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
