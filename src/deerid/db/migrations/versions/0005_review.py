"""The review screen's decisions.

Why:
- review_screens: one row per answered screen (a query deer beside its top-k
  candidates). A "none" answer is a no-match for every pair shown, a "match" a
  merge. Pairs are recorded through *anchor* detections, not deer ids: deer ids
  disappear when deer merge, while a detection stays inside whichever deer now
  holds it, so a decided pair stays decided through later merges and undos.
  `shown` keeps what the person saw (deer, anchor, probability) as the labelled
  data for calibration and training.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHOICES = ("match", "none", "skip")


def upgrade() -> None:
    choice = postgresql.ENUM(*CHOICES, name="review_choice", create_type=False)
    choice.create(op.get_bind(), checkfirst=True)
    op.create_table(
        "review_screens",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("query_deer_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "query_detection_id",
            sa.BigInteger(),
            sa.ForeignKey("detections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("choice", choice, nullable=False),
        sa.Column("candidate_deer_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("merge_id", sa.Integer(), sa.ForeignKey("merges.id", ondelete="SET NULL"), nullable=True),
        sa.Column("shown", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_review_screens_query_detection_id", "review_screens", ["query_detection_id"])


def downgrade() -> None:
    op.drop_index("ix_review_screens_query_detection_id", table_name="review_screens")
    op.drop_table("review_screens")
    postgresql.ENUM(name="review_choice").drop(op.get_bind(), checkfirst=True)
