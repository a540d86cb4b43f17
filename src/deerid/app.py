"""The runtime context: one object per process that holds what the process runs on.

The CLI builds it when a command first needs it (`deerid.cli.root.context`), the API
in `create_app` (on `app.state`, behind a dependency; closed by its lifespan; built
there rather than in the lifespan so that a TestClient used without `with` still has
one), the worker in `worker_process_init`; each hands it down.
It holds:
- the frozen settings and the data-dir paths derived from them;
- the engine and the session factory (the embedded server starts on first use);
- the loaded embedders;
- the threshold in force for a model;
- task dispatch: a broker queue, or none to re-identify in-process.

Layers below it (store, registry, reid) keep taking explicit collaborators (a
session, the settings, an embedder); only the orchestration above it (pipeline,
the adapters) takes the context. Closing it disposes the pool and forgets the
models, so nothing outlives the settings it was built for: tests build one per
test database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from deerid.core.config import Settings
from deerid.core.paths import DataPaths
from deerid.db.session import connect, read_database_id
from deerid.dispatch import TaskQueue
from deerid.embed.cache import ModelCache
from deerid.embed.protocol import EmbedderLike
from deerid.registry.calibration import ThresholdChoice, resolve_threshold
from deerid.registry.models import active_model_name, embedder_for


class Deerid:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths: DataPaths = settings.paths
        self.models = ModelCache()
        self._engine: sa.Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._database_id: str | None = None
        self._queue: TaskQueue | None = None
        self._lock = threading.Lock()

    # -- database ---------------------------------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        """Connects (and migrates) on first use: a command that never touches the database,
        such as `deerid config`, never starts the embedded server."""
        with self._lock:
            if self._engine is None:
                self._engine = connect(self.settings)
                self._sessions = sessionmaker(self._engine, expire_on_commit=False)
            return self._engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        self.engine  # noqa: B018 - connects on first use
        assert self._sessions is not None
        return self._sessions

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    @property
    def database_id(self) -> str:
        if self._database_id is None:
            self._database_id = read_database_id(self.engine)
        return self._database_id

    # -- models -----------------------------------------------------------------------------

    def embedder(self, key: str | None = None) -> EmbedderLike:
        """Model `key` (backbone name, trained model name or model id); None = the active one."""
        return embedder_for(self.settings, key or active_model_name(self.settings)[0], self.models)

    def threshold(self, model_id: str) -> ThresholdChoice:
        """The threshold in force for `model_id`'s vectors (REID_THRESHOLD, its calibration, or none)."""
        return resolve_threshold(self.settings, model_id)

    # -- dispatch ---------------------------------------------------------------------------

    @property
    def queue(self) -> TaskQueue | None:
        """The broker's queue for this database's tasks; None: re-identify in-process."""
        if not self.settings.broker_url:
            return None
        with self._lock:
            if self._queue is None:
                self._queue = TaskQueue(self.settings, lambda: self.database_id)
            return self._queue

    # -- life -------------------------------------------------------------------------------

    def release_connections(self) -> None:
        """Close pooled connections (before a fork: none may cross into a child process)."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
            self._sessions = None
            self.models.clear()

    def __enter__(self) -> Deerid:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Deerid(data_dir={str(self.settings.data_dir)!r})"
