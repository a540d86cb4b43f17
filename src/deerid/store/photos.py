"""Cameras and images."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from deerid.db.tables import Camera, Image
from deerid.domain.sites import DEFAULT_SITE, SiteError
from deerid.errors import Invalid


def camera_id_for(
    session: Session,
    name: str,
    make: str | None = None,
    model: str | None = None,
    *,
    site: str | None = None,
) -> int:
    """Id of the camera called `name`, creating it on first sight (safe under concurrent ingests).

    With `site`, a new camera is created in it and a camera still in the default
    site moves to it; a camera already in another named site is an error, since
    silently moving it would change which animals its sightings may be."""
    values: dict[str, Any] = {"name": name, "make": make, "model": model}
    if site is not None:
        values["site"] = site
    stmt = (
        insert(Camera)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Camera.name])
        .returning(Camera.id)
    )
    camera_id = session.execute(stmt).scalar()
    if camera_id is not None:
        return camera_id
    camera_id, current = session.execute(
        sa.select(Camera.id, Camera.site).where(Camera.name == name).with_for_update()
    ).one()
    if site is not None and current != site:
        if current != DEFAULT_SITE:
            raise SiteError(
                f"camera {name!r} belongs to site {current!r}, not {site!r}: ingest it with "
                f"--site {current!r}, or move the camera first (PATCH /api/cameras/ID with a new site)"
            )
        session.execute(sa.update(Camera).where(Camera.id == camera_id).values(site=site))
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
    file_mtime: float | None = None,
    pixel_sha256: str | None = None,
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
            file_mtime=file_mtime,
            pixel_sha256=pixel_sha256,
        )
        .on_conflict_do_nothing(index_elements=[Image.sha256])
        .returning(Image.id)
    )
    image_id = session.execute(stmt).scalar()
    if image_id is not None:
        return image_id, True
    return session.execute(sa.select(Image.id).where(Image.sha256 == sha256)).scalar_one(), False


def _stat(path: Path) -> os.stat_result | None:
    try:
        st = path.stat()
    except (OSError, ValueError):  # ValueError: a NUL byte or an unencodable name
        return None
    return st if stat.S_ISREG(st.st_mode) else None


class PhotoCheckError(Invalid):
    """The stored path no longer holds the stored photo: `missing` (gone) or replaced by another photo.

    A ValueError, so every caller that skips an unreadable photo skips this one too."""

    PREFIX = "photo not at its stored path"

    def __init__(self, path: Path | str, reason: str, *, replaced: bool, subject: str | None = None) -> None:
        message = f"{self.PREFIX}: {path} {reason}; ingest the folder where the photo is now"
        super().__init__(f"{subject}: {message}" if subject else message)
        self.path = Path(path)
        self.reason = reason
        self.replaced = replaced  # another photo is there now (else: nothing readable is)
        # Another photo in its place is a conflict the user resolves; a photo that is gone is gone.
        self.status = 409 if replaced else 410

    def about(self, subject: str) -> PhotoCheckError:
        """The same error with the message naming what was asked for (`image 7: photo not at ...`)."""
        return PhotoCheckError(self.path, self.reason, replaced=self.replaced, subject=subject)


# A failed box whose error starts with one of these failed only because its photo could not be read
# where it was stored: finding the photo again (by its SHA-256) under any path sends it back to re-ID.
PHOTO_UNREACHABLE_ERRORS = ("cannot read photo ", PhotoCheckError.PREFIX)


def verify_file(
    path: Path | str, sha256: str, file_size: int | None, file_mtime: float | None
) -> float | None:
    """Check that `path` still holds the photo with this SHA-256; raise `PhotoCheckError` if not.

    Size + mtime equal to the stored ones are taken as proof (no read); otherwise
    the file is hashed. Returns the file's mtime when it had to be hashed and
    matched (the caller may store it so the next check is cheap), else None."""
    path = Path(path)
    st = _stat(path)
    if st is None:
        raise PhotoCheckError(path, "is gone (no such regular file)", replaced=False)
    if file_size is not None and st.st_size != file_size:
        raise PhotoCheckError(path, "now holds a different photo (its size changed)", replaced=True)
    if file_mtime is not None and st.st_mtime == file_mtime:
        return None
    from deerid.core.files import sha256_file

    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise PhotoCheckError(path, f"cannot be read ({exc.strerror or exc})", replaced=False) from exc
    if digest != sha256:
        raise PhotoCheckError(path, "now holds a different photo (its SHA-256 changed)", replaced=True)
    return st.st_mtime


def verify_image(image: Image) -> None:
    """`verify_file` for a stored image, recording the outcome on its row: a photo found
    as stored clears `missing_since` (and refreshes the cheap guard); one that is gone or
    replaced gets `missing_since` and the `PhotoCheckError` is raised."""
    try:
        mtime = verify_file(image.path, image.sha256, image.file_size, image.file_mtime)
    except PhotoCheckError:
        if image.missing_since is None:
            image.missing_since = datetime.now(UTC)
        raise
    if mtime is not None:
        image.file_mtime = mtime
    if image.missing_since is not None:
        image.missing_since = None


def relocate_image(
    session: Session,
    image_id: int,
    path: str,
    file_size: int,
    file_mtime: float,
    pixel_sha256: str | None = None,
) -> bool:
    """The photo with this content is now at `path` (found again by its SHA-256): store its new
    location and send boxes that failed only because the photo was unreachable back to re-ID.
    Returns True when the stored path changed."""
    from deerid.db.tables import Detection, DetectionStatus

    old_path = session.execute(sa.select(Image.path).where(Image.id == image_id)).scalar_one()
    session.execute(
        sa.update(Image)
        .where(Image.id == image_id)
        .values(
            path=path,
            file_size=file_size,
            file_mtime=file_mtime,
            missing_since=None,
            pixel_sha256=sa.func.coalesce(Image.pixel_sha256, pixel_sha256),
        )
    )
    session.execute(
        sa.update(Detection)
        .where(
            Detection.image_id == image_id,
            Detection.status == DetectionStatus.FAILED,
            sa.or_(*(Detection.error.startswith(p, autoescape=True) for p in PHOTO_UNREACHABLE_ERRORS)),
        )
        .values(status=DetectionStatus.PENDING, error=None)
    )
    return old_path != path


def mark_replaced(session: Session, path: str, keep_image_id: int) -> int:
    """`path` now holds image `keep_image_id`: every other image stored at that path is missing."""
    result = session.execute(
        sa.update(Image)
        .where(Image.path == path, Image.id != keep_image_id, Image.missing_since.is_(None))
        .values(missing_since=datetime.now(UTC))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def image_by_pixels(session: Session, pixel_sha256: str) -> tuple[int, str] | None:
    """(id, path) of a stored photo with the same image data (metadata aside), if any."""
    row = session.execute(
        sa.select(Image.id, Image.path).where(Image.pixel_sha256 == pixel_sha256).order_by(Image.id).limit(1)
    ).first()
    return (row[0], row[1]) if row else None


@dataclass(frozen=True)
class MissingPhotos:
    count: int
    examples: list[dict[str, Any]]  # [{"id", "path", "missing_since"}], at most `limit`


def check_locations(session: Session, *, limit: int = 20) -> MissingPhotos:
    """Stat every stored photo's path and record which are gone: a missing file or a size that
    differs from the stored one sets `missing_since`; a file found as stored (size and mtime)
    clears it. Photos flagged by a SHA-256 check (same size, other content) stay flagged."""
    now = datetime.now(UTC)
    gone: list[int] = []
    back: list[int] = []
    rows = session.execute(
        sa.select(Image.id, Image.path, Image.file_size, Image.file_mtime, Image.missing_since)
    ).yield_per(5000)
    for image_id, path, size, mtime, missing_since in rows:
        st = _stat(Path(path))
        if st is None or st.st_size != size:
            if missing_since is None:
                gone.append(image_id)
        elif missing_since is not None and mtime is not None and st.st_mtime == mtime:
            back.append(image_id)
    for chunk in _chunks(gone):
        session.execute(sa.update(Image).where(Image.id.in_(chunk)).values(missing_since=now))
    for chunk in _chunks(back):
        session.execute(sa.update(Image).where(Image.id.in_(chunk)).values(missing_since=None))
    return missing_photos(session, limit=limit)


def missing_photos(session: Session, *, limit: int = 20) -> MissingPhotos:
    """Photos whose stored path no longer holds them, as last recorded."""
    flagged = Image.missing_since.is_not(None)
    count = session.execute(sa.select(sa.func.count()).select_from(Image).where(flagged)).scalar_one()
    rows = session.execute(
        sa.select(Image.id, Image.path, Image.missing_since).where(flagged).order_by(Image.id).limit(limit)
    ).all()
    return MissingPhotos(
        count=int(count),
        # The query keeps only rows with missing_since set.
        examples=[
            {"id": r[0], "path": r[1], "missing_since": cast(datetime, r[2]).isoformat()} for r in rows
        ],
    )


def _chunks(ids: list[int], size: int = 10_000) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
