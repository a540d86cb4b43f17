"""/api/deer: profiles, their sightings, timeline and places; merge and split."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from deerid.api.deps import Reader, SessionDep, Writer
from deerid.api.outputs import deer_out, sighting_out
from deerid.api.params import CameraIdQuery, FromDate, Offset, SearchText, ToDate
from deerid.api.schemas import (
    DayCount,
    DeerOut,
    DeerPage,
    DeerPatch,
    MergeIn,
    MergeOut,
    MoveIn,
    MoveOut,
    PlaceOut,
    SightingOut,
    TimelineOut,
)
from deerid.domain.classes import Sex
from deerid.store import curation, links, views

# `found`, because this module's GET /api/deer/{id} handler is called get_deer.
from deerid.store.deer import get_deer as found

router = APIRouter(prefix="/api/deer", tags=["deer"])


@router.get("", response_model=DeerPage, dependencies=[Reader])
def list_deer(
    session: SessionDep,
    sex: Sex | None = None,
    camera_id: CameraIdQuery = None,
    seen_from: FromDate = None,
    seen_to: ToDate = None,
    q: SearchText = None,
    starred: bool | None = None,
    sort: views.SortKey = "last_seen",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> DeerPage:
    filt = views.DeerFilter(
        sex=sex, camera_id=camera_id, seen_from=seen_from, seen_to=seen_to, search=q, starred=starred
    )
    total, rows = views.list_deer(session, filt, sort=sort, desc=order == "desc", limit=limit, offset=offset)
    items = [deer_out(session, deer, best=best, cameras=cams) for deer, best, cams in rows]
    return DeerPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/{deer_id}", response_model=DeerOut, dependencies=[Reader])
def get_deer(deer_id: uuid.UUID, session: SessionDep) -> DeerOut:
    return deer_out(session, found(session, deer_id))


@router.patch("/{deer_id}", response_model=DeerOut, dependencies=[Writer])
def patch_deer(deer_id: uuid.UUID, body: DeerPatch, session: SessionDep) -> DeerOut:
    found(session, deer_id)
    deer = curation.update_deer(session, deer_id, name=body.name, sex=body.sex, notes=body.notes)
    if body.starred is not None:
        deer = links.set_starred(session, deer_id, body.starred)
    return deer_out(session, deer)


@router.get("/{deer_id}/detections", response_model=list[SightingOut], dependencies=[Reader])
def deer_detections(deer_id: uuid.UUID, session: SessionDep) -> list[SightingOut]:
    found(session, deer_id)
    return [sighting_out(row) for row in views.sightings(session, deer_id)]


@router.get("/{deer_id}/timeline", response_model=TimelineOut, dependencies=[Reader])
def deer_timeline(deer_id: uuid.UUID, session: SessionDep) -> TimelineOut:
    found(session, deer_id)
    line = views.timeline(session, deer_id)
    return TimelineOut(
        deer_id=deer_id,
        sightings=[sighting_out(row) for row in line.sightings],
        by_day=[DayCount(day=d, sightings=n) for d, n in line.by_day],
        by_hour=line.by_hour,
    )


@router.get("/{deer_id}/locations", response_model=list[PlaceOut], dependencies=[Reader])
def deer_locations(deer_id: uuid.UUID, session: SessionDep) -> list[PlaceOut]:
    found(session, deer_id)
    return [
        PlaceOut(
            camera_id=p.camera.id if p.camera else None,
            camera=p.camera.name if p.camera else None,
            latitude=p.camera.latitude if p.camera else None,
            longitude=p.camera.longitude if p.camera else None,
            sightings=p.sightings,
            first_seen=p.first_seen,
            last_seen=p.last_seen,
        )
        for p in views.locations(session, deer_id)
    ]


@router.post("/{deer_id}/merge", response_model=MergeOut, dependencies=[Writer])
def merge_deer(deer_id: uuid.UUID, body: MergeIn, session: SessionDep) -> MergeOut:
    """Fold the deer in the body into this one; they answer 404 afterwards. Undo: /api/merges/{id}/undo."""
    found(session, deer_id)
    for other in body.deer_ids:
        found(session, other)
    record = curation.merge(session, deer_id, body.deer_ids)
    return MergeOut(merge_id=record.id, deer=deer_out(session, found(session, deer_id)))


@router.post("/{deer_id}/split", response_model=MoveOut, dependencies=[Writer])
def split_deer(deer_id: uuid.UUID, body: MoveIn, session: SessionDep) -> MoveOut:
    """Move some of this deer's sightings to `to_deer`, or to a new deer."""
    found(session, deer_id)
    if body.to_deer is not None:
        found(session, body.to_deer)
    owned = {row.detection.id for row in views.sightings(session, deer_id)}
    strangers = sorted(set(body.detection_ids) - owned)
    if strangers:
        raise curation.CurationError(f"detection {strangers[0]} is not this deer's")
    target = curation.move_detections(session, body.detection_ids, body.to_deer)
    return MoveOut(deer=deer_out(session, found(session, target)))
