"""Bridges from the meter to home automation: MQTT (with Home Assistant discovery) and Prometheus.

This package's own namespace stays light (no aiomqtt, no prometheus-client): the command line
imports it to check arguments before anything heavy is loaded.
"""

from __future__ import annotations

import socket

DEFAULT_METRICS_HOST = "127.0.0.1"  # only this machine, unless the user says otherwise


def parse_address(text: str) -> tuple[str, int]:
    """`9105`, `:9105`, `0.0.0.0:9105` or `[::1]:9105` → (host, port); localhost unless told."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or DEFAULT_METRICS_HOST
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--metrics {text}: expected [HOST:]PORT, e.g. 9105 or 0.0.0.0:9105")
    return host, int(port)


def default_node_id(port: str) -> str:
    """Stable across restarts and unique per meter on a network: host name and port name."""
    stem = port.rstrip("/").rsplit("/", 1)[-1] or "meter"
    raw = f"{socket.gethostname().split('.')[0]}-{stem}"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in raw).lower()
