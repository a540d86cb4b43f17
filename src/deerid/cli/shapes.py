"""The API's response shapes (deerid.api.schemas) as the CLI prints them with --json: a script
reads one shape per entity whichever door it used. Imported only by the commands that print them,
since the schemas pull in FastAPI."""

from __future__ import annotations

from deerid.api.schemas import DeerOut, SightingOut


class DeerRow(DeerOut):
    # `sightings` (= sighting_count) predates the API shape; scripts read it.
    sightings: int


class DeerShown(DeerOut):
    sightings: list[SightingOut]
