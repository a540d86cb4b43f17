"""Upgrading a database made by the previous release, against the real embedded PostgreSQL.

What is tried: a database built at schema revision 0003 (the last landed release
before 0004-0007) and filled the old way with SQL (a camera, photos, deer with
profile vectors, boxes with embeddings, one confirmed and one manual) is migrated
to head; every row and vector survives, the new columns hold their defaults
(no event, track, box history, file check or identity gaps), the ORM reads it,
and the vector search answers with the stored box.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.session import MIGRATIONS_DIR, create_database, upgrade_schema
from deerid.db.tables import Deer, Detection, Image

PREVIOUS_RELEASE = "0003"


def _vector(seed: int) -> list[float]:
    v = [0.0] * 512
    v[seed % 512] = 1.0
    v[(seed * 7 + 3) % 512] = 0.5
    return v


def _text(v: list[float]) -> str:
    return "[" + ",".join(repr(x) for x in v) + "]"


def test_a_database_of_the_previous_release_upgrades_to_head_keeping_its_rows(pg_root: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Build at 0003 with SQL inserts, upgrade to head, then read the rows back with SQL and the ORM."""
    url = create_database(pg_root, f"old_{uuid.uuid4().hex[:12]}")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    buck, doe = uuid.uuid4(), uuid.uuid4()
    try:
        upgrade_schema(engine, PREVIOUS_RELEASE)
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0003"
            conn.execute(
                sa.text(
                    "INSERT INTO cameras (id, name, make, clock_offset_s)"
                    " VALUES (1, 'feeder', 'Bushnell', 30)"
                )
            )
            for i in (1, 2):
                conn.execute(
                    sa.text(
                        "INSERT INTO images (id, path, sha256, camera_id, captured_at, captured_at_source,"
                        " width, height, file_size)"
                        " VALUES (:id, :path, :sha, 1, :at, 'exif', 4000, 3000, 12345)"
                    ),
                    {
                        "id": i,
                        "path": f"/card/IMG_{i}.JPG",
                        "sha": f"{i:064x}",
                        "at": f"2024-10-0{i} 06:30:00",
                    },
                )
            for deer_id, name, sex, seed in ((buck, "Buck 1", "buck", 1), (doe, "Doe 1", "doe", 2)):
                conn.execute(
                    sa.text(
                        "INSERT INTO deer (id, name, sex, first_seen, last_seen, feature_vector, model_id,"
                        " sighting_count, notes) VALUES (:id, :name, :sex,"
                        " '2024-10-01 06:30', '2024-10-02 06:30',"
                        " CAST(:v AS vector), 'efficientnet_lite1', 1, 'old note')"
                    ),
                    {"id": deer_id, "name": name, "sex": sex, "v": _text(_vector(seed))},
                )
            for det_id, image_id, deer_id, seed, assignment, confirmed in (
                (10, 1, buck, 1, "new", "2024-10-03 10:00+00"),
                (11, 2, doe, 2, "manual", None),
            ):
                conn.execute(
                    sa.text(
                        "INSERT INTO detections (id, image_id, source_index, bbox_x, bbox_y, bbox_w, bbox_h,"
                        " detector_conf, category, sex, status, embedding, model_id, deer_id, assignment,"
                        " confirmed_at) VALUES (:id, :img, 0, 0.1, 0.2, 0.3, 0.4, 0.9, 'animal',"
                        " CAST(:sex AS deer_sex), 'assigned', CAST(:v AS vector),"
                        " 'efficientnet_lite1', :deer,"
                        " CAST(:a AS assignment), :confirmed)"
                    ),
                    {
                        "id": det_id,
                        "img": image_id,
                        "sex": "buck" if deer_id == buck else "doe",
                        "v": _text(_vector(seed)),
                        "deer": deer_id,
                        "a": assignment,
                        "confirmed": confirmed,
                    },
                )

        upgrade_schema(engine)

        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head
            assert conn.execute(sa.text("SELECT count(*) FROM images")).scalar() == 2
            assert conn.execute(sa.text("SELECT count(*) FROM deer")).scalar() == 2
            assert conn.execute(sa.text("SELECT count(*) FROM detections")).scalar() == 2
            assert conn.execute(sa.text("SELECT clock_offset_s FROM cameras")).scalar() == 30
            images = conn.execute(
                sa.text("SELECT event_id, file_mtime, missing_since, pixel_sha256 FROM images")
            ).all()
            assert images == [(None, None, None, None)] * 2
            boxes = conn.execute(
                sa.text("SELECT id, track_id, box_history, assignment::text FROM detections ORDER BY id")
            ).all()
            assert boxes == [(10, None, None, "new"), (11, None, None, "manual")]
            identity = conn.execute(
                sa.text("SELECT count(*), min(database_id::text) FROM database_identity")
            ).one()
            assert identity[0] == 1 and uuid.UUID(identity[1])
            nearest = conn.execute(
                sa.text("SELECT id FROM detections ORDER BY embedding <=> CAST(:v AS vector) LIMIT 1"),
                {"v": _text(_vector(2))},
            ).scalar()
            assert nearest == 11
    finally:
        engine.dispose()

    # The application's own mapping reads the upgraded rows.
    settings = Settings(database_url=url, data_dir=tmp_path / "data", device="cpu", broker_url=None)
    with Deerid(settings) as deerid, deerid.sessions() as session:
        deer = {d.id: d for d in session.scalars(sa.select(Deer))}
        assert deer[buck].name == "Buck 1" and deer[buck].notes == "old note"
        assert deer[buck].sighting_count == 1
        assert list(deer[doe].feature_vector) == _vector(2)  # type: ignore[arg-type]
        confirmed = session.get(Detection, 10)
        assert confirmed is not None and confirmed.confirmed_at is not None and confirmed.deer_id == buck
        assert list(confirmed.embedding) == _vector(1)  # type: ignore[arg-type]
        assert session.get(Image, 1).path == "/card/IMG_1.JPG"  # type: ignore[union-attr]
