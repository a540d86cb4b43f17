"""/api/deer/{id}/years and /links: one animal's profiles of several seasons, side by side."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy.orm import Session

from deerid.api.deps import Reader, SessionDep, SettingsDep, Writer
from deerid.api.outputs import deer_out
from deerid.api.schemas import DeerLinkIn, YearOut
from deerid.core.config import Settings
from deerid.errors import NotFound
from deerid.store import links
from deerid.store.deer import get_deer as found

router = APIRouter(prefix="/api/deer", tags=["deer"])


def _years(session: Session, settings: Settings, deer_id: uuid.UUID) -> list[YearOut]:
    return [
        YearOut(season=y.season, deer=deer_out(session, y.deer), linked_directly=y.linked_directly)
        for y in links.years(session, deer_id, settings.season_month_day)
    ]


@router.get("/{deer_id}/years", response_model=list[YearOut], dependencies=[Reader])
def deer_years(deer_id: uuid.UUID, session: SessionDep, settings: SettingsDep) -> list[YearOut]:
    """The deer and every profile linked to it as the same animal in another year, oldest first."""
    found(session, deer_id)
    return _years(session, settings, deer_id)


@router.post("/{deer_id}/links", response_model=list[YearOut], dependencies=[Writer])
def link_deer(
    deer_id: uuid.UUID, body: DeerLinkIn, session: SessionDep, settings: SettingsDep
) -> list[YearOut]:
    found(session, deer_id)
    found(session, body.deer_id)
    links.link(session, deer_id, body.deer_id, body.note)
    session.flush()
    return _years(session, settings, deer_id)


@router.delete("/{deer_id}/links/{other_id}", response_model=list[YearOut], dependencies=[Writer])
def unlink_deer(
    deer_id: uuid.UUID, other_id: uuid.UUID, session: SessionDep, settings: SettingsDep
) -> list[YearOut]:
    found(session, deer_id)
    if not links.unlink(session, deer_id, other_id):
        raise NotFound(f"deer {deer_id} is not linked to {other_id}")
    return _years(session, settings, deer_id)
