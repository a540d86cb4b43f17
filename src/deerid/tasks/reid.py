"""Celery tasks: thin adapters over `deerid.pipeline.reid`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import OperationalError

from deerid.dispatch import REIDENTIFY_BATCH, REIDENTIFY_DEER, queue_for
from deerid.pipeline.reid import reidentify_ids, unassigned
from deerid.tasks.celery_app import app, worker_context

_RETRY: dict[str, Any] = {
    # A database restart or a dropped connection is worth retrying; bad input is not.
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "max_retries": 5,
}


def _forward(task: str, args: list[Any], database_id: str | None) -> dict[str, Any] | None:
    """A task of another database goes back to that database's queue, untouched; None = ours."""
    if database_id is None or database_id == worker_context().database_id:
        return None
    app.send_task(task, args=args, kwargs={"database_id": database_id}, queue=queue_for(database_id))
    return {"forwarded_to": queue_for(database_id)}


@app.task(name=REIDENTIFY_DEER, **_RETRY)
def reidentify_deer_task(detection_id: int, database_id: str | None = None) -> dict[str, Any]:
    """Re-identify one detection; returns its outcome.

    Embeds every waiting deer box of the detection's event and links the event's
    tracks first (a track is matched as a whole), so one task per box gives the
    same deer as an in-process run. `database_id` names the database the task
    was queued for: another database's task is forwarded, never run here."""
    forwarded = _forward(REIDENTIFY_DEER, [detection_id], database_id)
    if forwarded is not None:
        return forwarded
    result = reidentify_ids(worker_context(), [detection_id]).results[0]
    return {
        "detection_id": result.detection_id,
        "outcome": result.outcome.value,
        "deer_id": str(result.deer_id) if result.deer_id else None,
        "similarity": result.similarity,
        "error": result.error,
        "via_track": result.via_track,
    }


@app.task(name=REIDENTIFY_BATCH, **_RETRY)
def reidentify_batch_task(
    detection_ids: list[int] | None = None, database_id: str | None = None
) -> dict[str, Any]:
    """Re-identify many detections; None = every deer detection not yet assigned."""
    forwarded = _forward(REIDENTIFY_BATCH, [detection_ids], database_id)
    if forwarded is not None:
        return forwarded
    context = worker_context()
    ids = detection_ids if detection_ids is not None else unassigned(context)
    return reidentify_ids(context, ids).as_dict()
