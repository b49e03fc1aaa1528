"""`tuimeter decode` on the teardown thread's captures, as hex, binary files, stdin and per side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_captures
from tuimeter.analyzer.decode import parse_hex
from tuimeter.core.datapoints import DPType, make_datapoint
from tuimeter.core.profile import choose_profile

CAPTURES = {c["name"]: c for c in load_captures()}
TUIMETER = [sys.executable, "-m", "tuimeter", "decode"]


def decode(*args: str, stdin: bytes | None = None) -> dict[str, Any]:
    proc = subprocess.run([*TUIMETER, *args, "--json"], capture_output=True, input=stdin, timeout=30)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def frames(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in result["items"] if i["kind"] == "frame"]


@pytest.mark.parametrize("name", list(CAPTURES))
def test_every_capture_decodes_to_its_listed_frames(name: str) -> None:
    cap = CAPTURES[name]
    got = frames(decode(cap["hex"]))
    expected = cap["expect"]["frames"]
    assert [(f["version"], f["command"]) for f in got] == [(e["ver"], e["cmd"]) for e in expected]
    for f, e in zip(got, expected, strict=True):
        if "dps" in e:
            assert [(d["id"], d["type"]) for d in f["datapoints"]] == [(x["id"], x["type"]) for x in e["dps"]]
        assert f["direction"] == cap["from"]


def test_phase_a_decoded_with_names_units_and_scaling() -> None:
    (f,) = frames(decode(CAPTURES["rx-no-load-phase-a"]["hex"]))
    assert f["datapoints"][0]["text"] == "dp 6 phase_a: voltage 249.0 V, current 0.000 A, power 0 W, leakage 14 mA"


def test_junk_and_totals_reported() -> None:
    result = decode(CAPTURES["rx-soldering-iron-then-switch-off"]["hex"])
    totals = result["totals"]
    assert totals["frames"] == 2 and totals["per_command"] == {"dp report": 2}
    assert totals["per_dp"] == {"6": 1, "16": 1}
    assert totals["junk_bytes"] > 50
    assert any(i["kind"] == "junk" for i in result["items"])


def test_both_sides_from_hex_dump_files(tmp_path: Path) -> None:
    host = tmp_path / "tx.txt"  # as a terminal program saves it: spaced, wrapped
    raw = CAPTURES["tx-stock-module-power-on-and-idle"]["hex"]
    host.write_text("\n".join(" ".join(raw[i:i + 2] for i in range(j, min(j + 32, len(raw)), 2))
                              for j in range(0, len(raw), 32)))
    mcu = tmp_path / "rx.bin"  # and binary
    mcu.write_bytes(bytes.fromhex(CAPTURES["rx-mains-relay-off-and-heartbeats"]["hex"]))
    result = decode("--host", str(host), "--mcu", str(mcu))
    got = frames(result)
    assert [f["direction"] for f in got].count("host") == 10 and [f["direction"] for f in got].count("mcu") == 7
    assert [f["command_name"] for f in got][:4] == ["heartbeat", "product info", "working mode", "network status"]


def test_stdin_with_0x_and_commas() -> None:
    result = decode("-", stdin=b"0x55, 0xAA, 0x03, 0x00, 0x00, 0x01, 0x00, 0x03\n")
    (f,) = frames(result)
    assert f["text"] == "heartbeat reply: first since MCU boot"


def test_bad_checksum_counted_not_decoded() -> None:
    result = decode("55AA0307000510010001002155AA030000010104")
    assert result["totals"]["bad_checksums"] == 1
    assert [f["command_name"] for f in frames(result)] == ["heartbeat"]


def test_plain_text_output_and_bad_input() -> None:
    out = subprocess.run([*TUIMETER, CAPTURES["rx-breaker-id"]["hex"]], capture_output=True, text=True).stdout
    assert "dp 19 breaker_id: FSE-F723C558128885" in out and "1 frames" in out
    bad = subprocess.run([*TUIMETER, "not-hex"], capture_output=True, text=True)
    assert bad.returncode == 2 and "neither a file nor hex" in bad.stderr and "Traceback" not in bad.stderr


def test_parse_hex_forms() -> None:
    assert parse_hex("55 AA\n00-00:00,0x00 ff") == bytes.fromhex("55AA00000000FF")
    assert parse_hex("55A") is None and parse_hex("hello") is None


def test_profile_chosen_from_what_the_meter_reports() -> None:
    ten = make_datapoint(6, DPType.RAW, bytes(10))
    eight = make_datapoint(6, DPType.RAW, bytes(8))
    assert choose_profile(None, {6: ten, 105: make_datapoint(105, DPType.BOOL, True)})[0].name == "earu-2p63a"
    assert choose_profile(None, {6: eight, 15: make_datapoint(15, DPType.VALUE, 3)})[0].name == "tompd-63"
    plug = {18: make_datapoint(18, DPType.VALUE, 153), 19: make_datapoint(19, DPType.VALUE, 350),
            20: make_datapoint(20, DPType.VALUE, 2326)}
    assert choose_profile(None, plug)[0].name == "plug-meter"
    profile, why = choose_profile("wcihaluccfsoayqa", {6: ten})
    assert profile.name == "tompd-63" and "product id" in why
