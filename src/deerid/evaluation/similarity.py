"""How far apart same-individual and different-individual similarities lie.

Only pairs from different sightings count: a left/right pair of one sighting is a
near-duplicate, not a re-identification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deerid.evaluation.data import LabelledSet

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
_HIST_BINS = np.linspace(-1.0, 1.0, 201)  # 0.01 wide: the resolution thresholds are swept at
_ROC_POINTS = 512  # enough for a smooth curve, small enough to keep in a result


@dataclass(frozen=True)
class SimilarityStats:
    """Cosine similarity of same- vs different-individual pairs (different sightings only).

    `threshold_at_far` is the lowest similarity at which at most `far` of the
    different-individual pairs would be accepted (score ≥ threshold); `tar_at_far`
    is the share of same-individual pairs accepted there. AUC is the probability
    that a random same pair scores above a random different pair (ties count half).
    """

    n_same_pairs: int
    n_different_pairs: int
    same_median: float
    different_median: float
    same_percentiles: dict[int, float]
    different_percentiles: dict[int, float]
    auc: float
    far: float
    threshold_at_far: float
    tar_at_far: float
    histogram_edges: np.ndarray
    same_histogram: np.ndarray
    different_histogram: np.ndarray
    roc_false_accept: np.ndarray
    roc_true_accept: np.ndarray

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_same_pairs": self.n_same_pairs,
            "n_different_pairs": self.n_different_pairs,
            "same_median": self.same_median,
            "different_median": self.different_median,
            "same_percentiles": {str(k): v for k, v in self.same_percentiles.items()},
            "different_percentiles": {str(k): v for k, v in self.different_percentiles.items()},
            "auc": self.auc,
            "far": self.far,
            "threshold_at_far": self.threshold_at_far,
            "tar_at_far": self.tar_at_far,
        }


def pair_similarities(data: LabelledSet) -> tuple[np.ndarray, np.ndarray]:
    """(same-individual, different-individual) similarities of each unordered different-sighting pair."""
    i, j = np.triu_indices(len(data), k=1)
    keep = data.sighting[i] != data.sighting[j]
    i, j = i[keep], j[keep]
    sims = data.similarity[i, j]
    same = data.individual[i] == data.individual[j]
    return sims[same], sims[~same]


def similarity_stats(data: LabelledSet, *, far: float = 0.01) -> SimilarityStats:
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"false-accept rate must be in [0, 1], got {far}")
    same, different = pair_similarities(data)
    if same.size == 0 or different.size == 0:
        raise ValueError(
            f"need both same- and different-individual pairs across sightings: "
            f"got {same.size} same, {different.size} different"
        )
    threshold = threshold_at_false_accept(different, far)
    fpr, tpr = roc_curve(same, different)
    return SimilarityStats(
        n_same_pairs=int(same.size),
        n_different_pairs=int(different.size),
        same_median=float(np.median(same)),
        different_median=float(np.median(different)),
        same_percentiles=_percentiles(same),
        different_percentiles=_percentiles(different),
        auc=roc_auc(same, different),
        far=far,
        threshold_at_far=threshold,
        tar_at_far=float(np.mean(same >= threshold)),
        histogram_edges=_HIST_BINS,
        same_histogram=np.histogram(np.clip(same, -1, 1), bins=_HIST_BINS)[0],
        different_histogram=np.histogram(np.clip(different, -1, 1), bins=_HIST_BINS)[0],
        roc_false_accept=fpr,
        roc_true_accept=tpr,
    )


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann–Whitney AUC with tied scores counted half."""
    scores = np.concatenate([positive, negative])
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Average rank of each distinct score (1-based), shared by its ties.
    upper = np.cumsum(counts)
    mean_rank = upper - (counts - 1) / 2.0
    rank_sum = float(mean_rank[inverse[: len(positive)]].sum())
    n_pos, n_neg = len(positive), len(negative)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def threshold_at_false_accept(negative: np.ndarray, far: float) -> float:
    """Lowest threshold t with mean(negative ≥ t) ≤ far."""
    ranked = np.sort(np.asarray(negative, dtype=np.float64))[::-1]
    # The epsilon keeps 0.29 * 100 = 28.999… from allowing one pair too few.
    allowed = int(np.floor(far * len(ranked) + 1e-9))
    if allowed >= len(ranked):
        return float(ranked[-1])
    # Just above the first score that may not be accepted; ties above it are left out too.
    return float(np.nextafter(ranked[allowed], np.inf))


def roc_curve(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-accept, true-accept) rates as the threshold falls, thinned to at most ~512 points."""
    cut = np.unique(np.concatenate([positive, negative]))[::-1]
    if len(cut) > _ROC_POINTS:
        cut = cut[np.linspace(0, len(cut) - 1, _ROC_POINTS).astype(np.int64)]
    pos, neg = np.sort(positive), np.sort(negative)
    tpr = 1.0 - np.searchsorted(pos, cut, side="left") / len(pos)
    fpr = 1.0 - np.searchsorted(neg, cut, side="left") / len(neg)
    return np.r_[0.0, fpr, 1.0], np.r_[0.0, tpr, 1.0]


def _percentiles(values: np.ndarray) -> dict[int, float]:
    return {p: float(v) for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True)}
