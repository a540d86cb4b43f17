"""Building the API's response shapes from stored rows: one builder per entity, used by every
route and by the CLI's --json, so one entity has one shape whichever door it left by."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from deerid.api.schemas import DeerOut, SightingOut
from deerid.db.tables import Deer, Image
from deerid.store import views


def crop_url(detection_id: int | None) -> str | None:
    return f"/api/detections/{detection_id}/crop" if detection_id is not None else None


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
        crop_url=crop_url(best),
        model_id=deer.model_id,
        starred=deer.starred,
    )


def strip_fields(image: Image) -> dict[str, Any]:
    """The photo's info strip, as `StripFields` says it (docs/strip.md)."""
    return {
        "captured_at_source": image.captured_at_source,
        "strip_status": image.strip_status,
        "strip_time": image.strip_time,
        "strip_camera": image.strip_camera,
        "strip_temperature_f": image.strip_temperature_f,
        "strip_offset_s": image.strip_offset_s,
        "time_disagreement": bool(image.strip_disagrees),
    }


def sighting_out(row: views.SightingRow) -> SightingOut:
    det = row.detection
    return SightingOut(
        **strip_fields(row.image),
        detection_id=det.id,
        image_id=row.image.id,
        captured_at=row.local_time,
        camera_id=row.camera.id if row.camera else None,
        camera=row.camera.name if row.camera else None,
        bbox=[det.bbox_x, det.bbox_y, det.bbox_w, det.bbox_h],
        class_label=det.class_label,
        similarity=det.similarity,
        assignment=det.assignment,
        confirmed=det.confirmed_at is not None,
        crop_url=f"/api/detections/{det.id}/crop",
        image_url=f"/api/images/{row.image.id}",
        track_id=det.track_id,
        event_id=row.image.event_id,
    )
