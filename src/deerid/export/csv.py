"""`deerid export csv`: one row per sighting (a deer box), flat, for a spreadsheet or R."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from deerid.core.files import atomic_path
from deerid.export.common import ExportError, ExportOptions, csv_chunks, deployment_id, number, stamp
from deerid.store import export as store
from deerid.store.export import BoxRow

COLUMNS = (
    "detection_id",
    "image_id",
    "photo_path",
    "captured_at",  # as the camera's clock wrote it
    "time",  # clock offset applied, with the export's timezone
    "time_source",
    "camera",
    "site",
    "deployment_id",
    "event_id",
    "track_id",
    "box_x",
    "box_y",
    "box_width",
    "box_height",
    "detector_confidence",
    "class",
    "class_confidence",
    "sex",
    "status",
    "deer_id",
    "deer_name",
    "similarity",
    "probability",
    "assignment",
    "confirmed",
    "confirmed_at",
)


def sighting_row(box: BoxRow, options: ExportOptions) -> list[Any]:
    probability = None
    if box.similarity is not None and box.model_id is not None and box.deer_id is not None:
        probability = options.probability(box.model_id, box.similarity)
    x, y, w, h = box.bbox
    return [
        box.detection_id,
        box.image_id,
        box.path,
        box.captured_at.isoformat(timespec="seconds") if box.captured_at else "",
        stamp(box.time, options.tz),
        box.time_source,
        box.camera or "",
        box.site or "",
        deployment_id(box.deployment_id, box.camera_id),
        box.event_id if box.event_id is not None else "",
        box.track_id if box.track_id is not None else "",
        number(x),
        number(y),
        number(w),
        number(h),
        number(box.detector_conf, 4),
        box.class_label or "",
        number(box.class_conf, 4),
        box.sex or "",
        box.status,
        box.deer_id or "",
        box.deer_name or "",
        number(box.similarity),
        number(probability),
        box.assignment or "",
        "true" if box.confirmed_at is not None else "false",
        stamp(box.confirmed_at, options.tz),
    ]


def sightings_csv(
    session: Session, options: ExportOptions, counted: list[int] | None = None
) -> Iterator[str]:
    """The CSV text, in chunks, from one snapshot of the database; `counted[0]` counts the rows."""
    store.snapshot(session)
    counter = counted if counted is not None else [0]

    def rows() -> Iterator[list[Any]]:
        for box in store.sightings(session):
            counter[0] += 1
            yield sighting_row(box, options)

    yield from csv_chunks(COLUMNS, rows())


def write_sightings_csv(session: Session, out: Path, options: ExportOptions, *, force: bool = False) -> int:
    """Write the CSV to `out` (refused if it exists, unless forced); returns the rows written."""
    if out.is_dir():
        raise ExportError(f"{out} is a folder: give a file name such as sightings.csv")
    if out.exists() and not force:
        raise ExportError(f"{out} exists: pass --force to overwrite it")
    # Written beside and renamed: a failed export never leaves half a file under the asked name.
    counted = [0]
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
        for chunk in sightings_csv(session, options, counted):
            handle.write(chunk)
    return counted[0]
