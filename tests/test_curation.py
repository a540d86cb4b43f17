"""Merge, undo, split/move, rename and review decisions against the real database.

What is tried: counts and first/last seen after each change, the folded deer
gone and back after an undo, a merge or move that would put two boxes of one
photo into one deer (refused, nothing changed), a sex change moving the
sightings' partition, a rejected match leaving its deer.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from deerid.db.tables import Assignment, Deer, Detection, Merge, ReviewDecision, ReviewDecisionKind
from deerid.domain.classes import Sex
from deerid.store import curation
from support.builders import T0, World, assign, near, random_unit_vector


def two_deer(world: World) -> tuple[object, object, list[int]]:
    a, b = random_unit_vector(1), random_unit_vector(2)
    d1 = world.sighting(a, T0 + timedelta(days=5))
    d2 = world.sighting(near(a, 0.95, 3), T0 + timedelta(days=6))
    d3 = world.sighting(b, T0)
    first = assign(world, d1).deer_id
    assert assign(world, d2).deer_id == first
    second = assign(world, d3).deer_id
    assert first != second
    return first, second, [d1, d2, d3]


def test_merge_recomputes_and_can_be_undone(world: World) -> None:
    first, second, dets = two_deer(world)
    with world.factory() as s, s.begin():
        record = curation.merge(s, first, [second])  # type: ignore[arg-type]
        merge_id = record.id
    with world.factory() as s:
        target = s.get(Deer, first)
        assert target is not None and s.get(Deer, second) is None
        assert target.sighting_count == 3
        assert target.first_seen == T0 and target.last_seen == T0 + timedelta(days=6)
        assert s.get(Merge, merge_id).merged[0]["detection_ids"] == [dets[2]]  # type: ignore[union-attr]

    with world.factory() as s, s.begin():
        assert curation.undo_merge(s, merge_id) == [second]
    with world.factory() as s:
        assert s.get(Deer, first).sighting_count == 2  # type: ignore[union-attr]
        back = s.get(Deer, second)
        assert back is not None and back.sighting_count == 1 and back.first_seen == T0
    with world.factory() as s, s.begin(), pytest.raises(curation.CurationError, match="already undone"):
        curation.undo_merge(s, merge_id)


def test_two_boxes_of_one_photo_never_end_in_one_deer(world: World) -> None:
    image = world.photo()
    one = assign(world, world.box(image, random_unit_vector(10), index=0)).deer_id
    two = assign(world, world.box(image, random_unit_vector(11), index=1)).deer_id
    with world.factory() as s, s.begin(), pytest.raises(curation.CurationError, match="two animals"):
        curation.merge(s, one, [two])  # type: ignore[arg-type]
    with world.factory() as s:
        assert s.execute(sa.select(sa.func.count(Deer.id))).scalar() == 2  # nothing changed


def test_split_moves_sightings_to_a_new_confirmed_deer(world: World) -> None:
    first, _, dets = two_deer(world)
    with world.factory() as s, s.begin():
        new = curation.move_detections(s, [dets[1]])
    with world.factory() as s:
        assert s.get(Deer, first).sighting_count == 1  # type: ignore[union-attr]
        assert s.get(Deer, first).last_seen == T0 + timedelta(days=5)  # type: ignore[union-attr]
        moved = s.get(Detection, dets[1])
        assert moved.deer_id == new and moved.assignment is Assignment.MANUAL  # type: ignore[union-attr]
        assert moved.confirmed_at is not None  # type: ignore[union-attr]
        assert s.get(Deer, new).sighting_count == 1  # type: ignore[union-attr]
    with world.factory() as s, s.begin(), pytest.raises(LookupError):
        curation.move_detections(s, [999999])


def test_sex_change_moves_the_partition(world: World) -> None:
    first, _, dets = two_deer(world)
    with world.factory() as s, s.begin():
        curation.update_deer(s, first, name=" Big Eight ", sex=Sex.DOE, notes="broken G2")  # type: ignore[arg-type]
    with world.factory() as s:
        deer = s.get(Deer, first)
        assert (deer.name, deer.sex, deer.notes) == ("Big Eight", Sex.DOE, "broken G2")  # type: ignore[union-attr]
        assert {s.get(Detection, d).sex for d in dets[:2]} == {Sex.DOE}  # type: ignore[union-attr]
    with world.factory() as s, s.begin(), pytest.raises(curation.CurationError):
        curation.update_deer(s, first, name="  ")  # type: ignore[arg-type]


def test_confirm_and_reject_are_recorded(world: World) -> None:
    first, second, dets = two_deer(world)
    with world.factory() as s, s.begin():
        curation.confirm(s, dets[1], first)  # type: ignore[arg-type]
        new = curation.reject(s, dets[0], first)  # type: ignore[arg-type]
    with world.factory() as s:
        assert s.get(Detection, dets[1]).confirmed_at is not None  # type: ignore[union-attr]
        assert s.get(Detection, dets[0]).deer_id == new != first  # type: ignore[union-attr]
        decisions = s.execute(sa.select(ReviewDecision).order_by(ReviewDecision.id)).scalars().all()
    assert [(d.detection_id, d.decision) for d in decisions] == [
        (dets[1], ReviewDecisionKind.CONFIRM),
        (dets[0], ReviewDecisionKind.REJECT),
    ]
    # confirming a sighting that sits elsewhere moves it into the candidate
    with world.factory() as s, s.begin():
        curation.confirm(s, dets[2], first)  # type: ignore[arg-type]
    with world.factory() as s:
        assert s.get(Detection, dets[2]).deer_id == first  # type: ignore[union-attr]
        assert s.get(Deer, second) is None  # emptied by the move
