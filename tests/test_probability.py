"""The same-animal probability map (isotonic regression) and the pairs it is fitted on.

What is tried: the map is monotone and inside (0, 1) even where one pair decides;
it recovers a known curve from sampled pairs; it round-trips through its dict;
bad input (no pairs, one class, mismatched lengths) is refused with a clear error;
the encounter-vs-individual pairs never use a pair inside one encounter.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from deerid.domain.probability import SameAnimalProbability
from deerid.evaluation.data import LabelledSet
from deerid.evaluation.pairs import encounter_pairs, fit_probability


def test_monotone_and_never_certain_from_one_pair() -> None:
    """Violators are pooled, and a lone pair at either end does not make 0 or 1."""
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    same = np.array([0, 1, 0, 0, 1, 0, 1, 1], dtype=bool)
    p = SameAnimalProbability.fit(scores, same)
    grid = np.linspace(-1, 1, 401)
    values = p(grid)
    assert np.all(np.diff(values) >= 0)
    assert values.min() > 0 and values.max() < 1
    assert p.n_pairs == 8 and p.n_same == 4
    two = SameAnimalProbability.fit(np.array([0.2, 0.9]), np.array([False, True]))
    assert 0 < two(0.2) < 0.5 < two(0.9) < 1
    assert two(0.55) == pytest.approx((two(0.2) + two(0.9)) / 2)  # linear between knots
    assert isinstance(two(0.5), float) and two(np.array([0.5])).shape == (1,)


def test_fits_a_known_curve() -> None:
    """Pairs drawn with P(same | s) = s: the fit follows the diagonal in the well-sampled middle."""
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 20_000)
    same = rng.uniform(0, 1, scores.size) < scores
    p = SameAnimalProbability.fit(scores, same)
    middle = np.linspace(0.1, 0.9, 17)
    assert np.abs(p(middle) - middle).max() < 0.06


def test_ties_stay_in_one_block() -> None:
    """Equal scores with both labels get one probability, their share of same pairs (smoothed)."""
    p = SameAnimalProbability.fit(np.array([0.5] * 4 + [0.9] * 4), np.array([1, 0, 0, 0, 1, 1, 1, 0], bool))
    assert p(0.5) < p(0.9)
    assert p(0.5) == pytest.approx((1 + 0.5) / (4 + 1))  # base rate 0.5, one pseudo-pair


def test_round_trips_through_json() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(0.6, 0.1, 500)
    p = SameAnimalProbability.fit(scores, scores + rng.normal(0, 0.1, 500) > 0.65)
    back = SameAnimalProbability.from_dict(json.loads(json.dumps(p.to_dict())))
    grid = np.linspace(0, 1, 101)
    assert np.array_equal(back(grid), p(grid)) and back.n_pairs == 500
    with pytest.raises(ValueError, match="isotonic"):
        SameAnimalProbability.from_dict({**p.to_dict(), "kind": "logistic"})
    with pytest.raises(ValueError, match="monotone"):
        SameAnimalProbability.from_dict({**p.to_dict(), "y": p.to_dict()["y"][::-1]})


def test_refuses_input_it_cannot_fit() -> None:
    with pytest.raises(ValueError, match="no pairs"):
        SameAnimalProbability.fit(np.array([]), np.array([], dtype=bool))
    with pytest.raises(ValueError, match="both same- and different-animal"):
        SameAnimalProbability.fit(np.array([0.3, 0.9]), np.array([True, True]))
    with pytest.raises(ValueError, match="both same- and different-animal"):
        SameAnimalProbability.fit(np.array([0.3, 0.9]), np.array([False, False]))
    with pytest.raises(ValueError, match="one label per score"):
        SameAnimalProbability.fit(np.array([0.3, 0.9]), np.array([True]))
    with pytest.raises(ValueError, match="NaN"):
        SameAnimalProbability.fit(np.array([0.3, np.nan]), np.array([True, False]))


def unit_vectors_at(*degrees: float) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_encounter_pairs_skip_the_encounter_itself() -> None:
    """A/1 is two near-identical frames; its score against A comes from A/2 only, and B,
    seen in one encounter, is a candidate for A's encounters but never for its own."""
    data = LabelledSet.build(
        unit_vectors_at(0, 1, 30, 90, 95), ["A", "A", "A", "B", "B"], ["1", "1", "2", "1", "1"]
    )
    pairs = encounter_pairs(data)
    first = {int(data.sighting[i]): i for i in range(len(data) - 1, -1, -1)}  # encounter -> a row of it
    names = ["A/1", "A/1", "A/2", "B/1", "B/1"]
    got = sorted(
        (names[first[int(e)]], data.individual_names[i], round(float(s), 4), bool(t))
        for e, i, s, t in zip(pairs.encounter, pairs.individual, pairs.scores, pairs.same, strict=True)
    )

    def cos(degrees: float) -> float:
        return round(float(np.cos(np.deg2rad(degrees))), 4)

    assert got == [
        ("A/1", "A", cos(29), True),  # 1° to 30°; never 1° to 0°, its own frame
        ("A/1", "B", cos(89), False),
        ("A/2", "A", cos(29), True),
        ("A/2", "B", cos(60), False),
        ("B/1", "A", cos(60), False),  # B has no other encounter: no B/1→B pair
    ]
    p = fit_probability(data)
    assert p(cos(29)) > p(cos(60))
