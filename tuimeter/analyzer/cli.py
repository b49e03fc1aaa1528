"""`tuimeter decode` on the command line."""

from __future__ import annotations

import sys
from typing import TextIO

from tuimeter.analyzer.decode import (
    InputError,
    decode_streams,
    discover_streams,
    read_input,
    render_json,
    render_text,
)
from tuimeter.analyzer.export import export_discovery
from tuimeter.core.profile import ProfileError, load_profile
from tuimeter.exitcodes import ExitCode
from tuimeter.options import DecodeOptions
from tuimeter.recorder import read_recording


def run_decode(args: DecodeOptions) -> int:
    try:
        profile = load_profile(args.profile) if args.profile else None
        streams: list[tuple[str, str | None, bytes]] = []
        for label, data in map(read_input, args.inputs):
            chunks = read_recording(data.decode("utf-8", "replace")) if data[:1] == b"{" else None
            if chunks is None:
                streams.append((label, None, data))
            else:  # a --record file: both sides, each as one stream
                for side, direction in (("host", "tx"), ("mcu", "rx")):
                    streams.append((f"{label} {direction}", side, b"".join(c for _, d, c in chunks if d == direction)))
        for side, path in (("host", args.host), ("mcu", args.mcu)):
            if path:
                label, data = read_input(path)
                streams.append((label, side, data))
    except (InputError, ProfileError) as exc:
        print(f"tuimeter decode: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    decoded, profile, reason = decode_streams(streams, profile)
    print(render_json(decoded, profile, reason) if args.json else render_text(decoded, profile, reason))
    if args.export is not None:
        return _export(streams, args.export, sys.stderr if args.json else sys.stdout)
    return ExitCode.OK


def _export(streams: list[tuple[str, str | None, bytes]], path: str, say: TextIO) -> int:
    """What the MCU reported, as a profile and an OpenBeken snippet (JSON output stays clean: say on stderr)."""
    found = discover_streams(streams)
    if not found.seen:
        print("tuimeter decode: the captures hold no datapoint report; nothing to export", file=sys.stderr)
        return ExitCode.METER
    try:
        files = export_discovery(found, path)
    except OSError as exc:
        print(f"tuimeter decode: cannot write the export {path}: {exc.strerror}; choose a writable path",
              file=sys.stderr)
        return ExitCode.RUNTIME
    print("exported: " + ", ".join(str(f) for f in files), file=say)
    return ExitCode.OK
