"""What operators need to see of forwarding: the backlog and whether it is stuck."""

from __future__ import annotations

from flask import Flask

from portal.db import utcnow
from portal.forwarding.forwarder import outbox_backlog
from portal.forwarding.transport import TransportError


def forwarding_health(app: Flask) -> dict[str, object]:
    """Outbox size and the age of its oldest envelope (edge), the transport's queue
    (central). Reads counts only; nothing about any report."""
    settings = app.extensions["portal.settings"]
    health: dict[str, object] = {}
    if settings.has_edge:
        count, oldest = outbox_backlog()
        age = (utcnow() - oldest).total_seconds() if oldest else 0.0
        health["outbox_envelopes"] = count
        health["outbox_oldest_age_seconds"] = round(age, 1)
        health["outbox_stuck"] = age > settings.outbox_stuck_seconds
    if settings.has_central:
        try:
            health["transport_backlog"] = app.extensions["portal.transport"].backlog()
        except TransportError:
            health["transport_backlog"] = None
    return health
