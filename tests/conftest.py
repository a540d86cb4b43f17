"""Shared fixtures: a real embedded PostgreSQL with pgvector for the whole run,
and a fresh, migrated database for each test (cloned from a template, which
takes milliseconds instead of re-running the migrations)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.embedded import start_embedded, stop_embedded
from deerid.db.session import create_database as make_database
from deerid.db.session import upgrade_schema
from support.builders import World
from support.db import TEMPLATE_DB, create_database
from support.paths import ARTIFACTS, FEEDER, SHARED


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
    stop_embedded(data_dir / "pgdata")
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def database_url(pg_root: str) -> str:
    return create_database(pg_root)


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
def deerid(settings: Settings) -> Iterator[Deerid]:
    """The runtime context on the test's own database. Closed after the test: each test has its
    own database, so pools left open would pile up until the server's 100-client limit refuses
    the later tests."""
    context = Deerid(settings)
    yield context
    context.close()


@pytest.fixture
def world(deerid: Deerid) -> World:
    """An empty database to build photos, boxes and vectors in by hand (see support/builders.py)."""
    return World(deerid.sessions)


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    path = ARTIFACTS / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
