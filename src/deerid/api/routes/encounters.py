"""/api/events and /api/tracks: what each camera recorded per visit, and each animal through it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from deerid.api.deps import Reader, SessionDep
from deerid.api.outputs import crop_url, deer_out, strip_fields
from deerid.api.params import CameraIdQuery, Id64, Offset
from deerid.api.schemas import EventDetailOut, EventOut, EventPage, EventPhotoOut, TrackDetectionOut, TrackOut
from deerid.errors import NotFound
from deerid.store import encounters as enc_store

router = APIRouter(prefix="/api", tags=["encounters"])


def event_out(row: enc_store.EventRow) -> EventOut:
    ev = row.event
    return EventOut(
        id=ev.id,
        camera_id=ev.camera_id,
        camera=row.camera.name if row.camera else None,
        start_at=ev.start_at,
        end_at=ev.end_at,
        reason=ev.reason,
        photos=row.photos,
        tracks=row.tracks,
        deer_boxes=row.deer_boxes,
    )


def track_out(session: SessionDep, row: enc_store.TrackRow) -> TrackOut:
    return TrackOut(
        id=row.track.id,
        event_id=row.track.event_id,
        detections=[
            TrackDetectionOut(
                detection_id=det.id,
                image_id=img.id,
                captured_at=img.captured_at,
                bbox=[det.bbox_x, det.bbox_y, det.bbox_w, det.bbox_h],
                class_label=det.class_label,
                deer_id=det.deer_id,
                assignment=det.assignment,
                crop_url=crop_url(det.id) or "",
                image_url=f"/api/images/{img.id}",
            )
            for det, img in row.detections
        ],
        deer=[deer_out(session, deer) for deer in row.deer],
    )


@router.get("/events", response_model=EventPage, dependencies=[Reader])
def list_events(
    session: SessionDep,
    camera_id: CameraIdQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> EventPage:
    """Events newest first, optionally of one camera."""
    total, rows = enc_store.list_events(session, camera_id=camera_id, limit=limit, offset=offset)
    return EventPage(total=total, limit=limit, offset=offset, items=[event_out(r) for r in rows])


@router.get("/events/{event_id}", response_model=EventDetailOut, dependencies=[Reader])
def get_event(event_id: Id64, session: SessionDep) -> EventDetailOut:
    """An event's photos in capture order and its tracks, each with its boxes and deer."""
    row = enc_store.get_event(session, event_id)
    if row is None:
        raise NotFound(f"no event {event_id}")
    return EventDetailOut(
        event=event_out(row),
        photos=[
            EventPhotoOut(
                **strip_fields(img),
                image_id=img.id,
                captured_at=img.captured_at,
                image_url=f"/api/images/{img.id}",
            )
            for img in enc_store.event_images(session, event_id)
        ],
        tracks=[track_out(session, t) for t in enc_store.tracks_of_event(session, event_id)],
    )


@router.get("/tracks/{track_id}", response_model=TrackOut, dependencies=[Reader])
def get_track(track_id: Id64, session: SessionDep) -> TrackOut:
    row = enc_store.get_track(session, track_id)
    if row is None:
        raise NotFound(f"no track {track_id}")
    return track_out(session, row)
