"""`deerid status` and `deerid config`: what is stored, and the settings in force."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from deerid.cli.root import console, context
from deerid.core.config import Settings, env_names, setting_sources
from deerid.errors import DeeridError

if TYPE_CHECKING:
    from deerid.app import Deerid


def status(ctx: typer.Context) -> None:
    """Start the database, show what is stored and what to do next."""
    overview(context(ctx))


def overview(app: Deerid) -> None:
    from deerid.db.session import describe_url
    from deerid.store.deer import counts_by_sex
    from deerid.store.photos import check_locations

    settings = app.settings
    with app.transaction() as session:
        counts = counts_by_sex(session)
        missing = check_locations(session, limit=5)
    total = sum(counts.values())
    where = (
        f"external PostgreSQL {describe_url(app.engine.url.render_as_string(False))}"
        if settings.database_url
        else f"embedded PostgreSQL in {settings.pgdata_dir}"
    )
    console.print(f"deerid is ready (database: {where}).", soft_wrap=True)
    if total:
        parts = ", ".join(f"{n} {sex.value}" for sex, n in sorted(counts.items()))
        console.print(f"{total} deer profiles ({parts}). See them with: [bold]deerid deer list[/]")
    else:
        console.print("No deer yet.")
    console.print(_merges_line(settings), soft_wrap=True)
    if missing.count:
        # Printed as plain text: paths are user data, never console markup.
        console.print(
            f"{missing.count} photos are missing from where they were stored (moved, deleted or "
            "replaced by another photo); their boxes cannot be cropped. Ingest the folder where "
            "they are now and they are found again by content:",
            markup=False,
            soft_wrap=True,
        )
        for item in missing.examples:
            console.print(f"  photo {item['id']}: {item['path']}", markup=False, soft_wrap=True)
    console.print(
        "Next: run MegaDetector on your photos, then\n"
        "  [bold]deerid ingest PHOTOS_DIR --detections megadetector.json [--camera NAME][/]"
        "  (or upload them in the dashboard)\n"
        "  [bold]deerid deer list[/]   ·   [bold]deerid deer show ID[/]   ·   [bold]deerid config[/]"
    )


def config(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Print the effective settings."""
    from deerid.db.session import describe_url

    app = context(ctx)
    settings = app.settings
    values: dict[str, Any] = settings.model_dump(mode="json")
    values["resolved_device"] = settings.resolved_device
    if settings.database_url:
        values["database_url"] = describe_url(settings.database_url)
    else:
        values["database_url"] = f"(embedded PostgreSQL in {settings.pgdata_dir})"
    sources = setting_sources(os.environ)
    try:
        in_force = _in_force(app)
    except Exception as exc:  # config must still print when the model cannot load: that is when it is needed
        in_force = {
            "active_model": "?",
            "active_model_id": f"cannot load: {exc}",
            "active_model_source": "-",
            "threshold_in_force": settings.reid_threshold,
            "threshold_source": "environment" if settings.reid_threshold is not None else "unknown",
            "threshold_detail": "the active model could not be loaded",
            "automatic_merges": settings.reid_threshold is not None,
        }
    values.update(in_force)
    if as_json:
        print(json.dumps({**values, "sources": sources}))
        return
    table = Table("variable", "value", "from", show_header=True)
    for key, value in values.items():
        if key in in_force:
            continue
        name = env_names(key)[0] if key in sources else f"({key})"
        table.add_row(name, str(value), sources.get(key, "derived"))
    console.print(table)
    console.print(
        f"active model: [bold]{in_force['active_model']}[/] ({in_force['active_model_id']}), "
        f"chosen by {in_force['active_model_source']}\n"
        + _threshold_text(
            in_force["threshold_in_force"], in_force["threshold_source"], in_force["threshold_detail"]
        ),
        soft_wrap=True,
    )


def _threshold_text(value: float | None, source: str, detail: str) -> str:
    if value is None:
        return f"threshold in force: [bold]none — no automatic merges[/] ({detail})"
    return f"threshold in force: [bold]{value}[/] ({source}: {detail})"


def _merges_line(settings: Settings) -> str:
    """The threshold in force, without loading the model (its id comes from the registry)."""
    from deerid.registry.calibration import resolve_threshold
    from deerid.registry.models import active_model_name, find_model

    try:
        name, _ = active_model_name(settings)
        model_id = find_model(settings, name).model_id
        if model_id is None and settings.reid_threshold is None:
            return f"model {name}: not used yet, no calibration: no automatic merges (run `deerid calibrate`)"
        choice = resolve_threshold(settings, model_id or "")
    except DeeridError as exc:
        return f"threshold in force: unknown ({exc})"
    return _threshold_text(choice.value, choice.source, choice.detail)


def _in_force(app: Deerid) -> dict[str, Any]:
    """The model that embeds and the threshold that decides, with where each comes from."""
    from deerid.registry.models import active_model_name

    name, source = active_model_name(app.settings)
    embedder = app.embedder()
    threshold = app.threshold(embedder.model_id)
    return {
        "active_model": name,
        "active_model_id": embedder.model_id,
        "active_model_source": source,
        "threshold_in_force": threshold.value,
        "threshold_source": threshold.source,
        "threshold_detail": threshold.detail,
        "automatic_merges": threshold.value is not None,
    }
