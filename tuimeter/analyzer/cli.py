"""`tuimeter decode` on the command line."""

from __future__ import annotations

import argparse
import sys

from tuimeter.analyzer.decode import InputError, decode_streams, read_input, render_json, render_text
from tuimeter.core.profile import ProfileError, load_profile


def run_decode(args: argparse.Namespace) -> int:
    if not (args.inputs or args.host or args.mcu):
        print("tuimeter decode: give hex bytes, a capture file, - for stdin, or --host/--mcu FILE; "
              "see 'tuimeter decode --help'", file=sys.stderr)
        return 2
    try:
        profile = load_profile(args.profile) if args.profile else None
        streams: list[tuple[str, str | None, bytes]] = [
            (label, None, data) for label, data in map(read_input, args.inputs)]
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
