"""No poison pill: one schema for the sealed payload, checked by the edge before sealing and by
the centre after opening; an envelope that fails it, or that the database refuses, goes to the
dead letters with its reason while the rest of the round is imported. On SQLite and on
PostgreSQL (PORTAL_TEST_DATABASE=postgresql)."""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.public import PublicKey
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from portal import payload as schema
from portal.app import create_app
from portal.assessment.models import Item, Report, ReportUrl
from portal.assessment.services import url_digest
from portal.db import db
from portal.forwarding.forwarder import forward_once
from portal.forwarding.importer import import_once
from portal.forwarding.keyring import read_public
from portal.forwarding.models import OutboxEnvelope
from portal.forwarding.sealing import seal
from portal.paths import PACKAGE
from portal.reporting.choices import CONTENT_TYPES, WHERE_FOUND
from portal.reporting.services import NewReport, accept_report
from tests.conftest import ON_POSTGRESQL, make_settings, submit_report

SECRET_TEXT = "CONTENT-THAT-MUST-NOT-BE-LOGGED"


def envelope_id(number: int) -> str:
    """Ids that sort before any uuid4 the edge makes, so that in the local spool these
    envelopes come first in a round and the form's report after them."""
    return f"00000000-0000-4000-8000-{number:012d}"


def good_payload(number: int, **changes) -> dict:
    payload = {
        "v": 1, "id": envelope_id(number), "portal": "demo", "lang": "en",
        "urls": [f"http://site{number}.example.test/page"], "content_type": "images",
        "where_found": "website", "description": "", "urgent": False, "contact_email": "",
        "receipt_hash": f"{number:064x}", "received_at": datetime.now(UTC).isoformat(),
    }
    payload.update(changes)
    return payload


def send_sealed(app, payload: dict) -> None:
    """Sealed for real with the test keyring's public key, put on the app's transport."""
    public = read_public(app.extensions["portal.settings"].keys_path)
    body = seal(payload["id"], payload, public.current, PublicKey(public.keys[public.current]))
    app.extensions["portal.transport"].send_envelope(payload["id"], body)


def run_import(app):
    ext = app.extensions
    return import_once(ext["portal.transport"], ext["portal.private_keys"], ext["portal.contact_key"])


def dead_reasons(settings) -> list[str]:
    return sorted(p.read_text() for p in (settings.spool_path / "dead").glob("*-reason"))


# -- the schema ---------------------------------------------------------------------------------

def test_the_schema_module_stands_on_its_own_and_names_the_forms_lists():
    tree = ast.parse((PACKAGE / "payload.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert not {name for name in imported if name and name.split(".")[0] in {"portal", "flask"}}
    assert tuple(CONTENT_TYPES) == schema.CONTENT_TYPES
    assert tuple(WHERE_FOUND) == schema.WHERE_FOUND


def test_a_payload_as_the_edge_makes_it_has_no_problem():
    portals = {"demo": ("en", "fr")}
    assert schema.problems(good_payload(1), portals=portals) == []
    full = good_payload(1, description="line one\r\n\tline two", contact_email="a@mail.example",
                        urgent=True, urls=[f"https://s{i}.example.test/p?q=1#f" for i in range(20)])
    assert schema.problems(full, portals=portals) == []
    optional_left_out = good_payload(1)
    del optional_left_out["description"], optional_left_out["contact_email"]
    assert schema.problems(optional_left_out, portals=portals) == []


BAD_FIELDS = [
    ("description", "x\x00y"),
    ("description", "x" * 100_000),
    ("description", "bell \x07"),
    ("description", "lone surrogate \ud800"),
    ("description", 7),
    ("urls", ["http://site.example.test/a\x00b"]),
    ("urls", ["javascript:alert(1)"]),
    ("urls", ["http://site.example.test/" + "a" * 2048]),
    ("urls", ["http://site.example.test/a b"]),
    ("urls", ["http:///no-host"]),
    ("urls", ["http://site.example.test:port/"]),
    ("urls", []),
    ("urls", [f"http://s{i}.example.test/" for i in range(21)]),
    ("urls", "http://site.example.test/"),
    ("urls", [42]),
    ("contact_email", 12345),
    ("contact_email", ["a@mail.example"]),
    ("contact_email", "no at sign"),
    ("contact_email", "a@mail.example\n"),
    ("contact_email", "a" * 250 + "@mail.example"),
    ("portal", "nowhere"),
    ("portal", ["demo"]),
    ("lang", "de"),
    ("lang", "<b>"),
    ("content_type", ["images"]),
    ("content_type", "pictures"),
    ("where_found", {"website": 1}),
    ("urgent", "yes"),
    ("urgent", 1),
    ("v", True),
    ("v", 2),
    ("id", "not-a-uuid"),
    ("receipt_hash", "ab" * 31),
    ("receipt_hash", "AB" * 32),
    ("received_at", "2099-01-01T00:00:00+00:00"),
    ("received_at", "2001-01-01T00:00:00+00:00"),
    ("received_at", "2026-01-01T00:00:00"),
    ("received_at", "yesterday"),
    ("received_at", 1700000000),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_each_bad_field_is_named_without_its_value(field, value):
    found = schema.problems(good_payload(1, **{field: value}), portals={"demo": ("en",)})
    assert len(found) == 1 and found[0].startswith(f"payload field {field}: "), found
    with pytest.raises(schema.InvalidPayload, match=f"payload field {field}"):
        schema.check(good_payload(1, **{field: value}), portals={"demo": ("en",)})


def test_missing_unknown_and_not_an_object():
    payload = good_payload(1, extra="x")
    del payload["urls"]
    assert schema.problems(payload) == ["payload field urls missing",
                                        "payload has 1 unknown field(s)"]
    assert schema.problems(["not", "a", "dict"]) == ["payload is not an object"]
    # Without the centre's portals, only their form is checked (the edge's own check).
    assert schema.problems(good_payload(1, portal="other", lang="de")) == []


def test_the_received_time_allows_a_little_clock_skew_only():
    now = datetime.now(UTC)
    for moved, ok in ((timedelta(minutes=5), True), (timedelta(minutes=15), False),
                      (-timedelta(days=400), True), (-timedelta(days=2000), False)):
        payload = good_payload(1, received_at=(now + moved).isoformat())
        assert (schema.problems(payload, now=now) == []) is ok, moved
    far = good_payload(1, received_at="0001-01-01T00:00:00+14:00")
    assert schema.problems(far) == ["payload field received_at: too long ago"]


def test_the_edge_never_seals_what_the_centre_would_refuse(app):
    state = app.extensions["portal.reporting"]
    bad = NewReport(portal="demo", lang="en", urls=["javascript:alert(1)"], content_type="images",
                    where_found="website", description="", urgent=False, contact_email="")
    with app.test_request_context("/demo/en/report"), pytest.raises(schema.InvalidPayload):
        accept_report(bad, state["sealing_key"], state["receipt_key"])
    assert db.session.query(OutboxEnvelope).count() == 0


# -- the centre: a round with poison in it ------------------------------------------------------

POISON = [
    ("description", "x\x00y" + SECRET_TEXT),
    ("urls", [f"http://site.example.test/{SECRET_TEXT}\x00b"]),
    ("contact_email", 12345),
    ("contact_email", [f"{SECRET_TEXT}@mail.example"]),
    ("portal", "nowhere"),
    ("lang", "de"),
    ("urls", [f"javascript:alert('{SECRET_TEXT}')"]),
    ("description", (SECRET_TEXT * 4000)[:100_000]),
    ("received_at", "2099-01-01T00:00:00+00:00"),
    ("content_type", ["images"]),  # unhashable: the old check crashed on it
    ("description", "lone surrogate \ud800"),
]


def test_poison_envelopes_are_dead_lettered_and_the_rest_of_the_round_imported(
        app, client, settings, caplog):
    for number, (field, value) in enumerate(POISON, start=1):
        send_sealed(app, good_payload(number, **{field: value}))
    assert submit_report(client, description="the normal one").status_code == 200
    transport = app.extensions["portal.transport"]
    assert forward_once(transport).sent == 1

    caplog.set_level(logging.INFO)
    result = run_import(app)

    assert (result.imported, result.dead) == (1, len(POISON))
    assert transport.backlog() == 0
    report = db.session.scalars(select(Report)).one()
    assert report.description == "the normal one"
    reasons = dead_reasons(settings)
    assert len(reasons) == len(POISON)
    for field, _value in POISON:
        assert any(f"payload field {field}: " in reason for reason in reasons), field
    assert not any(SECRET_TEXT in reason for reason in reasons)
    logged = [r.getMessage() for r in caplog.records if r.name == "portal.forwarding.importer"]
    assert sum("dead-lettered: payload field" in line for line in logged) == len(POISON)
    assert not any(SECRET_TEXT in line for line in logged)
    # The poison itself is kept, sealed, beside its reason.
    kept = [p for p in (settings.spool_path / "dead").iterdir() if not p.name.endswith("-reason")]
    assert len(kept) == len(POISON) and all(json.loads(p.read_bytes())["sealed"] for p in kept)


def test_an_envelope_that_breaks_the_opening_code_is_dead_lettered_too(app, client, settings):
    """An outer layer whose key id is a list makes the keyring lookup raise a TypeError, which
    the opening code does not expect: caught for that envelope alone."""
    transport = app.extensions["portal.transport"]
    outer = {"v": 1, "id": envelope_id(1), "kid": ["k"], "sealed": "AAAA"}
    transport.send_envelope(envelope_id(1), json.dumps(outer).encode())
    submit_report(client)
    forward_once(transport)
    result = run_import(app)
    assert (result.imported, result.dead) == (1, 1)
    assert dead_reasons(settings) == ["cannot open: TypeError"]


REFUSED = "REFUSED-BY-THE-DATABASE"


@contextlib.contextmanager
def refusing_trigger(errcode: str):
    """A real trigger in the central database that refuses a report with the REFUSED
    description: PostgreSQL raises the given SQLSTATE, SQLite a constraint failure."""
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.description = '{REFUSED}' THEN RAISE EXCEPTION 'refused by a test "
                f"trigger' USING ERRCODE = '{errcode}'; END IF; RETURN NEW; END $$")
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_marked BEFORE INSERT ON reports FOR EACH ROW "
                "EXECUTE FUNCTION refuse_marked()")
        else:
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse_marked BEFORE INSERT ON reports WHEN NEW.description = "
                f"'{REFUSED}' BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END")
    try:
        yield
    finally:
        with db.engine.begin() as connection:
            connection.exec_driver_sql(
                "DROP TRIGGER refuse_marked" + (" ON reports" if ON_POSTGRESQL else ""))
            if ON_POSTGRESQL:
                connection.exec_driver_sql("DROP FUNCTION refuse_marked()")


# P0001: a plain RAISE, which psycopg reports as an InternalError, an error kind nothing
# expects; 23514: a check violation, an IntegrityError, which is tried a second time first.
@pytest.mark.parametrize("errcode", ["P0001", "23514"] if ON_POSTGRESQL else ["constraint"])
def test_an_envelope_the_database_refuses_does_not_stop_the_round(app, client, settings, errcode):
    send_sealed(app, good_payload(1, description="stored before"))
    send_sealed(app, good_payload(2, description=REFUSED,
                                            urls=["http://refused.example.test/"]))
    submit_report(client, description="stored after")
    forward_once(app.extensions["portal.transport"])

    with refusing_trigger(errcode):
        result = run_import(app)

    assert (result.imported, result.dead) == (2, 1)
    stored = sorted(r.description for r in db.session.scalars(select(Report)))
    assert stored == ["stored after", "stored before"]
    # The refused envelope's rows were rolled back with its savepoint, and only they.
    assert db.session.scalar(select(Item).where(Item.url == "http://refused.example.test/")) is None
    assert db.session.query(ReportUrl).count() == 2
    [reason] = dead_reasons(settings)
    assert reason.startswith("not stored: ")
    assert REFUSED not in reason
    if ON_POSTGRESQL:
        assert f"({errcode})" in reason


def _database_url() -> str:
    return make_url(db.engine.url).set(drivername="postgresql").render_as_string(
        hide_password=False)


@contextlib.contextmanager
def database_locked_by_another_writer():
    """Another connection holds the write lock (SQLite) or the reports table (PostgreSQL),
    and this session waits for it only briefly."""
    if ON_POSTGRESQL:
        import psycopg

        other = psycopg.connect(_database_url())
        other.execute("LOCK TABLE reports IN ACCESS EXCLUSIVE MODE")
        db.session.execute(text("SET lock_timeout = '200ms'"))
        try:
            yield
        finally:
            other.close()
        return
    other = sqlite3.connect(db.engine.url.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    db.session.connection().exec_driver_sql("PRAGMA busy_timeout = 200")
    try:
        yield
    finally:
        other.close()
        db.session.connection().exec_driver_sql("PRAGMA busy_timeout = 5000")


def test_a_database_that_cannot_write_now_dead_letters_nothing(app, client, settings):
    """A lock held too long is the database's condition, not the envelope's: the round stops,
    nothing is acknowledged or dead-lettered, and the next round imports everything."""
    send_sealed(app, good_payload(1))
    submit_report(client)
    transport = app.extensions["portal.transport"]
    forward_once(transport)
    with database_locked_by_another_writer(), pytest.raises(Exception) as raised:
        run_import(app)
    assert "lock" in type(raised.value.orig).__name__.lower() or "locked" in str(raised.value)
    assert transport.backlog() == 2 and dead_reasons(settings) == []
    assert db.session.query(Report).count() == 0
    assert run_import(app).imported == 2


def test_a_redelivered_envelope_in_the_same_batch_is_one_report(app, client, settings):
    """The same envelope twice in one batch (at-least-once delivery): stored once, and the
    second counts as a duplicate, with per-envelope savepoints as before."""
    payload = good_payload(1)
    send_sealed(app, payload)
    body = (settings.spool_path / "envelopes" / payload["id"].replace("-", "")).read_bytes()
    copy = uuid.UUID(int=2).hex  # another file name for the same envelope
    Path(settings.spool_path / "envelopes" / copy).write_bytes(body)
    result = run_import(app)
    assert (result.imported, result.duplicates, result.dead) == (1, 1, 0)
    assert db.session.query(Report).count() == 1


def test_a_batch_is_one_transaction_with_a_savepoint_per_envelope(app, client):
    """Every envelope's savepoint is released inside the batch's one transaction (on SQLite
    too, where the first SAVEPOINT would otherwise begin a transaction of its own and its
    RELEASE commit it, one commit per envelope)."""
    for number in (1, 2, 3):
        send_sealed(app, good_payload(number))
    released: list[bool] = []

    def after(conn, cursor, statement, *args) -> None:
        if statement.startswith("RELEASE SAVEPOINT"):
            dbapi = conn.connection.dbapi_connection
            if hasattr(dbapi, "in_transaction"):  # sqlite3
                released.append(dbapi.in_transaction)
            else:  # psycopg
                released.append(dbapi.info.transaction_status.name != "IDLE")

    event.listen(db.engine, "after_cursor_execute", after)
    try:
        assert run_import(app).imported == 3
    finally:
        event.remove(db.engine, "after_cursor_execute", after)
    assert released == [True, True, True]


# -- two importers at once (PostgreSQL, where they really run side by side) --------------------

@pytest.fixture
def pg_central(instance, postgres_url):
    app = create_app(make_settings(instance, env={"PORTAL_DATABASE_URL": postgres_url}))
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            with db.engine.begin() as connection:  # tables and the migration record alike
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            db.engine.dispose()


def _commit_each_once_waited_for(engine, others: list[tuple[Session, str]],
                                 seen: list[str]) -> None:
    """For each (transaction, table) in turn: once this importer's INSERT into that table
    waits for the transaction's uncommitted row, commit the transaction (in any case at the
    end, so that the importer never waits for ever)."""
    try:
        with engine.connect() as watcher:
            for other, table in others:
                for _ in range(1000):  # at most about ten seconds; then the test fails below
                    waiting = watcher.scalar(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database() AND query LIKE :insert"),
                        {"insert": f"INSERT INTO {table} %"})
                    watcher.rollback()
                    if waiting:
                        seen.append(table)
                        break
                    time.sleep(0.01)
                other.commit()
    finally:
        for other, _table in others:
            other.commit()
            other.close()


@pytest.mark.postgres
def test_two_importers_at_once_store_each_envelope_and_each_address_once(pg_central):
    """Another importer is storing an item for the same address, and then the very same
    envelope, each committed only once this importer's INSERT waits for it: the first
    envelope's unique address conflict is tried again and stored, the second envelope is
    recognised as stored by the other importer. Nothing goes to the dead letters."""
    app = pg_central
    shared = "http://shared.example.test/"
    first = good_payload(1, urls=[shared])
    second = good_payload(2)
    send_sealed(app, first)
    send_sealed(app, second)
    now = datetime.now(UTC)
    item_importer, report_importer = Session(db.engine), Session(db.engine)
    item_importer.add(Item(url=shared, url_hash=url_digest(shared), first_seen_at=now,
                           report_count=1))
    item_importer.flush()
    report_importer.add(Report(envelope_id=second["id"], portal="demo", lang="en", urgent=False,
                               received_at=now, content_type="images", where_found="website",
                               receipt_hash=second["receipt_hash"]))
    report_importer.flush()
    seen: list[str] = []
    committer = threading.Thread(target=_commit_each_once_waited_for,
                                 args=(db.engine, [(item_importer, "items"),
                                                   (report_importer, "reports")], seen))
    committer.start()
    try:
        result = run_import(app)
    finally:
        committer.join()
    assert seen == ["items", "reports"]  # both conflicts really happened
    assert (result.imported, result.duplicates, result.dead) == (1, 1, 0)
    assert app.extensions["portal.transport"].backlog() == 0
    assert db.session.query(Report).count() == 2
    item = db.session.scalars(select(Item).where(Item.url == shared)).one()
    assert item.report_count == 2
