"""/api/uploads: photos (and optionally their MegaDetector JSON) sent through the browser.

Files are streamed into `<data dir>/uploads/<id>/` under their own base names
(never a path from the request) and ingested in the background. Progress lives
in `status.json` beside them, so any process can read it and a server restart
shows an interrupted upload as such instead of "running" for ever.

An upload is interrupted when the process that owned it is gone: the status
names it by pid and start time, since a pid alone is reused (a container's
server is pid 1 after every restart). A starting server resumes interrupted
uploads by itself (`resume_interrupted`, from the app's lifespan), one after the
other in a background thread; `POST /api/uploads/{id}/resume` does the same for
one, and also retries a failed one. Either claims the upload under a lock file
shared by every process of the data dir, so two servers never both resume it
(F22).

Errors and skip reasons are shown to API readers relative to the upload
folder, never as absolute server paths (F28); status.json keeps them whole for
the operator.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Annotated, Any

import psutil
from fastapi import APIRouter, BackgroundTasks, File, HTTPException, UploadFile, status

from deerid.api.deps import ContextDep, Reader, SettingsDep, Writer
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.core.files import atomic_write
from deerid.errors import Conflict, Invalid, NotFound
from deerid.ingest.scan import PHOTO_EXTENSIONS

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/uploads", tags=["uploads"])
CHUNK = 1 << 20
MAX_FILE_BYTES = 200 * CHUNK  # a trail-camera JPEG is a few MB; this stops a runaway upload
_lock = threading.Lock()
_resume_lock = threading.Lock()


def _dir(settings: Settings, upload_id: str) -> Path:
    try:
        uuid.UUID(upload_id)
    except ValueError as exc:
        raise NotFound(f"no upload {upload_id}") from exc
    return settings.paths.uploads / upload_id


def _owner() -> dict[str, Any]:
    """This process, as status.json names the process that owns an upload."""
    return {"pid": os.getpid(), "pid_started": psutil.Process().create_time()}


def _now() -> str:
    """One timestamp format in every answer and in status.json: ISO 8601, UTC, seconds (F22)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_status(folder: Path, **changes: Any) -> dict[str, Any]:
    path = folder / "status.json"
    with _lock:
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(changes)
        atomic_write(path, json.dumps(current, default=str))
    return current


def _safe_name(filename: str | None) -> str:
    name = PurePath((filename or "").replace("\\", "/")).name
    if not name or name.startswith("."):
        raise Invalid(f"not a usable file name: {filename!r}")
    return name


async def _save(upload: UploadFile, target: Path) -> int:
    size = 0
    with target.open("wb") as out:
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                out.close()
                target.unlink(missing_ok=True)
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"{upload.filename} is over 200 MB")
            out.write(chunk)
    return size


def _run(context: Deerid, folder: Path, detections: Path | None) -> None:
    from deerid.pipeline.ingest import ingest

    def progress(label: str, total: int) -> Callable[[int], None]:
        key = "photos" if label == "photos" else "reid"
        state = {"done": 0}
        _write_status(folder, **{f"{key}_total": total, f"{key}_done": 0})

        def advance(n: int) -> None:
            state["done"] += n
            _write_status(folder, **{f"{key}_done": state["done"]})

        return advance

    _write_status(folder, status="running", started_at=_now(), finished_at=None, error=None, **_owner())
    try:
        report = ingest(context, folder / "photos", detections, progress=progress).as_dict()
        _drop_skipped_photos(context, folder / "photos")
        _write_status(
            folder,
            status="done",
            finished_at=_now(),
            detections=report["detections"],
            reidentified=report["reidentified"],
            new_deer=report["new_deer"],
            matched=report["matched"],
            report=report,
        )
    except Exception as exc:  # whatever went wrong, the page must say so rather than spin
        _write_status(folder, status="failed", finished_at=_now(), error=str(exc))


def _drop_skipped_photos(context: Deerid, photos: Path) -> None:
    """Files the ingest did not store (not images, unreadable, copies of stored photos) are never
    referenced: delete them rather than keep them on disk for ever (F21). Stored photos stay:
    images point at them."""
    import sqlalchemy as sa

    from deerid.db.tables import Image

    files = {str(p.resolve()): p for p in photos.iterdir() if p.is_file()}
    if not files:
        return
    with context.sessions() as session:
        stored = set(session.execute(sa.select(Image.path).where(Image.path.in_(list(files)))).scalars())
    for resolved, path in files.items():
        if resolved not in stored:
            path.unlink(missing_ok=True)


@router.post("", status_code=status.HTTP_202_ACCEPTED, dependencies=[Writer])
async def create_upload(
    context: ContextDep,
    background: BackgroundTasks,
    files: Annotated[list[UploadFile], File(description="Photos (.jpg, .jpeg, .png)")],
    detections: Annotated[UploadFile | None, File(description="MegaDetector batch output JSON")] = None,
) -> dict[str, Any]:
    upload_id = str(uuid.uuid4())
    folder = _dir(context.settings, upload_id)
    try:
        return await _receive(context, background, upload_id, folder, files, detections)
    except BaseException:
        # A rejected upload (422, 413, a dropped connection) leaves nothing behind (F21).
        shutil.rmtree(folder, ignore_errors=True)
        raise


async def _receive(
    context: Deerid,
    background: BackgroundTasks,
    upload_id: str,
    folder: Path,
    files: list[UploadFile],
    detections: UploadFile | None,
) -> dict[str, Any]:
    photos = folder / "photos"
    photos.mkdir(parents=True)
    names = []
    for upload in files:
        name = _safe_name(upload.filename)
        if name in names:
            raise Invalid(f"two files are called {name}; upload them separately")
        if PurePath(name).suffix.lower() not in PHOTO_EXTENSIONS:
            raise Invalid(f"{name} is not a photo (.jpg, .jpeg, .png)")
        await _save(upload, photos / name)
        names.append(name)
    md_path = None
    if detections is not None and detections.filename:
        md_path = folder / "detections.json"
        await _save(detections, md_path)
    state = _write_status(
        folder,
        id=upload_id,
        status="queued",
        created_at=_now(),
        photos_total=len(names),
        photos_done=0,
        has_detections=md_path is not None,
        **_owner(),
    )
    background.add_task(_run, context, folder, md_path)
    return state


@router.get("/{upload_id}", dependencies=[Reader])
def get_upload(upload_id: str, settings: SettingsDep) -> dict[str, Any]:
    folder = _dir(settings, upload_id)
    path = folder / "status.json"
    if not path.exists():
        raise NotFound(f"no upload {upload_id}")
    return _public(_state(folder), folder, settings.data_dir)


def _state(folder: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((folder / "status.json").read_text())
    if state.get("status") in ("running", "queued") and not _alive(state):
        # Its server stopped mid-way: the next server start resumes it (or POST .../resume).
        state["status"] = "interrupted"
    return state


def _alive(state: dict[str, Any]) -> bool:
    """Whether the process named in the status still runs; the same pid started later is another one."""
    try:
        proc = psutil.Process(int(state.get("pid") or -1))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = state.get("pid_started")
        return started is None or abs(proc.create_time() - float(started)) < 0.5
    except (psutil.NoSuchProcess, ValueError, TypeError):
        return False
    except psutil.AccessDenied:
        return True


_ABSOLUTE = re.compile(r"""(?<![^\s'"(=\[])/(?:[^\s'":,;()\[\]{}<>]+/)+([^\s'":,;()\[\]{}<>/]*)""")


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


def _claim(folder: Path, resumable: tuple[str, ...]) -> dict[str, Any] | None:
    """Mark the upload queued by this process when its status is one of `resumable`; None otherwise.
    Call with `_claims` held."""
    state = _state(folder)
    if state.get("status") not in resumable:
        return None
    return _write_status(folder, status="queued", resumed_at=_now(), **_owner())


def _detections_of(folder: Path) -> Path | None:
    md_path = folder / "detections.json"
    return md_path if md_path.is_file() else None


@router.post("/{upload_id}/resume", status_code=status.HTTP_202_ACCEPTED, dependencies=[Writer])
def resume_upload(upload_id: str, context: ContextDep, background: BackgroundTasks) -> dict[str, Any]:
    """Ingest an interrupted (or failed) upload again from its saved files (F22). Photos and boxes
    already stored are recognised by content, so only what was missing is done."""
    settings = context.settings
    folder = _dir(settings, upload_id)
    if not (folder / "status.json").exists():
        raise NotFound(f"no upload {upload_id}")
    with _claims(settings):
        state = _claim(folder, ("interrupted", "failed"))
    if state is None:
        raise Conflict(
            f"upload {upload_id} is {_state(folder).get('status')}: "
            "only an interrupted or failed upload resumes"
        )
    background.add_task(_run, context, folder, _detections_of(folder))
    return _public(state, folder, settings.data_dir)


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
            except (OSError, ValueError) as exc:  # one unreadable status must not stop the server
                log.warning("upload %s: cannot read its status: %s", folder.name, exc)
                continue
            if state is not None:
                claimed.append((str(state.get("created_at") or ""), folder))
    if not claimed:
        return None

    def finish() -> None:
        for _, folder in sorted(claimed):
            log.info("resuming interrupted upload %s", folder.name)
            _run(context, folder, _detections_of(folder))

    # A daemon: stopping the server must not wait for an ingest; one stopped half-way is
    # interrupted again and resumed at the next start.
    thread = threading.Thread(target=finish, name="deerid-upload-resume", daemon=True)
    thread.start()
    return thread
