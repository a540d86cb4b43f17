"""Assignments per second for 1, 2, 4, 8 Celery workers, one site versus many (issue 8, section 2).

    python benchmarks/workers.py [--workers 1,2,4,8] [--sites 8] [--deer-per-site 15]
                                 [--sightings 5] [--json]

What runs: a real redis-server on loopback, the embedded PostgreSQL, and a real
`deerid worker --concurrency N` (prefork, N pool processes) per configuration,
each on a fresh database. The stream is `sites x deer-per-site x sightings`
buck detections with precomputed vectors of the active model's id, so a task
does exactly what it does in production minus the forward pass: the product's
`reidentify_deer` task (skip embedding, HNSW search, lock, decision, store,
profile update, commit). Only bucks, so with one site every task contends for
one lock: the worst case.

Vectors are clustered like real sightings: each animal a centre from N(0, I)
in 512-d, each sighting centre + 0.35 N(0, I), normalised (cosine ~0.89
between two sightings of one animal, ~0 across animals). REID_THRESHOLD=0.75,
so a sighting joins its animal's deer whenever one exists: a race between two
workers that both miss the other's new deer would show as a duplicate profile.

Modes:
- one site: every camera in the default site (all workers share one lock);
- N sites: the same photos with each animal's cameras in one of `--sites`
  sites (workers of different sites never wait on each other).

Per configuration: the tasks are enqueued after the worker has warmed up (a
few tasks of another site, so every pool process has loaded the model), then
the wall time until every detection is assigned gives assignments/s. Checks:
deer == animals (no duplicate profile) and every deer holds one animal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
DEERID = str(Path(sys.executable).parent / "deerid")

from deerid.app import Deerid  # noqa: E402
from deerid.core.config import Settings  # noqa: E402
from deerid.db.embedded import start_embedded, stop_embedded  # noqa: E402
from deerid.db.session import create_database, upgrade_schema  # noqa: E402
from deerid.db.tables import Camera, Deer, Detection, DetectionStatus, Image  # noqa: E402
from deerid.dispatch import REIDENTIFY_DEER  # noqa: E402
from deerid.domain.classes import Sex  # noqa: E402
from deerid.registry.models import active_embedder  # noqa: E402

NOISE = 0.35
THRESHOLD = 0.75
WARMUP_SITE = "warm-up"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed: run scripts/setup.sh")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=work,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("redis-server did not start")


def _unit(vec: np.ndarray) -> np.ndarray:
    return vec / np.linalg.norm(vec)


def fill(app: Deerid, model_id: str, sites: int, per_site: int, sightings: int, split: bool) -> dict:
    """Cameras, photos and pending buck boxes; returns {"stream": ids, "warmup": ids, "animal": {id: a}}."""
    rng = np.random.default_rng(0)
    animals = sites * per_site
    centres = rng.standard_normal((animals, 512)).astype(np.float32)
    factory = app.sessions
    order = [(a, k) for a in range(animals) for k in range(sightings)]
    rng.shuffle(order)  # the stream interleaves animals and sites as a card of many cameras would
    t0 = datetime(2025, 10, 1)
    animal_of: dict[int, int] = {}
    with factory() as s, s.begin():
        camera_ids = {}
        for site in range(sites):
            name = f"site {site}" if split else "default"
            for cam in range(2):
                camera_ids[(site, cam)] = s.execute(
                    sa.insert(Camera).values(name=f"cam {site}-{cam}", site=name).returning(Camera.id)
                ).scalar_one()
        warm_cam = s.execute(
            sa.insert(Camera).values(name="warm-up cam", site=WARMUP_SITE).returning(Camera.id)
        ).scalar_one()

        def box(image_index: int, camera_id: int, vec: np.ndarray, status: DetectionStatus) -> int:
            image_id = s.execute(
                sa.insert(Image)
                .values(
                    path=f"/bench/{image_index}.jpg",
                    sha256=f"{image_index:064x}",
                    camera_id=camera_id,
                    captured_at=t0 + timedelta(hours=image_index),  # hours apart: no shared events
                    captured_at_source="exif_datetime_original",
                    width=1920,
                    height=1080,
                    file_size=1,
                )
                .returning(Image.id)
            ).scalar_one()
            return s.execute(
                sa.insert(Detection)
                .values(
                    image_id=image_id,
                    source_index=0,
                    bbox_x=0.1,
                    bbox_y=0.1,
                    bbox_w=0.3,
                    bbox_h=0.3,
                    detector_conf=0.9,
                    category="animal",
                    class_label="mature",
                    sex=Sex.BUCK,
                    status=status,
                    embedding=vec,
                    model_id=model_id,
                )
                .returning(Detection.id)
            ).scalar_one()

        stream = []
        for i, (animal, _) in enumerate(order):
            vec = _unit(centres[animal] + NOISE * rng.standard_normal(512).astype(np.float32))
            # Held back as failed until the timed run: a worker queues every pending box at start.
            det_id = box(i, camera_ids[(animal % sites, i % 2)], vec, DetectionStatus.FAILED)
            animal_of[det_id] = animal
            stream.append(det_id)
        warmup = [
            box(
                len(order) + j,
                warm_cam,
                _unit(rng.standard_normal(512).astype(np.float32)),
                DetectionStatus.PENDING,
            )
            for j in range(32)
        ]
    return {"stream": stream, "warmup": warmup, "animal": animal_of, "animals": animals}


def _assigned(app: Deerid, ids: list[int]) -> int:
    with app.sessions() as s:
        return s.execute(
            sa.select(sa.func.count(Detection.id)).where(
                Detection.id.in_(ids), Detection.deer_id.is_not(None)
            )
        ).scalar_one()


def _wait_assigned(app: Deerid, ids: list[int], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _assigned(app, ids) == len(ids):
            return time.perf_counter()
        time.sleep(0.05)
    raise SystemExit(f"only {_assigned(app, ids)} of {len(ids)} assigned after {timeout:.0f} s")


class LockSampler:
    """Samples pg_stat_activity every 20 ms: how many of the database's backends are running a
    statement, and how many of those wait on an advisory lock (the match lock)."""

    def __init__(self, url: str) -> None:
        # Autocommit: PostgreSQL reads pg_stat_activity once per transaction, so samples taken in
        # one transaction all repeat the first (which made every earlier run read ~0).
        self.engine = sa.create_engine(url, pool_size=1, isolation_level="AUTOCOMMIT")
        self.database = sa.engine.make_url(url).database
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = sa.text(
            "SELECT count(*) FILTER (WHERE state = 'active'),"
            " count(*) FILTER (WHERE state = 'active' AND wait_event = 'advisory')"
            " FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as conn:
            while not self._stop.wait(0.02):
                active, waiting = conn.execute(query, {"db": self.database}).one()
                self.samples.append((active, waiting))

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"active_backends": 0.0, "waiting_on_lock": 0.0}
        n = len(self.samples)
        return {
            "active_backends": round(sum(a for a, _ in self.samples) / n, 2),
            "waiting_on_lock": round(sum(w for _, w in self.samples) / n, 2),
        }


def run_one(
    root_url: str,
    base: Settings,
    broker: str,
    model_id: str,
    workers: int,
    args: argparse.Namespace,
    split: bool,
) -> dict:
    url = create_database(root_url, f"bench_{uuid.uuid4().hex[:10]}")
    engine = sa.create_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    settings = base.model_copy(update={"database_url": url, "broker_url": broker})
    with Deerid(settings) as app:
        queue = app.queue
        assert queue is not None  # the settings name a broker
        plan = fill(app, model_id, args.sites, args.deer_per_site, args.sightings, split)
        env = {
            **os.environ,
            "DEERID_DATA_DIR": str(settings.data_dir),
            "DATABASE_URL": url,
            "DEERID_BROKER_URL": broker,
            "REID_THRESHOLD": str(THRESHOLD),
            "DEERID_BACKBONE": settings.backbone,
        }
        log = open(settings.data_dir / f"worker-{workers}-{int(split)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [DEERID, "worker", f"--concurrency={workers}", "--loglevel=warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            for det_id in plan["warmup"]:
                queue.send(REIDENTIFY_DEER, det_id)
            _wait_assigned(app, plan["warmup"], timeout=300)
            with app.transaction() as s:
                s.execute(
                    sa.update(Detection)
                    .where(Detection.id.in_(plan["stream"]))
                    .values(status=DetectionStatus.PENDING)
                )
            with LockSampler(url) as sampler:
                started = time.perf_counter()
                for det_id in plan["stream"]:
                    queue.send(REIDENTIFY_DEER, det_id)
                finished = _wait_assigned(app, plan["stream"], timeout=1800)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
        seconds = finished - started
        with app.sessions() as s:
            rows = s.execute(
                sa.select(Detection.id, Detection.deer_id).where(Detection.id.in_(plan["stream"]))
            ).all()
            deer = s.execute(
                sa.select(sa.func.count(Deer.id)).where(Deer.id.in_({r.deer_id for r in rows}))
            ).scalar_one()
        animals_per_deer: dict[uuid.UUID, set[int]] = {}
        deer_per_animal: dict[int, set[uuid.UUID]] = {}
        for det_id, deer_id in rows:
            animals_per_deer.setdefault(deer_id, set()).add(plan["animal"][det_id])
            deer_per_animal.setdefault(plan["animal"][det_id], set()).add(deer_id)
    return {
        "mode": f"{args.sites} sites" if split else "one site",
        "workers": workers,
        "assignments": len(plan["stream"]),
        "seconds": round(seconds, 2),
        "per_second": round(len(plan["stream"]) / seconds, 1),
        "animals": plan["animals"],
        "deer": deer,
        "duplicate_profiles": sum(len(d) - 1 for d in deer_per_animal.values()),
        "mixed_profiles": sum(1 for a in animals_per_deer.values() if len(a) > 1),
        # Mean over the run of the worker backends running a statement / waiting on the match lock.
        **sampler.summary(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--sites", type=int, default=8)
    parser.add_argument("--deer-per-site", type=int, default=15)
    parser.add_argument("--sightings", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",") if w]

    work = Path(tempfile.mkdtemp(prefix="deerid-bench-workers-"))
    redis, broker = start_redis(work)
    root_url = start_embedded(work / "pgdata")
    results: list[dict] = []
    try:
        base = Settings(data_dir=work / "data", database_url=root_url, reid_threshold=THRESHOLD)
        base.data_dir.mkdir(parents=True)
        # Built once here so the worker processes find any derived model files (an ONNX export) ready.
        model_id = active_embedder(base).model_id
        for workers in counts:
            for split in (False, True):  # interleaved, so load on the machine hits both modes alike
                row = run_one(root_url, base, broker, model_id, workers, args, split)
                results.append(row)
                print(
                    f"{row['mode']:>9}  workers {workers}: {row['per_second']:6.1f} assignments/s "
                    f"({row['assignments']} in {row['seconds']} s), deer {row['deer']} for "
                    f"{row['animals']} animals, duplicates {row['duplicate_profiles']}, mixed "
                    f"{row['mixed_profiles']}, waiting on the lock {row['waiting_on_lock']} of "
                    f"{row['active_backends']} active, load {row['load_avg_1min']}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        stop_embedded(work / "pgdata")
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    base_rate = {r["mode"]: r["per_second"] for r in results if r["workers"] == counts[0]}
    for r in results:
        r["speed_up"] = round(r["per_second"] / base_rate[r["mode"]], 2)
    print(
        "| mode | workers | assignments/s | × 1 worker | backends waiting on the match lock "
        "(of active) | deer / animals | duplicates | load |"
    )
    print("|---|---:|---:|---:|---|---|---:|---:|")
    for r in results:
        print(
            f"| {r['mode']} | {r['workers']} | {r['per_second']} | {r['speed_up']} | "
            f"{r['waiting_on_lock']} of {r['active_backends']} | {r['deer']} / {r['animals']} | "
            f"{r['duplicate_profiles']} | {r['load_avg_1min']} |"
        )
    if args.json:
        print(json.dumps({"cpu_cores": os.cpu_count(), "results": results}))


if __name__ == "__main__":
    main()
