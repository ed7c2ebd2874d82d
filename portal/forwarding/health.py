"""What operators need to see of forwarding: the backlog and whether it is stuck."""

from __future__ import annotations

from flask import Flask

from portal.db import db, utcnow
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
        health.update(central_health())
    return health


def central_health() -> dict[str, object]:
    """Import lag and the queue's age, read from the central tables (counts and ages only)."""
    from sqlalchemy import func, select

    from portal.assessment.models import Report
    from portal.assessment.queue import OPEN

    now = utcnow()
    newest = db.session.execute(select(Report.received_at, Report.imported_at)
                                .order_by(Report.id.desc()).limit(1)).first()
    oldest_open = db.session.scalar(select(func.min(Report.received_at))
                                    .where(Report.status.in_(OPEN)))
    open_count = db.session.scalar(select(func.count(Report.id)).where(Report.status.in_(OPEN)))
    return {
        "import_lag_seconds": round((newest[1] - newest[0]).total_seconds(), 1) if newest else 0.0,
        "queue_oldest_age_seconds": round((now - oldest_open).total_seconds(), 1)
        if oldest_open else 0.0,
        "queue_open_reports": open_count or 0,
    }
