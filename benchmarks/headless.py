"""Benchmark 2, headless at line rate: a meter streaming dp 6 reports as fast as 115200 baud carries
them (21-byte frames: ~548 a second) over a pseudo-terminal, into `tuimeter PORT --headless --log
FILE`; beside a process that only reads and discards the same bytes (pyserial-asyncio-fast, as
tuimeter reads). Reports CPU seconds per wall second of each, and frame written → record in the log
file latency (each frame carries its sequence number in the leakage field).

    python -m benchmarks.headless [--seconds 20] [--runs 3]
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Any

from benchmarks.common import MCU, machine, percentile, phase_a, summary, timed_cli
from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DPType, make_datapoint
from tuimeter.core.frames import encode_frame
from tuimeter.sim.mcu import SimulatedMeter

BAUD = 115200
FRAME_BYTES = 21  # 7 framing + 14 dp bytes; 10 bits a byte on the wire
RATE = BAUD / 10 / FRAME_BYTES
TICK = 0.002  # the writer hands over whatever is due every 2 ms, as a USB-UART adapter would

READER = """
import asyncio, sys, serial_asyncio_fast
class Discard(asyncio.Protocol):
    def data_received(self, data): pass
async def main():
    await serial_asyncio_fast.create_serial_connection(asyncio.get_running_loop(), Discard, sys.argv[1],
                                                       baudrate=115200)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(seq: int) -> bytes:
    dp = make_datapoint(6, DPType.RAW, phase_a(230 + (seq % 50) / 10, 1.5, 340, seq % 65536))
    return encode_frame(Command.DP_REPORT, dp.encode(), MCU)


class Meter:
    """The MCU end of the pty: answers the start-up as the simulated meter does, then streams."""

    def __init__(self, master: int, handshake: bool, rate: float = RATE) -> None:
        self.master = master
        self.rate = rate
        self.sim = SimulatedMeter(seed=1, period=3600.0, start=time.monotonic()) if handshake else None
        self.sent: dict[int, float] = {}  # seq → when its frame was written
        self.streaming = not handshake
        self.stop = False

    def on_readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        if self.sim is not None:
            now = time.monotonic()
            self.sim.receive(data, now)
            self.sim.tick(now)
            self._write(self.sim.data_to_send())
            self.streaming = self.streaming or self.sim.reporting

    def _write(self, data: bytes) -> None:
        while data:
            try:
                data = data[os.write(self.master, data):]
            except BlockingIOError:
                time.sleep(0.0005)

    async def stream(self) -> None:
        seq = 0
        start = None
        while not self.stop:
            await asyncio.sleep(TICK)
            if not self.streaming:
                continue
            now = time.monotonic()
            start = start or now
            due = int((now - start) * self.rate)
            chunk = []
            while seq < due:
                chunk.append(report(seq))
                self.sent[seq % 65536] = now
                seq += 1
            self._write(b"".join(chunk))


def tail_latencies(log: Path, meter: Meter, stop: threading.Event, out: list[float]) -> None:
    """Poll the record file. A record covers every frame since the one before it (several reports read
    at once make one reading); its latency is counted from the oldest of them, the worst case."""
    pos = 0
    previous: int | None = None
    while not stop.is_set():
        try:
            with log.open("rb") as fh:
                fh.seek(pos)
                data = fh.read()
        except FileNotFoundError:
            data = b""
        now = time.monotonic()
        if data:
            end = data.rfind(b"\n") + 1
            pos += end
            for line in data[:end].splitlines():
                rec = json.loads(line)
                if rec.get("type") == "reading" and rec.get("leakage_ma") is not None:
                    seq = int(rec["leakage_ma"])
                    oldest = seq if previous is None else (previous + 1) % 65536
                    previous = seq
                    sent = meter.sent.get(oldest)
                    if sent is not None:
                        out.append(now - sent)
        time.sleep(0.0005)


async def run_once(seconds: float, reference: bool) -> dict[str, float]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    port = os.ttyname(slave)
    meter = Meter(master, handshake=not reference)
    loop = asyncio.get_running_loop()
    loop.add_reader(master, meter.on_readable)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "meter.jsonl"
        if reference:
            cmd = [sys.executable, "-c", READER, port]
        else:
            cmd = [sys.executable, "-m", "tuimeter", port, "--headless", "--baud", str(BAUD), "--log", str(log)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        streamer = asyncio.create_task(meter.stream())
        latencies: list[float] = []
        stop = threading.Event()
        tailer = threading.Thread(target=tail_latencies, args=(log, meter, stop, latencies), daemon=True)
        tailer.start()
        try:
            deadline = time.monotonic() + 20
            while not meter.streaming or len(meter.sent) < RATE * 2:  # start-up done, two seconds in
                if time.monotonic() > deadline:
                    raise RuntimeError("the stream did not start")
                await asyncio.sleep(0.05)
            latencies.clear()
            c0, t0 = cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(seconds)
            c1, t1 = cpu_seconds(proc.pid), time.monotonic()
            peak = peak_rss_mb(proc.pid)
        finally:
            meter.stop = True
            stop.set()
            streamer.cancel()
            proc.terminate()
            proc.wait(10)
            loop.remove_reader(master)
            os.close(master)
            os.close(slave)
    result = {"cpu_per_wall_s": (c1 - c0) / (t1 - t0), "peak_rss_mb": peak}
    if not reference:
        result["latency_p50_ms"] = percentile(latencies, 50) * 1000
        result["latency_p99_ms"] = percentile(latencies, 99) * 1000
        result["readings"] = len(latencies)
    return result


def bench(seconds: float, runs: int) -> dict[str, Any]:
    tuimeter, reference = [], []
    for _ in range(runs):
        tuimeter.append(asyncio.run(run_once(seconds, reference=False)))
        reference.append(asyncio.run(run_once(seconds, reference=True)))
    return {
        "benchmark": "headless at line rate", "machine": machine(),
        "line": f"{BAUD} baud, {RATE:.0f} dp 6 frames/s", "seconds_per_run": seconds,
        "tuimeter_cpu_percent_of_a_core": summary([r["cpu_per_wall_s"] * 100 for r in tuimeter], 2),
        "reader_only_cpu_percent_of_a_core": summary([r["cpu_per_wall_s"] * 100 for r in reference], 2),
        "latency_p50_ms": summary([r["latency_p50_ms"] for r in tuimeter], 2),
        "latency_p99_ms": summary([r["latency_p99_ms"] for r in tuimeter], 2),
        "readings_per_run": summary([r["readings"] for r in tuimeter], 0),
        "tuimeter_peak_rss_mb": summary([r["peak_rss_mb"] for r in tuimeter], 1),
        "budget": "tuimeter <= 3 % of one core; latency p99 <= 20 ms",
    }


def main() -> None:
    timed_cli(__doc__, bench)


if __name__ == "__main__":
    main()
