"""/api/detections and /api/merges: reassign sightings, undo merges."""

from __future__ import annotations

from fastapi import APIRouter

from deerid.api.deps import SessionDep, Writer
from deerid.api.outputs import deer_out
from deerid.api.params import Id32
from deerid.api.schemas import DeerOut, MoveIn, MoveOut
from deerid.store import curation
from deerid.store.deer import get_deer as found

router = APIRouter(prefix="/api", tags=["curation"])
MOVE_CHUNK = 10_000


@router.post("/detections/move", response_model=MoveOut, dependencies=[Writer])
def move(body: MoveIn, session: SessionDep) -> MoveOut:
    """Move sightings (of any deer) to `to_deer`, or to a new deer."""
    if body.to_deer is not None:
        found(session, body.to_deer)
    ids = list(dict.fromkeys(body.detection_ids))
    target = body.to_deer
    # In chunks: one statement binds each id, and the driver takes at most 65,535 (F5/F18).
    # One transaction (the request's), so a refused chunk undoes the whole move.
    for start in range(0, len(ids), MOVE_CHUNK):
        target = curation.move_detections(session, ids[start : start + MOVE_CHUNK], target)
    assert target is not None
    return MoveOut(deer=deer_out(session, found(session, target)))


@router.post("/merges/{merge_id}/undo", response_model=list[DeerOut], dependencies=[Writer])
def undo(merge_id: Id32, session: SessionDep) -> list[DeerOut]:
    """Recreate the deer a merge folded in, with their sightings; returns them."""
    restored = curation.undo_merge(session, merge_id)
    return [deer_out(session, found(session, d)) for d in restored]
