"""`deerid deer ...` (profiles, stars, links between years) and `deerid report` (a deer's activity).

With --json a profile is printed in the API's shape (deerid.cli.shapes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from deerid.cli.root import console, context, fail, fmt_time

deer_app = typer.Typer(help="Look at deer profiles.", no_args_is_help=True)


@deer_app.command("list")
def deer_list(
    ctx: typer.Context,
    sex: Annotated[str | None, typer.Option(help="doe, fawn, buck or unknown.")] = None,
    starred: Annotated[bool, typer.Option("--starred", help="Only starred deer (the hit list).")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One row per deer: id, name, sex, first/last seen, sightings, cameras (★: starred)."""
    from pydantic import TypeAdapter

    from deerid.api.outputs import deer_out
    from deerid.cli.shapes import DeerRow
    from deerid.domain.classes import Sex
    from deerid.store.views import DeerFilter, list_deer

    app = context(ctx)
    try:
        sex_filter = Sex(sex) if sex else None
    except ValueError:
        fail(f"unknown sex {sex!r}: use one of {', '.join(s.value for s in Sex)}")
    with app.sessions() as session:
        _, found = list_deer(session, DeerFilter(sex=sex_filter, starred=starred or None), limit=1_000_000)
        rows = [
            DeerRow(
                **deer_out(session, deer, best=best, cameras=cameras).model_dump(),
                sightings=deer.sighting_count,
            )
            for deer, best, cameras in found
        ]
    if as_json:
        print(TypeAdapter(list[DeerRow]).dump_json(rows).decode())
        return
    table = Table("id", "name", "sex", "first seen", "last seen", "sightings", "cameras")
    for r in rows:
        table.add_row(
            str(r.id)[:8],
            f"★ {r.name}" if r.starred else r.name,
            r.sex.value,
            fmt_time(r.first_seen),
            fmt_time(r.last_seen),
            str(r.sighting_count),
            ", ".join(r.cameras),
        )
    console.print(table)
    console.print(f"{len(rows)} deer")


@deer_app.command("star")
def deer_star(
    ctx: typer.Context,
    deer: Annotated[str, typer.Argument(help="Deer id (or a unique prefix of it) or exact name.")],
    off: Annotated[bool, typer.Option("--off", help="Take the star away.")] = False,
) -> None:
    """Put a deer on the hit list (or take it off): `deer list --starred` shows the list."""
    from deerid.store.deer import find_deer
    from deerid.store.links import set_starred

    with context(ctx).transaction() as session:
        found = find_deer(session, deer)
        if found is None:
            fail(f"no deer matches {deer!r}")
        set_starred(session, found.id, not off)
        name = found.name
    console.print(f"{escape(name)}: {'unstarred' if off else 'starred ★'}")


@deer_app.command("link")
def deer_link(
    ctx: typer.Context,
    deer: Annotated[str, typer.Argument(help="One profile (id, id prefix or exact name).")],
    other: Annotated[str, typer.Argument(help="The same animal's profile of another year.")],
    note: Annotated[str | None, typer.Option(help="Why you think so (kept with the link).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the link instead.")] = False,
) -> None:
    """Say two profiles are one deer in different years (antlers change every season); they stay
    two profiles, shown side by side."""
    from deerid.store.deer import find_deer
    from deerid.store.links import link, unlink, years

    app = context(ctx)
    with app.transaction() as session:
        a, b = find_deer(session, deer), find_deer(session, other)
        if a is None or b is None:
            fail(f"no deer matches {(deer if a is None else other)!r}")
        if remove:
            if not unlink(session, a.id, b.id):
                fail(f"{a.name} and {b.name} are not linked")
        else:
            link(session, a.id, b.id, note)
        group = [(y.season, y.deer.name) for y in years(session, a.id, app.settings.season_month_day)]
    console.print("  ".join(f"{season}: {escape(name)}" for season, name in group))


@deer_app.command("show")
def deer_show(
    ctx: typer.Context,
    deer: Annotated[str, typer.Argument(help="Deer id (or a unique prefix of it) or exact name.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A deer's sightings with time, camera and similarity."""
    from deerid.api.outputs import deer_out, sighting_out
    from deerid.cli.shapes import DeerShown
    from deerid.store.deer import find_deer
    from deerid.store.views import sightings

    with context(ctx).sessions() as session:
        found = find_deer(session, deer)
        if found is None:
            fail(f"no deer matches {deer!r}")
        rows = sightings(session, found.id)
        shown = DeerShown(
            **deer_out(session, found).model_dump(), sightings=[sighting_out(row) for row in rows]
        )
    if as_json:
        print(shown.model_dump_json())
        return
    conf = f"{found.confidence:.3f}" if found.confidence is not None else "-"
    console.print(
        f"[bold]{found.name}[/] ({found.sex.value})  id {found.id}\n"
        f"seen {found.sighting_count}× from {fmt_time(found.first_seen)} to {fmt_time(found.last_seen)}, "
        f"confidence {conf}"
    )
    table = Table("detection", "time", "camera", "class", "similarity", "how", "photo")
    for s in rows:
        det = s.detection
        table.add_row(
            str(det.id),
            fmt_time(s.local_time),
            s.camera.name if s.camera else "-",
            det.class_label or "-",
            f"{det.similarity:.3f}" if det.similarity is not None else "-",
            det.assignment.value if det.assignment else "-",
            Path(s.image.path).name,
        )
    console.print(table)


def report(
    ctx: typer.Context,
    deer: Annotated[str, typer.Argument(help="Deer id (or a unique prefix of it) or exact name.")],
    out: Annotated[Path | None, typer.Option(help="Folder for the PNGs (default: in the data dir).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A deer's activity in visits as PNG plots: by hour, daylight phase, moon phase, season week."""
    from deerid.domain.activity import activity
    from deerid.report.activity import write_activity_plots
    from deerid.store.activity import visits
    from deerid.store.deer import find_deer

    app = context(ctx)
    settings = app.settings
    with app.sessions() as session:
        found = find_deer(session, deer)
        if found is None:
            fail(f"no deer matches {deer!r}")
        counts = activity(
            visits(session, deer_id=found.id),
            settings.camera_zone,
            season=settings.season_month_day,
            configured=settings.timezone is not None,
        )
    folder = out or app.paths.reports / f"activity-{found.id}"
    paths = write_activity_plots(folder, found.name, counts)
    if as_json:
        print(
            json.dumps(
                {
                    "deer": str(found.id),
                    "name": found.name,
                    "visits": counts.visits,
                    "undated": counts.undated,
                    "by_daylight": counts.by_daylight,
                    "by_moon": counts.by_moon,
                    "plots": [str(p) for p in paths],
                }
            )
        )
        return
    console.print(f"[bold]{escape(found.name)}[/]: {counts.visits} visits ({counts.undated} without a time)")
    for path in paths:
        console.print(f"  {escape(str(path))}")
