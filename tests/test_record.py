"""--record keeps every byte each way; decode reads the recording back to the same readings."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.waiting import TIMEOUT, until_sync
from tuimeter.recorder import read_recording
from tuimeter.records import read_jsonl

TUIMETER = [sys.executable, "-m", "tuimeter"]


def test_simulate_record_decode_gives_the_same_readings(tmp_path: Path) -> None:
    rec, log = tmp_path / "session.rec", tmp_path / "readings.jsonl"
    proc = subprocess.Popen([*TUIMETER, "--demo", "--headless", "--record", str(rec), "--log", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def phase_readings() -> int:
        return sum(r["type"] == "reading" and r["voltage_v"] is not None for r in read_jsonl(log).records) \
            if log.exists() else 0

    try:
        until_sync(lambda: phase_readings() >= 2, what="2 readings with a voltage logged", show=phase_readings)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(TIMEOUT)
    assert code == 0

    chunks = read_recording(rec.read_text())
    assert chunks is not None
    assert {d for _, d, _ in chunks} == {"rx", "tx"}
    assert [t for t, _, _ in chunks] == sorted(t for t, _, _ in chunks)
    assert b"".join(c for _, d, c in chunks if d == "tx").startswith(bytes.fromhex("55AA00000000FF"))

    decoded = json.loads(subprocess.run([*TUIMETER, "decode", str(rec), "--json"], capture_output=True,
                                        text=True, check=True).stdout)
    frames = [i for i in decoded["items"] if i["kind"] == "frame"]
    assert {"host", "mcu"} == {f["direction"] for f in frames}
    assert decoded["totals"]["per_command"]["heartbeat"] >= 2
    # every phase_a report in the log came from a frame the recording holds
    logged = [(r["voltage_v"], r["current_a"], r["power_w"]) for r in read_jsonl(log).records
              if r["type"] == "reading" and r["voltage_v"] is not None]
    recorded = []
    for f in frames:
        for dp in f["datapoints"]:
            if dp["id"] == 6:
                v = bytes.fromhex(dp["value"])
                recorded.append((int.from_bytes(v[0:2], "big") / 10, int.from_bytes(v[2:5], "big") / 1000,
                                 int.from_bytes(v[5:8], "big")))
    assert logged and set(logged) <= set(recorded)


def test_unwritable_recording_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run([*TUIMETER, "--demo", "--headless", "--record", str(tmp_path / "no" / "x.rec")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot write recording" in proc.stderr.splitlines()[-1]
