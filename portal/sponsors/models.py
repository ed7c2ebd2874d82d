"""What has been delivered to whom (so that sending a period's reports is idempotent), and the
stored figures of closed periods."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import UTCDateTime, db, utcnow


class SummaryDelivery(db.Model):
    __tablename__ = "summary_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal: Mapped[str] = mapped_column(String(40), nullable=False)
    period: Mapped[str] = mapped_column(String(30), nullable=False)
    channel: Mapped[str] = mapped_column(String(10), nullable=False)  # mail or s3
    target: Mapped[str] = mapped_column(String(300), nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False)  # sent or failed
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    __table_args__ = (UniqueConstraint("portal", "period", "channel", "target"),)


class PeriodFigures(db.Model):
    """A closed period's sponsor figures, stored by ``portal figures refresh`` (nightly) and
    by ``portal purge`` before it deletes the reports they were counted from. Counts only.

    ``portal`` is "" for all portals together. ``final``: some of the period's reports have
    been deleted under the retention rules, so the figures can no longer be recomputed."""

    __tablename__ = "period_figures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal: Mapped[str] = mapped_column(String(40), nullable=False)
    period: Mapped[str] = mapped_column(String(30), nullable=False)
    tz: Mapped[str] = mapped_column(String(64), nullable=False)
    data: Mapped[str] = mapped_column(Text, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    final: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)

    __table_args__ = (UniqueConstraint("portal", "period"),)
