"""The edge side of forwarding: ship the outbox, apply status updates from the centre."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from nacl.signing import VerifyKey
from sqlalchemy import select

from portal.db import db, utcnow
from portal.forwarding.keyring import KeyringError
from portal.forwarding.models import OutboxEnvelope, apply_status
from portal.forwarding.status_verifier import NO_VERIFY_KEY, BadStatusUpdate, verify_status
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


def apply_status_updates(transport: Transport, limit: int = 500,
                         verify_keys: dict[str, VerifyKey] | None = None,
                         now: datetime | None = None) -> int:
    """Apply the status updates the centre signed; keyed only by the receipt hash.

    An update that is unsigned, signed by a key not installed here, wrongly signed, too old or
    malformed is dropped (logged without its content, then taken off the transport so that it
    does not come back). ``verify_keys`` defaults to those of this edge's keyring; when the
    key file cannot be read nothing is taken from the transport this round."""
    if verify_keys is None:
        try:
            verify_keys = current_app.extensions["portal.status_verify_keys"].get()
        except KeyringError as exc:
            log.error("status updates left on the transport: %s", exc)
            return 0
    now = now or utcnow()
    applied = 0
    warned = False
    for delivery in transport.receive_status(limit):
        if not verify_keys and not warned:
            log.error(NO_VERIFY_KEY)
            warned = True
        try:
            update = verify_status(delivery.data, verify_keys, now)
            # apply_status keeps the newest by ``at``: a replayed older update changes nothing.
            changed = apply_status(update.receipt_hash, update.status, update.at)
        except ValueError as exc:  # BadStatusUpdate, or apply_status refusing the fields
            reason = str(exc) if isinstance(exc, BadStatusUpdate) else "not a status update"
            log.warning("status update %s dropped: %s", delivery.name, reason)
            transport.reject_status(delivery, f"status update dropped: {reason}")
            continue
        db.session.commit()
        delivery.ack()
        applied += int(changed)
    return applied


def outbox_backlog() -> tuple[int, datetime | None]:
    count = db.session.query(OutboxEnvelope).count()
    oldest = db.session.scalar(select(db.func.min(OutboxEnvelope.created_at)))
    return count, oldest
