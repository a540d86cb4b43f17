"""Visits read from the database: one row per animal per encounter, for activity and the season.

A detection with no track (stored before encounters existed, or never embedded) is a visit of
its own photo.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import Camera, Deer, Deployment, Detection, Image, Track
from deerid.domain.activity import Visit, season_start
from deerid.store.deployments import deployment_of_image
from deerid.store.views import LOCAL_TIME

_visit_key = sa.func.coalesce(Track.event_id, -Image.id)


def visits(
    session: Session,
    *,
    deer_id: uuid.UUID | None = None,
    camera_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Visit]:
    """Visits of one deer, one camera, or every deer, optionally within [since, until)."""
    first = sa.func.min(LOCAL_TIME)
    # Where the camera stood then: its deployment's place, else the camera's own coordinates.
    lat = sa.func.coalesce(Deployment.latitude, Camera.latitude)
    lon = sa.func.coalesce(Deployment.longitude, Camera.longitude)
    query = (
        sa.select(Detection.deer_id, Image.camera_id, first, lat, lon)
        .select_from(Detection)
        .join(Image, Image.id == Detection.image_id)
        .outerjoin(Camera, Camera.id == Image.camera_id)
        .outerjoin(Deployment, Deployment.id == deployment_of_image())
        .outerjoin(Track, Track.id == Detection.track_id)
        .where(Detection.deer_id.is_not(None))
        .group_by(Detection.deer_id, _visit_key, Image.camera_id, lat, lon)
        .order_by(first.nulls_last())
    )
    if deer_id is not None:
        query = query.where(Detection.deer_id == deer_id)
    if camera_id is not None:
        query = query.where(Image.camera_id == camera_id)
    if since is not None:
        query = query.having(first >= since)
    if until is not None:
        query = query.having(first < until)
    return [Visit(str(d), cam, when, lat, lon) for d, cam, when, lat, lon in session.execute(query)]


def newest_time(session: Session) -> datetime | None:
    """The newest sighting's local time: "now" for a season read off an SD card after the fact."""
    return session.execute(
        sa.select(sa.func.max(LOCAL_TIME))
        .select_from(Detection)
        .join(Image, Image.id == Detection.image_id)
        .outerjoin(Camera, Camera.id == Image.camera_id)
        .where(Detection.deer_id.is_not(None))
    ).scalar()


@dataclass(frozen=True)
class SeasonDeer:
    deer: Deer
    visits: int
    first_seen: datetime
    last_seen: datetime
    new_this_week: bool  # first seen this season within the 7 days up to the summary's "now"
    seen_before: bool  # seen in an earlier season


@dataclass(frozen=True)
class Season:
    start: date
    end: date  # exclusive
    now: datetime | None
    deer: list[SeasonDeer]
    camera_visits: dict[int, int]


def season(session: Session, month: int, day: int, *, at: date | None = None) -> Season:
    """The season holding `at` (default: the newest sighting's), with each deer seen in it."""
    now = newest_time(session)
    ref = at or (now.date() if now else date.today())
    start = season_start(ref, month, day)
    end = season_start(start + timedelta(days=400), month, day)
    lo, hi = datetime.combine(start, datetime.min.time()), datetime.combine(end, datetime.min.time())
    rows = visits(session, since=lo, until=hi)
    week_from = (now if now and lo <= now < hi else hi) - timedelta(days=7)
    per: dict[str, list[Visit]] = {}
    cams: dict[int, int] = {}
    for v in rows:
        per.setdefault(v.deer_id, []).append(v)
        if v.camera_id is not None:
            cams[v.camera_id] = cams.get(v.camera_id, 0) + 1
    ids = [uuid.UUID(k) for k in per]
    deer = {str(d.id): d for d in session.scalars(sa.select(Deer).where(Deer.id.in_(ids)))} if ids else {}
    earlier = (
        {
            str(d)
            for d in session.scalars(
                sa.select(Detection.deer_id)
                .join(Image, Image.id == Detection.image_id)
                .outerjoin(Camera, Camera.id == Image.camera_id)
                .where(Detection.deer_id.in_(ids), lo > LOCAL_TIME)
                .distinct()
            )
        }
        if ids
        else set()
    )
    out = []
    for key, vs in per.items():
        times = [v.local_time for v in vs if v.local_time is not None]
        first, last = min(times), max(times)
        out.append(
            SeasonDeer(
                deer[key], len(vs), first, last, first >= week_from and key not in earlier, key in earlier
            )
        )
    out.sort(key=lambda s: s.last_seen, reverse=True)
    return Season(start, end, now, out, cams)
