"""At worker start: queue again the work this database is waiting for.

Until migration 0007 every deerid database sent its tasks to Celery's shared
default queue, `celery`, with nothing but a detection id in them. Since then a
worker consumes only its own database's queue (`deerid.<database id>`, F11), so
tasks the previous release left on `celery` when it was upgraded are never run:
their boxes would stay `pending` for ever.

Those tasks cannot be taken over as they are. They name no database, and the
detection ids of two databases collide (that was F11), so a worker cannot tell
its own from another database's: running or moving one could assign a box of
the wrong database, and deleting one could drop another database's only task.
What a legacy task stands for is durable, though: its box is still `pending` in
its own database, and re-identification is idempotent (an assigned box is
skipped, a box is never counted twice).

So a worker, when it starts, sends its own database's pending deer boxes to its
own queue, in batch tasks of a few hundred ids, after whatever is queued
already: by the time they run, boxes whose own task came first are assigned and
cost only a lookup. The `celery` list is read, never consumed or purged: a
worker of the previous release may still be serving it, and it may hold
another database's tasks, which that database's worker makes redundant the same
way when it starts. Once every database on the broker has started a worker of
this release, the list holds nothing anyone needs (`redis-cli DEL celery`).

The same start-up pass also finishes boxes whose task was lost another way: an
ingest run while the broker was down (F12), or a queue flushed by hand.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from deerid.app import Deerid
from deerid.dispatch import REIDENTIFY_BATCH, BrokerUnavailableError
from deerid.pipeline.reid import unassigned

log = logging.getLogger(__name__)

LEGACY_QUEUE = "celery"
CHUNK = 250  # ids per batch task: a few minutes of CPU at most, well inside the visibility timeout
_SAMPLE = 200  # legacy messages read to tell whether the list holds deerid tasks at all


@dataclass(frozen=True)
class Requeued:
    pending: int  # deer boxes of this database waiting for re-identification
    tasks: int  # batch tasks sent to this database's queue for them
    legacy_waiting: int | None  # messages on the shared `celery` list if any are deerid's; None: unknown
    error: str | None = None  # the broker failed: the worker still starts (and waits for it)

    def describe(self) -> str:
        parts = []
        if self.error:
            parts.append(f"could not queue the {self.pending} pending deer boxes again: {self.error}")
        elif self.pending:
            parts.append(f"{self.pending} pending deer boxes queued again ({self.tasks} batch tasks)")
        if self.legacy_waiting:
            parts.append(
                f"{self.legacy_waiting} tasks of the previous release wait on the shared `{LEGACY_QUEUE}` "
                "queue: they name no database, so they are left there (their boxes are covered by "
                "the pending ones each database's worker queues again when it starts)"
            )
        return "; ".join(parts)


def legacy_waiting(broker_url: str) -> int | None:
    """Length of the shared `celery` list when it holds deerid tasks (Redis only); 0 when it holds none."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return None
    from kombu import Connection

    try:
        with Connection(broker_url, connect_timeout=5) as conn:
            client = conn.default_channel.client
            length = int(client.llen(LEGACY_QUEUE))
            if not length:
                return 0
            sample = client.lrange(LEGACY_QUEUE, -_SAMPLE, -1)  # the oldest: the next to be delivered
    except Exception as exc:  # only a report: the requeue itself does not depend on it
        log.warning("could not read the legacy %r queue: %s", LEGACY_QUEUE, exc)
        return None
    return length if any(_is_deerid_task(raw) for raw in sample) else 0


def _is_deerid_task(raw: bytes | str) -> bool:
    try:
        message = json.loads(raw)
        return str(message["headers"]["task"]).startswith("deerid.")
    except (ValueError, KeyError, TypeError):
        return False


def requeue_pending(app: Deerid, chunk: int = CHUNK) -> Requeued:
    """Send this database's pending deer boxes to its own queue, `chunk` ids per batch task."""
    queue = app.queue
    if queue is None:
        raise ValueError("no broker configured: set DEERID_BROKER_URL to queue tasks")
    ids = unassigned(app)
    tasks = 0
    for start in range(0, len(ids), chunk):
        try:
            queue.send(REIDENTIFY_BATCH, ids[start : start + chunk])
        except BrokerUnavailableError as exc:
            # Celery itself waits for a broker that is not up yet; so does the worker, not failing here.
            return Requeued(pending=len(ids), tasks=tasks, legacy_waiting=None, error=str(exc))
        tasks += 1
    return Requeued(pending=len(ids), tasks=tasks, legacy_waiting=legacy_waiting(queue.broker_url))
