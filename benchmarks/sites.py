"""The candidate query for sites of different sizes in one table: exact scan versus filtered HNSW.

    python benchmarks/sites.py [--sizes 90000,9000,900,90] [--queries 30] [--json]

One fresh database holds one site per size (`--sizes`, buck sightings that are
all assigned). Vectors are clustered like real sightings: 20,000 animals, each a
centre from N(0, I) in 512-d, each sighting centre + 0.35 N(0, I), normalised;
queries are new sightings of random animals. For each site it times the
product's `nearest_sightings(..., site=S)` (medians over `--queries`, each its
own transaction) and its recall@10 against an exact scan of that site, in two
policies, in one run:

- product: scopes of at most EXACT_SEARCH_MAX sightings are read whole through
  the btree `ix_detections_match_scope` and sorted (exact); larger ones go
  through the HNSW index with an iterative scan;
- HNSW only: every scope through the HNSW index (EXACT_SEARCH_MAX = 0), as
  before sites had their own exact path.

It also prints the plan's scan node for each site.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from deerid.db.embedded import start_embedded, stop_embedded  # noqa: E402
from deerid.db.session import create_database, upgrade_schema  # noqa: E402
from deerid.domain.classes import Sex  # noqa: E402
from deerid.store import deer as deer_store  # noqa: E402

ANIMALS = 20_000
NOISE = 0.35
MODEL = "bench-model"
DEER = "00000000-0000-0000-0000-000000000001"


def _literal(vec: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in vec) + "]"


def fill(engine: sa.Engine, sizes: list[int], rng: np.random.Generator) -> np.ndarray:
    """Cameras (one per site), one photo per sighting, and the sightings; returns the animal centres."""
    total = sum(sizes)
    with engine.begin() as c:
        bounds = np.cumsum(sizes)
        for i in range(len(sizes)):
            c.execute(sa.text("INSERT INTO cameras (name, site) VALUES (:n, :n)"), {"n": f"site{i}"})
        cases = " ".join(f"WHEN g <= {b} THEN 'site{i}'" for i, b in enumerate(bounds))
        c.execute(
            sa.text(
                "INSERT INTO images (path, sha256, camera_id, captured_at_source, width, height, file_size) "
                "SELECT '/bench/' || g, lpad(to_hex(g), 64, '0'), "
                f"(SELECT id FROM cameras WHERE name = CASE {cases} END), 'exif', 1920, 1080, 1 "
                "FROM generate_series(1, :n) g"
            ),
            {"n": total},
        )
        c.execute(
            sa.text("INSERT INTO deer (id, name, sex, sighting_count) VALUES (:d, 'Buck', 'buck', 0)"),
            {"d": DEER},
        )
    centres = rng.standard_normal((ANIMALS, 512)).astype(np.float32)
    with engine.begin() as c:  # load first, then build the index once, as `deerid db reindex` does
        c.execute(sa.text("DROP INDEX ix_detections_embedding_hnsw"))
    raw = engine.raw_connection()
    try:
        with (
            raw.cursor() as cur,
            cur.copy(
                "COPY detections (image_id, source_index, bbox_x, bbox_y, bbox_w, bbox_h, detector_conf, "
                "category, sex, status, embedding, model_id, deer_id) FROM STDIN"
            ) as copy,
        ):
            for image_id in range(1, total + 1):
                vec = centres[image_id % ANIMALS] + NOISE * rng.standard_normal(512).astype(np.float32)
                vec /= np.linalg.norm(vec)
                copy.write_row(
                    (
                        image_id,
                        0,
                        0.1,
                        0.1,
                        0.3,
                        0.3,
                        0.9,
                        "animal",
                        "buck",
                        "assigned",
                        _literal(vec),
                        MODEL,
                        DEER,
                    )
                )
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as c:
        c.execute(sa.text("SET maintenance_work_mem = '1GB'"))
        c.execute(
            sa.text(
                "CREATE INDEX ix_detections_embedding_hnsw ON detections"
                " USING hnsw (embedding vector_cosine_ops)"
            )
        )
        c.execute(sa.text("ANALYZE detections"))
    return centres


def measure(engine: sa.Engine, sites: list[str], queries: list[np.ndarray]) -> list[dict]:
    rows = []
    for site in sites:
        times, recalls = [], []
        for q in queries:
            with Session(engine) as s, s.begin():
                started = time.perf_counter()
                got = deer_store.nearest_sightings(
                    s, q, sex=Sex.BUCK, model_id=MODEL, exclude_detection=-1, site=site
                )
                times.append(1000 * (time.perf_counter() - started))
            with engine.begin() as c:
                c.execute(sa.text("SET LOCAL enable_indexscan = off"))  # no HNSW: the exact answer
                exact = (
                    c.execute(
                        sa.text(
                            "SELECT id FROM detections WHERE site = :s "
                            "ORDER BY embedding <=> CAST(:q AS vector) LIMIT 10"
                        ),
                        {"s": site, "q": _literal(q)},
                    )
                    .scalars()
                    .all()
                )
            recalls.append(len(set(exact) & {c.detection_id for c in got[:10]}) / 10)
        with Session(engine) as s, s.begin():
            small = deer_store._scope_is_small(
                s, sex=Sex.BUCK, model_id=MODEL, site=site, most=deer_store.EXACT_SEARCH_MAX
            )
        rows.append(
            {
                "site": site,
                "path": "exact" if small else "hnsw",
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(float(np.percentile(times, 95)), 2),
                "recall_at_10": round(float(np.mean(recalls)), 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="90000,9000,900,90")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rng = np.random.default_rng(0)

    work = Path(tempfile.mkdtemp(prefix="deerid-bench-sites-"))
    root_url = start_embedded(work / "pgdata")
    try:
        engine = sa.create_engine(create_database(root_url, "bench_sites"))
        upgrade_schema(engine)
        centres = fill(engine, sizes, rng)
        queries = []
        for _ in range(args.queries):
            q = centres[rng.integers(ANIMALS)] + NOISE * rng.standard_normal(512).astype(np.float32)
            queries.append(q / np.linalg.norm(q))
        sites = [f"site{i}" for i in range(len(sizes))]
        product = measure(engine, sites, queries)
        deer_store.EXACT_SEARCH_MAX = 0  # every scope through the HNSW index, as before
        deer_store._large_scopes.clear()
        hnsw = measure(engine, sites, queries)
        engine.dispose()
    finally:
        stop_embedded(work / "pgdata")
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"one table of {sum(sizes):,} buck sightings; load average {load:.2f}")
    print("| site's sightings | product: path | p50 ms | recall@10 | HNSW only: p50 ms | recall@10 |")
    print("|---:|---|---:|---:|---:|---:|")
    for size, p, h in zip(sizes, product, hnsw, strict=True):
        print(
            f"| {size:,} | {p['path']} | {p['p50_ms']} | {p['recall_at_10']} | {h['p50_ms']} | "
            f"{h['recall_at_10']} |"
        )
    if args.json:
        print(json.dumps({"sizes": sizes, "product": product, "hnsw_only": hnsw, "load_avg_1min": load}))


if __name__ == "__main__":
    main()
