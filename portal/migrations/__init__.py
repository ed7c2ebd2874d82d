"""Alembic migrations: the schema, from the first table on (``portal db upgrade``)."""
