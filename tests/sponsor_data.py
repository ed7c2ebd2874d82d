"""The small sponsor data set whose every figure was computed by hand (tests/test_aggregates.py
lists them); also used by the retention tests."""

from __future__ import annotations

import csv
import hashlib
import io
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


def add_reports(received: str, count: int, *, lang: str = "en", content: str = "images",
                outcome: str | None = None, country: str | None = None,
                portal: str = "demo") -> None:
    """``count`` reports received at ``received`` (UTC), each naming one new item with this
    outcome (None: not assessed yet) and hosting country: hand-made data sets for the
    suppression tests, where each report is one figure in each breakdown."""
    start = db.session.query(Report).count()
    for n in range(start + 1, start + count + 1):
        url = f"http://n{n}.example.test/"
        item = Item(url=url, url_hash=hashlib.sha256(url.encode()).hexdigest(),
                    first_seen_at=at(received), report_count=1, last_outcome=outcome,
                    trace_country=country)
        db.session.add(Report(envelope_id=f"00000000-0000-4000-9000-{n:012d}", portal=portal,
                              lang=lang, urgent=False, received_at=at(received),
                              content_type=content, where_found="website",
                              receipt_hash=f"{n:064d}", urls=[ReportUrl(position=0, url=url)],
                              items=[item]))
    db.session.commit()


def csv_breakdowns(rows: list[list[str]]) -> list[tuple[tuple, list[tuple], bool]]:
    """The breakdowns a reader of the sponsor CSV can add up, as (total, cells, rest): each
    figure is (metric, column); ``rest`` when the total also holds a part that is not a row
    (the reports not marked urgent). A total ("illegal", column) is no row: the two illegal
    outcomes added up."""
    header, body = rows[0], rows[1:]
    metrics = [row[0] for row in body]
    found = []
    for col in (1, 2):
        def having(prefix: str, col: int = col) -> list[tuple]:
            return [(m, col) for m in metrics if m.startswith(prefix)]

        found += [(("reports", col), having("language:"), False),
                  (("reports", col), having("content_type:"), False),
                  (("reports", col), [("urgent_reports", col)], True),
                  (("urls", col), [("duplicates_of_known_items", col)], True),
                  (("items", col), [("items_assessed", col)], True),
                  (("items_assessed", col), having("outcome:"), False),
                  (("illegal", col), [("outcome:international_illegal", col),
                                      ("outcome:national_illegal", col)], False)]
        months = _months(header[col])
        if all(f"trend:{m}:reports" in metrics for m in months):
            for name in ("reports", "urls", "removals"):
                found.append(((name, col), [(f"trend:{m}:{name}", 1) for m in months], False))
            if len(months) == 1:
                found.append((("illegal", col), [(f"trend:{months[0]}:confirmed_illegal", 1)], False))
    found.append((("illegal", 1), [(m, 1) for m in metrics if m.startswith("hosting_country:")], False))
    return found


def _months(key: str) -> list[str]:
    if len(key) == 7 and key[4] == "-" and key[5] != "Q":
        return [key]
    if len(key) == 7 and key[5] == "Q":
        first = (int(key[6]) - 1) * 3 + 1
        return [f"{key[:4]}-{month:02d}" for month in range(first, first + 3)]
    if len(key) == 4:
        return [f"{key}-{month:02d}" for month in range(1, 13)]
    return [key + "-never"]  # two dates: no month of the trend is exactly the period


def recoverable(csv_text: str, threshold: int) -> list[str]:
    """What a reader of the CSV can work out by adding and subtracting (the finding of issue
    14: ``reports,7``, ``language:fr,5``, ``language:en,<5``) that is small: a shown count from
    1 to threshold-1, a hidden count worked out to such a value, or a breakdown whose total
    minus its shown cells is such a value while a cell is hidden. Empty when safe."""
    rows = list(csv.reader(io.StringIO(csv_text)))
    known: dict[tuple, int] = {}
    hidden = set()
    for metric, *values in rows[1:]:
        for col, text in enumerate(values, 1):
            if text == "suppressed":
                hidden.add((metric, col))
            elif text.isdigit():
                known[(metric, col)] = int(text)
    problems = [f"{key} shown: {value}" for key, value in known.items() if 0 < value < threshold]
    breakdowns = csv_breakdowns(rows)
    grown = True
    while grown:  # work out whatever one subtraction or one sum gives, until nothing more does
        grown = False
        for total, cells, rest in breakdowns:
            missing = [cell for cell in cells if cell not in known]
            if total in known and not rest and len(missing) == 1:
                known[missing[0]] = known[total] - sum(known[c] for c in cells if c in known)
                grown = True
            elif total not in known and not missing and not rest:
                known[total] = sum(known[c] for c in cells)
                grown = True
    problems += [f"{key} worked out: {known[key]}" for key in hidden
                 if key in known and 0 < known[key] < threshold]
    for total, cells, rest in breakdowns:
        if total in known and (rest or any(cell not in known for cell in cells)):
            left = known[total] - sum(known[c] for c in cells if c in known)
            if 0 < left < threshold:
                problems.append(f"{total} minus its shown cells {cells}: {left}")
    return problems
