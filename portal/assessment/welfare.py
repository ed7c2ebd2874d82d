"""Analyst welfare: assessment time per day, a break prompt after a long stretch, and a
warning at the daily limit (defaults after published hotline practice: a break every hour,
at most five hours of assessment a day)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select

from portal.accounts.models import User
from portal.assessment.models import Assessment, Report, WorkDay
from portal.db import db, utcnow
from portal.statuses import CLOSED, NO_ACTION

ACTIVE_GAP = timedelta(minutes=5)  # closer requests than this count as continuous work
BREAK_GAP = timedelta(minutes=10)  # a pause this long counts as a break


def _day(user: User, now: datetime) -> WorkDay:
    key = (user.id, now.date().isoformat())
    row = db.session.get(WorkDay, key)
    if row is None:
        row = WorkDay(user_id=user.id, day=key[1], seconds=0, stretch_seconds=0, breaks=0)
        db.session.add(row)
    return row


def track(user: User, now: datetime | None = None) -> WorkDay:
    """Count the time since this analyst's last assessment request, when it was recent."""
    now = now or utcnow()
    row = _day(user, now)
    if row.last_activity_at is not None:
        gap = now - row.last_activity_at
        if timedelta(0) <= gap <= ACTIVE_GAP:
            row.seconds += int(gap.total_seconds())
            row.stretch_seconds += int(gap.total_seconds())
        elif gap >= BREAK_GAP:
            row.stretch_seconds = 0
    row.last_activity_at = now
    return row


def take_break(user: User, now: datetime | None = None) -> None:
    row = _day(user, now or utcnow())
    row.stretch_seconds = 0
    row.breaks += 1


def message(row: WorkDay, break_minutes: int, daily_minutes: int) -> str | None:
    if row.seconds >= daily_minutes * 60:
        return _("You have assessed for %(hours)s hours today, the daily limit. Please stop "
                 "assessing for today and talk to your lead if work is pressing.",
                 hours=round(row.seconds / 3600, 1))
    if row.stretch_seconds >= break_minutes * 60:
        return _("You have been assessing for %(minutes)d minutes without a break. Please take "
                 "a break away from the screen now.", minutes=row.stretch_seconds // 60)
    return None


@dataclass
class Load:
    user: User
    seconds: int
    stretch_seconds: int
    breaks: int
    assessed_today: int
    open_reports: int


def team_load(now: datetime | None = None) -> list[Load]:
    now = now or utcnow()
    day = now.date().isoformat()
    start = datetime.combine(now.date(), datetime.min.time(), tzinfo=now.tzinfo)
    staff = db.session.scalars(
        select(User).where(User.role.in_(("analyst", "lead")), User.disabled.is_(False))
        .order_by(User.name)
    ).all()
    rows = {r.user_id: r for r in db.session.scalars(select(WorkDay).where(WorkDay.day == day))}
    assessed = dict(db.session.execute(
        select(Assessment.analyst_id, func.count()).where(Assessment.created_at >= start)
        .group_by(Assessment.analyst_id)).all())
    open_reports = dict(db.session.execute(
        select(Report.assigned_to, func.count()).where(
            Report.assigned_to.is_not(None), Report.status.not_in((CLOSED, NO_ACTION)))
        .group_by(Report.assigned_to)).all())
    return [
        Load(user=u, seconds=rows[u.id].seconds if u.id in rows else 0,
             stretch_seconds=rows[u.id].stretch_seconds if u.id in rows else 0,
             breaks=rows[u.id].breaks if u.id in rows else 0,
             assessed_today=assessed.get(u.id, 0), open_reports=open_reports.get(u.id, 0))
        for u in staff
    ]
