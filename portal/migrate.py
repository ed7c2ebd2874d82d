"""Running the Alembic migrations from the app (start-up, ``portal db`` commands, tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from flask import Flask

from portal.db import db
from portal.paths import PACKAGE


def alembic_config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PACKAGE / "migrations"))
    config.attributes["connection"] = connection
    return config


def upgrade(app: Flask, revision: str = "head") -> None:
    with app.app_context(), db.engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def current_revision(app: Flask) -> str | None:
    with app.app_context(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
