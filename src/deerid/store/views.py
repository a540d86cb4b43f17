"""Read models for people: the deer gallery, a deer's timeline and places, the review queue.

Capture times shown to people are corrected by the camera's clock offset
(`cameras.clock_offset_s`), so sightings of several cameras line up.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import Assignment, Camera, Deer, Detection, Image, ReviewDecision, ReviewDecisionKind
from deerid.domain.classes import Sex

SortKey = Literal["last_seen", "first_seen", "sightings", "name", "created"]

# A photo's time on the camera's corrected clock; every query that reports or filters by time
# (views, activity, deployments, exports) uses these, joined on Image and Camera.
CLOCK_OFFSET = sa.func.make_interval(0, 0, 0, 0, 0, 0, sa.func.coalesce(Camera.clock_offset_s, 0))
LOCAL_TIME = Image.captured_at + CLOCK_OFFSET


@dataclass(frozen=True)
class DeerFilter:
    sex: Sex | None = None
    camera_id: int | None = None
    seen_from: date | None = None
    seen_to: date | None = None
    search: str | None = None
    starred: bool | None = None  # only starred (True) or only unstarred (False) deer


def _best_detection() -> sa.ScalarSelect[int]:
    """The deer's largest box: the crop most likely to show it well."""
    return (
        sa.select(Detection.id)
        .where(Detection.deer_id == Deer.id)
        .order_by((Detection.bbox_w * Detection.bbox_h).desc(), Detection.id)
        .limit(1)
        .scalar_subquery()
    )


def list_deer(
    session: Session,
    filt: DeerFilter,
    *,
    sort: SortKey = "last_seen",
    desc: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[tuple[Deer, int | None, list[str]]]]:
    """(total, [(deer, best detection id, camera names)])."""
    query = sa.select(Deer)
    if filt.sex is not None:
        query = query.where(Deer.sex == filt.sex)
    if filt.search:
        query = query.where(Deer.name.ilike(f"%{filt.search}%"))
    if filt.starred is not None:
        query = query.where(Deer.starred.is_(filt.starred))
    if filt.camera_id is not None or filt.seen_from is not None or filt.seen_to is not None:
        seen = (
            sa.select(Detection.id)
            .join(Image, Image.id == Detection.image_id)
            .where(Detection.deer_id == Deer.id)
        )
        if filt.camera_id is not None:
            seen = seen.where(Image.camera_id == filt.camera_id)
        if filt.seen_from is not None:
            seen = seen.where(Image.captured_at >= datetime.combine(filt.seen_from, datetime.min.time()))
        if filt.seen_to is not None:
            seen = seen.where(
                Image.captured_at < datetime.combine(filt.seen_to + timedelta(days=1), datetime.min.time())
            )
        query = query.where(seen.exists())
    total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    column = {
        "last_seen": Deer.last_seen,
        "first_seen": Deer.first_seen,
        "sightings": Deer.sighting_count,
        "name": Deer.name,
        "created": Deer.created_at,
    }[sort]
    ordering = column.desc().nulls_last() if desc else column.asc().nulls_last()
    cameras = (
        sa.select(sa.func.array_agg(sa.distinct(Camera.name)))
        .select_from(Detection)
        .join(Image, Image.id == Detection.image_id)
        .join(Camera, Camera.id == Image.camera_id)
        .where(Detection.deer_id == Deer.id)
        .scalar_subquery()
    )
    rows = session.execute(
        query.add_columns(_best_detection(), cameras).order_by(ordering, Deer.id).limit(limit).offset(offset)
    ).all()
    return total, [(deer, best, sorted(cams or [])) for deer, best, cams in rows]


def best_detection(session: Session, deer_id: uuid.UUID) -> int | None:
    return session.execute(
        sa.select(Detection.id)
        .where(Detection.deer_id == deer_id)
        .order_by((Detection.bbox_w * Detection.bbox_h).desc(), Detection.id)
        .limit(1)
    ).scalar()


@dataclass(frozen=True)
class SightingRow:
    detection: Detection
    image: Image
    camera: Camera | None
    local_time: datetime | None


def sightings(session: Session, deer_id: uuid.UUID) -> list[SightingRow]:
    rows = session.execute(
        sa.select(Detection, Image, Camera, LOCAL_TIME)
        .join(Image, Image.id == Detection.image_id)
        .outerjoin(Camera, Camera.id == Image.camera_id)
        .where(Detection.deer_id == deer_id)
        .order_by(LOCAL_TIME.nulls_last(), Detection.id)
    ).all()
    return [SightingRow(d, i, c, t) for d, i, c, t in rows]


@dataclass
class Timeline:
    by_day: list[tuple[date, int]] = field(default_factory=list)
    by_hour: list[int] = field(default_factory=lambda: [0] * 24)
    sightings: list[SightingRow] = field(default_factory=list)


def timeline(session: Session, deer_id: uuid.UUID) -> Timeline:
    rows = sightings(session, deer_id)
    out = Timeline(sightings=rows)
    days: Counter[date] = Counter()
    for row in rows:
        if row.local_time is not None:
            days[row.local_time.date()] += 1
            out.by_hour[row.local_time.hour] += 1
    out.by_day = sorted(days.items())
    return out


@dataclass(frozen=True)
class Place:
    camera: Camera | None
    sightings: int
    first_seen: datetime | None
    last_seen: datetime | None


def locations(session: Session, deer_id: uuid.UUID) -> list[Place]:
    rows = session.execute(
        sa.select(Camera, sa.func.count(Detection.id), sa.func.min(LOCAL_TIME), sa.func.max(LOCAL_TIME))
        .select_from(Detection)
        .join(Image, Image.id == Detection.image_id)
        .outerjoin(Camera, Camera.id == Image.camera_id)
        .where(Detection.deer_id == deer_id)
        .group_by(Camera.id)
        .order_by(sa.func.count(Detection.id).desc())
    ).all()
    return [Place(cam, n, first, last) for cam, n, first, last in rows]


@dataclass(frozen=True)
class ReviewItem:
    detection: Detection
    image: Image
    current: Deer
    candidate: Deer
    similarity: float
    kind: Literal["match", "near_miss"]


def review_queue(session: Session, threshold: float, band: float = 0.05, limit: int = 50) -> list[ReviewItem]:
    """Matches that only just passed the threshold, and new profiles that only just missed it.

    Confirmed sightings and pairs already decided are not asked again; the
    closest calls come first."""
    via = sa.orm.aliased(Detection)
    candidate = sa.orm.aliased(Deer)
    close_match = sa.and_(
        Detection.assignment == Assignment.MATCHED,
        Detection.similarity >= threshold,
        Detection.similarity < threshold + band,
    )
    near_miss = sa.and_(
        Detection.assignment == Assignment.NEW,
        Detection.similarity >= threshold - band,
        Detection.similarity < threshold,
    )
    rows = session.execute(
        sa.select(Detection, Image, Deer, candidate)
        .join(Image, Image.id == Detection.image_id)
        .join(Deer, Deer.id == Detection.deer_id)
        .join(via, via.id == Detection.matched_detection_id)
        .join(candidate, candidate.id == via.deer_id)
        .where(
            Detection.confirmed_at.is_(None),
            sa.or_(close_match, near_miss),
            ~sa.select(ReviewDecision.id)
            .where(ReviewDecision.detection_id == Detection.id, ReviewDecision.deer_id == candidate.id)
            .exists(),
        )
        .order_by(sa.func.abs(Detection.similarity - threshold), Detection.id)
        .limit(limit)
    ).all()
    return [
        ReviewItem(
            det,
            img,
            cur,
            cand,
            float(det.similarity or 0.0),
            "match" if det.deer_id == cand.id else "near_miss",
        )
        for det, img, cur, cand in rows
    ]


def decisions_count(session: Session) -> dict[str, int]:
    rows = session.execute(
        sa.select(ReviewDecision.decision, sa.func.count()).group_by(ReviewDecision.decision)
    ).all()
    return {ReviewDecisionKind(k).value: n for k, n in rows}
