"""Engine and sessions: the embedded server by default, any PostgreSQL with pgvector by `DATABASE_URL`.

The schema is brought up to date on first connect in each process (Alembic,
under an advisory lock so two processes starting together do not race).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from deerid.core.config import Settings
from deerid.db.embedded import start_embedded
from deerid.errors import Unavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_KEY = 0x6465657269640001  # "deerid" + 1: any constant unique to this app


class DatabaseError(Unavailable):
    pass


def normalise_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return normalise_url(settings.database_url)
    return start_embedded(settings.pgdata_dir)


def describe_url(url: str) -> str:
    """The URL without its password, for messages and `deerid config`."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def connect(settings: Settings) -> sa.Engine:
    """A pooled engine on the settings' database, its schema brought up to date first.

    The runtime context (`deerid.app.Deerid`) holds the one engine of a process."""
    url = database_url(settings)
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    try:
        upgrade_schema(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise DatabaseError(f"cannot reach the database at {describe_url(url)}: {exc.orig}") from exc
    return engine


def read_database_id(engine: sa.Engine) -> str:
    """The database's own id (a UUID made by the first migration), as hex.

    Tasks carry it and each database has its own queue named from it, so two
    databases sharing one broker never run each other's tasks."""
    with engine.connect() as conn:
        value = conn.execute(sa.text("SELECT database_id FROM database_identity")).scalar_one()
    return str(value.hex)


def alembic_config(engine: sa.Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade_schema(engine: sa.Engine, revision: str = "head") -> None:
    from alembic import command

    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        try:
            cfg = alembic_config(engine)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            conn.commit()


def create_database(server_url: str, name: str, *, template: str | None = None) -> str:
    """Create database `name` on the server of `server_url` (optionally cloned from
    `template`); return its URL. For tests and benchmarks that want a clean database."""
    base = sa.engine.make_url(server_url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    clause = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{clause}'))
    finally:
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)
