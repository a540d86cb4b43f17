"""Labelled data from the database: sightings a person confirmed, grouped by deer.

An honest evaluation never lets a photo match another photo of the same
*sighting*. In a folder that is the file-name prefix; here it is a visit:
photos of one deer at one camera less than `VISIT_GAP` apart (a burst of
three frames would otherwise make matching look far easier than it is).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from deerid.app import Deerid
from deerid.db.tables import Detection, Image, ReviewDecision, ReviewDecisionKind
from deerid.domain.probability import SameAnimalProbability
from deerid.errors import Invalid
from deerid.evaluation.data import LabelledSet
from deerid.evaluation.pairs import encounter_pairs
from deerid.ingest.crop import crop_boxes
from deerid.ingest.photos import PhotoReadError
from deerid.store.identities import ConfirmedSighting, confirmed_sightings

VISIT_GAP = timedelta(minutes=10)


class NoLabelledDataError(Invalid):
    pass


@dataclass(frozen=True)
class LabelledVectors:
    vectors: np.ndarray
    individuals: list[str]
    sightings: list[str]
    skipped: int  # confirmed sightings without a vector of the requested model
    detection_ids: tuple[int, ...] = ()  # one per vector


def _visits(app: Deerid, rows: list[ConfirmedSighting]) -> dict[int, str]:
    """detection id -> visit label."""
    with app.sessions() as session:
        meta = {
            img_id: (cam, when)
            for img_id, cam, when in session.execute(
                sa.select(Image.id, Image.camera_id, Image.captured_at).where(
                    Image.id.in_({r.image_id for r in rows})
                )
            ).all()
        }
    by_deer_camera: dict[tuple[str, int | None], list[tuple[datetime | None, int]]] = defaultdict(list)
    for r in rows:
        cam, when = meta[r.image_id]
        by_deer_camera[(str(r.deer_id), cam)].append((when, r.detection_id))
    labels: dict[int, str] = {}
    for (deer, cam), items in by_deer_camera.items():
        items.sort(key=lambda item: (item[0] is None, item[0] or datetime.min, item[1]))
        visit, last = 0, None
        for when, det_id in items:
            if when is None or last is None or when - last > VISIT_GAP:
                visit += 1
            last = when
            labels[det_id] = f"{deer}/{cam}/{visit}"
    return labels


def _require(rows: list[ConfirmedSighting]) -> None:
    deer = {r.deer_id for r in rows}
    if len(deer) < 2:
        raise NoLabelledDataError(
            f"the database holds confirmed sightings of {len(deer)} deer; at least 2 are needed. "
            "Confirm matches in the review queue first, or use a labelled folder."
        )


def confirmed_vectors(app: Deerid, model_id: str) -> LabelledVectors:
    """Stored vectors of confirmed sightings embedded by `model_id` (run `deerid reembed` after a switch)."""
    with app.sessions() as session:
        rows = confirmed_sightings(session)
    _require(rows)
    visits = _visits(app, rows)
    usable = [r for r in rows if r.embedding is not None and r.model_id == model_id]
    if not usable:
        raise NoLabelledDataError(
            f"no confirmed sighting has a vector of model {model_id}: run `deerid reembed`"
        )
    return LabelledVectors(
        np.stack([r.embedding for r in usable]),  # type: ignore[misc]
        [str(r.deer_id) for r in usable],
        [visits[r.detection_id] for r in usable],
        len(rows) - len(usable),
        tuple(r.detection_id for r in usable),
    )


def export_confirmed_crops(app: Deerid, out_dir: Path) -> tuple[list[tuple[Path, str, str]], list[str]]:
    """Write the crops of confirmed sightings as `out_dir/<deer>/<visit>_<detection>.jpg`.

    Returns (samples as (path, individual, sighting), problems)."""
    with app.sessions() as session:
        rows = confirmed_sightings(session)
    _require(rows)
    visits = _visits(app, rows)
    by_photo: dict[str, list[ConfirmedSighting]] = defaultdict(list)
    for r in rows:
        by_photo[r.image_path].append(r)
    samples: list[tuple[Path, str, str]] = []
    problems: list[str] = []
    for path, items in by_photo.items():
        try:
            crops = crop_boxes(Path(path), [r.bbox for r in items], app.settings.min_crop_size)
        except (OSError, PhotoReadError, ValueError) as exc:
            problems.append(str(exc))
            continue
        for r, crop in zip(items, crops, strict=True):
            if crop.image is None:
                problems.append(f"detection {r.detection_id}: crop under MIN_CROP_SIZE")
                continue
            visit = visits[r.detection_id].replace("/", "-")
            target = out_dir / str(r.deer_id) / f"{visit}_{r.detection_id}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            crop.image.save(target, quality=95)
            samples.append((target, str(r.deer_id), visits[r.detection_id]))
    return samples, problems


def rejected_pairs(app: Deerid, model_id: str, data: LabelledVectors) -> np.ndarray:
    """Scores of the pairs people said are different animals (review "reject" decisions).

    The score is the one the pipeline matches on: the rejected sighting's vector against
    the candidate deer's confirmed vectors (the sighting itself left out).
    (The review screen's answers are added by `fit_from_db` from `store.review.decided_pairs`.)
    """
    with app.sessions() as session:
        rows = session.execute(
            sa.select(ReviewDecision.deer_id, Detection.id, Detection.embedding)
            .join(Detection, Detection.id == ReviewDecision.detection_id)
            .where(
                ReviewDecision.decision == ReviewDecisionKind.REJECT,
                Detection.model_id == model_id,
                Detection.embedding.is_not(None),
            )
        ).all()
    if not rows:
        return np.zeros(0)
    vectors = data.vectors / np.linalg.norm(data.vectors, axis=1, keepdims=True)
    deer = np.asarray(data.individuals)
    ids = np.asarray(data.detection_ids)
    scores = []
    for deer_id, detection_id, embedding in rows:
        # The sighting itself is left out should it have been confirmed in that deer after all.
        members = vectors[(deer == str(deer_id)) & (ids != detection_id)]
        if len(members) == 0:
            continue  # the rejected deer has no confirmed sighting of this model to compare with
        v = np.asarray(embedding, dtype=np.float64)
        scores.append(float((members @ (v / np.linalg.norm(v))).max()))
    return np.asarray(scores)


def fit_from_db(app: Deerid, model_id: str) -> SameAnimalProbability:
    """The same-animal probability from what people decided in the database.

    Same-animal pairs: each confirmed visit against its deer's other visits, and every
    match made on the review screen; different: each confirmed visit against every other
    deer, every rejected review pair and every pair answered "none of these".
    Raises NoLabelledDataError when there is too little to fit on.
    """
    from deerid.store.review import decided_pairs

    with app.sessions() as session:
        screen_scores, screen_same = decided_pairs(session, model_id)
    try:
        data = confirmed_vectors(app, model_id)
    except NoLabelledDataError:
        if len(screen_scores) == 0:
            raise
        data = None
    if data is not None:
        pairs = encounter_pairs(LabelledSet.build(data.vectors, data.individuals, data.sightings))
        rejected = rejected_pairs(app, model_id, data)
        visit_scores = np.concatenate([pairs.scores, rejected])
        visit_same = np.concatenate([pairs.same, np.zeros(len(rejected), dtype=bool)])
    else:
        visit_scores, visit_same = np.zeros(0), np.zeros(0, dtype=bool)
    scores = np.concatenate([visit_scores, screen_scores])
    same = np.concatenate([visit_same, screen_same])
    try:
        return SameAnimalProbability.fit(scores, same)
    except ValueError as exc:
        raise NoLabelledDataError(
            f"the confirmed sightings cannot calibrate a probability yet: {exc}"
        ) from exc
