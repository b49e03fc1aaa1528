"""The command line as a user runs it: real processes, a simulated meter on a real pty."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import TIMEOUT, until_sync

TUIMETER = [sys.executable, "-m", "tuimeter"]


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TUIMETER, *args], capture_output=True, text=True, timeout=timeout)


def logged_readings(log: Path) -> list[str]:
    """The complete reading lines of a --log file written so far (JSON lines or CSV)."""
    if not log.exists():
        return []
    lines = [ln for ln in log.read_text().splitlines(keepends=True) if ln.endswith("\n")]
    if log.suffix == ".csv":
        return [ln for ln in lines if not ln.startswith("ts,")]
    return [ln for ln in lines if '"type": "reading"' in ln]


def assert_one_clear_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0]


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[str]:
    """`tuimeter simulate` in its own process; yields the link path it made."""
    link = tmp_path / "ttyMETER"
    proc = subprocess.Popen([*TUIMETER, "simulate", "--link", str(link), "--period", "0.3", "--seed", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    device = proc.stdout.readline().strip()
    assert device.startswith("/dev/pts/")
    assert os.path.realpath(link) == device
    yield str(link)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(TIMEOUT) == 0


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip().startswith("tuimeter ")


def test_help_and_headless_never_import_textual(tmp_path: Path) -> None:
    log = tmp_path / "x.jsonl"
    code = (
        "import sys, threading, os, signal, time\n"
        "from pathlib import Path\n"
        "from tuimeter.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'textual' not in sys.modules, 'help imported textual'\n"
        f"log = Path({str(log)!r})\n"
        "def stop():  # Ctrl+C once a reading is logged (or after a minute, for the assertion to say so)\n"
        f"    end = time.monotonic() + {TIMEOUT * 2}\n"
        "    while time.monotonic() < end and not (log.exists() and '\"type\": \"reading\"' in log.read_text()):\n"
        "        time.sleep(0.05)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "threading.Thread(target=stop, daemon=True).start()\n"
        "rc = main(['--demo', '--headless', '--log', str(log)])\n"
        "print('TEXTUAL' if any(m.split('.')[0] == 'textual' for m in sys.modules) else 'CLEAN', rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT * 3)
    assert proc.stdout.strip().splitlines()[-1] == "CLEAN 0", proc.stdout + proc.stderr
    assert '"type": "reading"' in (tmp_path / "x.jsonl").read_text()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        ((), ("give a PORT",)),
        (("--baud", "fast", "/dev/null"), ("--baud", "invalid int")),
        (("/dev/ttyUSB0", "--set", "relay=maybe"), ("relay=on or relay=off",)),
        (("/dev/ttyUSB0", "--every", "-1"), ("must not be negative",)),
        (("--demo", "/dev/ttyUSB0"), ("not both",)),
        (("/dev/ttyUSB0", "--json"), ("--json goes with --query",)),
        (("--profile", "nope", "/dev/ttyUSB0"), ("no profile named 'nope'",)),
    ],
)
def test_bad_arguments(args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    assert_one_clear_line(run(*args), 2, *needles)


def test_missing_port(tmp_path: Path) -> None:
    assert_one_clear_line(run(str(tmp_path / "ttyUSB7"), "--headless"), 3, "no such device", "--list-ports")


def test_directory_as_port(tmp_path: Path) -> None:
    assert_one_clear_line(run(str(tmp_path), "--headless"), 3, "is a directory")


def test_plain_file_as_port(tmp_path: Path) -> None:
    f = tmp_path / "notaport"
    f.write_text("x")
    assert_one_clear_line(run(str(f), "--query"), 3, "not a serial port")


def test_unwritable_log_folder(meter: str, tmp_path: Path) -> None:
    assert_one_clear_line(run(meter, "--headless", "--log", str(tmp_path / "missing" / "m.jsonl")), 2,
                          "does not exist")


def test_busy_port(meter: str) -> None:
    first = subprocess.Popen([*TUIMETER, meter, "--headless"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert first.stdout is not None
        assert "link handshaking" in first.stdout.readline()
        assert_one_clear_line(run(meter, "--query"), 3, "busy")
    finally:
        first.terminate()
        first.wait(TIMEOUT)


def test_headless_jsonl_log_and_clean_sigterm(meter: str, tmp_path: Path) -> None:
    log = tmp_path / "meter.jsonl"
    log.write_text('{"type": "event", "event": "earlier run"}\n')  # appended to, never truncated
    proc = subprocess.Popen([*TUIMETER, meter, "--headless", "--log", str(log)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:  # (the pipes hold far more than these few lines: nothing blocks on them meanwhile)
        until_sync(lambda: len(logged_readings(log)) >= 10, what="10 readings logged",
                   show=lambda: len(logged_readings(log)))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    lines = log.read_text().splitlines()
    assert lines[0] == '{"type": "event", "event": "earlier run"}'
    records = [json.loads(line) for line in lines]  # every line complete
    readings = [r for r in records if r["type"] == "reading"]
    assert len(readings) >= 10
    r = readings[-1]
    assert set(r) == {"type", "ts", "voltage_v", "current_a", "power_w", "energy_kwh", "leakage_ma", "relay",
                      "faults"}
    assert r["ts"][-6] in "+-" and 200 < r["voltage_v"] < 250 and r["relay"] is True and r["faults"] == []
    events = [r["event"] for r in records if r["type"] == "event"]
    assert "link_up" in events and "product_info" in events and "relay_change" in events
    # the human status lines on stdout (plain: stdout is a pipe here): at most one a second, so fewer than
    # the readings of this meter, which reports every 0.3 s; the newest reading always shown last; the log
    # has every reading
    status = [line for line in out.splitlines() if " V " in line]
    assert 2 <= len(status) < len(readings) and "\x1b[" not in out
    assert "relay ON" in status[-1]
    assert f"{readings[-1]['voltage_v']:6.1f} V" in status[-1]


def test_headless_csv(meter: str, tmp_path: Path) -> None:
    log = tmp_path / "meter.csv"
    for _ in range(2):  # the header is written once, for a new file
        before = len(logged_readings(log))
        proc = subprocess.Popen([*TUIMETER, meter, "--headless", "--log", str(log), "--format", "csv"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        def two_more_with_the_relay() -> bool:  # the start-up dump may come in several reads on a busy machine
            rows = logged_readings(log)
            return len(rows) >= before + 2 and rows[-1].split(",")[6] == "True"  # noqa: B023

        try:
            until_sync(two_more_with_the_relay, what="2 more readings logged, the newest with the relay reported")
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(TIMEOUT)
        assert code == 0
    lines = log.read_text().splitlines()
    assert lines[0] == "ts,voltage_v,current_a,power_w,energy_kwh,leakage_ma,relay,faults"
    assert lines.count(lines[0]) == 1
    assert len(lines) >= 5
    assert lines[-1].split(",")[6] == "True"


def test_set_relay_waits_for_confirmation(meter: str) -> None:
    proc = run(meter, "--set", "relay=off")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "relay off (confirmed by the meter)"
    proc = run(meter, "--set", "relay=off")
    assert proc.returncode == 0 and "already off" in proc.stdout
    assert run(meter, "--set", "relay=on").stdout.strip() == "relay on (confirmed by the meter)"


def test_set_relay_refused_in_read_only(meter: str) -> None:
    assert_one_clear_line(run(meter, "--set", "relay=off", "--read-only"), 2, "read-only")
    query = json.loads(run(meter, "--query", "--json").stdout)
    assert query["reading"]["relay"] is True


def test_query_prints_every_datapoint(meter: str) -> None:
    proc = run(meter, "--query", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    ids = [d["id"] for d in report["datapoints"]]
    assert ids == [1, 6, 9, 11, 12, 13, 14, 16, 19, 101, 102, 103, 104, 105, 106]
    assert report["product"]["product_id"] == "r9kg2g1uhhyicycb"
    assert report["values"]["breaker_id"] == "FSE-F723C558128885"
    text = run(meter, "--query").stdout
    assert "dp 19 breaker_id: FSE-F723C558128885" in text
    assert "dp 104 leakage_threshold: 50 mA" in text


def test_query_on_silent_port_times_out_with_hint() -> None:
    master, slave = os.openpty()
    try:
        proc = run(os.ttyname(slave), "--query", "--timeout", "1.5")
        assert_one_clear_line(proc, 4, "no start-up with the meter", "--baud 115200")
    finally:
        os.close(master)
        os.close(slave)


def test_list_ports() -> None:
    proc = run("--list-ports")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr


def test_simulate_bad_link_folder(tmp_path: Path) -> None:
    proc = run("simulate", "--link", str(tmp_path / "no" / "tty"))
    assert_one_clear_line(proc, 2, "cannot create")


def test_every_limits_reading_rate(meter: str, tmp_path: Path) -> None:
    log = tmp_path / "slow.jsonl"
    proc = subprocess.Popen([*TUIMETER, meter, "--headless", "--log", str(log), "--every", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:  # the meter reports every 0.3 s
        until_sync(lambda: len(logged_readings(log)) >= 3, what="3 readings logged")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(TIMEOUT)
    assert code == 0
    from datetime import datetime

    # the readings' own times (when the meter reported them), not the test's clock: at least 1 s apart
    stamps = [datetime.fromisoformat(json.loads(line)["ts"]) for line in log.read_text().splitlines()
              if '"reading"' in line]
    assert len(stamps) >= 3
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert all(g >= 0.9 for g in gaps[:-1])  # the last one may be the reading held at shutdown


# ---- settings ------------------------------------------------------------------------------

def settings_json(meter: str) -> dict[str, Any]:
    proc = run(meter, "--settings", "--json")
    assert proc.returncode == 0, proc.stderr
    return {s["name"]: s for s in json.loads(proc.stdout)}


def test_set_writes_settings_in_order_each_confirmed_and_settings_lists_them(meter: str, tmp_path: Path) -> None:
    log = tmp_path / "changes.jsonl"
    proc = run(meter, "--set", "over_voltage_threshold=265", "--set", "104=30mA", "--set", "clear_energy",
               "--log", str(log))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["over_voltage_threshold 265 V (confirmed by the meter)",
                                        "leakage_threshold 30 mA (confirmed by the meter)",
                                        "clear_energy done (confirmed by the meter)"]
    changes = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(c["event"], c["name"], c["old"], c["new"], c["source"], c["result"]) for c in changes] == [
        ("setting_change", "over_voltage_threshold", 275, 265, "cli", "confirmed"),
        ("setting_change", "leakage_threshold", 50, 30, "cli", "confirmed"),
        ("setting_change", "clear_energy", False, True, "cli", "confirmed")]
    listed = settings_json(meter)  # a new run: the values come from the meter's own reports
    assert (listed["over_voltage_threshold"]["value"], listed["leakage_threshold"]["value"]) == (265, 30)
    assert (listed["over_voltage_threshold"]["min"], listed["over_voltage_threshold"]["max"]) == (250, 300)
    assert listed["leakage_threshold"]["weakens"]["above"] == 30
    rows = {line.split()[0]: line.split() for line in run(meter, "--settings").stdout.splitlines()}
    assert rows["over_voltage_threshold"][1:4] == ["265", "V", "250–300"]
    assert "weakens protection" in " ".join(rows["leakage_threshold"])


@pytest.mark.parametrize(("item", "why"), [
    ("over_voltage_threshold=320", "out of range 250–300 V; nothing sent"),
    ("charge_energy=1.234", "not on its step of 0.01"),
    ("104=30V", "is in mA, not V"),
    ("volume=3", "'volume' is not a writable setting of profile earu-2p63a (writable: switch_prepayment"),
])
def test_a_setting_refused_before_sending_is_one_clear_line_and_exit_2(meter: str, item: str, why: str) -> None:
    assert_one_clear_line(run(meter, "--set", item), 2, why)


def test_nothing_after_a_refused_setting_is_applied(meter: str) -> None:
    proc = run(meter, "--set", "over_voltage_threshold=320", "--set", "under_voltage_threshold=180")
    assert proc.returncode == 2 and "not applied: under_voltage_threshold=180" in proc.stderr
    assert settings_json(meter)["under_voltage_threshold"]["value"] == 170


def test_a_weakening_change_needs_the_explicit_flag(meter: str) -> None:
    risk = "Above 30 mA the leakage trip no longer protects people from electric shock"
    assert_one_clear_line(run(meter, "--set", "leakage_threshold=40"), 2, risk, "--i-understand-weaker-protection")
    assert settings_json(meter)["leakage_threshold"]["value"] == 50
    proc = run(meter, "--set", "leakage_threshold=40", "--i-understand-weaker-protection")
    assert proc.returncode == 0 and "leakage_threshold 40 mA (confirmed by the meter)" in proc.stdout
    assert settings_json(meter)["leakage_threshold"]["value"] == 40


def test_read_only_refuses_settings(meter: str) -> None:
    assert_one_clear_line(run(meter, "--set", "alarm_mute=on", "--read-only"), 2,
                          "read-only mode: settings are not written")


def test_a_setting_the_meter_does_not_confirm_exits_4_and_the_meter_keeps_its_value(meter: str,
                                                                                   tmp_path: Path) -> None:
    # a user's profile wider than what this meter accepts: the meter ignores 310 V and says nothing
    from dataclasses import replace

    from tuimeter.analyzer.export import profile_toml
    from tuimeter.core.profile import load_profile
    from tuimeter.core.settings import Range

    shipped = load_profile("earu-2p63a")
    settings = tuple(replace(x, range=Range(250, 320), by_product={}) if x.name == "over_voltage_threshold" else x
                     for x in shipped.settings)
    wide = tmp_path / "wide.toml"
    wide.write_text(profile_toml(replace(shipped, settings=settings)))
    proc = run(meter, "--profile", str(wide), "--set", "over_voltage_threshold=310")
    assert proc.returncode == 4, proc.stderr
    assert "did not confirm over_voltage_threshold 310 V" in proc.stderr and "unknown" in proc.stderr
    assert settings_json(meter)["over_voltage_threshold"]["value"] == 275


def test_a_trip_is_named_in_the_status_lines_and_the_log(tmp_path: Path) -> None:
    from tests.headless_process import Tuimeter

    t = Tuimeter(tmp_path, "--demo-faults", "surge_at=2")
    try:
        t.wait_output("the meter tripped: ov_vol; relay off")
        until_sync(lambda: t.events("trip"), what="a trip event in the log")
        assert t.events("trip")[0]["reasons"] == ["ov_vol"]
        # the readings show the surge before the relay opened
        assert any((r["voltage_v"] or 0) > 275 and r["relay"] for r in t.readings())
    finally:
        assert t.stop() == 0


def test_a_recording_keeps_each_settings_write_next_to_its_bytes(meter: str, tmp_path: Path) -> None:
    rec = tmp_path / "changes.rec"
    assert run(meter, "--set", "alarm_mute=on", "--set", "over_voltage_threshold=320", "--record",
               str(rec)).returncode == 2
    lines = [json.loads(line) for line in rec.read_text().splitlines()]
    changes = [(x["name"], x["result"]) for x in lines if x.get("event") == "setting_change"]
    assert changes == [("alarm_mute", "confirmed"), ("over_voltage_threshold", "refused")]
    assert all("t" in x for x in lines if x.get("event"))
    decoded = run("decode", str(rec), "--json")  # the recording still decodes: the event lines are skipped
    assert decoded.returncode == 0 and "alarm_mute: on" in decoded.stdout
