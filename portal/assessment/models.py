"""Central tables: reports as opened from their envelopes, and status updates to send back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import UTCDateTime, db, utcnow
from portal.statuses import RECEIVED

OPEN_SQL = "status IN ('received', 'in_assessment', 'action_taken')"
CONTACT_SQL = "contact_sealed IS NOT NULL"


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
    assigned_to: Mapped[int | None] = mapped_column(Integer, index=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the report last became no_action or closed (None while open): retention counts from here.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    urls: Mapped[list[ReportUrl]] = relationship(
        back_populates="report", order_by="ReportUrl.position", cascade="all, delete-orphan"
    )

    __table_args__ = (
        # The queue: open reports, urgent first, then oldest. Partial indexes in exactly the
        # queue's order let the first page (and every page, by its cursor) be read straight
        # off the index, however many closed reports pile up.
        Index("ix_reports_open_queue", text("urgent DESC"), "received_at", "id",
              postgresql_where=text(OPEN_SQL), sqlite_where=text(OPEN_SQL)),
        Index("ix_reports_open_portal_queue", "portal", text("urgent DESC"), "received_at", "id",
              postgresql_where=text(OPEN_SQL), sqlite_where=text(OPEN_SQL)),
        Index("ix_reports_status_received", "status", "received_at"),
        Index("ix_reports_portal_received", "portal", "received_at"),
        Index("ix_reports_received", "received_at"),
        # portal purge: closed reports that still hold contact details.
        Index("ix_reports_contact_closed", "closed_at", postgresql_where=text(CONTACT_SQL),
              sqlite_where=text(CONTACT_SQL)),
    )


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


# -- the back office ---------------------------------------------------------------------------

OUTCOMES = ("international_illegal", "national_illegal", "not_illegal", "not_found")
ILLEGAL = ("international_illegal", "national_illegal")
AGE_GROUPS = ("infant", "prepubescent", "pubescent", "unknown")


class Item(db.Model):
    """One reported URL. The same normalised URL reported again, from any portal, is the
    same item: new reports join it instead of creating new work."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    url_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    report_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_outcome: Mapped[str | None] = mapped_column(String(30))
    national_country: Mapped[str | None] = mapped_column(String(2))
    category: Mapped[str | None] = mapped_column(String(20))
    age_group: Mapped[str | None] = mapped_column(String(20))
    last_assessed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_assessed_by: Mapped[int | None] = mapped_column(Integer)
    # Hosting trace (automatic, correctable by the analyst)
    trace_addresses: Mapped[str | None] = mapped_column(String(500))
    trace_country: Mapped[str | None] = mapped_column(String(2))
    trace_asn: Mapped[str | None] = mapped_column(String(20))
    trace_network: Mapped[str | None] = mapped_column(String(200))
    trace_cdn: Mapped[str | None] = mapped_column(String(100))
    trace_error: Mapped[str | None] = mapped_column(String(30))
    traced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trace_corrected: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Actions
    notice_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    law_enforcement_needed: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    removal_seconds: Mapped[int | None] = mapped_column(Integer)

    reports: Mapped[list[Report]] = relationship(secondary="report_items", back_populates="items",
                                                 order_by="Report.id")


class ReportItem(db.Model):
    __tablename__ = "report_items"

    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"),
                                           primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)


Report.items = relationship(Item, secondary="report_items", back_populates="reports",
                            order_by=Item.id)


class Assessment(db.Model):
    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    analyst_id: Mapped[int] = mapped_column(Integer, nullable=False)
    outcome: Mapped[str] = mapped_column(String(30), nullable=False)
    national_country: Mapped[str | None] = mapped_column(String(2))
    category: Mapped[str | None] = mapped_column(String(20))
    age_group: Mapped[str | None] = mapped_column(String(20))
    notes: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Action(db.Model):
    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30), nullable=False)
    analyst_id: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)
    detail: Mapped[str] = mapped_column(String(500), default="", nullable=False)


class WorkDay(db.Model):
    """Assessment time per analyst per day, for the welfare rules."""

    __tablename__ = "work_days"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    seconds: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    stretch_seconds: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    breaks: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
