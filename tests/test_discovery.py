"""Discovery: every dp seen, guesses, edits; export as a profile and an OpenBeken snippet; round trips."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Digits, Input

from tests.waiting import pilot_until
from tuimeter.analyzer.discovery import Discovery
from tuimeter.analyzer.export import obk_autoexec, profile_toml
from tuimeter.core.commands import Command
from tuimeter.core.datapoints import DPType, make_datapoint
from tuimeter.core.frames import encode_frame
from tuimeter.core.meter import MeterState
from tuimeter.core.profile import load_profile, parse_profile, shipped_profiles
from tuimeter.host.replay import ReplaySession
from tuimeter.recorder import Recording
from tuimeter.tui.app import TuimeterApp
from tuimeter.tui.discovery import AskText, DiscoveryScreen

TUIMETER = [sys.executable, "-m", "tuimeter"]
PHASE_10 = bytes.fromhex("0974000064" "00001B" "0000")  # 242.0 V, 0.100 A, 27 W, 0 mA (teardown thread)


def test_counts_reports_changes_and_rate() -> None:
    d = Discovery()
    assert d.observe(make_datapoint(1, DPType.VALUE, 100), 0.0) is True
    assert d.observe(make_datapoint(1, DPType.VALUE, 100), 30.0) is False
    d.observe(make_datapoint(1, DPType.VALUE, 101), 60.0)
    s = d.seen[1]
    assert (s.reports, s.changes, s.changes_per_minute()) == (3, 1, 1.0)
    assert [dp.value for _, dp in s.history] == [100, 101]


def test_guesses_come_from_the_profile_whose_layout_fits() -> None:
    d = Discovery()
    d.observe(make_datapoint(6, DPType.RAW, PHASE_10), 0)
    d.observe(make_datapoint(7, DPType.RAW, PHASE_10[:8]), 0)  # no profile knows dp 7
    d.observe(make_datapoint(20, DPType.VALUE, 2301), 0)  # plug-meter voltage
    assert d.guess(6) is not None and d.guess(6).source == "profile earu-2p63a"  # type: ignore[union-attr]
    assert d.guess(7) is None and d.spec(7).name == "dp_7"
    g20 = d.guess(20)
    assert g20 is not None and g20.source == "profile plug-meter" and g20.spec.role == "voltage"

    eight = Discovery()
    eight.observe(make_datapoint(6, DPType.RAW, PHASE_10[:8]), 0)
    assert eight.guess(6).source == "profile tompd-63"  # type: ignore[union-attr]  # the exact 8-byte layout

    unknown = Discovery(profiles=[])
    unknown.observe(make_datapoint(23, DPType.VALUE, 2301), 0)
    assert unknown.spec(23).role == "voltage" and unknown.spec(23).scale == 0.1  # by the value's shape


def test_edits_and_one_dp_per_panel() -> None:
    d = Discovery(profiles=[])
    d.observe(make_datapoint(21, DPType.VALUE, 420), 0)
    d.observe(make_datapoint(23, DPType.VALUE, 2301), 0)
    d.edit(21, name="load_current", scale=0.001, unit="A")
    d.assign(21, "voltage")  # taken from dp 23, which had it by guess
    assert d.spec(23).role is None and d.spec(21).role == "voltage"
    d.assign(21, "current")
    with pytest.raises(ValueError, match="cannot feed 'relay'"):
        d.assign(21, "relay")
    with pytest.raises(ValueError, match="one word"):
        d.edit(21, name="load current")
    with pytest.raises(ValueError, match="greater than 0"):
        d.edit(21, scale=0)
    m = MeterState(d.profile())
    m.apply(make_datapoint(21, DPType.VALUE, 420))
    assert m.reading(datetime.now(UTC)).current_a == 0.42


@pytest.mark.parametrize("name", shipped_profiles())
def test_profile_toml_loads_back_to_the_same_profile(name: str) -> None:
    p = load_profile(name)
    again = parse_profile(profile_toml(p, "a header"), "again.toml")
    assert dataclasses.replace(again, source=p.source) == p


def obk_lines(text: str) -> list[list[str]]:
    return [ln.split() for ln in text.splitlines() if ln and not ln.startswith("//")]


def test_openbeken_snippet_for_the_forum_meter() -> None:
    text = obk_autoexec(load_profile("earu-2p63a"))
    lines = obk_lines(text)
    assert lines[:3] == [["startDriver", "TuyaMCU"], ["tuyaMcu_setBaudRate", "9600"], ["tuyaMcu_defWiFiState", "4"]]
    links = {int(ln[1]): ln[2:] for ln in lines if ln[0] == "linkTuyaMCUOutputToChannel"}
    assert links[16] == ["bool", "1"]  # the relay on channel 1
    assert links[6] == ["RAW_TAC2121C_VCP", "3"]  # the 10-byte phase_a: OBK's parser that takes 10 bytes
    assert links[1] == ["val", "2"] and links[19] == ["MQTT"]
    types = {int(ln[1]): ln[2] for ln in lines if ln[0] == "setChannelType"}
    assert types[1] == "Toggle" and types[2] == "EnergyTotal_kWh_div100"
    assert (types[3], types[4], types[5]) == ("Voltage_div10", "Current_div1000", "Power")
    assert sorted(types) == list(range(1, len(types) + 1))  # every channel once, none skipped
    assert "bytes 8-9" in text  # says what OpenBeken leaves out (the residual current)
    eight = {int(ln[1]): ln[2] for ln in obk_lines(obk_autoexec(load_profile("tompd-63")))
             if ln[0] == "linkTuyaMCUOutputToChannel"}
    assert eight[6] == "RAW_V2C3P3" and eight[17] == "MQTT"  # full 3-byte I and P; alarm sets as hex


@pytest.mark.parametrize("variant", ["10byte", "8byte"])
def test_demo_discover_export_then_decode_with_the_export_gives_the_same_values(tmp_path: Path,
                                                                                variant: str) -> None:
    rec, export = tmp_path / "run.rec", tmp_path / "mine"
    proc = subprocess.run([*TUIMETER, "--demo", "--demo-variant", variant, "--discover", "--for", "3",
                           "--export", str(export), "--record", str(rec)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"new dp 6 raw (10|8)B: \d+\.\d V, \d\.\d{3} A, \d+ W.* — phase_a → voltage, current, power",
                     proc.stdout)
    assert f"exported: {export}.toml, {export}-autoexec.bat" in proc.stdout
    mine = load_profile(f"{export}.toml")
    assert mine.name == "mine" and mine.for_role("voltage") is not None
    # the writable settings come along, ranges and all: the export is a profile to edit, not start over
    own = load_profile("earu-2p63a" if variant == "10byte" else "tompd-63")
    reported = {s.name for s in own.settings if s.dp in mine.dps}
    assert reported and {s.name for s in mine.settings} == reported
    assert [(s.name, s.range) for s in mine.settings] == [(s.name, s.range) for s in own.settings if s.name in reported]

    def decoded(*profile: str) -> list[tuple[int, str]]:
        out = subprocess.run([*TUIMETER, "decode", str(rec), "--json", *profile], capture_output=True, text=True,
                             check=True).stdout
        return [(dp["id"], dp["text"]) for i in json.loads(out)["items"] if i["kind"] == "frame"
                for dp in i.get("datapoints", [])]

    shipped, exported = decoded(), decoded("--profile", f"{export}.toml")
    assert [i for i, _ in shipped] == [i for i, _ in exported] and len(shipped) > 10
    known = load_profile("earu-2p63a" if variant == "10byte" else "tompd-63").dps
    # every dp the meter's own profile knows decodes to the same value through the export ...
    assert [t for i, t in shipped if i in known] == [t for i, t in exported if i in known]
    # ... and a dp it does not know gets the meaning guessed from a relative's profile
    assert all(t.startswith(f"dp {i} {mine.dps[i].name}: ") for i, t in exported if i not in known)
    if variant == "8byte":
        assert any("over_voltage trip at 245 V" in t for _, t in exported)


def test_export_to_an_unwritable_place_is_refused_before_starting(tmp_path: Path) -> None:
    proc = subprocess.run([*TUIMETER, "--demo", "--discover", "--export", str(tmp_path / "no" / "x")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot write in" in proc.stderr and "writable folder" in proc.stderr
    proc = subprocess.run([*TUIMETER, "--demo", "--export", "x"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "go with --discover" in proc.stderr


# ---- the discovery view: an unknown plug meter, named, scaled and assigned on screen ----------

def plug_recording() -> Recording:
    """A meter no shipped profile knows: 24 relay, 21 current mA, 22 power 0.1 W, 23 voltage 0.1 V."""
    def report(*dps: tuple[int, DPType, int | bool]) -> bytes:
        return encode_frame(Command.DP_REPORT, b"".join(make_datapoint(*d).encode() for d in dps), 3)

    chunks = [(0.02, "rx", encode_frame(Command.HEARTBEAT, b"\x00", 3)),
              (0.05, "rx", encode_frame(Command.PRODUCT_INFO, b'{"p":"zzplugzzplugzzplu","v":"1.0.0"}', 3))]
    for i in range(8):
        chunks.append((0.2 + i * 0.2, "rx", report((24, DPType.BOOL, True), (21, DPType.VALUE, 420 + i),
                                                    (22, DPType.VALUE, 965 + i), (23, DPType.VALUE, 2301))))
    return Recording(datetime(2026, 11, 24, 12, 0, tzinfo=UTC), "x", 9600, chunks)


async def answer(pilot: Pilot[int], text: str) -> None:
    app = pilot.app
    await pilot_until(pilot, lambda: isinstance(app.screen, AskText), what="the question asked")
    app.screen.query_one(Input).value = text
    await pilot.press("enter")
    await pilot_until(pilot, lambda: not isinstance(app.screen, AskText), what="the answer taken")


async def test_discovery_view_names_scales_assigns_and_exports(tmp_path: Path) -> None:
    session = ReplaySession(plug_recording(), "plug.rec", load_profile(), speed=4)
    app = TuimeterApp(session, save_dir=tmp_path)
    await session.start()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot_until(pilot, session.finished.is_set, what="the end of the replay")
        await pilot.press("d")
        await pilot_until(pilot, lambda: isinstance(app.screen, DiscoveryScreen), what="the discovery view")
        table = app.screen.query_one(DataTable)
        await pilot_until(pilot, lambda: table.row_count == 4, what="4 rows", show=lambda: table.row_count)
        rows = {table.get_row_at(i)[0]: table.get_row_at(i) for i in range(table.row_count)}
        assert str(rows["21"][5]) == "7" and str(rows["23"][3]).startswith("voltage_23 → voltage (value shape")
        table.move_cursor(row=0)  # dp 21
        await pilot.press("a")  # no panel → current (voltage is dp 23's, by guess)
        await pilot.press("x")
        await answer(pilot, "0.001")
        await pilot.press("u")
        await answer(pilot, "A")
        await pilot.press("n")
        await answer(pilot, "load_current")
        table.move_cursor(row=1)  # dp 22
        await pilot.press("a")  # → power, the next panel nobody feeds
        await pilot.press("x")
        await answer(pilot, "0.1")
        await pilot.press("u")
        await answer(pilot, "W")
        await pilot.press("e")
        await pilot_until(pilot, lambda: (tmp_path / "discovered-zzplugzzplugzzplu-autoexec.bat").exists(),
                          what="the export written")
        await pilot.press("escape")
        # the panels read the meter through the edits at once
        await pilot_until(pilot, lambda: app.query_one("#metric-current .digits", Digits).value == "0.427",
                          what="0.427 A shown", show=lambda: app.query_one("#metric-current .digits", Digits).value)
        assert app.query_one("#metric-power .digits", Digits).value == "97"
        assert app.query_one("#metric-voltage .digits", Digits).value == "230.1"
    await session.close()

    exported = load_profile(str(tmp_path / "discovered-zzplugzzplugzzplu.toml"))
    assert exported.product_ids == ("zzplugzzplugzzplu",) and exported.dps[21].name == "load_current"
    m = MeterState(exported)
    for dpid, value in ((21, 427), (22, 972), (23, 2301)):
        m.apply(make_datapoint(dpid, DPType.VALUE, value))
    r = m.reading(datetime.now(UTC))
    assert (r.current_a, r.power_w, r.voltage_v) == (0.427, 97.2, 230.1)  # the same values the screen showed
    obk = (tmp_path / "discovered-zzplugzzplugzzplu-autoexec.bat").read_text()
    assert "linkTuyaMCUOutputToChannel 21 val" in obk and "Current_div1000" in obk


def test_decode_export_of_the_forum_captures_reads_them_back_to_the_thread_values(tmp_path: Path) -> None:
    from tests.conftest import load_captures

    caps = load_captures()
    for side in ("mcu", "host"):
        (tmp_path / f"{side}.txt").write_text("\n".join(c["hex"] for c in caps if c["from"] == side))
    out = subprocess.run([*TUIMETER, "decode", "--mcu", str(tmp_path / "mcu.txt"), "--host", str(tmp_path / "host.txt"),
                          "--export", str(tmp_path / "forum-meter")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    forum = load_profile(str(tmp_path / "forum-meter.toml"))
    assert sorted(forum.dps) == [6, 16, 19, 105]  # what the meter reported in the thread, nothing more
    m = MeterState(forum)
    m.apply(make_datapoint(6, DPType.RAW, bytes.fromhex("09BA000000000000000E")))
    r = m.reading(datetime.now(UTC))
    assert (r.voltage_v, r.current_a, r.power_w, r.leakage_ma) == (249.0, 0.0, 0, 14)  # the thread's no-load read
    obk = (tmp_path / "forum-meter-autoexec.bat").read_text()
    assert "linkTuyaMCUOutputToChannel 16 bool 1" in obk and "linkTuyaMCUOutputToChannel 6 RAW_TAC2121C_VCP 2" in obk


# ---- what a review found: edits must never move the relay, exports must not clobber ----------

def test_an_edit_never_moves_the_relay_to_another_dp(tmp_path: Path) -> None:
    mine = parse_profile('name = "mine"\n[[dp]]\nid = 11\nname = "main_switch"\ntype = "bool"\nrole = "relay"\n'
                         'writable = true\n', "mine.toml")
    d = Discovery(base=mine)
    for dpid in (11, 16):
        d.observe(make_datapoint(dpid, DPType.BOOL, True), 0)
    d.observe(make_datapoint(1, DPType.VALUE, 88848), 0)
    d.edit(1, name="energy_counter")
    p = d.profile()
    assert p.for_role("relay") is not None and p.for_role("relay").id == 11  # type: ignore[union-attr]
    assert p.dps[11].name == "main_switch"  # the user's own profile, not a shipped guess

    shipped = Discovery()  # a meter like earu that also reports dp 1 as a bool (plug-meter's relay id)
    shipped.observe(make_datapoint(16, DPType.BOOL, True), 0)
    shipped.observe(make_datapoint(6, DPType.RAW, PHASE_10), 0)
    shipped.observe(make_datapoint(1, DPType.BOOL, False), 0)
    assert shipped.profile().for_role("relay").id == 16  # type: ignore[union-attr]


def test_bad_scales_are_refused() -> None:
    d = Discovery(profiles=[])
    d.observe(make_datapoint(21, DPType.VALUE, 1), 0)
    for bad in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError, match="greater than 0"):
            d.edit(21, scale=bad)
    with pytest.raises(ValueError, match="expected a number"):
        parse_profile('name = "x"\n[[dp]]\nid = 1\nname = "a"\ntype = "value"\nscale = inf\n', "x.toml")


def test_odd_characters_survive_the_toml_round_trip() -> None:
    d = Discovery(profiles=[])
    d.observe(make_datapoint(21, DPType.VALUE, 1), 0)
    d.edit(21, name="straße-名前", unit='"q"\\\x7f\t°C')
    p = d.profile("x")
    assert parse_profile(profile_toml(p), "x.toml").dps[21] == p.dps[21]


@pytest.mark.parametrize(("path", "message"), [
    (".", "give a file name"), ("", "give a file name"), ("some/dir/", "give a file name"),
    ("mine", "would overwrite the profile"),
])
def test_export_paths_that_cannot_work_are_refused_before_the_run(tmp_path: Path, path: str, message: str) -> None:
    (tmp_path / "mine.toml").write_text(profile_toml(load_profile("earu-2p63a")))
    proc = subprocess.run([*TUIMETER, "--demo", "--discover", "--profile", "mine.toml", "--export", path],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and message in proc.stderr


def test_a_closed_stdout_still_gets_the_export_written(tmp_path: Path) -> None:
    cmd = f"{shlex.join(TUIMETER)} --demo --discover --for 3 --export {tmp_path / 'p'} | head -2"
    subprocess.run(cmd, shell=True, capture_output=True, timeout=60, check=True)
    assert load_profile(str(tmp_path / "p.toml")).for_role("voltage") is not None
