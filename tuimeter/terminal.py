"""Whether this process has a screen to draw the live monitor on."""

from __future__ import annotations

import os
import sys


def has_screen() -> bool:
    """A terminal (Textual draws on stderr), or a browser tab: `tuimeter web` (textual-serve) runs each
    view on pipes with Textual's web driver, which it names in $TEXTUAL_DRIVER."""
    return "web_driver" in os.environ.get("TEXTUAL_DRIVER", "") or (sys.stdin.isatty() and sys.stderr.isatty())
