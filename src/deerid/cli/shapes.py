"""The API's response shapes (deerid.api.schemas) as the CLI prints them with --json: a script
reads one shape per entity whichever door it used. Imported only by the commands that print them,
since the schemas pull in FastAPI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deerid.api.schemas import DeerOut, SightingOut
from deerid.store import views

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from deerid.db.tables import Deer


class DeerRow(DeerOut):
    # `sightings` (= sighting_count) predates the API shape; scripts read it.
    sightings: int


class DeerShown(DeerOut):
    sightings: list[SightingOut]


# The builders mirror deerid.api.routes.deer's `deer_out` / `sighting_out`, which the CLI does not
# import (the routes pull in FastAPI): both must fill the schema the same way.
def deer_out(
    session: Session, deer: Deer, *, best: int | None = None, cameras: list[str] | None = None
) -> DeerOut:
    if cameras is None:
        cameras = sorted({p.camera.name for p in views.locations(session, deer.id) if p.camera is not None})
    if best is None:
        best = views.best_detection(session, deer.id)
    return DeerOut(
        id=deer.id,
        name=deer.name,
        sex=deer.sex,
        first_seen=deer.first_seen,
        last_seen=deer.last_seen,
        sighting_count=deer.sighting_count,
        confidence=deer.confidence,
        notes=deer.notes,
        cameras=cameras,
        crop_url=f"/api/detections/{best}/crop" if best is not None else None,
        model_id=deer.model_id,
        starred=deer.starred,
    )


def sighting_out(row: views.SightingRow) -> SightingOut:
    det, image = row.detection, row.image
    return SightingOut(
        captured_at_source=image.captured_at_source,
        strip_status=image.strip_status,
        strip_time=image.strip_time,
        strip_camera=image.strip_camera,
        strip_temperature_f=image.strip_temperature_f,
        strip_offset_s=image.strip_offset_s,
        time_disagreement=bool(image.strip_disagrees),
        detection_id=det.id,
        image_id=image.id,
        captured_at=row.local_time,
        camera_id=row.camera.id if row.camera else None,
        camera=row.camera.name if row.camera else None,
        bbox=[det.bbox_x, det.bbox_y, det.bbox_w, det.bbox_h],
        class_label=det.class_label,
        similarity=det.similarity,
        assignment=det.assignment.value if det.assignment else None,
        confirmed=det.confirmed_at is not None,
        crop_url=f"/api/detections/{det.id}/crop",
        image_url=f"/api/images/{image.id}",
        track_id=det.track_id,
        event_id=image.event_id,
    )
