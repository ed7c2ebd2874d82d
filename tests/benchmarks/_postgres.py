"""Shared by the PostgreSQL benchmarks: a filled server with the app, and a median timer."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from portal.app import create_app  # noqa: E402
from portal.db import db  # noqa: E402
from portal.forwarding.keyring import generate  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.postgres import postgres_server  # noqa: E402


def report_count() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=1_000_000)
    return parser.parse_args().reports


def median_ms(fn, repeat: int = 5) -> float:
    """The median of ``repeat`` timed calls, after one call to warm the caches."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


@contextmanager
def filled_app(statements: list[str], n: int) -> Iterator:
    """A PostgreSQL server in a temporary folder, the schema migrated by the app, the
    ``statements`` run with ``:n``, ANALYZE done; yields the app inside its context."""
    with postgres_server() as url, tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        generate(instance / "keys")
        app = create_app(make_settings(instance, env={"PORTAL_DATABASE_URL": url}))
        with app.app_context():
            start = time.perf_counter()
            for statement in statements:
                db.session.execute(text(statement), {"n": n})
            db.session.commit()
            db.session.execute(text("ANALYZE"))
            db.session.commit()
            print(f"filled {n:,} reports in {time.perf_counter() - start:.1f} s")
            try:
                yield app
            finally:
                db.session.remove()
                db.engine.dispose()
