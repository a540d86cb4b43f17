"""Stars and links across years: a hunter's hit list, and one buck's profiles of several seasons.

Why:
- deer.starred: people keep a short list of the deer they care about (the bucks they hunt,
  the doe with the odd ear) and filter by it; false for every deer made before.
- deer_links: a buck sheds its antlers every winter, so its look changes and the matcher keeps
  the years apart. A person says "same deer, another year" and the two profiles stay separate
  (each season's sightings and statistics are its own) but are shown side by side. One row per
  pair, stored with deer_a < deer_b so it is the same row from either side; a deer deleted by
  a merge has its links moved to the deer it joined before it goes (store/links.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deer", sa.Column("starred", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.create_table(
        "deer_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("deer_a", UUID(as_uuid=True), sa.ForeignKey("deer.id", ondelete="CASCADE"), nullable=False),
        sa.Column("deer_b", UUID(as_uuid=True), sa.ForeignKey("deer.id", ondelete="CASCADE"), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("deer_a", "deer_b", name="uq_deer_links_pair"),
        sa.CheckConstraint("deer_a < deer_b", name="ck_deer_links_ordered"),
    )
    op.create_index("ix_deer_links_b", "deer_links", ["deer_b"])


def downgrade() -> None:
    op.drop_index("ix_deer_links_b", table_name="deer_links")
    op.drop_table("deer_links")
    op.drop_column("deer", "starred")
