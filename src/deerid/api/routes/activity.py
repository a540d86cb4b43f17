"""Activity of a deer or a camera (visits by hour, daylight, moon, week) and the season summary."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query

from deerid.api.deps import Reader, SessionDep, SettingsDep
from deerid.api.outputs import deer_out
from deerid.api.params import LAST_DAY, Id32
from deerid.api.routes.cameras import camera_out
from deerid.api.schemas import ActivityOut, SeasonCameraOut, SeasonDeerOut, SeasonOut, WeekCount
from deerid.core.config import Settings
from deerid.db.tables import Camera, Image
from deerid.domain.activity import Activity, Visit, activity
from deerid.domain.classes import Sex
from deerid.errors import NotFound
from deerid.store import activity as activity_store
from deerid.store.deer import get_deer as found

router = APIRouter(tags=["activity"])


def _counts(settings: Settings, visits: list[Visit]) -> Activity:
    return activity(
        visits,
        settings.camera_zone,
        season=settings.season_month_day,
        configured=settings.timezone is not None,
    )


def activity_out(settings: Settings, counts: Activity) -> ActivityOut:
    return ActivityOut(
        visits=counts.visits,
        undated=counts.undated,
        by_hour=counts.by_hour,
        by_daylight=counts.by_daylight,
        by_moon=counts.by_moon,
        by_week=[WeekCount(week_start=w, visits=n) for w, n in counts.by_week],
        timezone=settings.timezone or "this machine's zone, or solar time where it does not fit a camera",
        season_start=settings.season_start,
    )


@router.get("/api/deer/{deer_id}/activity", response_model=ActivityOut, dependencies=[Reader])
def deer_activity(deer_id: uuid.UUID, session: SessionDep, settings: SettingsDep) -> ActivityOut:
    found(session, deer_id)
    return activity_out(settings, _counts(settings, activity_store.visits(session, deer_id=deer_id)))


@router.get("/api/cameras/{camera_id}/activity", response_model=ActivityOut, dependencies=[Reader])
def camera_activity(camera_id: Id32, session: SessionDep, settings: SettingsDep) -> ActivityOut:
    if session.get(Camera, camera_id) is None:
        raise NotFound(f"no camera {camera_id}")
    return activity_out(settings, _counts(settings, activity_store.visits(session, camera_id=camera_id)))


@router.get("/api/season", response_model=SeasonOut, dependencies=[Reader])
def season_summary(
    session: SessionDep,
    settings: SettingsDep,
    at: Annotated[
        date | None, Query(le=LAST_DAY, description="A day in the season; default: the newest sighting's")
    ] = None,
) -> SeasonOut:
    month, day = settings.season_month_day
    summary = activity_store.season(session, month, day, at=at)
    photos = dict(
        session.execute(
            sa.select(Image.camera_id, sa.func.count(Image.id))
            .where(Image.camera_id.in_(list(summary.camera_visits)))
            .group_by(Image.camera_id)
        ).all()
    )
    cameras = session.scalars(sa.select(Camera).order_by(Camera.name)).all()
    sexes = [s.deer.sex for s in summary.deer]
    return SeasonOut(
        start=summary.start,
        end=summary.end,
        now=summary.now,
        bucks=sum(s is Sex.BUCK for s in sexes),
        does=sum(s is Sex.DOE for s in sexes),
        other=sum(s not in (Sex.BUCK, Sex.DOE) for s in sexes),
        new_this_week=sum(s.new_this_week for s in summary.deer),
        deer=[
            SeasonDeerOut(
                deer=deer_out(session, s.deer),
                visits=s.visits,
                first_seen=s.first_seen,
                last_seen=s.last_seen,
                new_this_week=s.new_this_week,
                seen_before=s.seen_before,
            )
            for s in summary.deer
        ],
        cameras=[
            SeasonCameraOut(
                camera=camera_out(c, photos.get(c.id, 0)), visits=summary.camera_visits.get(c.id, 0)
            )
            for c in cameras
        ],
    )
