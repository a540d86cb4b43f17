"""Re-identification wired to the runtime context: the database, the active embedder, the threshold.

Both the CLI and the Celery tasks call these; neither knows the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from deerid.app import Deerid
from deerid.reid.service import ReidSummary, reidentify
from deerid.store import detections as det_store


def reidentify_ids(
    app: Deerid, detection_ids: Iterable[int], progress: Callable[[int], None] | None = None
) -> ReidSummary:
    embedder = app.embedder()
    settings = app.settings
    return reidentify(
        app.sessions,
        detection_ids,
        embedder,
        threshold=app.threshold(embedder.model_id).value,
        min_size=settings.min_crop_size,
        batch_size=settings.embed_batch_size,
        progress=progress,
        across_sites=settings.match_across_sites,
    )


def unassigned(app: Deerid, *, include_failed: bool = False) -> list[int]:
    with app.sessions() as session:
        return det_store.unassigned_ids(session, include_failed=include_failed)
