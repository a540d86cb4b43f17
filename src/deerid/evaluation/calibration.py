"""Choose the automatic-merge threshold from data: as few split profiles as the false-merge budget allows.

A false merge (two deer in one profile) corrupts a profile's history and is hard
to notice; a split (one deer in two profiles) is visible and cheap to merge by
hand in the review screen. So the budget is on false merges (2 % by default), and
within it the threshold is as low as possible, which splits least. Anything below
the threshold is left to a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from deerid.domain.matching import Aggregation
from deerid.domain.probability import SameAnimalProbability
from deerid.evaluation.data import LabelledSet, require_calibration_data
from deerid.evaluation.openset import DEFAULT_THRESHOLDS, OpenSetSweep, sweep_openset

DEFAULT_TARGET_FMR = 0.02

# Trained models put most same-animal scores above 0.99, so the top of the range is swept finely.
CALIBRATION_THRESHOLDS: tuple[float, ...] = DEFAULT_THRESHOLDS + tuple(
    round(0.99 + 0.001 * i, 3) for i in range(1, 10)
)


def fmt_threshold(t: float) -> str:
    """0.97 as "0.97", 0.995 as "0.995"."""
    return f"{t:.2f}" if abs(round(t, 2) - t) < 1e-9 else f"{t:.3f}"


class FmrRule(StrEnum):
    """How the false-merge rates of the arrival orders are combined before the target applies."""

    WORST = "worst"  # every order must meet the target
    MEAN = "mean"  # the mean over orders must


@dataclass(frozen=True)
class Calibration:
    threshold: float
    false_merge_rate: float  # under `rule`: the number compared with the target
    mean_false_merge_rate: float
    worst_false_merge_rate: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    profiles_per_individual: float
    target_fmr: float
    rule: FmrRule
    met: bool  # False: no swept threshold meets the target; `threshold` is then the highest swept
    reason: str
    curve: OpenSetSweep

    def as_dict(self, *, with_curve: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "threshold": self.threshold,
            "false_merge_rate": self.false_merge_rate,
            "mean_false_merge_rate": self.mean_false_merge_rate,
            "worst_false_merge_rate": self.worst_false_merge_rate,
            "bcubed_precision": self.bcubed_precision,
            "bcubed_recall": self.bcubed_recall,
            "bcubed_f1": self.bcubed_f1,
            "profiles_per_individual": self.profiles_per_individual,
            "target_fmr": self.target_fmr,
            "rule": self.rule.value,
            "met": self.met,
            "n_orders": self.curve.n_orders,
            "reason": self.reason,
        }
        if with_curve:
            out["curve"] = [r.as_dict() for r in self.curve.results]
        return out


def calibrate(
    data: LabelledSet,
    *,
    target_fmr: float = DEFAULT_TARGET_FMR,
    thresholds: Sequence[float] = CALIBRATION_THRESHOLDS,
    orders: int = 3,
    seed: int = 0,
    capture_order: Sequence[Any] | None = None,
    aggregation: Aggregation = Aggregation.NEAREST,
    rule: FmrRule = FmrRule.WORST,
) -> Calibration:
    """Sweep the open-set stream over `thresholds` and choose one (see `choose_threshold`).

    Raises ValueError when the data cannot show both kinds of error: fewer than two
    individuals, or no individual seen in two sightings.
    """
    require_calibration_data(data)
    sweep = sweep_openset(
        data, thresholds, orders=orders, seed=seed, capture_order=capture_order, aggregation=aggregation
    )
    return choose_threshold(sweep, target_fmr, rule=rule)


def choose_threshold(
    sweep: OpenSetSweep, target_fmr: float = DEFAULT_TARGET_FMR, *, rule: FmrRule = FmrRule.WORST
) -> Calibration:
    """The lowest swept threshold from which on every swept threshold meets the target.

    The false-merge rate is not monotonic in the threshold (cutting a right link can
    make an image found a profile that a wrong one then joins), so a threshold is
    only trusted when raising it never breaks the target. If the highest thresholds
    break it while some lower one meets it, the highest that meets it is chosen; if
    none meets it, the highest swept threshold is returned with `met=False`.
    """
    if not 0.0 <= target_fmr <= 1.0:
        raise ValueError(f"target false-merge rate must be in [0, 1], got {target_fmr}")
    rule = FmrRule(rule)
    fmr = sweep.worst_false_merge_rate if rule is FmrRule.WORST else sweep.curve("false_merge_rate")
    ts = sweep.thresholds
    ok = fmr <= target_fmr
    how = (
        f"the worst false-merge rate over {sweep.n_orders} order(s)"
        if rule is FmrRule.WORST
        else f"the mean false-merge rate over {sweep.n_orders} order(s)"
    )
    budget = f"≤ {target_fmr:.1%}"

    if not ok.any():
        idx = len(ts) - 1
        reason = (
            f"no swept threshold ({fmt_threshold(ts[0])}–{fmt_threshold(ts[-1])}) keeps {how} {budget}; "
            f"the highest, {fmt_threshold(ts[idx])}, gives {fmr[idx]:.1%}. "
            "The embeddings confuse individuals even at near-duplicate similarity: "
            "raise the target only knowingly."
        )
        met = False
    elif ok[-1]:
        failing = np.flatnonzero(~ok)
        idx = int(failing[-1]) + 1 if failing.size else 0
        reason = (
            f"{fmt_threshold(ts[idx])} is the lowest threshold from which every swept threshold "
            f"keeps {how} {budget}"
        )
        reason += f" ({fmr[idx]:.1%} here"
        reason += (
            f"; {fmt_threshold(ts[idx - 1])} gives {fmr[idx - 1]:.1%})."
            if idx > 0
            else "; nothing lower was swept)."
        )
        met = True
    else:
        idx = int(np.flatnonzero(ok)[-1])
        reason = (
            f"{how.capitalize()} is not monotonic and the highest swept thresholds exceed {budget}; "
            f"{fmt_threshold(ts[idx])} is the highest threshold that meets it ({fmr[idx]:.1%})."
        )
        met = True

    chosen = sweep.results[idx]
    if met and chosen.mean.n_matched == 0:
        reason += " No image matched at all there: the target is met only by never matching."
    return Calibration(
        threshold=float(ts[idx]),
        false_merge_rate=float(fmr[idx]),
        mean_false_merge_rate=chosen.mean.false_merge_rate,
        worst_false_merge_rate=chosen.worst_false_merge_rate,
        bcubed_precision=chosen.mean.bcubed_precision,
        bcubed_recall=chosen.mean.bcubed_recall,
        bcubed_f1=chosen.mean.bcubed_f1,
        profiles_per_individual=chosen.mean.profiles_per_individual,
        target_fmr=target_fmr,
        rule=rule,
        met=met,
        reason=reason,
        curve=sweep,
    )


def stored_record(
    cal: Calibration,
    probability: SameAnimalProbability | None,
    *,
    data: str,
    n_images: int,
    n_individuals: int,
    **extra: Any,
) -> dict[str, Any]:
    """What `deerid calibrate` and `deerid train` store for a model (registry.calibration.save).

    `threshold` (= `auto_threshold`) is None when no swept threshold meets the target:
    the probability map is still worth keeping for ranking, but nothing merges automatically.
    """
    threshold = cal.threshold if cal.met else None
    return {
        "threshold": threshold,
        "auto_threshold": threshold,
        "max_false_merge": cal.target_fmr,
        "met": cal.met,
        "false_merge_rate": cal.false_merge_rate,
        "bcubed_f1": cal.bcubed_f1,
        "profiles_per_individual": cal.profiles_per_individual,
        "probability": probability.to_dict() if probability is not None else None,
        "probability_at_threshold": (
            float(probability(threshold)) if probability is not None and threshold is not None else None
        ),
        "data": data,
        "n_images": n_images,
        "n_individuals": n_individuals,
        "reason": cal.reason,
        **extra,
    }
