"""Retrieval metrics on hand-built vector sets whose answers are worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics

NYALA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nyala" / "train"


def unit_vectors_at(*degrees: float) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


# idx  individual sighting angle
#  0   A          s1       0
#  1   A          s1       0    (same sighting as 0: must never match it)
#  2   B          s1      10
#  3   A          s2      40
#  4   B          s2      12
#  5   C          s1     200    (C has one sighting: excluded)
VECTORS = unit_vectors_at(0, 0, 10, 40, 12, 200)
INDIVIDUALS = ["A", "A", "B", "A", "B", "C"]
SIGHTINGS = ["s1", "s1", "s1", "s2", "s2", "s1"]


def test_known_answer_with_sighting_rule() -> None:
    # Rankings (gallery = other sightings), hits marked *:
    # q0: 2, 4, 3*, 5       → miss, AP 1/3
    # q1: same as q0        → miss, AP 1/3
    # q2: 4*, 0, 1, 3, 5    → hit,  AP 1
    # q3: 4, 2, 0*, 1*, 5   → miss, AP (1/3 + 2/4)/2 = 5/12
    # q4: 2*, 0, 1, 3, 5    → hit,  AP 1
    result = retrieval_metrics(VECTORS, INDIVIDUALS, SIGHTINGS)
    assert result["n_queries"] == 5
    assert result["n_excluded"] == 1
    assert result["top1"] == pytest.approx(2 / 5)
    assert result["top5"] == pytest.approx(1.0)
    assert result["mAP"] == pytest.approx((1 / 3 + 1 / 3 + 1 + 5 / 12 + 1) / 5)


def test_same_sighting_never_counts_as_a_match() -> None:
    # Had images 0 and 1 been allowed to match each other, both would be top-1 hits.
    one_sighting_each = ["s1", "s1b", "s1", "s2", "s2", "s1"]
    assert retrieval_metrics(VECTORS, INDIVIDUALS, one_sighting_each)["top1"] == pytest.approx(4 / 5)
    assert retrieval_metrics(VECTORS, INDIVIDUALS, SIGHTINGS)["top1"] == pytest.approx(2 / 5)


def test_equal_sighting_labels_of_different_individuals_are_different_sightings() -> None:
    # X1 0°, X2 50°, Y1 10°, Y2 100°: every query's nearest is the other individual.
    # Keying sightings by label alone would drop Y1 from X1's gallery and make X1 a hit.
    result = retrieval_metrics(unit_vectors_at(0, 50, 10, 100), ["X", "X", "Y", "Y"], ["1", "2", "1", "2"])
    assert result["n_queries"] == 4
    assert result["top1"] == 0.0


def test_cosine_so_row_scale_does_not_matter() -> None:
    scaled = VECTORS * np.array([[3.0], [0.5], [7.0], [1.0], [2.0], [10.0]])
    assert retrieval_metrics(scaled, INDIVIDUALS, SIGHTINGS) == retrieval_metrics(
        VECTORS, INDIVIDUALS, SIGHTINGS
    )


def test_no_valid_query_gives_nan_rates() -> None:
    result = retrieval_metrics(unit_vectors_at(0, 10), ["A", "B"], ["1", "1"])
    assert result["n_queries"] == 0
    assert result["n_excluded"] == 2
    assert math.isnan(result["top1"]) and math.isnan(result["mAP"])


def test_mismatched_lengths_rejected() -> None:
    with pytest.raises(ValueError, match="one vector, individual and sighting per image"):
        retrieval_metrics(VECTORS, INDIVIDUALS[:-1], SIGHTINGS)


def test_load_identity_folder_layout(tmp_path: Path) -> None:
    for rel in ["b/12_leftphoto.jpg", "b/12_rightphoto.JPG", "a/7.png", "a/3_x_y.jpeg", "a/notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    items = load_identity_folder(tmp_path)
    assert [(p.name, i, s) for p, i, s in items] == [
        ("3_x_y.jpeg", "a", "3"),
        ("7.png", "a", "7"),
        ("12_leftphoto.jpg", "b", "12"),
        ("12_rightphoto.JPG", "b", "12"),
    ]


def test_load_identity_folder_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_identity_folder(tmp_path / "nope")


def test_load_nyala_train() -> None:
    items = load_identity_folder(NYALA)
    assert len(items) == 1213
    assert len({i for _, i, _ in items}) == 179
    path, individual, sighting = items[0]
    assert path.parent.name == individual and path.name.startswith(f"{sighting}_")
