"""`deerid models ...` and `deerid reembed`: which model embeds, and the calibration that decides."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from deerid.cli.root import bar, console, context, err, progress_factory

if TYPE_CHECKING:
    from deerid.core.config import Settings

models_app = typer.Typer(
    help="Embedding models: pretrained backbones and trained models.", no_args_is_help=True
)


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Pretrained backbones and trained models; the active one is marked."""
    from deerid.registry.models import active_model_name, list_models

    settings = context(ctx).settings
    active, _ = active_model_name(settings)
    entries = list_models(settings)
    rows: list[dict[str, Any]] = [
        {
            "name": e.name,
            "kind": e.kind,
            "model_id": e.model_id,
            "active": active in (e.name, e.model_id),
            "path": str(e.path) if e.path else None,
        }
        for e in entries
    ]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("", "name", "kind", "model id")
    for row in rows:
        table.add_row(
            "*" if row["active"] else "", row["name"], row["kind"], row["model_id"] or "(not used yet)"
        )
    console.print(table)


@models_app.command("use")
def models_use(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Backbone name, trained model name or model id.")],
) -> None:
    """Make MODEL the one that embeds new detections (then run `deerid reembed`)."""
    from deerid.pipeline.reembed import stale_detections
    from deerid.registry.models import use_model

    app = context(ctx)
    settings = app.settings
    entry = use_model(settings, model)
    if settings.model:
        err.print(f"[yellow]note:[/] DEERID_MODEL={settings.model} is set and overrides this choice")
    embedder = app.embedder()
    stale = len(stale_detections(app, embedder.model_id))
    console.print(f"active model: {entry.name} ({embedder.model_id})")
    console.print(_calibration_in_force(settings, embedder.model_id, entry.info), soft_wrap=True)
    if stale:
        console.print(
            f"{stale} stored detections were embedded by another model and are not compared with new ones: "
            "run [bold]deerid reembed[/]",
            soft_wrap=True,
        )


def store_trained_calibration(settings: Settings, model_id: str, info: dict[str, Any]) -> bool:
    """Store the calibration `deerid train` measured on its held-out individuals; True if there was one."""
    from deerid.registry import calibration

    record = info.get("calibration")
    if not isinstance(record, dict):
        return False
    calibration.save(settings, model_id, record)
    return True


def _calibration_in_force(settings: Settings, model_id: str, info: dict[str, Any]) -> str:
    """Which calibration decides for `model_id` now.

    A trained model carries the calibration of its own training run: it is stored here
    if none is (a model copied from another machine, or trained through the Python API)."""
    from deerid.registry import calibration

    note = ""
    if calibration.load(settings, model_id) is None and store_trained_calibration(settings, model_id, info):
        note = " (stored from the model's own training run)"
    choice = calibration.resolve_threshold(settings, model_id)
    record = calibration.load(settings, model_id)
    if choice.source == "environment":
        return f"threshold in force: {choice.value} from REID_THRESHOLD, which overrides " + (
            "this model's calibration" if record else "everything"
        )
    if choice.value is None:
        why = choice.detail if record else "no calibration for this model"
        return (
            f"calibration in force: none — no automatic merges ({why}){note}; "
            "every new track founds a provisional deer for review. Run `deerid calibrate` to change that."
        )
    target = record.get("max_false_merge") if record else None
    target_text = f"{target:.0%}" if isinstance(target, int | float) else "?"
    return (
        f"calibration in force: automatic merges from score {choice.value:g}, false-merge target "
        f"{target_text} ({choice.detail}){note}"
    )


def reembed(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Re-embed stored deer detections with the active model (assignments are kept)."""
    from deerid.pipeline.reembed import reembed as run_reembed

    with bar(disable=as_json) as progress:
        out = run_reembed(context(ctx), progress=progress_factory(progress)).as_dict()
    if as_json:
        print(json.dumps(out))
        return
    console.print(
        f"model {out['model_id']}: {out['reembedded']} of {out['detections']} detections re-embedded, "
        f"{len(out['failed'])} failed; {out['deer']} deer profiles updated",
        soft_wrap=True,
    )
    for item in out["failed"][:20]:
        console.print(f"  detection {item['detection_id']}: {item['reason']}", soft_wrap=True)
