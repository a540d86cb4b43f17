"""Re-identification wired to the settings: the database, the active embedder, the threshold.

Both the CLI and the Celery tasks call these; neither knows the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from deerid.core.config import Settings
from deerid.db.session import session_factory
from deerid.registry.calibration import resolve_threshold
from deerid.registry.models import active_embedder
from deerid.reid.service import ReidSummary, reidentify
from deerid.store import detections as det_store


def reidentify_ids(
    settings: Settings, detection_ids: Iterable[int], progress: Callable[[int], None] | None = None
) -> ReidSummary:
    embedder = active_embedder(settings)
    return reidentify(
        session_factory(settings),
        detection_ids,
        embedder,
        threshold=resolve_threshold(settings, embedder.model_id).value,
        min_size=settings.min_crop_size,
        batch_size=settings.embed_batch_size,
        progress=progress,
        across_sites=settings.match_across_sites,
    )


def unassigned(settings: Settings, *, include_failed: bool = False) -> list[int]:
    with session_factory(settings)() as session:
        return det_store.unassigned_ids(session, include_failed=include_failed)
