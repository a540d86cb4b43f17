"""Open-set stream and profile metrics on hand-built sets whose answers are worked out by hand."""

from __future__ import annotations

import itertools
import time
from uuid import UUID

import numpy as np
import pytest

from deerid.domain.matching import Aggregation, Candidate, decide
from deerid.evaluation.clustering import OpenSetMetrics, mean_metrics, partition_metrics
from deerid.evaluation.data import LabelledSet
from deerid.evaluation.openset import (
    DEFAULT_THRESHOLDS,
    _stream_with_decide,
    evaluate_openset,
    simulate_stream,
    stream_orders,
    sweep_openset,
)


def unit_vectors_at(*degrees: float) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def labelled(degrees: list[float], individuals: list[str], sightings: list[str]) -> LabelledSet:
    return LabelledSet.build(unit_vectors_at(*degrees), individuals, sightings)


# ---- metrics of a given partition ------------------------------------------------------------

IND = np.array([0, 0, 1, 1, 1])  # A: 2 images, B: 3 images


def test_perfect_profiles() -> None:
    m = partition_metrics(np.array([0, 0, 2, 2, 2]), IND)
    assert (m.bcubed_precision, m.bcubed_recall, m.bcubed_f1) == (1.0, 1.0, 1.0)
    assert m.false_merge_rate == 0.0
    assert m.profiles_per_individual == 1.0
    assert m.singleton_rate == 0.0
    assert (m.n_profiles, m.n_matched) == (2, 3)


def test_everything_merged() -> None:
    m = partition_metrics(np.zeros(5, dtype=int), IND)
    assert m.bcubed_precision == pytest.approx((2 / 5) ** 2 + (3 / 5) ** 2)
    assert m.bcubed_recall == 1.0
    assert m.bcubed_f1 == pytest.approx(2 * (13 / 25) / (13 / 25 + 1))
    # Founded by an A; the other A matched rightly, the three Bs wrongly.
    assert m.false_merge_rate == pytest.approx(3 / 4)
    assert m.n_false_merges == 3
    assert m.profiles_per_individual == 1.0


def test_everything_split() -> None:
    m = partition_metrics(np.arange(5), IND)
    assert m.bcubed_precision == 1.0
    assert m.bcubed_recall == pytest.approx((2 * (1 / 2) + 3 * (1 / 3)) / 5)
    assert m.false_merge_rate == 0.0  # nothing matched, so nothing matched wrongly
    assert m.n_matched == 0
    assert m.profiles_per_individual == pytest.approx((2 + 3) / 2)
    assert m.singleton_rate == 1.0


def test_false_merge_is_judged_by_the_founder_not_the_majority() -> None:
    # Profile founded by A (image 0) then joined by three Bs: B is the majority, yet
    # all three matches were wrong when made.
    ind = np.array([0, 1, 1, 1])
    m = partition_metrics(np.zeros(4, dtype=int), ind)
    assert m.false_merge_rate == 1.0


def test_founder_array_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="founder"):
        partition_metrics(np.array([1, 0]), np.array([0, 0]))  # 0 points at 1, which points elsewhere
    with pytest.raises(ValueError, match="one founder per image"):
        partition_metrics(np.array([0, 0]), np.array([0]))


def test_mean_metrics_is_field_wise() -> None:
    a = partition_metrics(np.array([0, 0, 2, 2, 2]), IND)
    b = partition_metrics(np.arange(5), IND)
    m = mean_metrics([a, b])
    assert m.bcubed_recall == pytest.approx((1.0 + 0.4) / 2)
    assert m.n_profiles == pytest.approx(3.5)
    assert isinstance(m, OpenSetMetrics)


# ---- the stream ------------------------------------------------------------------------------


def test_sighting_rule_blocks_matching_through_own_sighting() -> None:
    # Two identical photos of one sighting: without the rule the second would match the first.
    data = labelled([0, 0], ["A", "A"], ["1", "1"])
    assert simulate_stream(data, np.array([0, 1]), 0.99).tolist() == [0, 1]
    other_sighting = labelled([0, 0], ["A", "A"], ["1", "2"])
    assert simulate_stream(other_sighting, np.array([0, 1]), 0.99).tolist() == [0, 0]


def test_image_may_join_its_sightings_profile_through_another_image() -> None:
    # 0: A/1 at 0°, 1: A/2 at 3° (joins 0), 2: A/1 at 0° again: its twin image 0 is
    # off limits (similarity 1.0), but image 1 (cos 3° ≈ 0.9986) carries it into profile 0.
    data = labelled([0, 3, 0], ["A", "A", "A"], ["1", "2", "1"])
    assert simulate_stream(data, np.array([0, 1, 2]), 0.998).tolist() == [0, 0, 0]
    # Above cos 3° only the forbidden twin would do, so it founds its own profile.
    assert simulate_stream(data, np.array([0, 1, 2]), 0.9990).tolist() == [0, 1, 2]


def test_equal_sighting_labels_of_different_individuals_do_not_block() -> None:
    data = labelled([0, 0], ["A", "B"], ["1", "1"])
    assert simulate_stream(data, np.array([0, 1]), 0.9).tolist() == [0, 0]  # a false merge, allowed


def test_threshold_is_inclusive_and_order_decides_the_founder() -> None:
    data = labelled([0, 60], ["A", "A"], ["1", "2"])  # cosine 0.5 (to within rounding)
    s = float(data.similarity[0, 1])
    assert simulate_stream(data, np.array([0, 1]), s).tolist() == [0, 0]
    assert simulate_stream(data, np.array([1, 0]), s).tolist() == [1, 1]
    assert simulate_stream(data, np.array([0, 1]), np.nextafter(s, 2.0)).tolist() == [0, 1]


def test_matches_through_the_nearest_profile_not_the_first() -> None:
    # 0: A at 0°, 1: B at 40°, 2: B at 35°. At 0.8, image 1 (cos 40° ≈ 0.766) founds B's
    # profile; image 2 passes both A (cos 35° ≈ 0.819) and B (cos 5°) and takes the nearer.
    data = labelled([0, 40, 35], ["A", "B", "B"], ["1", "1", "2"])
    assert simulate_stream(data, np.array([0, 1, 2]), 0.8).tolist() == [0, 1, 1]
    # At 0.7 image 1 already joined A, so image 2 follows it there.
    assert simulate_stream(data, np.array([0, 1, 2]), 0.7).tolist() == [0, 0, 0]


def _oracle(data: LabelledSet, order: np.ndarray, threshold: float, aggregation: Aggregation) -> list[int]:
    """The pipeline rule written out literally: every earlier image of another sighting is a candidate."""
    founder_of: dict[int, int] = {}
    for pos, img in enumerate(order):
        candidates = [
            Candidate(p, UUID(int=founder_of[int(order[p])]), float(data.similarity[img, order[p]]))
            for p in range(pos)
            if data.sighting[order[p]] != data.sighting[img]
        ]
        decision = decide(candidates, threshold, aggregation=aggregation)
        founder_of[int(img)] = decision.deer_id.int if decision.deer_id is not None else int(img)
    return [founder_of[i] for i in range(len(order))]


@pytest.fixture(scope="module")
def tied_set() -> LabelledSet:
    """40 images, 5 individuals, 2–3 sightings each, similarities on a coarse grid (many exact ties).

    Every vector has four ones among 12 coordinates, so after normalisation every
    dot product is an exact multiple of 1/4: ties are real, not rounding accidents.
    """
    rng = np.random.default_rng(7)
    pool = np.zeros((9, 12))
    for row in pool:
        row[rng.choice(12, size=4, replace=False)] = 1.0
    vectors = pool[rng.integers(0, len(pool), size=40)]
    individuals = [f"i{k % 5}" for k in range(40)]
    sightings = [f"s{rng.integers(0, 3)}" for _ in range(40)]
    return LabelledSet.build(vectors, individuals, sightings)


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_stream_equals_the_literal_decide_rule(tied_set: LabelledSet, aggregation: Aggregation) -> None:
    checked = 0
    for order, threshold in itertools.product(
        stream_orders(len(tied_set), orders=3, seed=1), [0.0, 0.25, 0.5, 0.75, 1.0]
    ):
        expected = _oracle(tied_set, order, threshold, aggregation)
        assert simulate_stream(tied_set, order, threshold, aggregation=aggregation).tolist() == expected
        checked += len(set(expected))
    assert checked > 15  # the grid produced real partitions, not only all-merged or all-split


def test_fast_path_equals_the_decide_path(tied_set: LabelledSet) -> None:
    for order in stream_orders(len(tied_set), orders=2, seed=3):
        for threshold in (0.25, 0.5, 0.75):
            fast = simulate_stream(tied_set, order, threshold)
            via_decide = _stream_with_decide(tied_set, order, threshold, Aggregation.NEAREST)
            assert fast.tolist() == order[via_decide][np.argsort(order)].tolist()


def test_aggregations_can_disagree(tied_set: LabelledSet) -> None:
    # Not a property of the rule, a check that the parametrised test above compared two rules.
    order = stream_orders(len(tied_set), orders=1, seed=1)[0]
    outcomes = {
        a: [simulate_stream(tied_set, order, t, aggregation=a).tolist() for t in (0.5, 0.75)]
        for a in Aggregation
    }
    assert outcomes[Aggregation.NEAREST] != outcomes[Aggregation.TOP2_MEAN]


# ---- orders and sweeps -----------------------------------------------------------------------


def test_orders_are_seeded_and_capture_order_is_used_as_given() -> None:
    a = stream_orders(10, orders=3, seed=5)
    b = stream_orders(10, orders=3, seed=5)
    assert len(a) == 3 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], stream_orders(10, orders=1, seed=6)[0])
    (captured,) = stream_orders(4, orders=3, capture_order=["12:05", "12:01", "12:09", "12:01"])
    assert captured.tolist() == [1, 3, 0, 2]  # ties kept in input order
    with pytest.raises(ValueError, match="capture key"):
        stream_orders(3, capture_order=[1, 2])
    with pytest.raises(ValueError, match="at least one order"):
        stream_orders(3, orders=0)


def test_order_must_be_a_permutation() -> None:
    data = labelled([0, 10], ["A", "B"], ["1", "1"])
    with pytest.raises(ValueError, match="permutation"):
        simulate_stream(data, np.array([0, 0]), 0.5)


@pytest.fixture(scope="module")
def random_set() -> LabelledSet:
    """Clustered random vectors: 12 individuals × 3 sightings × 2 photos."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 16))
    rows, individuals, sightings = [], [], []
    for ind, centre in enumerate(centres):
        for sig in range(3):
            view = centre + 0.6 * rng.normal(size=16)
            for _ in range(2):
                rows.append(view + 0.2 * rng.normal(size=16))
                individuals.append(f"deer{ind}")
                sightings.append(str(sig))
    return LabelledSet.build(np.array(rows), individuals, sightings)


def test_sweep_monotonic_properties(random_set: LabelledSet) -> None:
    # Raising the threshold only cuts "nearest earlier image" links, so each order's
    # profiles at a higher threshold refine those at a lower one.
    sweep = sweep_openset(random_set, np.linspace(-1.0, 1.0, 81).tolist(), orders=3, seed=0)
    assert sweep.n_orders == 3
    assert np.all(np.diff(sweep.thresholds) > 0)
    for metric, sign in [
        ("bcubed_precision", 1),
        ("n_profiles", 1),
        ("profiles_per_individual", 1),
        ("bcubed_recall", -1),
        ("n_matched", -1),
    ]:
        assert np.all(sign * np.diff(sweep.curve(metric)) >= -1e-12), metric
    # The sweep spans the whole range: one profile at the bottom, none matched at the top.
    assert sweep.results[0].mean.n_profiles == 1
    assert sweep.results[-1].mean.n_matched == 0
    # Clustered data: somewhere in between the stream does well.
    assert sweep.curve("bcubed_f1").max() > 0.6


def test_one_threshold_equals_its_place_in_the_sweep(random_set: LabelledSet) -> None:
    sweep = sweep_openset(random_set, [0.9, 0.5, 0.7], orders=2, seed=4)
    assert sweep.thresholds.tolist() == [0.5, 0.7, 0.9]
    single = evaluate_openset(random_set, 0.7, orders=2, seed=4)
    assert single == sweep.at(0.7)
    assert single.worst_false_merge_rate == max(m.false_merge_rate for m in single.per_order)
    with pytest.raises(KeyError):
        sweep.at(0.8)


def test_full_size_sweep_is_fast() -> None:
    # ~1,200 images × 70 thresholds × 3 orders: the size of nyala train.
    rng = np.random.default_rng(1)
    n = 1200
    # Few dimensions, so nearest neighbours are close and most thresholds keep many links.
    data = LabelledSet.build(
        rng.normal(size=(n, 6)), [f"i{k // 7}" for k in range(n)], [str(k // 2) for k in range(n)]
    )
    started = time.perf_counter()
    sweep = sweep_openset(data, DEFAULT_THRESHOLDS, orders=3)
    assert len(sweep.results) == 70
    assert sweep.curve("n_matched")[35] > n / 2
    assert time.perf_counter() - started < 10.0
