"""Curation: notes, camera clock offsets and coordinates in use, merge history, review decisions.

Why:
- deer.notes: what a person knows about an animal (a broken tine, a limp).
- cameras.clock_offset_s: trail cameras drift or were never set; the offset
  (seconds to add to EXIF time) makes sightings of several cameras comparable.
- merges: a merge must be recorded and undoable; the folded profiles are kept
  as a snapshot (ids, names, which detections were theirs).
- assignment 'manual': sightings a person placed.
- review_decisions: confirmed and rejected (detection, deer) pairs are the
  labelled data for calibration and training, and a rejected pair must never
  be proposed again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A person placed the sighting (merge, split, review): never overwritten by re-runs.
    op.execute("ALTER TYPE assignment ADD VALUE IF NOT EXISTS 'manual'")
    op.add_column("deer", sa.Column("notes", sa.Text))
    op.add_column("cameras", sa.Column("clock_offset_s", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "merges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("target_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("merged", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True)),
    )
    decision = postgresql.ENUM("confirm", "reject", name="review_decision", create_type=False)
    decision.create(op.get_bind(), checkfirst=True)
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column(
            "detection_id", sa.BigInteger, sa.ForeignKey("detections.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("deer_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("decision", decision, nullable=False),
        sa.Column("similarity", sa.Float),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_review_decisions_detection_id", "review_decisions", ["detection_id"])


def downgrade() -> None:
    op.drop_table("review_decisions")
    op.execute("DROP TYPE IF EXISTS review_decision")
    op.drop_table("merges")
    op.drop_column("cameras", "clock_offset_s")
    op.drop_column("deer", "notes")
