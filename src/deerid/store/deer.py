"""Deer profiles: nearest sightings, assignment, and the profile's derived fields.

A profile's derived fields are functions of its sightings, never nudged by
hand, so a merge, a split or a re-run can never leave counts or dates out of
step:
- sighting_count: number of detections assigned to the deer;
- first_seen / last_seen: earliest / latest capture time of those photos;
- feature_vector: L2-normalised mean of the sightings' embeddings (of the
  deer's model id): a summary for display and for "similar deer" search;
  matching itself compares against every sighting;
- confidence: mean similarity with which sightings joined the deer by
  matching; NULL while the deer has only its founding sighting.

The means are kept as exact sums beside them (embedding_sum / embedding_count,
similarity_sum / similarity_count): each value is turned into a fixed-point
integer (units of 2^-40) and the integers are added, so the sum does not
depend on the order the sightings are added in. `recompute_profile` derives
everything from all the sightings (merges, splits, moves, undo, re-embedding);
`add_sighting` adds the one sighting an assignment just gave the deer, at a
cost that does not grow with the deer's sightings, and gives exactly the same
fields as the full recompute (tests/test_profile_incremental.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import cast

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import Assignment, Deer, Detection, DetectionStatus, Image
from deerid.domain.classes import Sex
from deerid.domain.matching import Candidate
from deerid.errors import NotFound

NEIGHBOURS = 64  # sightings fetched per query: enough to cover several deer with many sightings each

_NAME_PREFIX = {Sex.BUCK: "Buck", Sex.DOE: "Doe", Sex.FAWN: "Fawn", Sex.UNKNOWN: "Deer"}


def get_deer(session: Session, deer_id: uuid.UUID) -> Deer:
    deer = session.get(Deer, deer_id)
    if deer is None:
        raise NotFound(f"no deer {deer_id}")
    return deer


def lock_partition(session: Session, sex: Sex, site: str | None) -> None:
    """Serialise matching within one site and sex until the transaction ends.

    Without it two processes could each find no match for the same new animal
    and found two profiles for it. A worker matching within one site holds the
    (site, sex) lock and shares the sex-wide one; a worker matching across
    sites (`site` None) holds the sex-wide one alone. Workers of different
    sites run side by side, and a mix of both kinds stays safe."""
    lock = "SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"
    if site is None:
        session.execute(sa.text(lock), {"k": f"deerid:match:{sex.value}"})
        return
    session.execute(
        sa.text("SELECT pg_advisory_xact_lock_shared(hashtextextended(:k, 0))"),
        {"k": f"deerid:match:{sex.value}"},
    )
    session.execute(sa.text(lock), {"k": f"deerid:match:{sex.value}:site:{site}"})


def nearest_sightings(
    session: Session,
    vector: np.ndarray,
    *,
    sex: Sex,
    model_id: str,
    exclude_detection: int,
    site: str | None,
    limit: int = NEIGHBOURS,
    exact_max: int | None = None,
) -> list[Candidate]:
    """Nearest assigned sightings of deer of `sex` embedded by `model_id`, by cosine similarity,
    within `site` (None: every site).

    A scope of at most `exact_max` (default EXACT_SEARCH_MAX) sightings is searched exactly (its
    rows through the btree `ix_detections_match_scope`, then sorted). A larger one goes through
    the HNSW index, plus every sighting of the few deer with at most SMALL_DEER sightings whose
    profile vectors are nearest: at 1M sightings the sighting graph alone found a deer seen 1-10
    times first only 58 times in 100 (benchmarks/million.py), and each miss founds a duplicate."""
    # The settings come first so that the scope count runs under them too (its btree, planned
    # for this site).
    _tune_hnsw(session, limit)
    exact = _scope_is_small(
        session,
        sex=sex,
        model_id=model_id,
        site=site,
        most=EXACT_SEARCH_MAX if exact_max is None else exact_max,
    )
    if exact:
        session.execute(
            sa.text(
                "SELECT set_config('enable_indexscan', 'off', true),"
                " set_config('enable_bitmapscan', 'on', true)"
            )
        )
    # One bound parameter for every use of the vector: the union below names it three times, and
    # each separate parameter was one more 512-float text conversion (~0.25 ms of Python).
    probe = sa.bindparam("probe", vector, type_=Detection.embedding.type)
    distance = Detection.embedding.cosine_distance(probe)
    query = (
        sa.select(Detection.id, Detection.deer_id, (1 - distance).label("similarity"))
        .where(
            Detection.sex == sex,
            Detection.model_id == model_id,
            Detection.deer_id.is_not(None),
            Detection.id != exclude_detection,
        )
        .order_by(distance)
        .limit(limit)
    )
    if site is not None:
        query = query.where(Detection.site == site)
    statement: sa.Executable = query
    if not exact:
        # One statement for both passes: one round trip fewer per detection
        # (benchmarks/million.py).
        nearest = query.subquery("nearest")
        small = _sightings_of_nearest_small_deer(
            probe, sex=sex, model_id=model_id, site=site, exclude_detection=exclude_detection
        )
        statement = sa.union_all(sa.select(nearest.c.id, nearest.c.deer_id, nearest.c.similarity), small)
    # deer_id is filtered to non-NULL. A sighting found by both passes comes twice: keep one.
    rows = cast("list[sa.Row[int, uuid.UUID, float]]", session.execute(statement).all())
    found = {r[0]: Candidate(r[0], r[1], float(r[2])) for r in rows}
    # An iterative scan may return rows slightly out of order; the caller wants them sorted.
    return sorted(found.values(), key=lambda c: -c.similarity)


SMALL_DEER = 50  # sightings: a deer this small is a few points in a graph of a million
PROFILE_NEIGHBOURS = 16  # small deer whose sightings are added, nearest by profile vector


def _sightings_of_nearest_small_deer(
    probe: sa.BindParameter[np.ndarray], *, sex: Sex, model_id: str, site: str | None, exclude_detection: int
) -> sa.Select[tuple[int, uuid.UUID | None, float]]:
    """Every sighting (in `site`) of the PROFILE_NEIGHBOURS small deer nearest by profile vector.

    The deer table has one row per animal, tens of times fewer than sightings, and a small
    deer's profile is the mean of its few sightings, which a new sighting of it resembles more
    than any single one; so its HNSW index finds the deer the sighting graph misses. Large deer
    need no help: their many sightings make them hard to miss. At most 16 x 50 rows are read,
    through the deer_id index."""
    nearest = (
        sa.select(Deer.id)
        .where(
            Deer.sex == sex,
            Deer.model_id == model_id,
            Deer.sighting_count <= SMALL_DEER,
            Deer.feature_vector.is_not(None),
        )
        .order_by(Deer.feature_vector.cosine_distance(probe))
        .limit(PROFILE_NEIGHBOURS)
    )
    distance = Detection.embedding.cosine_distance(probe)
    query = sa.select(Detection.id, Detection.deer_id, (1 - distance).label("similarity")).where(
        Detection.deer_id.in_(nearest),
        Detection.sex == sex,
        Detection.model_id == model_id,
        Detection.id != exclude_detection,
    )
    if site is not None:
        query = query.where(Detection.site == site)
    return query


# Measured on 100k stored sightings in sites of 90k / 9k / 900 / 90 (2 cores, loaded): the HNSW
# scan filtered to a site of 9k took 275 ms with recall@10 0.82, because the scan visits mostly
# other sites' rows; reading a small site whole and sorting it is exact and a few ms.
EXACT_SEARCH_MAX = 10_000
_large_scopes: set[tuple[str, str | None, str, str]] = set()


def _scope_is_small(session: Session, *, sex: Sex, model_id: str, site: str | None, most: int) -> bool:
    """Does this search scope hold at most `most` sightings? A scope found larger than
    EXACT_SEARCH_MAX is remembered for the process (scopes grow), so a big site pays the count once."""
    key = (str(session.get_bind().engine.url), site, sex.value, model_id)
    if key in _large_scopes or most <= 0:
        return False
    scope = sa.select(sa.literal(1)).where(
        Detection.sex == sex, Detection.model_id == model_id, Detection.deer_id.is_not(None)
    )
    if site is not None:
        scope = scope.where(Detection.site == site)
    count = session.execute(
        sa.select(sa.func.count()).select_from(scope.limit(max(most, EXACT_SEARCH_MAX) + 1).subquery())
    ).scalar_one()
    if count > EXACT_SEARCH_MAX:
        _large_scopes.add(key)
    return count <= most


_iterative_scan: dict[str, bool] = {}


def _tune_hnsw(session: Session, limit: int) -> None:
    """Plan this transaction's candidate search through the HNSW index, for its own site, with
    enough rows once the sex/model/site filters are applied.

    An HNSW scan yields at most `hnsw.ef_search` rows (default 40) and the
    WHERE clause filters them afterwards, so a filtered query could return
    fewer neighbours than asked for. pgvector 0.8 adds iterative scans, which
    keep searching until the LIMIT is met; older servers get a larger ef_search.
    """
    url = str(session.get_bind().engine.url)
    if url not in _iterative_scan:
        version = session.execute(
            sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one()
        major, minor = (int(p) for p in version.split(".")[:2])
        _iterative_scan[url] = (major, minor) >= (0, 8)
    # The planner costs an HNSW scan as if it read the whole table, so below ~100k rows it
    # picks a sequential (or bitmap) scan plus a sort: 22 ms instead of 2 ms at 10k
    # sightings (benchmarks/ingest.py).
    # psycopg prepares a statement run five times, and PostgreSQL may then reuse one generic
    # plan for every site: planned for an average site, it scanned the whole table for a site of
    # 90 sightings (130 ms instead of a few, benchmarks/sites.py). Plan each search for its site.
    # Only for this transaction, and in one statement: each round trip costs as much as the
    # index scan on a busy machine.
    iterative = ", set_config('hnsw.iterative_scan', 'relaxed_order', true)" if _iterative_scan[url] else ""
    session.execute(
        sa.text(
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
            " set_config('hnsw.ef_search', :v, true), set_config('enable_seqscan', 'off', true),"
            f" set_config('enable_bitmapscan', 'off', true){iterative}"
        ),
        {"v": str(max(100, 2 * limit))},
    )


def deer_in_image(session: Session, image_id: int, *, except_detection: int) -> set[uuid.UUID]:
    rows = session.execute(
        sa.select(Detection.deer_id).where(
            Detection.image_id == image_id,
            Detection.deer_id.is_not(None),
            Detection.id != except_detection,
        )
    )
    return set(cast("Iterable[uuid.UUID]", rows.scalars()))  # NULL deer ids are filtered out


def create_deer(session: Session, sex: Sex, model_id: str) -> uuid.UUID:
    number = session.execute(sa.text(f"SELECT nextval('deer_number_{sex.value}')")).scalar_one()
    deer_id = uuid.uuid4()
    session.add(
        Deer(
            id=deer_id,
            name=f"{_NAME_PREFIX[sex]} {number}",
            sex=sex,
            model_id=model_id,
            sighting_count=0,
            embedding_count=0,
            similarity_sum=0,
            similarity_count=0,
        )
    )
    session.flush()
    return deer_id


def assign(
    session: Session,
    detection_id: int,
    deer_id: uuid.UUID,
    *,
    similarity: float | None,
    via_detection_id: int | None,
    assignment: Assignment,
    when: datetime,
) -> None:
    session.execute(
        sa.update(Detection)
        .where(Detection.id == detection_id)
        .values(
            deer_id=deer_id,
            similarity=similarity,
            matched_detection_id=via_detection_id,
            assignment=assignment,
            status=DetectionStatus.ASSIGNED,
            reidentified_at=when,
            error=None,
        )
    )


SUM_SCALE = 2**40
"""Fixed-point unit of the stored sums. Every float32 component of magnitude >= 2^-16
and every similarity is held exactly; smaller ones are rounded to 2^-41 the same
way whichever path adds them. A bigint holds n * 2^40 up to n = 8.3 million
sightings of one deer."""

_SUM_CHUNK = 512  # sightings' vectors summed at a time by the full recompute (fits in cache)


def _fixed(values: npt.ArrayLike) -> np.ndarray:
    """Values as fixed-point int64 in units of 1/SUM_SCALE (round half to even)."""
    return np.rint(np.asarray(values, dtype=np.float64) * SUM_SCALE).astype(np.int64)


def _feature(embedding_sum: np.ndarray | None, embedding_count: int) -> np.ndarray | None:
    """L2-normalised mean embedding from its fixed-point sum; None without vectors."""
    if embedding_sum is None or embedding_count == 0:
        return None
    mean = (embedding_sum.astype(np.float64) / (float(embedding_count) * SUM_SCALE)).astype(np.float32)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None


def _confidence(similarity_sum: int, similarity_count: int) -> float | None:
    """Mean matching similarity from its fixed-point sum (Python's int / int is correctly rounded)."""
    return similarity_sum / (similarity_count * SUM_SCALE) if similarity_count else None


def _vector(raw: bytes) -> np.ndarray:
    """A vector from pgvector's binary form (`vector_send`): int16 dim, int16 unused, float4 big-endian."""
    return np.frombuffer(raw, dtype=">f4", offset=4).astype(np.float32)


def _lock_deer(session: Session, deer_id: uuid.UUID) -> bool:
    """Lock the deer's row until the transaction ends; False if there is no such deer.

    Both the full recompute and `add_sighting` take it first, so a curation edit
    and an assignment to the same deer never overwrite each other's sums."""
    found = session.execute(sa.select(Deer.id).where(Deer.id == deer_id).with_for_update()).scalar()
    return found is not None


def recompute_profile(session: Session, deer_id: uuid.UUID) -> bool:
    """Refresh a deer's derived fields and sums from all its sightings; delete it if none are left.

    Costs one pass over the deer's sightings: used after merges, splits, moves,
    undo and re-embedding. Returns False when the deer was deleted (or absent)."""
    _lock_deer(session, deer_id)
    matched = sa.and_(Detection.assignment == Assignment.MATCHED, Detection.similarity.is_not(None))
    count, first_seen, last_seen, similarities = session.execute(
        sa.select(
            sa.func.count(Detection.id),
            sa.func.min(Image.captured_at),
            sa.func.max(Image.captured_at),
            sa.func.array_agg(Detection.similarity).filter(matched),
        )
        .join(Image, Image.id == Detection.image_id)
        .where(Detection.deer_id == deer_id)
    ).one()
    if count == 0:
        session.execute(sa.delete(Deer).where(Deer.id == deer_id))
        return False
    fixed = _fixed(np.asarray(similarities or [], dtype=np.float64))
    similarity_sum, similarity_count = int(fixed.sum()), len(fixed)
    model_id = session.execute(sa.select(Deer.model_id).where(Deer.id == deer_id)).scalar_one()
    embedding_sum, embedding_count = _embedding_sum(session, deer_id, model_id)
    _store(
        session,
        deer_id,
        sighting_count=count,
        first_seen=first_seen,
        last_seen=last_seen,
        embedding_sum=embedding_sum,
        embedding_count=embedding_count,
        similarity_sum=similarity_sum,
        similarity_count=similarity_count,
    )
    return True


def _embedding_sum(
    session: Session, deer_id: uuid.UUID, model_id: str | None
) -> tuple[np.ndarray | None, int]:
    """Fixed-point sum and count of the deer's embeddings of `model_id` (None, 0 without any).

    Read through a binary server-side cursor of the same transaction, `_SUM_CHUNK`
    vectors at a time: the SQLAlchemy path would fetch them as text, and parsing
    that took most of a full recompute (5,000 sightings: 184 ms for the whole
    recompute that way, about 90 ms this way, mostly the server reading the
    vectors). Memory is bounded by one chunk however big the deer."""
    model_filter = "model_id IS NULL" if model_id is None else "model_id = %(model)s"
    raw_conn = session.connection().connection.driver_connection
    # Only an invalidated connection has lost its driver connection; this one was just checked out.
    assert raw_conn is not None
    total: np.ndarray | None = None
    count = 0
    with raw_conn.cursor(name=f"deerid_profile_{uuid.uuid4().hex}", binary=True) as cur:
        cur.execute(
            "SELECT vector_send(embedding) FROM detections"
            f" WHERE deer_id = %(deer)s AND {model_filter} AND embedding IS NOT NULL",
            {"deer": deer_id, "model": model_id},
        )
        while rows := cur.fetchmany(_SUM_CHUNK):
            # Each row: a 4-byte header (dim, unused), then the float4s, big-endian.
            block = np.frombuffer(b"".join(r[0] for r in rows), dtype=">f4").reshape(len(rows), -1)
            part = _fixed(block[:, 1:]).sum(axis=0)
            total = part if total is None else total + part
            count += len(rows)
    return total, count


def add_sighting(session: Session, deer_id: uuid.UUID, detection_id: int) -> None:
    """Update a deer's derived fields for one sighting just assigned to it, from its stored sums.

    The cost does not depend on how many sightings the deer has: one row lock,
    two single-row reads and one update. The result is the same as
    `recompute_profile`'s, field for field. The detection must already be
    assigned to the deer (`assign`) and must not have been counted before. A
    deer whose sums were never computed (made before migration 0008) gets the
    full recompute once."""
    _lock_deer(session, deer_id)
    deer = session.execute(
        sa.select(
            Deer.model_id,
            Deer.sighting_count,
            Deer.first_seen,
            Deer.last_seen,
            Deer.embedding_sum,
            Deer.embedding_count,
            Deer.similarity_sum,
            Deer.similarity_count,
        ).where(Deer.id == deer_id)
    ).one()
    if deer.embedding_count is None or deer.similarity_count is None or deer.similarity_sum is None:
        recompute_profile(session, deer_id)
        return
    det = session.execute(
        sa.select(
            sa.func.vector_send(Detection.embedding, type_=sa.LargeBinary).label("raw"),
            Detection.model_id,
            Detection.similarity,
            Detection.assignment,
            Image.captured_at,
        )
        .join(Image, Image.id == Detection.image_id)
        .where(Detection.id == detection_id, Detection.deer_id == deer_id)
    ).one_or_none()
    if det is None:
        raise NotFound(f"detection {detection_id} is not assigned to deer {deer_id}")

    embedding_sum = None if deer.embedding_sum is None else np.asarray(deer.embedding_sum, dtype=np.int64)
    embedding_count = deer.embedding_count
    # The full recompute's filter: `Detection.model_id == model_id` (IS NULL for a None model id).
    if det.raw is not None and det.model_id == deer.model_id:
        added = _fixed(_vector(det.raw))
        embedding_sum = added if embedding_sum is None else embedding_sum + added
        embedding_count += 1
    similarity_sum, similarity_count = deer.similarity_sum, deer.similarity_count
    if det.assignment is Assignment.MATCHED and det.similarity is not None:
        similarity_sum += int(_fixed(np.float64(det.similarity)))
        similarity_count += 1
    # min()/max() skip photos without a capture time, as the SQL aggregates do.
    first_seen = min((t for t in (deer.first_seen, det.captured_at) if t is not None), default=None)
    last_seen = max((t for t in (deer.last_seen, det.captured_at) if t is not None), default=None)
    _store(
        session,
        deer_id,
        sighting_count=deer.sighting_count + 1,
        first_seen=first_seen,
        last_seen=last_seen,
        embedding_sum=embedding_sum,
        embedding_count=embedding_count,
        similarity_sum=similarity_sum,
        similarity_count=similarity_count,
    )


def _store(
    session: Session,
    deer_id: uuid.UUID,
    *,
    sighting_count: int,
    first_seen: datetime | None,
    last_seen: datetime | None,
    embedding_sum: np.ndarray | None,
    embedding_count: int,
    similarity_sum: int,
    similarity_count: int,
) -> None:
    """Write the sums and the fields derived from them: the one place both paths derive them."""
    session.execute(
        sa.update(Deer)
        .where(Deer.id == deer_id)
        .values(
            sighting_count=sighting_count,
            first_seen=first_seen,
            last_seen=last_seen,
            confidence=_confidence(similarity_sum, similarity_count),
            feature_vector=_feature(embedding_sum, embedding_count),
            embedding_sum=None if embedding_sum is None else embedding_sum.tolist(),
            embedding_count=embedding_count,
            similarity_sum=similarity_sum,
            similarity_count=similarity_count,
        )
    )


def find_deer(session: Session, key: str) -> Deer | None:
    """A deer by full UUID, unique UUID prefix, or exact name."""
    try:
        return session.get(Deer, uuid.UUID(key))
    except ValueError:
        pass
    by_name = session.execute(sa.select(Deer).where(Deer.name == key)).scalars().all()
    if len(by_name) == 1:
        return by_name[0]
    by_prefix = (
        session.execute(sa.select(Deer).where(sa.cast(Deer.id, sa.Text).like(f"{key.lower()}%")).limit(2))
        .scalars()
        .all()
    )
    return by_prefix[0] if len(by_prefix) == 1 else None


def counts_by_sex(session: Session) -> dict[Sex, int]:
    rows = session.execute(sa.select(Deer.sex, sa.func.count()).group_by(Deer.sex)).all()
    return {row[0]: row[1] for row in rows}
