"""Sponsor figures against a small data set whose every figure was computed by hand,
including time zones, period edges, an empty period and small counts."""

from __future__ import annotations

from datetime import date

import pytest

from portal.sponsors.aggregates import Count, compute, median, percentile
from portal.sponsors.figures import Figuring
from portal.sponsors.periods import Period, PeriodError, parse_period
from tests.sponsor_data import NAIROBI, fill, october


@pytest.fixture
def data(app):
    return fill()


def figures(portal="demo", period=None, **kw):
    return compute(portal, period or october(), target_hours=24, urgent_target_hours=2, **kw)


def test_counts_of_the_cohort(data):
    f = figures()
    assert (f.reports, f.urls, f.urgent) == (3, 4, 1)
    assert f.by_language == {"en": 1, "fr": 1, "sw": 1}
    assert f.by_content_type == {"images": 2, "videos": 1}


def test_assessment_outcomes_target_and_duplicates(data):
    f = figures()
    assert (f.items, f.assessed, f.assessed_in_target) == (3, 3, 2)
    assert f.assessed_in_target_share == pytest.approx(2 / 3)
    assert f.outcomes == {"international_illegal": 1, "national_illegal": 1, "not_illegal": 1,
                          "not_found": 0}
    assert f.duplicates == 1  # report 2 named A, known since report 1


def test_hosting_actions_and_removals(data):
    f = figures()
    assert f.hosting_countries == [("XA", 1), ("unknown", 1)]
    assert f.actions == {"notice": 1, "renotice": 1, "hotline_referral": 1, "police_referral": 0}
    assert f.removals == 2
    assert f.removal_hours_median == 120 and f.removal_hours_p90 == 216
    assert (f.removed_within_3d, f.removed_within_7d) == (0.5, 0.5)


def test_period_edges_follow_the_portal_time_zone(data):
    utc_october = Period("month", date(2026, 10, 1), date(2026, 11, 1), "UTC")
    f = figures(period=utc_october)
    # In UTC, report 3 (21:00 on 30 September) is September's, report 4 (21:00 on 31 October)
    # is October's.
    assert (f.reports, f.by_language) == (3, {"en": 2, "fr": 1})
    november = figures(period=Period("month", date(2026, 11, 1), date(2026, 12, 1), NAIROBI))
    assert november.reports == 1 and november.actions["police_referral"] == 1


def test_previous_period_and_trend(data):
    figuring = Figuring(target_hours=24, urgent_target_hours=2, retention_days=730)
    report = figuring.report("demo", october(), threshold=5)
    assert (report.previous.reports, report.previous.urls) == (1, 1)
    assert report.previous.period.key == "2026-09"
    trend = report.current.trend
    assert len(trend) == 12 and trend[-1] == ("2026-10", 3, 4, 2, 2)
    assert trend[-2] == ("2026-09", 1, 1, 0, 0) and trend[0][0] == "2025-11"
    assert report.count(3).suppressed and not report.count(0).suppressed
    assert not report.count(5).suppressed


def test_all_portals_overview_and_empty_period(data):
    everything = figures(portal=None)
    assert everything.reports == 4 and everything.duplicates == 2
    empty = figures(period=Period("month", date(2025, 1, 1), date(2025, 2, 1), NAIROBI))
    assert (empty.reports, empty.urls, empty.assessed, empty.removals) == (0, 0, 0, 0)
    assert empty.removal_hours_median is None and empty.assessed_in_target_share is None
    assert empty.hosting_countries == []


def test_periods():
    today = date(2026, 11, 23)
    assert parse_period("last-month", today=today).key == "2026-10"
    assert parse_period("last-quarter", today=today).key == "2026-Q3"
    assert parse_period("last-year", today=today).key == "2025"
    assert parse_period("2026-Q4").end == date(2027, 1, 1)
    custom = parse_period("2026-10-01..2026-10-15")
    assert (custom.end, custom.previous().start) == (date(2026, 10, 16), date(2026, 9, 16))
    assert parse_period("2024").previous().key == "2023"
    for bad in ("2026-13", "2026-Q5", "yesterday", "2026-10-15..2026-10-01", ""):
        with pytest.raises(PeriodError):
            parse_period(bad)


def test_statistics_helpers():
    assert median([3, 1, 2]) == 2 and median([1, 2, 3, 4]) == 2.5 and median([]) is None
    assert percentile(list(range(1, 11)), 0.9) == 9 and percentile([5], 0.9) == 5
    assert Count(4, 5).suppressed and not Count(0, 5).suppressed
