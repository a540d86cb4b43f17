"""Deer profiles: nearest sightings, assignment, and the profile's derived fields.

A profile's derived fields are always recomputed from its sightings, never
nudged incrementally, so a merge, a split or a re-run can never leave counts
or dates out of step:
- sighting_count: number of detections assigned to the deer;
- first_seen / last_seen: earliest / latest capture time of those photos;
- feature_vector: L2-normalised mean of the sightings' embeddings (of the
  deer's model id): a summary for display and for "similar deer" search;
  matching itself compares against every sighting;
- confidence: mean similarity with which sightings joined the deer by
  matching; NULL while the deer has only its founding sighting.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.orm import Session

from deerid.domain.classes import Sex
from deerid.domain.matching import Candidate
from deerid.models import EMBEDDING_DIM, Assignment, Deer, Detection, DetectionStatus, Image

NEIGHBOURS = 64  # sightings fetched per query: enough to cover several deer with many sightings each

_NAME_PREFIX = {Sex.BUCK: "Buck", Sex.DOE: "Doe", Sex.FAWN: "Fawn", Sex.UNKNOWN: "Deer"}


def lock_partition(session: Session, sex: Sex) -> None:
    """Serialise matching within one sex partition until the transaction ends.

    Without it two processes could each find no match for the same new animal
    and found two profiles for it."""
    session.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"deerid:match:{sex.value}"}
    )


def nearest_sightings(
    session: Session,
    vector: np.ndarray,
    *,
    sex: Sex,
    model_id: str,
    exclude_detection: int,
    limit: int = NEIGHBOURS,
) -> list[Candidate]:
    """Nearest assigned sightings of deer of `sex` embedded by `model_id`, by cosine similarity."""
    _tune_hnsw(session, limit)
    distance = Detection.embedding.cosine_distance(vector)
    rows = session.execute(
        sa.select(Detection.id, Detection.deer_id, (1 - distance).label("similarity"))
        .where(
            Detection.sex == sex,
            Detection.model_id == model_id,
            Detection.deer_id.is_not(None),
            Detection.id != exclude_detection,
        )
        .order_by(distance)
        .limit(limit)
    ).all()
    # An iterative scan may return rows slightly out of order; the caller wants them sorted.
    return sorted((Candidate(r[0], r[1], float(r[2])) for r in rows), key=lambda c: -c.similarity)


_iterative_scan: dict[str, bool] = {}


def _tune_hnsw(session: Session, limit: int) -> None:
    """Make the HNSW index return enough rows once the sex/model filters are applied.

    An HNSW scan yields at most `hnsw.ef_search` rows (default 40) and the
    WHERE clause filters them afterwards, so a filtered query could return
    fewer neighbours than asked for. pgvector 0.8 adds iterative scans, which
    keep searching until the LIMIT is met; older servers get a larger ef_search.
    """
    url = str(session.get_bind().url)
    if url not in _iterative_scan:
        version = session.execute(
            sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar_one()
        major, minor = (int(p) for p in version.split(".")[:2])
        _iterative_scan[url] = (major, minor) >= (0, 8)
    session.execute(sa.text("SELECT set_config('hnsw.ef_search', :v, true)"), {"v": str(max(100, 2 * limit))})
    # The planner costs an HNSW scan as if it read the whole table, so below ~100k rows it
    # picks a sequential (or bitmap) scan plus a sort: 22 ms instead of 2 ms at 10k
    # sightings (benchmarks/ingest.py). Only for this query's transaction.
    session.execute(sa.text("SELECT set_config('enable_seqscan', 'off', true)"))
    session.execute(sa.text("SELECT set_config('enable_bitmapscan', 'off', true)"))
    if _iterative_scan[url]:
        session.execute(sa.text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)"))


def deer_in_image(session: Session, image_id: int, *, except_detection: int) -> set[uuid.UUID]:
    rows = session.execute(
        sa.select(Detection.deer_id).where(
            Detection.image_id == image_id,
            Detection.deer_id.is_not(None),
            Detection.id != except_detection,
        )
    )
    return set(rows.scalars())


def create_deer(session: Session, sex: Sex, model_id: str) -> uuid.UUID:
    number = session.execute(sa.text(f"SELECT nextval('deer_number_{sex.value}')")).scalar_one()
    deer_id = uuid.uuid4()
    session.add(
        Deer(id=deer_id, name=f"{_NAME_PREFIX[sex]} {number}", sex=sex, model_id=model_id, sighting_count=0)
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


def recompute_profile(session: Session, deer_id: uuid.UUID) -> bool:
    """Refresh a deer's derived fields from its sightings; delete it if none are left.

    Returns False when the deer was deleted."""
    stats = session.execute(
        sa.select(
            sa.func.count(Detection.id),
            sa.func.min(Image.captured_at),
            sa.func.max(Image.captured_at),
            sa.func.avg(Detection.similarity).filter(Detection.assignment == Assignment.MATCHED),
        )
        .join(Image, Image.id == Detection.image_id)
        .where(Detection.deer_id == deer_id)
    ).one()
    count, first_seen, last_seen, confidence = stats
    if count == 0:
        session.execute(sa.delete(Deer).where(Deer.id == deer_id))
        return False
    model_id = session.execute(sa.select(Deer.model_id).where(Deer.id == deer_id)).scalar_one()
    mean = session.execute(
        sa.select(sa.func.avg(Detection.embedding, type_=Vector(EMBEDDING_DIM))).where(
            Detection.deer_id == deer_id, Detection.model_id == model_id
        )
    ).scalar()
    feature = None
    if mean is not None:
        vec = np.asarray(mean, dtype=np.float32)
        norm = float(np.linalg.norm(vec))
        feature = vec / norm if norm > 0 else None
    session.execute(
        sa.update(Deer)
        .where(Deer.id == deer_id)
        .values(
            sighting_count=count,
            first_seen=first_seen,
            last_seen=last_seen,
            confidence=confidence,
            feature_vector=feature,
        )
    )
    return True


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
    return {sex: n for sex, n in rows}
