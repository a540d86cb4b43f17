"""Alembic environment: always run with the connection deerid hands over
(see `deerid.db.session.upgrade_schema`), never from an ini file's URL."""

from __future__ import annotations

from alembic import context

from deerid.db.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `deerid db upgrade`, which supplies the connection")

context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
