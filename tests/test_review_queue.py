"""The review queue's rules (deerid.domain.review) and the oracle simulation built on them.

What is tried: the query most likely to find its animal comes first; a "none" answer is
never asked again, also after either side merges with a third profile; a merged profile is
compared through all its views; blocked pairs and retired queries; ties broken the same way
every run; the oracle simulation on real nyala vectors (curve keys, a level never reached is
None, every decision counted, the start matching the automatic result) and on a perfect
embedding (one decision per needed merge).
"""

from __future__ import annotations

import numpy as np
import pytest

from deerid.domain.review import ReviewGraph
from deerid.evaluation.data import LabelledSet
from deerid.evaluation.review import automatic_profiles, simulate_review
from support.builders import near, random_unit_vector
from support.paths import NYALA


def graph_of(vectors: list[np.ndarray], owner: list[int]) -> ReviewGraph:
    return ReviewGraph.from_vectors(np.stack(vectors), owner)


def test_likely_match_is_asked_first_and_none_is_final() -> None:
    a, b = random_unit_vector(1), random_unit_vector(2)
    # Profiles 0/1 are one animal seen twice (0.95); 2 and 3 are loners far from everything.
    g = graph_of([a, near(a, 0.95, 10), b, near(b, 0.2, 11)], [0, 1, 2, 3])
    screen = g.next_screen(k=2)
    assert screen is not None and {screen.query, screen.candidates[0].profile} == {0, 1}
    assert screen.candidates[0].score == pytest.approx(0.95, abs=1e-6)
    # "None of these" for 0's screen: 0–1 and 0–x are never shown again, from either side.
    for c in screen.candidates:
        g.block(screen.query, c.profile)
    shown = {c.profile for c in screen.candidates}
    for other in shown:
        assert screen.query not in {c.profile for c in g.candidates(other, k=9)}


def test_blocks_survive_merges_and_merged_profiles_use_every_view() -> None:
    left, right = (
        random_unit_vector(1),
        random_unit_vector(2),
    )  # two looks of one animal that resemble each other little
    vectors = [left, right, near(right, 0.9, 3), random_unit_vector(4)]
    g = graph_of(vectors, [0, 1, 2, 3])
    g.block(1, 3)
    g.merge(1, 0)  # 1 and 0 are one animal: its left and right look
    assert g.is_blocked(0, 3)  # what was said of 1 holds for the union
    best = g.candidates(2, k=1)[0]
    assert best.profile == 0 and best.score == pytest.approx(0.9, abs=1e-6)  # through the right look
    g.merge(2, 0)
    assert g.candidates(0, k=9) == ()  # 3 is blocked, nothing else left


def test_sets_of_views_rank_by_best_pair_and_mean_vector_together() -> None:
    """Tried: a query seen from two sides, a candidate close to one side only and one close to
    the middle of both. The default ranks them as sets (best pair averaged with the mean
    vectors' cosine), so the all-round match comes first; "max" (best pair alone) puts the
    one-sided look-alike first. Either way the score and probability shown are the best pair's."""
    q1, q2 = random_unit_vector(1), random_unit_vector(2)
    middle = (q1 + q2) / np.linalg.norm(q1 + q2)
    one_sided, all_round = near(q1, 0.8, 3), near(middle, 0.95, 4)
    vectors = np.stack([q1, q2, one_sided, all_round])
    owner = [0, 0, 1, 2]
    default = ReviewGraph.from_vectors(vectors, owner)
    by_pair = ReviewGraph.from_vectors(vectors, owner, scoring="max")
    assert default.scoring == "both"
    assert [c.profile for c in default.candidates(0, k=2)] == [2, 1]
    assert [c.profile for c in by_pair.candidates(0, k=2)] == [1, 2]
    for c in default.candidates(0, k=2):
        best = float(max(vectors[c.via_candidate] @ q1, vectors[c.via_candidate] @ q2))
        assert c.score == pytest.approx(best, abs=1e-6) and c.probability == pytest.approx(best, abs=1e-6)
    # The screen's priority is the probability of those best pairs, whatever the order.
    screen = default.next_screen(k=2)
    assert screen is not None and screen.query == 0
    assert screen.priority == pytest.approx(1 - np.prod([1 - c.probability for c in screen.candidates]))


def test_retired_queries_and_exclusions() -> None:
    a = random_unit_vector(1)
    g = graph_of([a, near(a, 0.9, 2), near(a, 0.5, 3)], [0, 1, 2])
    first = g.next_screen(k=1)
    assert first is not None
    g.retire(first.query)
    second = g.next_screen(k=1)
    assert second is not None and second.query != first.query
    assert g.next_screen(k=1, exclude={0, 1, 2}) is None
    # The same snapshot gives the same screen every time (ties by lower index).
    tie = graph_of([a, a, a], [0, 1, 2])
    assert tie.next_screen(k=1) == tie.next_screen(k=1)
    assert tie.next_screen(k=1).query == 0  # type: ignore[union-attr]


def _nyala_subset(n_individuals: int) -> LabelledSet:
    """Real nyala photos of a few individuals, embedded with a deterministic cheap stand-in:
    pixel colour histograms are enough to make a ranking that is neither perfect nor random."""
    from PIL import Image

    vectors, individuals, sightings = [], [], []
    for folder in sorted(p for p in NYALA.iterdir() if p.is_dir())[:n_individuals]:
        for path in sorted(folder.glob("*.jpg")):
            img = Image.open(path).convert("RGB").resize((32, 32))
            hist = np.concatenate([np.histogram(ch, bins=16, range=(0, 255))[0] for ch in np.asarray(img).T])
            vectors.append(hist.astype(np.float64) + 1.0)
            individuals.append(folder.name)
            sightings.append(path.stem.split("_", 1)[0])
    return LabelledSet.build(np.stack(vectors), individuals, sightings)


def test_oracle_simulation_on_real_photos() -> None:
    data = _nyala_subset(12)
    curve = simulate_review(data, k=4)
    out = curve.as_dict()
    assert set(out["decisions_per_image_to_f1"]) == {"0.8", "0.9", "0.95"}
    assert set(out["f1_at_decisions_per_image"]) == {"0.25", "0.5", "1"}
    # One profile per encounter at the start (no threshold: no automatic merges).
    assert out["start_profiles"] == len(np.unique(data.sighting)) and out["auto_merges"] == 0
    assert out["decisions"] == len(curve.f1) - 1 and out["matches"] <= out["decisions"]
    # Answers only ever merge the same animal, so the oracle ends at the truth.
    assert curve.f1[-1] == pytest.approx(1.0)
    assert out["decisions_per_image_to_f1"]["0.95"] is not None
    # A budget too small to get there reports the level as never reached.
    short = simulate_review(data, k=4, budget=0.01).as_dict()
    assert short["decisions_per_image_to_f1"]["0.95"] is None


def test_perfect_embedding_needs_one_decision_per_merge() -> None:
    data = _nyala_subset(6)
    perfect = (
        np.eye(data.n_individuals)[data.individual] + 1e-3 * np.eye(len(data), data.n_individuals)[:, :1]
    )
    ideal = LabelledSet.build(perfect, [str(i) for i in data.individual], [str(s) for s in data.sighting])
    curve = simulate_review(ideal, k=4)
    needed = len(np.unique(ideal.sighting)) - ideal.n_individuals
    assert curve.matches == needed
    assert curve.decisions_per_image_to(1.0) == pytest.approx(needed / len(ideal), abs=1e-4)


def test_automatic_start_follows_the_threshold() -> None:
    data = _nyala_subset(6)
    none, joins = automatic_profiles(data, None)
    assert joins == 0 and len(np.unique(none)) == len(np.unique(data.sighting))
    everything, joins = automatic_profiles(data, -1.0)
    assert len(np.unique(everything)) == 1 and joins == len(np.unique(data.sighting)) - 1


def test_large_galleries_keep_each_sightings_nearest() -> None:
    """Above ALL_PAIRS_LIMIT only nearest neighbours are kept: tried with 1,100 random rows in
    encounters of two; every row's true nearest other-encounter row must be among the pairs,
    no pair may join two rows of one encounter, and pairs come most similar first."""
    from deerid.domain.review import ALL_PAIRS_LIMIT, comparable_pairs

    rng = np.random.default_rng(3)
    n = ALL_PAIRS_LIMIT + 100
    x = rng.standard_normal((n, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    unit_of = np.arange(n) // 2
    i, j, sim = comparable_pairs(x, same_unit=unit_of)
    assert len(i) < n * (n - 1) // 2 and (unit_of[i] != unit_of[j]).all()
    assert (np.diff(sim) <= 1e-12).all() and np.allclose(sim, np.einsum("ij,ij->i", x[i], x[j]))
    full = x @ x.T
    full[unit_of[:, None] == unit_of[None, :]] = -np.inf
    nearest = full.argmax(axis=1)
    kept = set(zip(i.tolist(), j.tolist(), strict=True))
    assert all((min(r, c), max(r, c)) in kept for r, c in enumerate(nearest))
