"""Detection rows: boxes as the detector gave them, their status, embedding and deer."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from deerid.db.tables import EMBEDDING_DIM, Detection, DetectionStatus, Image
from deerid.domain.classes import Sex
from deerid.errors import Invalid


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


INSERT_CHUNK = 2000
"""Rows per INSERT: 13 bind parameters a row stays far under the driver's 65,535 (F5)."""

_BBOX_TOLERANCE = 1e-9


@dataclass
class DetectionChanges:
    new_ids: list[int] = field(default_factory=list)
    changed_ids: list[int] = field(default_factory=list)  # stored boxes replaced by a corrected file
    unassigned_deer: set[uuid.UUID] = field(default_factory=set)  # deer that lost a changed box


def _row(image_id: int, d: NewDetection) -> dict[str, Any]:
    return {
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


def add_detections(session: Session, image_id: int, detections: Sequence[NewDetection]) -> list[int]:
    """Insert boxes not already stored for this image; return the ids of the new rows.

    A box already stored under the same index with another box or class is
    updated (see `upsert_detections`)."""
    return upsert_detections(session, image_id, detections).new_ids


def _differs(row: Any, d: NewDetection) -> bool:
    stored = (row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h)
    if any(abs(float(a) - float(b)) > _BBOX_TOLERANCE for a, b in zip(stored, d.bbox, strict=True)):
        return True
    return bool(row.category != d.category or row.class_label != d.class_label)


def upsert_detections(
    session: Session, image_id: int, detections: Sequence[NewDetection]
) -> DetectionChanges:
    """Store a photo's boxes: new indexes are inserted (in chunks), and a stored box whose
    coordinates, category or class differ from the file's (a corrected detections file) is
    replaced. The replaced version is appended to its `box_history`, and the box leaves its
    deer and waits for re-identification again (`pending`, no embedding, no track) (F15).
    Same box, same index: nothing changes."""
    changes = DetectionChanges()
    if not detections:
        return changes
    # FOR UPDATE: two ingests of one corrected file replace each box once.
    stored = {
        row.source_index: row
        for row in session.execute(
            sa.select(Detection).where(Detection.image_id == image_id).with_for_update()
        ).scalars()
    }
    fresh = [d for d in detections if d.source_index not in stored]
    when = now()
    for d in detections:
        row = stored.get(d.source_index)
        if row is None or not _differs(row, d):
            continue
        history = list(row.box_history or [])
        history.append(
            {
                "bbox": [row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h],
                "detector_conf": row.detector_conf,
                "category": row.category,
                "class_label": row.class_label,
                "class_conf": row.class_conf,
                "sex": row.sex.value if row.sex is not None else None,
                "status": row.status.value,
                "deer_id": str(row.deer_id) if row.deer_id is not None else None,
                "assignment": row.assignment.value if row.assignment is not None else None,
                "replaced_at": when.isoformat(),
            }
        )
        if row.deer_id is not None:
            changes.unassigned_deer.add(row.deer_id)
        values = _row(image_id, d)
        values.update(
            box_history=history,
            embedding=None,
            model_id=None,
            deer_id=None,
            similarity=None,
            matched_detection_id=None,
            assignment=None,
            reidentified_at=None,
            confirmed_at=None,
            track_id=None,
        )
        session.execute(sa.update(Detection).where(Detection.id == row.id).values(**values))
        changes.changed_ids.append(row.id)
    session.flush()
    for start in range(0, len(fresh), INSERT_CHUNK):
        stmt = (
            insert(Detection)
            .values([_row(image_id, d) for d in fresh[start : start + INSERT_CHUNK]])
            .on_conflict_do_nothing(constraint="uq_detections_image_source_index")
            .returning(Detection.id)
        )
        changes.new_ids.extend(session.execute(stmt).scalars())
    if changes.unassigned_deer:
        from deerid.store.deer import recompute_profile

        for deer_id in changes.unassigned_deer:
            recompute_profile(session, deer_id)
    return changes


def check_embedding(vector: np.ndarray) -> np.ndarray:
    """Refuse vectors the index cannot hold, with the reason."""
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.shape[0] != EMBEDDING_DIM:
        raise Invalid(f"embedding has {vec.shape[0]} dimensions, expected {EMBEDDING_DIM}")
    if not np.all(np.isfinite(vec)):
        raise Invalid("embedding contains NaN or infinite values")
    norm = float(np.linalg.norm(vec))
    if abs(norm - 1.0) > 1e-3:
        raise Invalid(f"embedding is not L2-normalised (norm {norm:.4f})")
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
    # What the photo was when stored: checked before cropping (store.photos.verify_file, F14).
    image_sha256: str | None = None
    file_size: int | None = None
    file_mtime: float | None = None


def work_items(session: Session, detection_ids: Sequence[int]) -> list[WorkItem]:
    queries = [
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
            Image.sha256,
            Image.file_size,
            Image.file_mtime,
            Image.captured_at,
        )
        .join(Image, Image.id == Detection.image_id)
        .where(Detection.id.in_(chunk))
        .order_by(Image.captured_at.nulls_last(), Detection.id)
        for chunk in _chunks(list(detection_ids))
    ]
    rows = [r for q in queries for r in session.execute(q).all()]
    if len(detection_ids) > _QUERY_CHUNK:  # chunks each come sorted; sort them together again
        rows.sort(key=lambda r: (r[13] is None, r[13] or datetime.min, r[0]))
    return [
        WorkItem(
            r[0],
            r[1],
            r[2],
            (r[3], r[4], r[5], r[6]),
            r[7] or Sex.UNKNOWN,
            r[8],
            bool(r[9]),
            r[10],
            r[11],
            r[12],
        )
        for r in rows
    ]


_QUERY_CHUNK = 10_000


def _chunks(ids: list[int], size: int = _QUERY_CHUNK) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)] or [[]]


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
