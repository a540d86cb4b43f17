"""Ingest a folder of photos with their MegaDetector output: store, crop, embed, match.

Photos and boxes are committed photo by photo before any re-identification,
so an interrupted run loses nothing: the boxes wait as `pending` and the next
ingest of the same folder (or `deerid reid --all`) finishes them. Content
hashes make a second run over the same photos a no-op.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.core.files import sha256_file
from deerid.db.tables import Detection, DetectionStatus, Image
from deerid.dispatch import REIDENTIFY_DEER
from deerid.domain.classes import Kind, sex_for_class
from deerid.domain.sites import check_site_name
from deerid.ingest.crop import pixel_box
from deerid.ingest.megadetector import MDBatch, MDDetection, MDImage, load_detections
from deerid.ingest.paths import match_entries
from deerid.ingest.photos import EXIF_SOURCES, PhotoMeta, PhotoReadError, read_photo_meta, with_strip_time
from deerid.ingest.scan import PhotoFolderMissing, iter_photos
from deerid.ingest.strip import StripReading, TesseractMissing, read_strip, settle_names, tesseract_path
from deerid.reid.service import Outcome
from deerid.store import detections as det_store
from deerid.store import encounters as enc_store
from deerid.store import photos as photo_store

Progress = Callable[[str, int], Callable[[int], None]]
"""progress(label, total) -> advance(n): how the CLI shows a bar without the pipeline knowing how."""


@dataclass
class IngestReport:
    photos: int = 0  # photos found under the folder
    photos_new: int = 0
    photos_existing: int = 0  # same content already stored (this run or before)
    photos_relocated: int = 0  # stored photos found again under another path: their location was updated
    photos_same_pixels: int = 0  # same image data as a stored photo, only metadata differs: not stored again
    detections: int = 0  # boxes for these photos at or above the detector threshold
    detections_new: int = 0
    detections_changed: int = (
        0  # stored boxes replaced by this file's (corrected) box; old one kept in history
    )
    below_threshold: int = 0
    deer_detections: int = 0  # deer boxes among the new detections
    too_small: int = 0
    not_deer: int = 0
    reidentified: int = 0  # deer boxes given a deer in this run
    matched: int = 0
    new_deer: int = 0
    failed: int = 0
    queued: int = 0  # sent to a worker instead of being done here
    cameras: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "photos"}] of these photos
    events: int = 0  # events these photos belong to (docs/encounters.md)
    tracks: int = 0  # tracks (one animal through an event) in those events
    auto_joined: int = 0  # tracks that joined a known deer automatically
    awaiting_review: int = 0  # tracks that founded a new (provisional) deer: they wait for review
    store_seconds: float = 0.0  # hashing, EXIF, storing photos and boxes
    embed_seconds: float = 0.0  # decoding, cropping, embedding
    match_seconds: float = 0.0  # nearest-neighbour search, decision, profile update
    skipped: list[dict[str, str]] = field(default_factory=list)
    # Info strips (docs/strip.md): how many were read, how many could not be, the photos whose
    # EXIF and strip disagree beyond DEERID_STRIP_TOLERANCE, the photos whose time came from the
    # strip or, the strip failing, from the file, and the OCR time.
    strips_read: int = 0
    strips_unreadable: int = 0
    strip_disagreements: list[dict[str, Any]] = field(default_factory=list)
    time_from_strip: int = 0
    time_fallbacks: list[dict[str, str]] = field(default_factory=list)
    strip_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def skip(self, file: str, reason: str) -> None:
        self.skipped.append({"file": file, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _noop_progress(_label: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


def camera_name(
    meta: PhotoMeta,
    override: str | None,
    *,
    relpath: str | None = None,
    from_folder: bool = False,
    root_name: str | None = None,
    strip_name: str | None = None,
) -> str | None:
    """Which camera took a photo, in this order: `--camera NAME`; with
    `--camera-from-strip` the name printed on the photo's info strip (`strip_name`,
    when one was read); with `--camera-from-folder` the photo's first folder under
    the ingest root (one folder per camera, the usual SD-card layout); else EXIF make and model, plus
    the body serial number when the camera writes one (cameras of one model look
    alike otherwise); else, for a camera that writes neither (many do not), the
    photo's folder: without a camera its photos could never form events."""
    if override:
        return override
    if strip_name:
        return strip_name
    if from_folder and relpath is not None:
        parts: Sequence[str] = Path(relpath).parts
        if len(parts) > 1:
            return parts[0]
    parts = [p for p in (meta.camera_make, meta.camera_model) if p]
    if len(parts) == 2 and parts[1].upper().startswith(parts[0].upper()):
        parts = parts[1:]  # "Canon" + "Canon EOS 5D" reads better as the model alone
    name = " ".join(parts)
    if name and meta.camera_serial:
        name = f"{name} #{meta.camera_serial}"
    if not name and relpath is not None:
        folder = Path(relpath).parent
        name = (
            f"folder {folder.as_posix() if folder.parts else root_name}" if folder.parts or root_name else ""
        )
    return name or None


def _new_detections(
    md_image: MDImage | None, meta: PhotoMeta, settings: Settings, report: IngestReport
) -> list[det_store.NewDetection]:
    if md_image is None:
        return []
    rows: list[det_store.NewDetection] = []
    for det in md_image.detections:
        if det.conf < settings.detection_threshold:
            report.below_threshold += 1
            continue
        report.detections += 1
        rows.append(_new_detection(det, meta, settings.min_crop_size))
    return rows


def _new_detection(det: MDDetection, meta: PhotoMeta, min_size: int) -> det_store.NewDetection:
    """How one detector box is stored: a deer waiting for re-ID, too small, or not a deer."""
    sex = None
    status = DetectionStatus.NOT_DEER
    error = None
    # Non-deer keep their species when the file has it (`label`, as in the feeder annotations).
    label = det.extra.get("label") if isinstance(det.extra.get("label"), str) else det.class_label
    if det.kind is Kind.DEER and det.deer_class is not None:
        x0, y0, x1, y1 = pixel_box(det.bbox, meta.width, meta.height)
        small = min(x1 - x0, y1 - y0) < min_size
        sex = sex_for_class(det.deer_class)
        label = det.deer_class.value
        status = DetectionStatus.TOO_SMALL if small else DetectionStatus.PENDING
        error = f"box {x1 - x0}x{y1 - y0} px is under MIN_CROP_SIZE={min_size}" if small else None
    return det_store.NewDetection(
        source_index=det.index,
        bbox=det.bbox,
        detector_conf=det.conf,
        category=det.category,
        class_label=label,
        class_conf=det.class_conf,
        sex=sex,
        status=status,
        error=error,
    )


def _index_batch(batch: MDBatch | None, relpaths: list[str], report: IngestReport) -> dict[str, MDImage]:
    """Detections by photo relpath; problems in the file go to the report."""
    if batch is None:
        return {}
    for problem in batch.problems:
        report.skip(problem.file, problem.reason)
    matching = match_entries([img.file for img in batch.images], relpaths)
    by_photo: dict[str, MDImage] = {}
    for img in batch.images:
        photo = matching.matched.get(img.file)
        if photo is None:
            report.skip(img.file, matching.problems[img.file])
            continue
        if img.failure:
            report.skip(img.file, f"the detector failed on this photo: {img.failure}")
        by_photo[photo] = img
    return by_photo


def ingest(
    app: Deerid,
    photos_dir: Path,
    detections: Path | None = None,
    *,
    camera: str | None = None,
    camera_from_folder: bool = False,
    camera_from_strip: bool = False,
    site: str | None = None,
    reidentify: bool = True,
    progress: Progress = _noop_progress,
) -> IngestReport:
    """Store the photos under `photos_dir` with their detections, then re-identify.

    `camera_from_strip` names each photo's camera after its info strip (docs/strip.md) and
    needs the `tesseract` program: without it `TesseractMissing` is raised before anything is
    stored. Without the option, a missing `tesseract` only means no strip is read (a warning)."""
    started = time.perf_counter()
    settings = app.settings
    if camera_from_strip and not camera and tesseract_path() is None:
        raise TesseractMissing()
    site = None if site is None else check_site_name(site)
    report = IngestReport()
    photos_dir = Path(photos_dir)
    if not photos_dir.is_dir():
        raise PhotoFolderMissing(f"photo folder not found: {photos_dir}")
    batch = load_detections(detections) if detections is not None else None

    photos = list(iter_photos(photos_dir, on_skip=report.skip))
    report.photos = len(photos)
    by_photo = _index_batch(batch, [rel for _, rel in photos], report)

    strips = _read_strips(
        settings, photos, report, progress, camera_from_strip=camera_from_strip and not camera
    )

    factory = app.sessions
    image_ids: list[int] = []
    time_problems: dict[int, str] = {}
    advance = progress("photos", len(photos))
    for path, rel in photos:
        try:
            digest = sha256_file(path)
            meta = read_photo_meta(path)
            st = path.stat()
            pixels = pixel_digest(path, meta.orientation)
        except (OSError, PhotoReadError) as exc:
            report.skip(rel, str(exc))
            advance(1)
            continue
        strip = strips.get(rel)
        meta = _apply_strip(meta, strip, st.st_mtime, rel, report)
        strip_columns = _strip_columns(meta, strip, settings.strip_tolerance, rel, report)
        rows = _new_detections(by_photo.get(rel), meta, settings, report)
        stored_at = str(path.resolve())
        with factory() as session, session.begin():
            if pixels is not None and photo_store.image_by_sha256(session, digest) is None:
                twin = photo_store.image_by_pixels(session, pixels)
                if twin is not None:  # an EXIF-edited copy: counting it would double its sightings (F17)
                    report.photos_same_pixels += 1
                    report.skip(
                        rel,
                        f"same image data as stored photo {twin[0]} ({twin[1]}), only its metadata "
                        "differs: not stored again",
                    )
                    advance(1)
                    continue
            name = camera_name(
                meta,
                camera,
                relpath=rel,
                from_folder=camera_from_folder,
                root_name=photos_dir.resolve().name,
                strip_name=strip.camera_name if camera_from_strip and strip is not None else None,
            )
            camera_id = (
                photo_store.camera_id_for(session, name, meta.camera_make, meta.camera_model, site=site)
                if name
                else None
            )
            image_id, created = photo_store.add_image(
                session,
                path=stored_at,
                sha256=digest,
                camera_id=camera_id,
                captured_at=meta.captured_at,
                captured_at_source=meta.captured_at_source,
                width=meta.width,
                height=meta.height,
                file_size=st.st_size,
                file_mtime=st.st_mtime,
                pixel_sha256=pixels,
            )
            if strip_columns:
                session.execute(sa.update(Image).where(Image.id == image_id).values(**strip_columns))
            if not created and photo_store.relocate_image(
                session, image_id, stored_at, st.st_size, st.st_mtime, pixels
            ):
                report.photos_relocated += 1  # found again elsewhere (F13)
            # Other photos stored at this path are no longer there: it holds this one now (F14).
            photo_store.mark_replaced(session, stored_at, image_id)
            changes = det_store.upsert_detections(session, image_id, rows)
            new_ids = changes.new_ids
        if changes.changed_ids:
            report.detections_changed += len(changes.changed_ids)
            _forget_crops(settings, changes.changed_ids)
        image_ids.append(image_id)
        if meta.time_problem:
            time_problems[image_id] = meta.time_problem
        report.photos_new += int(created)
        report.photos_existing += int(not created)
        report.detections_new += len(new_ids)
        if new_ids:
            _count_new(factory, new_ids, report)
        advance(1)

    # Events once every photo is stored, so a photo bridging two visits sees both.
    with factory() as session, session.begin():
        enc_store.assign_events(session, image_ids, settings.encounter_gap, time_problems)
    report.store_seconds = round(time.perf_counter() - started, 3)
    if reidentify:
        _reidentify(app, image_ids, report, progress)
    with factory() as session:
        found = enc_store.counts_for_images(session, image_ids)
    report.cameras, report.events, report.tracks = found.cameras, found.events, found.tracks
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _read_strips(
    settings: Settings,
    photos: list[tuple[Path, str]],
    report: IngestReport,
    progress: Progress,
    *,
    camera_from_strip: bool,
) -> dict[str, StripReading]:
    """Info strips of the photos that need one read, by relpath (docs/strip.md).

    OCR costs ~0.2 s of CPU a photo, more than everything else an ingest does but embedding, so it is
    kept off the path where EXIF is enough: every photo with no EXIF time is read, and with
    `camera_from_strip` every photo; else the first DEERID_STRIP_SAMPLE photos of each camera
    (EXIF make/model) in each folder are read to check EXIF, and all of that camera and folder
    once one of them disagrees. Camera names are then settled across each EXIF camera's photos
    (`settle_names`): a thumbnail's strip misreads what a full-size photo's strip shows clearly."""
    if tesseract_path() is None:
        report.warnings.append(f"{TesseractMissing()}; info strips not read")
        return {}
    started = time.perf_counter()
    readings: dict[str, StripReading] = {}
    groups: dict[str, str] = {}
    sampled: dict[tuple[str, str], int] = {}
    suspect: set[tuple[str, str]] = set()
    advance = progress("info strips", len(photos))
    for path, rel in photos:
        try:
            meta = read_photo_meta(path, verify=False)
        except (OSError, PhotoReadError):
            advance(1)
            continue  # the main pass reports it
        group = camera_name(meta, None) or ""
        key = (Path(rel).parent.as_posix(), group)
        no_exif_time = meta.captured_at_source not in EXIF_SOURCES
        if not (
            camera_from_strip or no_exif_time or key in suspect or sampled.get(key, 0) < settings.strip_sample
        ):
            advance(1)
            continue
        reading = read_strip(path)
        readings[rel] = reading
        groups[rel] = group
        if not no_exif_time:
            sampled[key] = sampled.get(key, 0) + 1
            offset = strip_offset(meta.captured_at, reading)
            if offset is not None and abs(offset) > settings.strip_tolerance:
                suspect.add(key)
        advance(1)
    if len(readings) == 0:
        return readings
    rels = list(readings)
    names = settle_names([(groups[r], readings[r].camera_name, readings[r].text_height_px) for r in rels])
    for rel, name in zip(rels, names, strict=True):
        if name != readings[rel].camera_name:
            readings[rel] = replace(readings[rel], camera_name=name)
    report.strip_seconds = round(time.perf_counter() - started, 3)
    return readings


def strip_offset(exif_time: datetime | None, reading: StripReading | None) -> float | None:
    """EXIF minus strip time in seconds, or None when either is missing. A strip without seconds
    (Moultrie prints minutes) is compared with EXIF truncated to the minute."""
    if exif_time is None or reading is None or reading.captured_at is None:
        return None
    exif = exif_time if reading.has_seconds else exif_time.replace(second=0, microsecond=0)
    return (exif - reading.captured_at).total_seconds()


def _apply_strip(
    meta: PhotoMeta, strip: StripReading | None, mtime: float, rel: str, report: IngestReport
) -> PhotoMeta:
    """The photo's time from its strip where EXIF has none; the fallback said when it fails."""
    if meta.captured_at_source in EXIF_SOURCES:
        return meta
    if strip is not None and strip.captured_at is not None:
        report.time_from_strip += 1
        return with_strip_time(meta, strip.captured_at, _file_time(mtime))
    why = "strip not read" if strip is None else f"strip {strip.status}: {strip.problem or 'nothing read'}"
    report.time_fallbacks.append(
        {"file": rel, "source": meta.captured_at_source, "reason": f"no EXIF time and {why}"}
    )
    return meta


def _file_time(mtime: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(mtime)
    except (OverflowError, OSError, ValueError):
        return None


def _strip_columns(
    meta: PhotoMeta, strip: StripReading | None, tolerance: float, rel: str, report: IngestReport
) -> dict[str, Any]:
    """What is stored of a photo's strip, counting it in the report."""
    if strip is None:
        return {}
    if strip.ok:
        report.strips_read += 1
    else:
        report.strips_unreadable += 1
    exif_time = meta.captured_at if meta.captured_at_source in EXIF_SOURCES else None
    offset = strip_offset(exif_time, strip)
    disagrees = None if offset is None else abs(offset) > tolerance
    if disagrees:
        report.strip_disagreements.append(
            {
                "file": rel,
                "exif": exif_time.isoformat() if exif_time else None,
                "strip": strip.captured_at.isoformat() if strip.captured_at else None,
                "offset_s": offset,
            }
        )
    return {
        "strip_status": strip.status,
        "strip_time": strip.captured_at,
        "strip_camera": strip.camera_name,
        "strip_temperature_f": strip.temperature_f,
        "strip_offset_s": offset,
        "strip_disagrees": disagrees,
    }


def _forget_crops(settings: Settings, detection_ids: list[int]) -> None:
    """Cached crops of replaced boxes show the old box: drop them (they are made again on request)."""
    for det_id in detection_ids:
        for name in (f"{det_id}.jpg", f"{det_id}-full.jpg"):
            (settings.crops_dir / name).unlink(missing_ok=True)


def pixel_digest(path: Path, orientation: int | None = None) -> str | None:
    """SHA-256 of a photo's image data without its metadata, or None for a format not handled.

    JPEG: every segment but APPn (EXIF, XMP, ...) and COM, then the scan data to the end.
    PNG: the IHDR, PLTE, tRNS and IDAT chunks. A copy whose EXIF was edited (a date moved)
    has the same digest as its original (F17); the EXIF orientation is part of the digest,
    since a rotated copy is another picture to the detector."""
    digest = hashlib.sha256(f"orientation={orientation or 1};".encode())
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head[:2] == b"\xff\xd8":
            handle.seek(2)
            while True:
                marker = handle.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    return None
                kind = marker[1]
                if kind == 0xFF:  # fill byte
                    handle.seek(-1, 1)
                    continue
                if kind == 0xDA:  # start of scan: the rest is image data
                    digest.update(marker)
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
                    return digest.hexdigest()
                if 0xD0 <= kind <= 0xD7 or kind == 0x01:
                    digest.update(marker)
                    continue
                length_bytes = handle.read(2)
                if len(length_bytes) < 2:
                    return None
                length = int.from_bytes(length_bytes, "big")
                body = handle.read(length - 2)
                if 0xE0 <= kind <= 0xEF or kind == 0xFE:
                    continue
                digest.update(marker + length_bytes + body)
        if head == b"\x89PNG\r\n\x1a\n":
            while True:
                header = handle.read(8)
                if len(header) < 8:
                    return digest.hexdigest()
                length = int.from_bytes(header[:4], "big")
                chunk_type = header[4:]
                body = handle.read(length + 4)  # data and CRC
                if chunk_type in (b"IHDR", b"PLTE", b"tRNS", b"IDAT"):
                    digest.update(header + body)
                if chunk_type == b"IEND":
                    return digest.hexdigest()
    return None


def _count_new(factory: Any, new_ids: list[int], report: IngestReport) -> None:
    statuses: list[Any] = []
    with factory() as session:
        for start in range(0, len(new_ids), 10_000):
            chunk = new_ids[start : start + 10_000]
            statuses += session.execute(
                sa.select(Detection.status, Detection.sex).where(Detection.id.in_(chunk))
            ).all()
    for status, sex in statuses:
        if sex is not None:
            report.deer_detections += 1
        if status is DetectionStatus.TOO_SMALL:
            report.too_small += 1
        elif status is DetectionStatus.NOT_DEER:
            report.not_deer += 1


def _reidentify(app: Deerid, image_ids: list[int], report: IngestReport, progress: Progress) -> None:
    # Every pending box of these photos, not only this run's: finishes an interrupted earlier run.
    with app.sessions() as session:
        pending = list(
            session.execute(
                sa.select(Detection.id)
                .join(Image, Image.id == Detection.image_id)
                .where(
                    Detection.image_id.in_(image_ids),
                    Detection.status == DetectionStatus.PENDING,
                    Detection.deer_id.is_(None),
                )
                # capture order, as an in-process run assigns them, so a worker gives the same deer
                .order_by(Image.captured_at.nulls_last(), Detection.id)
            ).scalars()
        )
    if not pending:
        return
    queue = app.queue
    if queue is not None:
        for det_id in pending:
            queue.send(REIDENTIFY_DEER, det_id)
        report.queued = len(pending)
        return

    from deerid.pipeline.reid import reidentify_ids

    summary = reidentify_ids(app, pending, progress=progress("re-identifying", len(pending)))
    report.matched = summary.count(Outcome.MATCHED)
    report.new_deer = summary.count(Outcome.NEW_DEER)
    # Each track is decided once, by its first box; the rest follow it.
    report.auto_joined = sum(1 for r in summary.results if r.outcome is Outcome.MATCHED and not r.via_track)
    report.awaiting_review = report.new_deer
    report.failed = summary.count(Outcome.FAILED)
    report.embed_seconds = round(summary.embed_seconds, 3)
    report.match_seconds = round(summary.assign_seconds, 3)
    report.reidentified = report.matched + report.new_deer
    for result in summary.results:
        if result.outcome is Outcome.FAILED:
            report.skip(f"detection {result.detection_id}", result.error or "re-identification failed")
