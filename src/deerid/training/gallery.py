"""The stored deer crops of the active database, as unlabelled input for `adapt()`.

Every deer box that was or will be re-identified (pending or assigned, not too small, not
failed) is one crop. Its encounter is its track: the boxes of one track are one animal by
construction (docs/encounters.md). Boxes a person confirmed into one deer are one animal
too, so their tracks are joined; nothing else a person decided is used.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.core.files import atomic_path
from deerid.db.tables import Detection, DetectionStatus, Image
from deerid.ingest.crop import crop_boxes
from deerid.ingest.photos import PhotoReadError


@dataclass(frozen=True)
class GalleryBox:
    detection_id: int
    image_path: str
    image_sha256: str
    bbox: tuple[float, float, float, float]
    encounter: str


def gallery_boxes(session: Session) -> list[GalleryBox]:
    """Deer boxes with their encounter, in detection order."""
    rows = session.execute(
        sa.select(
            Detection.id,
            Detection.track_id,
            Detection.deer_id,
            Detection.confirmed_at,
            Detection.bbox_x,
            Detection.bbox_y,
            Detection.bbox_w,
            Detection.bbox_h,
            Image.path,
            Image.sha256,
        )
        .join(Image, Image.id == Detection.image_id)
        .where(
            Detection.sex.is_not(None),
            Detection.status.in_([DetectionStatus.ASSIGNED, DetectionStatus.PENDING]),
            Image.missing_since.is_(None),
        )
        .order_by(Detection.id)
    ).all()
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    own: dict[int, str] = {}
    for det_id, track_id, deer_id, confirmed_at, *_ in rows:
        key = f"t{track_id}" if track_id is not None else f"d{det_id}"
        own[det_id] = find(key)
        if confirmed_at is not None and deer_id is not None:
            a, b = find(key), find(f"deer{deer_id}")
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [
        GalleryBox(det_id, path, sha, (x, y, w, h), find(own[det_id]))
        for det_id, _, _, _, x, y, w, h, path, sha in rows
    ]


def source_key(boxes: list[GalleryBox], config_json: dict[str, Any]) -> str:
    """Changes when any box, its photo, its encounter or the config changes."""
    rows = [[b.detection_id, b.image_sha256, list(b.bbox), b.encounter] for b in boxes]
    return hashlib.sha256(json.dumps({"boxes": rows, "config": config_json}).encode()).hexdigest()


def export_crops(
    boxes: list[GalleryBox],
    out_dir: Path,
    target_size: int,
    min_crop_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[tuple[Path, str]], list[str]]:
    """Write each box's crop to `out_dir/<detection id>.jpg` (kept across a rerun).

    Returns ((path, encounter) per crop written or found, problems)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_photo: dict[str, list[GalleryBox]] = defaultdict(list)
    for b in boxes:
        by_photo[b.image_path].append(b)
    crops: list[tuple[Path, str]] = []
    problems: list[str] = []
    done = 0
    for path, items in by_photo.items():
        todo = [b for b in items if not (out_dir / f"{b.detection_id}.jpg").is_file()]
        results = []
        if todo:
            try:
                results = crop_boxes(Path(path), [b.bbox for b in todo], min_crop_size, target_size)
            except (OSError, PhotoReadError, ValueError) as exc:
                problems.append(str(exc))
                todo = []
        for b, crop in zip(todo, results, strict=True):
            if crop.image is None:
                problems.append(f"detection {b.detection_id}: crop under MIN_CROP_SIZE")
                continue
            with atomic_path(out_dir / f"{b.detection_id}.jpg") as tmp:
                crop.image.save(tmp, format="JPEG", quality=95)
        for b in items:
            target = out_dir / f"{b.detection_id}.jpg"
            if target.is_file():
                crops.append((target, b.encounter))
        done += len(items)
        if progress:
            progress(done, len(boxes))
    return crops, problems
