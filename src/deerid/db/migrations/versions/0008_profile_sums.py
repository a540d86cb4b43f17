"""Exact sums behind a deer's mean embedding and mean similarity.

Why:
- Every assignment recomputed the profile from all the deer's sightings, so
  a buck seen 5,000 times at a feeder made each new sighting of it slower
  (issue 8, section 2). With the sums stored, one new sighting updates the
  profile from the deer's own row (`deer.add_sighting`); merges, splits,
  moves and undo still recompute from the sightings.
- deer.embedding_sum / embedding_count: sum of the sightings' embeddings (of
  the deer's model) in fixed point, units of 2^-40, as bigint[]; integers so
  the sum is exact and does not depend on the order sightings were added.
- deer.similarity_sum / similarity_count: the same for the similarities of
  sightings that joined by matching (the confidence).
- Left NULL here: existing deer get their sums from the full recompute the
  first time a sighting is added to them, so upgrading a large database does
  not rewrite every profile at once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deer", sa.Column("embedding_sum", postgresql.ARRAY(sa.BigInteger()), nullable=True))
    op.add_column("deer", sa.Column("embedding_count", sa.Integer(), nullable=True))
    op.add_column("deer", sa.Column("similarity_sum", sa.BigInteger(), nullable=True))
    op.add_column("deer", sa.Column("similarity_count", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("deer", "similarity_count")
    op.drop_column("deer", "similarity_sum")
    op.drop_column("deer", "embedding_count")
    op.drop_column("deer", "embedding_sum")
