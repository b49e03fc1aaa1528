"""Share what was found: a profile as a TOML file tuimeter loads, and an OpenBeken autoexec.bat snippet.

The OpenBeken commands and channel types are those of OpenBK7231T_App's TuyaMCU driver
(`linkTuyaMCUOutputToChannel dpId type [channel]`; see docs/analyzer.md for what each line does).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tuimeter.analyzer.discovery import Discovery
from tuimeter.core.datapoints import DPType
from tuimeter.core.profile import Alarm, DPSpec, Field, Profile
from tuimeter.core.settings import Range, Setting, Weakening

# ---- profile TOML --------------------------------------------------------------------------

def _s(text: str) -> str:
    # a JSON string is a TOML basic string, but for DEL, which TOML wants escaped
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _num(v: float) -> str:
    return str(int(v)) if v == int(v) else repr(v)


def profile_toml(profile: Profile, header: str = "") -> str:
    """The profile as TOML that load_profile() reads back to the same datapoint map."""
    lines = [f"# {ln}".rstrip() for ln in header.splitlines()]
    lines += [f"name = {_s(profile.name)}", f"title = {_s(profile.title)}",
              f"product_ids = [{', '.join(_s(p) for p in profile.product_ids)}]"]
    for spec in profile.dps.values():
        settings = [s for s in profile.settings if s.dp == spec.id]
        lines += ["", *_dp_toml(spec, settings)]
    return "\n".join(lines) + "\n"


def _range_toml(r: Range | None) -> list[str]:
    return [] if r is None else [f"min = {_num(r.min)}", f"max = {_num(r.max)}", f"step = {_num(r.step)}"]


def _weakening_toml(w: Weakening | None) -> list[str]:
    if w is None:
        return []
    out = [f"weakens_above = {_num(w.above)}"] if w.above is not None else []
    out += [f"weakens_below = {_num(w.below)}"] if w.below is not None else []
    out += ["weakens_alarm_only = true"] if w.alarm_only else []
    return out + ([f"risk = {_s(w.risk)}"] if w.risk else [])


def _setting_toml(s: Setting) -> list[str]:
    out = ["[dp.setting]", f"kind = {_s(s.kind.value)}", *_range_toml(s.range)]
    if s.options:
        out.append(f"options = [{', '.join(_s(o) for o in s.options)}]")
    if s.products:
        out.append(f"products = [{', '.join(_s(p) for p in s.products)}]")
    if s.title:
        out.append(f"title = {_s(s.title)}")
    out += _weakening_toml(s.weakening)
    out += [f"by_product.{_s(pid)} = {{ {', '.join(_range_toml(r))} }}" for pid, r in s.by_product.items()]
    return out


def _alarm_toml(a: Alarm, s: Setting | None) -> str:
    parts = [f"id = {a.id}", f"name = {_s(a.name)}", f"unit = {_s(a.unit)}"]
    if s is not None:
        parts += _range_toml(s.range) + _weakening_toml(s.weakening) + ([f"title = {_s(s.title)}"] if s.title else [])
        if s.by_product:
            ranges = [f"{_s(pid)} = {{ {', '.join(_range_toml(r))} }}" for pid, r in s.by_product.items()]
            parts.append(f"by_product = {{ {', '.join(ranges)} }}")
    return f"  {{ {', '.join(parts)} }},"


def _dp_toml(spec: DPSpec, settings: list[Setting]) -> list[str]:
    out = ["[[dp]]", f"id = {spec.id}", f"name = {_s(spec.name)}", f"type = {_s(spec.type.label)}"]
    if spec.role is not None:
        out.append(f"role = {_s(spec.role)}")
    if spec.scale != 1:
        out.append(f"scale = {_num(spec.scale)}")
    if spec.unit:
        out.append(f"unit = {_s(spec.unit)}")
    if spec.writable:
        out.append("writable = true")
    if spec.fields:
        out.append("fields = [")
        out += [f"  {{ role = {_s(f.role)}, offset = {f.offset}, size = {f.size}, scale = {_num(f.scale)}, "
                f"unit = {_s(f.unit)} }}," for f in spec.fields]
        out.append("]")
    if spec.bits:
        out.append("bits = [")
        out += ["  " + ", ".join(_s(b) for b in spec.bits[i:i + 4]) + "," for i in range(0, len(spec.bits), 4)]
        out.append("]")
    if spec.alarms:
        by_code = {s.code: s for s in settings}
        out.append("alarms = [")
        out += [_alarm_toml(a, by_code.get(a.id)) for a in spec.alarms]
        out.append("]")
    elif settings:
        out += _setting_toml(settings[0])
    return out


# ---- OpenBeken autoexec.bat ----------------------------------------------------------------

# (unit, scale) -> OpenBeken channel type; the channel holds the raw integer, the type divides it.
_CHANNEL_TYPES = {
    ("V", 0.1): "Voltage_div10", ("V", 0.01): "Voltage_div100",
    ("A", 0.001): "Current_div1000", ("A", 0.01): "Current_div100", ("A", 0.1): "Current_div10",
    ("mA", 1.0): "Current_div1000",
    ("W", 1.0): "Power", ("W", 0.1): "Power_div10", ("W", 0.01): "Power_div100",
    ("kWh", 0.01): "EnergyTotal_kWh_div100", ("kWh", 0.001): "EnergyTotal_kWh_div1000",
    ("°C", 1.0): "Temperature", ("°C", 0.1): "Temperature_div10",
}
_READ_ONLY = {1.0: "ReadOnly", 0.1: "ReadOnly_div10", 0.01: "ReadOnly_div100", 0.001: "ReadOnly_div1000"}


def channel_type(unit: str, scale: float, role: str | None = None) -> str:
    if role == "leakage" and unit == "mA" and scale == 1:
        return "LeakageCurrent_div1000"
    return _CHANNEL_TYPES.get((unit, scale)) or _READ_ONLY.get(scale, "ReadOnly")


def _phase_parser(fields: tuple[Field, ...]) -> tuple[str, str] | None:
    """The OpenBeken raw parser that reads this V/I/P layout, and what it leaves out."""
    layout = {f.role: (f.offset, f.size) for f in fields}
    if {k: layout.get(k) for k in ("voltage", "current", "power")} != {
            "voltage": (0, 2), "current": (2, 3), "power": (5, 3)}:
        return None
    end = max(f.offset + f.size for f in fields)
    if end == 8:
        return "RAW_V2C3P3", ""
    if end == 10:  # RAW_V2C3P3 takes exactly 8 bytes; RAW_TAC2121C_VCP takes 8 or 10 but reads 16 bits
        return "RAW_TAC2121C_VCP", ("reads the low 16 bits of current and power (wraps above 65.535 A "
                                    "or 65535 W) and not bytes 8-9")
    return None


def obk_autoexec(profile: Profile, baud: int = 9600, wifi_state: int = 4) -> str:
    """An autoexec.bat snippet that maps the profile's datapoints onto OpenBeken channels."""
    lines = [f"// {profile.title}",
             "// made by tuimeter from its profile " + profile.name + "; paste into OpenBeken's autoexec.bat",
             "startDriver TuyaMCU",
             f"tuyaMcu_setBaudRate {baud}",
             f"// many meters ignore commands until told the module is cloud-connected ({wifi_state})",
             f"tuyaMcu_defWiFiState {wifi_state}"]
    channel = 1
    relay = profile.for_role("relay")
    ordered = sorted(profile.dps.values(), key=lambda s: (s is not relay, s.id))  # the relay on channel 1
    for spec in ordered:
        block, used = _dp_lines(spec, channel)
        lines += ["", *block]
        channel += used
    return "\n".join(lines) + "\n"


def _label(ch: int, text: str) -> str:
    return f"setChannelLabel {ch} {_s(text)}"


def _dp_lines(spec: DPSpec, ch: int) -> tuple[list[str], int]:
    """Lines for one dp and how many channels they take."""
    head = f"// dp {spec.id} {spec.name} ({spec.type.label})"
    if spec.type is DPType.RAW and spec.fields:
        parser = _phase_parser(spec.fields)
        if parser is not None:
            name, caveat = parser
            by_role = {f.role: f for f in spec.fields}
            out = [head + (f": {name} {caveat}" if caveat else "")]
            for i, role in enumerate(("voltage", "current", "power")):
                f = by_role[role]
                out += [f"setChannelType {ch + i} {channel_type(f.unit, f.scale)}", _label(ch + i, role)]
            out.append(f"linkTuyaMCUOutputToChannel {spec.id} {name} {ch}")
            return out, 3
    if spec.type is DPType.RAW or spec.type is DPType.STRING:
        return [head + ": no OpenBeken channel holds it; published to MQTT as it comes",
                f"linkTuyaMCUOutputToChannel {spec.id} MQTT"], 0
    if spec.type is DPType.BOOL:
        kind = "Toggle" if spec.writable else "ReadOnly"
        return [head, f"setChannelType {ch} {kind}", _label(ch, spec.name),
                f"linkTuyaMCUOutputToChannel {spec.id} bool {ch}"], 1
    link = {DPType.VALUE: "val", DPType.ENUM: "enum", DPType.BITMAP: "raw"}[spec.type]
    kind = "ReadOnly" if spec.type is not DPType.VALUE else channel_type(spec.unit, spec.scale, spec.role)
    return [head, f"setChannelType {ch} {kind}", _label(ch, spec.name),
            f"linkTuyaMCUOutputToChannel {spec.id} {link} {ch}"], 1


def write_exports(profile: Profile, base: Path) -> list[Path]:
    """BASE.toml (the profile) and BASE-autoexec.bat (OpenBeken), each written whole or not at all."""
    header = ("Made by tuimeter discovery: check names, scales and roles against the meter's display\n"
              "before trusting it. Load it with --profile FILE.")
    files = [(base.with_name(base.name + ".toml"), profile_toml(profile, header)),
             (base.with_name(base.name + "-autoexec.bat"), obk_autoexec(profile))]
    for file, text in files:
        tmp = file.with_name(file.name + ".tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, file)  # a reader never sees half a file
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
    return [f for f, _ in files]


def export_base(path: str) -> Path:
    """PATH of `--export PATH` without a .toml the user may have typed: the files are PATH.toml and
    PATH-autoexec.bat, and the profile is named after PATH's last part."""
    return Path(path[:-5] if path.endswith(".toml") else path)


def export_discovery(found: Discovery, path: str) -> list[Path]:
    """What a discovery found, written as PATH.toml and PATH-autoexec.bat."""
    base = export_base(path)
    return write_exports(found.profile(base.name), base)


def export_problem(path: str, profile: str | None = None) -> str | None:
    """Why PATH cannot take an export (checked before a run, so no run is wasted), or None."""
    base = export_base(path)
    name = base.name
    if not path or path.endswith(("/", os.sep)) or name in ("", ".", ".."):
        return f"--export {path!r}: give a file name without extension, e.g. --export mymeter"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"--export {path!r}: the name must be text (UTF-8)"
    folder = base.parent.resolve()
    if not os.access(folder, os.W_OK):
        return f"--export {path}: cannot write in {folder}; choose a writable folder"
    if profile and Path(profile).exists() and Path(profile).resolve() == base.with_name(name + ".toml").resolve():
        return f"--export {path} would overwrite the profile given with --profile; choose another name"
    return None
