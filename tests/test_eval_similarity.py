"""Same- vs different-individual similarity statistics on hand-built sets."""

from __future__ import annotations

import numpy as np
import pytest

from deerid.evaluation.data import LabelledSet
from deerid.evaluation.similarity import (
    pair_similarities,
    roc_auc,
    roc_curve,
    similarity_stats,
    threshold_at_false_accept,
)


def unit_vectors_at(*degrees: float) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


# A/1 0°, A/1 0° (same sighting: never a pair), A/2 60°, B/1 90°.
SMALL = LabelledSet.build(unit_vectors_at(0, 0, 60, 90), ["A", "A", "A", "B"], ["1", "1", "2", "1"])


def test_pairs_skip_the_same_sighting() -> None:
    same, different = pair_similarities(SMALL)
    assert sorted(same) == pytest.approx([0.5, 0.5])  # each A/1 photo with A/2: cos 60°
    assert sorted(different) == pytest.approx([0.0, 0.0, np.cos(np.deg2rad(30))], abs=1e-12)


def test_stats_on_the_small_set() -> None:
    stats = similarity_stats(SMALL, far=0.0)
    assert (stats.n_same_pairs, stats.n_different_pairs) == (2, 3)
    assert stats.same_median == pytest.approx(0.5)
    assert stats.different_median == pytest.approx(0.0, abs=1e-12)
    # Same pairs (0.5) beat the two orthogonal pairs but lose to A/2–B/1 (0.866).
    assert stats.auc == pytest.approx(4 / 6)
    # No different pair may be accepted: just above 0.866, where no same pair reaches.
    _, different = pair_similarities(SMALL)
    assert stats.threshold_at_far == pytest.approx(np.cos(np.deg2rad(30)))
    assert stats.threshold_at_far > different.max()
    assert stats.tar_at_far == 0.0
    assert stats.same_histogram.sum() == 2 and stats.different_histogram.sum() == 3
    assert stats.as_dict()["same_percentiles"]["50"] == pytest.approx(0.5)


def test_auc_counts_ties_half() -> None:
    assert roc_auc(np.array([0.9, 0.8]), np.array([0.7, 0.8])) == pytest.approx(3.5 / 4)
    assert roc_auc(np.array([1.0]), np.array([0.0])) == 1.0
    assert roc_auc(np.array([0.0]), np.array([1.0])) == 0.0
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(size=200)
    brute = np.mean((a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :]))
    assert roc_auc(a, b) == pytest.approx(brute)


def test_threshold_at_false_accept_rate() -> None:
    negatives = np.arange(1, 11) / 10  # 0.1 … 1.0
    t = threshold_at_false_accept(negatives, 0.2)
    assert np.mean(negatives >= t) == 0.2 and t == pytest.approx(0.8)
    assert np.mean(negatives >= threshold_at_false_accept(negatives, 0.0)) == 0.0
    assert threshold_at_false_accept(negatives, 1.0) == 0.1
    assert np.mean(negatives >= threshold_at_false_accept(negatives, 0.29)) == pytest.approx(0.2)
    # Three tied scores cannot be half accepted: the rate stays within budget by taking none.
    tied = np.array([0.5, 0.5, 0.5, 0.1])
    assert np.mean(tied >= threshold_at_false_accept(tied, 0.5)) == 0.0


def test_roc_curve_runs_from_corner_to_corner() -> None:
    rng = np.random.default_rng(1)
    fpr, tpr = roc_curve(rng.normal(1, 1, 5000), rng.normal(0, 1, 5000))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert len(fpr) <= 520


def test_needs_both_kinds_of_pair() -> None:
    one_each = LabelledSet.build(unit_vectors_at(0, 10), ["A", "B"], ["1", "1"])
    with pytest.raises(ValueError, match="same- and different-individual pairs"):
        similarity_stats(one_each)
    with pytest.raises(ValueError, match="false-accept rate"):
        similarity_stats(SMALL, far=2.0)


def test_labelled_set_refuses_bad_vectors() -> None:
    with pytest.raises(ValueError, match="one vector, individual and sighting"):
        LabelledSet.build(unit_vectors_at(0, 10), ["A"], ["1", "2"])
    with pytest.raises(ValueError, match="zero vector"):
        LabelledSet.build(np.zeros((2, 3)), ["A", "B"], ["1", "1"])
    with pytest.raises(ValueError, match="NaN"):
        LabelledSet.build(np.full((2, 3), np.nan), ["A", "B"], ["1", "1"])
