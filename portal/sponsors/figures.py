"""Which figures a sponsor report shows: stored ones for closed periods, computed ones for
the rest; and the two jobs that store them.

A month, quarter or year that has ended is read from ``period_figures`` when it is there, so
a monthly report costs one computation (the period itself, when it is still running) and a
few row reads, however many reports the portal has. ``portal figures refresh`` (nightly)
recomputes the stored periods that may still change (assessments and removals keep coming
for a while after a period ends; ``PORTAL_FIGURES_SETTLE_MONTHS``, default 13). ``portal
purge`` calls :func:`finalize` for every period that overlaps the reports it is about to
delete, so the aggregates outlive the reports. Custom periods (two dates) are always
computed, so they cannot reach before the reports still held.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from portal.assessment.models import Report
from portal.db import db, utcnow
from portal.sponsors.aggregates import Figures, SponsorReport, compute, trend, trend_row
from portal.sponsors.models import PeriodFigures
from portal.sponsors.periods import Period, PeriodError, _add_months

STORED_KINDS = ("month", "quarter", "year")
# Not stored: who and when the figures belong to, and the trend (built from months).
_NOT_STORED = {"portal", "period", "trend", "as_of"}


class PeriodPurged(PeriodError):
    """A custom period that starts before the reports still held."""

    def __init__(self, spec: str, held_from: date):
        super().__init__(spec)
        self.held_from = held_from


def horizon(retention_days: int, now: datetime | None = None) -> datetime:
    """Reports received before this instant may have been deleted by ``portal purge``."""
    return (now or utcnow()) - timedelta(days=retention_days)


def _encode(figures: Figures) -> str:
    data = {key: value for key, value in asdict(figures).items() if key not in _NOT_STORED}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _decode(portal: str | None, period: Period, row: PeriodFigures) -> Figures:
    data = json.loads(row.data)
    known = {f.name for f in fields(Figures)} - _NOT_STORED
    values = {key: value for key, value in data.items() if key in known}
    values["hosting_countries"] = [tuple(pair) for pair in values.get("hosting_countries", [])]
    return Figures(portal=portal or "", period=period, as_of=row.computed_at, **values)


def _row(portal: str | None, period: Period) -> PeriodFigures | None:
    """The stored row of this portal (or all portals) and period, whatever its time zone."""
    return db.session.scalar(select(PeriodFigures).where(PeriodFigures.portal == (portal or ""),
                                                         PeriodFigures.period == period.key))


def _stored(portal: str | None, period: Period) -> PeriodFigures | None:
    """Stored figures usable for this period: same kind of period, same time zone."""
    if period.kind not in STORED_KINDS:
        return None
    row = _row(portal, period)
    return row if row is not None and row.tz == period.tz else None


def _ended(period: Period, now: datetime) -> bool:
    return period.bounds()[1] <= now


class Figuring:
    """The settings the figures depend on, and the moment they are asked for."""

    def __init__(self, *, target_hours: int, urgent_target_hours: int, retention_days: int,
                 settle_months: int = 13, now: datetime | None = None):
        self.targets = {"target_hours": target_hours, "urgent_target_hours": urgent_target_hours}
        self.retention_days = retention_days
        self.settle_months = settle_months
        self.now = now or utcnow()

    @classmethod
    def from_settings(cls, settings, now: datetime | None = None) -> Figuring:
        return cls(target_hours=settings.target_hours,
                   urgent_target_hours=settings.urgent_target_hours,
                   retention_days=settings.report_retention_days,
                   settle_months=settings.figures_settle_months, now=now)

    @property
    def horizon(self) -> datetime:
        return horizon(self.retention_days, self.now)

    def figures(self, portal: str | None, period: Period) -> Figures:
        """Stored figures for an ended month, quarter or year; computed ones otherwise."""
        if _ended(period, self.now) and (row := _stored(portal, period)) is not None:
            return _decode(portal, period, row)
        if period.kind == "custom":
            start = period.bounds()[0]
            if start < self.horizon:
                held = self.horizon.astimezone(ZoneInfo(period.tz)).date() + timedelta(days=1)
                raise PeriodPurged(period.key, held)
        return compute(portal, period, with_trend=False, **self.targets)

    def trend(self, portal: str | None, period: Period,
              known: Figures | None = None) -> list[tuple[str, int, int, int, int]]:
        """The twelve months ending with the period: stored months as they are, a month
        whose figures are ``known`` from them, the others computed together in one pass."""
        rows: dict[str, tuple[str, int, int, int, int]] = {}
        missing = []
        for month in period.months(12):
            row = _stored(portal, month) if _ended(month, self.now) else None
            if row is not None:
                rows[month.key] = trend_row(_decode(portal, month, row))
            elif known is not None and known.period == month:
                rows[month.key] = trend_row(known)
            else:
                missing.append(month)
        for line in trend(portal, missing):
            rows[line[0]] = line
        return [rows[month.key] for month in period.months(12)]

    def report(self, portal: str | None, period: Period, threshold: int) -> SponsorReport:
        current = self.figures(portal, period)
        current.trend = self.trend(portal, period, known=current)
        previous = self.figures(portal, period.previous())
        return SponsorReport(current=current, previous=previous, threshold=threshold)

    # -- storing ---------------------------------------------------------------------------

    def _store(self, portal: str | None, period: Period, row: PeriodFigures | None,
               final: bool) -> None:
        """Compute the period's figures into ``row`` (its stored row, or None for a new one)."""
        figures = compute(portal, period, with_trend=False, **self.targets)
        if row is None:
            row = PeriodFigures(portal=portal or "", period=period.key)
            db.session.add(row)
        row.tz, row.data, row.computed_at, row.final = period.tz, _encode(figures), self.now, final

    def refresh(self, portal: str | None, tz: str) -> int:
        """Store (again) every ended month, quarter and year from the portal's first held
        report on that may still change: not final, not yet stored, or ended within the
        settle time. Periods that start before the retention horizon are left alone: only
        :func:`finalize` stores those, while their reports are still there."""
        first = db.session.scalar(select(func.min(Report.received_at)).where(
            Report.received_at >= self.horizon, *([Report.portal == portal] if portal else [])))
        if first is None:
            return 0
        settled_before = self.now - timedelta(days=31 * self.settle_months)
        stored = 0
        for period in _periods(first, self.now, tz):
            start, end = period.bounds()
            if start < self.horizon or end > self.now:
                continue
            row = _row(portal, period)
            if row is not None and (row.final or (row.tz == tz and end <= settled_before)):
                continue
            self._store(portal, period, row, final=False)
            stored += 1
        return stored

    def finalize(self, portal: str | None, tz: str, first: datetime, until: datetime) -> int:
        """Store, for good, every month, quarter and year that holds any instant from
        ``first`` to ``until`` (the reports about to be deleted), unless already final."""
        stored = 0
        for period in _periods(first, until, tz):
            row = _row(portal, period)
            if row is not None and row.final:
                continue
            self._store(portal, period, row, final=True)
            stored += 1
        return stored


def _periods(first: datetime, until: datetime, tz: str) -> list[Period]:
    """Every month, quarter and year (in ``tz``) from the one holding ``first`` to the one
    holding ``until``."""
    zone = ZoneInfo(tz)
    first_day = first.astimezone(zone).date()
    last_day = until.astimezone(zone).date()
    found = []
    month = first_day.replace(day=1)
    while month <= last_day:
        found.append(Period("month", month, _add_months(month, 1), tz))
        month = _add_months(month, 1)
    quarter = date(first_day.year, (first_day.month - 1) // 3 * 3 + 1, 1)
    while quarter <= last_day:
        found.append(Period("quarter", quarter, _add_months(quarter, 3), tz))
        quarter = _add_months(quarter, 3)
    for year in range(first_day.year, last_day.year + 1):
        found.append(Period("year", date(year, 1, 1), date(year + 1, 1, 1), tz))
    return found
