"""Settings, read once from the environment (and an optional `.env`).

The four names from the reference design keep their bare environment names
(`REID_THRESHOLD`, `DEVICE`, `MIN_CROP_SIZE`, `DATABASE_URL`) so existing
deployments keep working; everything else is `DEERID_*`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deerid.core.paths import DataPaths

DEFAULT_BACKBONE = "efficientnet_lite1"  # best on nyala train and faster than lite2: docs/backbones.md


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("deerid"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEERID_", env_file=".env", extra="ignore", populate_by_name=True, frozen=True
    )

    reid_threshold: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        validation_alias=AliasChoices("REID_THRESHOLD", "DEERID_REID_THRESHOLD"),
        description="Cosine similarity at or above which a track joins an existing deer automatically; "
        "unset = the model's calibration, and without one no automatic merges.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        validation_alias=AliasChoices("DEVICE", "DEERID_DEVICE"),
        description="Where the embedding network runs; auto = cuda when available, else cpu.",
    )
    min_crop_size: int = Field(
        50,
        ge=1,
        validation_alias=AliasChoices("MIN_CROP_SIZE", "DEERID_MIN_CROP_SIZE"),
        description="Boxes narrower or shorter than this many pixels are kept as too_small, not embedded.",
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "DEERID_DATABASE_URL"),
        description="PostgreSQL with pgvector; unset = embedded server in the data dir.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Embedded database, model cache and crops live here.",
    )
    backbone: str = Field(DEFAULT_BACKBONE, description="Embedding backbone: see `deerid models list`.")
    model: str | None = Field(
        None,
        description="Model to embed with (a backbone or a trained model's name or id); "
        "overrides `deerid models use`, which overrides DEERID_BACKBONE.",
    )
    weights: Path | None = Field(
        None,
        description="Local backbone weights file (e.g. resnet50 ImageNet .pth) to use instead of a download.",
    )
    weights_sha256: str | None = Field(
        None,
        description="sha256 of DEERID_WEIGHTS when it is not the published file (e.g. fine-tuned weights).",
    )
    embed_input_size: int | None = Field(
        None, ge=32, le=1024, description="Square input size of the backbone; unset = the backbone's own."
    )
    allow_download: bool = Field(
        True, description="May a missing backbone weights file be downloaded from its published URL?"
    )
    detection_threshold: float = Field(
        0.2, ge=0.0, le=1.0, description="Detector confidence below which boxes are ignored."
    )
    embed_batch_size: int = Field(16, ge=1, description="Crops per forward pass.")
    runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="What runs the published backbones: auto (ONNX Runtime when they run on the CPU, "
        "falling back to PyTorch with a log line if it cannot be used; PyTorch on CUDA), onnx (ONNX Runtime "
        "on the CPU, an error if it cannot be used) or torch (eager PyTorch). Same vectors and model ids "
        "either way. Trained models always use PyTorch.",
    )
    encounter_gap: float = Field(
        60.0,
        ge=0.0,
        description="Most seconds between two photos of one camera in one event (docs/encounters.md).",
    )
    strip_tolerance: float = Field(
        120.0,
        ge=0.0,
        description="Seconds by which EXIF and the info strip burned into a photo may differ before the "
        "photo is flagged (a strip without seconds is compared to the minute); docs/strip.md.",
    )
    strip_sample: int = Field(
        3,
        ge=0,
        description="Photos per camera and folder whose info strip is read to check EXIF when EXIF has a "
        "time (all of them once one disagrees); photos without an EXIF time are always read. docs/strip.md.",
    )
    timezone: str | None = Field(
        None,
        description="IANA time zone the cameras' clocks keep (e.g. America/Chicago), for daylight "
        "phases; unset = this machine's local zone.",
    )
    season_start: str = Field(
        "08-01",
        pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
        description="MM-DD on which a season starts (activity by week of the season, the season page).",
    )
    match_across_sites: bool = Field(
        False,
        description="Match a sighting, and draw review candidates, from deer of every site, not only "
        "its camera's own "
        "(docs/scale.md, 'Workers and sites'); sites keep workers of different properties apart.",
    )
    broker_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DEERID_BROKER_URL", "CELERY_BROKER_URL"),
        description="Celery broker; unset = re-ID tasks run in-process.",
    )

    api_token: str | None = Field(
        None,
        description="Bearer token for changes through the API; unset = generated once, kept in the data dir.",
    )
    behind_proxy: bool = Field(
        False,
        description=(
            "The API is reached through a reverse proxy on this machine: no request counts as local, "
            "so every read needs the token and the dashboard never embeds it."
        ),
    )
    task_visibility_timeout: int = Field(
        3600,
        ge=1,
        description="Seconds before a task taken by a worker that died is delivered again (Redis).",
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("timezone", mode="after")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                message = f"unknown time zone {value!r}: use an IANA name, e.g. Europe/Berlin"
                raise ValueError(message) from exc
        return value

    @property
    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def season_month_day(self) -> tuple[int, int]:
        month, day = self.season_start.split("-")
        return int(month), int(day)

    @property
    def camera_zone(self) -> tzinfo:
        """The zone the cameras' clocks keep: DEERID_TIMEZONE, else this machine's own (with its
        daylight-saving rules, read from /etc/localtime), else UTC."""
        from zoneinfo import ZoneInfo

        if self.timezone:
            return ZoneInfo(self.timezone)
        local = Path("/etc/localtime")
        if local.exists():
            with local.open("rb") as f:
                return ZoneInfo.from_file(f, key="localtime")
        return UTC

    @property
    def paths(self) -> DataPaths:
        return DataPaths(self.data_dir)

    @property
    def models_dir(self) -> Path:
        return self.paths.models

    @property
    def crops_dir(self) -> Path:
        return self.paths.crops

    @property
    def pgdata_dir(self) -> Path:
        return self.paths.pgdata


def env_names(name: str) -> list[str]:
    """Environment variables that set field `name`, in order of precedence."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"DEERID_{name.upper()}"]


def setting_sources(environ: Mapping[str, str]) -> dict[str, str]:
    """Where each setting's value comes from: "environment" or "default"."""
    sources = {}
    for name in Settings.model_fields:
        found = next((var for var in env_names(name) if var in environ), None)
        sources[name] = "environment" if found else "default"
    return sources


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Forget the cached settings, so the next `get_settings()` rereads the environment."""
    get_settings.cache_clear()
