"""The edge side of forwarding: ship the outbox, apply status updates from the centre."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from portal.db import db, utcnow
from portal.forwarding.models import OutboxEnvelope, apply_status
from portal.forwarding.transport import Transport, TransportError

log = logging.getLogger(__name__)
BASE_DELAY = 2.0
MAX_DELAY = 15 * 60.0


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter, capped at fifteen minutes."""
    ceiling = min(MAX_DELAY, BASE_DELAY * (2 ** min(attempts, 20)))
    return timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))


@dataclass
class ForwardResult:
    sent: int = 0
    failed: int = 0
    statuses: int = 0


def forward_once(transport: Transport, now: datetime | None = None, batch: int = 200,
                 commit_every: int = 25) -> ForwardResult:
    """Send every due envelope; an entry leaves the outbox only after the transport took it.

    Deletions are committed every ``commit_every`` envelopes: a crash in between sends at
    most that many envelopes again, which the importer recognises by their ids."""
    now = now or utcnow()
    result = ForwardResult()
    due = db.session.scalars(
        select(OutboxEnvelope)
        .where(OutboxEnvelope.next_attempt_at <= now)
        .order_by(OutboxEnvelope.created_at)
        .limit(batch)
    ).all()
    for position, entry in enumerate(due, start=1):
        try:
            transport.send_envelope(entry.id, entry.body)
        except TransportError as exc:
            entry.attempts += 1
            entry.next_attempt_at = now + backoff(entry.attempts)
            entry.last_error = str(exc)[:200]
            result.failed += 1
            log.warning("forward failed (attempt %d): %s", entry.attempts, entry.last_error)
        else:
            db.session.delete(entry)
            result.sent += 1
        if position % commit_every == 0:
            db.session.commit()
    db.session.commit()
    return result


def apply_status_updates(transport: Transport, limit: int = 500) -> int:
    """Apply status updates sent back by the centre; keyed only by the receipt hash."""
    applied = 0
    for delivery in transport.receive_status(limit):
        try:
            message = json.loads(delivery.data)
            changed = apply_status(
                message["receipt_hash"], message["status"], datetime.fromisoformat(message["at"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            transport.reject_status(delivery, f"status update unreadable: {type(exc).__name__}")
            continue
        db.session.commit()
        delivery.ack()
        applied += int(changed)
    return applied


def outbox_backlog() -> tuple[int, datetime | None]:
    count = db.session.query(OutboxEnvelope).count()
    oldest = db.session.scalar(select(db.func.min(OutboxEnvelope.created_at)))
    return count, oldest
