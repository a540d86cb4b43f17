"""The web app: JSON API under /api (OpenAPI at /docs) and the dashboard at /."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from deerid import __version__
from deerid.api import dashboard
from deerid.api.deps import api_token
from deerid.api.errors import install_error_handlers
from deerid.api.routes import (
    activity,
    cameras,
    deer,
    detections,
    encounters,
    links,
    media,
    review,
    review_screen,
    uploads,
)
from deerid.api.routes import deployments as deployment_routes
from deerid.api.routes import export as export_routes
from deerid.app import Deerid
from deerid.core.config import Settings, get_settings
from deerid.pipeline.uploads import resume_interrupted
from deerid.store.review import ReviewCache


def _finite(value: Any) -> Any:
    """JSON cannot carry NaN or infinity: a 422 that echoes one (`{"latitude": NaN}`) says it as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _finite(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def create_app(settings: Settings | None = None, context: Deerid | None = None) -> FastAPI:
    """The API over `context` (the caller's, e.g. the CLI's, which the caller closes), or over a
    context built here from `settings` and closed when the app shuts down."""
    owned = context is None
    if context is None:
        context = Deerid(settings or get_settings())
    settings = context.settings
    # The process's runtime context: every request reaches it through `deps.get_context`.
    context.engine  # noqa: B018 - start the embedded database and migrate before the first request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Uploads a stopped server left half-done are finished in the background (F22).
        app.state.upload_resume = resume_interrupted(context)
        try:
            yield
        finally:
            if owned:
                context.close()

    app = FastAPI(
        lifespan=lifespan,
        title="deerid",
        version=__version__,
        summary="Individual deer in trail-camera photos: profiles, sightings, review.",
    )
    app.exception_handler(RequestValidationError)(validation_error)
    install_error_handlers(app)
    app.state.deerid = context
    app.state.token = api_token(settings)
    # Held for the life of the app: vectors never change, so each is read from the database once.
    app.state.review_cache = ReviewCache()
    for module in (deer, detections, media, review, review_screen, cameras, uploads, encounters):
        app.include_router(module.router)
    app.include_router(export_routes.router)
    app.include_router(deployment_routes.router)
    app.include_router(activity.router)
    app.include_router(links.router)
    app.include_router(dashboard.router)

    @app.get("/api/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
