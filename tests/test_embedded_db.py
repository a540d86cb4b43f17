"""The embedded default: no DATABASE_URL, PostgreSQL + pgvector started in the data dir.

What is tried: two deerid processes share one server, and it stops when the
last one exits; a holder killed with SIGKILL does not keep it running for
ever; the schema is migrated and matches the models.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from deerid.db.embedded import embedded_pid
from deerid.db.tables import Base

DEERID = str(Path(sys.executable).parent / "deerid")
HOLD = (
    "import sys; from pathlib import Path; from deerid.db.embedded import start_embedded; "
    "print(start_embedded(Path(sys.argv[1])), flush=True); sys.stdin.read()"
)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Outside pytest's tmp dir, whose 0700 parent the `pgserver` user could not enter.
    path = Path(tempfile.mkdtemp(prefix="deerid-embedded-"))
    yield path
    pid = embedded_pid(path / "pgdata")
    if pid:
        os.kill(pid, signal.SIGTERM)


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEERID_", "DATABASE_URL", "REID_"))}
    env["DEERID_DATA_DIR"] = str(data_dir)
    # These tests cover what the next start does after a SIGKILL; the watchdog, which would
    # otherwise stop the server within seconds, has its own tests (test_probe_watchdog.py).
    env["DEERID_WATCHDOG_INTERVAL"] = "600"
    return env


def hold(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir / "pgdata")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env_for(data_dir),
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def wait_stopped(pgdata: Path, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while embedded_pid(pgdata) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_processes_share_one_server_which_stops_after_the_last(data_dir: Path) -> None:
    pgdata = data_dir / "pgdata"
    holder, url = hold(data_dir)
    server_pid = embedded_pid(pgdata)
    assert server_pid is not None and url.startswith("postgresql+psycopg://")

    out = subprocess.run(
        [DEERID, "status"], env=env_for(data_dir), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "deerid is ready" in out.stdout and "deerid ingest" in out.stdout
    assert embedded_pid(pgdata) == server_pid  # the CLI joined it and left it running for the holder

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname='vector'")).scalar()
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
    engine.dispose()

    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(30)
    assert wait_stopped(pgdata), "the last process exited but the embedded server kept running"


def test_a_killed_holder_does_not_keep_the_server_alive(data_dir: Path) -> None:
    pgdata = data_dir / "pgdata"
    killed, _ = hold(data_dir)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    assert embedded_pid(pgdata) is not None  # orphaned, still listed as a holder

    out = subprocess.run([DEERID, "db", "upgrade"], env=env_for(data_dir), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert wait_stopped(pgdata), "a dead holder's pid kept the server running"


def test_config_reads_the_environment(data_dir: Path) -> None:
    env = env_for(data_dir) | {"REID_THRESHOLD": "0.9", "MIN_CROP_SIZE": "64", "DEVICE": "auto"}
    out = subprocess.run([DEERID, "config", "--json"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    values = json.loads(out.stdout)
    assert values["reid_threshold"] == 0.9 and values["min_crop_size"] == 64
    assert values["resolved_device"] == "cpu"  # no GPU on this machine
    assert values["database_url"].startswith("(embedded")
    assert values["sources"]["reid_threshold"] == "environment"
    assert values["sources"]["embed_batch_size"] == "default"

    bad = subprocess.run(
        [DEERID, "config"], env=env | {"REID_THRESHOLD": "high"}, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "REID_THRESHOLD='high'" in bad.stderr


def test_backup_and_restore_between_two_embedded_data_dirs(tmp_path: Path) -> None:
    """The embedded default end to end, in separate processes as a user runs it. Tried: an ingest
    into a data dir whose path has spaces (macOS's default data dir has one), `deerid backup`, then
    `deerid restore` into a fresh data dir with its own embedded server. The restored one lists the
    same deer with the same sighting counts."""
    from support.cards import feeder_card

    root = Path(tempfile.mkdtemp(prefix="deerid embedded "))
    source, target = root / "source data", root / "target data"
    card, md = feeder_card(tmp_path, ["IMG_2257.JPG", "IMG_2260.JPG", "IMG_2263.JPG"])

    def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DEERID, *args], env=env_for(data_dir), capture_output=True, text=True, timeout=300
        )

    try:
        ingested = run(source, "ingest", str(card), "--detections", str(md), "--json")
        assert ingested.returncode == 0, ingested.stderr
        before = json.loads(run(source, "deer", "list", "--json").stdout)
        assert before and sum(d["sightings"] for d in before) >= 3
        archive = root / "deer herd.backup"
        made = run(source, "backup", str(archive))
        assert made.returncode == 0, made.stderr
        restored = run(target, "restore", str(archive))
        assert restored.returncode == 0, restored.stderr
        assert "restored 3 photos" in restored.stdout
        after = json.loads(run(target, "deer", "list", "--json").stdout)
        assert [(d["id"], d["sightings"]) for d in after] == [(d["id"], d["sightings"]) for d in before]
    finally:
        for data_dir in (source, target):
            pid = embedded_pid(data_dir / "pgdata")
            if pid:
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)
