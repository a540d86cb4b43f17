"""What people do to deer profiles: rename, merge (and undo), split or move sightings,
confirm or reject a suggested match. Every change ends by recomputing the derived
fields of each profile it touched (see `deer.recompute_profile`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import (
    Assignment,
    Deer,
    Detection,
    DetectionStatus,
    Merge,
    ReviewDecision,
    ReviewDecisionKind,
)
from deerid.domain.classes import Sex
from deerid.errors import Conflict, Invalid, NotFound
from deerid.store.deer import create_deer, get_deer, recompute_profile
from deerid.store.detections import now
from deerid.store.links import move_links


class CurationError(Invalid):
    """A change that would break a rule (e.g. two boxes of one photo in one deer)."""


class UndoRefused(CurationError, Conflict):
    """An undo that a later change stands in the way of (already undone, merged on, moved since).

    Still a CurationError for callers that refuse any rule-breaking change alike; the request
    itself was well-formed, only the state moved on, so it answers as a conflict."""

    status = Conflict.status


def update_deer(
    session: Session,
    deer_id: uuid.UUID,
    *,
    name: str | None = None,
    sex: Sex | None = None,
    notes: str | None = None,
) -> Deer:
    deer = get_deer(session, deer_id)
    if name is not None:
        if not name.strip():
            raise CurationError("a deer's name cannot be empty")
        deer.name = name.strip()
    if notes is not None:
        deer.notes = notes
    if sex is not None and sex != deer.sex:
        deer.sex = sex
        # Its sightings are matched in the partition of its sex from now on.
        session.execute(sa.update(Detection).where(Detection.deer_id == deer_id).values(sex=sex))
    session.flush()
    return deer


def _check_one_box_per_photo(session: Session, deer_id: uuid.UUID, detection_ids: Sequence[int]) -> None:
    """Two boxes in one photo are two animals: refuse a change that puts them in one deer."""
    photos = session.execute(
        sa.select(Detection.image_id, sa.func.count())
        .where(sa.or_(Detection.deer_id == deer_id, Detection.id.in_(detection_ids)))
        .group_by(Detection.image_id)
        .having(sa.func.count() > 1)
    ).all()
    if photos:
        raise CurationError(
            f"photo {photos[0][0]} would hold two boxes of one deer; two boxes in one photo are two animals"
        )


def merge(session: Session, target_id: uuid.UUID, other_ids: Sequence[uuid.UUID]) -> Merge:
    """Fold `other_ids` into `target_id`; the others are deleted, the merge recorded for undo."""
    others = [o for o in dict.fromkeys(other_ids) if o != target_id]
    if not others:
        raise CurationError("name at least one other deer to merge")
    target = get_deer(session, target_id)
    folded = [get_deer(session, o) for o in others]
    moving = {
        o.id: list(session.execute(sa.select(Detection.id).where(Detection.deer_id == o.id)).scalars())
        for o in folded
    }
    _check_one_box_per_photo(session, target_id, [d for ids in moving.values() for d in ids])
    snapshot: list[dict[str, Any]] = [
        {
            "id": str(o.id),
            "name": o.name,
            "sex": o.sex.value,
            "notes": o.notes,
            "model_id": o.model_id,
            "starred": o.starred,
            "detection_ids": moving[o.id],
        }
        for o in folded
    ]
    all_moving = [d for ids in moving.values() for d in ids]
    session.execute(
        sa.update(Detection).where(Detection.id.in_(all_moving)).values(deer_id=target_id, sex=target.sex)
    )
    # Imported here: links.py raises this module's errors, so it imports curation at load time.

    for o in folded:
        # One profile now: a star on either is a star on it, and other years stay linked to it.
        target.starred = target.starred or o.starred
        move_links(session, o.id, target_id)
        session.delete(o)
    record = Merge(target_id=target_id, merged=snapshot)
    session.add(record)
    session.flush()
    recompute_profile(session, target_id)
    return record


def undo_merge(session: Session, merge_id: int) -> list[uuid.UUID]:
    """Recreate the folded deer with their ids and give them back their sightings
    (those still in the target); returns the recreated ids."""
    record = session.get(Merge, merge_id)
    if record is None:
        raise NotFound(f"no merge {merge_id}")
    if record.undone_at is not None:
        raise UndoRefused(f"merge {merge_id} was already undone")
    restored = []
    for item in record.merged:
        deer_id = uuid.UUID(item["id"])
        if session.get(Deer, deer_id) is not None:
            raise UndoRefused(f"deer {deer_id} exists again; cannot undo merge {merge_id}")
        session.add(
            Deer(
                id=deer_id,
                name=item["name"],
                sex=Sex(item["sex"]),
                notes=item.get("notes"),
                model_id=item.get("model_id"),
                starred=bool(item.get("starred", False)),
                sighting_count=0,
            )
        )
        session.flush()
        session.execute(
            sa.update(Detection)
            .where(Detection.id.in_(item["detection_ids"]), Detection.deer_id == record.target_id)
            .values(deer_id=deer_id, sex=Sex(item["sex"]))
        )
        recompute_profile(session, deer_id)
        restored.append(deer_id)
    record.undone_at = now()
    recompute_profile(session, record.target_id)
    return restored


def move_detections(
    session: Session, detection_ids: Sequence[int], to_deer: uuid.UUID | None = None
) -> uuid.UUID:
    """Put sightings into `to_deer`, or into a new deer when None (a split).

    The move is a person's statement, so the sightings count as confirmed."""
    ids = list(dict.fromkeys(detection_ids))
    if not ids:
        raise CurationError("name at least one detection to move")
    dets = session.execute(sa.select(Detection).where(Detection.id.in_(ids))).scalars().all()
    missing = set(ids) - {d.id for d in dets}
    if missing:
        raise NotFound(f"no detection {min(missing)}")
    if any(d.sex is None for d in dets):
        raise CurationError("only deer detections can belong to a deer")
    if to_deer is None:
        source_sex = {d.sex for d in dets}
        sex = source_sex.pop() if len(source_sex) == 1 else Sex.UNKNOWN
        model_id = next((d.model_id for d in dets if d.model_id), None) or ""
        to_deer = create_deer(session, Sex(sex), model_id)  # type: ignore[arg-type]
    target = get_deer(session, to_deer)
    _check_one_box_per_photo(session, to_deer, ids)
    sources = {d.deer_id for d in dets if d.deer_id is not None and d.deer_id != to_deer}
    session.execute(
        sa.update(Detection)
        .where(Detection.id.in_(ids))
        .values(
            deer_id=to_deer,
            sex=target.sex,
            assignment=Assignment.MANUAL,
            status=DetectionStatus.ASSIGNED,
            confirmed_at=now(),
        )
    )
    for deer_id in sources:
        recompute_profile(session, deer_id)
    recompute_profile(session, to_deer)
    return to_deer


def record_decision(
    session: Session,
    detection_id: int,
    deer_id: uuid.UUID,
    decision: ReviewDecisionKind,
    similarity: float | None,
) -> None:
    session.add(
        ReviewDecision(detection_id=detection_id, deer_id=deer_id, decision=decision, similarity=similarity)
    )
    session.flush()


def confirm(session: Session, detection_id: int, candidate: uuid.UUID) -> uuid.UUID:
    """The sighting is `candidate`: confirm it there, moving it if it sits elsewhere."""
    det = session.get(Detection, detection_id)
    if det is None:
        raise NotFound(f"no detection {detection_id}")
    get_deer(session, candidate)
    similarity = det.similarity
    if det.deer_id == candidate:
        det.confirmed_at = now()
    else:
        move_detections(session, [detection_id], candidate)
    record_decision(session, detection_id, candidate, ReviewDecisionKind.CONFIRM, similarity)
    return candidate


def reject(
    session: Session, detection_id: int, candidate: uuid.UUID, move_to: uuid.UUID | None = None
) -> uuid.UUID:
    """The sighting is not `candidate`. If it sits there it moves to `move_to` or a new deer;
    the pair is recorded and never suggested again."""
    det = session.get(Detection, detection_id)
    if det is None:
        raise NotFound(f"no detection {detection_id}")
    get_deer(session, candidate)
    if move_to == candidate:
        raise CurationError("cannot reject a deer and move the sighting into it")
    similarity = det.similarity
    record_decision(session, detection_id, candidate, ReviewDecisionKind.REJECT, similarity)
    if det.deer_id == candidate or move_to is not None:
        return move_detections(session, [detection_id], move_to)
    assert det.deer_id is not None
    return det.deer_id
