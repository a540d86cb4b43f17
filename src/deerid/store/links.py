"""Stars and "same deer, another year" links between profiles.

A link joins two profiles without merging them: each keeps its own sightings, so a season's
counts stay that season's. Links are transitive for display (2022 ↔ 2023 ↔ 2024 is one
animal's three years), and stored once per pair.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import Deer, DeerLink
from deerid.domain.activity import season_start
from deerid.errors import Invalid
from deerid.store.deer import get_deer


class LinkError(Invalid):
    """A link that cannot be (a deer to itself)."""


def _pair(a: uuid.UUID, b: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    # PostgreSQL orders uuids bytewise, as Python orders their bytes.
    return (a, b) if a.bytes < b.bytes else (b, a)


def set_starred(session: Session, deer_id: uuid.UUID, starred: bool) -> Deer:
    deer = get_deer(session, deer_id)
    deer.starred = starred
    session.flush()
    return deer


def link(session: Session, deer_id: uuid.UUID, other_id: uuid.UUID, note: str | None = None) -> DeerLink:
    """Say two profiles are one animal in different years; linking a linked pair again changes
    only its note."""
    if deer_id == other_id:
        raise LinkError("a deer cannot be linked to itself")
    get_deer(session, deer_id)
    get_deer(session, other_id)
    a, b = _pair(deer_id, other_id)
    row = session.execute(
        sa.select(DeerLink).where(DeerLink.deer_a == a, DeerLink.deer_b == b)
    ).scalar_one_or_none()
    if row is None:
        row = DeerLink(deer_a=a, deer_b=b, note=note)
        session.add(row)
    elif note is not None:
        row.note = note
    session.flush()
    return row


def unlink(session: Session, deer_id: uuid.UUID, other_id: uuid.UUID) -> bool:
    """Remove the link between the two; False when there was none."""
    a, b = _pair(deer_id, other_id)
    gone = session.execute(sa.delete(DeerLink).where(DeerLink.deer_a == a, DeerLink.deer_b == b))
    return bool(gone.rowcount)  # type: ignore[attr-defined]


def move_links(session: Session, from_id: uuid.UUID, to_id: uuid.UUID) -> None:
    """Before `from_id` is merged into `to_id` (and deleted): its links become `to_id`'s, and a
    link between the two disappears (they are one profile now)."""
    rows = session.scalars(
        sa.select(DeerLink).where(sa.or_(DeerLink.deer_a == from_id, DeerLink.deer_b == from_id))
    ).all()
    for row in rows:
        other = row.deer_b if row.deer_a == from_id else row.deer_a
        note = row.note
        session.delete(row)
        session.flush()
        if other != to_id:
            link(session, to_id, other, note)


def linked_group(session: Session, deer_id: uuid.UUID) -> list[uuid.UUID]:
    """Every profile reachable from `deer_id` through links, itself included."""
    seen = {deer_id}
    frontier = [deer_id]
    while frontier:
        rows = session.execute(
            sa.select(DeerLink.deer_a, DeerLink.deer_b).where(
                sa.or_(DeerLink.deer_a.in_(frontier), DeerLink.deer_b.in_(frontier))
            )
        ).all()
        frontier = [d for pair in rows for d in pair if d not in seen]
        seen.update(frontier)
    return sorted(seen, key=str)


@dataclass(frozen=True)
class Year:
    """One profile of a linked animal, with the season it was seen in first."""

    deer: Deer
    season: str  # e.g. "2023–24"; "undated" for a profile with no dated sighting
    linked_directly: bool  # to the deer asked about (else through another year)


def years(session: Session, deer_id: uuid.UUID, season_month_day: tuple[int, int]) -> list[Year]:
    """The deer's linked profiles, oldest season first (the deer itself among them)."""
    get_deer(session, deer_id)
    group = linked_group(session, deer_id)
    direct = {
        d
        for pair in session.execute(
            sa.select(DeerLink.deer_a, DeerLink.deer_b).where(
                sa.or_(DeerLink.deer_a == deer_id, DeerLink.deer_b == deer_id)
            )
        ).all()
        for d in pair
    }
    direct.discard(deer_id)
    month, day = season_month_day
    out = []
    for deer in session.scalars(sa.select(Deer).where(Deer.id.in_(group))):
        out.append(Year(deer, _season_label(deer.first_seen, month, day), deer.id in direct))
    out.sort(key=lambda y: (y.deer.first_seen is None, y.deer.first_seen or datetime.min, str(y.deer.id)))
    return out


def _season_label(first_seen: datetime | None, month: int, day: int) -> str:
    if first_seen is None:
        return "undated"
    start = season_start(first_seen.date(), month, day)
    if (month, day) == (1, 1):
        return str(start.year)
    return f"{start.year}–{str(start.year + 1)[2:]}"
