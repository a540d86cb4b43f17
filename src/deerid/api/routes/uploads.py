"""/api/uploads: photos (and optionally their MegaDetector JSON) sent through the browser.

Files are streamed into `<data dir>/uploads/<id>/` under their own base names
(never a path from the request) and ingested in the background. Progress lives
in `status.json` beside them, so any process can read it and a server restart
shows an interrupted upload as such instead of "running" for ever.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Annotated, Any

import psutil
from fastapi import APIRouter, BackgroundTasks, File, HTTPException, UploadFile, status

from deerid.api.deps import Reader, SettingsDep, Writer
from deerid.core.config import Settings
from deerid.ingest.scan import PHOTO_EXTENSIONS

router = APIRouter(prefix="/api/uploads", tags=["uploads"])
CHUNK = 1 << 20
MAX_FILE_BYTES = 200 * CHUNK  # a trail-camera JPEG is a few MB; this stops a runaway upload
_lock = threading.Lock()


def _dir(settings: Settings, upload_id: str) -> Path:
    try:
        uuid.UUID(upload_id)
    except ValueError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no upload {upload_id}") from exc
    return settings.data_dir / "uploads" / upload_id


def _write_status(folder: Path, **changes: Any) -> dict[str, Any]:
    path = folder / "status.json"
    with _lock:
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(changes)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(current, default=str))
        os.replace(tmp, path)
    return current


def _safe_name(filename: str | None) -> str:
    name = PurePath((filename or "").replace("\\", "/")).name
    if not name or name.startswith("."):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"not a usable file name: {filename!r}")
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


def _run(settings: Settings, upload_id: str, folder: Path, detections: Path | None) -> None:
    from deerid.pipeline.ingest import ingest

    def progress(label: str, total: int) -> Callable[[int], None]:
        key = "photos" if label == "photos" else "reid"
        state = {"done": 0}
        _write_status(folder, **{f"{key}_total": total, f"{key}_done": 0})

        def advance(n: int) -> None:
            state["done"] += n
            _write_status(folder, **{f"{key}_done": state["done"]})

        return advance

    _write_status(folder, status="running", started_at=datetime.now(UTC), pid=os.getpid())
    try:
        report = ingest(settings, folder / "photos", detections, progress=progress).as_dict()
        _write_status(
            folder,
            status="done",
            finished_at=datetime.now(UTC),
            detections=report["detections"],
            reidentified=report["reidentified"],
            new_deer=report["new_deer"],
            matched=report["matched"],
            report=report,
        )
    except Exception as exc:  # whatever went wrong, the page must say so rather than spin
        _write_status(folder, status="failed", finished_at=datetime.now(UTC), error=str(exc))


@router.post("", status_code=status.HTTP_202_ACCEPTED, dependencies=[Writer])
async def create_upload(
    settings: SettingsDep,
    background: BackgroundTasks,
    files: Annotated[list[UploadFile], File(description="Photos (.jpg, .jpeg, .png)")],
    detections: Annotated[UploadFile | None, File(description="MegaDetector batch output JSON")] = None,
) -> dict[str, Any]:
    upload_id = str(uuid.uuid4())
    folder = _dir(settings, upload_id)
    photos = folder / "photos"
    photos.mkdir(parents=True)
    names = []
    for upload in files:
        name = _safe_name(upload.filename)
        if name in names:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"two files are called {name}; upload them separately"
            )
        if PurePath(name).suffix.lower() not in PHOTO_EXTENSIONS:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} is not a photo (.jpg, .jpeg, .png)"
            )
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
        created_at=datetime.now(UTC),
        photos_total=len(names),
        photos_done=0,
        has_detections=md_path is not None,
    )
    background.add_task(_run, settings, upload_id, folder, md_path)
    return state


@router.get("/{upload_id}", dependencies=[Reader])
def get_upload(upload_id: str, settings: SettingsDep) -> dict[str, Any]:
    folder = _dir(settings, upload_id)
    path = folder / "status.json"
    if not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no upload {upload_id}")
    state = json.loads(path.read_text())
    if state.get("status") == "running" and not psutil.pid_exists(int(state.get("pid") or -1)):
        state["status"] = "interrupted"  # its server stopped mid-way; `deerid reid --all` finishes the boxes
    return state
