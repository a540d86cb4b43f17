"""Sites: the set of cameras whose animals can meet, the scope of matching.

Why:
- Assignment serialised on one advisory lock per sex, so every worker of a
  cluster waited on the same lock (issue 8, section 2). A site (a property, a
  study area) is the scope within which a new sighting can be the same animal
  as a stored one; locks and candidate searches are per site and sex, so
  workers of different sites never wait on each other.
- cameras.site names the camera's site; 'default' for every camera until a
  person says otherwise, so a database made before this behaves as before.
- detections.embedding is stored inline (STORAGE PLAIN): a 512-d vector is
  2,056 bytes, just over PostgreSQL's 2,032-byte TOAST threshold, so every
  vector lived in the TOAST table and each read of one was an extra index
  lookup and two chunk reads. An exact search over 10,000 sightings took
  75.9 ms toasted and 18.8 ms inline (same run, 2 loaded cores). Rows written
  before this stay toasted until rewritten (`VACUUM FULL detections`).
- detections.site is a copy of its photo's camera's site, because the
  candidate query filters the HNSW scan by it and must not join per row.
  Triggers keep the copy right whatever writes the rows (ingest, COPY, a
  camera moved to another site, a photo given another camera): a stale copy
  would silently search the wrong site.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DEFAULT_SITE = "default"


def upgrade() -> None:
    op.add_column("cameras", sa.Column("site", sa.Text(), nullable=False, server_default=DEFAULT_SITE))
    op.add_column("detections", sa.Column("site", sa.Text(), nullable=False, server_default=DEFAULT_SITE))
    op.create_index("ix_cameras_site", "cameras", ["site"])
    op.execute("ALTER TABLE detections ALTER COLUMN embedding SET STORAGE PLAIN")
    # A small search scope (a site of a few thousand sightings in a big table) is read whole
    # through this index and sorted: an HNSW scan filtered to it visits mostly other sites' rows.
    op.create_index(
        "ix_detections_match_scope",
        "detections",
        ["site", "sex", "model_id"],
        postgresql_where=sa.text("deer_id IS NOT NULL"),
    )
    # Every existing row is in the default site already (the column default), so
    # the upgrade rewrites nothing on a large table beyond adding the column.
    op.execute(
        """
        CREATE FUNCTION deerid_detection_site() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.site := COALESCE(
                (SELECT c.site FROM images i JOIN cameras c ON c.id = i.camera_id WHERE i.id = NEW.image_id),
                'default');
            RETURN NEW;
        END $$;

        CREATE TRIGGER detections_site BEFORE INSERT OR UPDATE OF image_id ON detections
            FOR EACH ROW EXECUTE FUNCTION deerid_detection_site();

        CREATE FUNCTION deerid_camera_site() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE detections d SET site = NEW.site
              FROM images i WHERE i.camera_id = NEW.id AND d.image_id = i.id AND d.site <> NEW.site;
            RETURN NEW;
        END $$;

        CREATE TRIGGER cameras_site AFTER UPDATE OF site ON cameras
            FOR EACH ROW WHEN (OLD.site IS DISTINCT FROM NEW.site) EXECUTE FUNCTION deerid_camera_site();

        CREATE FUNCTION deerid_image_site() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE detections SET site = COALESCE(
                (SELECT c.site FROM cameras c WHERE c.id = NEW.camera_id), 'default')
             WHERE image_id = NEW.id;
            RETURN NEW;
        END $$;

        CREATE TRIGGER images_site AFTER UPDATE OF camera_id ON images
            FOR EACH ROW WHEN (OLD.camera_id IS DISTINCT FROM NEW.camera_id)
            EXECUTE FUNCTION deerid_image_site();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER images_site ON images;
        DROP FUNCTION deerid_image_site();
        DROP TRIGGER cameras_site ON cameras;
        DROP FUNCTION deerid_camera_site();
        DROP TRIGGER detections_site ON detections;
        DROP FUNCTION deerid_detection_site();
        """
    )
    op.execute("ALTER TABLE detections ALTER COLUMN embedding SET STORAGE EXTENDED")
    op.drop_index("ix_detections_match_scope", table_name="detections")
    op.drop_index("ix_cameras_site", table_name="cameras")
    op.drop_column("detections", "site")
    op.drop_column("cameras", "site")
