"""Sending re-identification to workers through the broker: the producer side of Celery.

Producers (an ingest, the CLI, the API) hold one `TaskQueue` in their runtime
context when a broker is configured; without one they re-identify in-process
and hold none. The worker side (`deerid.tasks`) registers the tasks named here.

Each database has its own queue, `deerid.<database id>`, and every task carries
that id: two deerid databases sharing one broker never run each other's tasks
(a task that reaches the wrong worker anyway is forwarded to its own queue).
Producers keep no result backend, so a broker that is down fails fast with one
`BrokerUnavailableError` instead of a retry loop on the result store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from celery import Celery

from deerid.core.config import Settings
from deerid.errors import Unavailable

REIDENTIFY_DEER = "deerid.reidentify_deer"
REIDENTIFY_BATCH = "deerid.reidentify_batch"
QUEUE_PREFIX = "deerid."


class BrokerUnavailableError(Unavailable):
    pass


def queue_for(database_id: str) -> str:
    """The queue of one database's tasks."""
    return QUEUE_PREFIX + database_id


def configure_celery(app: Celery, settings: Settings, *, worker: bool) -> Celery:
    """Apply the settings to a Celery app. Tasks are acknowledged late and rejected when their
    worker dies, so a killed worker's task is delivered again; re-identification is idempotent,
    so a second delivery never double-counts."""
    broker = settings.broker_url
    app.conf.update(
        broker_url=broker or "memory://",
        # Only the worker stores results; a producer never reads them (and, with a backend, a producer
        # facing a dead broker retries the result store for half a minute before a bare RuntimeError).
        result_backend=(
            broker if worker and broker and broker.startswith(("redis://", "rediss://")) else None
        ),
        task_always_eager=broker is None,
        task_eager_propagates=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        broker_transport_options={"visibility_timeout": settings.task_visibility_timeout},
        broker_connection_retry_on_startup=True,
    )
    return app


class TaskQueue:
    """Sends tasks to one database's worker queue."""

    def __init__(self, settings: Settings, database_id: Callable[[], str]) -> None:
        if not settings.broker_url:
            raise ValueError("no broker configured: set DEERID_BROKER_URL to queue tasks")
        self.broker_url = settings.broker_url
        self._database_id = database_id
        self._producer = configure_celery(Celery("deerid"), settings, worker=False)
        self._lock = threading.Lock()

    def send(self, task: str, *args: Any) -> str:
        """Send one task; returns its id."""
        from kombu.exceptions import KombuError, OperationalError

        database_id = self._database_id()
        try:
            with self._lock:
                return str(
                    self._producer.send_task(
                        task,
                        args=list(args),
                        kwargs={"database_id": database_id},
                        queue=queue_for(database_id),
                        retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 1},
                    ).id
                )
        except (OperationalError, KombuError, OSError) as exc:
            raise BrokerUnavailableError(
                f"cannot reach the broker at {describe_broker(self.broker_url)}: {exc}. "
                "The deer boxes are stored and stay pending: run `deerid reid --all` "
                "once the broker is back (or unset DEERID_BROKER_URL to re-identify in-process)."
            ) from exc


def describe_broker(url: str) -> str:
    """The broker URL without its password."""
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))
