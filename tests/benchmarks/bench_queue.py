"""The analyst queue's first page with a million reports on PostgreSQL.

    python tests/benchmarks/bench_queue.py [--reports 1000000]

Starts a PostgreSQL server in a temporary folder (as the tests do), fills it with reports
(a tenth of them closed, one in a thousand urgent, three portals), then times: the queue
query for the first page, a page deep in the queue through its cursor, the first page
filtered by portal, and the whole GET /staff/ (sign-in check, query, rendering) through the
app; against a bare baseline in the same run: the first 50 rows by primary key.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from portal.assessment.queue import Filters, queue_page  # noqa: E402
from portal.db import db  # noqa: E402
from tests.benchmarks._postgres import filled_app, median_ms, report_count  # noqa: E402
from tests.staff import make_user, sign_in  # noqa: E402

FILL = """
INSERT INTO reports (id, envelope_id, portal, lang, urgent, received_at, imported_at,
                     content_type, where_found, description, receipt_hash, status)
SELECT i, md5(i::text)::uuid::text, (ARRAY['demo','xa','xb'])[1 + i % 3],
       (ARRAY['en','fr','ar','sw'])[1 + i % 4], i % 1000 = 0,
       now() - ((:n - i) || ' seconds')::interval, now(), 'images', 'website', '',
       md5(i::text) || md5((i + 1)::text),
       CASE WHEN i % 10 = 0 THEN 'closed' WHEN i % 7 = 0 THEN 'in_assessment' ELSE 'received' END
FROM generate_series(1, :n) AS i
"""


def main() -> None:
    n = report_count()
    with filled_app([FILL], n) as app:
        staff = make_user("analyst", "bench@staff.example")
        client = app.test_client()
        sign_in(client, staff)

        _rows, cursor = queue_page(Filters(), 0)
        for _ in range(200):  # walk 10,000 rows in
            _rows, cursor = queue_page(Filters(), 0, after=cursor)
        deep = cursor

        figures = {
            "bare: 50 rows by primary key": median_ms(lambda: db.session.execute(
                text("SELECT * FROM reports ORDER BY id LIMIT 51")).all()),
            "queue query, first page": median_ms(lambda: queue_page(Filters(), 0)),
            "queue query, page 201 by cursor": median_ms(
                lambda: queue_page(Filters(), 0, after=deep)),
            "queue query, one portal": median_ms(
                lambda: queue_page(Filters(portal="xa"), 0)),
            "GET /staff/ (whole page)": median_ms(lambda: client.get("/staff/")),
        }
        bare = figures["bare: 50 rows by primary key"]
        for name, ms in figures.items():
            print(f"{name:34} {ms:8.2f} ms   x{ms / bare:6.1f} of bare")
        plan = db.session.execute(text(
            "EXPLAIN SELECT * FROM reports WHERE status IN ('received','in_assessment',"
            "'action_taken') ORDER BY urgent DESC, received_at, id LIMIT 51")).scalars().all()
        print("plan:", " / ".join(line.strip() for line in plan[:3]))


if __name__ == "__main__":
    main()
