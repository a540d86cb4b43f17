"""Request and response bodies of the JSON API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from deerid.api.params import INT_MAX, MAX_IDS, BodyId64, Latitude, Longitude, Text
from deerid.db.tables import Assignment, ReviewChoice
from deerid.domain.activity import Daylight
from deerid.domain.classes import Sex
from deerid.ingest.photos import CapturedAtSource
from deerid.ingest.strip import StripStatus


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
    starred: bool = False


class DeerPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DeerOut]


class DeerPatch(BaseModel):
    name: Text | None = Field(None, min_length=1, max_length=200)
    sex: Sex | None = None
    notes: Text | None = Field(None, max_length=10_000)
    starred: bool | None = None


class StripFields(BaseModel):
    """What the photo's info strip says (docs/strip.md); all null when it was not read."""

    captured_at_source: CapturedAtSource | None = None
    strip_status: StripStatus | None = None
    strip_time: datetime | None = None  # as printed (no clock offset)
    strip_camera: str | None = None
    strip_temperature_f: int | None = None
    strip_offset_s: float | None = None  # EXIF minus strip, seconds
    time_disagreement: bool = False  # EXIF and strip differ by more than DEERID_STRIP_TOLERANCE


class SightingOut(StripFields):
    detection_id: int
    image_id: int
    captured_at: datetime | None  # corrected by the camera's clock offset
    camera_id: int | None
    camera: str | None
    bbox: list[float]
    class_label: str | None
    similarity: float | None
    assignment: Assignment | None
    confirmed: bool
    crop_url: str
    image_url: str
    track_id: int | None = None
    event_id: int | None = None


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
    detection_ids: list[BodyId64] = Field(min_length=1, max_length=MAX_IDS)
    to_deer: uuid.UUID | None = None  # None: a new deer


class MoveOut(BaseModel):
    deer: DeerOut


class ReviewItemOut(BaseModel):
    detection_id: int
    kind: Literal["match", "near_miss"]  # match: just above the threshold; near_miss: a new deer just below
    similarity: float
    crop_url: str
    current_deer: DeerOut
    candidate_deer: DeerOut
    candidate_crops: list[str]


class ReviewDecisionIn(BaseModel):
    detection_id: BodyId64
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
    site: str
    photos: int = 0


class CameraPatch(BaseModel):
    name: Text | None = Field(None, min_length=1, max_length=200)
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    clock_offset_s: int | None = Field(None, ge=-10 * 365 * 86400, le=10 * 365 * 86400)
    # Moving a camera moves its sightings' matching scope; deer already formed stay as they are.
    site: Text | None = Field(None, min_length=1, max_length=100)


# --- encounters ---


class EventOut(BaseModel):
    id: int
    camera_id: int | None
    camera: str | None
    start_at: datetime | None  # as the camera wrote it (no clock offset)
    end_at: datetime | None
    reason: str | None  # why the photo is an event of its own; null for a gap-grouped event
    photos: int
    tracks: int
    deer_boxes: int


class EventPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[EventOut]


class EventPhotoOut(StripFields):
    image_id: int
    captured_at: datetime | None
    captured_at_source: CapturedAtSource
    image_url: str


class TrackDetectionOut(BaseModel):
    detection_id: int
    image_id: int
    captured_at: datetime | None
    bbox: list[float]
    class_label: str | None
    deer_id: uuid.UUID | None
    assignment: Assignment | None
    crop_url: str
    image_url: str


class TrackOut(BaseModel):
    id: int
    event_id: int
    detections: list[TrackDetectionOut]
    deer: list[DeerOut]  # one, unless a person split the track


class EventDetailOut(BaseModel):
    event: EventOut
    photos: list[EventPhotoOut]  # in capture order
    tracks: list[TrackOut]


# --- review screen ---


class CropOut(BaseModel):
    detection_id: int
    crop_url: str  # the query's crops at full resolution, candidates' at card size
    image_url: str
    bbox: list[float]  # normalised x, y, w, h in the photo: outlined when the photo is opened
    captured_at: datetime | None
    camera: str | None
    track_id: int | None = None
    event_id: int | None = None


class CandidateOut(BaseModel):
    rank: int  # 1-based: the key that picks it
    deer: DeerOut
    probability: float  # calibrated probability of one animal; the raw similarity when uncalibrated
    similarity: float  # best cosine between a sighting of the query and one of this deer
    crops: list[CropOut]
    via_detection_id: int


class ReviewQueryOut(BaseModel):
    deer: DeerOut
    crops: list[CropOut]


class ReviewScreenOut(BaseModel):
    query: ReviewQueryOut
    candidates: list[CandidateOut]
    remaining: int  # queries still waiting, this one included
    calibrated: bool  # False: `probability` is the raw similarity


class ReviewAnswerIn(BaseModel):
    query: uuid.UUID
    shown: list[uuid.UUID] = Field(min_length=1, max_length=9)
    choice: str = Field(pattern="^(match|none|skip)$")
    candidate: uuid.UUID | None = None


class ReviewAnswerOut(BaseModel):
    decision_id: int
    deer: DeerOut  # where the query's sightings are now
    merge_id: int | None


class ReviewUndoOut(BaseModel):
    undone: int
    deer: list[DeerOut]


class ReviewHistoryItem(BaseModel):
    decision_id: int
    query_deer_id: uuid.UUID
    choice: ReviewChoice
    candidate_deer_id: uuid.UUID | None
    shown: list[uuid.UUID]
    created_at: datetime


class QcSightingOut(CropOut):
    fit: float | None  # best similarity to the deer's other tracks; low = look at it first


class QcOut(BaseModel):
    deer: DeerOut
    sightings: list[QcSightingOut]


# --- activity and the season ---


class WeekCount(BaseModel):
    week_start: date  # first day of the week, counted from the season's start
    visits: int


class ActivityOut(BaseModel):
    """Visits (one animal in one encounter), not photos, on the camera's local clock."""

    visits: int
    undated: int  # visits with no trustworthy time: in no time bin
    by_hour: list[int]  # 24 counts
    by_daylight: dict[Daylight, int]  # unknown: a camera with no coordinates
    by_moon: dict[str, int]  # eight named phases
    by_week: list[WeekCount]
    timezone: str
    season_start: str  # MM-DD


class SeasonDeerOut(BaseModel):
    deer: DeerOut
    visits: int
    first_seen: datetime
    last_seen: datetime
    new_this_week: bool
    seen_before: bool  # also seen in an earlier season


class SeasonCameraOut(BaseModel):
    camera: CameraOut
    visits: int


class SeasonOut(BaseModel):
    start: date
    end: date  # exclusive
    now: datetime | None  # the newest sighting: "this week" is the 7 days up to it
    bucks: int
    does: int
    other: int  # fawns and unknown sex
    new_this_week: int
    deer: list[SeasonDeerOut]
    cameras: list[SeasonCameraOut]


# --- links between years ---


class DeerLinkIn(BaseModel):
    deer_id: uuid.UUID  # the other profile: the same animal in another year
    note: Text | None = Field(None, max_length=1_000)


class YearOut(BaseModel):
    season: str  # e.g. "2023–24"; "undated" when the profile has no dated sighting
    deer: DeerOut
    linked_directly: bool  # to the deer asked about, not only through another year


# --- deployments ---

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
