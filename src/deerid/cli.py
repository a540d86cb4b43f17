"""The `deerid` command line: a thin adapter over the pipeline and the store."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from deerid.core.config import Settings, env_names, get_settings, setting_sources

app = typer.Typer(
    help="Tell individual deer apart in trail-camera photos.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
deer_app = typer.Typer(help="Look at deer profiles.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
models_app = typer.Typer(
    help="Embedding models: pretrained backbones and trained models.", no_args_is_help=True
)
app.add_typer(deer_app, name="deer")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
export_app = typer.Typer(help="Export sightings: a Camtrap DP package or a CSV.", no_args_is_help=True)
app.add_typer(export_app, name="export")
deployments_app = typer.Typer(
    help="Deployments: a camera at a place between two dates, with coordinates.", no_args_is_help=True
)
app.add_typer(deployments_app, name="deployments")

# Piped output (logs, `| less`) would otherwise be squeezed to 80 columns and truncate dates.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> NoReturn:
    # The message may quote user text (paths, names): never read as markup (F7).
    err.print(f"[bold red]error:[/] {escape(_printable(message))}", soft_wrap=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}={e.get('input')!r}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid settings: {problems}")


@contextmanager
def _user_errors() -> Iterator[None]:
    """Errors a user can fix become one clear line, not a traceback."""
    from deerid.db.embedded import EmbeddedDatabaseError
    from deerid.db.session import DatabaseError
    from deerid.domain.sites import SiteError
    from deerid.embed.weights import WeightsUnavailableError
    from deerid.ingest.megadetector import DetectionsFileError
    from deerid.store.curation import CurationError
    from deerid.tasks.celery_app import BrokerUnavailableError

    try:
        yield
    except (
        BrokerUnavailableError,
        CurationError,
        DetectionsFileError,
        DatabaseError,
        EmbeddedDatabaseError,
        NotADirectoryError,
        LookupError,
        SiteError,
    ) as exc:
        _fail(str(exc))
    except WeightsUnavailableError as exc:
        _fail(str(exc))


def _progress_factory(progress: Progress) -> Callable[[str, int], Callable[[int], None]]:
    def start(label: str, total: int) -> Callable[[int], None]:
        task = progress.add_task(label, total=total)
        return lambda n: progress.advance(task, n)

    return start


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    _exit_on_sigterm()
    if ctx.invoked_subcommand is None:
        # The main job: show what is stored, then serve the dashboard (Ctrl-C stops it).
        _overview()
        serve()


def _terminated(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)


def _exit_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, kill) ends the process like Ctrl-C does: through the exit
    handlers, so the embedded PostgreSQL is stopped when this was its last user. By default
    SIGTERM kills Python without running them, leaving the server behind. (uvicorn and Celery
    install their own handlers while they run and hand the signal back to this one.)"""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGTERM, _terminated)


@app.command()
def status() -> None:
    """Start the database, show what is stored and what to do next."""
    _overview()


def _overview() -> None:
    from deerid.db.session import describe_url, get_engine, session_factory
    from deerid.store.deer import counts_by_sex
    from deerid.store.photos import check_locations

    settings = _settings()
    with _user_errors():
        engine = get_engine(settings)
        with session_factory(settings)() as session, session.begin():
            counts = counts_by_sex(session)
            missing = check_locations(session, limit=5)
    total = sum(counts.values())
    where = (
        f"external PostgreSQL {describe_url(engine.url.render_as_string(False))}"
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


@app.command()
def config(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print the effective settings."""
    from deerid.db.session import describe_url

    settings = _settings()
    values: dict[str, Any] = settings.model_dump(mode="json")
    values["resolved_device"] = settings.resolved_device
    if settings.database_url:
        values["database_url"] = describe_url(settings.database_url)
    else:
        values["database_url"] = f"(embedded PostgreSQL in {settings.pgdata_dir})"
    sources = setting_sources(os.environ)
    try:
        in_force = _in_force(settings)
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
    except (LookupError, RuntimeError) as exc:
        return f"threshold in force: unknown ({exc})"
    return _threshold_text(choice.value, choice.source, choice.detail)


def _in_force(settings: Settings) -> dict[str, Any]:
    """The model that embeds and the threshold that decides, with where each comes from."""
    from deerid.registry.calibration import resolve_threshold
    from deerid.registry.models import active_embedder, active_model_name

    name, source = active_model_name(settings)
    embedder = active_embedder(settings)
    threshold = resolve_threshold(settings, embedder.model_id)
    return {
        "active_model": name,
        "active_model_id": embedder.model_id,
        "active_model_source": source,
        "threshold_in_force": threshold.value,
        "threshold_source": threshold.source,
        "threshold_detail": threshold.detail,
        "automatic_merges": threshold.value is not None,
    }


@app.command()
def ingest(
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
    from deerid.ingest.strip import TesseractMissing
    from deerid.pipeline.ingest import ingest as run_ingest

    settings = _settings()
    if photos_dir.exists() and not photos_dir.is_dir():
        # F26: e.g. `deerid ingest detections.json`, the photo folder forgotten.
        hint = " (a detections file goes after --detections)" if photos_dir.suffix.lower() == ".json" else ""
        _fail(f"{photos_dir} is a file, not a folder of photos{hint}")
    if detections is None:
        err.print(
            "[yellow]warning:[/] no --detections file: photos are stored but no deer can be found. "
            "Run MegaDetector first and pass its JSON output."
        )
    with _user_errors(), _bar(disable=as_json) as progress:
        try:
            report = run_ingest(
                settings,
                photos_dir,
                detections,
                camera=camera,
                camera_from_folder=camera_from_folder,
                camera_from_strip=camera_from_strip,
                site=site,
                reidentify=reid,
                progress=_progress_factory(progress),
            )
        except PermissionError as exc:  # the photo folder itself (an unreadable sub-folder is skipped)
            _fail(f"permission denied: {exc.filename or photos_dir}")
        except TesseractMissing as exc:  # only --camera-from-strip needs it; else a warning
            _fail(str(exc))
    out = report.as_dict()
    if not as_json:
        _print_ingest_summary(out)
        return
    try:
        _print_ingest_summary(out, to=err)
    finally:
        # The JSON line is the machine-readable result: it is printed whatever happens above (F7).
        print(json.dumps(out), flush=True)


@contextmanager
def _bar(disable: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description:>15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=disable or not err.is_terminal,
        transient=False,
    )
    with progress:
        yield progress


def _printable(text: object) -> str:
    """Text that any console can write: lone surrogates (a JSON \\udcff, a non-UTF-8 name) escaped."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def _print_ingest_summary(out: dict[str, Any], to: Console = console) -> None:
    """Plain text: paths, camera names and skip reasons are user text, never console markup (F7)."""

    def say(text: str) -> None:
        to.print(_printable(text), markup=False, emoji=False, soft_wrap=True)

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


def _print_strip_summary(out: dict[str, Any], say: Any) -> None:
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


def _fmt_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@deer_app.command("list")
def deer_list(
    sex: Annotated[str | None, typer.Option(help="doe, fawn, buck or unknown.")] = None,
    starred: Annotated[bool, typer.Option("--starred", help="Only starred deer (the hit list).")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One row per deer: id, name, sex, first/last seen, sightings, cameras (★: starred)."""
    from deerid.db.session import session_factory
    from deerid.domain.classes import Sex
    from deerid.store.views import DeerFilter, list_deer

    settings = _settings()
    try:
        sex_filter = Sex(sex) if sex else None
    except ValueError:
        _fail(f"unknown sex {sex!r}: use one of {', '.join(s.value for s in Sex)}")
    with _user_errors(), session_factory(settings)() as session:
        _, found = list_deer(session, DeerFilter(sex=sex_filter, starred=starred or None), limit=1_000_000)
        rows = [(deer, cameras) for deer, _, cameras in found]
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": str(r.id),
                        "name": r.name,
                        "sex": r.sex.value,
                        "first_seen": r.first_seen.isoformat() if r.first_seen else None,
                        "last_seen": r.last_seen.isoformat() if r.last_seen else None,
                        "sightings": r.sighting_count,
                        "confidence": r.confidence,
                        "cameras": cameras,
                        "starred": r.starred,
                    }
                    for r, cameras in rows
                ]
            )
        )
        return
    table = Table("id", "name", "sex", "first seen", "last seen", "sightings", "cameras")
    for r, cameras in rows:
        table.add_row(
            str(r.id)[:8],
            f"★ {r.name}" if r.starred else r.name,
            r.sex.value,
            _fmt_time(r.first_seen),
            _fmt_time(r.last_seen),
            str(r.sighting_count),
            ", ".join(cameras),
        )
    console.print(table)
    console.print(f"{len(rows)} deer")


@deer_app.command("star")
def deer_star(
    deer: Annotated[str, typer.Argument(help="Deer id (or a unique prefix of it) or exact name.")],
    off: Annotated[bool, typer.Option("--off", help="Take the star away.")] = False,
) -> None:
    """Put a deer on the hit list (or take it off): `deer list --starred` shows the list."""
    from deerid.db.session import session_factory
    from deerid.store.deer import find_deer
    from deerid.store.links import set_starred

    settings = _settings()
    with _user_errors(), session_factory(settings)() as session, session.begin():
        found = find_deer(session, deer)
        if found is None:
            _fail(f"no deer matches {deer!r}")
        set_starred(session, found.id, not off)
        name = found.name
    console.print(f"{escape(name)}: {'unstarred' if off else 'starred ★'}")


@deer_app.command("link")
def deer_link(
    deer: Annotated[str, typer.Argument(help="One profile (id, id prefix or exact name).")],
    other: Annotated[str, typer.Argument(help="The same animal's profile of another year.")],
    note: Annotated[str | None, typer.Option(help="Why you think so (kept with the link).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the link instead.")] = False,
) -> None:
    """Say two profiles are one deer in different years (antlers change every season); they stay
    two profiles, shown side by side."""
    from deerid.db.session import session_factory
    from deerid.store.deer import find_deer
    from deerid.store.links import link, unlink, years

    settings = _settings()
    with _user_errors(), session_factory(settings)() as session, session.begin():
        a, b = find_deer(session, deer), find_deer(session, other)
        if a is None or b is None:
            _fail(f"no deer matches {(deer if a is None else other)!r}")
        if remove:
            if not unlink(session, a.id, b.id):
                _fail(f"{a.name} and {b.name} are not linked")
        else:
            link(session, a.id, b.id, note)
        group = [(y.season, y.deer.name) for y in years(session, a.id, settings.season_month_day)]
    console.print("  ".join(f"{season}: {escape(name)}" for season, name in group))


@deer_app.command("show")
def deer_show(
    deer: Annotated[str, typer.Argument(help="Deer id (or a unique prefix of it) or exact name.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A deer's sightings with time, camera and similarity."""
    from deerid.db.session import session_factory
    from deerid.store.deer import find_deer
    from deerid.store.views import sightings

    settings = _settings()
    with _user_errors(), session_factory(settings)() as session:
        found = find_deer(session, deer)
        if found is None:
            _fail(f"no deer matches {deer!r}")
        rows = sightings(session, found.id)
    if as_json:
        print(
            json.dumps(
                {
                    "id": str(found.id),
                    "name": found.name,
                    "sex": found.sex.value,
                    "first_seen": found.first_seen.isoformat() if found.first_seen else None,
                    "last_seen": found.last_seen.isoformat() if found.last_seen else None,
                    "sighting_count": found.sighting_count,
                    "confidence": found.confidence,
                    "sightings": [
                        {
                            "detection_id": s.detection.id,
                            "captured_at": s.local_time.isoformat() if s.local_time else None,
                            "camera": s.camera.name if s.camera else None,
                            "image": s.image.path,
                            "bbox": [
                                s.detection.bbox_x,
                                s.detection.bbox_y,
                                s.detection.bbox_w,
                                s.detection.bbox_h,
                            ],
                            "class": s.detection.class_label,
                            "similarity": s.detection.similarity,
                            "assignment": s.detection.assignment.value if s.detection.assignment else None,
                        }
                        for s in rows
                    ],
                }
            )
        )
        return
    conf = f"{found.confidence:.3f}" if found.confidence is not None else "-"
    console.print(
        f"[bold]{found.name}[/] ({found.sex.value})  id {found.id}\n"
        f"seen {found.sighting_count}× from {_fmt_time(found.first_seen)} to {_fmt_time(found.last_seen)}, "
        f"confidence {conf}"
    )
    table = Table("detection", "time", "camera", "class", "similarity", "how", "photo")
    for s in rows:
        det = s.detection
        table.add_row(
            str(det.id),
            _fmt_time(s.local_time),
            s.camera.name if s.camera else "-",
            det.class_label or "-",
            f"{det.similarity:.3f}" if det.similarity is not None else "-",
            det.assignment.value if det.assignment else "-",
            Path(s.image.path).name,
        )
    console.print(table)


@app.command()
def report(
    deer: Annotated[str, typer.Argument(help="Deer id (or a unique prefix of it) or exact name.")],
    out: Annotated[Path | None, typer.Option(help="Folder for the PNGs (default: in the data dir).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A deer's activity in visits as PNG plots: by hour, daylight phase, moon phase, season week."""
    from deerid.db.session import session_factory
    from deerid.domain.activity import activity
    from deerid.report.activity import write_activity_plots
    from deerid.store.activity import visits
    from deerid.store.deer import find_deer

    settings = _settings()
    with _user_errors(), session_factory(settings)() as session:
        found = find_deer(session, deer)
        if found is None:
            _fail(f"no deer matches {deer!r}")
        counts = activity(
            visits(session, deer_id=found.id),
            settings.camera_zone,
            season=settings.season_month_day,
            configured=settings.timezone is not None,
        )
    folder = out or settings.data_dir / "reports" / f"activity-{found.id}"
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


@app.command()
def reid(
    detection_ids: Annotated[list[int] | None, typer.Argument(help="Detection ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every deer detection not yet assigned.")] = False,
    retry_failed: Annotated[bool, typer.Option(help="With --all: retry detections that failed.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-identify detections (in-process, or on the worker when a broker is set)."""
    from deerid.pipeline.reid import reidentify_ids, unassigned

    settings = _settings()
    if not all_ and not detection_ids:
        _fail("give detection ids or --all")
    with _user_errors():
        ids = list(detection_ids or []) or unassigned(settings, include_failed=retry_failed)
        if settings.broker_url:
            from deerid.tasks.celery_app import REIDENTIFY_BATCH, enqueue

            enqueue(settings, REIDENTIFY_BATCH, ids)
            out: dict[str, Any] = {"queued": len(ids)}
        else:
            with _bar(disable=as_json) as progress:
                summary = reidentify_ids(
                    settings, ids, progress=_progress_factory(progress)("re-identifying", len(ids))
                )
            out = {"detections": len(ids), **summary.as_dict()}
    print(json.dumps(out) if as_json else ", ".join(f"{k}: {v}" for k, v in out.items()))


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    loglevel: Annotated[str, typer.Option()] = "info",
) -> None:
    """Run a Celery worker for re-ID tasks (needs DEERID_BROKER_URL)."""
    settings = _settings()
    if not settings.broker_url:
        _fail("set DEERID_BROKER_URL (e.g. redis://127.0.0.1:6379/0) to run a worker")
    from deerid.db.session import database_identity, dispose_engines
    from deerid.tasks.celery_app import app as celery_app
    from deerid.tasks.celery_app import queue_for

    with _user_errors():
        # The main process starts (and so owns) the embedded database: the pool children, which
        # exit through os._exit, must never hold the handle that stops it (F10).
        queue = queue_for(database_identity(settings))
        # Tasks the previous release left on the shared `celery` queue are never consumed here:
        # this database's pending boxes are queued again instead (deerid.tasks.recovery).
        from deerid.tasks.recovery import requeue_pending

        requeued = requeue_pending(settings).describe()
    dispose_engines()  # no pooled connection may cross the fork into the pool children
    console.print(f"worker for the tasks of this database (queue {queue})", soft_wrap=True, markup=False)
    if requeued:
        console.print(requeued, soft_wrap=True, markup=False)
    celery_app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            "--pool=prefork",
            f"--queues={queue}",
        ]
    )


def _embedder(settings: Settings, model: str | None) -> Any:
    from deerid.registry.models import UnknownModelError, active_embedder, embedder_for

    try:
        return embedder_for(settings, model) if model else active_embedder(settings)
    except UnknownModelError as exc:
        _fail(str(exc))


def _report_dir(settings: Settings, kind: str, model_id: str, given: Path | None) -> Path:
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return given or settings.data_dir / "reports" / f"{kind}-{model_id}-{stamp}"


def _evaluate(
    settings: Settings,
    directory: Path | None,
    from_db: bool,
    model: str | None,
    max_false_merge: float,
    orders: int,
    seed: int,
    quiet: bool,
    review: Any = None,
) -> Any:
    """Evaluate the model on a labelled folder or on the database's confirmed sightings."""
    from deerid.evaluation.run import evaluate_folder, evaluate_vectors
    from deerid.pipeline.labelled import NoLabelledDataError, confirmed_vectors
    from deerid.registry.calibration import resolve_threshold

    if (directory is None) == (not from_db):
        _fail("give a labelled folder (DIR/<individual>/<sighting>_<anything>.jpg) or --from-db, not both")
    embedder = _embedder(settings, model)
    threshold = resolve_threshold(settings, embedder.model_id).value
    try:
        if directory is not None:
            if not directory.is_dir():
                _fail(f"folder not found: {directory}")
            with _bar(disable=quiet) as progress:
                advance = _progress_factory(progress)("embedding", sum(1 for _ in directory.rglob("*.jpg")))
                return evaluate_folder(
                    directory,
                    embedder,
                    review=review,
                    threshold=threshold,
                    orders=orders,
                    seed=seed,
                    target_fmr=max_false_merge,
                    progress=advance,
                )
        data = confirmed_vectors(settings, embedder.model_id)
        return evaluate_vectors(
            data.vectors,
            data.individuals,
            data.sightings,
            threshold,
            orders=orders,
            seed=seed,
            target_fmr=max_false_merge,
            model_id=embedder.model_id,
            source="confirmed sightings in the database",
        )
    except (NoLabelledDataError, ValueError) as exc:
        _fail(str(exc))


def _print_evaluation(out: dict[str, Any]) -> None:
    o = out["openset"]
    console.print(
        f"model {out['model_id']} on {out['n_images']} images of {out['n_individuals']} individuals\n"
        f"closed set: top-1 {out['top1']:.1%}  top-5 {out['top5']:.1%}  mAP {out['mAP']:.1%} "
        f"({out['n_queries']} queries, {out['n_excluded']} without another sighting)\n"
        + (
            f"open set at threshold {out['threshold']:.2f}"
            if out["threshold"] is not None
            else "open set with no threshold (no automatic merges)"
        )
        + f": BCubed P {o['bcubed_precision']:.1%} "
        f"R {o['bcubed_recall']:.1%} F1 {o['bcubed_f1']:.1%}, false merges {o['false_merge_rate']:.1%}, "
        f"{o['profiles_per_individual']:.2f} profiles per individual",
        soft_wrap=True,
    )


def _review_options(settings: Settings, model: str | None, k: int) -> Any:
    """The review queue as the API runs it: with the model's stored probability when it has one."""
    from deerid.evaluation.review import ReviewOptions
    from deerid.registry.calibration import load_probability

    fitted = load_probability(settings, _embedder(settings, model).model_id)
    if fitted is None:
        return ReviewOptions(k=k)
    return ReviewOptions(k=k, probability=lambda scores: fitted(scores))


def _print_review(review: dict[str, Any], plot: Path) -> None:
    to = review["decisions_per_image_to_f1"]
    at = review["f1_at_decisions_per_image"]

    def dec(x: float | None) -> str:
        return "not reached" if x is None else f"{x:.2f}"

    console.print(
        f"review (top-{review['k']} screen, oracle): decisions per image to F1 0.8 {dec(to['0.8'])}, "
        f"0.9 {dec(to['0.9'])}, 0.95 {dec(to['0.95'])}; F1 after 0.25/0.5/1 per image "
        f"{at['0.25']:.1%} / {at['0.5']:.1%} / {at['1']:.1%} ({review['decisions']} decisions, "
        f"{review['matches']} merges; start F1 {review['start_f1']:.1%})\nreview plot: {plot}",
        soft_wrap=True,
    )


@app.command("eval")
def eval_(
    directory: Annotated[Path, typer.Argument(help="DIR/<individual>/<sighting>_<anything>.jpg")],
    model: Annotated[str | None, typer.Option(help="Model to evaluate (default: the active one).")] = None,
    report: Annotated[Path | None, typer.Option(help="Folder for report.md and plots.")] = None,
    orders: Annotated[int, typer.Option(help="Seeded arrival orders for the open-set stream.")] = 3,
    seed: Annotated[int, typer.Option()] = 0,
    review: Annotated[
        bool, typer.Option("--review", help="Also run the review queue with an oracle: decisions per image.")
    ] = False,
    k: Annotated[int, typer.Option(min=1, max=9, help="Candidates per review screen.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line of figures.")] = False,
) -> None:
    """Closed-set (top-1, top-5, mAP) and open-set (BCubed, false merges) figures, with plots;
    with --review, how many review decisions per image bring the profiles to F1 0.8/0.9/0.95."""
    from deerid.evaluation.calibration import DEFAULT_TARGET_FMR
    from deerid.evaluation.report import write_report

    settings = _settings()
    options = _review_options(settings, model, k) if review else None
    result = _evaluate(settings, directory, False, model, DEFAULT_TARGET_FMR, orders, seed, as_json, options)
    out = result.as_dict()
    path = write_report(_report_dir(settings, "eval", out["model_id"], report), result)
    out["report"] = str(path)
    _print_evaluation(out)
    if result.review is not None:
        from deerid.evaluation.review import plot_review

        plot_review([(f"top-{k} screen", result.review)], path.parent / "review.png")
        _print_review(out["review"], path.parent / "review.png")
    console.print(f"report: {path}", soft_wrap=True)
    if as_json:
        print(json.dumps(out))


@app.command()
def calibrate(
    directory: Annotated[Path | None, typer.Argument(help="A labelled folder, or use --from-db.")] = None,
    from_db: Annotated[bool, typer.Option("--from-db", help="Use sightings people confirmed.")] = False,
    max_false_merge: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Target false-merge rate of automatic merges.")
    ] = 0.02,
    model: Annotated[str | None, typer.Option(help="Model to calibrate (default: the active one).")] = None,
    save: Annotated[bool, typer.Option("--save/--dry-run", help="Store the calibration.")] = True,
    report: Annotated[Path | None, typer.Option(help="Folder for report.md and plots.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fit the same-animal probability and the automatic-merge threshold: the lowest score at
    which measured false merges stay within the target (default 2 %); below it, people decide."""
    from deerid.evaluation.calibration import fmt_threshold, stored_record
    from deerid.evaluation.pairs import probability_table
    from deerid.evaluation.report import write_report
    from deerid.pipeline.labelled import NoLabelledDataError, fit_from_db
    from deerid.registry import calibration

    settings = _settings()
    result = _evaluate(settings, directory, from_db, model, max_false_merge, 3, 0, as_json)
    cal = result.calibration
    probability = result.probability
    if from_db:
        try:  # what people decided, rejected pairs included (the folder fit has no rejections)
            probability = fit_from_db(settings, result.model_id)
        except NoLabelledDataError as exc:
            _fail(str(exc))
    out = result.as_dict()
    path = write_report(_report_dir(settings, "calibrate", out["model_id"], report), result)
    record = stored_record(
        cal,
        probability,
        data=str(directory) if directory is not None else "confirmed sightings in the database",
        n_images=out["n_images"],
        n_individuals=out["n_individuals"],
        report=str(path),
    )
    if save:
        calibration.save(settings, out["model_id"], record)
    at = probability_table(probability) if probability is not None else {}
    chosen = (
        f"automatic merges from score {fmt_threshold(cal.threshold)} for model {out['model_id']}: "
        f"{cal.reason}"
        if cal.met
        else f"no threshold keeps false merges ≤ {max_false_merge:.0%} for model {out['model_id']}: "
        f"{cal.reason}\nso this model makes no automatic merges; every new track waits for review"
    )
    console.print(
        chosen
        + "\nsame-animal probability at score "
        + ", ".join(f"{k}: {v:.2f}" for k, v in at.items())
        + (
            "\nstored: `deerid config` shows it in force unless REID_THRESHOLD is set"
            if save
            else "\nnot stored (--dry-run)"
        )
        + f"\nreport: {path}",
        soft_wrap=True,
    )
    if as_json:
        print(json.dumps({**record, "stored": save, "model_id": out["model_id"], "evaluation": out}))


@app.command()
def train(
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

    from deerid.embed.backbones import available_backbones
    from deerid.evaluation.retrieval import load_identity_folder
    from deerid.pipeline.labelled import NoLabelledDataError, export_confirmed_crops
    from deerid.training.data import TrainingDataError
    from deerid.training.loop import TrainConfig
    from deerid.training.loop import train as run_train
    from deerid.training.progress import progress_line

    settings = _settings()
    if not out or "/" in out or out.startswith(".") or out in available_backbones():
        _fail("give --out NAME: a plain folder name for the new model, not a backbone name")
    if (directory is None) == (not from_db):
        _fail("give a labelled folder (DIR/<individual>/<sighting>_<anything>.jpg) or --from-db, not both")
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
        try:
            if directory is not None:
                if not directory.is_dir():
                    _fail(f"folder not found: {directory}")
                samples = load_identity_folder(directory)
            else:
                samples, problems = export_confirmed_crops(settings, Path(scratch))
                for problem in problems:
                    err.print(f"[yellow]skipped:[/] {problem}", soft_wrap=True)
            err.print(
                f"training {config.backbone} @ {config.input_size} on {len(samples)} images", soft_wrap=True
            )
            model = run_train(samples, config, settings.models_dir / out, progress=report_progress)
        except (TrainingDataError, NoLabelledDataError) as exc:
            _fail(str(exc))
    calibrated = _store_trained_calibration(settings, model.model_id, model.info)
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


@app.command()
def adapt(
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

    from deerid.embed.backbones import available_backbones
    from deerid.training.adapt import (
        AdaptConfig,
        AdaptDataError,
        adapt_progress_line,
        check_gallery,
        finished,
        write_info,
    )
    from deerid.training.adapt import adapt as run_adapt
    from deerid.training.gallery import export_crops, gallery_boxes, source_key

    settings = _settings()
    if not out or "/" in out or out.startswith(".") or out in available_backbones():
        _fail("give --out NAME: a plain folder name for the new model, not a backbone name")
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

    with _user_errors():
        boxes = gallery_boxes(settings)
    key = source_key(boxes, config.key_json())
    model = finished(model_dir, key, field="source_key")
    if model is not None:
        report_progress({"phase": "done", "reused": True, "model_id": model.model_id})
    else:
        try:
            check_gallery(
                [b.encounter for b in boxes], min_crops=config.min_crops, min_multi_view=config.min_multi_view
            )
            err.print(
                f"adapting {config.train.backbone} @ {config.train.input_size} "
                f"on {len(boxes)} stored deer crops",
                soft_wrap=True,
            )
            crops, problems = export_crops(
                settings,
                boxes,
                model_dir / "crops",
                config.train.input_size,
                progress=lambda done, total: report_progress(
                    {"phase": "crops", "done": done, "total": total}
                ),
            )
            for problem in problems:
                err.print(f"[yellow]skipped:[/] {problem}", soft_wrap=True)
            model = run_adapt(crops, config, model_dir, progress=report_progress)
        except AdaptDataError as exc:
            _fail(str(exc))
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


def _store_trained_calibration(settings: Settings, model_id: str, info: dict[str, Any]) -> bool:
    """Store the calibration `deerid train` measured on its held-out individuals; True if there was one."""
    from deerid.registry import calibration

    record = info.get("calibration")
    if not isinstance(record, dict):
        return False
    calibration.save(settings, model_id, record)
    return True


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Pretrained backbones and trained models; the active one is marked."""
    from deerid.registry.models import active_model_name, list_models

    settings = _settings()
    active, _ = active_model_name(settings)
    entries = list_models(settings)
    rows = [
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
    model: Annotated[str, typer.Argument(help="Backbone name, trained model name or model id.")],
) -> None:
    """Make MODEL the one that embeds new detections (then run `deerid reembed`)."""
    from deerid.pipeline.reembed import stale_detections
    from deerid.registry.models import UnknownModelError, active_embedder, use_model

    settings = _settings()
    try:
        entry = use_model(settings, model)
    except UnknownModelError as exc:
        _fail(str(exc))
    if settings.model:
        err.print(f"[yellow]note:[/] DEERID_MODEL={settings.model} is set and overrides this choice")
    with _user_errors():
        embedder = active_embedder(settings)
        stale = len(stale_detections(settings, embedder.model_id))
    console.print(f"active model: {entry.name} ({embedder.model_id})")
    console.print(_calibration_in_force(settings, embedder.model_id, entry.info), soft_wrap=True)
    if stale:
        console.print(
            f"{stale} stored detections were embedded by another model and are not compared with new ones: "
            "run [bold]deerid reembed[/]",
            soft_wrap=True,
        )


def _calibration_in_force(settings: Settings, model_id: str, info: dict[str, Any]) -> str:
    """Which calibration decides for `model_id` now.

    A trained model carries the calibration of its own training run: it is stored here
    if none is (a model copied from another machine, or trained through the Python API)."""
    from deerid.registry import calibration

    note = ""
    if calibration.load(settings, model_id) is None and _store_trained_calibration(settings, model_id, info):
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


@app.command()
def reembed(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Re-embed stored deer detections with the active model (assignments are kept)."""
    from deerid.pipeline.reembed import reembed as run_reembed

    settings = _settings()
    with _user_errors(), _bar(disable=as_json) as progress:
        out = run_reembed(settings, progress=_progress_factory(progress))
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


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port, 1-65535.")] = 8000,
    behind_proxy: Annotated[
        bool,
        typer.Option(
            "--behind-proxy",
            help="Reached through a reverse proxy: no request counts as local, every read needs the token.",
        ),
    ] = False,
) -> None:
    """Serve the dashboard and the JSON API (docs at /docs)."""
    import uvicorn

    from deerid.api.deps import TOKEN_FILE, ensure_api_token
    from deerid.api.main import create_app

    settings = _settings()
    if behind_proxy:
        settings = settings.model_copy(update={"behind_proxy": True})
    with _user_errors():
        # Before create_app, which would make the token silently: a new token is shown once.
        token, generated = ensure_api_token(settings)
        web = create_app(settings)
    if generated:
        how = f"Authorization: Bearer {token}  (new token, kept in {settings.data_dir / TOKEN_FILE})"
    elif settings.api_token:
        how = "Authorization: Bearer $DEERID_API_TOKEN"
    else:
        how = f"Authorization: Bearer <the token in {settings.data_dir / TOKEN_FILE}>"
    console.print(
        f"deerid dashboard on http://{host}:{port}/  (API docs: /docs)\nchanges need: {how}"
        + ("\nbehind a proxy: every read needs the token too" if settings.behind_proxy else ""),
        soft_wrap=True,
        markup=False,
    )
    uvicorn.run(web, host=host, port=port, log_level="warning")


@app.command()
def backup(
    out: Annotated[Path, typer.Argument(help="Backup file to write (one .tar file).")],
) -> None:
    """Back up the database, models, calibrations and the API token into one file."""
    from deerid.db.backup import BackupError
    from deerid.db.backup import backup as run_backup

    with _user_errors():
        try:
            result = run_backup(_settings(), out)
        except BackupError as exc:
            _fail(str(exc))
    m = result.manifest
    console.print(
        f"backed up {m['counts'].get('images', 0)} photos, {m['counts'].get('detections', 0)} detections, "
        f"{m['counts'].get('deer', 0)} deer and {len(m['files'])} files to {escape(str(result.path))}"
    )
    for skipped in result.skipped:
        console.print(f"skipped {escape(skipped)}")


@app.command()
def restore(
    backup_file: Annotated[Path, typer.Argument(help="Backup file made by `deerid backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a database that holds data.")] = False,
) -> None:
    """Restore a backup into the database and data dir (refuses a non-empty database without --force)."""
    from deerid.db.backup import BackupError
    from deerid.db.backup import restore as run_restore

    with _user_errors():
        try:
            result = run_restore(_settings(), backup_file, force=force)
        except BackupError as exc:
            _fail(str(exc))
    c = result.counts
    console.print(
        f"restored {c.get('images', 0)} photos, {c.get('detections', 0)} detections, {c.get('deer', 0)} deer "
        f"and {len(result.files)} files (schema {result.schema_revision}, "
        f"backed up {result.manifest.get('created_at')})"
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema (also done automatically on first use)."""
    from deerid.db.session import describe_url, get_engine

    with _user_errors():
        engine = get_engine(_settings())
    console.print(f"schema up to date at {describe_url(engine.url.render_as_string(False))}")


@db_app.command("reindex")
def db_reindex() -> None:
    """Rebuild the HNSW vector indexes (after a large import or a re-embed)."""
    import sqlalchemy as sa

    from deerid.db.session import get_engine

    with _user_errors(), get_engine(_settings()).begin() as conn:
        # At the default maintenance_work_mem a 100k-row HNSW build takes ten times longer.
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '1GB'"))
        conn.execute(sa.text("REINDEX INDEX ix_detections_embedding_hnsw"))
        conn.execute(sa.text("REINDEX INDEX ix_deer_feature_vector_hnsw"))
    console.print("vector indexes rebuilt")


_TIMEZONE_HELP = "The cameras' timezone (IANA name, e.g. America/Chicago); unset: UTC, flagged as an issue."


def _export_options(
    timezone: str | None, title: str | None = None, contributors: list[str] | None = None
) -> tuple[Settings, Any]:
    """The settings and the export's options (Any: deerid.export is imported only when used)."""
    from deerid.export.common import ExportOptions, calibrated_probability, parse_timezone

    settings = _settings()
    return settings, ExportOptions(
        timezone=parse_timezone(timezone),
        probability=calibrated_probability(settings),
        title=title or "deerid export",
        contributors=tuple(contributors or ()),
    )


@export_app.command("camtrap-dp")
def export_camtrap_dp(
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
    from deerid.db.session import session_scope
    from deerid.export.camtrap import write_package
    from deerid.export.common import ExportError

    with _user_errors():
        try:
            settings, options = _export_options(timezone, title, contributor)
            with session_scope(settings) as session:
                summary = write_package(session, out, options, force=force)
        except ExportError as exc:
            _fail(str(exc))
    if as_json:
        print(json.dumps({"path": str(out), **summary.as_dict()}))
        return
    console.print(
        f"wrote {summary.deployments} deployments, {summary.media} photos, {summary.observations} "
        f"observations and {summary.individuals} individuals to {escape(str(out))}"
    )
    for warning in summary.warnings:
        err.print(f"[yellow]warning:[/] {escape(_printable(warning))}", soft_wrap=True)


@export_app.command("csv")
def export_csv(
    out: Annotated[Path, typer.Argument(help="CSV file to write: one row per sighting.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
    timezone: Annotated[str | None, typer.Option("--timezone", help=_TIMEZONE_HELP)] = None,
) -> None:
    """Write every sighting (deer box) as one CSV row: photo, time, camera, box, class, deer, how assigned."""
    from deerid.db.session import session_scope
    from deerid.export.common import ExportError
    from deerid.export.csv import write_sightings_csv

    with _user_errors():
        try:
            settings, options = _export_options(timezone)
            with session_scope(settings) as session:
                rows = write_sightings_csv(session, out, options, force=force)
        except ExportError as exc:
            _fail(str(exc))
    console.print(f"wrote {rows} sightings to {escape(str(out))}")


@deployments_app.command("import")
def deployments_import(
    csv_file: Annotated[
        Path,
        typer.Argument(
            help="CSV: camera, start, end, latitude, longitude[, location, coordinate_uncertainty, notes]."
        ),
    ],
) -> None:
    """Add deployments from a CSV: every row, or none (each problem is listed with its line)."""
    from deerid.db.session import session_scope
    from deerid.store.deployments import DeploymentError, import_rows, read_csv

    with _user_errors():
        try:
            rows = read_csv(csv_file)
            with session_scope(_settings()) as session:
                result = import_rows(session, rows)
        except DeploymentError as exc:
            _fail(str(exc))
    console.print(f"imported {len(result.added)} deployments from {escape(str(csv_file))}")


@deployments_app.command("list")
def deployments_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every deployment: camera, dates, coordinates and the photos it holds."""
    from deerid.db.session import session_scope
    from deerid.store.deployments import list_deployments

    with _user_errors(), session_scope(_settings()) as session:
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
            *(
                escape(_printable(r[k])) if r[k] is not None else "—"
                for k in ("id", "camera", "start", "end")
            ),
            str(r["latitude"]),
            str(r["longitude"]),
            escape(_printable(r["location"] or "")),
            str(r["photos"]),
        )
    console.print(table)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
