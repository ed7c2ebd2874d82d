"""Running the Alembic migrations from the app (start-up, ``portal db`` commands, tests)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy.engine import Engine

from portal.db import db
from portal.paths import PACKAGE

# The key of the PostgreSQL advisory lock migrations take (portal/migrations/env.py): any
# constant, the same in every process of a deployment.
ADVISORY_LOCK = 7_242_611


def alembic_config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PACKAGE / "migrations"))
    config.attributes["connection"] = connection
    return config


def upgrade(app: Flask, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Any number of processes may call this at once on a
    fresh database (gunicorn workers starting together): one migrates, the others wait for
    it and then find nothing left to do. On PostgreSQL the migration environment takes an
    advisory lock inside the migration's transaction (portal/migrations/env.py); SQLite's
    DDL is not serialised that way (the sqlite3 module opens no transaction before
    ``CREATE TABLE``), so there a lock file beside the database does it."""
    with app.app_context(), sqlite_migration_lock(db.engine), db.engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


@contextlib.contextmanager
def sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """An exclusive ``flock`` on ``<database file>-migrate.lock`` while the block runs, for a
    SQLite file; nothing for any other database, a SQLite database in memory (which no
    other process can see) or one named by a ``file:`` URI (as intake's writer lock in
    portal/reporting/services.py). The lock goes with the process, so a worker killed while
    migrating leaves nothing held; the empty file stays, harmless."""
    url = engine.url
    path = url.database or ""
    if url.get_backend_name() != "sqlite" or path in {"", ":memory:"} or path.startswith("file:"):
        yield
        return
    fd = os.open(f"{path}-migrate.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the process migrating has finished
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def current_revision(app: Flask) -> str | None:
    with app.app_context(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
