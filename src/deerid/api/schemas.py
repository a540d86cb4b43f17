"""Request and response bodies of the JSON API."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from deerid.domain.classes import Sex


class DeerOut(BaseModel):
    id: uuid.UUID
    name: str
    sex: Sex
    first_seen: datetime | None
    last_seen: datetime | None
    sighting_count: int
    confidence: float | None
    notes: str | None
    cameras: list[str] = []
    crop_url: str | None = None
    model_id: str | None = None


class DeerPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DeerOut]


class DeerPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    sex: Sex | None = None
    notes: str | None = Field(None, max_length=10_000)


class SightingOut(BaseModel):
    detection_id: int
    image_id: int
    captured_at: datetime | None  # corrected by the camera's clock offset
    camera_id: int | None
    camera: str | None
    bbox: list[float]
    class_label: str | None
    similarity: float | None
    assignment: str | None
    confirmed: bool
    crop_url: str
    image_url: str


class DayCount(BaseModel):
    day: date
    sightings: int


class TimelineOut(BaseModel):
    deer_id: uuid.UUID
    sightings: list[SightingOut]
    by_day: list[DayCount]
    by_hour: list[int]  # 24 counts, hour of day in camera local time


class PlaceOut(BaseModel):
    camera_id: int | None
    camera: str | None
    latitude: float | None
    longitude: float | None
    sightings: int
    first_seen: datetime | None
    last_seen: datetime | None


class MergeIn(BaseModel):
    deer_ids: list[uuid.UUID] = Field(min_length=1)


class MergeOut(BaseModel):
    merge_id: int
    deer: DeerOut


class MoveIn(BaseModel):
    detection_ids: list[int] = Field(min_length=1)
    to_deer: uuid.UUID | None = None  # None: a new deer


class MoveOut(BaseModel):
    deer: DeerOut


class ReviewItemOut(BaseModel):
    detection_id: int
    kind: str  # "match" (just above the threshold) or "near_miss" (new deer just below it)
    similarity: float
    crop_url: str
    current_deer: DeerOut
    candidate_deer: DeerOut
    candidate_crops: list[str]


class ReviewDecisionIn(BaseModel):
    detection_id: int
    candidate_deer: uuid.UUID
    decision: str = Field(pattern="^(confirm|reject)$")
    move_to: uuid.UUID | None = None  # with reject: this deer instead of a new one


class CameraOut(BaseModel):
    id: int
    name: str
    make: str | None
    model: str | None
    latitude: float | None
    longitude: float | None
    clock_offset_s: int
    photos: int = 0


class CameraPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    clock_offset_s: int | None = Field(None, ge=-10 * 365 * 86400, le=10 * 365 * 86400)
