"""Probe findings on the runtime (PROBE.md F8-F12, F23, F24, F27, F28): real processes, a real
redis-server, real embedded and test PostgreSQL servers.

What is tried: two databases sharing one broker each get exactly their own tasks, and a task sent
to the wrong database's queue is forwarded, not run; concurrent first-time database creation;
SIGTERM to `deerid serve` and `deerid worker` stops the embedded PostgreSQL they were the last
users of, in a data dir whose path has a space; a dead broker is one error line; another user's
pgserver lock file; an impossible port; the token is not printed when it came from the environment.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from celery import Celery

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.embedded import _ensure_database, embedded_pid
from deerid.db.session import create_database, upgrade_schema
from deerid.dispatch import REIDENTIFY_DEER, configure_celery, queue_for
from support.cards import feeder_card
from support.env import subprocess_env
from support.server import free_port
from test_worker import counts, redis_url, start_worker, stop, wait_for  # noqa: F401  (redis_url: fixture)

DEERID = str(Path(sys.executable).parent / "deerid")
PHOTOS = ["IMG_2257.JPG", "IMG_2263.JPG", "IMG_2333.JPG", "IMG_3899.JPG"]


def _card(tmp_path: Path) -> tuple[Path, Path]:
    """A few feeder photos and their MegaDetector entries."""
    return feeder_card(tmp_path, PHOTOS)


def _fresh_database(pg_root: str) -> str:
    """A database migrated from nothing, as a new deployment's is (not cloned from the template)."""
    url = create_database(pg_root, f"t_{uuid.uuid4().hex[:12]}")
    engine = sa.create_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    return url


def _site(settings: Settings, pg_root: str, tmp_path: Path, name: str) -> Settings:
    data = tmp_path / name
    data.mkdir()
    (data / "models").symlink_to(settings.data_dir / "models", target_is_directory=True)
    return settings.model_copy(update={"database_url": _fresh_database(pg_root), "data_dir": data})


def test_two_databases_on_one_broker_keep_their_own_tasks(
    settings: Settings,
    pg_root: str,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """F11: two deployments sharing one Redis: A's worker consumed 64 of B's 65 tasks, ran them against
    A's database (the ids collide) and acked them, leaving B's boxes pending for ever."""
    from deerid.pipeline.ingest import ingest

    site_a = _site(settings, pg_root, tmp_path, "a")
    site_b = _site(settings, pg_root, tmp_path, "b")
    with Deerid(site_a) as a, Deerid(site_b) as b:
        assert a.database_id != b.database_id
        card, md = _card(tmp_path)
        ingest(a, card, md)  # A: in-process, every box assigned (ids 1..n, as B's will be)
        _, assigned_a = counts(a)
        assert assigned_a > 0

        log_a = tmp_path / "worker_a.log"
        worker_a = start_worker(site_a, redis_url, log_a)
        try:
            wait_for(lambda: "ready" in log_a.read_text(), 120, worker_a, log_a)
            b_queued = site_b.model_copy(update={"broker_url": redis_url})
            with Deerid(b_queued) as queued:
                report = ingest(queued, card, md)
            assert report.queued == assigned_a and counts(b) == (report.queued, 0)
            # A task of B's sent to A's queue by mistake is forwarded to B's queue, never run on A.
            # A TaskQueue always pairs its queue with its own database id: a bare producer sends the mix.
            first = min(_pending_ids(site_b))
            configure_celery(Celery("deerid"), b_queued, worker=False).send_task(
                REIDENTIFY_DEER,
                args=[first],
                kwargs={"database_id": b.database_id},
                queue=queue_for(a.database_id),
            )
            wait_for(lambda: "forwarded_to" in log_a.read_text(), 120, worker_a, log_a)
            time.sleep(3)  # time enough for A's worker to take B's tasks, if it could
            assert counts(b) == (report.queued, 0), "a worker of another database ran B's tasks"
            assert counts(a) == (0, assigned_a)

            log_b = tmp_path / "worker_b.log"
            worker_b = start_worker(site_b, redis_url, log_b)
            try:
                wait_for(lambda: counts(b) == (0, report.queued), 300, worker_b, log_b)
            finally:
                stop(worker_b)
        finally:
            stop(worker_a)
    assert "already_assigned" not in log_a.read_text()


def test_worker_start_takes_over_what_the_previous_release_left_on_the_celery_queue(
    settings: Settings,
    deerid: Deerid,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """F11 (upgrade): the previous release queued tasks on the shared `celery` queue, with a detection id
    and no database; since each database has its own queue no worker ever consumed them, so an upgrade
    left those boxes pending for ever. A starting worker queues its database's pending boxes again on
    its own queue; the legacy list is neither consumed nor purged (it may hold another database's)."""
    import redis

    from deerid.pipeline.ingest import ingest

    card, md = _card(tmp_path)
    ingest(deerid, card, md, reidentify=False)
    pending = _pending_ids(settings)
    assert pending and counts(deerid) == (len(pending), 0)
    # Sent exactly as the previous release's `enqueue` did: no queue, no database id.
    legacy = configure_celery(
        Celery("deerid"), settings.model_copy(update={"broker_url": redis_url}), worker=False
    )
    for detection_id in pending:
        legacy.send_task(REIDENTIFY_DEER, args=[detection_id])
    broker = redis.Redis.from_url(redis_url)
    assert broker.llen("celery") == len(pending)

    log = tmp_path / "worker.log"
    worker = start_worker(settings, redis_url, log)
    try:
        wait_for(lambda: counts(deerid) == (0, len(pending)), 120, worker, log)
    finally:
        stop(worker)
    output = log.read_text()
    assert f"{len(pending)} pending deer boxes queued again" in output, output[-2000:]
    assert f"{len(pending)} tasks of the previous release" in output, output[-2000:]
    assert broker.llen("celery") == len(pending), "the legacy queue was consumed or purged"
    broker.close()


def _pending_ids(settings: Settings) -> list[int]:
    engine = sa.create_engine(settings.database_url or "")
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT id FROM detections WHERE status = 'pending'")).scalars())
    finally:
        engine.dispose()


def test_concurrent_first_database_creation(pg_root: str) -> None:
    """F8: two first-time starts on a fresh data dir both saw the database missing; the loser's CREATE
    DATABASE died with UniqueViolation on pg_database_datname_index (3 of 8 runs)."""
    admin = sa.engine.make_url(pg_root).set(database="postgres").render_as_string(hide_password=False)
    for _ in range(4):
        name = f"race_{uuid.uuid4().hex[:10]}"
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def create(
            name: str = name, barrier: threading.Barrier = barrier, errors: list[BaseException] = errors
        ) -> None:
            barrier.wait()
            try:
                _ensure_database(admin, name)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        engine = sa.create_engine(admin)
        with engine.connect() as conn:
            assert (
                conn.execute(
                    sa.text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name}
                ).scalar()
                == 1
            )
        engine.dispose()


def _postgres_stopped(pgdata: Path, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if embedded_pid(pgdata) is None:
            return True
        time.sleep(0.5)
    return False


def _embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEERID_", "REID_", "DATABASE_URL"))}
    env.update(DEERID_DATA_DIR=str(data_dir), DEVICE="cpu", PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.fixture
def spaced_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with a space, as macOS's default (Application Support); not under pytest's tmp
    (mode 0700 would lock out the `pgserver` user postgres runs as under root)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="deerid-probe-"))
    os.chmod(root, 0o755)
    data = root / "Application Support" / "deerid"
    data.mkdir(parents=True)
    yield data
    pid = embedded_pid(data / "pgdata")
    if pid is not None:
        os.kill(pid, signal.SIGINT)
    shutil.rmtree(root, ignore_errors=True)


def test_sigterm_stops_embedded_postgres_in_a_spaced_data_dir(
    spaced_data_dir: Path, models_dir: Path
) -> None:
    """F23: a data dir with a space never started (`postgres: invalid argument: "space/pgdata"`).
    F9: SIGTERM to `deerid serve` left the embedded postgres running (uvicorn re-raises SIGTERM after
    shutting down, so no exit handler ran). F28: the token from DEERID_API_TOKEN was printed.
    F27: `--port 99999` was an OverflowError traceback."""
    pgdata = spaced_data_dir / "pgdata"
    status = subprocess.run(
        [DEERID, "status"], env=_embedded_env(spaced_data_dir), capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    assert _postgres_stopped(pgdata), "`deerid status` left the server running"

    bad = subprocess.run(
        [DEERID, "serve", "--port", "99999"],
        env=_embedded_env(spaced_data_dir),
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "65535" in bad.stderr, bad.stderr

    port = free_port()
    secret = "env-token-not-for-logs"
    log = spaced_data_dir.parent / "serve.log"
    server = subprocess.Popen(
        [DEERID, "serve", "--port", str(port)],
        env=_embedded_env(spaced_data_dir, DEERID_API_TOKEN=secret),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        assert embedded_pid(pgdata) is not None
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 128 + signal.SIGTERM
    finally:
        if server.poll() is None:
            server.kill()
    output = log.read_text()
    assert secret not in output and "DEERID_API_TOKEN" in output, output
    assert _postgres_stopped(pgdata), "SIGTERM to `deerid serve` left the embedded postgres running"
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []


def test_worker_sigterm_stops_embedded_postgres(
    spaced_data_dir: Path,
    redis_url: str,  # noqa: F811
) -> None:
    """F10: a gracefully stopped `deerid worker` left the embedded postgres running: the handle belonged
    to the pool child that touched the database, and pool children exit through os._exit."""
    pgdata = spaced_data_dir / "pgdata"
    env = _embedded_env(spaced_data_dir, DEERID_BROKER_URL=redis_url)
    log = spaced_data_dir.parent / "worker.log"
    worker = subprocess.Popen(
        [DEERID, "worker", "--concurrency", "1"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: "ready" in log.read_text(), 120, worker, log)
        # A task, so that the pool child connects to the database too (as in the probe).
        queued = subprocess.run([DEERID, "reid", "--all", "--json"], env=env, capture_output=True, text=True)
        assert queued.returncode == 0, queued.stderr
        wait_for(lambda: "succeeded" in log.read_text(), 120, worker, log)
        children = psutil.Process(worker.pid).children()
        assert children, "no pool child"
        worker.send_signal(signal.SIGTERM)  # the main process only, as `docker stop` does
        worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert _postgres_stopped(pgdata), (
        f"postgres still running after the worker stopped:\n{log.read_text()[-2000:]}"
    )


def test_dead_broker_is_one_error_line(settings: Settings, deerid: Deerid, tmp_path: Path) -> None:
    """F12: with DEERID_BROKER_URL on a dead port, ingest ended after ~27 s in a traceback
    ("Retry limit exceeded while trying to reconnect to the Celery result store backend")."""
    card, md = _card(tmp_path)
    env = subprocess_env(settings, DEERID_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    run = subprocess.run(
        [DEERID, "ingest", str(card), "--detections", str(md)], env=env, capture_output=True, text=True
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "broker" in lines[0] and "deerid reid --all" in lines[0], run.stderr
    assert time.monotonic() - started < 60
    pending, assigned = counts(deerid)
    assert pending > 0 and assigned == 0  # the boxes are stored, waiting for `deerid reid --all`


def test_another_users_pgserver_lock_file(tmp_path: Path) -> None:
    """F24: pgserver's machine-wide lock file, made by another user (root) who ran pgserver first, cannot be
    opened: every command was a PermissionError traceback on /tmp/.lockfile. A lock of one's own is used."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    os.chmod(tmp_path, 0o755)
    lock = tmp / ".lockfile"
    lock.touch()
    env = _embedded_env(tmp_path / "data", TMPDIR=str(tmp))
    env.pop("XDG_RUNTIME_DIR", None)
    if os.geteuid() == 0:
        # root writes anything: drop the capabilities that let it, and make the lock another user's.
        os.chown(lock, 65534, -1)
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", DEERID, "status"]
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv is needed to take root's file capabilities away")
    else:
        lock.chmod(0o444)
        cmd = [DEERID, "status"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert (
        ".lockfile'" not in run.stderr
        and "PermissionError: [Errno 13] Permission denied: b'" not in run.stderr
    )
    assert (tmp / f"deerid-pgserver-{os.getuid()}" / ".lockfile").exists(), run.stderr
    if os.geteuid() != 0:
        assert run.returncode == 0, run.stderr
    pid = embedded_pid(tmp_path / "data" / "pgdata")
    if pid is not None:
        os.kill(pid, signal.SIGINT)
