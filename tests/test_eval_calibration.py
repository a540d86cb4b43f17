"""Threshold calibration on constructed streams and hand-built curves with a known right choice."""

from __future__ import annotations

import numpy as np
import pytest

from deerid.domain.matching import Aggregation
from deerid.evaluation.calibration import FmrRule, calibrate, choose_threshold
from deerid.evaluation.clustering import OpenSetMetrics, mean_metrics
from deerid.evaluation.data import LabelledSet
from deerid.evaluation.openset import OpenSetResult, OpenSetSweep


def unit_vectors_at(*degrees: float) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


# In capture order: A/1 0°, A/2 10°, B/1 25°, B/2 35°.
#   t ≤ cos 15° (0.966): B/1 links to A/2, everything in A's profile: 2 of 3 matches false.
#   0.966 < t ≤ cos 10° (0.985): A and B each get their own profile: no false merge, nothing split.
#   t > 0.985: everything split.
TWO_DEER = LabelledSet.build(unit_vectors_at(0, 10, 25, 35), ["A", "A", "B", "B"], ["1", "2", "1", "2"])
CAPTURED = [0, 1, 2, 3]
THRESHOLDS = [0.90, 0.95, 0.97, 0.98, 0.99]


def test_picks_the_lowest_threshold_that_keeps_false_merges_in_budget() -> None:
    cal = calibrate(TWO_DEER, thresholds=THRESHOLDS, capture_order=CAPTURED)
    assert cal.met
    assert cal.threshold == 0.97
    assert cal.false_merge_rate == 0.0
    assert cal.bcubed_f1 == 1.0
    assert cal.profiles_per_individual == 1.0
    assert cal.target_fmr == 0.02  # the default budget: 2 % false merges
    assert cal.curve.at(0.95).mean.false_merge_rate == pytest.approx(2 / 3)
    assert "0.97" in cal.reason and "0.95 gives 66.7%" in cal.reason
    assert cal.curve.n_orders == 1


def test_a_looser_target_allows_a_lower_threshold() -> None:
    cal = calibrate(TWO_DEER, target_fmr=0.7, thresholds=THRESHOLDS, capture_order=CAPTURED)
    assert cal.threshold == 0.90
    assert cal.false_merge_rate == pytest.approx(2 / 3)
    assert "nothing lower was swept" in cal.reason


def test_no_threshold_meets_the_target() -> None:
    # Identical vectors for two individuals: at any threshold everything merges into
    # the first arrival's profile, and 2 of the 3 matches are the other deer.
    same = LabelledSet.build(np.ones((4, 3)), ["A", "B", "A", "B"], ["1", "1", "2", "2"])
    cal = calibrate(same, thresholds=THRESHOLDS, capture_order=[0, 1, 2, 3])
    assert not cal.met
    assert cal.threshold == 0.99
    assert cal.false_merge_rate == pytest.approx(2 / 3)
    assert "no swept threshold" in cal.reason and "0.99" in cal.reason


@pytest.mark.parametrize(
    ("individuals", "sightings", "message"),
    [
        (["A", "A", "A"], ["1", "2", "3"], "at least 2 individuals"),
        (["A", "A", "B", "C"], ["1", "1", "1", "1"], "no individual has 2 or more sightings"),
    ],
)
def test_too_little_data_is_refused(individuals: list[str], sightings: list[str], message: str) -> None:
    data = LabelledSet.build(unit_vectors_at(0, 10, 20, 30)[: len(individuals)], individuals, sightings)
    with pytest.raises(ValueError, match=message):
        calibrate(data)


def test_bad_target_is_refused() -> None:
    with pytest.raises(ValueError, match="target"):
        calibrate(TWO_DEER, target_fmr=1.5, capture_order=CAPTURED)


# ---- the choice itself, on hand-built curves -------------------------------------------------


def metrics(fmr: float, f1: float = 0.5) -> OpenSetMetrics:
    return OpenSetMetrics(
        bcubed_precision=f1,
        bcubed_recall=f1,
        bcubed_f1=f1,
        false_merge_rate=fmr,
        profiles_per_individual=2.0,
        singleton_rate=0.5,
        n_profiles=10.0,
        n_matched=5.0,
        n_false_merges=5.0 * fmr,
    )


def sweep_of(thresholds: list[float], fmr_by_order: list[list[float]]) -> OpenSetSweep:
    """Curves given as one false-merge rate per threshold for each order."""
    results = []
    for k, t in enumerate(thresholds):
        runs = tuple(metrics(order[k]) for order in fmr_by_order)
        results.append(OpenSetResult(t, mean_metrics(runs), runs))
    return OpenSetSweep(tuple(results), Aggregation.NEAREST)


TS = [0.6, 0.7, 0.8, 0.9]


def test_worst_order_rule_is_stricter_than_the_mean() -> None:
    # At 0.7 the mean is 0.04 but one order reaches 0.07.
    sweep = sweep_of(TS, [[0.2, 0.01, 0.0, 0.0], [0.3, 0.07, 0.03, 0.0]])
    assert choose_threshold(sweep, 0.05).threshold == 0.8
    assert choose_threshold(sweep, 0.05, rule=FmrRule.WORST).false_merge_rate == 0.03
    mean = choose_threshold(sweep, 0.05, rule=FmrRule.MEAN)
    assert mean.threshold == 0.7
    assert mean.false_merge_rate == pytest.approx(0.04)
    assert mean.worst_false_merge_rate == 0.07


def test_a_lucky_dip_below_a_failing_threshold_is_not_chosen() -> None:
    sweep = sweep_of(TS, [[0.5, 0.02, 0.08, 0.01]])
    cal = choose_threshold(sweep, 0.05)
    assert cal.threshold == 0.9
    assert "0.80 gives 8.0%" in cal.reason


def test_failing_top_falls_back_to_the_highest_threshold_that_meets() -> None:
    sweep = sweep_of(TS, [[0.5, 0.02, 0.04, 0.09]])
    cal = choose_threshold(sweep, 0.05)
    assert cal.met and cal.threshold == 0.8
    assert "not monotonic" in cal.reason


def test_threshold_with_no_match_is_flagged() -> None:
    sweep = sweep_of(TS, [[0.5, 0.4, 0.3, 0.0]])
    top = sweep.results[-1]
    empty = OpenSetMetrics(**{**top.mean.as_dict(), "n_matched": 0.0, "n_false_merges": 0.0})
    sweep = OpenSetSweep((*sweep.results[:-1], OpenSetResult(0.9, empty, (empty,))), Aggregation.NEAREST)
    cal = choose_threshold(sweep, 0.05)
    assert cal.threshold == 0.9
    assert "only by never matching" in cal.reason


def test_as_dict_is_plain() -> None:
    cal = calibrate(TWO_DEER, thresholds=THRESHOLDS, capture_order=CAPTURED)
    d = cal.as_dict()
    assert d["threshold"] == 0.97 and d["rule"] == "worst" and d["met"] is True
    assert [row["threshold"] for row in d["curve"]] == THRESHOLDS
    assert "curve" not in cal.as_dict(with_curve=False)


def test_stored_record_keeps_the_map_even_when_no_threshold_is_safe() -> None:
    """A met target stores its threshold (also as auto_threshold); an unmet one stores None, so
    the model makes no automatic merges, but the probability map is kept for ranking."""
    from deerid.evaluation.calibration import stored_record
    from deerid.evaluation.pairs import fit_probability

    met = calibrate(TWO_DEER, thresholds=THRESHOLDS, capture_order=CAPTURED)
    record = stored_record(met, fit_probability(TWO_DEER), data="two deer", n_images=4, n_individuals=2)
    assert record["threshold"] == record["auto_threshold"] == 0.97 and record["max_false_merge"] == 0.02
    assert 0 < record["probability_at_threshold"] < 1 and record["probability"]["kind"] == "isotonic"

    same = LabelledSet.build(np.ones((4, 3)), ["A", "B", "A", "B"], ["1", "1", "2", "2"])
    unmet = calibrate(same, thresholds=THRESHOLDS, capture_order=[0, 1, 2, 3])
    record = stored_record(unmet, fit_probability(same), data="x", n_images=4, n_individuals=2)
    assert record["threshold"] is None and record["auto_threshold"] is None and not record["met"]
    assert record["probability"] is not None and record["probability_at_threshold"] is None
