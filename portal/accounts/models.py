"""Staff and sponsor accounts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import UTCDateTime, db, utcnow

ANALYST, LEAD, ADMIN, SPONSOR = "analyst", "lead", "admin", "sponsor"
ROLES = (ANALYST, LEAD, ADMIN, SPONSOR)


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    language: Mapped[str] = mapped_column(String(12), default="en", nullable=False)
    # Sponsors only: the portals whose aggregates they may read, comma-separated slugs.
    portals: Mapped[str] = mapped_column(String(500), default="", nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # The TOTP secret, sealed with a key derived from the deployment's secret key.
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enrolled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    recovery_codes: Mapped[str] = mapped_column(Text, default="[]", nullable=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    # The nonce of the sign-in waiting for its second factor; a new one at every attempt,
    # none once signed in (see portal.accounts.auth.begin_pending).
    sign_in_nonce: Mapped[str | None] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def portal_list(self) -> list[str]:
        return [p for p in self.portals.split(",") if p]
