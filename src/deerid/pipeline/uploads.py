"""Uploads sent through the browser, once their files are saved: their status and their ingest.

An upload's files lie in `<data dir>/uploads/<id>/` (photos/, and detections.json when one was
sent) and are ingested in a background thread. Progress lives in `status.json` beside them, so
any process can read it and a server restart shows an interrupted upload as such instead of
"running" for ever.

An upload is interrupted when the process that owned it is gone: the status names it by pid and
start time, since a pid alone is reused (a container's server is pid 1 after every restart). A
starting server resumes interrupted uploads by itself (`resume_interrupted`, from the app's
lifespan), one after the other in a background thread; `claim_to_resume` does the same for one
(`POST /api/uploads/{id}/resume`), and also retries a failed one. Either claims the upload under a
lock file shared by every process of the data dir, so two servers never both resume it (F22).

Errors and skip reasons are shown to API readers relative to the upload folder, never as absolute
server paths (F28); status.json keeps them whole for the operator.

The status is an `UploadStatus` here and a JSON object only in status.json and in the API's
answers. There a field the upload has not reached yet is absent, not null: the upload page shows
its re-identification bar once `reid_total` is there.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, ValidationError

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.core.files import atomic_write
from deerid.db.tables import Image
from deerid.errors import Conflict, NotFound, Unavailable
from deerid.pipeline.ingest import ingest

log = logging.getLogger(__name__)
# status.json is read, changed and written back whole: one change at a time, or one thread's
# write (the ingest's progress, a request's claim) could undo another's.
_lock = threading.Lock()
_resume_lock = threading.Lock()

State = Literal["queued", "running", "done", "failed", "interrupted"]


class UploadStatus(BaseModel):
    """One upload's status.json. A field never given (an older file, a stage not reached) stays
    unset and is left out of `as_json`. `interrupted` is never written: readers conclude it from a
    queued or running upload whose process is gone."""

    model_config = ConfigDict(extra="ignore")

    # In the order a new upload first writes them, which keeps status.json's keys in that order.
    id: str
    status: State
    created_at: str | None = None
    photos_total: int | None = None
    photos_done: int | None = None
    has_detections: bool | None = None
    pid: int | None = None
    pid_started: float | None = None  # psutil's create_time: with the pid, names one process
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    reid_total: int | None = None
    reid_done: int | None = None
    # Which pass fills the second bar now: "info strips", then "re-identifying" (the ingest's
    # progress labels), so the page names what it counts.
    stage: str | None = None
    detections: int | None = None
    reidentified: int | None = None
    new_deer: int | None = None
    matched: int | None = None
    report: dict[str, Any] | None = None  # IngestReport.as_dict(), kept whole
    resumed_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The status as status.json holds it: the fields set, None as null."""
        return self.model_dump(exclude_unset=True)


def upload_folder(settings: Settings, upload_id: str) -> Path:
    """The folder of upload `upload_id`; an id that is not a UUID names none (nor any other path)."""
    try:
        uuid.UUID(upload_id)
    except ValueError as exc:
        raise NotFound(f"no upload {upload_id}") from exc
    return settings.paths.uploads / upload_id


def _own(state: UploadStatus) -> None:
    """Name this process as the one that owns the upload."""
    state.pid = os.getpid()
    state.pid_started = psutil.Process().create_time()


def _now() -> str:
    """One timestamp format in every answer and in status.json: ISO 8601, UTC, seconds (F22)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _status_file(folder: Path) -> Path:
    return folder / "status.json"


class UploadStatusError(Unavailable):
    """A status.json that is not one (hand-edited, or a disk that lost part of it)."""


def _load(folder: Path) -> UploadStatus:
    try:
        return UploadStatus.model_validate(json.loads(_status_file(folder).read_text()))
    except ValidationError as exc:
        why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    except ValueError as exc:  # not JSON at all
        why = str(exc)
    # The data dir is not named: answers never show server paths (F28).
    raise UploadStatusError(
        f"upload {folder.name}: its status.json cannot be read ({why}); remove uploads/{folder.name} "
        "in the data dir to forget the upload, or upload its photos again"
    )


def _store(folder: Path, state: UploadStatus) -> None:
    """Call with `_lock` held."""
    # default=str: the ingest's report may hold values JSON has no type for.
    atomic_write(_status_file(folder), json.dumps(state.as_json(), default=str))


@contextmanager
def _changing(folder: Path) -> Iterator[UploadStatus]:
    """The upload's status as status.json holds it now, written back when the block ends."""
    with _lock:
        state = _load(folder)
        yield state
        _store(folder, state)


def queue_upload(folder: Path, upload_id: str, photos: int, *, has_detections: bool) -> UploadStatus:
    """Write the first status of an upload whose files are saved in `folder`."""
    state = UploadStatus(
        id=upload_id,
        status="queued",
        created_at=_now(),
        photos_total=photos,
        photos_done=0,
        has_detections=has_detections,
    )
    _own(state)
    with _lock:
        _store(folder, state)
    return state


def run_upload(context: Deerid, folder: Path, detections: Path | None) -> None:
    """Ingest the upload's photos, its status following the progress. A failure is written to the
    status, not raised: the upload page must say so rather than spin."""

    def progress(label: str, total: int) -> Callable[[int], None]:
        # The page has two bars: photos stored, and one that every other pass (info strips, then
        # re-identifying) fills in turn, named by `stage`.
        photos = label == "photos"
        with _changing(folder) as state:
            if photos:
                state.photos_total = total
                state.photos_done = 0
            else:
                state.reid_total = total
                state.reid_done = 0
                state.stage = label
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            with _changing(folder) as state:
                if photos:
                    state.photos_done = done
                else:
                    state.reid_done = done

        return advance

    with _changing(folder) as state:
        state.status = "running"
        state.started_at = _now()
        state.finished_at = None
        state.error = None
        _own(state)
    try:
        report = ingest(context, folder / "photos", detections, progress=progress)
        _drop_skipped_photos(context, folder / "photos")
        with _changing(folder) as state:
            state.status = "done"
            state.finished_at = _now()
            state.detections = report.detections
            state.reidentified = report.reidentified
            state.new_deer = report.new_deer
            state.matched = report.matched
            state.report = report.as_dict()
    except Exception as exc:  # whatever went wrong, the page must say so rather than spin
        with _changing(folder) as state:
            state.status = "failed"
            state.finished_at = _now()
            state.error = str(exc)


def _drop_skipped_photos(context: Deerid, photos: Path) -> None:
    """Files the ingest did not store (not images, unreadable, copies of stored photos) are never
    referenced: delete them rather than keep them on disk for ever (F21). Stored photos stay:
    images point at them."""
    files = {str(p.resolve()): p for p in photos.iterdir() if p.is_file()}
    if not files:
        return
    with context.sessions() as session:
        stored = set(session.execute(sa.select(Image.path).where(Image.path.in_(list(files)))).scalars())
    for resolved, path in files.items():
        if resolved not in stored:
            path.unlink(missing_ok=True)


def read_status(folder: Path) -> UploadStatus:
    """The status of the upload in `folder`; NotFound when it has none."""
    if not _status_file(folder).exists():
        raise NotFound(f"no upload {folder.name}")
    return _current(folder)


def _current(folder: Path) -> UploadStatus:
    state = _load(folder)
    if state.status in ("running", "queued") and not _alive(state):
        # Its server stopped mid-way: the next server start resumes it (or POST .../resume).
        state.status = "interrupted"
    return state


def _alive(state: UploadStatus) -> bool:
    """Whether the process named in the status still runs; the same pid started later is another one."""
    try:
        proc = psutil.Process(state.pid or -1)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = state.pid_started
        return started is None or abs(proc.create_time() - started) < 0.5
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.AccessDenied:
        return True


_ABSOLUTE = re.compile(r"""(?<![^\s'"(=\[])/(?:[^\s'":,;()\[\]{}<>]+/)+([^\s'":,;()\[\]{}<>/]*)""")


def public(state: UploadStatus, folder: Path, data_dir: Path) -> dict[str, Any]:
    """The status as an API reader sees it: status.json's object with server paths made relative to
    the upload folder (F28)."""
    return _public(state.as_json(), folder, data_dir)


def _public(value: Any, folder: Path, data_dir: Path) -> Any:
    """`value` with server paths made relative to the upload folder (F28): `photos/IMG_1.JPG`, not
    `/srv/deerid/uploads/<id>/photos/IMG_1.JPG`; another absolute path keeps only its name."""
    if isinstance(value, dict):
        return {k: _public(v, folder, data_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_public(v, folder, data_dir) for v in value]
    if not isinstance(value, str) or "/" not in value:
        return value
    for base in {str(folder.resolve()), str(folder)}:
        value = value.replace(base + "/", "").replace(base, ".")
    for base in {str(data_dir.resolve()), str(data_dir)}:
        value = value.replace(base + "/", "<data dir>/").replace(base, "<data dir>")
    return _ABSOLUTE.sub(lambda m: m.group(1) or "/", value)


@contextmanager
def _claims(settings: Settings) -> Iterator[None]:
    """Held while an upload is checked and claimed: by threads here, and by other processes of this data
    dir through a lock file, so that an interrupted upload is resumed once, not by every server."""
    # Beside uploads/, not in it: every entry of uploads/ is an upload.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _resume_lock, open(settings.paths.uploads_lock, "a") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: the thread lock alone
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _claim(folder: Path, resumable: tuple[State, ...]) -> UploadStatus | None:
    """Mark the upload queued by this process when its status is one of `resumable`; None otherwise.
    Call with `_claims` held."""
    if _current(folder).status not in resumable:
        return None
    with _changing(folder) as state:
        state.status = "queued"
        state.resumed_at = _now()
        _own(state)
    return state


def detections_of(folder: Path) -> Path | None:
    """The upload's MegaDetector file, when one was sent with it."""
    md_path = folder / "detections.json"
    return md_path if md_path.is_file() else None


def claim_to_resume(settings: Settings, folder: Path) -> UploadStatus:
    """Claim an interrupted (or failed) upload for this process, to ingest it again with
    `run_upload` (F22). NotFound when there is no such upload, Conflict when it is neither."""
    if not _status_file(folder).exists():
        raise NotFound(f"no upload {folder.name}")
    with _claims(settings):
        state = _claim(folder, ("interrupted", "failed"))
    if state is None:
        raise Conflict(
            f"upload {folder.name} is {_current(folder).status}: only an interrupted or failed upload resumes"
        )
    return state


def resume_interrupted(context: Deerid) -> threading.Thread | None:
    """Claim every interrupted upload of the data dir and finish them, oldest first, in one background
    thread (F22): a server restart resumes what the last one left, without anyone asking. Failed
    uploads are not retried by themselves (the same error would come back); the API retries them.
    Returns the thread, or None when nothing was interrupted."""
    root = context.paths.uploads
    if not root.is_dir():
        return None
    claimed: list[tuple[str, Path]] = []
    with _claims(context.settings):
        for status_file in root.glob("*/status.json"):
            folder = status_file.parent
            try:
                state = _claim(folder, ("interrupted",))
            except (OSError, UploadStatusError) as exc:  # one unreadable status must not stop the server
                log.warning("upload %s: cannot read its status: %s", folder.name, exc)
                continue
            if state is not None:
                claimed.append((state.created_at or "", folder))
    if not claimed:
        return None

    def finish() -> None:
        for _, folder in sorted(claimed):
            log.info("resuming interrupted upload %s", folder.name)
            run_upload(context, folder, detections_of(folder))

    # A daemon: stopping the server must not wait for an ingest; one stopped half-way is
    # interrupted again and resumed at the next start.
    thread = threading.Thread(target=finish, name="deerid-upload-resume", daemon=True)
    thread.start()
    return thread
