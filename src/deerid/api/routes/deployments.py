"""/api/deployments: a camera at a place between two dates, with coordinates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, Field

from deerid.api.deps import Reader, SessionDep, Writer
from deerid.api.params import INT_MAX, Id32, Latitude, Longitude, Text
from deerid.db.tables import Deployment
from deerid.store import deployments as store

router = APIRouter(prefix="/api/deployments", tags=["deployments"])

CameraId = Annotated[int, Field(ge=1, le=INT_MAX)]
# Before 1900 or after 9999 a timestamp means a typo, and Python cannot add offsets to it.
When = Annotated[datetime, Field(ge=datetime(1900, 1, 1), le=datetime(9999, 12, 30))]
Uncertainty = Annotated[int, Field(ge=1, le=INT_MAX)]
ShortText = Annotated[Text, Field(max_length=2000)]


class DeploymentIn(BaseModel):
    camera_id: CameraId
    latitude: Latitude
    longitude: Longitude
    start_at: When  # the cameras' local time, as photos carry it (no timezone)
    end_at: When | None = None  # null: still deployed
    location: ShortText | None = None
    coordinate_uncertainty_m: Uncertainty | None = None
    notes: ShortText | None = None


class DeploymentPatch(BaseModel):
    camera_id: CameraId | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    start_at: When | None = None
    end_at: When | None = None
    location: ShortText | None = None
    coordinate_uncertainty_m: Uncertainty | None = None
    notes: ShortText | None = None


class DeploymentOut(BaseModel):
    id: int
    camera_id: int
    camera: str
    latitude: float
    longitude: float
    start_at: datetime
    end_at: datetime | None
    location: str | None
    coordinate_uncertainty_m: int | None
    notes: str | None
    photos: int  # photos of the camera whose time (clock offset applied) falls in its dates


def _out(view: store.DeploymentView) -> DeploymentOut:
    d = view.deployment
    return DeploymentOut(
        id=d.id,
        camera_id=d.camera_id,
        camera=view.camera,
        latitude=d.latitude,
        longitude=d.longitude,
        start_at=d.start_at,
        end_at=d.end_at,
        location=d.location,
        coordinate_uncertainty_m=d.coordinate_uncertainty_m,
        notes=d.notes,
        photos=view.photos,
    )


def _one(session: SessionDep, deployment_id: int) -> DeploymentOut:
    dep = session.get(Deployment, deployment_id)
    if dep is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no deployment {deployment_id}")
    view = next(v for v in store.list_deployments(session, dep.camera_id) if v.deployment.id == dep.id)
    return _out(view)


def _naive(changes: dict[str, Any]) -> dict[str, Any]:
    for key in ("start_at", "end_at"):
        value = changes.get(key)
        if isinstance(value, datetime) and value.tzinfo is not None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"{key} has a timezone: give the cameras' local time, as photos carry it",
            )
    return changes


@router.get("", response_model=list[DeploymentOut], dependencies=[Reader])
def list_deployments(
    session: SessionDep, camera_id: Annotated[int | None, Query(ge=1, le=INT_MAX)] = None
) -> list[DeploymentOut]:
    return [_out(v) for v in store.list_deployments(session, camera_id)]


@router.get("/{deployment_id}", response_model=DeploymentOut, dependencies=[Reader])
def get_deployment(deployment_id: Id32, session: SessionDep) -> DeploymentOut:
    return _one(session, deployment_id)


@router.post("", response_model=DeploymentOut, status_code=status.HTTP_201_CREATED, dependencies=[Writer])
def create_deployment(body: DeploymentIn, session: SessionDep) -> DeploymentOut:
    try:
        dep = store.add_deployment(session, store.DeploymentSpec(**_naive(body.model_dump())))
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except store.DeploymentOverlap as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except store.DeploymentError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return _one(session, dep.id)


@router.patch("/{deployment_id}", response_model=DeploymentOut, dependencies=[Writer])
def patch_deployment(deployment_id: Id32, body: DeploymentPatch, session: SessionDep) -> DeploymentOut:
    changes = _naive(body.model_dump(exclude_unset=True))
    for key in ("camera_id", "latitude", "longitude", "start_at"):
        if key in changes and changes[key] is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{key} cannot be empty")
    try:
        store.update_deployment(session, deployment_id, changes)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except store.DeploymentOverlap as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except store.DeploymentError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return _one(session, deployment_id)


@router.delete("/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Writer])
def delete_deployment(deployment_id: Id32, session: SessionDep) -> Response:
    try:
        store.delete_deployment(session, deployment_id)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)
