"""Encounter-vs-individual scores: the pairs the same-animal probability is fitted on.

The pipeline matches an encounter (a track; in a labelled folder, one sighting's
photos) against a deer by the best cosine similarity between any of the
encounter's images and any of the deer's. So the calibrated score is exactly that:
for each encounter and each individual with at least one *other* encounter, the
max similarity between the encounter's images and that individual's images outside
the encounter. Pairs inside one encounter are never evidence (near-duplicates of
one moment would make the same animal look far easier to recognise than it is).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deerid.domain.probability import SameAnimalProbability
from deerid.evaluation.data import LabelledSet


@dataclass(frozen=True)
class EncounterPairs:
    scores: np.ndarray  # float64: max cosine, encounter × the individual's other encounters
    same: np.ndarray  # bool: the encounter is of that individual
    encounter: np.ndarray  # sighting code of the query encounter (LabelledSet.sighting)
    individual: np.ndarray  # individual code of the candidate (LabelledSet.individual)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def n_same(self) -> int:
        return int(self.same.sum())


def encounter_pairs(data: LabelledSet) -> EncounterPairs:
    """One pair per (encounter, individual that has images outside the encounter)."""
    sim = data.similarity
    by_individual = np.argsort(data.individual, kind="stable")
    sorted_ind = data.individual[by_individual]
    starts = np.flatnonzero(np.r_[True, sorted_ind[1:] != sorted_ind[:-1]])
    present = sorted_ind[starts]  # individual code of each segment
    scores: list[np.ndarray] = []
    same: list[np.ndarray] = []
    enc: list[np.ndarray] = []
    ind: list[np.ndarray] = []
    for e in np.unique(data.sighting):
        rows = np.flatnonzero(data.sighting == e)
        best = sim[rows].max(axis=0)
        best[rows] = -np.inf  # never through the encounter itself
        per_individual = np.maximum.reduceat(best[by_individual], starts)
        ok = np.isfinite(per_individual)  # -inf: the individual has nothing outside this encounter
        scores.append(per_individual[ok])
        same.append(present[ok] == data.individual[rows[0]])
        enc.append(np.full(int(ok.sum()), e))
        ind.append(present[ok])
    if not scores:
        empty = np.zeros(0)
        return EncounterPairs(empty, empty.astype(bool), empty.astype(np.int64), empty.astype(np.int64))
    return EncounterPairs(
        np.concatenate(scores), np.concatenate(same), np.concatenate(enc), np.concatenate(ind)
    )


def fit_probability(data: LabelledSet) -> SameAnimalProbability:
    """The same-animal probability of encounter-vs-individual scores on a labelled set.

    Raises ValueError when the set cannot show both kinds of pair (one individual,
    or no individual seen in two encounters)."""
    pairs = encounter_pairs(data)
    return SameAnimalProbability.fit(pairs.scores, pairs.same)


def probability_table(
    probability: SameAnimalProbability, scores: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
) -> dict[str, float]:
    """The map at a few scores, for reports and the CLI ("0.90" -> probability)."""
    return {f"{s:.2f}": round(float(probability(s)), 4) for s in scores}
