"""Shared fixtures: a real embedded PostgreSQL with pgvector for the whole run,
and a fresh, migrated database for each test (cloned from a template, which
takes milliseconds instead of re-running the migrations)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from builders import World
from deerid.core.config import Settings
from deerid.db.embedded import start_embedded, stop_embedded
from deerid.db.session import create_database as make_database
from deerid.db.session import dispose_engines, session_factory, upgrade_schema

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FEEDER = SHARED / "data" / "trailcam" / "feeder"
FEEDER_JSON = SHARED / "data" / "trailcam" / "feeder.detections.json"
MEGADETECTOR = SHARED / "data" / "megadetector"
NYALA = SHARED / "data" / "nyala" / "train"
ARTIFACTS = REPO / "artifacts"

TEMPLATE_DB = "deerid_template"


def pytest_configure(config: pytest.Config) -> None:
    if not FEEDER.is_dir():
        raise pytest.UsageError(f"the shared data folder is missing: {SHARED} (it must sit beside the repo)")


@pytest.fixture(scope="session")
def pg_root() -> Iterator[str]:
    """URL of the session's embedded server, without a database name.

    Not under pytest's tmp dir: every pytest start resets that to mode 0700,
    which would lock out the `pgserver` user of a concurrent session."""
    data_dir = Path(tempfile.mkdtemp(prefix="deerid-test-pg-"))
    url = start_embedded(data_dir / "pgdata")
    template = sa.create_engine(make_database(url, TEMPLATE_DB))
    upgrade_schema(template)
    template.dispose()
    yield sa.engine.make_url(url).set(database=None).render_as_string(hide_password=False)
    dispose_engines()
    stop_embedded(data_dir / "pgdata")
    shutil.rmtree(data_dir, ignore_errors=True)


def create_database(pg_root: str) -> str:
    """A new database cloned from the migrated template; returns its URL."""
    return make_database(pg_root, f"t_{uuid.uuid4().hex[:12]}", template=TEMPLATE_DB)


@pytest.fixture
def database_url(pg_root: str) -> str:
    return create_database(pg_root)


@pytest.fixture(autouse=True)
def _close_test_engines() -> Iterator[None]:
    """Close the pools a test opened. Each test gets its own database, and the process keeps
    one pool per database, so without this idle connections pile up until the server's
    100-client limit refuses the later tests (CI failed that way in test_worker)."""
    from deerid.db import session as db_session

    before = set(db_session._engines)
    yield
    with db_session._engines_lock:
        opened = [key for key in db_session._engines if key not in before]
        engines = [db_session._engines.pop(key) for key in opened]
    for engine in engines:
        engine.dispose()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the run, as a user's data dir would keep it."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def settings(database_url: str, tmp_path: Path, models_dir: Path) -> Iterator[Settings]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # The head cache is shared across tests; the data dir's models/ points at it.
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    yield Settings(database_url=database_url, data_dir=data_dir, device="cpu", broker_url=None)


@pytest.fixture
def world(settings: Settings) -> World:
    """An empty database to build photos, boxes and vectors in by hand (see builders.py)."""
    return World(session_factory(settings))


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    path = ARTIFACTS / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def feeder_card(tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    """A card folder linking (not copying) these feeder photos, and a detections file holding
    only their entries: (folder, detections file)."""
    import json

    card = tmp_path / "card"
    card.mkdir()
    for name in names:
        (card / name).symlink_to(FEEDER / name)
    data = json.loads(FEEDER_JSON.read_text())
    data["images"] = [i for i in data["images"] if i["file"] in names]
    md = tmp_path / "md.json"
    md.write_text(json.dumps(data))
    return card, md


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
