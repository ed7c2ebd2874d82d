"""Sponsor figures: the only code that computes them, each metric defined once.

Everything here returns counts, shares and durations for one portal (or all) and one period;
nothing returns a URL, a description or anything about a reporter. Definitions (README,
"Sponsor figures", repeats them):

- *Cohort*: the portal's reports received in the period (in the portal's time zone).
- ``reports``: reports in the cohort. ``urls``: the URLs they named. ``urgent``: cohort
  reports marked "a child is in immediate danger". ``by_language``, ``by_content_type``:
  cohort reports by the page's language and the content type chosen.
- ``items``: distinct items (unique normalised URLs) the cohort named. ``assessed``: those
  assessed by now. ``assessed_in_target``: those whose first assessment came within the
  target time (``PORTAL_URGENT_TARGET_HOURS`` when the cohort report was urgent, else
  ``PORTAL_TARGET_HOURS``) of the earliest cohort report naming them.
- ``outcomes``: assessed cohort items by their current outcome.
- ``duplicates``: cohort URLs that named an item already known before that report came in.
- ``hosting_countries``: cohort items assessed illegal, by hosting country (top ten, then
  the rest; "unknown" when not traced).
- ``actions``: notices, new notices, hotline referrals and police referrals recorded in the
  period on items any report of this portal named.
- ``removals``: such items confirmed removed in the period; ``removal_hours_median``,
  ``removal_hours_p90``: time from the first report to removal; ``removed_within_3d``,
  ``removed_within_7d``: their shares (as the international hotline network reports it).
- ``trend``: the twelve months ending with the period: reports, URLs, items assessed
  illegal (of that month's cohort) and removals.

:class:`SponsorReport` is what readers get: the figures with small counts, and the counts that
would give them away, hidden (:mod:`portal.sponsors.suppression`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func, select, true

from portal.assessment.models import (
    ILLEGAL,
    OUTCOMES,
    Action,
    Assessment,
    Item,
    Report,
    ReportItem,
    ReportUrl,
)
from portal.db import db
from portal.sponsors.periods import Period
from portal.sponsors.suppression import DERIVED_BASE, figure_table, hidden_figures

ACTION_KINDS = ("notice", "renotice", "hotline_referral", "police_referral")
TOP_COUNTRIES = 10


@dataclass
class Figures:
    portal: str
    period: Period
    reports: int = 0
    urls: int = 0
    urgent: int = 0
    by_language: dict[str, int] = field(default_factory=dict)
    by_content_type: dict[str, int] = field(default_factory=dict)
    items: int = 0
    assessed: int = 0
    assessed_in_target: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    hosting_countries: list[tuple[str, int]] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)
    removals: int = 0
    removal_hours_median: float | None = None
    removal_hours_p90: float | None = None
    removed_within_3d: float | None = None
    removed_within_7d: float | None = None
    trend: list[tuple[str, int, int, int, int]] = field(default_factory=list)
    # When stored figures were computed; None for figures computed just now.
    as_of: datetime | None = None

    @property
    def assessed_in_target_share(self) -> float | None:
        return self.assessed_in_target / self.assessed if self.assessed else None


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (the smallest value with ``share`` of the values at or below)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered, middle = sorted(values), len(values) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _cohort(portal: str | None, start, end):
    conditions = [Report.received_at >= start, Report.received_at < end]
    if portal:
        conditions.append(Report.portal == portal)
    return and_(*conditions)


def _named_by_portal(item_id, portal: str | None):
    """True for items some report of the portal named (always true for the overview).
    Written as EXISTS so that the database starts from the period's few rows."""
    if not portal:
        return true()
    return exists(select(ReportItem.item_id).join(Report, Report.id == ReportItem.report_id)
                  .where(ReportItem.item_id == item_id, Report.portal == portal))


def compute(portal: str | None, period: Period, *, target_hours: int, urgent_target_hours: int,
            with_trend: bool = True) -> Figures:
    start, end = period.bounds()
    cohort = _cohort(portal, start, end)
    figures = Figures(portal=portal or "", period=period)
    session = db.session

    row = session.execute(select(func.count(Report.id), func.count(Report.id).filter(Report.urgent))
                          .where(cohort)).one()
    figures.reports, figures.urgent = row[0], row[1]
    figures.urls = session.scalar(select(func.count(ReportUrl.id)).join(Report).where(cohort)) or 0
    figures.by_language = dict(session.execute(
        select(Report.lang, func.count()).where(cohort).group_by(Report.lang)).all())
    figures.by_content_type = dict(session.execute(
        select(Report.content_type, func.count()).where(cohort).group_by(Report.content_type)).all())

    # Items of the cohort, each with its earliest cohort report and whether any was urgent.
    links = select(ReportItem.item_id.label("item_id"),
                   func.min(Report.received_at).label("first_at"),
                   func.max(Report.urgent.cast(db.Integer)).label("urgent")) \
        .join(Report, Report.id == ReportItem.report_id).where(cohort) \
        .group_by(ReportItem.item_id).subquery()
    first_assessed = select(func.min(Assessment.created_at)) \
        .where(Assessment.item_id == links.c.item_id).scalar_subquery()
    rows = session.execute(
        select(links.c.first_at, links.c.urgent, Item.last_outcome, Item.trace_country,
               first_assessed)
        .join(Item, Item.id == links.c.item_id)
    ).all()
    outcomes: Counter[str] = Counter()
    countries: Counter[str] = Counter()
    for first_at, urgent, outcome, country, assessed_at in rows:
        figures.items += 1
        if outcome is None:
            continue
        figures.assessed += 1
        outcomes[outcome] += 1
        limit = timedelta(hours=urgent_target_hours if urgent else target_hours)
        if assessed_at is not None and assessed_at - first_at <= limit:
            figures.assessed_in_target += 1
        if outcome in ILLEGAL:
            countries[country or "unknown"] += 1
    figures.outcomes = {key: outcomes.get(key, 0) for key in OUTCOMES}
    top = sorted(countries.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP_COUNTRIES]
    rest = sum(countries.values()) - sum(n for _, n in top)
    figures.hosting_countries = top + ([("other", rest)] if rest else [])

    figures.duplicates = session.scalar(
        select(func.count()).select_from(ReportItem)
        .join(Report, Report.id == ReportItem.report_id).join(Item, Item.id == ReportItem.item_id)
        .where(cohort, Item.first_seen_at < Report.received_at)) or 0

    figures.actions = {kind: 0 for kind in ACTION_KINDS}
    figures.actions.update(dict(session.execute(
        select(Action.kind, func.count()).where(
            Action.at >= start, Action.at < end, Action.kind.in_(ACTION_KINDS),
            _named_by_portal(Action.item_id, portal)).group_by(Action.kind)).all()))
    durations = [seconds / 3600 for seconds in session.scalars(
        select(Item.removal_seconds).where(
            Item.removed_at >= start, Item.removed_at < end, Item.removal_seconds.is_not(None),
            _named_by_portal(Item.id, portal)))]
    figures.removals = len(durations)
    figures.removal_hours_median = median(durations)
    figures.removal_hours_p90 = percentile(durations, 0.9)
    if durations:
        figures.removed_within_3d = sum(d <= 72 for d in durations) / len(durations)
        figures.removed_within_7d = sum(d <= 168 for d in durations) / len(durations)

    if with_trend:
        figures.trend = trend(portal, period.months(12))
    return figures


def trend_row(figures: Figures) -> tuple[str, int, int, int, int]:
    """One month of the trend from that month's figures: the same four counts."""
    illegal = sum(figures.outcomes.get(outcome, 0) for outcome in ILLEGAL)
    return (figures.period.key, figures.reports, figures.urls, illegal, figures.removals)


def trend(portal: str | None, months: list[Period]) -> list[tuple[str, int, int, int, int]]:
    """Reports, URLs, items assessed illegal (of the month's cohort) and removals for each of
    ``months``, in three passes over the window they span (rather than four queries a month),
    each row put in its month in the portal's zone."""
    if not months:
        return []
    start, end = months[0].bounds()[0], months[-1].bounds()[1]
    zone = ZoneInfo(months[0].tz)
    counts = {month.key: [0, 0, set(), 0] for month in months}

    def bucket(moment) -> list | None:
        return counts.get(f"{moment.astimezone(zone):%Y-%m}")

    window = _cohort(portal, start, end)
    session = db.session
    for received_at, urls in session.execute(
            select(Report.received_at, func.count(ReportUrl.id))
            .outerjoin(ReportUrl, ReportUrl.report_id == Report.id).where(window)
            .group_by(Report.id, Report.received_at)):
        row = bucket(received_at)
        if row is not None:
            row[0] += 1
            row[1] += urls
    for received_at, item_id in session.execute(
            select(Report.received_at, ReportItem.item_id)
            .join(ReportItem, ReportItem.report_id == Report.id)
            .join(Item, Item.id == ReportItem.item_id)
            .where(window, Item.last_outcome.in_(ILLEGAL))):
        row = bucket(received_at)
        if row is not None:
            row[2].add(item_id)
    for (removed_at,) in session.execute(select(Item.removed_at).where(
            Item.removed_at >= start, Item.removed_at < end, Item.removal_seconds.is_not(None),
            _named_by_portal(Item.id, portal))):
        row = bucket(removed_at)
        if row is not None:
            row[3] += 1
    return [(key, reports, urls, len(illegal), removed)
            for key, (reports, urls, illegal, removed) in counts.items()]


@dataclass
class SponsorReport:
    """A period's figures and the previous period's, as they may be shown: every reader (the
    page, the PDF, the CSV, the staff overview) takes counts from :meth:`value` and derived
    figures from :meth:`derived`, so small counts and the counts that would give them away
    (:mod:`portal.sponsors.suppression`) are hidden the same way everywhere."""

    current: Figures
    previous: Figures
    threshold: int
    hidden: frozenset[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self._table = figure_table(self.current, self.previous)
        self.hidden = hidden_figures(self._table, self.threshold)

    def figures(self, side: str) -> Figures:
        return self.current if side == "current" else self.previous

    def value(self, name: str, side: str = "current") -> int | None:
        """A count by its CSV name ("reports", "language:fr", "trend:2026-10:urls"), or None
        when it is hidden. KeyError for a name the report does not hold."""
        key = (side, name)
        value = self._table.values[key]
        return None if key in self.hidden or key in self._table.unshown else value

    def derived(self, name: str, side: str = "current") -> float | None:
        """A share or a duration (a field of :class:`Figures` named in ``DERIVED_BASE``), or
        None when there is none or it is hidden with its base."""
        return None if self.hides(name, side) else getattr(self.figures(side), name)

    def hides(self, name: str, side: str = "current") -> bool:
        """Whether a count, or a derived figure through its base, is hidden."""
        key = (side, DERIVED_BASE.get(name, name))
        if key not in self._table.values:
            raise KeyError(key)
        return key in self.hidden or key in self._table.unshown
