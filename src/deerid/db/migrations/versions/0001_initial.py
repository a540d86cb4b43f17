"""Initial schema: cameras, images, deer profiles and detections with pgvector embeddings.

Why it looks like this:
- images.sha256 is unique so that ingesting the same photos again (from the
  same card, or a copy in another folder) changes nothing.
- detections keep every sighting's own embedding and model id: matching runs
  against all sightings, not one profile vector, and vectors of different
  models must never be compared.
- (image_id, source_index) is unique so a detections file imported twice
  adds no box twice.
- detections.sex is the partition a sighting is matched in, kept on the row so
  the nearest-neighbour query filters without a join.
- deer_number_<sex> sequences number default names per sex.
- HNSW cosine indexes are built with a large maintenance_work_mem: at the
  default a 100k-row build takes over ten minutes instead of about 1.5.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SEXES = ("doe", "fawn", "buck", "unknown")
STATUSES = ("pending", "assigned", "too_small", "not_deer", "failed")
ASSIGNMENTS = ("matched", "new")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("SET LOCAL maintenance_work_mem = '1GB'")

    op.create_table(
        "cameras",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("make", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("latitude", sa.Float),
        sa.Column("longitude", sa.Float),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("camera_id", sa.Integer, sa.ForeignKey("cameras.id")),
        sa.Column("captured_at", sa.DateTime(timezone=False)),
        sa.Column("captured_at_source", sa.Text, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("file_size", sa.BigInteger, nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_images_camera_id", "images", ["camera_id"])
    op.create_index("ix_images_captured_at", "images", ["captured_at"])

    sex = postgresql.ENUM(*SEXES, name="deer_sex", create_type=False)
    status = postgresql.ENUM(*STATUSES, name="detection_status", create_type=False)
    assignment = postgresql.ENUM(*ASSIGNMENTS, name="assignment", create_type=False)
    for enum in (sex, status, assignment):
        enum.create(op.get_bind(), checkfirst=True)

    op.create_table(
        "deer",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("sex", sex, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=False)),
        sa.Column("last_seen", sa.DateTime(timezone=False)),
        sa.Column("feature_vector", Vector(512)),
        sa.Column("model_id", sa.Text),
        sa.Column("confidence", sa.Float),
        sa.Column("sighting_count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    # Per-sex counters for default names ("Buck 7"): sequences never reuse a
    # number, so a name stays unique even after merges delete profiles.
    for value in SEXES:
        op.execute(f"CREATE SEQUENCE deer_number_{value}")
    op.create_index(
        "ix_deer_feature_vector_hnsw",
        "deer",
        ["feature_vector"],
        postgresql_using="hnsw",
        postgresql_ops={"feature_vector": "vector_cosine_ops"},
    )

    op.create_table(
        "detections",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("image_id", sa.BigInteger, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("source_index", sa.Integer, nullable=False),
        sa.Column("bbox_x", sa.Float, nullable=False),
        sa.Column("bbox_y", sa.Float, nullable=False),
        sa.Column("bbox_w", sa.Float, nullable=False),
        sa.Column("bbox_h", sa.Float, nullable=False),
        sa.Column("detector_conf", sa.Float, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("class_label", sa.Text),
        sa.Column("class_conf", sa.Float),
        sa.Column("sex", sex),
        sa.Column("status", status, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("embedding", Vector(512)),
        sa.Column("model_id", sa.Text),
        sa.Column("deer_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("deer.id", ondelete="SET NULL")),
        sa.Column("similarity", sa.Float),
        sa.Column("matched_detection_id", sa.BigInteger, sa.ForeignKey("detections.id", ondelete="SET NULL")),
        sa.Column("assignment", assignment),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("reidentified_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("image_id", "source_index", name="uq_detections_image_source_index"),
    )
    op.create_index("ix_detections_deer_id", "detections", ["deer_id"])
    op.create_index("ix_detections_status", "detections", ["status"])
    op.create_index(
        "ix_detections_embedding_hnsw",
        "detections",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )


def downgrade() -> None:
    op.drop_table("detections")
    op.drop_table("deer")
    op.drop_table("images")
    op.drop_table("cameras")
    for value in SEXES:
        op.execute(f"DROP SEQUENCE IF EXISTS deer_number_{value}")
    for name in ("assignment", "detection_status", "deer_sex"):
        op.execute(f"DROP TYPE IF EXISTS {name}")
