"""Alembic environment: runs inside the app, against the app's own engine and metadata."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from portal.db import db
from portal.migrate import ADVISORY_LOCK


def run(connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several workers may start at once: one migrates, the others wait for its commit,
        # then find nothing left to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    context.configure(connection=connection, target_metadata=db.metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is None:
    with db.engine.begin() as connection:
        run(connection)
else:
    run(given)
