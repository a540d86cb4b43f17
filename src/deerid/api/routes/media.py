"""Photos and crops, served from the data dir by id: never by a path taken from the request."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse

from deerid.api.deps import Reader, SessionDep, SettingsDep
from deerid.ingest.crop import crop_boxes
from deerid.ingest.photos import PhotoReadError
from deerid.models import Detection, Image

router = APIRouter(prefix="/api", tags=["media"])
CROP_SIZE = 320  # long side of a served crop: enough for a card and a review pane


@router.get("/images/{image_id}", dependencies=[Reader], response_class=FileResponse)
def get_image(image_id: int, session: SessionDep) -> FileResponse:
    image = session.get(Image, image_id)
    if image is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no image {image_id}")
    path = Path(image.path)
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"image {image_id} is no longer at {path}")
    return FileResponse(path, media_type="image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else None)


@router.get("/detections/{detection_id}/crop", dependencies=[Reader], response_class=FileResponse)
def get_crop(
    detection_id: int,
    session: SessionDep,
    settings: SettingsDep,
    size: Annotated[
        Literal["card", "full"], Query(description="card: 320 px long side; full: the photo's own pixels")
    ] = "card",
) -> FileResponse:
    """The detection's box cut from its photo, made once and kept under <data dir>/crops.

    The review screen shows the query at full resolution: markings that tell two deer apart
    (a tine, a scar) are lost at card size."""
    det = session.get(Detection, detection_id)
    if det is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no detection {detection_id}")
    full = size == "full"
    cached = settings.crops_dir / (f"{detection_id}-full.jpg" if full else f"{detection_id}.jpg")
    if not cached.is_file():
        image = session.get(Image, det.image_id)
        assert image is not None
        try:
            (crop,) = crop_boxes(
                Path(image.path),
                [(det.bbox_x, det.bbox_y, det.bbox_w, det.bbox_h)],
                1,
                None if full else CROP_SIZE,
            )
        except (OSError, PhotoReadError, ValueError) as exc:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"cannot crop detection {detection_id}: {exc}"
            ) from exc
        if crop.image is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"detection {detection_id} has an empty box")
        thumb = crop.image.copy()
        if not full:
            thumb.thumbnail((CROP_SIZE, CROP_SIZE))
        settings.crops_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        thumb.save(tmp, format="JPEG", quality=88)
        tmp.replace(cached)
    return FileResponse(cached, media_type="image/jpeg")
