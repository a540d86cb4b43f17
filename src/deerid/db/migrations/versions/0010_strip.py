"""What the info strip burned into each photo says: time, camera name, temperature.

Why:
- A photo without EXIF got its file's copy time (IMG_0988 showed a buck "last seen" today);
  the strip printed on the photo has the camera's time, so it is the next source after EXIF
  (images.captured_at_source = 'strip').
- Several physical cameras share one EXIF make and model; the strip carries the name the user
  gave each camera ("EDGE", "Olpe", "GG"), which `deerid ingest --camera-from-strip` uses.
- A camera whose EXIF and strip disagree has a clock problem somewhere: the offset is kept and
  the photo flagged, so people can see it (API and ingest summary).

All columns are nullable: a photo whose strip was not read (sampling, docs/strip.md) has NULL
strip_status, and nothing already stored is rewritten.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("strip_status", sa.Text(), nullable=True))
    op.add_column("images", sa.Column("strip_time", sa.DateTime(timezone=False), nullable=True))
    op.add_column("images", sa.Column("strip_camera", sa.Text(), nullable=True))
    op.add_column("images", sa.Column("strip_temperature_f", sa.Integer(), nullable=True))
    op.add_column("images", sa.Column("strip_offset_s", sa.Float(), nullable=True))
    op.add_column("images", sa.Column("strip_disagrees", sa.Boolean(), nullable=True))


def downgrade() -> None:
    for column in (
        "strip_disagrees",
        "strip_offset_s",
        "strip_temperature_f",
        "strip_camera",
        "strip_time",
        "strip_status",
    ):
        op.drop_column("images", column)
