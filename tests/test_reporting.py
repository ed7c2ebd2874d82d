"""The public pages and the report journey, through Flask's test client on SQLite."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from portal.db import db
from portal.forwarding.models import OutboxEnvelope, ReceiptStatus
from tests.conftest import DEMO_LANGS, csrf_token, receipt_of, submit_report

LANGS = list(DEMO_LANGS)


def test_root_redirects_to_best_language(client):
    response = client.get("/demo/", headers={"Accept-Language": "pt-BR,pt;q=0.9,en;q=0.5"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/demo/pt/")
    response = client.get("/demo/", headers={"Accept-Language": "de, ja"})
    assert response.headers["Location"].endswith("/demo/en/")
    assert client.get("/demo/", headers={"Accept-Language": "ar"}).headers["Location"].endswith(
        "/demo/ar/"
    )


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", ["", "report", "status", "privacy"])
def test_every_page_in_every_language(client, lang, page):
    response = client.get(f"/demo/{lang}/{page}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    direction = "rtl" if lang in {"ar", "ur", "fa"} else "ltr"
    assert f'<html lang="{lang}" dir="{direction}">' in html
    # every other language is offered, each link labelled in its own language
    for other in LANGS:
        assert f'hreflang="{other}"' in html


def test_landing_says_what_not_to_do_and_shows_emergency_numbers(client):
    html = client.get("/demo/en/").get_data(as_text=True)
    assert "Never download, save or take a screenshot" in html
    assert "Never share the material" in html
    assert "Never investigate" in html
    assert 'href="tel:555-0100"' in html


def test_arabic_page_is_translated(client):
    html = client.get("/demo/ar/report").get_data(as_text=True)
    assert "Report a web address" not in html
    assert "بوابة الإبلاغ في ديمولاند" in html


def test_unknown_portal_and_language_are_404(client):
    response = client.get("/nowhere/en/")
    assert response.status_code == 404
    assert 'lang="en"' in response.get_data(as_text=True)
    response = client.get("/demo/de/report")
    assert response.status_code == 404
    assert 'lang="en"' in response.get_data(as_text=True)  # the portal's default language
    response = client.get("/demo/fr/nothing-here")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert 'lang="fr"' in html and "We could not find this page." not in html


def test_accepted_report_is_stored_sealed_before_the_receipt(client, app):
    response = submit_report(
        client, urls="site.example.test/one\nhttp://site.example.test/two",
        description="MARKER-PLAINTEXT-1", contact_email="reporter@mail.example",
    )
    assert response.status_code == 200
    receipt = receipt_of(response)
    assert len(receipt) == 16 and receipt.isdigit()
    assert re.search(r'id="receipt"[^>]*>\d{4} \d{4} \d{4} \d{4}<', response.get_data(as_text=True))
    assert response.headers["Cache-Control"] == "no-store"
    envelopes = db.session.scalars(select(OutboxEnvelope)).all()
    assert len(envelopes) == 1
    body = envelopes[0].body
    for secret in (b"MARKER-PLAINTEXT-1", b"reporter@mail.example", b"site.example.test",
                   receipt.encode()):
        assert secret not in body
    statuses = db.session.scalars(select(ReceiptStatus)).all()
    assert [s.status for s in statuses] == ["received"]
    assert receipt not in statuses[0].receipt_hash


def test_urgent_report_shows_contacts_first(client):
    response = submit_report(client, child_in_danger="y")
    html = response.get_data(as_text=True)
    assert html.index('id="urgent-title"') < html.index('id="receipt"')
    assert "tel:555-0101" in html and "tel:555-0116" in html
    plain = submit_report(client).get_data(as_text=True)
    assert 'id="urgent-title"' not in plain


def test_errors_keep_everything_typed_with_a_message_per_field(client):
    response = submit_report(
        client, urls="javascript:alert(1)\nok.example.test", content_type="not-a-choice",
        description="x" * 2001, contact_email="not an email", child_in_danger="y",
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "javascript:alert(1)\nok.example.test</textarea>" in html
    assert "x" * 2001 + "</textarea>" in html
    assert 'value="not an email"' in html
    assert 'id="child_in_danger" name="child_in_danger" type="checkbox" value="y"' in html
    assert "checked" in html
    for field in ("urls", "content_type", "description", "contact_email"):
        assert f'id="{field}-error"' in html, field
        assert f'aria-describedby="{field}-hint {field}-error"' in html or (
            f'aria-describedby="{field}-error"' in html
        )
    assert "<li>Line 1 (javascript:alert(1)): only web addresses starting with http://" in html
    assert "[&#39;" not in html and "['" not in html
    assert db.session.query(OutboxEnvelope).count() == 0


def test_error_messages_are_localized(client):
    html = submit_report(client, lang="fr", urls="http://127.0.0.1/").get_data(as_text=True)
    assert "private or local network" not in html
    assert 'id="urls-error"' in html


def test_one_message_per_bad_line(client):
    html = submit_report(client, urls="ftp://a.example.test\nok.example.test\nhttp://10.0.0.1/").get_data(
        as_text=True
    )
    errors = html.split('id="urls-error"', 1)[1].split("</ul>", 1)[0]
    assert errors.count("<li>") == 2
    assert "Line 1 (ftp://a.example.test)" in errors and "Line 3 (http://10.0.0.1/)" in errors


def test_empty_and_too_many_urls(client):
    html = submit_report(client, urls="  \n ").get_data(as_text=True)
    assert "Enter at least one web address." in html
    many = "\n".join(f"http://site{i}.example.test/" for i in range(21))
    response = submit_report(client, urls=many)
    assert response.status_code == 400
    assert "You entered 21 addresses" in response.get_data(as_text=True)
    twenty = "\n".join(f"http://site{i}.example.test/" for i in range(20))
    assert submit_report(client, urls=twenty).status_code == 200


def test_missing_csrf_token_keeps_input(client):
    response = client.post("/demo/en/report", data={"urls": "kept.example.test"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Your session has expired" in html
    assert "kept.example.test</textarea>" in html
    assert db.session.query(OutboxEnvelope).count() == 0
    response = client.post("/demo/en/status", data={"receipt": "1234"})
    assert response.status_code == 400
    assert "Your session has expired" in response.get_data(as_text=True)


def test_request_size_is_bounded(client):
    token = csrf_token(client, "/demo/en/report")
    response = client.post(
        "/demo/en/report", data={"csrf_token": token, "urls": "a.example.test " * 10000}
    )
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)


def test_no_file_upload_anywhere(client):
    for page in ("", "report", "status", "privacy"):
        html = client.get(f"/demo/en/{page}").get_data(as_text=True)
        assert 'type="file"' not in html and "multipart" not in html


def test_status_lookup_right_and_wrong_code(client):
    receipt = receipt_of(submit_report(client))
    token = csrf_token(client, "/demo/en/status")
    grouped = f"{receipt[:4]} {receipt[4:8]}-{receipt[8:12]} {receipt[12:]}"
    html = client.post("/demo/en/status", data={"csrf_token": token, "receipt": grouped}).get_data(
        as_text=True
    )
    assert 'id="report-status" class="result" data-status="received"' in html
    wrong = client.post(
        "/demo/en/status", data={"csrf_token": token, "receipt": "0000 0000 0000 0000"}
    )
    assert wrong.status_code == 200
    assert 'id="report-status"' not in wrong.get_data(as_text=True)
    assert 'id="status-unknown"' in wrong.get_data(as_text=True)


def test_right_and_wrong_receipts_cost_the_same_queries(client):
    receipt = receipt_of(submit_report(client))
    token = csrf_token(client, "/demo/en/status")
    engine = db.engine
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(re.sub(r"\s+", " ", statement))

    event.listen(engine, "before_cursor_execute", record)
    try:
        for code in (receipt, "1111222233334444", "12"):
            seen.clear()
            client.post("/demo/en/status", data={"csrf_token": token, "receipt": code})
            if code == receipt:
                right = list(seen)
            else:
                assert seen == right, code
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert any("receipt_status" in s for s in right)


def test_status_page_in_arabic_names_status_in_arabic(client):
    receipt = receipt_of(submit_report(client, lang="ar"))
    token = csrf_token(client, "/demo/ar/status")
    html = client.post("/demo/ar/status", data={"csrf_token": token, "receipt": receipt}).get_data(
        as_text=True
    )
    assert 'data-status="received"' in html
    assert "Your report has been received" not in html


SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@pytest.mark.parametrize(
    "path",
    ["/demo/", "/demo/en/", "/demo/ar/report", "/demo/en/status", "/demo/en/privacy", "/nowhere/",
     "/_static/demo/portal.css", "/_static/demo/logo.svg", "/healthz"],
)
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    response.close()
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_pages_use_no_inline_script_or_style_and_no_other_host(client):
    for page in ("", "report", "status", "privacy"):
        html = client.get(f"/demo/en/{page}").get_data(as_text=True)
        assert "<script" not in html
        assert " style=" not in html and "<style" not in html
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
            # Only our own paths, plus the partners' and helplines' own sites as plain links.
            assert ref.startswith(("/", "#", "tel:", "mailto:", "https://")), ref
        for ref in re.findall(r'src="([^"]+)"', html) + re.findall(
            r'<link[^>]+href="([^"]+)"', html
        ):
            assert ref.startswith("/"), ref


def test_healthz_and_metrics_report_the_outbox(client, app):
    """The public /healthz says ok or not ok; the figures are in /healthz/details and /metrics
    (which the test client, from 127.0.0.1, may read: see tests/test_operations.py)."""
    health = client.get("/healthz")
    assert (health.status_code, health.get_json()) == (200, {"status": "ok"})
    details = client.get("/healthz/details")
    assert details.status_code == 200
    assert details.get_json() == {"status": "ok", "outbox_envelopes": 0,
                                  "outbox_oldest_age_seconds": 0.0, "outbox_stuck": False,
                                  "transport_backlog": 0, "import_lag_seconds": 0.0,
                                  "queue_oldest_age_seconds": 0.0, "queue_open_reports": 0}
    submit_report(client, description="METRICS-MARKER")
    stale = db.session.scalars(select(OutboxEnvelope)).one()
    stale.created_at = stale.created_at - timedelta(hours=2)
    db.session.commit()
    stuck = client.get("/healthz")
    assert (stuck.status_code, stuck.get_json()) == (503, {"status": "not ok"})
    stuck = client.get("/healthz/details")
    assert stuck.status_code == 503
    assert stuck.get_json()["status"] == "outbox stuck"
    assert stuck.get_json()["outbox_oldest_age_seconds"] >= 7200
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "portal_outbox_envelopes 1.0" in metrics
    assert re.search(r"portal_outbox_oldest_age_seconds 7[0-9]{3}\.", metrics)
    assert "METRICS-MARKER" not in metrics


def test_stylesheet_is_cacheable_and_carries_the_portal_colours(client):
    response = client.get("/_static/demo/portal.css")
    assert response.status_code == 200
    assert b"--brand:#1d4e89" in response.data
    again = client.get("/_static/demo/portal.css", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert client.get("/_static/demo/../../pyproject.toml").status_code == 404
    assert client.get("/_static/nowhere/portal.css").status_code == 404


def test_readyz_checks_schema_keys_and_database(client, app, settings):
    assert client.get("/readyz").get_json() == {"status": "ready"}
    (settings.keys_path / "public.json").unlink()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert any("sealing key" in p for p in answer.get_json()["problems"])
    db.session.execute(db.text("UPDATE alembic_version SET version_num = 'old'"))
    db.session.commit()
    assert any("migration" in p for p in client.get("/readyz").get_json()["problems"])


def test_metrics_count_requests_by_route_and_reports_by_portal(client):
    submit_report(client, urls="http://metric-marker.example.test/secret?q=MARKER")
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'portal_reports_accepted_total\{portal="demo"\} [1-9]', text)
    assert 'route="/<portal>/<lang>/report"' in text and 'method="POST"' in text
    assert "metric-marker" not in text and "MARKER" not in text and "127.0.0.1" not in text


def test_access_line_reaches_other_handlers_as_a_record(client, capfd):
    """With a handler of an operator's own on portal.access, the access line goes through
    logging as a record with the same fields, and is still written as JSON to stderr."""
    import json
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("portal.access")
    logger.addHandler(handler)
    try:
        capfd.readouterr()
        client.get("/demo/en/privacy")
        client.open("/demo/en/privacy", method="BREW")
    finally:
        logger.removeHandler(handler)
    fields = [record.fields for record in records]
    assert {k: fields[0][k] for k in ("method", "route", "status")} \
        == {"method": "GET", "route": "/<portal>/<lang>/privacy", "status": 200}
    assert fields[1]["method"] == "other" and fields[1]["status"] == 405
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    # A method the route does not allow matches no rule.
    assert [entry["route"] for entry in lines if entry["logger"] == "portal.access"] == [
        "/<portal>/<lang>/privacy", "-"]
    assert set(lines[0]) == {"ts", "level", "logger", "msg", "method", "route", "status", "ms"}


def test_logs_are_json_without_addresses_or_urls(client, capfd):
    import json

    capfd.readouterr()
    client.get("/demo/en/report?secret=QUERYMARK", environ_base={"REMOTE_ADDR": "192.0.2.99"},
               headers={"User-Agent": "UA-MARKER"})
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry["logger"] == "portal.access"]
    assert access and access[-1]["route"] == "/<portal>/<lang>/report" and access[-1]["status"] == 200
    joined = " ".join(json.dumps(entry) for entry in lines)
    for secret in ("QUERYMARK", "UA-MARKER", "192.0.2.99"):
        assert secret not in joined


def test_sqlite_intake_takes_its_turn_after_another_process(app, client):
    """On SQLite, intake writes wait for a writer holding the lock file beside the database,
    as another gunicorn worker would, and go on the moment it lets go."""
    import fcntl
    import os
    import threading

    if db.engine.dialect.name != "sqlite":
        pytest.skip("the writer lock file is SQLite's")
    other = os.open(f"{db.engine.url.database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    answers = []
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        token = csrf_token(client, "/demo/en/report")
        writer = threading.Thread(target=lambda: answers.append(submit_report(client, csrf_token=token)))
        writer.start()
        writer.join(0.5)
        assert writer.is_alive() and not answers
        with app.app_context():
            assert db.session.scalar(select(db.func.count()).select_from(OutboxEnvelope)) == 0
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    writer.join(10)
    assert [answer.status_code for answer in answers] == [200]
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(OutboxEnvelope)) == 1


def test_intake_stores_what_the_orm_would_store(app):
    """Intake's INSERTs in the driver's own SQL (one joined statement on PostgreSQL) store the
    very values SQLAlchemy's statements do, as the database holds them (dates as text on
    SQLite), on either database."""
    from portal.db import utcnow
    from portal.reporting import services

    now = utcnow()
    rows = {"fast": ("f" * 64, "00000000-0000-4000-8000-00000000000f"),
            "core": ("c" * 64, "00000000-0000-4000-8000-00000000000c")}
    with app.app_context():
        for way, (digest, envelope_id) in rows.items():
            envelope = {"id": envelope_id, "body": b"\x00sealed\xff", "created_at": now,
                        "attempts": 0, "next_attempt_at": now}
            receipt = {"receipt_hash": digest, "status": "received", "updated_at": now}
            if way == "fast":
                services._store(envelope, receipt)
                continue
            with db.engine.begin() as connection:
                connection.execute(OutboxEnvelope.__table__.insert(), envelope)
                connection.execute(ReceiptStatus.__table__.insert(), receipt)
    with app.app_context():
        stored = {}
        for way, (digest, envelope_id) in rows.items():
            outbox = db.session.execute(db.text(
                "SELECT body, created_at, attempts, next_attempt_at, last_error FROM outbox "
                "WHERE id = :id"), {"id": envelope_id}).one()
            status = db.session.execute(db.text(
                "SELECT status, updated_at FROM receipt_status WHERE receipt_hash = :h"),
                {"h": digest}).one()
            stored[way] = (tuple(outbox), tuple(status))
        assert stored["fast"] == stored["core"]
        assert bytes(stored["fast"][0][0]) == b"\x00sealed\xff"
        assert db.session.get(OutboxEnvelope, rows["fast"][1]).created_at == now
        assert services._INSERT_ENVELOPE._for(db.engine.dialect) is not None  # not the Core path


def test_intake_stores_both_rows_or_neither(app, client, monkeypatch):
    """When the receipt's status cannot be written (here its hash is already taken), the
    envelope is not kept either, on either database, and the reporter sees no receipt."""
    from portal.reporting import services

    app.config["PROPAGATE_EXCEPTIONS"] = False
    monkeypatch.setattr(services, "new_receipt", lambda: "1234567812345678")
    assert submit_report(client).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(OutboxEnvelope)) == 1
    answer = submit_report(client)
    assert answer.status_code == 503  # refused, the form shown again (tests/test_faults.py)
    assert "1234" not in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(OutboxEnvelope)) == 1
        assert db.session.scalar(select(db.func.count()).select_from(ReceiptStatus)) == 1


def test_postgresql_intake_is_one_statement_in_autocommit(app):
    """On PostgreSQL a report is one statement sent outside any transaction block (one round
    trip), and the pooled connections go back to transactions afterwards."""
    from portal.db import utcnow
    from portal.reporting import services

    if db.engine.dialect.name != "postgresql":
        pytest.skip("the joined statement is PostgreSQL's")
    now, seen = utcnow(), []
    with app.app_context():
        engine = db.engine

        def record(connection, cursor, statement, parameters, context, executemany):
            seen.append((statement, connection.connection.dbapi_connection.autocommit))

        event.listen(engine, "before_cursor_execute", record)
        try:
            services._store({"id": "00000000-0000-4000-8000-0000000000aa", "body": b"x",
                             "created_at": now, "attempts": 0, "next_attempt_at": now},
                            {"receipt_hash": "a" * 64, "status": "received", "updated_at": now})
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert len(seen) == 1
        statement, autocommit = seen[0]
        assert statement.startswith("WITH envelope AS (INSERT INTO outbox ")
        assert "INSERT INTO receipt_status " in statement and autocommit is True
        pooled = [engine.connect() for _ in range(engine.pool.checkedin())]
        try:
            assert pooled and not any(c.connection.dbapi_connection.autocommit for c in pooled)
        finally:
            for connection in pooled:
                connection.close()


def test_sqlite_writer_lock_is_each_processs_own(tmp_path, monkeypatch):
    """A forked worker does not share its parent's lock: it closes the inherited descriptor and
    opens its own, which must wait while the parent holds its turn."""
    import fcntl
    import os

    from portal.reporting.services import _SqliteWriters

    writers, database = _SqliteWriters(), str(tmp_path / "portal.db")
    inherited = writers._descriptor(database)
    parents_own = os.dup(inherited)  # what the parent keeps after a fork
    try:
        fcntl.flock(inherited, fcntl.LOCK_EX)  # the parent is in its turn
        monkeypatch.setattr(os, "getpid", lambda: -1)  # now "in the child"
        childs = writers._descriptor(database)
        assert writers._descriptor(database) == childs  # opened once per process
        with pytest.raises(BlockingIOError):
            fcntl.flock(childs, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(parents_own, fcntl.LOCK_UN)
        fcntl.flock(childs, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the parent is done
    finally:
        os.close(parents_own)
