"""Free loopback ports for the servers the tests start (never this workplace's port 2024)."""

from __future__ import annotations

import contextlib
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


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that nothing listens on at 127.0.0.1 right now (all held open while
    choosing, so the system cannot hand out one twice)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
            if port != FORBIDDEN_PORT:
                ports.append(port)
        return ports
