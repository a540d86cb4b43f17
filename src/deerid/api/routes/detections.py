"""/api/detections and /api/merges: reassign sightings, undo merges."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from deerid.api.deps import SessionDep, Writer
from deerid.api.routes.deer import deer_out, found
from deerid.api.schemas import DeerOut, MoveIn, MoveOut
from deerid.store import curation

router = APIRouter(prefix="/api", tags=["curation"])


@router.post("/detections/move", response_model=MoveOut, dependencies=[Writer])
def move(body: MoveIn, session: SessionDep) -> MoveOut:
    """Move sightings (of any deer) to `to_deer`, or to a new deer."""
    if body.to_deer is not None:
        found(session, body.to_deer)
    try:
        target = curation.move_detections(session, body.detection_ids, body.to_deer)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except curation.CurationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return MoveOut(deer=deer_out(session, found(session, target)))


@router.post("/merges/{merge_id}/undo", response_model=list[DeerOut], dependencies=[Writer])
def undo(merge_id: int, session: SessionDep) -> list[DeerOut]:
    """Recreate the deer a merge folded in, with their sightings; returns them."""
    try:
        restored = curation.undo_merge(session, merge_id)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except curation.CurationError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return [deer_out(session, found(session, d)) for d in restored]
