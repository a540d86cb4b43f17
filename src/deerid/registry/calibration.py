"""Calibrated thresholds, one per model id, kept in the data dir.

A threshold only means something for the vectors of one model, so it is
stored against the model id and never carried over to another model. The
threshold in force is, in order: REID_THRESHOLD when set explicitly, the
calibration for the active model, the default 0.85.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deerid.core.config import Settings

FILE = "calibration.json"


@dataclass(frozen=True)
class ThresholdChoice:
    value: float
    source: str  # "environment", "calibrated", "default"
    detail: str  # for people: where exactly it came from


def _path(settings: Settings) -> Path:
    return settings.data_dir / FILE


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
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Write-then-rename: a crash mid-write must not lose the other models' calibrations.
    fd, tmp = tempfile.mkstemp(dir=settings.data_dir, prefix=".calibration-")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, _path(settings))
    return stored


def resolve_threshold(settings: Settings, model_id: str) -> ThresholdChoice:
    if "reid_threshold" in settings.model_fields_set:
        return ThresholdChoice(settings.reid_threshold, "environment", "REID_THRESHOLD is set")
    record = load_all(settings).get(model_id)
    if record is not None and isinstance(record.get("threshold"), int | float):
        detail = (
            f"calibrated {record.get('calibrated_at', '?')} on {record.get('data', '?')} "
            f"for false merges ≤ {record.get('max_false_merge', '?')}"
        )
        return ThresholdChoice(float(record["threshold"]), "calibrated", detail)
    return ThresholdChoice(
        settings.reid_threshold, "default", "the reference default; run `deerid calibrate`"
    )
