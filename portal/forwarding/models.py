"""The edge's outbox: sealed envelopes waiting for the transport. Ciphertext only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import UTCDateTime, db, utcnow


class OutboxEnvelope(db.Model):
    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_outbox_due", "next_attempt_at", "created_at"),)


class ReceiptStatus(db.Model):
    """The public status of one report at the edge, keyed only by the receipt's keyed hash."""

    __tablename__ = "receipt_status"

    receipt_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False,
                                                 index=True)


def apply_status(receipt_hash: str, status: str, at: datetime) -> bool:
    """Record a status sent by the centre unless a newer one is already there."""
    from portal.statuses import ALL

    if status not in ALL or len(receipt_hash) != 64 or at.tzinfo is None:
        raise ValueError("not a status update")
    row = db.session.get(ReceiptStatus, receipt_hash)
    if row is None:
        db.session.add(ReceiptStatus(receipt_hash=receipt_hash, status=status, updated_at=at))
        return True
    if at <= row.updated_at:
        return False
    row.status, row.updated_at = status, at
    return True
