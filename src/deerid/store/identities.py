"""Sightings a person confirmed: the labelled data for calibration and training."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import Detection, Image


@dataclass(frozen=True)
class ConfirmedSighting:
    detection_id: int
    deer_id: UUID
    image_id: int
    image_path: str
    bbox: tuple[float, float, float, float]
    embedding: np.ndarray | None
    model_id: str | None


def confirmed_sightings(session: Session) -> list[ConfirmedSighting]:
    """Confirmed detections, grouped by deer. The photo stands for the sighting: two
    boxes of one photo are never the same deer, so a deer has one box per photo."""
    rows = session.execute(
        sa.select(Detection, Image.path)
        .join(Image, Image.id == Detection.image_id)
        .where(Detection.confirmed_at.is_not(None), Detection.deer_id.is_not(None))
        .order_by(Detection.deer_id, Image.captured_at.nulls_last(), Detection.id)
    ).all()
    return [
        ConfirmedSighting(
            det.id,
            det.deer_id,  # type: ignore[arg-type]
            det.image_id,
            path,
            (det.bbox_x, det.bbox_y, det.bbox_w, det.bbox_h),
            np.asarray(det.embedding, dtype=np.float32) if det.embedding is not None else None,
            det.model_id,
        )
        for det, path in rows
    ]
