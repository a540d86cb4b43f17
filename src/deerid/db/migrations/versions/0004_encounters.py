"""Encounters: events (photos of one camera close in time) and tracks (one animal through an event).

Why:
- events: a trail camera fires a burst per visit; the photos of one visit show
  the same animals, so they are grouped (same camera, at most
  DEERID_ENCOUNTER_GAP seconds apart) and never used as evidence against each
  other. `reason` says why a photo is an event of its own (no capture time, ...).
- tracks: one animal's boxes through an event, linked frame to frame. A track,
  not a single box, is what gets matched; two tracks of one event are never one deer.
- assignment 'track': a box that joined the deer its own track already had.

Images stored before this revision have no event; they get one when they are
ingested again. Their boxes are matched one by one, as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TYPE assignment ADD VALUE IF NOT EXISTS 'track'")
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("camera_id", sa.Integer, sa.ForeignKey("cameras.id")),
        sa.Column("start_at", sa.DateTime(timezone=False)),
        sa.Column("end_at", sa.DateTime(timezone=False)),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.add_column(
        "images",
        sa.Column("event_id", sa.BigInteger, sa.ForeignKey("events.id", ondelete="SET NULL")),
    )
    op.create_index("ix_images_event_id", "images", ["event_id"])
    op.create_table(
        "tracks",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("event_id", sa.BigInteger, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_tracks_event_id", "tracks", ["event_id"])
    op.add_column(
        "detections",
        sa.Column("track_id", sa.BigInteger, sa.ForeignKey("tracks.id", ondelete="SET NULL")),
    )
    op.create_index("ix_detections_track_id", "detections", ["track_id"])


def downgrade() -> None:
    op.drop_index("ix_detections_track_id", table_name="detections")
    op.drop_column("detections", "track_id")
    op.drop_table("tracks")
    op.drop_index("ix_images_event_id", table_name="images")
    op.drop_column("images", "event_id")
    op.drop_table("events")
    # PostgreSQL cannot drop one value of an enum; 'track' stays, unused.
