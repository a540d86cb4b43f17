"""`deerid ingest` and `deerid reid`: store photos and their detections, and re-identify."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from deerid.cli.root import bar, console, context, err, fail, printable, progress_factory


def ingest(
    ctx: typer.Context,
    photos_dir: Annotated[Path, typer.Argument(help="Folder of photos, searched recursively.")],
    detections: Annotated[
        Path | None, typer.Option("--detections", "-d", help="MegaDetector batch output JSON.")
    ] = None,
    camera: Annotated[
        str | None, typer.Option(help="Camera name for every photo (default: EXIF make, model and serial).")
    ] = None,
    camera_from_folder: Annotated[
        bool,
        typer.Option(
            "--camera-from-folder",
            help="One folder per camera: a photo's first folder under PHOTOS_DIR names its camera.",
        ),
    ] = False,
    camera_from_strip: Annotated[
        bool,
        typer.Option(
            "--camera-from-strip",
            help="Name each photo's camera after the name printed on its info strip (read with "
            "Tesseract, docs/strip.md); photos whose strip has no name fall back as usual.",
        ),
    ] = False,
    site: Annotated[
        str | None,
        typer.Option(
            help="Put these photos' cameras in this site: the cameras whose animals can meet "
            "(a property); deer are matched within their site. Default: the default site.",
        ),
    ] = None,
    reid: Annotated[bool, typer.Option("--reid/--no-reid", help="Re-identify the deer found.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON summary line.")] = False,
) -> None:
    """Store photos and their detections, and re-identify every deer big enough."""
    from deerid.pipeline.ingest import ingest as run_ingest

    app = context(ctx)
    if photos_dir.exists() and not photos_dir.is_dir():
        # F26: e.g. `deerid ingest detections.json`, the photo folder forgotten.
        hint = " (a detections file goes after --detections)" if photos_dir.suffix.lower() == ".json" else ""
        fail(f"{photos_dir} is a file, not a folder of photos{hint}")
    if detections is None:
        err.print(
            "[yellow]warning:[/] no --detections file: photos are stored but no deer can be found. "
            "Run MegaDetector first and pass its JSON output."
        )
    with bar(disable=as_json) as progress:
        report = run_ingest(
            app,
            photos_dir,
            detections,
            camera=camera,
            camera_from_folder=camera_from_folder,
            camera_from_strip=camera_from_strip,
            site=site,
            reidentify=reid,
            progress=progress_factory(progress),
        )
    out = report.as_dict()
    if not as_json:
        _print_ingest_summary(out)
        return
    try:
        _print_ingest_summary(out, to=err)
    finally:
        # The JSON line is the machine-readable result: it is printed whatever happens above (F7).
        print(json.dumps(out), flush=True)


def _print_ingest_summary(out: dict[str, Any], to: Console = console) -> None:
    """Plain text: paths, camera names and skip reasons are user text, never console markup (F7)."""

    def say(text: str) -> None:
        to.print(printable(text), markup=False, emoji=False, soft_wrap=True)

    say(
        f"photos: {out['photos']} ({out['photos_new']} new, {out['photos_existing']} already stored"
        + (f", {out['photos_relocated']} found at a new path" if out.get("photos_relocated") else "")
        + (
            f", {out['photos_same_pixels']} copies with edited metadata"
            if out.get("photos_same_pixels")
            else ""
        )
        + ")\n"
        + f"detections: {out['detections']} at/above threshold ({out['detections_new']} new, "
        + (
            f"{out['detections_changed']} changed (earlier box kept in its history, re-identified again), "
            if out.get("detections_changed")
            else ""
        )
        + f"{out['below_threshold']} below threshold)\n"
        f"deer boxes: {out['deer_detections']} new, {out['too_small']} too small to identify, "
        f"{out['not_deer']} other animals/people\n"
        # A box that continues its track's deer is no decision of its own: counted apart from
        # the tracks that joined a known deer, so the figures say what was decided.
        f"re-identified: {out['reidentified']} boxes ({out['matched'] - out['auto_joined']} with their "
        f"track's deer, {out['auto_joined']} joined a known deer, {out['new_deer']} new deer), "
        f"{out['failed']} failed"
        + (f", {out['queued']} queued for the worker" if out["queued"] else "")
        + f"\ncameras: {_cameras_text(out['cameras'])}"
        + f"\nencounters: {out['events']} events, {out['tracks']} tracks"
        + (
            f"; {out['auto_joined']} tracks joined a known deer automatically, "
            f"{out['awaiting_review']} new deer wait for review"
            if out["reidentified"]
            else ""
        )
        + f"\ntime: {out['seconds']:.1f} s"
    )
    _print_strip_summary(out, say)
    if out["skipped"]:
        say(f"skipped ({len(out['skipped'])}):")
        for item in out["skipped"][:50]:
            say(f"  {item['file']}: {item['reason']}")
        if len(out["skipped"]) > 50:
            say(f"  … and {len(out['skipped']) - 50} more (use --json for all)")


def _print_strip_summary(out: dict[str, Any], say: Callable[[str], None]) -> None:
    """Info strips (docs/strip.md): what was read, EXIF/strip disagreements, time fallbacks."""
    for warning in out.get("warnings", []):
        say(f"warning: {warning}")
    read, unreadable = out.get("strips_read", 0), out.get("strips_unreadable", 0)
    if read or unreadable:
        say(
            f"info strips: {read} read, {unreadable} unreadable ({out.get('strip_seconds', 0.0):.1f} s); "
            f"{out.get('time_from_strip', 0)} photos without an EXIF time took the strip's time"
        )
    disagreements = out.get("strip_disagreements", [])
    if disagreements:
        say(f"EXIF and strip disagree ({len(disagreements)}):")
        for item in disagreements[:50]:
            say(f"  {item['file']}: EXIF {item['exif']}, strip {item['strip']} ({item['offset_s']:+.0f} s)")
    fallbacks = out.get("time_fallbacks", [])
    if fallbacks:
        say(f"time from the file, not the camera ({len(fallbacks)}):")
        for item in fallbacks[:50]:
            say(f"  {item['file']}: {item['reason']}")


def _cameras_text(cameras: list[dict[str, Any]]) -> str:
    if not cameras:
        return "none recognised (no EXIF make/model; use --camera or --camera-from-folder)"
    return ", ".join(f"{c['name']} ({c['photos']} photos)" for c in cameras)


def reid(
    ctx: typer.Context,
    detection_ids: Annotated[list[int] | None, typer.Argument(help="Detection ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every deer detection not yet assigned.")] = False,
    retry_failed: Annotated[bool, typer.Option(help="With --all: retry detections that failed.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-identify detections (in-process, or on the worker when a broker is set)."""
    from deerid.pipeline.reid import reidentify_ids, unassigned

    app = context(ctx)
    if not all_ and not detection_ids:
        fail("give detection ids or --all")
    ids = list(detection_ids or []) or unassigned(app, include_failed=retry_failed)
    queue = app.queue
    if queue is not None:
        from deerid.dispatch import REIDENTIFY_BATCH

        queue.send(REIDENTIFY_BATCH, ids)
        out: dict[str, Any] = {"queued": len(ids)}
    else:
        with bar(disable=as_json) as progress:
            summary = reidentify_ids(
                app, ids, progress=progress_factory(progress)("re-identifying", len(ids))
            )
        out = {"detections": len(ids), **summary.as_dict()}
    print(json.dumps(out) if as_json else ", ".join(f"{k}: {v}" for k, v in out.items()))
