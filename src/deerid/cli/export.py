"""`deerid export ...`: sightings as a Camtrap DP package or a CSV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from deerid.cli.root import console, context, err, printable

if TYPE_CHECKING:
    from deerid.core.config import Settings
    from deerid.export.common import ExportOptions

export_app = typer.Typer(help="Export sightings: a Camtrap DP package or a CSV.", no_args_is_help=True)

_TIMEZONE_HELP = "The cameras' timezone (IANA name, e.g. America/Chicago); unset: UTC, flagged as an issue."


def _export_options(
    settings: Settings, timezone: str | None, title: str | None = None, contributors: list[str] | None = None
) -> ExportOptions:
    from deerid.export.common import ExportOptions, calibrated_probability, parse_timezone

    return ExportOptions(
        timezone=parse_timezone(timezone),
        probability=calibrated_probability(settings),
        title=title or "deerid export",
        contributors=tuple(contributors or ()),
    )


@export_app.command("camtrap-dp")
def export_camtrap_dp(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="Folder to write the package into (new or empty).")],
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that holds files.")] = False,
    timezone: Annotated[str | None, typer.Option("--timezone", help=_TIMEZONE_HELP)] = None,
    title: Annotated[str | None, typer.Option("--title", help="Title of the package and project.")] = None,
    contributor: Annotated[
        list[str] | None, typer.Option("--contributor", help="A person who made the data (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Write a Camtrap DP 1.0 package: deployments, media, observations and individuals (docs/export.md)."""
    from deerid.export.camtrap import write_package

    app = context(ctx)
    options = _export_options(app.settings, timezone, title, contributor)
    with app.transaction() as session:
        summary = write_package(session, out, options, force=force)
    if as_json:
        print(json.dumps({"path": str(out), **summary.as_dict()}))
        return
    console.print(
        f"wrote {summary.deployments} deployments, {summary.media} photos, {summary.observations} "
        f"observations and {summary.individuals} individuals to {escape(str(out))}"
    )
    for warning in summary.warnings:
        err.print(f"[yellow]warning:[/] {escape(printable(warning))}", soft_wrap=True)


@export_app.command("csv")
def export_csv(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="CSV file to write: one row per sighting.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
    timezone: Annotated[str | None, typer.Option("--timezone", help=_TIMEZONE_HELP)] = None,
) -> None:
    """Write every sighting (deer box) as one CSV row: photo, time, camera, box, class, deer, how assigned."""
    from deerid.export.csv import write_sightings_csv

    app = context(ctx)
    options = _export_options(app.settings, timezone)
    with app.transaction() as session:
        rows = write_sightings_csv(session, out, options, force=force)
    console.print(f"wrote {rows} sightings to {escape(str(out))}")
