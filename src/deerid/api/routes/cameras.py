"""/api/cameras: names, coordinates and clock offsets."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter

from deerid.api.deps import Reader, SessionDep, Writer
from deerid.api.params import Id32
from deerid.api.schemas import CameraOut, CameraPatch
from deerid.db.tables import Camera, Image
from deerid.domain.sites import DEFAULT_SITE, check_site_name
from deerid.errors import Conflict, NotFound

router = APIRouter(prefix="/api/cameras", tags=["cameras"])


def camera_out(camera: Camera, photos: int) -> CameraOut:
    return CameraOut(
        id=camera.id,
        name=camera.name,
        make=camera.make,
        model=camera.model,
        latitude=camera.latitude,
        longitude=camera.longitude,
        clock_offset_s=camera.clock_offset_s,
        site=camera.site,
        photos=photos,
    )


def _photos(session: SessionDep, camera_id: int) -> int:
    return session.execute(
        sa.select(sa.func.count(Image.id)).where(Image.camera_id == camera_id)
    ).scalar_one()


@router.get("", response_model=list[CameraOut], dependencies=[Reader])
def list_cameras(session: SessionDep) -> list[CameraOut]:
    rows = session.execute(
        sa.select(Camera, sa.func.count(Image.id))
        .outerjoin(Image, Image.camera_id == Camera.id)
        .group_by(Camera.id)
        .order_by(Camera.name)
    ).all()
    return [camera_out(cam, n) for cam, n in rows]


@router.patch("/{camera_id}", response_model=CameraOut, dependencies=[Writer])
def patch_camera(camera_id: Id32, body: CameraPatch, session: SessionDep) -> CameraOut:
    camera = session.get(Camera, camera_id)
    if camera is None:
        raise NotFound(f"no camera {camera_id}")
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] != camera.name:
        taken = session.execute(sa.select(Camera.id).where(Camera.name == changes["name"])).scalar()
        if taken is not None:
            raise Conflict(f"another camera is called {changes['name']!r}")
    if "site" in changes:
        if changes["site"] is None:
            changes["site"] = DEFAULT_SITE
        changes["site"] = check_site_name(changes["site"])
    for key, value in changes.items():
        if key == "clock_offset_s" and value is None:
            value = 0
        setattr(camera, key, value)
    session.flush()
    # Sightings' first/last seen are capture times as the camera wrote them; the
    # offset applies where times are shown (timeline, locations).
    return camera_out(camera, _photos(session, camera_id))
