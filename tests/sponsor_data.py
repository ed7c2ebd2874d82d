"""The small sponsor data set whose every figure was computed by hand (tests/test_aggregates.py
lists them); also used by the retention tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

from portal.assessment.models import Action, Assessment, Item, Report, ReportUrl
from portal.db import db
from portal.sponsors.periods import Period

NAIROBI = "Africa/Nairobi"  # UTC+3 all year


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def october() -> Period:
    return Period("month", date(2026, 10, 1), date(2026, 11, 1), NAIROBI)


def fill() -> dict[str, Item]:
    """Items A to E and reports 1 to 6 in the app's database; returns the items by key."""
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
