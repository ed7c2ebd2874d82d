"""A portal's monthly sponsor report over a million reports on PostgreSQL.

    python tests/benchmarks/bench_sponsors.py [--reports 1000000]

Fills a PostgreSQL server (started in a temporary folder) with reports spread over two
years and three portals, one URL each (one in five a repeat of a known item), 80 % of items
assessed, a third of those illegal with a hosting country, notices and removals. Then runs
``portal figures refresh``'s work twice (first run, then the nightly one) and times, for one
portal and October 2026: one month computed; the whole monthly report (the month, the
previous month for the comparison, the twelve-month trend) computed from the reports; the
same report while October is still running (September and the trend's ended months stored);
and once October has ended (stored); and all portals together. The bare baseline, in the
same run: one COUNT over the same month's reports.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from portal.db import db  # noqa: E402
from portal.sponsors.aggregates import compute  # noqa: E402
from portal.sponsors.figures import Figuring  # noqa: E402
from portal.sponsors.periods import Period  # noqa: E402
from tests.benchmarks._postgres import filled_app, median_ms, report_count  # noqa: E402

FILL = [
    # reports over 730 days before 2026-11-01, three portals
    """INSERT INTO reports (id, envelope_id, portal, lang, urgent, received_at, imported_at,
                            content_type, where_found, description, receipt_hash, status)
       SELECT i, md5(i::text)::uuid::text, (ARRAY['demo','xa','xb'])[1 + i % 3],
              (ARRAY['en','fr','ar','sw'])[1 + i % 4], i % 500 = 0,
              timestamptz '2026-11-01 00:00+00' - ((i % 730) || ' days')::interval
                - ((i % 86400) || ' seconds')::interval,
              now(), (ARRAY['images','videos','links'])[1 + i % 3], 'website', '',
              md5(i::text) || md5((i + 1)::text), 'received'
       FROM generate_series(1, :n) AS i""",
    """INSERT INTO report_urls (id, report_id, position, url)
       SELECT i, i, 0, 'http://site' || i || '.example.test/' FROM generate_series(1, :n) AS i""",
    # one item per report, except every fifth report repeats the item of the report before
    """INSERT INTO items (id, url, url_hash, first_seen_at, report_count, last_outcome,
                          trace_country, last_assessed_at, removed_at, removal_seconds,
                          trace_corrected, law_enforcement_needed)
       SELECT r.id, 'http://site' || r.id || '.example.test/', md5(r.id::text) || md5('x' || r.id),
              r.received_at, 1,
              CASE WHEN r.id % 10 < 8 THEN (ARRAY['international_illegal','national_illegal',
                   'not_illegal','not_found','not_illegal','not_illegal'])[1 + r.id % 6] END,
              CASE WHEN r.id % 6 < 2 THEN (ARRAY['XA','XB','XC','XD','XE','XF','XG','XH','XI',
                   'XJ','XK','XL'])[1 + r.id % 12] END,
              CASE WHEN r.id % 10 < 8 THEN r.received_at + interval '5 hours' END,
              CASE WHEN r.id % 10 < 8 AND r.id % 6 < 2 AND r.id % 3 = 0
                   THEN r.received_at + ((r.id % 240) || ' hours')::interval END,
              CASE WHEN r.id % 10 < 8 AND r.id % 6 < 2 AND r.id % 3 = 0
                   THEN (r.id % 240) * 3600 END,
              false, false
       FROM reports r WHERE r.id % 5 <> 0""",
    """INSERT INTO report_items (report_id, item_id)
       SELECT id, CASE WHEN id % 5 = 0 THEN id - 1 ELSE id END FROM reports""",
    """INSERT INTO assessments (id, item_id, analyst_id, outcome, notes, created_at)
       SELECT id, id, 1, last_outcome, '', last_assessed_at FROM items
       WHERE last_outcome IS NOT NULL""",
    """INSERT INTO actions (id, item_id, kind, analyst_id, at, detail)
       SELECT id, id, 'notice', 1, last_assessed_at + interval '1 hour', '' FROM items
       WHERE last_outcome IN ('international_illegal', 'national_illegal')""",
]


def timed_s(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    n = report_count()
    with filled_app(FILL, n):
        october = Period("month", date(2026, 10, 1), date(2026, 11, 1), "Africa/Nairobi")
        start_at, end_at = october.bounds()
        targets = {"target_hours": 24, "urgent_target_hours": 2}
        # "Today" for the ended month; and a day inside October, for October as the running month.
        after = Figuring(**targets, retention_days=730, now=datetime(2026, 11, 23, tzinfo=UTC))
        during = Figuring(**targets, retention_days=730, now=datetime(2026, 10, 20, tzinfo=UTC))

        def refresh(figuring: Figuring) -> int:
            stored = sum(figuring.refresh(slug, "Africa/Nairobi") for slug in ("demo", "xa", "xb"))
            stored += figuring.refresh(None, "UTC")
            db.session.commit()
            return stored

        size = db.session.scalar(text("SELECT pg_database_size(current_database())"))
        print(f"database size with {n:,} reports (and their URLs, items, assessments, actions, "
              f"indexes): {size / 2**20:,.0f} MiB")
        seconds, stored = timed_s(lambda: refresh(during))
        print(f"portal figures refresh, first run (as of 20 October): {stored} periods stored "
              f"in {seconds:.1f} s")
        seconds, stored = timed_s(lambda: refresh(after))
        print(f"portal figures refresh, next run (as of 23 November): {stored} periods stored "
              f"in {seconds:.1f} s")
        figures = {
            "bare: COUNT of the month's reports": median_ms(lambda: db.session.execute(text(
                "SELECT count(*) FROM reports WHERE portal = 'demo' AND received_at >= :a "
                "AND received_at < :b"), {"a": start_at, "b": end_at}).scalar()),
            "one month computed (no trend)": median_ms(
                lambda: compute("demo", october, with_trend=False, **targets)),
            "monthly report, all computed (no stored figures)": median_ms(
                lambda: (compute("demo", october, **targets),
                         compute("demo", october.previous(), with_trend=False, **targets))),
            "monthly report, running month (previous + trend stored)": median_ms(
                lambda: during.report("demo", october, threshold=5)),
            "monthly report, ended month (stored)": median_ms(
                lambda: after.report("demo", october, threshold=5)),
            "all portals together, ended month (stored)": median_ms(
                lambda: after.report(None, Period("month", date(2026, 10, 1), date(2026, 11, 1)),
                                     threshold=5)),
        }
        bare = next(iter(figures.values()))
        for name, ms in figures.items():
            print(f"{name:58} {ms:9.1f} ms   x{ms / bare:7.1f} of bare")
        running = during.report("demo", october, threshold=5)
        ended = after.report("demo", october, threshold=5)
        same = {k: v for k, v in vars(running.current).items() if k != "as_of"} == \
            {k: v for k, v in vars(ended.current).items() if k != "as_of"}
        print(f"(October for demo: {ended.current.reports:,} reports, "
              f"{ended.current.assessed:,} items assessed, {ended.current.removals:,} removals; "
              f"stored figures equal the computed ones: {same})")


if __name__ == "__main__":
    main()
