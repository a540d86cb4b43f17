"""/api/deployments: a camera at a place between two dates, with coordinates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from deerid.api.deps import Reader, SessionDep, Writer
from deerid.api.params import INT_MAX, Id32
from deerid.api.schemas import DeploymentIn, DeploymentOut, DeploymentPatch
from deerid.db.tables import Deployment
from deerid.errors import NotFound
from deerid.store import deployments as store

router = APIRouter(prefix="/api/deployments", tags=["deployments"])


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
        raise NotFound(f"no deployment {deployment_id}")
    view = next(v for v in store.list_deployments(session, dep.camera_id) if v.deployment.id == dep.id)
    return _out(view)


def _naive(changes: dict[str, Any]) -> dict[str, Any]:
    for key in ("start_at", "end_at"):
        value = changes.get(key)
        if isinstance(value, datetime) and value.tzinfo is not None:
            raise store.DeploymentError(
                f"{key} has a timezone: give the cameras' local time, as photos carry it"
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
    dep = store.add_deployment(session, store.DeploymentSpec(**_naive(body.model_dump())))
    return _one(session, dep.id)


@router.patch("/{deployment_id}", response_model=DeploymentOut, dependencies=[Writer])
def patch_deployment(deployment_id: Id32, body: DeploymentPatch, session: SessionDep) -> DeploymentOut:
    changes = _naive(body.model_dump(exclude_unset=True))
    for key in ("camera_id", "latitude", "longitude", "start_at"):
        if key in changes and changes[key] is None:
            raise store.DeploymentError(f"{key} cannot be empty")
    store.update_deployment(session, deployment_id, changes)
    return _one(session, deployment_id)


@router.delete("/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Writer])
def delete_deployment(deployment_id: Id32, session: SessionDep) -> Response:
    store.delete_deployment(session, deployment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
