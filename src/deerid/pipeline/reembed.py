"""Re-embed stored detections with the active model, so vectors are never mixed.

Assignments are kept (people may have confirmed them); only the vectors, their
model id and the profiles' derived fields change. Detections already embedded
by the active model are skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from deerid.core.config import Settings
from deerid.db.session import session_factory
from deerid.db.tables import Deer, Detection, DetectionStatus
from deerid.registry.models import active_embedder
from deerid.reid.service import embed_detections
from deerid.store.deer import recompute_profile


def stale_detections(settings: Settings, model_id: str) -> list[int]:
    with session_factory(settings)() as session:
        return list(
            session.execute(
                sa.select(Detection.id).where(
                    Detection.sex.is_not(None),
                    Detection.status.in_(
                        [DetectionStatus.ASSIGNED, DetectionStatus.PENDING, DetectionStatus.FAILED]
                    ),
                    sa.or_(Detection.model_id.is_distinct_from(model_id), Detection.embedding.is_(None)),
                )
            ).scalars()
        )


def reembed(
    settings: Settings, progress: Callable[[str, int], Callable[[int], None]] | None = None
) -> dict[str, Any]:
    embedder = active_embedder(settings)
    ids = stale_detections(settings, embedder.model_id)
    advance = progress("re-embedding", len(ids)) if progress else None
    factory = session_factory(settings)
    errors = embed_detections(
        factory,
        ids,
        embedder,
        min_size=settings.min_crop_size,
        batch_size=settings.embed_batch_size,
        force=True,
        mark_failed=False,  # an assigned sighting whose photo moved keeps its deer; it is reported
        progress=advance,
    )
    with factory() as session, session.begin():
        session.execute(sa.update(Deer).values(model_id=embedder.model_id))
        deer_ids = list(session.execute(sa.select(Deer.id)).scalars())
        for deer_id in deer_ids:
            recompute_profile(session, deer_id)
    return {
        "model_id": embedder.model_id,
        "detections": len(ids),
        "reembedded": len(ids) - len(errors),
        "failed": [{"detection_id": det_id, "reason": reason} for det_id, reason in sorted(errors.items())],
        "deer": len(deer_ids),
    }
