"""Reporting periods: a month, a quarter, a year or custom dates, in a portal's time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

KINDS = ("month", "quarter", "year", "custom")
# The years a period may name: its previous period and its twelve months reach back a year or
# more, and its bounds are converted to UTC, so neither end of what a date holds may be near.
FIRST_YEAR, LAST_YEAR = 1900, 9000


class PeriodError(ValueError):
    pass


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """From ``start`` (inclusive) to ``end`` (exclusive), calendar dates in ``tz``."""

    kind: str
    start: date
    end: date
    tz: str = "UTC"

    @property
    def key(self) -> str:
        """A stable text for the period: 2026-10, 2026-Q3, 2026, or 2026-10-01..2026-10-15."""
        if self.kind == "month":
            return f"{self.start:%Y-%m}"
        if self.kind == "quarter":
            return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
        if self.kind == "year":
            return f"{self.start.year}"
        return f"{self.start.isoformat()}..{(self.end - timedelta(days=1)).isoformat()}"

    def bounds(self) -> tuple[datetime, datetime]:
        """The period's start and end as UTC instants (midnight in the portal's zone)."""
        zone = ZoneInfo(self.tz)
        start = datetime.combine(self.start, datetime.min.time(), tzinfo=zone)
        end = datetime.combine(self.end, datetime.min.time(), tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def previous(self) -> Period:
        if self.kind == "month":
            return Period("month", _add_months(self.start, -1), self.start, self.tz)
        if self.kind == "quarter":
            return Period("quarter", _add_months(self.start, -3), self.start, self.tz)
        if self.kind == "year":
            return Period("year", date(self.start.year - 1, 1, 1), self.start, self.tz)
        length = self.end - self.start
        return Period("custom", self.start - length, self.start, self.tz)

    def months(self, count: int = 12) -> list[Period]:
        """The ``count`` calendar months ending with the one that holds the period's last day."""
        last = (self.end - timedelta(days=1)).replace(day=1)
        return [Period("month", _add_months(last, -i), _add_months(last, -i + 1), self.tz)
                for i in range(count - 1, -1, -1)]


def parse_period(spec: str, tz: str = "UTC", today: date | None = None) -> Period:
    """``2026-10``, ``2026-Q3``, ``2026``, ``2026-10-01..2026-10-31`` (both days included),
    or ``last-month``, ``last-quarter``, ``last-year`` relative to ``today``; PeriodError for
    anything else, a year before ``FIRST_YEAR`` or after ``LAST_YEAR`` included."""
    try:
        period = _parse(spec, tz, today)
    except (ValueError, OverflowError) as exc:  # a date out of range; a PeriodError too
        raise PeriodError(spec) from exc
    if not FIRST_YEAR <= period.start.year <= period.end.year <= LAST_YEAR:
        raise PeriodError(spec)
    return period


def _parse(spec: str, tz: str, today: date | None) -> Period:
    spec = (spec or "").strip()
    today = today or datetime.now(ZoneInfo(tz)).date()
    if spec == "last-month":
        start = _add_months(today.replace(day=1), -1)
        return Period("month", start, _add_months(start, 1), tz)
    if spec == "last-quarter":
        this = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
        return Period("quarter", _add_months(this, -3), this, tz)
    if spec == "last-year":
        return Period("year", date(today.year - 1, 1, 1), date(today.year, 1, 1), tz)
    if match := re.fullmatch(r"(\d{4})-(\d{2})", spec):
        year, month = int(match[1]), int(match[2])
        if 1 <= month <= 12:
            start = date(year, month, 1)
            return Period("month", start, _add_months(start, 1), tz)
    if match := re.fullmatch(r"(\d{4})-Q([1-4])", spec):
        start = date(int(match[1]), (int(match[2]) - 1) * 3 + 1, 1)
        return Period("quarter", start, _add_months(start, 3), tz)
    if re.fullmatch(r"\d{4}", spec):
        return Period("year", date(int(spec), 1, 1), date(int(spec) + 1, 1, 1), tz)
    if match := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", spec):
        try:
            first, last = date.fromisoformat(match[1]), date.fromisoformat(match[2])
        except ValueError as exc:
            raise PeriodError(spec) from exc
        if first <= last and (last - first).days <= 3660:
            return Period("custom", first, last + timedelta(days=1), tz)
    raise PeriodError(spec)
