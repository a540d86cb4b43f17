"""Deployments: a camera at a place between two dates, with coordinates.

Why:
- Camtrap DP (docs/export.md) describes every photo through its deployment, and requires the
  deployment's latitude and longitude; a camera moved from the feeder to a scrape in October
  is two deployments, with two places, though it is one camera (and one clock offset).
- A sighting belongs to the deployment of its photo's camera whose dates hold the photo's
  time (capture time plus the camera's clock offset). That is computed where it is read
  (store/deployments.py), not stored per photo: a deployment whose dates are corrected
  would otherwise leave photos pointing at the wrong one.
- Coordinates out of range are refused by the database too (CHECK), whatever writes them.
  Overlapping deployments of one camera are refused by the store, under a lock per camera.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("camera_id", sa.Integer(), sa.ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("coordinate_uncertainty_m", sa.Integer(), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=False), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("latitude BETWEEN -90 AND 90", name="ck_deployments_latitude"),
        sa.CheckConstraint("longitude BETWEEN -180 AND 180", name="ck_deployments_longitude"),
        sa.CheckConstraint("end_at IS NULL OR end_at >= start_at", name="ck_deployments_dates"),
        sa.CheckConstraint(
            "coordinate_uncertainty_m IS NULL OR coordinate_uncertainty_m >= 1",
            name="ck_deployments_uncertainty",
        ),
    )
    op.create_index("ix_deployments_camera_start", "deployments", ["camera_id", "start_at"])


def downgrade() -> None:
    op.drop_index("ix_deployments_camera_start", table_name="deployments")
    op.drop_table("deployments")
