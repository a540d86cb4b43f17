"""`deerid backup` / `deerid restore` on a real ingest of feeder photos, against the real embedded PostgreSQL.

What is tried: a round trip into a fresh, empty database and data dir keeps every
count (photos, boxes, deer and their sighting counts, review screens), the API
token, the calibrations and the trained-model files; a restore into a database that
holds data is refused without --force; a missing, foreign, truncated or altered
backup file is one clear error line and changes nothing, even with --force.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from deerid.api.deps import ensure_api_token
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.backup import DUMP, BackupError, backup, restore, table_counts
from deerid.pipeline.ingest import ingest
from deerid.registry import calibration
from support.cards import feeder_card
from support.cli import invoke_once
from support.db import create_database
from support.external_pg import external_postgres

PHOTOS = ["IMG_2257.JPG", "IMG_2263.JPG", "IMG_7335.JPG"]  # two of one buck, a doe + fawn


def _fresh(pg_root: str, tmp_path: Path, name: str) -> Settings:
    """Another deerid: a new database (migrated, no rows) and a data dir of its own."""
    data_dir = tmp_path / name
    data_dir.mkdir()
    return Settings(database_url=create_database(pg_root), data_dir=data_dir, device="cpu", broker_url=None)


def _state(settings: Settings) -> dict[str, object]:
    engine = sa.create_engine(settings.database_url or "", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            counts = table_counts(conn)
            deer = conn.execute(sa.text("SELECT id, sex::text, sighting_count FROM deer ORDER BY id")).all()
            query = "SELECT id, status::text, deer_id FROM detections ORDER BY id"
            boxes = conn.execute(sa.text(query)).all()
    finally:
        engine.dispose()
    counts.pop("database_identity", None)
    return {"counts": counts, "deer": [tuple(r) for r in deer], "detections": [tuple(r) for r in boxes]}


def _ingested(deerid: Deerid, tmp_path: Path) -> Settings:
    settings = deerid.settings
    card, md = feeder_card(tmp_path, PHOTOS)
    ensure_api_token(settings)
    calibration.save(settings, "some-model", {"threshold": 0.71})
    report = ingest(deerid, card, md)
    assert report.photos_new == len(PHOTOS)
    return settings


def test_round_trip_into_an_empty_database_keeps_every_count_the_token_and_calibration(
    deerid: Deerid, pg_root: str, tmp_path: Path
) -> None:
    """Ingest three feeder photos, add a trained-model file, back up, restore into a fresh empty database
    and data dir; compare table counts, deer with their sighting counts, boxes, token, calibration, model."""
    source = _ingested(deerid, tmp_path)
    (source.models_dir / f"trained-{uuid.uuid4().hex[:6]}").mkdir()
    trained = next(p for p in source.models_dir.iterdir() if p.name.startswith("trained-"))
    (trained / "model.json").write_text('{"name": "t"}')
    before = _state(source)
    assert before["counts"]["images"] == 3 and before["counts"]["deer"] >= 2  # type: ignore[index]

    made = backup(source, tmp_path / "deerid.backup")
    assert made.manifest["counts"]["images"] == 3
    assert made.manifest["database_id"] and made.manifest["schema_revision"]

    target = _fresh(pg_root, tmp_path, "target")
    done = restore(target, tmp_path / "deerid.backup")

    assert _state(target) == before
    assert sum(c for _, _, c in before["deer"]) > 0  # type: ignore[misc, union-attr]
    assert (target.data_dir / "api_token").read_text() == (source.data_dir / "api_token").read_text()
    assert (target.data_dir / "api_token").stat().st_mode & 0o077 == 0
    assert calibration.load(target, "some-model")["threshold"] == 0.71  # type: ignore[index]
    assert (target.models_dir / trained.name / "model.json").read_text() == '{"name": "t"}'
    assert done.schema_revision == made.manifest["schema_revision"]
    engine = sa.create_engine(target.database_url or "", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:  # the identity moves with the database
        identity = conn.execute(sa.text("SELECT database_id FROM database_identity")).scalar_one()
    engine.dispose()
    assert identity.hex == made.manifest["database_id"]


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    ran = invoke_once(settings, *args)
    return ran.returncode, ran.output


def test_non_empty_database_is_refused_and_bad_backup_files_change_nothing(
    deerid: Deerid, tmp_path: Path
) -> None:
    """Through the CLI: restore into the database that holds the ingest is refused without --force; then
    a missing file, a non-backup, a truncated backup and one with a flipped byte in the dump each give one
    error line with --force, and the database rows, token and calibration stay as they were."""
    source = _ingested(deerid, tmp_path)
    good = tmp_path / "good.backup"
    code, out = _cli(source, "backup", str(good))
    assert code == 0, out
    assert "backed up 3 photos" in out
    before = _state(source)
    token = (source.data_dir / "api_token").read_text()
    calib = (source.data_dir / "calibration.json").read_text()

    code, out = _cli(source, "restore", str(good))
    assert code == 2
    assert "error: the database is not empty" in out and "--force" in out

    garbage = tmp_path / "garbage.backup"
    garbage.write_bytes(b"this is not a backup\n" * 100)
    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    flipped = tmp_path / "flipped.backup"
    shutil.copyfile(good, flipped)
    data = bytearray(flipped.read_bytes())
    offset = data.index(b"PGDMP") + 2000  # inside the dump member
    data[offset] ^= 0xFF
    flipped.write_bytes(bytes(data))

    cases = {
        tmp_path / "missing.backup": "does not exist",
        garbage: "is not a readable deerid backup",
        truncated: "is not a readable deerid backup",
        flipped: f"{DUMP} is damaged",
    }
    for bad, message in cases.items():
        code, out = _cli(source, "restore", "--force", str(bad))
        assert code == 2, (bad, out)
        assert out.startswith("error: ") and message in out, (bad, out)
        assert "Traceback" not in out
        with pytest.raises(BackupError):
            restore(source, bad, force=True)
        assert _state(source) == before
        assert (source.data_dir / "api_token").read_text() == token
        assert (source.data_dir / "calibration.json").read_text() == calib
    assert not [p for p in source.data_dir.iterdir() if p.name.startswith(".deerid-restore-")]

    # The good one, forced, replaces the database with the same content.
    code, out = _cli(source, "restore", "--force", str(good))
    assert code == 0, out
    assert _state(source) == before


def test_laptop_to_a_separate_postgresql_server_and_back(
    deerid: Deerid, pg_root: str, tmp_path: Path
) -> None:
    """Move an ingest from the embedded kind of database to a PostgreSQL server deerid does not
    manage (its own cluster, TCP, a password with URL-special characters, a non-superuser owner
    role, the vector extension made by an admin), then back into a fresh database; every row and
    file survives both moves. A wrong password is one clear error that does not echo it; a database
    without the extension, which the role may not create, is one clear error naming the fix."""
    source = _ingested(deerid, tmp_path)
    before = _state(source)
    made = backup(source, tmp_path / "laptop.backup")

    with external_postgres() as server:
        target_dir = tmp_path / "cluster"
        target_dir.mkdir()
        target = Settings(
            database_url=server.create_database("deerid"), data_dir=target_dir, device="cpu", broker_url=None
        )
        wrong = target.model_copy(update={"database_url": server.url("deerid", password="not-it")})
        with pytest.raises(BackupError, match="password authentication failed") as refused:
            restore(wrong, tmp_path / "laptop.backup")
        assert "not-it" not in str(refused.value)
        bare = target.model_copy(update={"database_url": server.create_database("bare", vector=False)})
        with pytest.raises(BackupError, match=r"no vector extension .*`CREATE EXTENSION vector;`"):
            restore(bare, tmp_path / "laptop.backup")

        done = restore(target, tmp_path / "laptop.backup")
        assert done.schema_revision == made.manifest["schema_revision"]
        assert _state(target) == before
        assert calibration.load(target, "some-model")["threshold"] == 0.71  # type: ignore[index]
        engine = sa.create_engine(target.database_url or "", poolclass=sa.pool.NullPool)
        with engine.connect() as conn:  # the rows are in the other server, owned by its role
            assert conn.execute(sa.text("SELECT current_user, inet_server_port()")).one() == (
                "deerid",
                server.port,
            )
            superuser = conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
            assert superuser.scalar_one() is False
        engine.dispose()
        back = backup(target, tmp_path / "cluster.backup")  # pg_dump over TCP with the password
        assert back.manifest["counts"] == made.manifest["counts"]

    home = _fresh(pg_root, tmp_path, "home")
    restore(home, tmp_path / "cluster.backup")
    assert _state(home) == before
    assert (home.data_dir / "api_token").read_text() == (source.data_dir / "api_token").read_text()
