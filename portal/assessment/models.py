"""Central tables: reports as opened from their envelopes, and status updates to send back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import UTCDateTime, db, utcnow
from portal.statuses import RECEIVED


class Report(db.Model):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    envelope_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    portal: Mapped[str] = mapped_column(String(40), nullable=False)
    lang: Mapped[str] = mapped_column(String(12), nullable=False)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    content_type: Mapped[str] = mapped_column(String(20), nullable=False)
    where_found: Mapped[str] = mapped_column(String(20), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    # Contact details are optional and kept encrypted (SecretBox) even in the central database.
    contact_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    receipt_hash: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(20), default=RECEIVED, nullable=False)

    urls: Mapped[list[ReportUrl]] = relationship(
        back_populates="report", order_by="ReportUrl.position", cascade="all, delete-orphan"
    )

    __table_args__ = (Index("ix_reports_queue", "urgent", "received_at"),)


class ReportUrl(db.Model):
    __tablename__ = "report_urls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)

    report: Mapped[Report] = relationship(back_populates="urls")


class StatusUpdate(db.Model):
    """A status change waiting to travel back to the edge (sent at least once)."""

    __tablename__ = "status_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    receipt_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
