"""Photos, boxes and vectors built by hand through the real store functions, so the right
matching answer is known."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from deerid.db.tables import Deer, DetectionStatus
from deerid.domain.classes import Sex
from deerid.reid.service import ReidResult, assign_detection
from deerid.store import detections as det_store
from deerid.store import photos as photo_store

MODEL = "test-model-1"
T0 = datetime(2024, 11, 1, 6, 0)


def random_unit_vector(seed: int, dim: int = 512) -> np.ndarray:
    vec = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vec / np.linalg.norm(vec)


def near(vec: np.ndarray, cosine: float, seed: int) -> np.ndarray:
    """A unit vector at exactly `cosine` similarity to `vec`."""
    other = random_unit_vector(seed)
    other -= other.dot(vec) * vec
    other /= np.linalg.norm(other)
    out = cosine * vec + np.sqrt(1 - cosine**2) * other
    return (out / np.linalg.norm(out)).astype(np.float32)


class World:
    """Photos and deer boxes written through the real store functions."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.photos = 0

    def photo(self, when: datetime = T0, camera: str = "test cam", site: str | None = None) -> int:
        self.photos += 1
        with self.factory() as s, s.begin():
            cam = photo_store.camera_id_for(s, camera, site=site)
            image_id, _ = photo_store.add_image(
                s,
                path=f"/nowhere/{self.photos}.jpg",
                sha256=f"{self.photos:064x}",
                camera_id=cam,
                captured_at=when,
                captured_at_source="exif_datetime_original",
                width=1920,
                height=1080,
                file_size=1,
            )
        return image_id

    def box(
        self, image_id: int, vec: np.ndarray, sex: Sex = Sex.BUCK, model: str = MODEL, index: int = 0
    ) -> int:
        with self.factory() as s, s.begin():
            (det_id,) = det_store.add_detections(
                s,
                image_id,
                [
                    det_store.NewDetection(
                        source_index=index,
                        bbox=(0.1, 0.1, 0.3, 0.3),
                        detector_conf=0.9,
                        category="animal",
                        class_label="mid",
                        class_conf=0.9,
                        sex=sex,
                        status=DetectionStatus.PENDING,
                    )
                ],
            )
            det_store.set_embedding(s, det_id, vec, model)
        return det_id

    def sighting(self, vec: np.ndarray, when: datetime = T0, **kw: object) -> int:
        return self.box(self.photo(when), vec, **kw)  # type: ignore[arg-type]


def assign(world: World, det_id: int, threshold: float = 0.85, model: str = MODEL) -> ReidResult:
    return assign_detection(world.factory, det_id, threshold=threshold, model_id=model)


def deer_row(world: World, deer_id: object) -> Deer:
    with world.factory() as s:
        deer = s.get(Deer, deer_id)
        assert deer is not None
        return deer
