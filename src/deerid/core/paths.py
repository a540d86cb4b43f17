"""Where everything lives in the data dir: one map, so no module spells a file name of its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataPaths:
    root: Path

    @property
    def models(self) -> Path:
        """Saved heads, trained models and ONNX exports, one folder per model."""
        return self.root / "models"

    @property
    def crops(self) -> Path:
        """Crops the API served once, cached as JPEG."""
        return self.root / "crops"

    @property
    def pgdata(self) -> Path:
        """The embedded PostgreSQL's cluster."""
        return self.root / "pgdata"

    @property
    def uploads(self) -> Path:
        """Photos uploaded through the API, one folder per upload."""
        return self.root / "uploads"

    @property
    def uploads_lock(self) -> Path:
        return self.root / ".uploads.lock"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def api_token(self) -> Path:
        return self.root / "api_token"

    @property
    def active_model(self) -> Path:
        """What `deerid models use` chose."""
        return self.root / "active_model.json"

    @property
    def calibration(self) -> Path:
        """Thresholds and probability maps, one per model id."""
        return self.root / "calibration.json"

    @property
    def backed_up(self) -> tuple[Path, ...]:
        """The small files a backup carries beside the database and the models."""
        return (self.calibration, self.active_model, self.api_token)
