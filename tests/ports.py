"""Free TCP ports on loopback for servers the tests and benchmarks start."""

from __future__ import annotations

import os
import socket

LOW, SPAN = 20000, 12768  # 20000-32767: below Linux's ephemeral range (32768+)
_HANDED_OUT: set[int] = set()


def free_ports(count: int) -> list[int]:
    """Distinct ports free on 127.0.0.1, below the ephemeral range so that no outgoing
    connection of another process takes one before our server binds it. The search starts at a
    place that differs per process, so parallel test workers do not collide, and a port is
    handed out once per process: a caller may bind it only later (a server it starts), after
    another caller has asked for one (say, the PostgreSQL server a fixture starts meanwhile)."""
    first, found = os.getpid() % SPAN, []
    for step in range(SPAN):
        port = LOW + (first + step * 61) % SPAN
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            _HANDED_OUT.update(found)
            return found
    raise RuntimeError(f"fewer than {count} free ports between {LOW} and {LOW + SPAN - 1}")


def free_port() -> int:
    return free_ports(1)[0]
