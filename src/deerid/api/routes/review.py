"""/api/review: the close calls, for a person to confirm or reject."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from deerid.api.deps import ContextDep, Reader, SessionDep, Writer
from deerid.api.outputs import crop_url, deer_out
from deerid.api.schemas import MoveOut, ReviewDecisionIn, ReviewItemOut
from deerid.app import Deerid
from deerid.store import curation, views
from deerid.store.deer import get_deer as found

router = APIRouter(prefix="/api/review", tags=["review"])


def _threshold(context: Deerid) -> float | None:
    """The automatic-merge threshold in force; None: the model has no calibration (no automatic merges)."""
    return context.threshold(context.embedder().model_id).value


@router.get("", response_model=list[ReviewItemOut], dependencies=[Reader])
def queue(
    session: SessionDep,
    context: ContextDep,
    band: Annotated[float, Query(gt=0, le=0.5, description="how far around the threshold")] = 0.05,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ReviewItemOut]:
    """Matches just above the threshold and new deer that just missed it, closest calls first."""
    threshold = _threshold(context)
    if threshold is None:  # no band around a threshold to show: the review screen (/next) takes over
        return []
    items = views.review_queue(session, threshold, band=band, limit=limit)
    out = []
    for item in items:
        crops = [
            crop_url(row.detection.id)
            for row in views.sightings(session, item.candidate.id)
            if row.detection.id != item.detection.id
        ][:6]
        out.append(
            ReviewItemOut(
                detection_id=item.detection.id,
                kind=item.kind,
                similarity=item.similarity,
                crop_url=crop_url(item.detection.id) or "",
                current_deer=deer_out(session, item.current),
                candidate_deer=deer_out(session, item.candidate),
                candidate_crops=[c for c in crops if c],
            )
        )
    return out


@router.post("", response_model=MoveOut, dependencies=[Writer])
def decide(body: ReviewDecisionIn, session: SessionDep) -> MoveOut:
    """confirm: the sighting is the candidate deer. reject: it is not (it moves to `move_to`
    or a new deer when it sits in the candidate). Both are stored as labelled pairs."""
    found(session, body.candidate_deer)
    if body.move_to is not None:
        found(session, body.move_to)
    if body.decision == "confirm":
        target = curation.confirm(session, body.detection_id, body.candidate_deer)
    else:
        target = curation.reject(session, body.detection_id, body.candidate_deer, body.move_to)
    return MoveOut(deer=deer_out(session, found(session, target)))
