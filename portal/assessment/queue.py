"""The one queue across all portals: urgent first, then oldest, with keyset paging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, exists, false, literal, or_, select, true, tuple_

from portal.assessment.models import Item, Report, ReportItem
from portal.db import db
from portal.inbound import MAX_ID
from portal.statuses import ACTION_TAKEN, IN_ASSESSMENT, RECEIVED

OPEN = (RECEIVED, IN_ASSESSMENT, ACTION_TAKEN)
PAGE_SIZE = 50
# Cursor times (microseconds) end at the start of the last day a datetime can hold.
MAX_MICROS = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp()) * 1_000_000


@dataclass(frozen=True)
class Filters:
    portal: str = ""
    lang: str = ""
    status: str = "open"
    outcome: str = ""
    assignee: str = ""  # "", "me", "none" or a user id


def encode_cursor(report: Report) -> str:
    micros = int(report.received_at.timestamp() * 1_000_000)
    return f"{int(report.urgent)}-{micros}-{report.id}"


def decode_cursor(text: str) -> tuple[bool, datetime, int] | None:
    """The cursor ``encode_cursor`` made, or None for anything else (a time or an id past what
    a datetime or the id column can hold included)."""
    parts = text.split("-")
    if len(parts) != 3 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    urgent, micros, ident = (int(part) for part in parts)
    if urgent > 1 or micros > MAX_MICROS or ident > MAX_ID:
        return None
    return bool(urgent), datetime.fromtimestamp(micros / 1_000_000, tz=UTC), ident


def queue_page(filters: Filters, user_id: int, after: str = "", size: int = PAGE_SIZE
               ) -> tuple[list[Report], str | None]:
    query = select(Report)
    if filters.status == "open":
        query = query.where(Report.status.in_(OPEN))
    elif filters.status and filters.status != "all":
        query = query.where(Report.status == filters.status)
    if filters.portal:
        query = query.where(Report.portal == filters.portal)
    if filters.lang:
        query = query.where(Report.lang == filters.lang)
    if filters.assignee == "me":
        query = query.where(Report.assigned_to == user_id)
    elif filters.assignee == "none":
        query = query.where(Report.assigned_to.is_(None))
    elif filters.assignee.isascii() and filters.assignee.isdigit():  # "²" is a digit to isdigit
        # A number no id column holds (PostgreSQL would refuse to compare it) matches nobody.
        assignee = int(filters.assignee)
        query = query.where(Report.assigned_to == assignee if assignee <= MAX_ID else false())
    if filters.outcome:
        query = query.where(exists(
            select(ReportItem.item_id).join(Item, Item.id == ReportItem.item_id)
            .where(ReportItem.report_id == Report.id, Item.last_outcome == filters.outcome)
        ))
    cursor = decode_cursor(after) if after else None
    if cursor:
        urgent, received, ident = cursor
        later = tuple_(Report.received_at, Report.id) > tuple_(literal(received), literal(ident))
        if urgent:
            query = query.where(or_(Report.urgent.is_(false()),
                                    and_(Report.urgent.is_(true()), later)))
        else:
            query = query.where(Report.urgent.is_(false()), later)
    query = query.order_by(Report.urgent.desc(), Report.received_at.asc(), Report.id.asc())
    rows = list(db.session.scalars(query.limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)
