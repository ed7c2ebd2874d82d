"""The migrations produce exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from portal.app import create_app
from portal.db import db
from tests.conftest import make_settings, portal_cli

# On SQLite autogenerate cannot reflect expression-based indexes; they are checked by name
# and definition below instead.
pytestmark = pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified")


EXPRESSION_INDEXES = {"ix_reports_open_queue", "ix_reports_open_portal_queue"}


def schema_differences() -> list:
    with db.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"

        def include(obj, name, kind, reflected, compare_to) -> bool:
            # SQLite cannot reflect the queue's expression indexes: compared by definition below.
            return not (sqlite and kind == "index" and name in EXPRESSION_INDEXES)

        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include})
        return compare_metadata(context, db.metadata)


def queue_index_definitions() -> dict[str, str]:
    with db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            rows = connection.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_reports_open%'"))
        else:
            rows = connection.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'ix_reports_open%'"))
        return dict(rows.all())


def check(app) -> None:
    with app.app_context():
        assert schema_differences() == []
        indexes = queue_index_definitions()
        assert set(indexes) == {"ix_reports_open_queue", "ix_reports_open_portal_queue"}
        for definition in indexes.values():
            assert "urgent DESC" in definition and "in_assessment" in definition
        tables = set(inspect(db.engine).get_table_names())
        assert {"reports", "items", "audit_log", "users", "alembic_version"} <= tables


def test_migrations_match_the_models_on_sqlite(instance):
    sqlite = f"sqlite:///{instance / 'portal.db'}"  # SQLite here even when the suite runs on PostgreSQL
    check(create_app(make_settings(instance, env={"PORTAL_DATABASE_URL": sqlite})))


def test_migrations_match_the_models_on_postgresql(instance, postgres_url):
    app = create_app(make_settings(instance, env={"PORTAL_DATABASE_URL": postgres_url}))
    try:
        check(app)
    finally:
        with app.app_context():
            db.session.remove()
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            db.engine.dispose()


def test_db_commands_without_auto_migration(instance):
    def portal(*args):
        return portal_cli(instance, "db", *args, env={"PORTAL_AUTO_MIGRATE": "false"})

    assert portal("current").stdout.strip() == "empty"
    upgraded = portal("upgrade", "0001")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == "database at revision 0001"
    assert portal("current").stdout.strip() == "0001"

    # 0002 gives reports already finished a closing time (now), and leaves open ones without.
    engine = create_engine(make_settings(instance).database_url)
    with engine.begin() as connection:
        for n, status in ((1, "closed"), (2, "in_assessment")):
            connection.execute(text(
                "INSERT INTO reports (id, envelope_id, portal, lang, urgent, received_at, "
                "imported_at, content_type, where_found, description, receipt_hash, status) "
                "VALUES (:n, :envelope, 'demo', 'en', false, :at, :at, 'images', 'website', '', "
                ":hash, :status)"),
                {"n": n, "envelope": f"envelope-{n}", "at": datetime(2026, 1, 1), "hash": f"{n:064d}",
                 "status": status})
    upgraded = portal("upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == "database at revision 0003"
    with engine.connect() as connection:
        closed = dict(connection.execute(text("SELECT id, closed_at FROM reports")).all())
    engine.dispose()
    assert closed[1] is not None and closed[2] is None
