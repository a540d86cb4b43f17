"""The Celery app. Without a broker URL tasks run in-process (eager), so a
laptop needs no Redis; with one they go to `deerid worker`.

Tasks are acknowledged late and rejected when their worker dies, so a killed
worker's task is delivered again; re-identification is idempotent, so a
second delivery never double-counts.

Producers (an ingest, the CLI) send by task name through `producer_for`,
configured from the settings they were given: the worker's own `app` is
configured from the environment it was started with.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery

from deerid.core.config import Settings, get_settings

REIDENTIFY_DEER = "deerid.reidentify_deer"
REIDENTIFY_BATCH = "deerid.reidentify_batch"


def make_app(settings: Settings, *, include_tasks: bool = True) -> Celery:
    app = Celery("deerid", include=["deerid.tasks.reid"] if include_tasks else [])
    broker = settings.broker_url
    app.conf.update(
        broker_url=broker or "memory://",
        result_backend=broker if broker and broker.startswith(("redis://", "rediss://")) else None,
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
    """Send one task to the worker queue; returns its id."""
    return producer_for(settings).send_task(task, args=list(args)).id
