"""The dashboard: one HTML shell for every page (the browser routes), and its static files.

The shell gets the change token as a meta tag only when both the client and the
Host it asked for are this machine: a page on another origin cannot read it, and
a DNS name rebound to 127.0.0.1 is not 'localhost', so it gets no token either.
Everyone else types the token once; the page keeps it in localStorage.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from deerid.api.deps import is_local
from deerid.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).parent / "static"
TOKEN_SLOT = "<!--deerid-token-->"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
}


def _static_files() -> dict[str, Path]:
    """Files served under /static, by their path there: nothing outside this folder, ever."""
    return {
        p.relative_to(STATIC_DIR).as_posix(): p
        for p in STATIC_DIR.rglob("*")
        if p.is_file() and p.suffix in _TYPES
    }


def shell(request: Request) -> HTMLResponse:
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    if is_local(request):
        token = html.escape(request.app.state.token, quote=True)
        page = page.replace(TOKEN_SLOT, f'<meta name="deerid-token" content="{token}">')
    return HTMLResponse(page, headers=_HEADERS)


@router.get("/", response_class=HTMLResponse)
@router.get("/review", response_class=HTMLResponse)
@router.get("/season", response_class=HTMLResponse)
@router.get("/cameras", response_class=HTMLResponse)
@router.get("/upload", response_class=HTMLResponse)
@router.get("/deer/{deer_id}", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    return shell(request)


@router.get("/static/{name:path}")
def static(name: str) -> FileResponse:
    path = _static_files().get(name)
    if path is None:
        raise NotFound(f"no file {name!r} in the dashboard")
    return FileResponse(
        path,
        media_type=_TYPES[path.suffix],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
