"""The review screen: one query deer beside its ranked candidates, answered with one key.

Thin over `deerid.store.review` (which runs `deerid.domain.review`): the same queue
that `deerid eval --review` measures with an oracle.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from sqlalchemy.orm import Session

from deerid.api.deps import ContextDep, Reader, SessionDep, Writer
from deerid.api.outputs import deer_out
from deerid.api.params import Id64
from deerid.api.schemas import (
    CandidateOut,
    CropOut,
    QcOut,
    QcSightingOut,
    ReviewAnswerIn,
    ReviewAnswerOut,
    ReviewHistoryItem,
    ReviewQueryOut,
    ReviewScreenOut,
    ReviewUndoOut,
)
from deerid.app import Deerid
from deerid.db.tables import Deer, ReviewChoice
from deerid.domain.review import DEFAULT_K, Probability, uncalibrated
from deerid.errors import NotFound
from deerid.store import review as review_store
from deerid.store import views
from deerid.store.deer import get_deer as found

router = APIRouter(prefix="/api", tags=["review"])

MAX_QUERY_CROPS = 24
CANDIDATE_CROPS = 4
K = Annotated[int, Query(ge=1, le=9, description="candidates per screen (keys 1–9)")]


def get_cache(request: Request) -> review_store.ReviewCache:
    return request.app.state.review_cache


CacheDep = Annotated[review_store.ReviewCache, Depends(get_cache)]


def _model(context: Deerid) -> tuple[str, Probability, bool]:
    """Active model id, its calibrated probability (or the raw similarity), and which it is."""
    from deerid.registry.calibration import load_probability

    model_id = context.embedder().model_id
    fitted = load_probability(context.settings, model_id)
    if fitted is None:
        return model_id, uncalibrated, False

    def probability(scores: np.ndarray) -> np.ndarray:
        return np.asarray(fitted(np.asarray(scores, dtype=np.float64)), dtype=np.float64)

    return model_id, probability, True


def _crops(
    session: Session, deer_id: uuid.UUID, first: list[int] | None = None, limit: int = 24, full: bool = False
) -> list[CropOut]:
    """The deer's sightings as crops: `first` (e.g. the sighting most like the query) leading,
    then the largest boxes, which show the animal best."""
    rows = views.sightings(session, deer_id)
    lead = {d: i for i, d in enumerate(first or [])}
    rows.sort(
        key=lambda r: (
            lead.get(r.detection.id, len(lead)),
            -(r.detection.bbox_w * r.detection.bbox_h),
            r.detection.id,
        )
    )
    return [_crop(r, full=full) for r in rows[:limit]]


def _crop(row: views.SightingRow, *, full: bool = False) -> CropOut:
    det = row.detection
    return CropOut(
        detection_id=det.id,
        crop_url=f"/api/detections/{det.id}/crop" + ("?size=full" if full else ""),
        bbox=[det.bbox_x, det.bbox_y, det.bbox_w, det.bbox_h],
        image_url=f"/api/images/{row.image.id}",
        captured_at=row.local_time,
        camera=row.camera.name if row.camera is not None else None,
        track_id=det.track_id,
        event_id=row.image.event_id,
    )


def _candidates(session: Session, shown: tuple[review_store.ShownCandidate, ...]) -> list[CandidateOut]:
    return [
        CandidateOut(
            rank=rank,
            deer=deer_out(session, found(session, c.deer_id)),
            probability=round(c.probability, 4),
            similarity=round(c.score, 4),
            crops=_crops(session, c.deer_id, [c.via_detection_id], CANDIDATE_CROPS),
            via_detection_id=c.via_detection_id,
        )
        for rank, c in enumerate(shown, start=1)
    ]


@router.get(
    "/review/next",
    response_model=ReviewScreenOut,
    dependencies=[Reader],
    responses={204: {"description": "nothing left to review"}},
)
def next_screen(
    session: SessionDep,
    context: ContextDep,
    cache: CacheDep,
    k: K = DEFAULT_K,
    exclude: Annotated[
        str | None, Query(description="comma-separated deer ids skipped in this session")
    ] = None,
) -> ReviewScreenOut | Response:
    """The query whose candidates most probably hold its animal, with its top-k candidates."""
    try:
        skipped = [uuid.UUID(x) for x in exclude.split(",") if x.strip()] if exclude else []
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"exclude: {exc}") from exc
    model_id, probability, calibrated = _model(context)
    screen = review_store.next_screen(
        session,
        model_id,
        k=k,
        probability=probability,
        exclude=skipped,
        cache=cache,
        across_sites=context.settings.match_across_sites,
    )
    if screen is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    query = found(session, screen.query_deer_id)
    return ReviewScreenOut(
        query=ReviewQueryOut(
            deer=deer_out(session, query), crops=_crops(session, query.id, limit=MAX_QUERY_CROPS, full=True)
        ),
        candidates=_candidates(session, screen.candidates),
        remaining=screen.remaining,
        calibrated=calibrated,
    )


@router.post(
    "/review/decisions",
    response_model=ReviewAnswerOut,
    dependencies=[Writer],
    responses={409: {"description": "the screen changed meanwhile; `current` says how"}},
)
def answer(
    body: ReviewAnswerIn, session: SessionDep, context: ContextDep, cache: CacheDep
) -> ReviewAnswerOut:
    """match: the query is `candidate` (merged into it). none: none of `shown` (never shown
    again together). skip: not comparable (the query is not offered again)."""
    model_id, probability, _ = _model(context)
    # A ReviewConflict answers 409 with `current` (deerid.api.errors); the request's
    # transaction rolls back, so nothing of the refused answer is kept.
    record = review_store.decide(
        session,
        model_id,
        query=body.query,
        shown=body.shown,
        choice=ReviewChoice(body.choice),
        candidate=body.candidate,
        probability=probability,
        # The process's cache: without it every answer re-read every vector and rebuilt the
        # nearest-neighbour table (seconds at 10,000 sightings).
        cache=cache,
        across_sites=context.settings.match_across_sites,
    )
    where = record.candidate_deer_id if record.choice is ReviewChoice.MATCH else record.query_deer_id
    assert where is not None
    return ReviewAnswerOut(
        decision_id=record.id, deer=deer_out(session, found(session, where)), merge_id=record.merge_id
    )


@router.post(
    "/review/decisions/{decision_id}/undo",
    response_model=ReviewUndoOut,
    dependencies=[Writer],
    responses={409: {"description": "a later change conflicts; `detail` says which"}},
)
def undo(decision_id: Id64, session: SessionDep) -> ReviewUndoOut:
    touched = review_store.undo(session, decision_id)
    deer = [deer_out(session, d) for t in dict.fromkeys(touched) if (d := session.get(Deer, t)) is not None]
    return ReviewUndoOut(undone=decision_id, deer=deer)


@router.get("/review/decisions", response_model=list[ReviewHistoryItem], dependencies=[Reader])
def history(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[ReviewHistoryItem]:
    """Answered screens still in force, newest first."""
    return [
        ReviewHistoryItem(
            decision_id=r.id,
            query_deer_id=r.query_deer_id,
            choice=r.choice,
            candidate_deer_id=r.candidate_deer_id,
            shown=[uuid.UUID(s["deer_id"]) for s in r.shown],
            created_at=r.created_at,
        )
        for r in review_store.last_decisions(session, limit)
    ]


@router.get("/deer/{deer_id}/candidates", response_model=list[CandidateOut], dependencies=[Reader])
def deer_candidates(
    deer_id: uuid.UUID, session: SessionDep, context: ContextDep, cache: CacheDep, k: K = DEFAULT_K
) -> list[CandidateOut]:
    """The deer most probably the same animal as this one, best first (decided pairs left out)."""
    found(session, deer_id)
    model_id, probability, _ = _model(context)
    shown = review_store.deer_candidates(
        session,
        model_id,
        deer_id,
        k=k,
        probability=probability,
        cache=cache,
        across_sites=context.settings.match_across_sites,
    )
    return _candidates(session, shown)


@router.get("/tracks/{track_id}/candidates", response_model=list[CandidateOut], dependencies=[Reader])
def track_candidates(
    track_id: Id64, session: SessionDep, context: ContextDep, cache: CacheDep, k: K = DEFAULT_K
) -> list[CandidateOut]:
    """The deer most probably the animal of this track, as if the track stood alone."""
    model_id, probability, _ = _model(context)
    shown = review_store.track_candidates(
        session,
        model_id,
        track_id,
        k=k,
        probability=probability,
        cache=cache,
        across_sites=context.settings.match_across_sites,
    )
    if not shown and not review_store.track_exists(session, track_id):
        raise NotFound(f"no track {track_id}")
    return _candidates(session, shown)


@router.get("/deer/{deer_id}/qc", response_model=QcOut, dependencies=[Reader])
def quality_check(deer_id: uuid.UUID, session: SessionDep, context: ContextDep, cache: CacheDep) -> QcOut:
    """The deer's sightings, worst fitting first: where a wrong merge shows."""
    deer = found(session, deer_id)
    model_id, _, _ = _model(context)
    fit = dict(review_store.sighting_fit(session, model_id, deer_id, cache))
    rows = {r.detection.id: r for r in views.sightings(session, deer_id)}
    order = [d for d in fit if d in rows] + [d for d in rows if d not in fit]
    return QcOut(
        deer=deer_out(session, deer),
        sightings=[QcSightingOut(**_crop(rows[d]).model_dump(), fit=fit.get(d)) for d in order],
    )
