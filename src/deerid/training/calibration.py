"""Calibrate a freshly trained model on its own held-out validation individuals.

A trained model's similarities sit far higher than a pretrained one's (on held-out
nyala its threshold is near 0.99), so a model must never run at a threshold meant
for another. Training already holds individuals out to choose the epoch; they have
never been trained on, so they measure what the model does with new animals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deerid.evaluation.calibration import DEFAULT_TARGET_FMR, calibrate, stored_record
from deerid.evaluation.data import LabelledSet, require_calibration_data
from deerid.evaluation.pairs import fit_probability


def calibrate_held_out(
    vectors: np.ndarray,
    individuals: Sequence[str],
    sightings: Sequence[str],
    *,
    target_fmr: float = DEFAULT_TARGET_FMR,
) -> tuple[dict[str, Any] | None, str]:
    """(calibration record for registry.calibration.save, or None; a line saying what was done)."""
    if len(individuals) == 0:
        return None, "no validation individuals were held out (too few individuals, or val_fraction 0)"
    try:
        data = LabelledSet.build(vectors, individuals, sightings)
        require_calibration_data(data)
        cal = calibrate(data, target_fmr=target_fmr)
        probability = fit_probability(data)
    except ValueError as exc:
        return None, f"the held-out individuals cannot calibrate: {exc}"
    record = stored_record(
        cal,
        probability,
        data=f"{data.n_individuals} held-out validation individuals of the training data",
        n_images=len(data),
        n_individuals=data.n_individuals,
    )
    if cal.met:
        note = f"automatic merges from score {cal.threshold:g} (false merges ≤ {target_fmr:.0%} on held-out)"
    else:
        note = f"no threshold keeps false merges ≤ {target_fmr:.0%} on held-out: no automatic merges"
    return record, note
