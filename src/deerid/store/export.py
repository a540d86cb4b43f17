"""Read queries behind the exports (deerid.export): every table streamed from a server-side
cursor, so exporting a million sightings holds one batch of rows in memory, never the result.

Times are the photo's capture time as its camera wrote it plus the camera's clock offset
(`cameras.clockCLOCK_OFFSET_s`), the same correction the dashboard shows. They stay naive here:
the timezone is the export's choice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import Camera, Deer, Deployment, Detection, Event, Image
from deerid.store.deployments import deployment_of_image
from deerid.store.views import CLOCK_OFFSET, LOCAL_TIME

BATCH = 2000  # rows per fetch from the server-side cursor


def snapshot(session: Session) -> None:
    """Read every table of one export from one snapshot: an ingest running meanwhile cannot
    leave observations pointing at media the media table did not have yet."""
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    session.execute(sa.text("SET TRANSACTION READ ONLY"))


def _stream(session: Session, stmt: sa.Select[*tuple[Any, ...]]) -> Iterator[sa.Row[*tuple[Any, ...]]]:
    yield from session.execute(stmt.execution_options(yield_per=BATCH))


@dataclass(frozen=True)
class DeploymentSpan:
    """A stored deployment, or a camera's photos that no stored deployment holds (a deployment
    derived from the camera: first to last photo, the camera's coordinates)."""

    stored_id: int | None  # deployments.id; None: derived from the camera
    camera_id: int | None  # None: photos whose camera is unknown
    name: str | None
    make: str | None
    model: str | None
    site: str | None
    location: str | None
    latitude: float | None
    longitude: float | None
    uncertainty_m: int | None
    start: datetime
    end: datetime
    notes: str | None
    photos: int


def deployment_spans(session: Session) -> list[DeploymentSpan]:
    """Every stored deployment, then per camera the photos with a capture time outside all of
    them (few rows: one per deployment or camera)."""
    in_dep = (
        sa.select(sa.func.min(LOCAL_TIME), sa.func.max(LOCAL_TIME), sa.func.count(Image.id))
        .join(Camera, Camera.id == Image.camera_id)
        .where(
            Image.camera_id == Deployment.camera_id,
            Deployment.start_at <= LOCAL_TIME,
            sa.or_(Deployment.end_at.is_(None), Deployment.end_at >= LOCAL_TIME),
        )
        .correlate(Deployment)
        .lateral()
    )
    stored = session.execute(
        sa.select(
            Deployment,
            Camera.name,
            Camera.make,
            Camera.model,
            Camera.site,
            in_dep.c[0],
            in_dep.c[1],
            in_dep.c[2],
        )
        .join(Camera, Camera.id == Deployment.camera_id)
        .join(in_dep, sa.true())
        .order_by(Camera.name, Deployment.start_at)
    ).all()
    spans = [
        DeploymentSpan(
            stored_id=dep.id,
            camera_id=dep.camera_id,
            name=name,
            make=make,
            model=model,
            site=site,
            location=dep.location,
            latitude=dep.latitude,
            longitude=dep.longitude,
            uncertainty_m=dep.coordinate_uncertainty_m,
            start=dep.start_at,
            # An open deployment ends, for the package, at its last photo so far.
            end=dep.end_at or max(dep.start_at, last or dep.start_at),
            notes=dep.notes,
            photos=count,
        )
        for dep, name, make, model, site, _first, last, count in stored
    ]
    derived = session.execute(
        sa.select(
            Image.camera_id,
            Camera.name,
            Camera.make,
            Camera.model,
            Camera.site,
            Camera.latitude,
            Camera.longitude,
            sa.func.min(LOCAL_TIME),
            sa.func.max(LOCAL_TIME),
            sa.func.count(Image.id),
        )
        .outerjoin(Camera, Camera.id == Image.camera_id)
        .where(Image.captured_at.is_not(None), deployment_of_image().is_(None))
        .group_by(Image.camera_id, Camera.id)
        .order_by(Image.camera_id.nulls_last())
    ).all()
    for camera_id, name, make, model, site, lat, lon, start, end, count in derived:
        # Every group has a photo with a capture time, so its first and last times are set.
        assert start is not None and end is not None
        spans.append(
            DeploymentSpan(
                None, camera_id, name, make, model, site, None, lat, lon, None, start, end, None, count
            )
        )
    return spans


@dataclass(frozen=True)
class MediaRow:
    image_id: int
    camera_id: int | None
    path: str
    time: datetime
    time_source: str
    event_id: int | None
    favorite: bool  # the photo of some deer's best (largest) box
    deployment_id: int | None  # the stored deployment holding it; None: the camera's derived one


def _favorite_images() -> sa.Select[*tuple[Any, ...]]:
    """The photo of each deer's largest box: the one the dashboard shows on its card."""
    rank = (
        sa.func.row_number()
        .over(
            partition_by=Detection.deer_id,
            order_by=((Detection.bbox_w * Detection.bbox_h).desc(), Detection.id),
        )
        .label("rank")
    )
    ranked = sa.select(Detection.image_id, rank).where(Detection.deer_id.is_not(None)).subquery()
    return sa.select(ranked.c.image_id).where(ranked.c.rank == 1)


def media(session: Session) -> Iterator[MediaRow]:
    """Every photo with a capture time, by camera and time."""
    stmt = (
        sa.select(
            Image.id,
            Image.camera_id,
            Image.path,
            LOCAL_TIME,
            Image.captured_at_source,
            Image.event_id,
            Image.id.in_(_favorite_images()),
            deployment_of_image(),
        )
        .outerjoin(Camera, Camera.id == Image.camera_id)
        .where(Image.captured_at.is_not(None))
        .order_by(Image.camera_id, Image.captured_at, Image.id)
    )
    for row in _stream(session, stmt):
        yield MediaRow(*row)


def photos_without_time(session: Session) -> int:
    return session.execute(sa.select(sa.func.count(Image.id)).where(Image.captured_at.is_(None))).scalar_one()


@dataclass(frozen=True)
class BoxRow:
    """One detection box with its photo, camera, event and deer."""

    detection_id: int
    image_id: int
    path: str
    captured_at: datetime | None  # as the camera wrote it
    time: datetime | None  # clock offset applied
    time_source: str
    camera_id: int | None
    camera: str | None
    site: str | None
    event_id: int | None
    event_start: datetime | None  # offset applied
    event_end: datetime | None
    track_id: int | None
    bbox: tuple[float, float, float, float]
    detector_conf: float
    category: str
    class_label: str | None
    class_conf: float | None
    sex: str | None  # NULL: not a deer box
    status: str
    deer_id: uuid.UUID | None
    deer_name: str | None
    similarity: float | None
    model_id: str | None
    assignment: str | None
    reidentified_at: datetime | None
    confirmed_at: datetime | None
    deployment_id: int | None  # the stored deployment holding its photo


def _box_columns() -> list[Any]:
    return [
        Detection.id,
        Detection.image_id,
        Image.path,
        Image.captured_at,
        LOCAL_TIME,
        Image.captured_at_source,
        Image.camera_id,
        Camera.name,
        Camera.site,
        Image.event_id,
        Event.start_at + CLOCK_OFFSET,
        Event.end_at + CLOCK_OFFSET,
        Detection.track_id,
        Detection.bbox_x,
        Detection.bbox_y,
        Detection.bbox_w,
        Detection.bbox_h,
        Detection.detector_conf,
        Detection.category,
        Detection.class_label,
        Detection.class_conf,
        Detection.sex,
        Detection.status,
        Detection.deer_id,
        Deer.name,
        Detection.similarity,
        Detection.model_id,
        Detection.assignment,
        Detection.reidentified_at,
        Detection.confirmed_at,
        deployment_of_image(),
    ]


def _box(row: sa.Row[*tuple[Any, ...]]) -> BoxRow:
    (det_id, image_id, path, captured, local, source, cam_id, cam, site, event_id, ev_start, ev_end) = row[
        :12
    ]
    track_id, x, y, w, h, conf, category, label, class_conf, sex, status = row[12:23]
    deer_id, deer_name, similarity, model_id, assignment, reidentified, confirmed, deployment = row[23:]
    return BoxRow(
        detection_id=det_id,
        image_id=image_id,
        path=path,
        captured_at=captured,
        time=local,
        time_source=source,
        camera_id=cam_id,
        camera=cam,
        site=site,
        event_id=event_id,
        event_start=ev_start,
        event_end=ev_end,
        track_id=track_id,
        bbox=(x, y, w, h),
        detector_conf=conf,
        category=category,
        class_label=label,
        class_conf=class_conf,
        sex=None if sex is None else str(sex),
        status=str(status),
        deer_id=deer_id,
        deer_name=deer_name,
        similarity=similarity,
        model_id=model_id,
        assignment=None if assignment is None else str(assignment),
        reidentified_at=reidentified,
        confirmed_at=confirmed,
        deployment_id=deployment,
    )


def _boxes_query() -> sa.Select[*tuple[Any, ...]]:
    return (
        sa.select(*_box_columns())
        .join(Image, Image.id == Detection.image_id)
        .outerjoin(Camera, Camera.id == Image.camera_id)
        .outerjoin(Event, Event.id == Image.event_id)
        .outerjoin(Deer, Deer.id == Detection.deer_id)
    )


def boxes_by_event(session: Session) -> Iterator[BoxRow]:
    """Every box of a photo with a capture time, grouped by event (then time, photo, box), so
    a reader can close one event before the next begins."""
    stmt = (
        _boxes_query()
        .where(Image.captured_at.is_not(None))
        .order_by(Image.event_id.nulls_last(), Image.captured_at, Image.id, Detection.source_index)
    )
    for row in _stream(session, stmt):
        yield _box(row)


def sightings(session: Session) -> Iterator[BoxRow]:
    """Every deer box (a box with a sex partition), whatever its status, by time."""
    stmt = (
        _boxes_query()
        .where(Detection.sex.is_not(None))
        .order_by(Image.captured_at.nulls_last(), Image.id, Detection.source_index)
    )
    for row in _stream(session, stmt):
        yield _box(row)


@dataclass(frozen=True)
class IndividualRow:
    deer_id: uuid.UUID
    name: str
    sex: str
    first_seen: datetime | None
    last_seen: datetime | None
    sightings: int
    model_id: str | None
    notes: str | None
    best_image_id: int | None


def individuals(session: Session) -> Iterator[IndividualRow]:
    best = (
        sa.select(Detection.image_id)
        .where(Detection.deer_id == Deer.id)
        .order_by((Detection.bbox_w * Detection.bbox_h).desc(), Detection.id)
        .limit(1)
        .scalar_subquery()
    )
    stmt = sa.select(
        Deer.id,
        Deer.name,
        Deer.sex,
        Deer.first_seen,
        Deer.last_seen,
        Deer.sighting_count,
        Deer.model_id,
        Deer.notes,
        best,
    ).order_by(Deer.first_seen.nulls_last(), Deer.id)
    for row in _stream(session, stmt):
        deer_id, name, sex, first, last, count, model_id, notes, best_image = row
        yield IndividualRow(deer_id, name, str(sex), first, last, count, model_id, notes, best_image)
