"""The worker's Celery app. Without a broker URL tasks run in-process (eager), so a
laptop needs no Redis; with one they go to `deerid worker`.

Nothing is configured at import: `deerid worker` configures the app from its runtime
context before it starts, and each pool child builds its own context in
`worker_process_init` (a context is never carried across the fork). Producers
never import this module: they send through `deerid.dispatch.TaskQueue`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from deerid.app import Deerid
from deerid.core.config import Settings, get_settings
from deerid.dispatch import configure_celery

app = Celery("deerid", include=["deerid.tasks.reid"])
# Until `configure`, no broker: a task called in this process runs in it, as with no
# DEERID_BROKER_URL, instead of looking for an AMQP server on localhost.
app.conf.update(broker_url="memory://", task_always_eager=True, task_eager_propagates=True)

_context: Deerid | None = None


def configure(settings: Settings) -> Celery:
    """Configure the worker app from the settings the worker was started with."""
    return configure_celery(app, settings, worker=True)


def worker_context() -> Deerid:
    """This process's runtime context: the pool child's own, or (eager runs, tests) one built
    from the environment on first use."""
    global _context
    if _context is None:
        _context = Deerid(get_settings())
    return _context


@worker_process_init.connect
def _open_context(**_: Any) -> None:
    global _context
    _context = Deerid(get_settings())


@worker_process_shutdown.connect
def _close_context(**_: Any) -> None:
    global _context
    if _context is not None:
        _context.close()
        _context = None
