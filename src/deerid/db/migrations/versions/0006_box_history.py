"""Photos that moved or changed on disk, corrected boxes, pixel-identical copies.

Why:
- images.file_mtime: with file_size, a cheap guard that the stored path still
  holds the stored photo; only on a mismatch is the SHA-256 read again (F14).
- images.missing_since: the stored path no longer holds the photo (gone, or
  another photo in its place); `deerid status` and /api/images/missing list
  them until an ingest finds the photo again under any path (F13).
- images.pixel_sha256: hash of the encoded image data without its metadata
  segments (EXIF, XMP, comments), so a copy with only EXIF edited is known
  for the same photo and not counted twice (F17).
- ix_images_path: an ingest marks other photos stored at a path that now holds
  another photo as missing, and upload clean-up looks paths up.
- detections.box_history: earlier versions of a box replaced by a corrected
  detections file: [{"bbox", "category", "class_label", ..., "replaced_at"}] (F15).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("file_mtime", sa.Float(), nullable=True))
    op.add_column("images", sa.Column("missing_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("images", sa.Column("pixel_sha256", sa.String(64), nullable=True))
    op.create_index("ix_images_pixel_sha256", "images", ["pixel_sha256"])
    op.create_index("ix_images_path", "images", ["path"])
    op.add_column("detections", sa.Column("box_history", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("detections", "box_history")
    op.drop_index("ix_images_path", table_name="images")
    op.drop_index("ix_images_pixel_sha256", table_name="images")
    op.drop_column("images", "pixel_sha256")
    op.drop_column("images", "missing_since")
    op.drop_column("images", "file_mtime")
