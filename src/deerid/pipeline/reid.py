"""Re-identification wired to the settings: the database, the active embedder, the threshold.

Both the CLI and the Celery tasks call these; neither knows the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from deerid.core.config import Settings
from deerid.db.session import session_factory
from deerid.reid.service import ReidSummary, reidentify
from deerid.store import detections as det_store


def reidentify_ids(
    settings: Settings, detection_ids: Iterable[int], progress: Callable[[int], None] | None = None
) -> ReidSummary:
    from deerid.embed.embedder import get_embedder

    return reidentify(
        session_factory(settings),
        detection_ids,
        get_embedder(settings),
        threshold=settings.reid_threshold,
        min_size=settings.min_crop_size,
        batch_size=settings.embed_batch_size,
        progress=progress,
    )


def unassigned(settings: Settings, *, include_failed: bool = False) -> list[int]:
    with session_factory(settings)() as session:
        return det_store.unassigned_ids(session, include_failed=include_failed)
