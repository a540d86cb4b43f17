"""Database tables (SQLAlchemy 2). The schema itself is owned by the Alembic
migrations in `deerid/db/migrations`; these classes must agree with them
(`tests/test_db.py` checks that autogenerate finds no difference)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import text as sa_text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from deerid.domain.classes import Sex
from deerid.domain.sites import DEFAULT_SITE

EMBEDDING_DIM = 512


class Base(DeclarativeBase):
    pass


class DetectionStatus(StrEnum):
    PENDING = "pending"  # a deer box waiting for re-identification
    ASSIGNED = "assigned"  # belongs to a deer
    TOO_SMALL = "too_small"  # a deer box under MIN_CROP_SIZE: kept, never embedded
    NOT_DEER = "not_deer"  # persons, vehicles, other animals: stored, never re-identified
    FAILED = "failed"  # the crop or the embedding failed; `error` says why


class Assignment(StrEnum):
    MATCHED = "matched"  # joined an existing deer automatically
    NEW = "new"  # founded a new deer profile automatically
    MANUAL = "manual"  # placed by a person (merge, split, review)
    TRACK = "track"  # joined the deer its own track already had (same animal, same event)


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class Camera(Base):
    __tablename__ = "cameras"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    make: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    clock_offset_s: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    # The cameras whose animals can meet (a property, a study area): the scope of matching (0009).
    site: Mapped[str] = mapped_column(Text, server_default=DEFAULT_SITE, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)  # indexed: a path reused by another photo (0006)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id"), index=True)
    captured_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False), index=True)
    captured_at_source: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    file_size: Mapped[int] = mapped_column(BigInteger)
    # st_mtime when last seen with this content: size + mtime guard the path cheaply (migration 0006)
    file_mtime: Mapped[float | None] = mapped_column(Float)
    # The stored path no longer holds this photo (gone or replaced); cleared when it is found again.
    missing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Hash of the image data without metadata segments: an EXIF-edited copy has the same one.
    pixel_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    # The info strip burned into the photo (0010, docs/strip.md). strip_status is NULL when the
    # strip was not read (only a sample of photos with an EXIF time are); strip_offset_s is EXIF
    # minus strip, and strip_disagrees says it is beyond DEERID_STRIP_TOLERANCE.
    strip_status: Mapped[str | None] = mapped_column(Text)
    strip_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    strip_camera: Mapped[str | None] = mapped_column(Text)
    strip_temperature_f: Mapped[int | None] = mapped_column(Integer)
    strip_offset_s: Mapped[float | None] = mapped_column(Float)
    strip_disagrees: Mapped[bool | None] = mapped_column(Boolean)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    event_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="SET NULL"), index=True
    )

    camera: Mapped[Camera | None] = relationship()


class Event(Base):
    """Photos of one camera close in time (DEERID_ENCOUNTER_GAP): one visit. See docs/encounters.md."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id"))
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    # Why the photo is an event of its own ("no capture time", ...); NULL for a gap-grouped event.
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Track(Base):
    """One animal's boxes through one event."""

    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Deer(Base):
    __tablename__ = "deer"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(Text)
    sex: Mapped[Sex] = mapped_column(_enum(Sex, "deer_sex"))
    first_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    feature_vector: Mapped[list[float] | None] = mapped_column(Vector(EMBEDDING_DIM))
    model_id: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    sighting_count: Mapped[int] = mapped_column(Integer, default=0)
    # Exact sums behind feature_vector and confidence, in fixed point (units of 2^-40), so one
    # new sighting updates the profile without reading the others (store/deer.py, migration 0008).
    # NULL: not computed yet; the next profile update recomputes them from the sightings.
    embedding_sum: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    embedding_count: Mapped[int | None] = mapped_column(Integer)
    similarity_sum: Mapped[int | None] = mapped_column(BigInteger)
    similarity_count: Mapped[int | None] = mapped_column(Integer)
    notes: Mapped[str | None] = mapped_column(Text)
    # On the hunter's hit list (migration 0012).
    starred: Mapped[bool] = mapped_column(Boolean, server_default=sa_text("false"), default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index(
            "ix_deer_feature_vector_hnsw",
            "feature_vector",
            postgresql_using="hnsw",
            postgresql_ops={"feature_vector": "vector_cosine_ops"},
        ),
    )


class ReviewDecisionKind(StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"


class Merge(Base):
    """A recorded merge: `merged` snapshots the folded profiles so it can be undone."""

    __tablename__ = "merges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    merged: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReviewDecision(Base):
    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    detection_id: Mapped[int] = mapped_column(ForeignKey("detections.id", ondelete="CASCADE"), index=True)
    deer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    decision: Mapped[ReviewDecisionKind] = mapped_column(_enum(ReviewDecisionKind, "review_decision"))
    similarity: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Detection(Base):
    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    source_index: Mapped[int] = mapped_column(Integer)
    bbox_x: Mapped[float] = mapped_column(Float)
    bbox_y: Mapped[float] = mapped_column(Float)
    bbox_w: Mapped[float] = mapped_column(Float)
    bbox_h: Mapped[float] = mapped_column(Float)
    detector_conf: Mapped[float] = mapped_column(Float)
    category: Mapped[str] = mapped_column(Text)
    class_label: Mapped[str | None] = mapped_column(Text)
    class_conf: Mapped[float | None] = mapped_column(Float)
    sex: Mapped[Sex | None] = mapped_column(_enum(Sex, "deer_sex"))
    status: Mapped[DetectionStatus] = mapped_column(_enum(DetectionStatus, "detection_status"))
    error: Mapped[str | None] = mapped_column(Text)
    embedding: Mapped[list[float] | None] = mapped_column(Vector(EMBEDDING_DIM))
    model_id: Mapped[str | None] = mapped_column(Text)
    deer_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("deer.id", ondelete="SET NULL"), index=True
    )
    similarity: Mapped[float | None] = mapped_column(Float)
    matched_detection_id: Mapped[int | None] = mapped_column(ForeignKey("detections.id", ondelete="SET NULL"))
    assignment: Mapped[Assignment | None] = mapped_column(_enum(Assignment, "assignment"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reidentified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    track_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("tracks.id", ondelete="SET NULL"), index=True
    )
    # Earlier versions of this box, replaced by a corrected detections file (oldest first).
    box_history: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    # Its photo's camera's site, kept by triggers (migration 0009): the candidate query filters on it.
    site: Mapped[str] = mapped_column(Text, server_default=DEFAULT_SITE)

    image: Mapped[Image] = relationship()
    deer: Mapped[Deer | None] = relationship()

    __table_args__ = (
        UniqueConstraint("image_id", "source_index", name="uq_detections_image_source_index"),
        Index("ix_detections_status", "status"),
        Index(
            "ix_detections_match_scope",
            "site",
            "sex",
            "model_id",
            postgresql_where=sa_text("deer_id IS NOT NULL"),
        ),
        Index(
            "ix_detections_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )


class ReviewChoice(StrEnum):
    MATCH = "match"  # the query is the chosen candidate: they were merged
    NONE = "none"  # none of the shown candidates: a no-match for every pair shown
    SKIP = "skip"  # not comparable (only legs visible, ...): the query is not offered again


class ReviewScreen(Base):
    """One answered review screen. Pairs are kept through anchor detections (see migration 0005)."""

    __tablename__ = "review_screens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    query_deer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    query_detection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("detections.id", ondelete="CASCADE"), index=True
    )
    choice: Mapped[ReviewChoice] = mapped_column(_enum(ReviewChoice, "review_choice"))
    candidate_deer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    merge_id: Mapped[int | None] = mapped_column(ForeignKey("merges.id", ondelete="SET NULL"))
    # [{"deer_id", "detection_id" (anchor), "probability", "score"}, ...] in the order shown
    shown: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DatabaseIdentity(Base):
    """One row: this database's own id. Its tasks carry it and its queue is named from it, so two
    databases sharing one broker never run each other's tasks (migration 0007)."""

    __tablename__ = "database_identity"
    singleton: Mapped[bool] = mapped_column(
        Boolean, CheckConstraint("singleton"), primary_key=True, server_default=sa_text("true")
    )
    database_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), server_default=sa_text("gen_random_uuid()")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeerLink(Base):
    """Two profiles a person says are one animal in different years (a buck sheds its antlers
    every winter, so its look changes and the matcher keeps the years apart). Not a merge: each
    year keeps its own profile, and the deer page shows them side by side (migration 0012)."""

    __tablename__ = "deer_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored with deer_a < deer_b, so a pair is one row whichever side it was made from.
    deer_a: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("deer.id", ondelete="CASCADE"))
    deer_b: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("deer.id", ondelete="CASCADE"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("deer_a", "deer_b", name="uq_deer_links_pair"),
        CheckConstraint("deer_a < deer_b", name="ck_deer_links_ordered"),
        Index("ix_deer_links_b", "deer_b"),
    )


class Deployment(Base):
    """A camera at a place between two dates (migration 0011). A photo belongs to the deployment of
    its camera whose dates hold its time (capture time plus the camera's clock offset); `end_at`
    NULL: still out there."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    location: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    coordinate_uncertainty_m: Mapped[int | None] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("latitude BETWEEN -90 AND 90", name="ck_deployments_latitude"),
        CheckConstraint("longitude BETWEEN -180 AND 180", name="ck_deployments_longitude"),
        CheckConstraint("end_at IS NULL OR end_at >= start_at", name="ck_deployments_dates"),
        CheckConstraint(
            "coordinate_uncertainty_m IS NULL OR coordinate_uncertainty_m >= 1",
            name="ck_deployments_uncertainty",
        ),
        Index("ix_deployments_camera_start", "camera_id", "start_at"),
    )
