"""Calibrations, one per model id, kept in the data dir: a threshold and a probability map.

A threshold only means something for the vectors of one model, so it is
stored against the model id and never carried over to another model. The
threshold in force is, in order: REID_THRESHOLD when set explicitly, the
calibration for the active model, else none at all. No threshold means no
automatic merges: every new track founds a provisional deer for review. A fixed
default would be a trap: a trained model's similarities sit far higher than a
pretrained one's, and at 0.85 every new sighting of held-out nyala joined one deer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deerid.core.config import Settings
from deerid.core.files import atomic_write
from deerid.domain.probability import SameAnimalProbability

NO_CALIBRATION = (
    "no calibration for this model: every new track founds a provisional deer for review; "
    "run `deerid calibrate`"
)


@dataclass(frozen=True)
class ThresholdChoice:
    value: float | None  # None: no automatic merges
    source: str  # "environment", "calibrated", "none"
    detail: str  # for people: where exactly it came from


def _path(settings: Settings) -> Path:
    return settings.paths.calibration


def load_all(settings: Settings) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_path(settings).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"{_path(settings)} is unreadable ({exc}); move it away and calibrate again"
        ) from exc
    return data if isinstance(data, dict) else {}


def save(settings: Settings, model_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """Store the calibration of `model_id` (replacing an older one); returns what was stored."""
    data = load_all(settings)
    stored = {
        **record,
        "model_id": model_id,
        "calibrated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    data[model_id] = stored
    # Write-then-rename: a crash mid-write must not lose the other models' calibrations.
    atomic_write(_path(settings), json.dumps(data, indent=2))
    return stored


def load(settings: Settings, model_id: str) -> dict[str, Any] | None:
    """The calibration record stored for `model_id`, if any."""
    record = load_all(settings).get(model_id)
    return record if isinstance(record, dict) else None


def describe(record: dict[str, Any]) -> str:
    """Where a stored calibration comes from, for people."""
    target = record.get("max_false_merge")
    target_text = f"{target:.0%}" if isinstance(target, int | float) else "?"
    return (
        f"calibrated {record.get('calibrated_at', '?')} on {record.get('data', '?')} "
        f"for false merges ≤ {target_text}"
    )


def resolve_threshold(settings: Settings, model_id: str) -> ThresholdChoice:
    if settings.reid_threshold is not None:
        return ThresholdChoice(settings.reid_threshold, "environment", "REID_THRESHOLD is set")
    record = load(settings, model_id)
    if record is None:
        return ThresholdChoice(None, "none", NO_CALIBRATION)
    if isinstance(record.get("threshold"), int | float):
        return ThresholdChoice(float(record["threshold"]), "calibrated", describe(record))
    return ThresholdChoice(
        None,
        "calibrated",
        describe(record) + ", which no threshold met: every new track founds a provisional deer for review",
    )


def load_probability(settings: Settings, model_id: str) -> SameAnimalProbability | None:
    """The fitted same-animal probability of `model_id`; None when it has none (use raw similarity)."""
    record = load(settings, model_id)
    if record is None or not isinstance(record.get("probability"), dict):
        return None
    try:
        return SameAnimalProbability.from_dict(record["probability"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RuntimeError(
            f"the calibration of {model_id} in {_path(settings)} is damaged ({exc}); run `deerid calibrate`"
        ) from exc
