"""The Celery app. Without a broker URL tasks run in-process (eager), so a
laptop needs no Redis; with one they go to `deerid worker`.

Tasks are acknowledged late and rejected when their worker dies, so a killed
worker's task is delivered again; re-identification is idempotent, so a
second delivery never double-counts.
"""

from __future__ import annotations

from celery import Celery

from deerid.core.config import get_settings


def make_app() -> Celery:
    settings = get_settings()
    app = Celery("deerid", include=["deerid.tasks.reid"])
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


app = make_app()
