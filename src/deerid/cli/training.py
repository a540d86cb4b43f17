"""`deerid train` and `deerid adapt`: fine-tune the embedding on labelled or unlabelled deer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from deerid.cli.models import store_trained_calibration
from deerid.cli.root import console, context, err, fail


def _check_name(out: str) -> None:
    from deerid.embed.backbones import available_backbones

    if not out or "/" in out or out.startswith(".") or out in available_backbones():
        fail("give --out NAME: a plain folder name for the new model, not a backbone name")


def train(
    ctx: typer.Context,
    directory: Annotated[
        Path | None, typer.Argument(help="DIR/<individual>/<sighting>_<anything>.jpg")
    ] = None,
    from_db: Annotated[bool, typer.Option("--from-db", help="Train on sightings people confirmed.")] = False,
    out: Annotated[str, typer.Option(help="Name of the trained model (a folder under the data dir).")] = "",
    epochs: Annotated[int | None, typer.Option(min=1, help="Upper bound; the best epoch is kept.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or auto (default: DEVICE).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fine-tune the embedding on identified animals (metric learning); resumable, seeded."""
    import tempfile

    from deerid.evaluation.retrieval import load_identity_folder
    from deerid.pipeline.labelled import export_confirmed_crops
    from deerid.training.loop import TrainConfig
    from deerid.training.loop import train as run_train
    from deerid.training.progress import progress_line

    app = context(ctx)
    settings = app.settings
    _check_name(out)
    if (directory is None) == (not from_db):
        fail("give a labelled folder (DIR/<individual>/<sighting>_<anything>.jpg) or --from-db, not both")
    config = TrainConfig(seed=seed, device=device or settings.device)
    if epochs is not None:
        config.epochs = epochs

    quarters_shown = {"n": 0}

    def report_progress(event: dict[str, Any]) -> None:
        if as_json:
            return
        if event.get("phase") == "cache":
            # The frozen layers run once per image, in batches: one line per quarter is enough.
            quarter = 4 * event["done"] // max(1, event["total"])
            if quarter <= quarters_shown["n"]:
                return
            quarters_shown["n"] = quarter
        err.print(progress_line(event), soft_wrap=True)

    with tempfile.TemporaryDirectory(prefix="deerid-train-") as scratch:
        if directory is not None:
            if not directory.is_dir():
                fail(f"folder not found: {directory}")
            samples = load_identity_folder(directory)
        else:
            samples, problems = export_confirmed_crops(app, Path(scratch))
            for problem in problems:
                err.print(f"[yellow]skipped:[/] {problem}", soft_wrap=True)
        err.print(
            f"training {config.backbone} @ {config.input_size} on {len(samples)} images", soft_wrap=True
        )
        model = run_train(samples, config, settings.models_dir / out, progress=report_progress)
    calibrated = store_trained_calibration(settings, model.model_id, model.info)
    summary = {
        "name": out,
        "model_id": model.model_id,
        "path": str(model.model_dir),
        **model.info,
        "calibration_stored": calibrated,
    }
    if as_json:
        print(json.dumps(summary, default=str))
        return
    console.print(
        f"trained model [bold]{out}[/] ({model.model_id}) in {model.model_dir}\n"
        f"calibration: {model.info.get('calibration_note') or 'none (trained before calibration was stored)'}"
        + ("" if calibrated else "; run `deerid calibrate --model " + out + "` on a labelled folder")
        + f"\nuse it with: deerid models use {out} && deerid reembed",
        soft_wrap=True,
    )


def adapt(
    ctx: typer.Context,
    out: Annotated[str, typer.Option(help="Name of the adapted model (a folder under the data dir).")] = "",
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs over the crops (default 6).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or auto (default: DEVICE).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fine-tune the embedding on the stored, unlabelled deer crops (tracks as positives,
    clusters as pseudo-labels); resumable, seeded. Not activated: see `deerid models use`."""
    import shutil
    from dataclasses import replace

    from deerid.training.adapt import AdaptConfig, adapt_progress_line, check_gallery, finished, write_info
    from deerid.training.adapt import adapt as run_adapt
    from deerid.training.gallery import export_crops, gallery_boxes, source_key

    app = context(ctx)
    settings = app.settings
    _check_name(out)
    config = AdaptConfig()
    config.train = replace(config.train, seed=seed, device=device or settings.device)
    if epochs is not None:
        config.train.epochs = epochs
    model_dir = settings.models_dir / out
    quarters_shown: dict[str, int] = {}

    def report_progress(event: dict[str, Any]) -> None:
        if as_json:
            return
        if event.get("phase") in ("cache", "crops"):
            # One line per quarter is enough for the long per-image passes.
            quarter = 4 * event["done"] // max(1, event["total"])
            if quarter <= quarters_shown.get(event["phase"], 0):
                return
            quarters_shown[event["phase"]] = quarter
        err.print(adapt_progress_line(event), soft_wrap=True)

    with app.sessions() as session:
        boxes = gallery_boxes(session)
    key = source_key(boxes, config.key_json())
    model = finished(model_dir, key, field="source_key")
    if model is not None:
        report_progress({"phase": "done", "reused": True, "model_id": model.model_id})
    else:
        check_gallery(
            [b.encounter for b in boxes], min_crops=config.min_crops, min_multi_view=config.min_multi_view
        )
        err.print(
            f"adapting {config.train.backbone} @ {config.train.input_size} on {len(boxes)} stored deer crops",
            soft_wrap=True,
        )
        crops, problems = export_crops(
            boxes,
            model_dir / "crops",
            config.train.input_size,
            settings.min_crop_size,
            progress=lambda done, total: report_progress({"phase": "crops", "done": done, "total": total}),
        )
        for problem in problems:
            err.print(f"[yellow]skipped:[/] {problem}", soft_wrap=True)
        model = run_adapt(crops, config, model_dir, progress=report_progress)
        # Keyed on the database rows, so that a finished run is found before any crop is cut.
        model.info["adapted"]["source_key"] = key
        write_info(model_dir, model.info)
        shutil.rmtree(model_dir / "crops", ignore_errors=True)
    summary = {"name": out, "model_id": model.model_id, "path": str(model.model_dir), **model.info}
    if as_json:
        print(json.dumps(summary, default=str))
        return
    adapted = model.info.get("adapted", {})
    console.print(
        f"adapted model [bold]{out}[/] ({model.model_id}) in {model.model_dir}\n"
        f"from {adapted.get('crops')} crops in {adapted.get('encounters')} tracks, "
        f"{adapted.get('clusters')} pseudo-identities\n"
        f"calibration: none (no labels); run `deerid calibrate --model {out}` before automatic merges\n"
        f"use it with: deerid models use {out} && deerid reembed",
        soft_wrap=True,
    )
