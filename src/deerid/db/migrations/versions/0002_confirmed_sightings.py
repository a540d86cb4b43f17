"""Record when a person confirmed that a sighting belongs to its deer.

Why: confirmed sightings are the labelled data deerid learns from
(`deerid calibrate --from-db`, `deerid train --from-db`); automatic
assignments cannot be, since they are what is being checked. The review
workflow sets it; moving a sighting to another deer clears it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("detections", sa.Column("confirmed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("detections", "confirmed_at")
