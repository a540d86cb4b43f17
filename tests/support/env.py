"""Environments for deerid subprocesses."""

from __future__ import annotations

import os

from deerid.core.config import Settings


def subprocess_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a deerid subprocess that uses the same database and data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEERID_", "REID_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=settings.database_url or "",
        DEERID_DATA_DIR=str(settings.data_dir),
        DEVICE=settings.device,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
