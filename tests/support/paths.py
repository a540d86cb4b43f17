"""Where the test data lives: the shared data folder sits beside the repo."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
FEEDER = SHARED / "data" / "trailcam" / "feeder"
FEEDER_JSON = SHARED / "data" / "trailcam" / "feeder.detections.json"
MEGADETECTOR = SHARED / "data" / "megadetector"
NYALA = SHARED / "data" / "nyala" / "train"
ARTIFACTS = REPO / "artifacts"
