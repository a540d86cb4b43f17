"""Re-embed stored detections with the active model, so vectors are never mixed.

Assignments are kept (people may have confirmed them); only the vectors, their
model id and the profiles' derived fields change. Detections already embedded
by the active model are skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from deerid.app import Deerid
from deerid.db.tables import Deer, Detection, DetectionStatus
from deerid.reid.service import embed_detections
from deerid.store.deer import recompute_profile


@dataclass(frozen=True)
class FailedBox:
    detection_id: int
    reason: str


@dataclass(frozen=True)
class ReembedReport:
    model_id: str
    detections: int  # stored boxes whose vectors were not the active model's
    reembedded: int
    deer: int  # profiles recomputed
    failed: list[FailedBox] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stale_detections(app: Deerid, model_id: str) -> list[int]:
    with app.sessions() as session:
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
    app: Deerid, progress: Callable[[str, int], Callable[[int], None]] | None = None
) -> ReembedReport:
    settings = app.settings
    embedder = app.embedder()
    ids = stale_detections(app, embedder.model_id)
    advance = progress("re-embedding", len(ids)) if progress else None
    factory = app.sessions
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
    return ReembedReport(
        model_id=embedder.model_id,
        detections=len(ids),
        reembedded=len(ids) - len(errors),
        deer=len(deer_ids),
        failed=[FailedBox(det_id, reason) for det_id, reason in sorted(errors.items())],
    )
