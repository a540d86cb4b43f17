"""Ingest speed on the real feeder set, and match+store latency as the gallery grows.

    python benchmarks/ingest.py [--runs 3] [--backbones lite0,resnet50] [--gallery 10000] [--json]

Each run ingests the 47 feeder photos (107 boxes, 65 deer boxes big enough to
identify) into a fresh database: hashing, EXIF, storing, decoding, cropping,
embedding, matching and storing the results. The model is loaded once per
backbone before the runs (a worker keeps it loaded); its load time is
reported apart. ResNet50 has no weights offline here: it is timed with a
seeded random state dict written by this script, which costs the same to run
as the published weights. Figures are medians over the runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import torch

from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.embedded import start_embedded, stop_embedded
from deerid.db.session import create_database, upgrade_schema
from deerid.db.tables import Assignment, Deer, Detection, DetectionStatus, Image
from deerid.domain.classes import Sex
from deerid.embed.embedder import get_embedder
from deerid.pipeline.ingest import ingest
from deerid.reid.service import assign_detection

SHARED = Path(__file__).resolve().parents[2] / "shared"
FEEDER = SHARED / "data" / "trailcam" / "feeder"
FEEDER_JSON = SHARED / "data" / "trailcam" / "feeder.detections.json"


def new_database(root_url: str) -> str:
    url = create_database(root_url, f"bench_{uuid.uuid4().hex[:10]}")
    engine = sa.create_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    return url


def random_resnet50_weights(directory: Path) -> tuple[Path, str]:
    from deerid.embed.backbones.resnet import ResNet50

    torch.manual_seed(0)
    path = directory / "resnet50-random.pth"
    torch.save(ResNet50().state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def bench_backbone(root_url: str, base: Settings, runs: int) -> dict[str, object]:
    started = time.perf_counter()
    embedder = get_embedder(base)
    load_seconds = time.perf_counter() - started
    reports = []
    for _ in range(runs):
        settings = base.model_copy(update={"database_url": new_database(root_url)})
        with Deerid(settings) as app:
            # Loaded before the ingest, as the old process-wide cache had it: the ingest's clock leaves
            # the load out (that is `model_load_s`).
            app.embedder()
            reports.append(ingest(app, FEEDER, FEEDER_JSON))
    seconds = statistics.median(r.seconds for r in reports)
    reid = reports[0].reidentified
    boxes = reports[0].detections
    return {
        "backbone": base.backbone,
        "model_id": embedder.model_id,
        "input_size": embedder.input_size,
        "model_load_s": round(load_seconds, 2),
        "runs": runs,
        "ingest_s_median": round(seconds, 2),
        "ingest_s_all": [round(r.seconds, 2) for r in reports],
        "detections": boxes,
        "reidentified": reid,
        "detections_per_s": round(boxes / seconds, 1),
        "reidentified_per_s": round(reid / seconds, 1),
        "store_s_median": round(statistics.median(r.store_seconds for r in reports), 2),
        "embed_ms_per_crop": round(1000 * statistics.median(r.embed_seconds for r in reports) / reid, 1),
        "match_store_ms_per_detection": round(
            1000 * statistics.median(r.match_seconds for r in reports) / reid, 2
        ),
        "new_deer": reports[0].new_deer,
    }


def image_rows(count: int, start: int = 0) -> list[dict[str, object]]:
    """Rows for `count` photos a minute apart (unique paths and hashes), for bulk inserts."""
    t0 = datetime(2024, 1, 1)
    return [
        {
            "path": f"/bench/{i}.jpg",
            "sha256": f"{i:064x}",
            "captured_at": t0 + timedelta(minutes=i),
            "captured_at_source": "exif_datetime_original",
            "width": 1920,
            "height": 1080,
            "file_size": 1,
        }
        for i in range(start, start + count)
    ]


def _buck_row(image_id: int, vec: np.ndarray, model: str, **assigned: object) -> dict[str, object]:
    return {
        "image_id": image_id,
        "source_index": 0,
        "bbox_x": 0.1,
        "bbox_y": 0.1,
        "bbox_w": 0.3,
        "bbox_h": 0.3,
        "detector_conf": 0.9,
        "category": "animal",
        "sex": Sex.BUCK,
        "status": DetectionStatus.ASSIGNED if assigned else DetectionStatus.PENDING,
        "embedding": vec / np.linalg.norm(vec),
        "model_id": model,
        **assigned,
    }


def bench_gallery(root_url: str, base: Settings, size: int, queries: int = 100) -> dict[str, object]:
    """match+store latency with `size` stored buck sightings (5 per deer), HNSW index in use."""
    settings = base.model_copy(update={"database_url": new_database(root_url)})
    with Deerid(settings) as app:
        factory = app.sessions
        rng = np.random.default_rng(0)
        dim, per_deer = 512, 5
        centres = rng.standard_normal((size // per_deer, dim)).astype(np.float32)
        model = "bench-model"
        fill_started = time.perf_counter()
        with factory() as s, s.begin():
            image_ids = list(
                s.execute(
                    sa.insert(Image).returning(Image.id),
                    image_rows(size + 2 * queries),
                ).scalars()
            )
            deer_ids = [uuid.uuid4() for _ in centres]
            s.execute(
                sa.insert(Deer),
                [
                    {"id": d, "name": f"Buck b{i}", "sex": Sex.BUCK, "sighting_count": per_deer}
                    for i, d in enumerate(deer_ids)
                ],
            )
            rows = []
            for i in range(size):
                vec = centres[i // per_deer] + 0.35 * rng.standard_normal(dim).astype(np.float32)
                rows.append(
                    _buck_row(
                        image_ids[i],
                        vec,
                        model,
                        deer_id=deer_ids[i // per_deer],
                        assignment=Assignment.MATCHED,
                    )
                )
            for start in range(0, size, 2000):
                s.execute(sa.insert(Detection), rows[start : start + 2000])
        with factory() as s, s.begin():
            s.execute(sa.text("ANALYZE detections"))  # what autovacuum does after a bulk load
        fill_seconds = time.perf_counter() - fill_started

        # Half the queries are new sightings of stored deer, half are unseen animals.
        query_ids = []
        with factory() as s, s.begin():
            for q in range(queries):
                if q % 2 == 0:
                    vec = centres[rng.integers(len(centres))] + 0.35 * rng.standard_normal(dim).astype(
                        np.float32
                    )
                else:
                    vec = rng.standard_normal(dim).astype(np.float32)
                query_ids.append(
                    s.execute(
                        sa.insert(Detection).returning(Detection.id),
                        _buck_row(image_ids[size + q], vec, model),
                    ).scalar_one()
                )
        with factory() as s, s.begin():
            from deerid.store.deer import _tune_hnsw

            _tune_hnsw(s, 64)
            plan = "\n".join(
                s.execute(
                    sa.text(
                        "EXPLAIN SELECT id FROM detections "
                        "WHERE sex = 'buck' AND model_id = :m AND deer_id IS NOT NULL "
                        "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 64"
                    ),
                    {"m": model, "q": "[" + ",".join("0.04" for _ in range(dim)) + "]"},
                ).scalars()
            )
        timings = []
        outcomes = []
        for det_id in query_ids:
            started = time.perf_counter()
            outcomes.append(assign_detection(factory, det_id, threshold=0.85, model_id=model).outcome.value)
            timings.append(1000 * (time.perf_counter() - started))
    return {
        "gallery_sightings": size,
        "gallery_deer": len(centres),
        "fill_s": round(fill_seconds, 1),
        "queries": queries,
        "match_store_ms_median": round(statistics.median(timings), 2),
        "match_store_ms_p95": round(float(np.percentile(timings, 95)), 2),
        "matched": outcomes.count("matched"),
        "new_deer": outcomes.count("new_deer"),
        "uses_hnsw_index": "ix_detections_embedding_hnsw" in plan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--backbones", default="", help="comma-separated; default: the default backbone and resnet50"
    )
    parser.add_argument(
        "--gallery", type=int, default=10000, help="stored sightings for the latency test (0: skip)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="deerid-bench-"))
    root_url = start_embedded(work / "pgdata")
    default = Settings(data_dir=work / "data", device="cpu")
    backbones = [b for b in args.backbones.split(",") if b] or [default.backbone, "resnet50"]
    results: dict[str, object] = {"torch_threads": torch.get_num_threads(), "backbones": []}
    for name in backbones:
        settings = default.model_copy(update={"backbone": name})
        if name == "resnet50" and settings.weights is None:
            path, digest = random_resnet50_weights(work)
            settings = settings.model_copy(
                update={"weights": path, "weights_sha256": digest, "allow_download": False}
            )
        row = bench_backbone(root_url, settings, args.runs)
        results["backbones"].append(row)  # type: ignore[union-attr]
        print(
            f"{name:>20}: {row['detections_per_s']} detections/s ({row['reidentified_per_s']} identified/s), "
            f"ingest {row['ingest_s_median']} s median of {row['ingest_s_all']}, "
            f"embed {row['embed_ms_per_crop']} ms/crop, "
            f"match+store {row['match_store_ms_per_detection']} ms/detection, "
            f"model load {row['model_load_s']} s",
            file=sys.stderr,
        )
    if args.gallery:
        gallery = bench_gallery(root_url, default, args.gallery)
        results["gallery"] = gallery
        print(
            f"{'gallery':>20}: {gallery['gallery_sightings']} sightings, match+store "
            f"{gallery['match_store_ms_median']} ms median, {gallery['match_store_ms_p95']} ms p95, "
            f"HNSW index used: {gallery['uses_hnsw_index']}",
            file=sys.stderr,
        )
    stop_embedded(work / "pgdata")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
