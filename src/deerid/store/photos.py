"""Cameras and images."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from deerid.models import Camera, Image


def camera_id_for(session: Session, name: str, make: str | None = None, model: str | None = None) -> int:
    """Id of the camera called `name`, creating it on first sight (safe under concurrent ingests)."""
    stmt = (
        insert(Camera)
        .values(name=name, make=make, model=model)
        .on_conflict_do_nothing(index_elements=[Camera.name])
        .returning(Camera.id)
    )
    camera_id = session.execute(stmt).scalar()
    if camera_id is None:
        camera_id = session.execute(sa.select(Camera.id).where(Camera.name == name)).scalar_one()
    return camera_id


def image_by_sha256(session: Session, sha256: str) -> Image | None:
    return session.execute(sa.select(Image).where(Image.sha256 == sha256)).scalar_one_or_none()


def add_image(
    session: Session,
    *,
    path: str,
    sha256: str,
    camera_id: int | None,
    captured_at: datetime | None,
    captured_at_source: str,
    width: int,
    height: int,
    file_size: int,
) -> tuple[int, bool]:
    """Insert an image unless one with the same content exists: (id, created)."""
    stmt = (
        insert(Image)
        .values(
            path=path,
            sha256=sha256,
            camera_id=camera_id,
            captured_at=captured_at,
            captured_at_source=captured_at_source,
            width=width,
            height=height,
            file_size=file_size,
        )
        .on_conflict_do_nothing(index_elements=[Image.sha256])
        .returning(Image.id)
    )
    image_id = session.execute(stmt).scalar()
    if image_id is not None:
        return image_id, True
    return session.execute(sa.select(Image.id).where(Image.sha256 == sha256)).scalar_one(), False
