"""Detection rows: boxes as the detector gave them, their status, embedding and deer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from deerid.domain.classes import Sex
from deerid.models import EMBEDDING_DIM, Detection, DetectionStatus, Image


@dataclass(frozen=True)
class NewDetection:
    source_index: int
    bbox: tuple[float, float, float, float]
    detector_conf: float
    category: str
    class_label: str | None
    class_conf: float | None
    sex: Sex | None
    status: DetectionStatus
    error: str | None = None


def add_detections(session: Session, image_id: int, detections: Sequence[NewDetection]) -> list[int]:
    """Insert boxes not already stored for this image; return the ids of the new rows."""
    if not detections:
        return []
    rows = [
        {
            "image_id": image_id,
            "source_index": d.source_index,
            "bbox_x": d.bbox[0],
            "bbox_y": d.bbox[1],
            "bbox_w": d.bbox[2],
            "bbox_h": d.bbox[3],
            "detector_conf": d.detector_conf,
            "category": d.category,
            "class_label": d.class_label,
            "class_conf": d.class_conf,
            "sex": d.sex,
            "status": d.status,
            "error": d.error,
        }
        for d in detections
    ]
    stmt = (
        insert(Detection)
        .values(rows)
        .on_conflict_do_nothing(constraint="uq_detections_image_source_index")
        .returning(Detection.id)
    )
    return list(session.execute(stmt).scalars())


def check_embedding(vector: np.ndarray) -> np.ndarray:
    """Refuse vectors the index cannot hold, with the reason."""
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.shape[0] != EMBEDDING_DIM:
        raise ValueError(f"embedding has {vec.shape[0]} dimensions, expected {EMBEDDING_DIM}")
    if not np.all(np.isfinite(vec)):
        raise ValueError("embedding contains NaN or infinite values")
    norm = float(np.linalg.norm(vec))
    if abs(norm - 1.0) > 1e-3:
        raise ValueError(f"embedding is not L2-normalised (norm {norm:.4f})")
    return vec


def set_embedding(session: Session, detection_id: int, vector: np.ndarray, model_id: str) -> None:
    session.execute(
        sa.update(Detection)
        .where(Detection.id == detection_id)
        .values(embedding=check_embedding(vector), model_id=model_id, error=None)
    )


def mark_failed(session: Session, detection_id: int, reason: str) -> None:
    session.execute(
        sa.update(Detection)
        .where(Detection.id == detection_id)
        .values(status=DetectionStatus.FAILED, error=reason)
    )


@dataclass(frozen=True)
class WorkItem:
    """What re-identification needs to know about one detection."""

    detection_id: int
    image_id: int
    image_path: str
    bbox: tuple[float, float, float, float]
    sex: Sex
    model_id: str | None
    has_embedding: bool


def work_items(session: Session, detection_ids: Sequence[int]) -> list[WorkItem]:
    rows = session.execute(
        sa.select(
            Detection.id,
            Detection.image_id,
            Image.path,
            Detection.bbox_x,
            Detection.bbox_y,
            Detection.bbox_w,
            Detection.bbox_h,
            Detection.sex,
            Detection.model_id,
            Detection.embedding.is_not(None),
        )
        .join(Image, Image.id == Detection.image_id)
        .where(Detection.id.in_(detection_ids))
        .order_by(Image.captured_at.nulls_last(), Detection.id)
    ).all()
    return [
        WorkItem(r[0], r[1], r[2], (r[3], r[4], r[5], r[6]), r[7] or Sex.UNKNOWN, r[8], bool(r[9]))
        for r in rows
    ]


def unassigned_ids(session: Session, *, include_failed: bool = False) -> list[int]:
    """Deer boxes waiting for re-ID, oldest capture first (first/last seen then grow in order)."""
    statuses = [DetectionStatus.PENDING]
    if include_failed:
        statuses.append(DetectionStatus.FAILED)
    rows = session.execute(
        sa.select(Detection.id)
        .join(Image, Image.id == Detection.image_id)
        .where(Detection.status.in_(statuses), Detection.deer_id.is_(None), Detection.sex.is_not(None))
        .order_by(Image.captured_at.nulls_last(), Detection.id)
    )
    return list(rows.scalars())


def now() -> datetime:
    return datetime.now(UTC)
