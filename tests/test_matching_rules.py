"""The matching rule on hand-built candidates, where the right decision is known."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from deerid.domain.classes import DeerClass, Sex, UnknownClassError, deer_class_for_label, sex_for_class
from deerid.domain.matching import Aggregation, Candidate, decide, normalise

A, B, C = (uuid.UUID(int=i) for i in (1, 2, 3))


@pytest.mark.parametrize(
    ("cls", "sex"),
    [
        ("doe", Sex.DOE),
        ("fawn", Sex.FAWN),
        ("mature", Sex.BUCK),
        ("mid", Sex.BUCK),
        ("young", Sex.BUCK),
        ("unknown", Sex.UNKNOWN),
    ],
)
def test_sex_mapping(cls: str, sex: Sex) -> None:
    assert sex_for_class(cls) is sex


def test_unknown_class_is_refused_with_its_name() -> None:
    with pytest.raises(UnknownClassError, match="turkey"):
        sex_for_class("turkey")
    assert deer_class_for_label("Wild_Turkey") is None
    assert deer_class_for_label(" Mature ") is DeerClass.MATURE
    # species-level classifier labels are deer of unknown class
    assert deer_class_for_label("white-tailed deer") is DeerClass.UNKNOWN
    assert deer_class_for_label("mule_deer") is DeerClass.UNKNOWN
    assert deer_class_for_label("mammalia;artiodactyla;cervidae;odocoileus;virginianus") is DeerClass.UNKNOWN
    assert deer_class_for_label("deer mouse") is None
    assert deer_class_for_label("other") is None


def test_empty_gallery_founds_a_new_deer() -> None:
    decision = decide([], 0.85)
    assert decision.deer_id is None and decision.similarity is None


def test_threshold_is_inclusive() -> None:
    assert decide([Candidate(1, A, 0.85)], 0.85).deer_id == A
    below = decide([Candidate(1, A, 0.8499)], 0.85)
    assert below.deer_id is None
    # A new deer still records how close it came, for the review queue.
    assert below.similarity == pytest.approx(0.8499) and below.via_detection_id == 1


def test_nearest_sighting_wins_over_deer_with_more_weaker_sightings() -> None:
    cands = [Candidate(1, A, 0.90), Candidate(2, A, 0.89), Candidate(3, B, 0.95), Candidate(4, A, 0.88)]
    decision = decide(cands, 0.85)
    assert decision.deer_id == B and decision.via_detection_id == 3


def test_top2_mean_prefers_consistent_deer() -> None:
    cands = [Candidate(1, A, 0.90), Candidate(2, A, 0.89), Candidate(3, B, 0.95), Candidate(4, B, 0.70)]
    assert decide(cands, 0.85, aggregation=Aggregation.TOP2_MEAN).deer_id == A


def test_deer_already_in_the_same_photo_is_never_chosen() -> None:
    cands = [Candidate(1, A, 0.99), Candidate(2, B, 0.90)]
    assert decide(cands, 0.85, excluded_deer={A}).deer_id == B
    assert decide(cands, 0.85, excluded_deer={A, B}).deer_id is None


def test_ties_go_to_the_earlier_sighting_whatever_the_row_order() -> None:
    first = decide([Candidate(5, A, 0.9), Candidate(2, C, 0.9)], 0.85)
    second = decide([Candidate(2, C, 0.9), Candidate(5, A, 0.9)], 0.85)
    assert first.deer_id == second.deer_id == C


def test_normalise_refuses_zero_and_nan() -> None:
    np.testing.assert_allclose(np.linalg.norm(normalise(np.array([3.0, 4.0]))), 1.0)
    with pytest.raises(ValueError):
        normalise(np.zeros(4))
    with pytest.raises(ValueError):
        normalise(np.array([np.nan, 1.0]))
