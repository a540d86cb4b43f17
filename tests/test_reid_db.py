"""Matching against the real PostgreSQL/pgvector, with vectors built by hand so
the right answer is known: sex partitions, model ids, one photo = different
deer, idempotent re-runs, capture-time order and concurrent workers."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from deerid.db.tables import Deer, Detection, DetectionStatus
from deerid.domain.classes import Sex
from deerid.reid.service import Outcome, unassign
from deerid.store import deer as deer_store
from support.builders import MODEL, T0, World, assign, deer_row, near, random_unit_vector


def test_match_above_threshold_and_new_deer_below(world: World) -> None:
    a = random_unit_vector(1)
    first = assign(world, world.sighting(a))
    assert first.outcome is Outcome.NEW_DEER and first.similarity is None
    same = assign(world, world.sighting(near(a, 0.93, 2), T0 + timedelta(days=1)))
    assert same.outcome is Outcome.MATCHED and same.deer_id == first.deer_id
    assert same.similarity == pytest.approx(0.93, abs=1e-4)
    other = assign(world, world.sighting(near(a, 0.70, 3)))
    assert other.outcome is Outcome.NEW_DEER and other.deer_id != first.deer_id
    # the founding sighting of the new deer records how close it came to the nearest other deer
    assert other.similarity == pytest.approx(0.70, abs=1e-3)

    deer = deer_row(world, first.deer_id)
    assert deer.sighting_count == 2
    assert deer.confidence == pytest.approx(0.93, abs=1e-4)
    assert deer.name.startswith("Buck ")
    assert deer.model_id == MODEL
    vec = np.asarray(deer.feature_vector)
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-4)


def test_matches_any_sighting_not_only_the_profile_mean(world: World) -> None:
    """A deer seen from two sides: a third photo like one side must match even if it is far from the mean."""
    a = random_unit_vector(10)
    side_b = near(a, 0.86, 11)
    first = assign(world, world.sighting(a))
    assert assign(world, world.sighting(side_b)).deer_id == first.deer_id
    like_b = near(side_b, 0.9, 12)
    mean = (a + side_b) / np.linalg.norm(a + side_b)
    assert float(like_b @ a) < 0.85  # far from the first sighting …
    assert float(like_b @ mean) < float(like_b @ side_b)
    assert assign(world, world.sighting(like_b)).deer_id == first.deer_id


def test_only_same_sex_is_searched(world: World) -> None:
    a = random_unit_vector(20)
    buck = assign(world, world.sighting(a, sex=Sex.BUCK))
    doe = assign(world, world.sighting(a, sex=Sex.DOE))
    assert doe.outcome is Outcome.NEW_DEER and doe.deer_id != buck.deer_id
    assert deer_row(world, doe.deer_id).sex is Sex.DOE
    fawn = assign(world, world.sighting(a, sex=Sex.FAWN))
    unknown = assign(world, world.sighting(a, sex=Sex.UNKNOWN))
    assert len({buck.deer_id, doe.deer_id, fawn.deer_id, unknown.deer_id}) == 4
    assert deer_row(world, unknown.deer_id).name.startswith("Deer ")


def test_vectors_of_another_model_are_never_compared(world: World) -> None:
    a = random_unit_vector(30)
    old = assign(world, world.sighting(a, model="old-model"), model="old-model")
    new = assign(world, world.sighting(a, model=MODEL))
    assert new.outcome is Outcome.NEW_DEER and new.deer_id != old.deer_id
    # and a detection embedded by the old model is not matched by the new one
    stale = world.sighting(a, model="old-model")
    assert assign(world, stale).outcome is Outcome.FAILED


def test_two_boxes_in_one_photo_are_two_deer(world: World) -> None:
    a = random_unit_vector(40)
    image = world.photo()
    one = assign(world, world.box(image, a, index=0))
    two = assign(world, world.box(image, near(a, 0.99, 41), index=1))
    assert two.outcome is Outcome.NEW_DEER and two.deer_id != one.deer_id


def test_rerun_never_double_counts(world: World) -> None:
    a = random_unit_vector(50)
    det = world.sighting(a)
    first = assign(world, det)
    again = assign(world, det)
    assert again.outcome is Outcome.ALREADY_ASSIGNED and again.deer_id == first.deer_id
    assert deer_row(world, first.deer_id).sighting_count == 1


def test_first_and_last_seen_follow_capture_time_not_ingest_order(world: World) -> None:
    a = random_unit_vector(60)
    late = assign(world, world.sighting(a, T0 + timedelta(days=10)))
    early = assign(world, world.sighting(near(a, 0.95, 61), T0))
    middle = assign(world, world.sighting(near(a, 0.95, 62), T0 + timedelta(days=3)))
    assert late.deer_id == early.deer_id == middle.deer_id
    deer = deer_row(world, late.deer_id)
    assert deer.first_seen == T0 and deer.last_seen == T0 + timedelta(days=10)
    assert deer.sighting_count == 3


def test_unassign_recomputes_and_deletes_emptied_deer(world: World) -> None:
    a = random_unit_vector(70)
    d1, d2 = world.sighting(a), world.sighting(near(a, 0.95, 71), T0 + timedelta(days=2))
    deer_id = assign(world, d1).deer_id
    assert assign(world, d2).deer_id == deer_id
    with world.factory() as s, s.begin():
        unassign(s, [d2])
    deer = deer_row(world, deer_id)
    assert deer.sighting_count == 1 and deer.last_seen == T0 and deer.confidence is None
    with world.factory() as s, s.begin():
        unassign(s, [d1])
    with world.factory() as s:
        assert s.get(Deer, deer_id) is None
        assert s.get(Detection, d1).status is DetectionStatus.PENDING  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (np.ones(128, dtype=np.float32) / np.sqrt(128), "128 dimensions"),
        (np.full(512, np.nan, dtype=np.float32), "NaN"),
        (np.ones(512, dtype=np.float32), "not L2-normalised"),
    ],
)
def test_bad_vectors_are_refused(world: World, vector: np.ndarray, message: str) -> None:
    image = world.photo()
    with pytest.raises(ValueError, match=message):
        world.box(image, vector)
    with world.factory() as s:  # and nothing half-written stays behind
        assert s.execute(sa.select(sa.func.count(Detection.id))).scalar() == 0


def test_concurrent_workers_found_one_deer_for_one_animal(world: World) -> None:
    """Eight workers assign eight photos of one animal at the same instant.

    Without the per-sex lock several of them see an empty gallery and each
    founds a profile."""
    a = random_unit_vector(80)
    dets = [world.sighting(near(a, 0.97, 81 + i), T0 + timedelta(minutes=i)) for i in range(8)]
    barrier = threading.Barrier(len(dets))
    results: list[object] = []

    def work(det_id: int) -> None:
        barrier.wait()
        results.append(assign(world, det_id))

    threads = [threading.Thread(target=work, args=(d,)) for d in dets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with world.factory() as s:
        assert s.execute(sa.select(sa.func.count(Deer.id))).scalar() == 1
        deer = s.execute(sa.select(Deer)).scalar_one()
    assert deer.sighting_count == 8
    assert sum(1 for r in results if r.outcome is Outcome.NEW_DEER) == 1  # type: ignore[attr-defined]


def test_nearest_sightings_uses_cosine_similarity(world: World) -> None:
    a = random_unit_vector(90)
    ids = [world.sighting(near(a, c, 91 + i)) for i, c in enumerate((0.6, 0.9, 0.75))]
    for det in ids:
        with world.factory() as s, s.begin():
            deer_id = deer_store.create_deer(s, Sex.BUCK, MODEL)
            deer_store.assign(
                s,
                det,
                deer_id,
                similarity=None,
                via_detection_id=None,
                assignment=None,
                when=T0,  # type: ignore[arg-type]
            )
    with world.factory() as s:
        cands = deer_store.nearest_sightings(
            s, a, sex=Sex.BUCK, model_id=MODEL, exclude_detection=-1, site=None
        )
    assert [c.detection_id for c in cands] == [ids[1], ids[2], ids[0]]
    assert [round(c.similarity, 3) for c in cands] == [0.9, 0.75, 0.6]


def test_the_large_scope_search_adds_the_sightings_of_small_deer_nearest_by_profile(world: World) -> None:
    """At 1M sightings the HNSW graph alone missed deer seen 1-10 times (benchmarks/million.py);
    the large-scope path also reads every sighting of the small deer nearest by profile vector.
    Tried: a query whose two nearest sightings (the limit) belong to deer A, and deer B's only
    sighting farther away. Forced onto the large-scope path (exact_max=0) B's sighting is a
    candidate anyway; on the exact path with the same limit it is not."""
    a = random_unit_vector(200)
    for i in range(5):
        assign(world, world.sighting(near(a, 0.95, 201 + i)))
    b_det = world.sighting(near(a, 0.80, 210))
    b = assign(world, b_det)
    assert b.outcome is Outcome.NEW_DEER

    def search(**kw: object) -> list[int]:
        with world.factory() as s, s.begin():
            found = deer_store.nearest_sightings(
                s, a, sex=Sex.BUCK, model_id=MODEL, exclude_detection=-1, site=None, limit=2, **kw
            )
        return [c.detection_id for c in found]

    assert b_det not in search()
    large = search(exact_max=0)
    assert b_det in large
    assert len(large) == 6  # A's five and B's one, each once


def test_the_candidate_search_sends_the_query_vector_once(world: World) -> None:
    """Both passes of the large-scope search name the query vector three times; each separate
    parameter was one more 512-float text conversion and one more vector for the server to parse,
    about 1 ms of a 7-10 ms search (docs/scale.md). Tried: both paths, watching every statement's
    parameters: exactly one vector-valued parameter goes out per search."""
    a = random_unit_vector(300)
    for i in range(3):
        assign(world, world.sighting(near(a, 0.95, 301 + i)))
    sent: list[int] = []

    def count_vectors(_c: object, _cur: object, _sql: str, params: object, _ctx: object, _many: bool) -> None:
        values = params.values() if isinstance(params, dict) else params
        sent.append(sum(isinstance(v, str) and v.startswith("[") for v in values or ()))  # type: ignore[union-attr]

    for exact_max in (None, 0):
        sent.clear()
        with world.factory() as s, s.begin():
            engine = s.get_bind()
            sa.event.listen(engine, "before_cursor_execute", count_vectors)
            try:
                found = deer_store.nearest_sightings(
                    s, a, sex=Sex.BUCK, model_id=MODEL, exclude_detection=-1, site=None, exact_max=exact_max
                )
            finally:
                sa.event.remove(engine, "before_cursor_execute", count_vectors)
        assert len(found) == 3
        assert sum(sent) == 1, (exact_max, sent)
