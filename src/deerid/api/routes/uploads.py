"""/api/uploads: photos (and optionally their MegaDetector JSON) sent through the browser.

Files are streamed into `<data dir>/uploads/<id>/` under their own base names
(never a path from the request); `deerid.pipeline.uploads` ingests them in the
background, keeps their status, and resumes an upload a stopped server left.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, File, HTTPException, UploadFile, status

from deerid.api.deps import ContextDep, Reader, SettingsDep, Writer
from deerid.app import Deerid
from deerid.errors import Invalid
from deerid.ingest.scan import PHOTO_EXTENSIONS
from deerid.pipeline.uploads import (
    claim_to_resume,
    detections_of,
    public,
    queue_upload,
    read_status,
    run_upload,
    upload_folder,
)

router = APIRouter(prefix="/api/uploads", tags=["uploads"])
CHUNK = 1 << 20
MAX_FILE_BYTES = 200 * CHUNK  # a trail-camera JPEG is a few MB; this stops a runaway upload


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


@router.post("", status_code=status.HTTP_202_ACCEPTED, dependencies=[Writer])
async def create_upload(
    context: ContextDep,
    background: BackgroundTasks,
    files: Annotated[list[UploadFile], File(description="Photos (.jpg, .jpeg, .png)")],
    detections: Annotated[UploadFile | None, File(description="MegaDetector batch output JSON")] = None,
) -> dict[str, Any]:
    upload_id = str(uuid.uuid4())
    folder = upload_folder(context.settings, upload_id)
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
    state = queue_upload(folder, upload_id, len(names), has_detections=md_path is not None)
    background.add_task(run_upload, context, folder, md_path)
    return public(state, folder, context.settings.data_dir)


@router.get("/{upload_id}", dependencies=[Reader])
def get_upload(upload_id: str, settings: SettingsDep) -> dict[str, Any]:
    folder = upload_folder(settings, upload_id)
    return public(read_status(folder), folder, settings.data_dir)


@router.post("/{upload_id}/resume", status_code=status.HTTP_202_ACCEPTED, dependencies=[Writer])
def resume_upload(upload_id: str, context: ContextDep, background: BackgroundTasks) -> dict[str, Any]:
    """Ingest an interrupted (or failed) upload again from its saved files (F22). Photos and boxes
    already stored are recognised by content, so only what was missing is done."""
    settings = context.settings
    folder = upload_folder(settings, upload_id)
    state = claim_to_resume(settings, folder)
    background.add_task(run_upload, context, folder, detections_of(folder))
    return public(state, folder, settings.data_dir)
