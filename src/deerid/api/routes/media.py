"""Photos and crops, served from the data dir by id: never by a path taken from the request."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from deerid.api.deps import Reader, SessionDep, SettingsDep
from deerid.api.params import Id64
from deerid.core.files import atomic_path
from deerid.db.tables import Detection, Image
from deerid.errors import NotFound
from deerid.ingest.crop import crop_boxes
from deerid.ingest.photos import PhotoReadError
from deerid.store import photos as photo_store

router = APIRouter(prefix="/api", tags=["media"])
CROP_SIZE = 320  # long side of a served crop: enough for a card and a review pane


@router.get("/images/missing", dependencies=[Reader])
def missing_images(session: SessionDep, limit: Annotated[int, Query(ge=0, le=1000)] = 100) -> dict[str, Any]:
    """Photos whose stored path no longer holds them (moved, deleted, or another photo in their
    place): checked now (a stat per photo). Ingesting the folder where they are now finds them
    again by content and updates their location."""
    found = photo_store.check_locations(session, limit=limit)
    return {"missing": found.count, "images": found.examples}


def _checked(session: Any, image: Image) -> Path:
    """The photo's path once it is known to hold this photo: 410 when gone, 409 when replaced (F14)."""
    try:
        photo_store.verify_image(image)
    except photo_store.PhotoCheckError as exc:
        session.commit()  # keep the missing flag although the request fails
        raise exc.about(f"image {image.id}") from exc
    return Path(image.path)


@router.get("/images/{image_id}", dependencies=[Reader], response_class=FileResponse)
def get_image(image_id: Id64, session: SessionDep) -> FileResponse:
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"no image {image_id}")
    path = _checked(session, image)
    return FileResponse(path, media_type="image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else None)


@router.get("/detections/{detection_id}/crop", dependencies=[Reader], response_class=FileResponse)
def get_crop(
    detection_id: Id64,
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
        raise NotFound(f"no detection {detection_id}")
    full = size == "full"
    cached = settings.crops_dir / (f"{detection_id}-full.jpg" if full else f"{detection_id}.jpg")
    if not cached.is_file():
        image = session.get(Image, det.image_id)
        assert image is not None
        path = _checked(session, image)
        try:
            (crop,) = crop_boxes(
                path,
                [(det.bbox_x, det.bbox_y, det.bbox_w, det.bbox_h)],
                1,
                None if full else CROP_SIZE,
            )
        except (OSError, PhotoReadError, ValueError) as exc:
            raise NotFound(f"cannot crop detection {detection_id}: {exc}") from exc
        if crop.image is None:
            raise NotFound(f"detection {detection_id} has an empty box")
        thumb = crop.image.copy()
        if not full:
            thumb.thumbnail((CROP_SIZE, CROP_SIZE))
        # A name of its own per writer: concurrent first requests for one crop each write whole
        # files and the last rename wins (F19).
        with atomic_path(cached) as tmp:
            thumb.save(tmp, format="JPEG", quality=88)
    return FileResponse(cached, media_type="image/jpeg")
