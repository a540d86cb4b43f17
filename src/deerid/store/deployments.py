"""Deployments: a camera at a place between two dates, with coordinates (migration 0011).

A photo belongs to the deployment of its camera whose dates hold the photo's time: capture
time plus the camera's clock offset, so deployment dates are real dates even when a camera's
clock is off (offsets stay per camera). One camera's deployments never overlap: each photo has
at most one. Coordinates out of range are refused here with a clear message, and by the
database (CHECK) whatever writes them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from deerid.db.tables import Camera, Deployment, Image
from deerid.errors import Conflict, Invalid, NotFound
from deerid.store.views import LOCAL_TIME


class DeploymentError(Invalid):
    """A deployment that cannot be stored as given: the message says what to change."""


class DeploymentOverlap(Conflict, DeploymentError):
    """The camera has another deployment at that time."""


def check_coordinates(latitude: Any, longitude: Any) -> tuple[float, float]:
    """Decimal degrees, WGS84: latitude -90..90, longitude -180..180."""
    out = []
    for name, value, limit in (("latitude", latitude, 90), ("longitude", longitude, 180)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DeploymentError(f"{name} {value!r} is not a number (decimal degrees)") from None
        if not math.isfinite(number) or not -limit <= number <= limit:
            raise DeploymentError(
                f"{name} {value!r} is out of range: it must be between -{limit} and {limit}"
            )
        out.append(number)
    return out[0], out[1]


def parse_time(value: str, *, end: bool = False) -> datetime:
    """`2024-10-01` (a date: its start, or for an end its last second) or `2024-10-01T06:30[:00]`."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(23, 59, 59) if end else time(0, 0))
        parsed = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        raise DeploymentError(f"{value!r} is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM)") from None
    if parsed.tzinfo is not None:
        raise DeploymentError(f"{value!r} has a timezone: give the cameras' local time, as photos carry")
    return parsed


@dataclass(frozen=True)
class DeploymentSpec:
    camera_id: int
    latitude: float
    longitude: float
    start_at: datetime
    end_at: datetime | None = None
    location: str | None = None
    coordinate_uncertainty_m: int | None = None
    notes: str | None = None

    def checked(self) -> DeploymentSpec:
        latitude, longitude = check_coordinates(self.latitude, self.longitude)
        if self.end_at is not None and self.end_at < self.start_at:
            raise DeploymentError(f"the end {self.end_at} is before the start {self.start_at}")
        if self.coordinate_uncertainty_m is not None and self.coordinate_uncertainty_m < 1:
            raise DeploymentError("coordinate uncertainty is whole metres, at least 1")
        return DeploymentSpec(
            self.camera_id,
            latitude,
            longitude,
            self.start_at,
            self.end_at,
            (self.location or "").strip() or None,
            self.coordinate_uncertainty_m,
            self.notes,
        )


def _lock_camera(session: Session, camera_id: int) -> Camera:
    camera = session.execute(sa.select(Camera).where(Camera.id == camera_id).with_for_update()).scalar()
    if camera is None:
        raise NotFound(f"no camera {camera_id}")
    return camera


def _overlapping(session: Session, spec: DeploymentSpec, skip: int | None) -> Deployment | None:
    """A stored deployment of the camera whose dates meet the spec's (open ends reach forever)."""
    query = sa.select(Deployment).where(
        Deployment.camera_id == spec.camera_id,
        sa.or_(Deployment.end_at.is_(None), Deployment.end_at >= spec.start_at),
    )
    if spec.end_at is not None:
        query = query.where(Deployment.start_at <= spec.end_at)
    if skip is not None:
        query = query.where(Deployment.id != skip)
    return session.execute(query.order_by(Deployment.start_at).limit(1)).scalar()


def _describe(dep: Deployment) -> str:
    end = dep.end_at.isoformat(sep=" ") if dep.end_at else "open end"
    return f"deployment {dep.id} ({dep.start_at.isoformat(sep=' ')} to {end})"


def add_deployment(session: Session, spec: DeploymentSpec) -> Deployment:
    spec = spec.checked()
    camera = _lock_camera(session, spec.camera_id)
    clash = _overlapping(session, spec, None)
    if clash is not None:
        raise DeploymentOverlap(f"camera {camera.name!r} already has {_describe(clash)} at that time")
    dep = Deployment(
        camera_id=spec.camera_id,
        location=spec.location,
        latitude=spec.latitude,
        longitude=spec.longitude,
        coordinate_uncertainty_m=spec.coordinate_uncertainty_m,
        start_at=spec.start_at,
        end_at=spec.end_at,
        notes=spec.notes,
    )
    session.add(dep)
    session.flush()
    return dep


def update_deployment(session: Session, deployment_id: int, changes: Mapping[str, Any]) -> Deployment:
    dep = session.get(Deployment, deployment_id)
    if dep is None:
        raise NotFound(f"no deployment {deployment_id}")
    current = {
        "camera_id": dep.camera_id,
        "latitude": dep.latitude,
        "longitude": dep.longitude,
        "start_at": dep.start_at,
        "end_at": dep.end_at,
        "location": dep.location,
        "coordinate_uncertainty_m": dep.coordinate_uncertainty_m,
        "notes": dep.notes,
    }
    unknown = set(changes) - set(current)
    if unknown:
        raise DeploymentError(f"unknown fields: {', '.join(sorted(unknown))}")
    spec = DeploymentSpec(**{**current, **changes}).checked()
    camera = _lock_camera(session, spec.camera_id)
    if spec.camera_id != dep.camera_id:
        _lock_camera(session, dep.camera_id)
    clash = _overlapping(session, spec, dep.id)
    if clash is not None:
        raise DeploymentOverlap(f"camera {camera.name!r} already has {_describe(clash)} at that time")
    for key, value in spec.__dict__.items():
        setattr(dep, key, value)
    session.flush()
    return dep


def delete_deployment(session: Session, deployment_id: int) -> None:
    dep = session.get(Deployment, deployment_id)
    if dep is None:
        raise NotFound(f"no deployment {deployment_id}")
    session.delete(dep)
    session.flush()


def deployment_of_image() -> sa.ScalarSelect[int]:
    """Correlated on Image and Camera: the id of the deployment holding the photo, or NULL."""
    return (
        sa.select(Deployment.id)
        .where(
            Deployment.camera_id == Image.camera_id,
            Deployment.start_at <= LOCAL_TIME,
            sa.or_(Deployment.end_at.is_(None), Deployment.end_at >= LOCAL_TIME),
        )
        .order_by(Deployment.start_at.desc())
        .limit(1)
        .correlate(Image, Camera)
        .scalar_subquery()
    )


@dataclass(frozen=True)
class DeploymentView:
    deployment: Deployment
    camera: str
    photos: int


def list_deployments(session: Session, camera_id: int | None = None) -> list[DeploymentView]:
    photos = (
        sa.select(sa.func.count(Image.id))
        .join(Camera, Camera.id == Image.camera_id)
        .where(
            Image.camera_id == Deployment.camera_id,
            Deployment.start_at <= LOCAL_TIME,
            sa.or_(Deployment.end_at.is_(None), Deployment.end_at >= LOCAL_TIME),
        )
        .correlate(Deployment)
        .scalar_subquery()
    )
    query = sa.select(Deployment, Camera.name, photos).join(Camera, Camera.id == Deployment.camera_id)
    if camera_id is not None:
        query = query.where(Deployment.camera_id == camera_id)
    rows = session.execute(query.order_by(Camera.name, Deployment.start_at)).all()
    return [DeploymentView(dep, name, count) for dep, name, count in rows]


# --- import from CSV ---

COLUMNS = ("camera", "start", "end", "latitude", "longitude", "location", "coordinate_uncertainty", "notes")
REQUIRED = ("camera", "start", "latitude", "longitude")


@dataclass(frozen=True)
class ImportResult:
    added: list[int]


def _row_spec(row: Mapping[str, str | None], cameras: Mapping[str, int]) -> DeploymentSpec:
    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    missing = [name for name in REQUIRED if not cell(name)]
    if missing:
        raise DeploymentError(f"missing {', '.join(missing)}")
    camera_id = cameras.get(cell("camera"))
    if camera_id is None:
        raise DeploymentError(
            f"no camera named {cell('camera')!r} (cameras: {', '.join(sorted(cameras)) or 'none'})"
        )
    uncertainty = None
    if cell("coordinate_uncertainty"):
        try:
            uncertainty = int(cell("coordinate_uncertainty"))
        except ValueError:
            raise DeploymentError("coordinate_uncertainty is whole metres") from None
    latitude, longitude = check_coordinates(cell("latitude"), cell("longitude"))
    return DeploymentSpec(
        camera_id=camera_id,
        latitude=latitude,
        longitude=longitude,
        start_at=parse_time(cell("start")),
        end_at=parse_time(cell("end"), end=True) if cell("end") else None,
        location=cell("location") or None,
        coordinate_uncertainty_m=uncertainty,
        notes=cell("notes") or None,
    ).checked()


def read_csv(path: Path) -> list[dict[str, str | None]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            absent = [name for name in REQUIRED if name not in header]
            if absent:
                raise DeploymentError(
                    f"{path}: the header lacks {', '.join(absent)} (columns: {', '.join(COLUMNS)})"
                )
            return [{(k or "").strip(): v for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DeploymentError(f"cannot read {path}: {exc}") from exc


def import_rows(session: Session, rows: Iterable[Mapping[str, str | None]]) -> ImportResult:
    """Add every row, or none: all rows are checked first and every problem is reported with its
    line number (the header is line 1)."""
    cameras = dict(session.execute(sa.select(Camera.name, Camera.id)).all())
    specs: list[tuple[int, DeploymentSpec]] = []
    problems: list[str] = []
    for line, row in enumerate(rows, start=2):
        try:
            specs.append((line, _row_spec(row, cameras)))
        except DeploymentError as exc:
            problems.append(f"line {line}: {exc}")
    if problems:
        raise DeploymentError("nothing imported: " + "; ".join(problems))
    added = []
    for line, spec in specs:
        try:
            with session.begin_nested():
                added.append(add_deployment(session, spec).id)
        except DeploymentError as exc:
            problems.append(f"line {line}: {exc}")
    if problems:
        raise DeploymentError("nothing imported: " + "; ".join(problems))
    return ImportResult(added)
