"""Sponsor figures against a small data set whose every figure was computed by hand,
including time zones, period edges, an empty period and small counts."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import pytest

from portal.assessment.models import Action, Assessment, Item, Report, ReportUrl
from portal.db import db
from portal.sponsors.aggregates import Count, compute, median, percentile, sponsor_report
from portal.sponsors.periods import Period, PeriodError, parse_period

NAIROBI = "Africa/Nairobi"  # UTC+3 all year


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def data(app):
    items = {}

    def item(key: str, first_seen: str, **fields) -> Item:
        url = f"http://{key.lower()}.example.test/"
        items[key] = Item(url=url, url_hash=hashlib.sha256(url.encode()).hexdigest(),
                          first_seen_at=at(first_seen), report_count=0, **fields)
        db.session.add(items[key])
        return items[key]

    item("A", "2026-10-05T10:00:00", last_outcome="international_illegal", trace_country="XA",
         removed_at=at("2026-10-06T10:00:00"), removal_seconds=24 * 3600)
    item("B", "2026-10-05T10:00:00", last_outcome="not_illegal")
    item("C", "2026-09-30T21:00:00", last_outcome="national_illegal",
         removed_at=at("2026-10-09T21:00:00"), removal_seconds=216 * 3600)
    item("D", "2026-10-31T21:00:00")
    item("E", "2026-09-30T20:59:00", last_outcome="not_found")
    db.session.flush()

    def report(n: int, received: str, lang: str, content: str, keys: str, urgent=False,
               portal="demo"):
        r = Report(envelope_id=f"00000000-0000-4000-8000-{n:012d}", portal=portal, lang=lang,
                   urgent=urgent, received_at=at(received), content_type=content,
                   where_found="website", receipt_hash=f"{n:064d}",
                   urls=[ReportUrl(position=i, url=items[k].url) for i, k in enumerate(keys)])
        r.items = [items[k] for k in keys]
        db.session.add(r)

    report(1, "2026-10-05T10:00:00", "en", "images", "AB", urgent=True)
    report(2, "2026-10-10T12:00:00", "fr", "videos", "A")
    report(3, "2026-09-30T21:00:00", "sw", "images", "C")   # 00:00 on 1 October in Nairobi
    report(4, "2026-10-31T21:00:00", "en", "images", "D")   # 00:00 on 1 November in Nairobi
    report(5, "2026-09-30T20:59:00", "en", "text", "E")     # 23:59 on 30 September in Nairobi
    report(6, "2026-10-06T08:00:00", "en", "images", "A", portal="other")
    for key, when in (("A", "2026-10-05T11:00:00"), ("B", "2026-10-07T10:00:00"),
                      ("C", "2026-10-01T20:00:00"), ("E", "2026-10-02T09:00:00")):
        db.session.add(Assessment(item_id=items[key].id, analyst_id=1,
                                  outcome=items[key].last_outcome, created_at=at(when)))
    for key, kind, when in (("A", "notice", "2026-10-05T12:00:00"),
                            ("A", "renotice", "2026-10-08T12:00:00"),
                            ("A", "hotline_referral", "2026-10-05T13:00:00"),
                            ("C", "police_referral", "2026-11-02T09:00:00"),
                            ("A", "removed", "2026-10-06T10:00:00")):
        db.session.add(Action(item_id=items[key].id, kind=kind, analyst_id=1, at=at(when)))
    db.session.commit()
    return items


def october(**kw) -> Period:
    return Period("month", date(2026, 10, 1), date(2026, 11, 1), NAIROBI)


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
    report = sponsor_report("demo", october(), target_hours=24, urgent_target_hours=2, threshold=5)
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
