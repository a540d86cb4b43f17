"""FastAPI dependencies: the runtime context, its settings, a session per request, the change token."""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from deerid.app import Deerid
from deerid.core.config import Settings

_LOCAL = {"127.0.0.1", "::1", "localhost", "testclient"}  # client addresses of this machine
# The Host header must name this machine too: a page on a DNS name re-pointed at
# 127.0.0.1 (DNS rebinding) comes from a local address but must not read freely.
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
# A reverse proxy on this machine connects from loopback: a request carrying any of these came through one.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip")


def get_context(request: Request) -> Deerid:
    """The process's runtime context, made by `create_app` and closed by its lifespan."""
    return request.app.state.deerid


ContextDep = Annotated[Deerid, Depends(get_context)]


def get_settings(context: ContextDep) -> Settings:
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(context: ContextDep) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    with context.transaction() as session:
        yield session


# scope="function": commit before the response is sent, so a read right after a change sees it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def api_token(settings: Settings) -> str:
    """DEERID_API_TOKEN, or the token generated at first start and kept in the data dir."""
    return ensure_api_token(settings)[0]


def ensure_api_token(settings: Settings) -> tuple[str, bool]:
    """(the token, whether it was generated just now): only a new token is worth printing."""
    if settings.api_token:
        return settings.api_token, False
    path = settings.paths.api_token
    try:
        return path.read_text().strip(), False
    except FileNotFoundError:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(24)
        # Created 0600 from the start, never readable by others even for an instant; O_EXCL: two
        # first starts at once keep one token.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip(), False
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        return token, True


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def require_token(request: Request) -> None:
    """Every change needs the token."""
    given = _bearer(request)
    if given is None or not hmac.compare_digest(given, request.app.state.token):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this change needs Authorization: Bearer <DEERID_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _host_name(request: Request) -> str:
    host = request.headers.get("host", "")
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_local(request: Request) -> bool:
    """A request from this machine, addressed to this machine, and not relayed by a proxy.

    A reverse proxy on this machine connects from loopback, and nginx's default
    `proxy_pass` even rewrites Host to the upstream's `127.0.0.1:PORT` and adds no
    header: such a deployment must run with `--behind-proxy` (DEERID_BEHIND_PROXY=1),
    where nothing counts as local. Without it, any proxy header still makes a
    request remote."""
    settings = get_context(request).settings
    if settings.behind_proxy:
        return False
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    client = request.client.host if request.client else ""
    return client in _LOCAL and _host_name(request).lower() in _LOCAL_HOSTS


def allow_read(request: Request) -> None:
    """Reads are open from this machine; from elsewhere they need the token too."""
    if not is_local(request):
        require_token(request)


Writer = Depends(require_token)
Reader = Depends(allow_read)
