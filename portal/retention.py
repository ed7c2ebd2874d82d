"""The retention rules, enforced by ``portal purge`` (daily, from cron or a systemd timer).

Central back office:

1. A reporter's contact details (kept sealed) are removed ``PORTAL_CONTACT_RETENTION_DAYS``
   (default 30) after the report was closed (status no_action or closed). 0 removes them at
   the first purge after closure.
2. A finished report received more than ``PORTAL_REPORT_RETENTION_DAYS`` ago (default 730,
   at least 400) is deleted with its URLs. Reports still open are kept whatever their age.
   Before anything is deleted, every month, quarter and year that holds one of those reports
   has its sponsor figures stored for good (``period_figures``, counts only), so the
   aggregates outlive the reports.
3. An item (a reported address) that no remaining report names is deleted with its
   assessments and actions once nothing has happened to it since the horizon, unless it is
   confirmed illegal and not yet removed: that work is still going on.

Edge: the public status of a receipt is forgotten once it has not changed for the report
retention time (the status page then answers as for any unknown receipt). Envelopes still in
the outbox are never purged: they are reports not yet delivered.

The audit log is kept: it holds ids, outcomes and counts, never report text, and its hash
chain must stay whole. Each purge appends one entry with its counts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, func, not_, or_, select, update

from portal.assessment.audit import SYSTEM, record
from portal.assessment.models import (
    ILLEGAL,
    Action,
    Assessment,
    Item,
    Report,
    ReportItem,
    ReportUrl,
)
from portal.db import db, utcnow
from portal.forwarding.models import ReceiptStatus
from portal.settings import Settings
from portal.sponsors.figures import Figuring
from portal.statuses import FINISHED

BATCH = 1000


@dataclass
class Purged:
    contacts_removed: int = 0
    periods_stored: int = 0
    reports_deleted: int = 0
    items_deleted: int = 0
    receipts_forgotten: int = 0

    def lines(self) -> list[str]:
        return [f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self)]


def purge(settings: Settings, portals: dict[str, str], *, now: datetime | None = None,
          dry_run: bool = False) -> Purged:
    """Apply the rules as of ``now``. ``portals``: slug -> time zone, for the figures.
    With ``dry_run`` everything is counted inside a transaction that is then rolled back."""
    now = now or utcnow()
    result = Purged()
    try:
        if settings.has_central:
            _central(settings, portals, now, result)
        if settings.has_edge:
            horizon = now - timedelta(days=settings.report_retention_days)
            result.receipts_forgotten = db.session.execute(
                delete(ReceiptStatus).where(ReceiptStatus.updated_at < horizon)).rowcount
        if dry_run:
            db.session.rollback()
            return result
        record("retention.purge", actor_id=None, actor=SYSTEM, target_type="retention",
               target_id="-", details={f.name: getattr(result, f.name) for f in fields(result)})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return result


def _central(settings: Settings, portals: dict[str, str], now: datetime, result: Purged) -> None:
    finished = Report.status.in_(FINISHED)
    contact_limit = now - timedelta(days=settings.contact_retention_days)
    result.contacts_removed = db.session.execute(
        update(Report).where(finished, Report.contact_sealed.is_not(None),
                             Report.closed_at <= contact_limit)
        .values(contact_sealed=None).execution_options(synchronize_session=False)).rowcount

    figuring = Figuring.from_settings(settings, now=now)
    horizon = figuring.horizon
    doomed = and_(finished, Report.received_at < horizon)
    first = db.session.scalar(select(func.min(Report.received_at)).where(doomed))
    if first is None:
        return
    # The aggregates first, while every report they count is still there.
    for slug, tz in sorted(portals.items()):
        if db.session.scalar(select(exists().where(doomed, Report.portal == slug))):
            result.periods_stored += figuring.finalize(slug, tz, first, horizon)
    result.periods_stored += figuring.finalize(None, "UTC", first, horizon)

    while ids := db.session.scalars(select(Report.id).where(doomed).limit(BATCH)).all():
        named = select(ReportItem.item_id).where(ReportItem.report_id.in_(ids)).distinct()
        candidates = set(db.session.scalars(named))
        db.session.execute(delete(ReportItem).where(ReportItem.report_id.in_(ids)))
        db.session.execute(delete(ReportUrl).where(ReportUrl.report_id.in_(ids)))
        result.reports_deleted += db.session.execute(
            delete(Report).where(Report.id.in_(ids))).rowcount
        result.items_deleted += _orphans(sorted(candidates), horizon)
        db.session.flush()


def _orphans(item_ids: list[int], horizon: datetime) -> int:
    """Delete those of ``item_ids`` no report names any more, quiet since ``horizon`` and not
    still being worked on (confirmed illegal, not yet removed)."""
    if not item_ids:
        return 0
    still_working = and_(func.coalesce(Item.last_outcome, "").in_(ILLEGAL), Item.removed_at.is_(None))
    quiet = and_(Item.first_seen_at < horizon,
                 or_(Item.last_assessed_at.is_(None), Item.last_assessed_at < horizon),
                 or_(Item.removed_at.is_(None), Item.removed_at < horizon),
                 not_(exists().where(Action.item_id == Item.id, Action.at >= horizon)))
    orphan = not_(exists().where(ReportItem.item_id == Item.id))
    gone = db.session.scalars(select(Item.id).where(
        Item.id.in_(item_ids), orphan, quiet, not_(still_working))).all()
    if not gone:
        return 0
    db.session.execute(delete(Assessment).where(Assessment.item_id.in_(gone)))
    db.session.execute(delete(Action).where(Action.item_id.in_(gone)))
    return db.session.execute(delete(Item).where(Item.id.in_(gone))).rowcount
