"""The one refusal every front end catches: a command the host will not send."""

from __future__ import annotations


class CommandRefused(Exception):
    """A command the host will not send; the message says why, in one line."""
