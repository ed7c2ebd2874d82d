"""Sponsor figures against a small data set whose every figure was computed by hand,
including time zones, period edges, an empty period and small counts."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.assessment.models import OUTCOMES
from portal.sponsors.aggregates import ACTION_KINDS, Figures, SponsorReport, compute, median, percentile
from portal.sponsors.figures import Figuring
from portal.sponsors.periods import Period, PeriodError, parse_period
from portal.sponsors.render import render_csv
from tests.sponsor_data import NAIROBI, add_reports, fill, october, recoverable


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
    # Three reports is a small total: it and every cell of its breakdowns are hidden, zeros too.
    assert report.value("reports") is None and report.value("language:en") is None
    assert report.value("action:police_referral") == 0  # no breakdown holds it: zero is shown
    assert report.value("trend:2025-11:reports") == 0


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


# -- suppression: small counts and the counts that would give them away --------------------------

OCTOBER_DAY = "2026-10-10T09:00:00"  # inside October in Nairobi; September (previous) stays empty


def report_of(period=None, threshold=5):
    figuring = Figuring(target_hours=24, urgent_target_hours=2, retention_days=730)
    return figuring.report("demo", period or october(), threshold=threshold)


def csv_rows(report) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in csv.reader(io.StringIO(render_csv(report)))}


def test_the_finding_total_7_fr_5_en_2(app):
    """The review's example: 7 reports, 5 in French, 2 in English. English alone hidden gives
    7 - 5 = 2 back, so French is hidden too. The total stays: it is also the total of the
    content types (7 images) and of October in the trend, so hiding it would not hide it, and it
    is what the sponsor needs most; with both cells hidden their sum, 7, is not small."""
    add_reports(OCTOBER_DAY, 5, lang="fr")
    add_reports(OCTOBER_DAY, 2, lang="en")
    report = report_of()
    rows = csv_rows(report)
    assert rows["reports"] == ["7", "0"] and rows["content_type:images"] == ["7", "0"]
    assert rows["language:en"] == ["suppressed", "0"] and rows["language:fr"] == ["suppressed", "0"]
    assert rows["trend:2026-10:reports"] == ["7", ""] and rows["urgent_reports"] == ["0", "0"]
    assert report.hidden == {("current", "language:en"), ("current", "language:fr")}
    assert recoverable(render_csv(report), 5) == []


def test_two_small_cells_whose_sum_is_small_take_the_next_smallest(app):
    """20 reports: en 1, fr 2, sw 6, pt 11. en and fr are small, and so is their sum, 3, which
    is the total minus the shown cells: sw (6, the next smallest) is hidden too, leaving 9."""
    for lang, n in (("en", 1), ("fr", 2), ("sw", 6), ("pt", 11)):
        add_reports(OCTOBER_DAY, n, lang=lang)
    rows = csv_rows(report := report_of())
    assert [rows[f"language:{lang}"][0] for lang in ("en", "fr", "sw", "pt")] == \
        ["suppressed", "suppressed", "suppressed", "11"]
    assert rows["reports"][0] == "20"
    assert recoverable(render_csv(report), 5) == []


def test_two_small_cells_whose_sum_is_not_small_are_enough(app):
    """en 2 and fr 3 are hidden; 20 - 15 = 5 is their sum, not small: pt stays."""
    for lang, n in (("en", 2), ("fr", 3), ("pt", 15)):
        add_reports(OCTOBER_DAY, n, lang=lang)
    report = report_of()
    assert report.hidden == {("current", "language:en"), ("current", "language:fr")}
    assert report.value("language:pt") == 15


def test_across_breakdowns_assessed_outcomes_and_hosting(app):
    """20 reports, each naming its own item: 8 international illegal hosted in XA, 5 national
    illegal (2 in XA, 1 in XB, 2 in XC), 5 not illegal, 2 not assessed yet. By hand:
    - items 20 - assessed 18 would show the 2 not assessed. Hiding "assessed" does not help
      (the outcomes add up to it), hiding "items" does: items is hidden.
    - XB 1 and XC 2 are small; confirmed illegal 13 (the two illegal outcomes, and October's
      trend row) minus XA 10 would show their sum, 3: XA is hidden too.
    Everything else is shown, the outcomes included."""
    add_reports(OCTOBER_DAY, 8, outcome="international_illegal", country="XA")
    for country, n in (("XA", 2), ("XB", 1), ("XC", 2)):
        add_reports(OCTOBER_DAY, n, outcome="national_illegal", country=country)
    add_reports(OCTOBER_DAY, 5, outcome="not_illegal")
    add_reports(OCTOBER_DAY, 2)
    report = report_of()
    assert report.current.hosting_countries == [("XA", 10), ("XC", 2), ("XB", 1)]
    assert report.hidden == {("current", "items"), ("current", "hosting_country:XA"),
                             ("current", "hosting_country:XB"), ("current", "hosting_country:XC")}
    rows = csv_rows(report)
    assert rows["items_assessed"][0] == "18" and rows["trend:2026-10:confirmed_illegal"][0] == "13"
    assert [rows[f"outcome:{k}"][0] for k in ("international_illegal", "national_illegal",
                                              "not_illegal", "not_found")] == ["8", "5", "5", "0"]
    assert recoverable(render_csv(report), 5) == []


def test_a_quarter_and_its_months_in_the_trend(app):
    """Q4: 3 reports in October, 10 in November. The quarter shows 13 and the trend its months:
    October's 3 is hidden, and November's 10 with it (13 - 0 - 10 = 3 otherwise)."""
    add_reports(OCTOBER_DAY, 3)
    add_reports("2026-11-10T09:00:00", 10)
    quarter = Period("quarter", date(2026, 10, 1), date(2027, 1, 1), NAIROBI)
    report = report_of(quarter)
    assert report.value("reports") == 13 and report.value("trend:2026-12:reports") == 0
    for month in ("2026-10", "2026-11"):
        assert report.value(f"trend:{month}:reports") is None
        assert report.value(f"trend:{month}:urls") is None
    assert recoverable(render_csv(report), 5) == []


def test_a_small_total_hides_its_cells_and_derived_figures_their_base(data):
    """The hand-computed data set of this file: October has 3 reports (en, fr, sw), 2 removals
    (median 120 hours). Everything that adds up to the 3 is hidden, zeros included, and so are
    the removal times and shares, whose base (2 removals) is hidden; the previous period's 1
    report is hidden as well, and so is every comparison with it."""
    report = report_of()
    rows = csv_rows(report)
    for metric in ("reports", "language:en", "content_type:videos", "urgent_reports",
                   "removals", "removal_hours_median", "removed_within_3_days_share",
                   "items_assessed", "outcome:not_found", "hosting_country:XA"):
        assert rows[metric][0] == "suppressed", metric
    assert rows["assessed_within_target_share"][0] == "suppressed"
    assert rows["action:police_referral"] == ["0", "0"]
    assert report.derived("removal_hours_median") is None and report.hides("removed_within_7d")
    assert report.current.removal_hours_median == 120  # computed, only not shown
    assert recoverable(render_csv(report), 5) == []


# A random but consistent pair of periods (a month or a quarter and the one before), for the
# property below: every breakdown adds up, as it does in the real figures.

def split(draw, total: int, names: list[str]) -> dict[str, int]:
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=len(names) - 1,
                                max_size=len(names) - 1)))
    bounds = [0, *cuts, total]
    return {name: bounds[i + 1] - bounds[i] for i, name in enumerate(names)}


@st.composite
def report_pairs(draw):
    kind = draw(st.sampled_from(["month", "quarter"]))
    current = october() if kind == "month" else Period("quarter", date(2026, 10, 1),
                                                       date(2027, 1, 1), NAIROBI)
    previous = current.previous()

    def one(period: Period) -> Figures:
        f = Figures(portal="demo", period=period)
        f.by_language = {k: v for k, v in draw(st.fixed_dictionaries(
            {lang: st.integers(0, 14) for lang in ("en", "fr", "sw")})).items() if v}
        f.reports = sum(f.by_language.values())
        f.by_content_type = {k: v for k, v in split(draw, f.reports, ["images", "videos"]).items() if v}
        f.urgent = draw(st.integers(0, f.reports))
        f.urls = f.reports + draw(st.integers(0, 8))
        f.duplicates = draw(st.integers(0, f.urls))
        f.outcomes = draw(st.fixed_dictionaries({key: st.integers(0, 12) for key in OUTCOMES}))
        f.assessed = sum(f.outcomes.values())
        f.items = f.assessed + draw(st.integers(0, 8))
        f.assessed_in_target = draw(st.integers(0, f.assessed))
        illegal = f.outcomes["international_illegal"] + f.outcomes["national_illegal"]
        f.hosting_countries = sorted(((c, n) for c, n in split(
            draw, illegal, ["XA", "XB", "XC", "unknown"]).items() if n), key=lambda p: (-p[1], p[0]))
        f.actions = draw(st.fixed_dictionaries({k: st.integers(0, 9) for k in ACTION_KINDS}))
        f.removals = draw(st.integers(0, 12))
        f.removal_hours_median = 30.0 if f.removals else None
        f.removed_within_3d = 0.5 if f.removals else None
        return f

    cur, prev = one(current), one(previous)
    trend = {m.key: [0, 0, 0, 0] for m in current.months(12)}
    for f in (cur, prev):
        months = [m.key for m in f.period.months(12)][-(1 if kind == "month" else 3):]
        illegal = f.outcomes["international_illegal"] + f.outcomes["national_illegal"]
        for i, name in enumerate(("reports", "urls", "illegal", "removals")):
            value = {"reports": f.reports, "urls": f.urls, "removals": f.removals,
                     "illegal": illegal}[name]
            parts = split(draw, value, months) if name != "illegal" or kind == "month" else \
                {m: draw(st.integers(0, value)) for m in months}  # months may share items
            for month, n in parts.items():
                trend[month][i] = n
    cur.trend = [(key, *counts) for key, counts in trend.items()]
    return cur, prev


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=report_pairs(), threshold=st.integers(2, 6))
def test_no_breakdown_of_the_csv_gives_a_small_count_away(pair, threshold):
    """For every breakdown of the CSV, the total minus the shown cells is unknown (the total
    hidden), 0 or at least the threshold; no count from 1 to threshold-1 is shown or can be
    worked out by sums and subtractions; and when no count at all is small, nothing is hidden."""
    current, previous = pair
    report = SponsorReport(current=current, previous=previous, threshold=threshold)
    assert recoverable(render_csv(report), threshold) == []
    values = report._table.values
    assert {key for key, n in values.items() if 0 < n < threshold} - report._table.unshown <= report.hidden
    if not any(0 < n < threshold for n in values.values()):
        assert report.hidden == frozenset()
