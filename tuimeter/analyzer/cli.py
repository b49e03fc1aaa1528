"""`tuimeter decode` on the command line."""

from __future__ import annotations

import argparse
import sys

from tuimeter.analyzer.decode import InputError, decode_streams, read_input, render_json, render_text
from tuimeter.core.profile import ProfileError, load_profile
from tuimeter.recorder import read_recording


def run_decode(args: argparse.Namespace) -> int:
    if not (args.inputs or args.host or args.mcu):
        print("tuimeter decode: give hex bytes, a capture file, - for stdin, or --host/--mcu FILE; "
              "see 'tuimeter decode --help'", file=sys.stderr)
        return 2
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
        return 2
    decoded, profile, reason = decode_streams(streams, profile)
    print(render_json(decoded, profile, reason) if args.json else render_text(decoded, profile, reason))
    return 0
