"""`deerid deployments ...`: a camera at a place between two dates, with coordinates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deerid.cli.root import console, context, printable

deployments_app = typer.Typer(
    help="Deployments: a camera at a place between two dates, with coordinates.", no_args_is_help=True
)


@deployments_app.command("import")
def deployments_import(
    ctx: typer.Context,
    csv_file: Annotated[
        Path,
        typer.Argument(
            help="CSV: camera, start, end, latitude, longitude[, location, coordinate_uncertainty, notes]."
        ),
    ],
) -> None:
    """Add deployments from a CSV: every row, or none (each problem is listed with its line)."""
    from deerid.store.deployments import import_rows, read_csv

    rows = read_csv(csv_file)
    with context(ctx).transaction() as session:
        result = import_rows(session, rows)
    console.print(f"imported {len(result.added)} deployments from {escape(str(csv_file))}")


@deployments_app.command("list")
def deployments_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Every deployment: camera, dates, coordinates and the photos it holds."""
    from deerid.store.deployments import list_deployments

    with context(ctx).transaction() as session:
        views = list_deployments(session)
        rows = [
            {
                "id": v.deployment.id,
                "camera": v.camera,
                "start": v.deployment.start_at.isoformat(sep=" "),
                "end": v.deployment.end_at.isoformat(sep=" ") if v.deployment.end_at else None,
                "latitude": v.deployment.latitude,
                "longitude": v.deployment.longitude,
                "location": v.deployment.location,
                "photos": v.photos,
            }
            for v in views
        ]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("id", "camera", "start", "end", "latitude", "longitude", "location", "photos")
    for r in rows:
        table.add_row(
            *(escape(printable(r[k])) if r[k] is not None else "—" for k in ("id", "camera", "start", "end")),
            str(r["latitude"]),
            str(r["longitude"]),
            escape(printable(r["location"] or "")),
            str(r["photos"]),
        )
    console.print(table)
