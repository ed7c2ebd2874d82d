"""The audit log: append-only, hash-chained, and every kind of tampering it can and cannot show."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, event, func, insert, select, text, update

from portal.app import create_app
from portal.assessment import audit
from portal.assessment.audit import (
    GENESIS_HASH,
    AuditEntry,
    compute_hash,
    entries_for,
    export_csv,
    head,
    recent,
    record,
    verify_chain,
)
from portal.db import db
from portal.forwarding.keyring import generate
from tests.conftest import ON_POSTGRESQL, make_settings

T0 = datetime(2025, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def audit_app(tmp_path_factory):
    """One app for the module (building one takes ~0.15 s, a test here takes less)."""
    instance = tmp_path_factory.mktemp("audit") / "instance"
    generate(instance / "keys")
    app = create_app(make_settings(instance))
    app.config["TESTING"] = True
    with app.app_context():
        # create_all creates only what is missing: audit_log, if the app was built without it.
        db.create_all()
        yield app


@pytest.fixture
def log(audit_app):
    """The app with an empty audit log (emptied with raw SQL, past the append-only guard)."""
    db.session.execute(text("DELETE FROM audit_log"))
    db.session.commit()
    yield audit_app
    db.session.rollback()
    db.session.remove()


def add(n: int, *, start: int = 0, at: datetime | None = None) -> list[AuditEntry]:
    entries = [
        record("report.view", actor_id=7, actor="analyst@example.test", target_type="report",
               target_id=100 + i, details={"n": i}, at=at or T0 + timedelta(seconds=i))
        for i in range(start, start + n)
    ]
    db.session.commit()
    return entries


def sql(statement: str, **params) -> None:
    """Raw SQL past the ORM guard, as someone with database access could run it."""
    db.session.execute(text(statement), params)
    db.session.commit()


def insert_raw(**row) -> None:
    sql("INSERT INTO audit_log (id, at, actor_id, actor, action, target_type, target_id, details, "
        "prev_hash, hash) VALUES (:id, :at, :actor_id, :actor, :action, :target_type, :target_id, "
        ":details, :prev_hash, :hash)", **{**row, "at": row["at"].replace(tzinfo=None)})


# --- writing and the chain ---------------------------------------------------------------------


def test_a_chain_of_entries_verifies(log):
    assert head() is None and verify_chain() == []
    entries = add(5)
    assert [e.id for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert head() == (5, entries[-1].hash)
    assert verify_chain() == []
    assert verify_chain(expected_head=head()) == []


def test_the_hash_is_the_documented_serialization(log):
    entry = record("item.assess", actor_id=None, actor="system", target_type="item", target_id=9,
                   details={"outcome": "illegal", "a": 1}, at=T0)
    stored = db.session.get(AuditEntry, entry.id)
    assert stored.details == '{"a":1,"outcome":"illegal"}' and stored.target_id == "9"
    fields = [GENESIS_HASH, 1, "2025-03-01T09:00:00.123456+00:00", None, "system", "item.assess",
              "item", "9", '{"a":1,"outcome":"illegal"}']
    serialized = json.dumps(fields, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    assert stored.hash == hashlib.sha256(serialized.encode()).hexdigest()


def test_timestamps_survive_the_database_to_the_microsecond(log):
    add(2, at=datetime(2025, 3, 1, 10, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))))
    db.session.expunge_all()
    first = db.session.get(AuditEntry, 1)
    assert first.at == datetime(2025, 3, 1, 8, 0, 0, 1, tzinfo=UTC)
    assert verify_chain() == []


def test_record_joins_the_callers_transaction_and_does_not_commit(log):
    record("report.view", actor_id=1, actor="a@example.test", target_type="report", target_id=1)
    db.session.rollback()
    assert head() is None
    entry = record("report.view", actor_id=1, actor="a@example.test", target_type="report", target_id=1)
    assert entry.id == 1 and entry.at.tzinfo is not None


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"details": ["not", "a", "dict"]}, TypeError),
    ({"details": {1: "int key"}}, TypeError),
    ({"details": {"x": float("nan")}}, ValueError),
    ({"details": {"description": "x" * 5000}}, ValueError),
    ({"at": datetime(2025, 1, 1)}, ValueError),  # naive on purpose
    ({"actor": ""}, ValueError),
    ({"target_id": "x" * 65}, ValueError),
    ({"actor_id": "7"}, TypeError),
])
def test_record_refuses_bad_input(log, kwargs, error):
    args = {"actor_id": 1, "actor": "a@example.test", "target_type": "report", "target_id": 1, **kwargs}
    with pytest.raises(error):
        record("report.view", **args)
    assert head() is None


# --- tampering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "value"), [
    ("details", '{"n":99}'),
    ("actor", "someone-else@example.test"),
    ("action", "report.close"),
    ("target_id", "999"),
    ("actor_id", None),
    ("at", datetime(2025, 3, 1, 9, 0, 3)),  # stored naive, as UTCDateTime does
])
def test_a_changed_entry_is_detected_at_that_entry(log, column, value):
    add(5)
    sql(f"UPDATE audit_log SET {column} = :value WHERE id = 3", value=value)  # noqa: S608 - fixed names
    assert verify_chain() == ["entry 3: hash does not match its content (changed?)"]


def test_a_changed_entry_with_a_recomputed_hash_breaks_the_next_link(log):
    add(5)
    entry = db.session.get(AuditEntry, 3)
    new_hash = compute_hash(prev_hash=entry.prev_hash, id=3, at=entry.at, actor_id=entry.actor_id,
                            actor=entry.actor, action=entry.action, target_type=entry.target_type,
                            target_id=entry.target_id, details='{"n":99}')
    sql("UPDATE audit_log SET details = :d, hash = :h WHERE id = 3", d='{"n":99}', h=new_hash)
    assert verify_chain() == ["entry 4: previous hash does not match entry 3"]


def test_a_deleted_entry_in_the_middle_is_a_gap(log):
    add(6)
    sql("DELETE FROM audit_log WHERE id IN (3, 4)")
    assert verify_chain() == ["entry 5: missing entries 3..4 (deleted?)"]


def test_deleted_first_entries_are_a_gap(log):
    add(4)
    sql("DELETE FROM audit_log WHERE id = 1")
    assert verify_chain() == ["entry 2: missing entries 1..1 (deleted?)"]


def test_a_deleted_last_entry_is_caught_only_by_the_recorded_head(log):
    add(5)
    recorded = head()
    sql("DELETE FROM audit_log WHERE id = 5")
    # The rest of the chain is consistent in itself: the chain alone cannot show this.
    assert verify_chain() == []
    problems = verify_chain(expected_head=recorded)
    assert len(problems) == 1 and problems[0].startswith("log ends before the recorded head")
    assert "last is entry 4" in problems[0] and "entry 5" in problems[0]


def test_an_emptied_log_is_caught_by_the_recorded_head(log):
    add(2)
    recorded = head()
    sql("DELETE FROM audit_log")
    assert verify_chain() == []
    assert verify_chain(expected_head=recorded)[0].startswith("log ends before the recorded head")


def test_a_rewritten_tail_is_caught_by_the_recorded_head(log):
    add(5)
    recorded = head()
    sql("DELETE FROM audit_log WHERE id = 5")
    record("report.view", actor_id=7, actor="analyst@example.test", target_type="report",
           target_id=1, details={"forged": True})
    db.session.commit()
    assert verify_chain() == []
    assert verify_chain(expected_head=recorded) == [
        "entry 5: hash differs from the recorded head (rewritten?)"
    ]
    # Entries after the recorded head are fine: the log has only grown.
    add(2, start=10)
    assert verify_chain(expected_head=head()) == []


def test_a_forged_entry_with_a_valid_hash_but_wrong_previous_hash_is_detected(log):
    add(5)
    entry_1 = db.session.get(AuditEntry, 1)
    forged = {"id": 3, "at": T0 + timedelta(seconds=2), "actor_id": 8, "actor": "other@example.test",
              "action": "report.view", "target_type": "report", "target_id": "102", "details": "{}",
              "prev_hash": entry_1.hash}
    forged["hash"] = compute_hash(**forged)
    sql("DELETE FROM audit_log WHERE id = 3")
    insert_raw(**forged)
    assert verify_chain() == [
        "entry 3: previous hash does not match entry 2",
        "entry 4: previous hash does not match entry 3",
    ]


def test_a_forged_first_entry_is_detected(log):
    add(2)
    forged = {"id": 1, "at": T0, "actor_id": None, "actor": "system", "action": "user.disable",
              "target_type": "user", "target_id": "3", "details": "{}", "prev_hash": "f" * 64}
    forged["hash"] = compute_hash(**forged)
    sql("DELETE FROM audit_log WHERE id = 1")
    insert_raw(**forged)
    assert verify_chain() == [
        "entry 1: previous hash is not the start of the log",
        "entry 2: previous hash does not match entry 1",
    ]


# --- append-only in the ORM --------------------------------------------------------------------


def test_the_orm_refuses_to_update_an_entry(log):
    add(2)
    entry = db.session.get(AuditEntry, 1)
    entry.actor = "someone-else@example.test"
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.flush()
    db.session.rollback()
    assert verify_chain() == [] and db.session.get(AuditEntry, 1).actor == "analyst@example.test"


def test_the_orm_refuses_to_delete_an_entry(log):
    add(2)
    db.session.delete(db.session.get(AuditEntry, 2))
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.flush()
    db.session.rollback()
    assert head()[0] == 2


@pytest.mark.parametrize("statement", [
    lambda: update(AuditEntry).values(actor="x"),
    lambda: delete(AuditEntry).where(AuditEntry.id == 1),
    lambda: AuditEntry.__table__.delete(),
])
def test_the_session_refuses_bulk_updates_and_deletes(log, statement):
    add(2)
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.execute(statement())
    db.session.rollback()
    assert verify_chain() == [] and head()[0] == 2


# --- reading -----------------------------------------------------------------------------------


def test_csv_export_writes_every_entry_and_escapes_formula_cells(log):
    add(2)
    record("=HYPERLINK(\"http://evil.example.test\")", actor_id=None, actor="+SUM(A1)",
           target_type="@item", target_id="-5", details={"k": 1}, at=T0 + timedelta(seconds=9))
    db.session.commit()
    out = io.StringIO()
    assert export_csv(out) == 3
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["id", "at", "actor_id", "actor", "action", "target_type", "target_id",
                       "details", "prev_hash", "hash"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    assert rows[1][1] == "2025-03-01T09:00:00.123456+00:00" and rows[1][3] == "analyst@example.test"
    third = rows[3]
    assert third[3] == "'+SUM(A1)" and third[4] == "'=HYPERLINK(\"http://evil.example.test\")"
    assert third[5] == "'@item" and third[6] == "'-5" and third[7] == '{"k":1}'
    assert third[9] == head()[1]


def test_csv_export_filters_by_time(log):
    add(5)
    out = io.StringIO()
    count = export_csv(out, since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3), batch=1)
    assert count == 2
    assert [r[0] for r in list(csv.reader(io.StringIO(out.getvalue())))[1:]] == ["2", "3"]


def test_entries_for_an_item_newest_first(log):
    add(3)
    record("item.assess", actor_id=7, actor="analyst@example.test", target_type="report",
           target_id="101", details={"outcome": "illegal"})
    db.session.commit()
    found = entries_for("report", 101)
    assert [(e.id, e.action) for e in found] == [(4, "item.assess"), (2, "report.view")]
    assert [e.id for e in entries_for("report", "101", limit=1)] == [4]
    assert entries_for("user", 101) == []


def test_recent_pages_by_id_descending(log):
    add(7)
    first = recent(limit=3)
    assert [e.id for e in first] == [7, 6, 5]
    second = recent(limit=3, before_id=first[-1].id)
    assert [e.id for e in second] == [4, 3, 2]
    assert [e.id for e in recent(limit=3, before_id=second[-1].id)] == [1]
    assert recent(before_id=1) == []


def test_verify_chain_streams_in_batches(log):
    total = 3000
    rows, prev = [], GENESIS_HASH
    for i in range(1, total + 1):
        row = {"id": i, "at": T0 + timedelta(milliseconds=i), "actor_id": i % 5,
               "actor": f"a{i % 5}@example.test", "action": "report.view", "target_type": "report",
               "target_id": str(i), "details": f'{{"i":{i}}}', "prev_hash": prev}
        prev = row["hash"] = compute_hash(**row)
        rows.append(row)
    # Built directly, as record() would build them, to keep the test fast.
    db.session.execute(insert(AuditEntry.__table__), rows)
    db.session.commit()
    selects: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def count_selects(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT") and "FROM audit_log" in statement:
            selects.append(statement)

    try:
        assert verify_chain(batch=100) == []
        queries = len(selects)
        sql("UPDATE audit_log SET actor = 'x' WHERE id = 1234")
        sql("DELETE FROM audit_log WHERE id IN (1700, 1701)")
        assert verify_chain(batch=100) == [
            "entry 1234: hash does not match its content (changed?)",
            "entry 1702: missing entries 1700..1701 (deleted?)",
        ]
    finally:
        event.remove(db.engine, "before_cursor_execute", count_selects)
    # 30 full batches and one empty one: never everything at once.
    assert queries == total // 100 + 1
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == total - 2


# --- concurrency -------------------------------------------------------------------------------


def append_concurrently(app, threads: int, each: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(n: int) -> None:
        try:
            with app.app_context():
                start.wait()
                for i in range(each):
                    # A read first, as a request handler would do before recording.
                    db.session.execute(select(func.count()).select_from(AuditEntry))
                    record("report.view", actor_id=n, actor=f"w{n}@example.test",
                           target_type="report", target_id=i)
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


@pytest.mark.skipif(ON_POSTGRESQL, reason="about SQLite's single writer; on PostgreSQL "
                    "test_concurrent_writers_on_postgresql_keep_one_chain checks the same")
def test_concurrent_writers_on_sqlite_keep_one_chain(log):
    assert db.engine.dialect.name == "sqlite"
    assert append_concurrently(log, threads=4, each=15) == []
    assert head()[0] == 60
    assert verify_chain() == []




@pytest.mark.postgres
def test_concurrent_writers_on_postgresql_keep_one_chain(instance, postgres_url):
    app = create_app(make_settings(instance, env={"PORTAL_DATABASE_URL": postgres_url}))
    with app.app_context():
        try:
            db.create_all()
            assert db.engine.dialect.name == "postgresql"
            assert append_concurrently(app, threads=4, each=15) == []
            assert head()[0] == 60
            assert verify_chain(batch=7) == []
            # Tampering is seen the same way on PostgreSQL.
            sql("UPDATE audit_log SET details = :d WHERE id = 30", d='{"x":1}')
            assert verify_chain() == ["entry 30: hash does not match its content (changed?)"]
        finally:
            db.session.remove()
            with db.engine.begin() as connection:  # tables and the migration record alike
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            db.engine.dispose()


def test_the_advisory_lock_key_is_a_signed_64_bit_integer():
    assert 0 < audit.ADVISORY_LOCK_KEY < 2**63
