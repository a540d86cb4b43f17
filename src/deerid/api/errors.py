"""The API's one translation of `deerid.errors`: an error's class (or the instance) says its status.

Routes raise the hierarchy and never map it themselves; the body is the one FastAPI's
HTTPException gives (`{"detail": message}`), so clients see no difference between the two.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from deerid.errors import DeeridError
from deerid.store.review import ReviewConflict


async def deerid_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DeeridError)
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


async def review_conflict(_request: Request, exc: Exception) -> JSONResponse:
    """The review screen redraws from `current` instead of reloading everything."""
    assert isinstance(exc, ReviewConflict)
    return JSONResponse({"detail": str(exc), "current": exc.current}, status_code=exc.status)


def install_error_handlers(app: FastAPI) -> None:
    # Starlette picks the handler of the nearest class in the exception's MRO, so the
    # DeeridError one covers every subclass that carries no extra body.
    app.exception_handler(DeeridError)(deerid_error)
    app.exception_handler(ReviewConflict)(review_conflict)
