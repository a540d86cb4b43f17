"""Validated types for path, query and body values: whatever the database cannot hold is a 422,
never a 500 from the driver (F18).

- ids: BIGINT columns hold 1 … 2^63-1, INTEGER ones (cameras, merges) 1 … 2^31-1;
- offsets: a BIGINT too;
- dates: `to` is used as the day after it, so 9999-12-31 would overflow;
- text: PostgreSQL text cannot hold NUL (U+0000);
- numbers: NaN and ±inf are not coordinates.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field

BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
LAST_DAY = date(9999, 12, 30)  # a day whose next day is still a date


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


# --- path ---
Id64 = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="id (1 … 2^63-1)")]
Id32 = Annotated[int, Path(ge=1, le=INT_MAX, description="id (1 … 2^31-1)")]

# --- query ---
CameraIdQuery = Annotated[int | None, Query(ge=1, le=INT_MAX, description="only this camera's deer")]
Offset = Annotated[int, Query(ge=0, le=BIGINT_MAX)]
FromDate = Annotated[date | None, Query(alias="from", le=LAST_DAY)]
ToDate = Annotated[date | None, Query(alias="to", le=LAST_DAY)]
SearchText = Annotated[
    str | None, Query(max_length=200, description="part of the name"), AfterValidator(_no_nul)
]

# --- body fields ---
BodyId64 = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
# One request moves at most this many boxes: far above any deer's sightings, far below the
# driver's 65,535 bind parameters.
MAX_IDS = 10_000
Text = Annotated[str, AfterValidator(_no_nul)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
