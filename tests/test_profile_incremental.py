"""The per-assignment profile update (`deer.add_sighting`) against the full recompute.

Tried here, on the real PostgreSQL: many sightings assigned one by one through
the real assignment path, each step compared field for field (exact equality,
not a tolerance) with `recompute_profile` from all the sightings; sightings of
another model, by track, and photos without a capture time; a deer from before
migration 0008 (no sums yet); and that adding a sighting reads one detection
whatever the deer's size, where the full recompute reads all of them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import Assignment, Deer, Detection, DetectionStatus, Image
from deerid.domain.classes import Sex
from deerid.reid.service import Outcome
from deerid.store import deer as deer_store
from support.builders import MODEL, T0, World, assign, near, random_unit_vector

DERIVED = ("sighting_count", "first_seen", "last_seen", "confidence")
SUMS = ("embedding_sum", "embedding_count", "similarity_sum", "similarity_count")


def _fields(session: Session, deer_id: uuid.UUID) -> dict[str, object]:
    deer = session.execute(
        sa.select(Deer).where(Deer.id == deer_id).execution_options(populate_existing=True)
    )
    row = deer.scalar_one()
    out: dict[str, object] = {name: getattr(row, name) for name in DERIVED + SUMS}
    out["feature_vector"] = None if row.feature_vector is None else np.asarray(row.feature_vector)
    return out


def _full(world: World, deer_id: uuid.UUID) -> dict[str, object]:
    """What the full recompute makes of the deer's sightings (rolled back, the row is left as it was)."""
    with world.factory() as s, s.begin():
        assert deer_store.recompute_profile(s, deer_id)
        fields = _fields(s, deer_id)
        s.rollback()
    return fields


def _stored(world: World, deer_id: uuid.UUID) -> dict[str, object]:
    with world.factory() as s:
        return _fields(s, deer_id)


def _assert_same(incremental: dict[str, object], full: dict[str, object]) -> None:
    for name in DERIVED + SUMS:
        assert incremental[name] == full[name], name
    inc, ful = incremental["feature_vector"], full["feature_vector"]
    assert (inc is None) == (ful is None)
    if inc is not None:
        assert np.array_equal(inc, ful)  # bit for bit


def _add_by_hand(
    world: World, det_id: int, deer_id: uuid.UUID, assignment: Assignment, sim: float | None
) -> None:
    """Assign as the service does (assign, then add_sighting) for the paths matching does not reach here."""
    with world.factory() as s, s.begin():
        deer_store.assign(
            s,
            det_id,
            deer_id,
            similarity=sim,
            via_detection_id=None,
            assignment=assignment,
            when=T0,
        )
        deer_store.add_sighting(s, deer_id, det_id)


def test_incremental_profile_equals_full_recompute_at_every_step(world: World) -> None:
    rng = np.random.default_rng(7)
    centre = random_unit_vector(100)
    founder = assign(world, world.sighting(centre, T0))
    assert founder.outcome is Outcome.NEW_DEER
    deer_id = founder.deer_id
    assert deer_id is not None
    _assert_same(_stored(world, deer_id), _full(world, deer_id))

    for i in range(80):
        vec = near(centre, float(rng.uniform(0.87, 0.99)), 1000 + i)
        when = T0 + timedelta(hours=int(rng.integers(-2000, 2000)))  # out of order, some before the founder
        det_id = world.sighting(vec, when)
        if i % 10 == 3:  # joined by its track: no similarity, still counted and averaged
            _add_by_hand(world, det_id, deer_id, Assignment.TRACK, None)
        elif i % 10 == 6:  # a photo without a capture time: skipped by first/last seen
            with world.factory() as s, s.begin():
                image_id = s.execute(sa.select(Detection.image_id).where(Detection.id == det_id)).scalar_one()
                s.execute(sa.update(Image).where(Image.id == image_id).values(captured_at=None))
            assert assign(world, det_id).deer_id == deer_id
        else:
            result = assign(world, det_id)
            assert result.outcome is Outcome.MATCHED and result.deer_id == deer_id
        _assert_same(_stored(world, deer_id), _full(world, deer_id))

    # A sighting embedded by another model counts but is not averaged; a manual one adds no similarity.
    other = world.sighting(random_unit_vector(5), T0 + timedelta(days=400), model="other-model")
    _add_by_hand(world, other, deer_id, Assignment.MANUAL, 0.5)
    incremental = _stored(world, deer_id)
    _assert_same(incremental, _full(world, deer_id))

    # The sums are the means: against PostgreSQL's own aggregates, to float precision.
    with world.factory() as s:
        mean_sim, mean_vec, n = s.execute(
            sa.select(
                sa.func.avg(Detection.similarity).filter(Detection.assignment == Assignment.MATCHED),
                sa.func.avg(Detection.embedding).filter(Detection.model_id == MODEL),
                sa.func.count(),
            ).where(Detection.deer_id == deer_id)
        ).one()
    assert incremental["sighting_count"] == n == 82
    assert incremental["embedding_count"] == 81
    assert incremental["confidence"] == pytest.approx(mean_sim, abs=1e-12)
    mean = np.asarray([float(x) for x in mean_vec.strip("[]").split(",")], dtype=np.float32)
    np.testing.assert_allclose(incremental["feature_vector"], mean / np.linalg.norm(mean), atol=1e-6)


def test_the_order_sightings_are_added_in_does_not_change_the_sums(world: World) -> None:
    """Two deer given the same 40 sightings' vectors and similarities, in opposite orders."""
    vectors = [near(random_unit_vector(200), 0.9, 300 + i) for i in range(40)]
    sims = [float(x) for x in np.random.default_rng(3).uniform(0.85, 1.0, 40)]
    deer_ids = []
    for order in (range(40), reversed(range(40))):
        with world.factory() as s, s.begin():
            deer_id = deer_store.create_deer(s, Sex.BUCK, MODEL)
        for i in order:
            _add_by_hand(world, world.sighting(vectors[i]), deer_id, Assignment.MATCHED, sims[i])
        deer_ids.append(deer_id)
    forward, backward = (_stored(world, d) for d in deer_ids)
    _assert_same(forward, backward)
    _assert_same(forward, _full(world, deer_ids[0]))


def test_a_deer_from_before_the_sums_gets_them_from_the_full_recompute(world: World) -> None:
    centre = random_unit_vector(400)
    first = assign(world, world.sighting(centre))
    assert assign(world, world.sighting(near(centre, 0.95, 401))).deer_id == first.deer_id
    with world.factory() as s, s.begin():  # as migration 0008 leaves an existing deer
        s.execute(
            sa.update(Deer)
            .where(Deer.id == first.deer_id)
            .values(embedding_sum=None, embedding_count=None, similarity_sum=None, similarity_count=None)
        )
    third = assign(world, world.sighting(near(centre, 0.93, 402), T0 + timedelta(days=1)))
    assert third.deer_id == first.deer_id
    stored = _stored(world, first.deer_id)  # type: ignore[arg-type]
    assert (
        stored["sighting_count"] == 3 and stored["embedding_count"] == 3 and stored["similarity_count"] == 2
    )
    _assert_same(stored, _full(world, first.deer_id))  # type: ignore[arg-type]


def _bulk_deer(world: World, size: int, seed: int) -> uuid.UUID:
    """A buck with `size` stored sightings, inserted in bulk, its profile from the full recompute."""
    rng = np.random.default_rng(seed)
    centre = random_unit_vector(seed)
    with world.factory() as s, s.begin():
        deer_id = deer_store.create_deer(s, Sex.BUCK, MODEL)
        image_ids = s.execute(
            sa.insert(Image).returning(Image.id),
            [
                {
                    "path": f"/bulk/{seed}/{i}.jpg",
                    "sha256": f"{seed:032x}{i:032x}",
                    "captured_at": T0 + timedelta(minutes=i),
                    "captured_at_source": "exif_datetime_original",
                    "width": 1920,
                    "height": 1080,
                    "file_size": 1,
                }
                for i in range(size)
            ],
        ).scalars()
        rows = []
        for image_id in image_ids:
            vec = centre + 0.3 * rng.standard_normal(centre.shape[0]).astype(np.float32)
            rows.append(
                {
                    "image_id": image_id,
                    "source_index": 0,
                    "bbox_x": 0.1,
                    "bbox_y": 0.1,
                    "bbox_w": 0.3,
                    "bbox_h": 0.3,
                    "detector_conf": 0.9,
                    "category": "animal",
                    "sex": Sex.BUCK,
                    "status": DetectionStatus.ASSIGNED,
                    "embedding": vec / np.linalg.norm(vec),
                    "model_id": MODEL,
                    "deer_id": deer_id,
                    "similarity": 0.9,
                    "assignment": Assignment.MATCHED,
                }
            )
        s.execute(sa.insert(Detection), rows)
        deer_store.recompute_profile(s, deer_id)
    return deer_id


def _detection_rows_read(session: Session) -> int:
    """Rows of `detections` this transaction has read so far (sequential and index scans)."""
    return session.execute(
        sa.text(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = 'detections'"
        )
    ).scalar_one()


def test_adding_a_sighting_reads_one_detection_whatever_the_deer_size(world: World) -> None:
    read: dict[str, list[int]] = {"add": [], "full": []}
    herd = {size: _bulk_deer(world, size, seed=size) for size in (5, 600)}  # both stored before measuring
    for size, deer_id in herd.items():
        det_id = world.sighting(random_unit_vector(size), T0 + timedelta(days=30))
        with world.factory() as s, s.begin():
            deer_store.assign(
                s,
                det_id,
                deer_id,
                similarity=0.9,
                via_detection_id=None,
                assignment=Assignment.MATCHED,
                when=T0,
            )
            before = _detection_rows_read(s)
            deer_store.add_sighting(s, deer_id, det_id)
            read["add"].append(_detection_rows_read(s) - before)
            incremental = _fields(s, deer_id)
            before = _detection_rows_read(s)
            deer_store.recompute_profile(s, deer_id)
            read["full"].append(_detection_rows_read(s) - before)
            _assert_same(incremental, _fields(s, deer_id))
    assert read["add"][0] == read["add"][1] <= 1, read
    assert read["full"][0] < 100 and read["full"][1] >= 600, read
