"""`deerid backup`, `deerid restore` and `deerid db ...`: the database and data dir as a whole."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from deerid.cli.root import console, context

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


def backup(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="Backup file to write (one .tar file).")],
) -> None:
    """Back up the database, models, calibrations and the API token into one file."""
    from deerid.db.backup import backup as run_backup

    result = run_backup(context(ctx).settings, out)
    m = result.manifest
    console.print(
        f"backed up {m['counts'].get('images', 0)} photos, {m['counts'].get('detections', 0)} detections, "
        f"{m['counts'].get('deer', 0)} deer and {len(m['files'])} files to {escape(str(result.path))}"
    )
    for skipped in result.skipped:
        console.print(f"skipped {escape(skipped)}")


def restore(
    ctx: typer.Context,
    backup_file: Annotated[Path, typer.Argument(help="Backup file made by `deerid backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a database that holds data.")] = False,
) -> None:
    """Restore a backup into the database and data dir (refuses a non-empty database without --force)."""
    from deerid.db.backup import restore as run_restore

    app = context(ctx)
    try:
        result = run_restore(app.settings, backup_file, force=force)
    finally:
        # The restore replaced the database under any pooled connection: none may be reused.
        app.release_connections()
    c = result.counts
    console.print(
        f"restored {c.get('images', 0)} photos, {c.get('detections', 0)} detections, {c.get('deer', 0)} deer "
        f"and {len(result.files)} files (schema {result.schema_revision}, "
        f"backed up {result.manifest.get('created_at')})"
    )


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the schema (also done automatically on first use)."""
    from deerid.db.session import describe_url

    engine = context(ctx).engine
    console.print(f"schema up to date at {describe_url(engine.url.render_as_string(False))}")


@db_app.command("reindex")
def db_reindex(ctx: typer.Context) -> None:
    """Rebuild the HNSW vector indexes (after a large import or a re-embed)."""
    import sqlalchemy as sa

    with context(ctx).engine.begin() as conn:
        # At the default maintenance_work_mem a 100k-row HNSW build takes ten times longer.
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '1GB'"))
        conn.execute(sa.text("REINDEX INDEX ix_detections_embedding_hnsw"))
        conn.execute(sa.text("REINDEX INDEX ix_deer_feature_vector_hnsw"))
    console.print("vector indexes rebuilt")
