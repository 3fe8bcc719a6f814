"""Free loopback ports for the servers the tests start (never this workplace's port 2024)."""

from __future__ import annotations

import socket

FORBIDDEN_PORT = 2024


def free_port() -> int:
    """A port that nothing listens on at 127.0.0.1 right now."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != FORBIDDEN_PORT:
            return port
