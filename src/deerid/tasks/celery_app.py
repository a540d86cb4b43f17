"""The Celery app. Without a broker URL tasks run in-process (eager), so a
laptop needs no Redis; with one they go to `deerid worker`.

Tasks are acknowledged late and rejected when their worker dies, so a killed
worker's task is delivered again; re-identification is idempotent, so a
second delivery never double-counts.

Producers (an ingest, the CLI) send by task name through `producer_for`,
configured from the settings they were given: the worker's own `app` is
configured from the environment it was started with.

Each database has its own queue, `deerid.<database id>`, and every task carries
that id: two deerid databases sharing one broker never run each other's tasks
(a task that reaches the wrong worker anyway is forwarded to its own queue).
Producers keep no result backend, so a broker that is down fails fast with one
`BrokerUnavailableError` instead of a retry loop on the result store.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery

from deerid.core.config import Settings, get_settings
from deerid.errors import Unavailable

REIDENTIFY_DEER = "deerid.reidentify_deer"
REIDENTIFY_BATCH = "deerid.reidentify_batch"
QUEUE_PREFIX = "deerid."


class BrokerUnavailableError(Unavailable):
    pass


def queue_for(database_id: str) -> str:
    """The queue of one database's tasks."""
    return QUEUE_PREFIX + database_id


def make_app(settings: Settings, *, include_tasks: bool = True) -> Celery:
    app = Celery("deerid", include=["deerid.tasks.reid"] if include_tasks else [])
    broker = settings.broker_url
    app.conf.update(
        broker_url=broker or "memory://",
        # Only the worker stores results; a producer never reads them (and, with a backend, a producer
        # facing a dead broker retries the result store for half a minute before a bare RuntimeError).
        result_backend=(
            broker if include_tasks and broker and broker.startswith(("redis://", "rediss://")) else None
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


app = make_app(get_settings())

_producers: dict[str, Celery] = {}
_producers_lock = threading.Lock()


def producer_for(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise ValueError("no broker configured: set DEERID_BROKER_URL to queue tasks")
    with _producers_lock:
        producer = _producers.get(settings.broker_url)
        if producer is None:
            producer = _producers[settings.broker_url] = make_app(settings, include_tasks=False)
        return producer


def enqueue(settings: Settings, task: str, *args: Any) -> str:
    """Send one task to this database's worker queue; returns its id."""
    from kombu.exceptions import KombuError, OperationalError

    from deerid.db.session import database_identity

    database_id = database_identity(settings)
    try:
        return (
            producer_for(settings)
            .send_task(
                task,
                args=list(args),
                kwargs={"database_id": database_id},
                queue=queue_for(database_id),
                retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 1},
            )
            .id
        )
    except (OperationalError, KombuError, OSError) as exc:
        raise BrokerUnavailableError(
            f"cannot reach the broker at {_describe(settings.broker_url or '')}: {exc}. "
            "The deer boxes are stored and stay pending: run `deerid reid --all` "
            "once the broker is back (or unset DEERID_BROKER_URL to re-identify in-process)."
        ) from exc


def _describe(url: str) -> str:
    """The broker URL without its password."""
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))
