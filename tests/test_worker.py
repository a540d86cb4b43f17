"""The Celery path: a real redis-server on loopback and a real `deerid worker`.

What is tried: ingest with a broker queues one task per deer box and the
worker's assignments equal an in-process run's; a worker killed with SIGKILL
halfway loses nothing, and `deerid reid --all` finishes the rest without
double counting; eager (no broker) tasks return their outcome.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from deerid.app import Deerid
from deerid.core.config import Settings, reset_settings_cache
from deerid.db.tables import Deer, Detection, DetectionStatus
from deerid.pipeline.ingest import ingest
from support.db import create_database
from support.env import subprocess_env
from support.paths import FEEDER, FEEDER_JSON
from support.server import free_port

pytestmark = pytest.mark.redis
DEERID = str(Path(sys.executable).parent / "deerid")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: run scripts/setup.sh (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def start_worker(settings: Settings, broker: str, log: Path) -> subprocess.Popen[bytes]:
    env = subprocess_env(settings, DEERID_BROKER_URL=broker, DEERID_TASK_VISIBILITY_TIMEOUT="5")
    return subprocess.Popen(
        [DEERID, "worker", "--concurrency", "1", "--loglevel", "info"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so the kill reaches the prefork children too
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def counts(deerid: Deerid) -> tuple[int, int]:
    """(pending deer boxes, assigned deer boxes)."""
    with deerid.sessions() as s:
        pending = s.execute(
            sa.select(sa.func.count()).where(Detection.status == DetectionStatus.PENDING)
        ).scalar_one()
        assigned = s.execute(
            sa.select(sa.func.count()).where(Detection.status == DetectionStatus.ASSIGNED)
        ).scalar_one()
    return pending, assigned


def wait_for(predicate, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out; worker log:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def partition(deerid: Deerid) -> set[frozenset[str]]:
    """Deer as sets of (photo, box index): comparable across databases."""
    with deerid.sessions() as s:
        rows = s.execute(
            sa.text(
                "SELECT d.deer_id, i.sha256 || ':' || d.source_index FROM detections d "
                "JOIN images i ON i.id = d.image_id WHERE d.deer_id IS NOT NULL"
            )
        ).all()
    groups: dict[object, set[str]] = {}
    for deer_id, key in rows:
        groups.setdefault(deer_id, set()).add(key)
    return {frozenset(g) for g in groups.values()}


def test_worker_assigns_what_ingest_queued_like_an_in_process_run(
    settings: Settings, deerid: Deerid, pg_root: str, redis_url: str, tmp_path: Path
) -> None:
    with Deerid(settings.model_copy(update={"broker_url": redis_url})) as queued:
        report = ingest(queued, FEEDER, FEEDER_JSON)
    assert report.queued == 65 and report.reidentified == 0  # 76 deer boxes, 11 too small
    assert counts(deerid) == (65, 0)

    log = tmp_path / "worker.log"
    worker = start_worker(settings, redis_url, log)
    try:
        wait_for(lambda: counts(deerid) == (0, 65), 300, worker, log)
    finally:
        stop(worker)

    in_process = settings.model_copy(update={"database_url": create_database(pg_root)})
    with Deerid(in_process) as other:
        ingest(other, FEEDER, FEEDER_JSON)
        assert partition(deerid) == partition(other)


def test_killed_worker_loses_nothing(
    settings: Settings, deerid: Deerid, redis_url: str, tmp_path: Path
) -> None:
    with Deerid(settings.model_copy(update={"broker_url": redis_url})) as queued:
        ingest(queued, FEEDER, FEEDER_JSON)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, redis_url, log)
    try:
        wait_for(lambda: counts(deerid)[1] >= 3, 300, worker, log)
    finally:
        stop(worker, signal.SIGKILL)
    pending, _ = counts(deerid)
    assert pending > 0, "the worker finished before it was killed: nothing was tested"

    # What the killed worker left is finished in-process (no broker).
    env = subprocess_env(settings)
    done = subprocess.run([DEERID, "reid", "--all", "--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert counts(deerid) == (0, 65)
    with deerid.sessions() as s:
        total = s.execute(sa.select(sa.func.sum(Deer.sighting_count))).scalar_one()
    assert total == 65  # every box counted exactly once


def test_eager_task_runs_in_process(
    settings: Settings, deerid: Deerid, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(deerid, FEEDER, FEEDER_JSON, reidentify=False)
    for key, value in subprocess_env(settings).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DEERID_BROKER_URL", raising=False)
    reset_settings_cache()
    try:
        from deerid.tasks.reid import reidentify_batch_task, reidentify_deer_task

        with deerid.sessions() as s:
            first = s.execute(
                sa.select(sa.func.min(Detection.id)).where(Detection.status == DetectionStatus.PENDING)
            ).scalar_one()
        result = reidentify_deer_task.delay(first).get()
        assert result["outcome"] == "new_deer" and result["deer_id"]
        again = reidentify_deer_task.delay(first).get()
        assert again["outcome"] == "already_assigned" and again["deer_id"] == result["deer_id"]
        rest = reidentify_batch_task.delay(None).get()
        assert rest["matched"] + rest["new_deer"] == 64
    finally:
        reset_settings_cache()
