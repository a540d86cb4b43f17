"""/api/export: the CSV of sightings and the Camtrap DP package (a zip), streamed.

Each response reads the database through its own session and server-side cursors while it is
sent: the request's session is closed before the body starts, and a million sightings never
sit in memory at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from deerid.api.deps import ContextDep, Reader
from deerid.core.config import Settings
from deerid.export.camtrap import package_zip
from deerid.export.common import ExportOptions, calibrated_probability, parse_timezone
from deerid.export.csv import sightings_csv

router = APIRouter(prefix="/api/export", tags=["export"])

TimezoneQuery = Annotated[
    str | None,
    Query(max_length=64, description="The cameras' IANA timezone (America/Chicago); unset: UTC, flagged."),
]


def _options(settings: Settings, timezone: str | None) -> ExportOptions:
    return ExportOptions(timezone=parse_timezone(timezone), probability=calibrated_probability(settings))


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


@router.get("/csv", dependencies=[Reader], response_class=StreamingResponse)
def export_csv(context: ContextDep, timezone: TimezoneQuery = None) -> StreamingResponse:
    """Every sighting (deer box) as one CSV row; the columns are in docs/export.md."""
    options = _options(context.settings, timezone)

    def body() -> Iterator[bytes]:
        with context.transaction() as session:
            for chunk in sightings_csv(session, options):
                yield chunk.encode("utf-8")

    return StreamingResponse(
        body(), media_type="text/csv; charset=utf-8", headers=_attachment(f"deerid-sightings-{_stamp()}.csv")
    )


@router.get("/camtrap-dp", dependencies=[Reader], response_class=StreamingResponse)
def export_camtrap_dp(context: ContextDep, timezone: TimezoneQuery = None) -> StreamingResponse:
    """A Camtrap DP 1.0 package as a zip: datapackage.json, deployments, media, observations, individuals."""
    options = _options(context.settings, timezone)

    def body() -> Iterator[bytes]:
        with context.transaction() as session:
            yield from package_zip(session, options)

    return StreamingResponse(
        body(), media_type="application/zip", headers=_attachment(f"deerid-camtrap-dp-{_stamp()}.zip")
    )
