"""Events and tracks in the database: grouping photos into events, linking boxes
into tracks, and the read queries the API serves. The rules themselves live in
`deerid.domain.encounters`; this module only loads, locks and stores.

Both writers are idempotent: running them again over the same photos changes
nothing, and photos added later extend (or bridge and merge) stored events, and
their boxes continue stored tracks.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import Camera, Deer, Detection, DetectionStatus, Event, Image, Track
from deerid.domain.encounters import (
    EventGroup,
    LinkParams,
    Shot,
    TrackBox,
    group_events,
    link_tracks,
    time_problem,
)


def _lock(session: Session, key: str) -> None:
    session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def lock_event(session: Session, event_id: int) -> None:
    """Serialise track building for one event until the transaction ends."""
    _lock(session, f"deerid:event:{event_id}")


@dataclass
class EventChanges:
    created: list[int] = field(default_factory=list)
    extended: list[int] = field(default_factory=list)  # stored events that gained photos
    merged: list[int] = field(default_factory=list)  # events folded into another (deleted)


def assign_events(
    session: Session, image_ids: Sequence[int], gap_s: float, problems: Mapping[int, str] | None = None
) -> EventChanges:
    """Give every image in `image_ids` that has no event one.

    `problems`: image id -> why its time cannot be trusted (known at ingest,
    e.g. EXIF later than the file). Such photos, photos without a trustworthy
    time and photos without a camera become events of their own, with the reason.
    Other photos join the stored event of their camera within `gap_s` of them,
    or found one; a photo that bridges two stored events merges them."""
    problems = problems or {}
    changes = EventChanges()
    rows = session.execute(
        sa.select(Image.id, Image.camera_id, Image.captured_at, Image.captured_at_source).where(
            Image.id.in_(image_ids), Image.event_id.is_(None)
        )
    ).all()
    timed: dict[int, list[tuple[int, datetime]]] = {}
    for image_id, camera_id, when, source in sorted(rows):
        reason = time_problem(when, source, problems.get(image_id))
        if reason is None and camera_id is None:
            reason = "camera unknown"
        if reason is not None:
            changes.created.append(_new_event(session, [image_id], camera_id, when, when, reason))
        else:
            # time_problem passes only a photo with a time, and the check above one with a camera.
            assert camera_id is not None and when is not None
            timed.setdefault(camera_id, []).append((image_id, when))
    for camera_id in sorted(timed):  # one lock per camera, always in the same order: no deadlock
        _lock(session, f"deerid:events:camera:{camera_id}")
        _group_camera(session, camera_id, timed[camera_id], gap_s, changes)
    return changes


def _group_camera(
    session: Session, camera_id: int, new: list[tuple[int, datetime]], gap_s: float, changes: EventChanges
) -> None:
    gap = timedelta(seconds=gap_s)
    lo = min(t for _, t in new) - gap
    hi = max(t for _, t in new) + gap
    # Gap-grouped stored events that could reach the new photos, with all their photos.
    near = sa.select(Event.id).where(
        Event.camera_id == camera_id, Event.reason.is_(None), Event.end_at >= lo, Event.start_at <= hi
    )
    stored = session.execute(
        sa.select(Image.id, Image.captured_at, Image.event_id).where(Image.event_id.in_(near))
    ).all()
    shots = [Shot(i, camera_id, t) for i, t in new] + [Shot(i, camera_id, t) for i, t, _ in stored]
    # Every stored photo was selected by its event, so none has a NULL event_id.
    event_of = {i: cast(int, e) for i, _, e in stored}
    groups = group_events(shots, gap_s)
    # Groups that share a stored event are one event (a smaller gap than before never splits one).
    merged: list[tuple[set[int], list[EventGroup]]] = []
    for group in groups:
        events = {event_of[k] for k in group.keys if k in event_of}
        joined = [m for m in merged if m[0] & events]
        for m in joined:
            merged.remove(m)
            events |= m[0]
        merged.append((events, [group, *(g for m in joined for g in m[1])]))
    new_ids = {i for i, _ in new}
    for events, parts in merged:
        keys = [k for g in parts for k in g.keys]
        start = min(g.start for g in parts if g.start is not None)
        end = max(g.end for g in parts if g.end is not None)
        if not events:
            changes.created.append(_new_event(session, keys, camera_id, start, end, None))
            continue
        keep, *others = sorted(events)
        if others:
            session.execute(sa.update(Image).where(Image.event_id.in_(others)).values(event_id=keep))
            session.execute(sa.update(Track).where(Track.event_id.in_(others)).values(event_id=keep))
            session.execute(sa.delete(Event).where(Event.id.in_(others)))
            changes.merged.extend(others)
        fresh = [k for k in keys if k in new_ids]
        if fresh or others:
            session.execute(sa.update(Image).where(Image.id.in_(fresh)).values(event_id=keep))
            session.execute(sa.update(Event).where(Event.id == keep).values(start_at=start, end_at=end))
            changes.extended.append(keep)


def _new_event(
    session: Session,
    image_ids: Collection[int],
    camera_id: int | None,
    start: datetime | None,
    end: datetime | None,
    reason: str | None,
) -> int:
    event_id = session.execute(
        sa.insert(Event)
        .values(camera_id=camera_id, start_at=start, end_at=end, reason=reason)
        .returning(Event.id)
    ).scalar_one()
    session.execute(sa.update(Image).where(Image.id.in_(image_ids)).values(event_id=event_id))
    return event_id


def events_of_detections(session: Session, detection_ids: Collection[int]) -> list[int]:
    ids = session.execute(
        sa.select(Image.event_id)
        .distinct()
        .join(Detection, Detection.image_id == Image.id)
        .where(Detection.id.in_(detection_ids), Image.event_id.is_not(None))
    ).scalars()
    return sorted(cast("Iterable[int]", ids))  # NULL event ids are filtered out


def events_of_images(session: Session, image_ids: Collection[int]) -> list[int]:
    ids = session.execute(
        sa.select(Image.event_id).distinct().where(Image.id.in_(image_ids), Image.event_id.is_not(None))
    ).scalars()
    return sorted(cast("Iterable[int]", ids))  # NULL event ids are filtered out


def pending_deer_boxes(session: Session, event_ids: Collection[int]) -> list[int]:
    """Deer boxes of these events still waiting for re-identification (embedded or not)."""
    return list(
        session.execute(
            sa.select(Detection.id)
            .join(Image, Image.id == Detection.image_id)
            .where(
                Image.event_id.in_(event_ids),
                Detection.status == DetectionStatus.PENDING,
                Detection.deer_id.is_(None),
                Detection.sex.is_not(None),
            )
            .order_by(Detection.id)
        ).scalars()
    )


def build_tracks(
    session: Session, event_id: int, model_id: str, params: LinkParams = LinkParams()
) -> list[int]:
    """Link the event's embedded deer boxes into tracks; returns the ids of tracks created.

    Boxes already in a track keep it; boxes waiting for re-ID with an
    embedding of `model_id` continue a stored track or start one. Boxes that
    were assigned before tracks existed stay out. Takes the event's lock."""
    lock_event(session, event_id)
    rows = session.execute(
        sa.select(
            Detection.id,
            Detection.image_id,
            Detection.bbox_x,
            Detection.bbox_y,
            Detection.bbox_w,
            Detection.bbox_h,
            Detection.sex,
            Detection.embedding,
            Detection.model_id,
            Detection.track_id,
            Image.width,
            Image.height,
            Image.captured_at,
        )
        .join(Image, Image.id == Detection.image_id)
        .where(
            Image.event_id == event_id,
            Detection.sex.is_not(None),
            sa.or_(
                Detection.track_id.is_not(None),
                sa.and_(
                    Detection.status == DetectionStatus.PENDING,
                    Detection.deer_id.is_(None),
                    Detection.embedding.is_not(None),
                    Detection.model_id == model_id,
                ),
            ),
        )
        .order_by(Image.captured_at.nulls_last(), Image.id, Detection.id)
    ).all()
    if all(r.track_id is not None for r in rows):
        return []
    frames: list[list[TrackBox]] = []
    frame_of: int | None = None
    for r in rows:
        if r.image_id != frame_of:
            frames.append([])
            frame_of = r.image_id
        vector = (
            np.asarray(r.embedding, dtype=np.float32)
            if r.embedding is not None and r.model_id == model_id
            else None
        )
        frames[-1].append(
            TrackBox(
                key=r.id,
                bbox=(r.bbox_x, r.bbox_y, r.bbox_w, r.bbox_h),
                aspect=r.width / r.height if r.height else 1.0,
                group=r.sex,
                vector=vector,
                track=r.track_id,
            )
        )
    labels = link_tracks(frames, params)
    stored = {r.id: r.track_id for r in rows}
    created: dict[int, int] = {}
    for det_id, label in sorted(labels.items()):
        if stored[det_id] is not None:
            continue
        if label < 0:
            if label not in created:
                created[label] = session.execute(
                    sa.insert(Track).values(event_id=event_id).returning(Track.id)
                ).scalar_one()
            label = created[label]
        session.execute(sa.update(Detection).where(Detection.id == det_id).values(track_id=label))
    return sorted(created.values())


# --- read queries (API, CLI, ingest summary) ---


@dataclass(frozen=True)
class EventRow:
    event: Event
    camera: Camera | None
    photos: int
    tracks: int
    deer_boxes: int


def _event_rows(query: sa.Select[Event, Camera]) -> sa.Select[Event, Camera, int, int, int]:
    photos = sa.select(sa.func.count(Image.id)).where(Image.event_id == Event.id).scalar_subquery()
    tracks = sa.select(sa.func.count(Track.id)).where(Track.event_id == Event.id).scalar_subquery()
    boxes = (
        sa.select(sa.func.count(Detection.id))
        .join(Image, Image.id == Detection.image_id)
        .where(Image.event_id == Event.id, Detection.sex.is_not(None))
        .scalar_subquery()
    )
    return query.add_columns(photos, tracks, boxes)


def list_events(
    session: Session, *, camera_id: int | None = None, limit: int = 50, offset: int = 0
) -> tuple[int, list[EventRow]]:
    """(total, events newest first) optionally of one camera."""
    query = sa.select(Event, Camera).outerjoin(Camera, Camera.id == Event.camera_id)
    if camera_id is not None:
        query = query.where(Event.camera_id == camera_id)
    total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        _event_rows(query)
        .order_by(Event.start_at.desc().nulls_last(), Event.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return total, [EventRow(*r) for r in rows]


def get_event(session: Session, event_id: int) -> EventRow | None:
    query = (
        sa.select(Event, Camera).outerjoin(Camera, Camera.id == Event.camera_id).where(Event.id == event_id)
    )
    row = session.execute(_event_rows(query)).first()
    return EventRow(*row) if row is not None else None


def event_images(session: Session, event_id: int) -> list[Image]:
    return list(
        session.execute(
            sa.select(Image)
            .where(Image.event_id == event_id)
            .order_by(Image.captured_at.nulls_last(), Image.id)
        ).scalars()
    )


@dataclass(frozen=True)
class TrackRow:
    track: Track
    detections: list[tuple[Detection, Image]]
    deer: list[Deer]  # the deer its boxes are in: one, unless a person split the track


def tracks_of_event(session: Session, event_id: int) -> list[TrackRow]:
    ids = session.execute(sa.select(Track.id).where(Track.event_id == event_id).order_by(Track.id)).scalars()
    return [row for tid in ids if (row := get_track(session, tid)) is not None]


def get_track(session: Session, track_id: int) -> TrackRow | None:
    track = session.get(Track, track_id)
    if track is None:
        return None
    dets = session.execute(
        sa.select(Detection, Image)
        .join(Image, Image.id == Detection.image_id)
        .where(Detection.track_id == track_id)
        .order_by(Image.captured_at.nulls_last(), Image.id, Detection.id)
    ).all()
    deer_ids = sorted({d.deer_id for d, _ in dets if d.deer_id is not None}, key=str)
    deer = [d for i in deer_ids if (d := session.get(Deer, i)) is not None]
    return TrackRow(track, [(d, i) for d, i in dets], deer)


@dataclass(frozen=True)
class EncounterCounts:
    cameras: list[dict[str, object]]  # [{"name": str, "photos": int}]
    events: int
    tracks: int


def counts_for_images(session: Session, image_ids: Collection[int]) -> EncounterCounts:
    """Cameras, events and tracks that these photos belong to (the ingest summary)."""
    cams = session.execute(
        sa.select(Camera.name, sa.func.count(Image.id))
        .join(Image, Image.camera_id == Camera.id)
        .where(Image.id.in_(image_ids))
        .group_by(Camera.name)
        .order_by(Camera.name)
    ).all()
    event_ids = events_of_images(session, image_ids)
    tracks = session.execute(
        sa.select(sa.func.count(Track.id)).where(Track.event_id.in_(event_ids))
    ).scalar_one()
    return EncounterCounts([{"name": n, "photos": c} for n, c in cams], len(event_ids), tracks)


# --- what matching needs to know about a track ---


def track_deer(session: Session, track_id: int) -> tuple[uuid.UUID, int] | None:
    """(deer, via detection) that a track's boxes are in: the deer holding most of them, earliest first."""
    row = session.execute(
        sa.select(Detection.deer_id, sa.func.min(Detection.id))
        .where(Detection.track_id == track_id, Detection.deer_id.is_not(None))
        .group_by(Detection.deer_id)
        .order_by(sa.func.count().desc(), sa.func.min(Detection.id))
        .limit(1)
    ).first()
    # deer_id is filtered to non-NULL above.
    return (cast(uuid.UUID, row[0]), row[1]) if row is not None else None


def track_vectors(session: Session, track_id: int, model_id: str) -> list[np.ndarray]:
    """Embeddings of all of a track's boxes of `model_id`: every crop counts when it is matched."""
    rows = session.execute(
        sa.select(Detection.embedding)
        .where(
            Detection.track_id == track_id,
            Detection.model_id == model_id,
            Detection.embedding.is_not(None),
        )
        .order_by(Detection.id)
    ).scalars()
    return [np.asarray(v, dtype=np.float32) for v in rows]


def deer_in_event(session: Session, image_id: int, *, except_track: int) -> set[uuid.UUID]:
    """Deer holding a box of the photo's event outside `except_track`: never the same animal (cannot-link)."""
    event_id = sa.select(Image.event_id).where(Image.id == image_id).scalar_subquery()
    rows = session.execute(
        sa.select(Detection.deer_id)
        .distinct()
        .join(Image, Image.id == Detection.image_id)
        .where(
            sa.or_(Image.event_id == event_id, Image.id == image_id),
            Detection.deer_id.is_not(None),
            sa.or_(Detection.track_id.is_(None), Detection.track_id != except_track),
        )
    )
    return set(cast("Iterable[uuid.UUID]", rows.scalars()))  # NULL deer ids are filtered out
