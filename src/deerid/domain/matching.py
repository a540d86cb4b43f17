"""The re-identification rule, free of any database or framework.

A new sighting is compared with the stored sightings of deer of the same sex
(the caller supplies the nearest ones). Each deer scores by an aggregation of
its sightings' similarities; the best deer at or above the threshold is a
match, otherwise the sighting founds a new profile. Deer that already have a
sighting in the same photo are never candidates: two boxes in one photo are
two animals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

import numpy as np


class Aggregation(StrEnum):
    NEAREST = "nearest"  # the deer's single most similar sighting
    TOP2_MEAN = "top2_mean"  # mean of its two most similar sightings (one if it has one)


@dataclass(frozen=True)
class Candidate:
    """One stored sighting near the query."""

    detection_id: int
    deer_id: UUID
    similarity: float


@dataclass(frozen=True)
class Decision:
    deer_id: UUID | None  # None: found a new deer
    similarity: float | None  # score of the chosen deer, or of the best rejected one for a new deer
    via_detection_id: int | None  # the stored sighting that most resembled the query

    @property
    def is_match(self) -> bool:
        return self.deer_id is not None


def score_deer(candidates: Iterable[Candidate], aggregation: Aggregation) -> dict[UUID, tuple[float, int]]:
    """Per deer: (score, id of its most similar sighting)."""
    by_deer: dict[UUID, list[Candidate]] = defaultdict(list)
    for cand in candidates:
        by_deer[cand.deer_id].append(cand)
    scores: dict[UUID, tuple[float, int]] = {}
    for deer_id, cands in by_deer.items():
        cands.sort(key=lambda c: c.similarity, reverse=True)
        if aggregation is Aggregation.NEAREST:
            score = cands[0].similarity
        else:
            score = float(np.mean([c.similarity for c in cands[:2]]))
        scores[deer_id] = (score, cands[0].detection_id)
    return scores


def decide(
    candidates: Sequence[Candidate],
    threshold: float,
    *,
    excluded_deer: Collection[UUID] = (),
    aggregation: Aggregation = Aggregation.NEAREST,
) -> Decision:
    """Match to the best-scoring deer at or above `threshold`, else a new deer.

    `excluded_deer` are deer already seen in the query's own photo.
    Ties go to the deer whose best sighting has the lower id (seen first), so
    the outcome never depends on the order the database returned rows in.
    """
    scores = score_deer((c for c in candidates if c.deer_id not in excluded_deer), aggregation)
    if not scores:
        return Decision(None, None, None)
    deer_id, (score, via) = max(scores.items(), key=lambda item: (item[1][0], -item[1][1]))
    if score >= threshold:
        return Decision(deer_id, score, via)
    return Decision(None, score, via)


def normalise(vector: np.ndarray) -> np.ndarray:
    """L2-normalise; a zero vector is an error, not a silent NaN."""
    vec = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("cannot normalise a zero or non-finite vector")
    return vec / norm
