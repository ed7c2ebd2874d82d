"""Faults, for real: a full disk under the spool and under the database, and a database that
is gone, while reports come in. A report is never acknowledged unless it was stored; the
person gets a localized 503 page with what they typed still there, and nothing half-written
remains anywhere. Small disks are real tmpfs mounts (which need root: skipped elsewhere, a
failure in CI)."""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from flask_babel import force_locale, gettext
from markupsafe import escape
from sqlalchemy import select

from portal.app import create_app
from portal.db import db
from portal.forwarding.forwarder import forward_once
from portal.forwarding.importer import import_once
from portal.forwarding.models import OutboxEnvelope
from portal.forwarding.transport import LocalSpool
from tests.conftest import ON_POSTGRESQL, csrf_token, make_settings, need, receipt_of, submit_report
from tests.postgres import find_bin, postgres_server

NOT_STORED = ("Your report could not be received just now and has not been stored. "
              "Please try again in a few minutes.")
UNAVAILABLE = "The service is not available right now. Please try again in a few minutes."
TYPED = "WHAT-THE-PERSON-TYPED"
RECEIPT_DIGITS = re.compile(r"\d{4} \d{4} \d{4} \d{4}")


@contextlib.contextmanager
def small_disk(size: str) -> Iterator[Path]:
    """A real filesystem of ``size`` (tmpfs), readable by the PostgreSQL server's user."""
    target = Path(tempfile.mkdtemp(prefix="portal-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                              str(target)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        target.rmdir()
        need(False, f"a small tmpfs cannot be mounted here: {mounted.stderr.strip()}")
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
        shutil.rmtree(target, ignore_errors=True)


def free_bytes(disk: Path) -> int:
    stats = os.statvfs(disk)
    return stats.f_bavail * stats.f_frsize


def fill(disk: Path, leave: int = 0) -> Path:
    """Write a file until the disk is full, then give ``leave`` bytes back."""
    filler = disk / "filler"
    with filler.open("ab", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    if leave:
        os.truncate(filler, filler.stat().st_size - leave)
    assert free_bytes(disk) == leave
    return filler


def translated(app, lang: str, msgid: str) -> str:
    with app.test_request_context(), force_locale(lang):
        return str(escape(gettext(msgid)))


def assert_refused_with_503(app, answer, lang: str, message: str) -> str:
    assert answer.status_code == 503
    html = answer.get_data(as_text=True)
    assert f'<html lang="{lang}"' in html
    assert translated(app, lang, message) in html
    assert 'id="receipt"' not in html and not RECEIPT_DIGITS.search(html)
    return html


def outbox_count() -> int:
    return db.session.scalar(select(db.func.count()).select_from(OutboxEnvelope))


# -- the spool ---------------------------------------------------------------------------------

def test_a_full_disk_under_the_spool_keeps_the_envelope_and_leaves_nothing_half_written(
        app, client):
    urls = "\n".join(f"http://site{i}.example.test/{'p' * 80}" for i in range(20))
    assert submit_report(client, urls=urls, description="d" * 2000).status_code == 200
    entry = db.session.scalars(select(OutboxEnvelope)).one()
    body = entry.body
    assert len(body) > 4096  # more than the one page given back below
    with small_disk("256k") as disk:
        spool = LocalSpool(disk / "spool")

        def nothing_in_the_spool() -> None:
            assert [p.name for p in disk.joinpath("spool").rglob("*") if p.is_file()] == []

        filler = fill(disk)
        result = forward_once(spool)
        assert (result.sent, result.failed) == (0, 1)
        nothing_in_the_spool()
        assert outbox_count() == 1 and entry.attempts == 1 and "spool write failed" in entry.last_error

        # One page free: the write starts, and cannot finish.
        os.truncate(filler, filler.stat().st_size - 4096)
        assert free_bytes(disk) == 4096
        result = forward_once(spool, now=entry.next_attempt_at)
        assert (result.sent, result.failed) == (0, 1)
        nothing_in_the_spool()
        assert outbox_count() == 1 and entry.attempts == 2

        filler.unlink()
        result = forward_once(spool, now=entry.next_attempt_at)
        assert (result.sent, result.failed) == (1, 0)
        assert outbox_count() == 0
        assert [p.read_bytes() for p in spool.envelopes.iterdir()] == [body]
        assert list(spool.tmp.iterdir()) == []
        ext = app.extensions
        assert import_once(spool, ext["portal.private_keys"], ext["portal.contact_key"]).imported == 1


def test_a_dead_letter_that_cannot_be_written_leaves_the_envelope_for_the_next_round(app, client):
    with small_disk("256k") as disk:
        spool = LocalSpool(disk / "spool")
        spool.send_envelope("00000000-0000-4000-8000-000000000001", b"not an envelope")
        submit_report(client)
        forward_once(spool)
        ext = app.extensions
        keys = ext["portal.private_keys"], ext["portal.contact_key"]

        filler = fill(disk)
        result = import_once(spool, *keys)
        assert (result.imported, result.dead) == (1, 0)
        assert spool.backlog() == 1 and list(spool.dead.iterdir()) == []

        filler.unlink()
        result = import_once(spool, *keys)
        assert (result.imported, result.dead) == (0, 1) and spool.backlog() == 0
        assert len(list(spool.dead.iterdir())) == 2  # the envelope and its reason


# -- the database at intake --------------------------------------------------------------------

@contextlib.contextmanager
def a_database_on_a_small_disk(request, instance: Path):
    """An app whose database must take new space on a small disk for the next report: on
    SQLite the database file is there, on PostgreSQL the outbox is moved to a tablespace
    there (the server's other files, its log of changes included, stay where they are)."""
    with small_disk("4m") as disk:
        if ON_POSTGRESQL:
            app = request.getfixturevalue("app")
            with _outbox_tablespace(disk):
                yield app, disk
            return
        settings = make_settings(instance, env={"PORTAL_DATABASE_URL": f"sqlite:///{disk}/portal.db"})
        app = create_app(settings)
        app.config["TESTING"] = True
        with app.app_context():
            try:
                assert receipt_of(submit_report(app.test_client()))  # works until the disk is full
                # The write-ahead log emptied, so the next write must take new space.
                with db.engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                yield app, disk
            finally:
                db.session.remove()
                db.engine.dispose()


@contextlib.contextmanager
def _outbox_tablespace(disk: Path):
    location = disk / "tablespace"
    location.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(location, user.pw_uid, user.pw_gid)
    name = f"portal_small_disk_{os.getpid()}"
    autocommit = {"isolation_level": "AUTOCOMMIT"}
    with db.engine.connect().execution_options(**autocommit) as connection:
        connection.exec_driver_sql(f"CREATE TABLESPACE {name} LOCATION '{location}'")
        connection.exec_driver_sql(f"ALTER TABLE outbox SET TABLESPACE {name}")
    try:
        yield
    finally:
        db.session.remove()
        with db.engine.connect().execution_options(**autocommit) as connection:
            connection.exec_driver_sql("ALTER TABLE outbox SET TABLESPACE pg_default")
            connection.exec_driver_sql(f"DROP TABLESPACE {name}")
        db.engine.dispose()  # no server process keeps a file open on the disk


def test_a_full_disk_under_the_database_refuses_the_report_with_a_503(request, instance, caplog):
    with a_database_on_a_small_disk(request, instance) as (app, disk):
        client = app.test_client()
        before = outbox_count()
        db.session.rollback()
        filler = fill(disk)

        answer = submit_report(client, lang="fr", description=TYPED)
        html = assert_refused_with_503(app, answer, "fr", NOT_STORED)
        assert f"{TYPED}</textarea>" in html  # nothing typed is lost
        assert 'name="csrf_token"' in html  # the form, ready to be sent again
        assert outbox_count() == before
        db.session.rollback()
        full = "DiskFull (53100)" if ON_POSTGRESQL else "OperationalError (SQLITE_FULL)"
        assert f"database unavailable for reporting.report_submit: {full}" in caplog.text

        filler.unlink()
        assert receipt_of(submit_report(client, lang="fr", description=TYPED))
        assert outbox_count() == before + 1
        db.session.rollback()


# -- the database gone -------------------------------------------------------------------------

def _pg_ctl(data: Path, *args: str) -> None:
    command = [str(find_bin() / "pg_ctl"), "-D", str(data), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def a_database_that_goes_away(instance: Path, tmp_path: Path):
    """An app, and two functions: one takes its database away, one brings it back. On SQLite
    the database's folder moves away, on PostgreSQL its server stops."""
    if ON_POSTGRESQL:
        need(find_bin() is not None, "PostgreSQL server binaries not installed")
        with postgres_server() as url:
            app = create_app(make_settings(instance, env={"PORTAL_DATABASE_URL": url}))
            with app.app_context():
                data = Path(db.session.scalar(db.text("SHOW data_directory")))
                db.session.remove()
                running = [True]

                def away() -> None:
                    _pg_ctl(data, "-m", "fast", "-w", "stop")
                    running[0] = False

                def back() -> None:
                    # Started with the options it had (pg_ctl keeps them in postmaster.opts).
                    _pg_ctl(data, "-l", str(data.parent / "log"), "-w", "restart")
                    running[0] = True

                try:
                    yield app, away, back
                finally:
                    if not running[0]:
                        back()
                    db.session.remove()
                    db.engine.dispose()
        return
    folder, moved = tmp_path / "database", tmp_path / "moved"
    folder.mkdir()
    app = create_app(make_settings(instance, env={"PORTAL_DATABASE_URL": f"sqlite:///{folder}/portal.db"}))
    with app.app_context():
        def away() -> None:
            folder.rename(moved)
            db.engine.dispose()  # no pooled connection to the moved file

        def back() -> None:
            moved.rename(folder)

        try:
            yield app, away, back
        finally:
            db.session.remove()
            db.engine.dispose()


def test_an_unreachable_database_at_intake_is_a_503_without_receipt(instance, tmp_path, caplog):
    with a_database_that_goes_away(instance, tmp_path) as (app, away, back):
        app.config["TESTING"] = True
        client = app.test_client()
        assert receipt_of(submit_report(client, lang="sw"))
        away()

        answer = submit_report(client, lang="sw", description=TYPED, urls="site.example.test/kept")
        html = assert_refused_with_503(app, answer, "sw", NOT_STORED)
        assert f"{TYPED}</textarea>" in html and "site.example.test/kept</textarea>" in html
        status = client.post("/demo/sw/status", data={"receipt": "1234 5678 9012 3456",
                                                      "csrf_token": csrf_token(client, "/demo/sw/status")})
        assert_refused_with_503(app, status, "sw", UNAVAILABLE)
        gone = "OperationalError" if ON_POSTGRESQL else "OperationalError (SQLITE_CANTOPEN)"
        assert f"database unavailable for reporting.report_submit: {gone}" in caplog.text
        assert TYPED not in caplog.text  # the cause is logged by its kind only

        back()
        assert receipt_of(submit_report(client, lang="sw", description=TYPED))
        assert outbox_count() == 2
