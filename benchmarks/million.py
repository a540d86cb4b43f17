"""The candidate query at 1,000,000 stored sightings: HNSW build, latency, recall.

    python benchmarks/million.py [--sightings 1000000] [--queries 300] [--few-queries 100] [--inserts 2000]
                                 [--ef-search 40,64,128,200,400] [--maintenance-work-mem 4GB]
                                 [--parallel-workers 1] [--json]

A fresh embedded database (as `deerid` starts it) gets `--sightings` assigned
sightings of one model, loaded with binary COPY, then the product's HNSW index
(`ix_detections_embedding_hnsw`, recreated from its own `pg_get_indexdef`, so
exactly what migration 0001 and models.py define: hnsw, vector_cosine_ops,
pgvector's defaults m=16, ef_construction=64) is built on the loaded rows.

Vectors are clustered as real sightings are (as benchmarks/ingest.py and
profile_updates.py build them): each deer has a centre drawn from N(0, I) in 512
dimensions and each sighting is centre + 0.35 * N(0, I), L2-normalised in
float32 (cosine ~0.94 to the centre, ~0.89 between two sightings of one deer,
~0 across deer). Sightings per deer are a spread: 60 % of deer have 1-10, 30 %
10-100 and 10 % 100-3,000 (log-uniform within each band), about 100 on
average, so 1M sightings are about 10,000 deer, a few hundred of them with
over 1,000 sightings. Each deer is a doe (40 %), buck (30 %), fawn (15 %) or of
unknown sex (15 %), and its sightings carry that partition. Sightings are
stored in random order (deer interleave over time), 10 per photo.
Vectors are generated in chunks from per-chunk seeds, so exact search
regenerates them instead of keeping 1M x 512 floats in memory.

Measured:
- load (COPY) time, then the per-row cost of `--inserts` more rows (one
  transaction, pipelined INSERTs) without the HNSW index, and again with it:
  the difference is what the index adds to every stored sighting;
- HNSW build time and index size, with the maintenance_work_mem and
  max_parallel_maintenance_workers used;
- latency of the product's candidate query: `deer.nearest_sightings` itself
  (with its `_tune_hnsw` settings, the sex and model filters, limit
  NEIGHBOURS) in a transaction, per call, for `--queries` queries after a
  warm-up: 80 % new sightings of stored deer (a deer picked in proportion to
  its sightings, as photos come), 20 % of unseen deer;
- recall@10 of those results against exact search: numpy brute force over the
  same rows with the same filters (float32 cosine; a result tied with the
  exact 10th within 1e-6 counts as found), cross-checked against PostgreSQL
  with index scans off on a few queries. Also, closer to what matching needs:
  same-animal recall (of the exact top 10 with cosine >= 0.5, i.e. sightings
  of the query's own deer, the share found in the top 10), whether the
  nearest deer is the exact nearest deer, and all three by the size of the
  query's deer; and the same for `--few-queries` more new sightings of deer
  with at most 10 sightings (a deer picked uniformly among those), the deer
  an HNSW walk loses first;
- the same for other `hnsw.ef_search` values (set after the product's own
  settings, nothing else changed), taking turns with the product's query by
  query so that load and cache warmth hit them alike;
- `EXPLAIN (ANALYZE, BUFFERS)` of the product's statement, one query per sex,
  in a transaction given the same settings the product's call made.
A sex partition of at most `deer.EXACT_SEARCH_MAX` sightings is searched
exactly by the product (no HNSW), so small runs measure that path instead.

The database lives in a temporary folder under /tmp and is removed at the end.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from deerid.db.embedded import start_embedded, stop_embedded
from deerid.db.session import create_database, upgrade_schema
from deerid.db.tables import EMBEDDING_DIM, Assignment, DetectionStatus
from deerid.domain.classes import Sex
from deerid.store import deer as deer_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import image_rows

MODEL = "bench-model"
INSERT_MODEL = "bench-insert"  # rows of the insert timing: never candidates, so not in the ground truth
NOISE = 0.35
SEXES: tuple[tuple[Sex, float], ...] = (
    (Sex.DOE, 0.40),
    (Sex.BUCK, 0.30),
    (Sex.FAWN, 0.15),
    (Sex.UNKNOWN, 0.15),
)
PER_IMAGE = 10
CHUNK = 20_000  # rows generated (and COPYed) at a time: 40 MB of float32
INDEX = "ix_detections_embedding_hnsw"
SAME = 0.5  # an exact neighbour this close is a sighting of the query's own deer (others are ~0)
TIE = 1e-6  # float32 vs PostgreSQL's accumulation order: closer than this is a tie
UNSEEN_SHARE = 0.2
FEW = 10  # --few-queries: deer seen at most this often, the ones HNSW loses first
SIZE_BANDS = ((1, 10), (11, 100), (101, 3000))  # sightings of the query's deer, for the breakdown
SEED = 0

DETECTION_COLUMNS = (
    "id",
    "image_id",
    "source_index",
    "bbox_x",
    "bbox_y",
    "bbox_w",
    "bbox_h",
    "detector_conf",
    "category",
    "sex",
    "status",
    "embedding",
    "model_id",
    "deer_id",
    "similarity",
    "assignment",
)
# Binary COPY runs each column's receive function: an enum's is its label's bytes (so "text"
# works) and pgvector's is int16 dim, int16 unused, float4 big-endian (so raw "bytea" works).
DETECTION_TYPES = (
    ["int8", "int8", "int4"]
    + ["float8"] * 5
    + ["text", "text", "text", "bytea", "text", "uuid", "float8", "text"]
)
_VECTOR_HEADER = struct.pack(">HH", EMBEDDING_DIM, 0)


@dataclass
class Gallery:
    """Who every stored sighting belongs to; the vectors themselves are regenerated per chunk."""

    centres: np.ndarray  # (deer, 512) float32
    deer_sex: np.ndarray  # (deer,) index into SEXES
    deer_ids: list[uuid.UUID]
    counts: np.ndarray  # (deer,) sightings per deer
    owner: np.ndarray  # (sightings,) deer index of each row, in storage order

    @property
    def size(self) -> int:
        return len(self.owner)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 unit vectors) for each CHUNK rows, the same on every call."""
        for number, start in enumerate(range(0, self.size, CHUNK)):
            owner = self.owner[start : start + CHUNK]
            rng = np.random.default_rng([SEED, 1, number])
            vecs = self.centres[owner] + NOISE * rng.standard_normal((len(owner), EMBEDDING_DIM), np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            yield start, vecs


def sightings_per_deer(rng: np.random.Generator, total: int) -> np.ndarray:
    """Deer sizes summing to `total`: 60 % 1-10, 30 % 10-100, 10 % 100-3,000 sightings."""
    counts: list[int] = []
    left = total
    while left > 0:
        band = rng.random()
        low, high = (1, 10) if band < 0.6 else (10, 100) if band < 0.9 else (100, 3000)
        n = round(np.exp(rng.uniform(np.log(low), np.log(high))))
        counts.append(min(max(n, 1), left))
        left -= counts[-1]
    return np.asarray(counts, dtype=np.int64)


def make_gallery(size: int) -> Gallery:
    rng = np.random.default_rng([SEED, 0])
    counts = sightings_per_deer(rng, size)
    centres = rng.standard_normal((len(counts), EMBEDDING_DIM), np.float32)
    deer_sex = rng.choice(len(SEXES), size=len(counts), p=[p for _, p in SEXES])
    owner = rng.permutation(np.repeat(np.arange(len(counts), dtype=np.int32), counts))
    deer_ids = [uuid.UUID(bytes=rng.bytes(16), version=4) for _ in counts]
    return Gallery(centres, deer_sex, deer_ids, counts, owner)


def make_queries(
    gallery: Gallery, n: int, seed: int = 2, few: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, sex index, deer index or -1 for an unseen deer) of `n` new sightings.

    `few`: only of stored deer with at most FEW sightings, picked uniformly among them."""
    rng = np.random.default_rng([SEED, seed])
    small = np.flatnonzero(gallery.counts <= FEW)
    vecs = np.empty((n, EMBEDDING_DIM), np.float32)
    sexes = np.empty(n, np.int64)
    deer = np.full(n, -1, np.int64)
    for q in range(n):
        if few:
            deer[q] = small[rng.integers(len(small))]
            centre, sexes[q] = gallery.centres[deer[q]], gallery.deer_sex[deer[q]]
        elif rng.random() < UNSEEN_SHARE:
            centre = rng.standard_normal(EMBEDDING_DIM, np.float32)
            sexes[q] = rng.choice(len(SEXES), p=[p for _, p in SEXES])
        else:
            deer[q] = gallery.owner[rng.integers(gallery.size)]  # in proportion to its sightings
            centre, sexes[q] = gallery.centres[deer[q]], gallery.deer_sex[deer[q]]
        vec = centre + NOISE * rng.standard_normal(EMBEDDING_DIM, np.float32)
        vecs[q] = vec / np.linalg.norm(vec)
    return vecs, sexes, deer


def exact_top(
    gallery: Gallery, queries: np.ndarray, sexes: np.ndarray, k: int = 10
) -> tuple[np.ndarray, ...]:
    """Brute-force top-k (detection ids, similarities, deer index) per query, same sex only."""
    best_sim = np.full((len(queries), k), -np.inf, np.float32)
    best_row = np.zeros((len(queries), k), np.int64)
    row_sex_all = gallery.deer_sex[gallery.owner]
    for start, vecs in gallery.chunks():
        sims = queries @ vecs.T
        sims[sexes[:, None] != row_sex_all[None, start : start + len(vecs)]] = -np.inf
        cand_sim = np.concatenate([best_sim, sims], axis=1)
        cand_row = np.concatenate(
            [best_row, np.broadcast_to(np.arange(start, start + len(vecs)), sims.shape)], 1
        )
        keep = np.argpartition(-cand_sim, k - 1, axis=1)[:, :k]
        best_sim = np.take_along_axis(cand_sim, keep, 1)
        best_row = np.take_along_axis(cand_row, keep, 1)
    order = np.argsort(-best_sim, axis=1)
    best_sim = np.take_along_axis(best_sim, order, 1)
    best_row = np.take_along_axis(best_row, order, 1)
    return best_row + 1, best_sim, gallery.owner[best_row]  # detection id = row + 1


def _psycopg_url(url: str) -> str:
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load(conn: psycopg.Connection, gallery: Gallery) -> None:
    """Images, deer and detections by binary COPY (ids given, sequences moved past them)."""
    images = (gallery.size + PER_IMAGE - 1) // PER_IMAGE
    columns = list(image_rows(1)[0])
    with conn.cursor() as cur:
        with cur.copy(f"COPY images (id, {', '.join(columns)}) FROM STDIN") as copy:
            for start in range(0, images, CHUNK):
                for i, row in enumerate(image_rows(min(CHUNK, images - start), start)):
                    copy.write_row([start + i + 1, *row.values()])
        # The profile vector the product keeps on each deer: the normalised mean of its sightings.
        sums = np.zeros((len(gallery.counts), EMBEDDING_DIM), np.float64)
        for start, vecs in gallery.chunks():
            np.add.at(sums, gallery.owner[start : start + len(vecs)], vecs)
        profiles = (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(">f4")
        with cur.copy(
            "COPY deer (id, name, sex, model_id, sighting_count, feature_vector) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "text", "text", "text", "int4", "bytea"])
            for i, deer_id in enumerate(gallery.deer_ids):
                sex = SEXES[gallery.deer_sex[i]][0]
                copy.write_row(
                    [
                        deer_id,
                        f"{sex.value} {i}",
                        sex.value,
                        MODEL,
                        int(gallery.counts[i]),
                        _VECTOR_HEADER + profiles[i].tobytes(),
                    ]
                )
        sex_names = [s.value for s, _ in SEXES]
        copy_sql = f"COPY detections ({', '.join(DETECTION_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with cur.copy(copy_sql) as copy:
            copy.set_types(list(DETECTION_TYPES))
            for start, vecs in gallery.chunks():
                big_endian = vecs.astype(">f4")
                for j in range(len(vecs)):
                    row = start + j
                    deer = int(gallery.owner[row])
                    copy.write_row(
                        (
                            row + 1,
                            row // PER_IMAGE + 1,
                            row % PER_IMAGE,
                            0.1,
                            0.1,
                            0.3,
                            0.3,
                            0.9,
                            "animal",
                            sex_names[gallery.deer_sex[deer]],
                            DetectionStatus.ASSIGNED.value,
                            _VECTOR_HEADER + big_endian[j].tobytes(),
                            MODEL,
                            gallery.deer_ids[deer],
                            0.9,
                            Assignment.MATCHED.value,
                        )
                    )
        cur.execute("SELECT setval('images_id_seq', %s)", (images,))
        cur.execute("SELECT setval('detections_id_seq', %s)", (gallery.size,))
    conn.commit()


def time_inserts(conn: psycopg.Connection, gallery: Gallery, n: int, first_image: int, seed: int) -> float:
    """ms per row for `n` new sightings of stored deer (own model id), one transaction, pipelined."""
    rng = np.random.default_rng([SEED, 3, seed])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO images (path, sha256, captured_at, captured_at_source, width, height, file_size) "
            "VALUES (%(path)s, %(sha256)s, %(captured_at)s, %(captured_at_source)s, %(width)s, %(height)s, "
            "%(file_size)s)",
            image_rows(n, first_image),
        )
        image_ids = [
            r[0] for r in cur.execute("SELECT id FROM images ORDER BY id DESC LIMIT %s", (n,)).fetchall()
        ]
    conn.commit()
    rows = []
    for image_id in image_ids:
        deer = int(gallery.owner[rng.integers(gallery.size)])
        vec = gallery.centres[deer] + NOISE * rng.standard_normal(EMBEDDING_DIM, np.float32)
        text = "[" + ",".join(f"{v:.7g}" for v in vec / np.linalg.norm(vec)) + "]"
        sex = SEXES[gallery.deer_sex[deer]][0].value
        rows.append((image_id, sex, text, INSERT_MODEL, gallery.deer_ids[deer]))
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO detections (image_id, source_index, bbox_x, bbox_y, bbox_w, bbox_h, detector_conf, "
            "category, sex, status, embedding, model_id, deer_id, similarity, assignment) "
            "VALUES (%s, 0, 0.1, 0.1, 0.3, 0.3, 0.9, 'animal', %s, 'assigned', %s::vector, %s, %s, 0.9, "
            "'matched')",
            rows,
        )
    conn.commit()
    return 1000 * (time.perf_counter() - started) / n


def build_index(
    conn: psycopg.Connection, url: str, indexdef: str, work_mem: str, workers: int
) -> dict[str, Any]:
    """CREATE INDEX as given, timed, watched from a second connection (workers seen, progress)."""
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    done = threading.Event()
    seen_workers = [0]

    def watch() -> None:
        with psycopg.connect(url, autocommit=True) as watcher:
            last = 0.0
            while not done.wait(5):
                seen_workers[0] = max(
                    seen_workers[0],
                    watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker'"
                    ).fetchone()[0],
                )
                if time.monotonic() - last > 120:
                    last = time.monotonic()
                    row = watcher.execute(
                        "SELECT phase, tuples_done, blocks_done, blocks_total "
                        "FROM pg_stat_progress_create_index"
                    ).fetchone()
                    _log(f"building: {row}, parallel workers seen {seen_workers[0]}")

    watcher = threading.Thread(target=watch, daemon=True)
    with conn.cursor() as cur:
        cur.execute(f"SET maintenance_work_mem = '{work_mem}'")
        cur.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
        watcher.start()
        started = time.perf_counter()
        try:
            cur.execute(indexdef)
            conn.commit()
        finally:
            done.set()
        seconds = time.perf_counter() - started
        watcher.join()
        # pg_table_size counts TOAST: a 512-d vector (2,056 bytes) is stored out of line.
        cur.execute("SELECT pg_relation_size(%s::regclass), pg_table_size('detections')", (INDEX,))
        index_bytes, table_bytes = cur.fetchone()
    return {
        "build_s": round(seconds, 1),
        "index_bytes": index_bytes,
        "table_bytes": table_bytes,
        "parallel_workers_seen": seen_workers[0],
        "notices": notices,
    }


def _site() -> dict[str, str]:
    """Matching within the one default site, where the product has sites (migration 0009)."""
    params = inspect.signature(deer_store.nearest_sightings).parameters
    return {"site": "default"} if "site" in params else {}


def product_query(
    factory: sessionmaker[Session], vec: np.ndarray, sex: Sex
) -> tuple[float, list[deer_store.Candidate]]:
    """One call of the product's candidate query, in its own transaction: (ms, candidates)."""
    with factory() as s, s.begin():
        started = time.perf_counter()
        found = deer_store.nearest_sightings(s, vec, sex=sex, model_id=MODEL, exclude_detection=0, **_site())
        return 1000 * (time.perf_counter() - started), found


def with_ef_search(ef: int | None) -> Callable[[Session, int], None]:
    """The product's `_tune_hnsw`, then hnsw.ef_search = ef (None: the product's own value)."""
    original = _PRODUCT_TUNE

    def tune(session: Session, limit: int) -> None:
        original(session, limit)
        if ef is not None:
            session.execute(sa.text("SELECT set_config('hnsw.ef_search', :v, true)"), {"v": str(ef)})

    return tune


_PRODUCT_TUNE = deer_store._tune_hnsw


def run_queries(
    factory: sessionmaker[Session],
    queries: np.ndarray,
    sexes: np.ndarray,
    deer_size: np.ndarray,
    exact: tuple[np.ndarray, ...],
    settings: list[int | None],
) -> list[dict[str, Any]]:
    """Latency and recall of `nearest_sightings` for each hnsw.ef_search in `settings` (None: the
    product's). Settings take turns query by query, so machine noise and cache warmth hit them alike."""
    exact_ids, exact_sims, exact_deer = exact
    timings: dict[int | None, list[float]] = {ef: [] for ef in settings}
    recalls: dict[int | None, list[float]] = {ef: [] for ef in settings}
    animal: dict[int | None, list[tuple[int, int]]] = {ef: [] for ef in settings}
    nearest: dict[int | None, list[bool]] = {ef: [] for ef in settings}
    best_gap: dict[int | None, list[float]] = {ef: [] for ef in settings}
    short = dict.fromkeys(settings, 0)
    try:
        for q, vec in enumerate(queries):
            wanted = set(exact_ids[q].tolist())
            tenth = float(exact_sims[q, -1])
            same_animal = {int(i) for i, sim in zip(exact_ids[q], exact_sims[q], strict=True) if sim >= SAME}
            for ef in settings[q % len(settings) :] + settings[: q % len(settings)]:
                deer_store._tune_hnsw = with_ef_search(ef)
                ms, found = product_query(factory, vec, SEXES[sexes[q]][0])
                timings[ef].append(ms)
                short[ef] += len(found) < deer_store.NEIGHBOURS
                top = found[:10]
                recalls[ef].append(
                    sum(c.detection_id in wanted or c.similarity >= tenth - TIE for c in top) / 10
                )
                got = {c.detection_id for c in top}
                animal[ef].append((len(same_animal & got), len(same_animal)))
                nearest[ef].append(bool(found) and found[0].deer_id == _DEER_IDS[int(exact_deer[q, 0])])
                best_gap[ef].append(float(exact_sims[q, 0]) - (found[0].similarity if found else 0.0))
    finally:
        deer_store._tune_hnsw = _PRODUCT_TUNE
    seen = deer_size > 0
    out = []
    for ef in settings:
        recall, hit = np.asarray(recalls[ef]), np.asarray(nearest[ef])
        pairs = np.asarray(animal[ef])
        bands = {}
        for low, high in SIZE_BANDS:
            mine = (deer_size >= low) & (deer_size <= high)
            if mine.any():
                bands[f"{low}-{high}"] = {
                    "queries": int(mine.sum()),
                    "recall_at_10": round(float(recall[mine].mean()), 4),
                    "same_animal_recall": round(
                        float(pairs[mine, 0].sum() / max(pairs[mine, 1].sum(), 1)), 4
                    ),
                    "nearest_deer_exact": round(float(hit[mine].mean()), 4),
                }
        out.append(
            {
                "ef_search": ef,
                "p50_ms": round(statistics.median(timings[ef]), 2),
                "p95_ms": round(float(np.percentile(timings[ef], 95)), 2),
                "recall_at_10": round(float(recall.mean()), 4),
                "recall_at_10_seen": round(float(recall[seen].mean()), 4),
                "recall_at_10_unseen": round(float(recall[~seen].mean()), 4) if (~seen).any() else None,
                "recall_at_10_min": round(float(recall.min()), 2),
                "queries_below_0_99": int((recall < 0.99).sum()),
                "same_animal_recall": round(float(pairs[:, 0].sum() / max(pairs[:, 1].sum(), 1)), 4),
                "nearest_deer_exact": round(float(hit.mean()), 4),
                "nearest_deer_exact_seen": round(float(hit[seen].mean()), 4),
                "best_similarity_gap_max": round(max(best_gap[ef]), 4),
                "short_results": short[ef],
                "by_size_of_the_deer": bands,
            }
        )
    return out


_DEER_IDS: list[uuid.UUID] = []


def explain(engine: sa.Engine, factory: sessionmaker[Session], vec: np.ndarray, sex: Sex) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the exact statement `nearest_sightings` sends.

    Every statement of the product's call is captured; those before the sighting search (its
    settings, whatever they are) are replayed in a new transaction, then the search is explained:
    one statement holding both passes (the sighting graph, and the sightings of the small deer
    nearest by profile)."""
    captured: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        captured.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", grab)
    try:
        product_query(factory, vec, sex)
    finally:
        sa.event.remove(engine, "before_cursor_execute", grab)
    last = min(
        i
        for i, (statement, _) in enumerate(captured)
        if "<=>" in statement and "FROM detections" in statement and "LIMIT" in statement
    )
    statement, params = captured[last]
    with factory() as s, s.begin():
        conn = s.connection()
        for before, before_params in captured[:last]:
            conn.exec_driver_sql(before, before_params)
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params).scalar()
        text = "\n".join(
            r[0] for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).all()
        )
    top = plan[0]
    nodes = []

    def walk(node: dict[str, Any], depth: int) -> None:
        nodes.append(
            {
                "depth": depth,
                "node": node["Node Type"],
                "index": node.get("Index Name"),
                "rows": node.get("Actual Rows"),
                "removed_by_filter": node.get("Rows Removed by Filter"),
                "shared_hit": node.get("Shared Hit Blocks"),
                "shared_read": node.get("Shared Read Blocks"),
                "ms": node.get("Actual Total Time"),
            }
        )
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    walk(top["Plan"], 0)
    return {
        "sex": sex.value,
        "nodes": nodes,
        "planning_ms": round(top["Planning Time"], 2),
        "execution_ms": round(top["Execution Time"], 2),
        "text": re.sub(r"'\[[^']*\]'::vector", "'[...]'::vector", text),  # the 512 numbers
    }


def sql_exact_check(
    factory: sessionmaker[Session], queries: np.ndarray, sexes: np.ndarray, exact_ids: np.ndarray, n: int
) -> int:
    """How many of the first `n` queries get numpy's top-10 from PostgreSQL with index scans off."""
    agree = 0
    for q in range(n):
        with factory() as s, s.begin():
            s.execute(sa.text("SET LOCAL enable_indexscan = off"))
            rows = s.execute(
                sa.text(
                    "SELECT id FROM detections WHERE sex = :sex AND model_id = :m AND deer_id IS NOT NULL "
                    "ORDER BY embedding <=> CAST(:v AS vector) LIMIT 10"
                ),
                {"sex": SEXES[sexes[q]][0].value, "m": MODEL, "v": str(queries[q].tolist())},
            ).scalars()
            agree += set(rows) == set(exact_ids[q].tolist())
    return agree


def settings(conn: psycopg.Connection) -> dict[str, str]:
    names = (
        "server_version",
        "shared_buffers",
        "work_mem",
        "effective_cache_size",
        "max_worker_processes",
        "max_parallel_workers",
        "dynamic_shared_memory_type",
    )
    with conn.cursor() as cur:
        out = {n: cur.execute(f"SHOW {n}").fetchone()[0] for n in names}
        version = "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        out["pgvector"] = cur.execute(version).fetchone()[0]
        out["schema"] = cur.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        # p: inline (migration 0009), x: a 2,056-byte vector goes to the TOAST table
        storage = (
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'detections'::regclass AND attname = %s"
        )
        out["embedding_storage"] = cur.execute(storage, ("embedding",)).fetchone()[0]
    return out


def _log(message: str) -> None:
    """Progress on stderr, stamped: a 1M run takes most of an hour."""
    print(
        f"{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}  {message}", file=sys.stderr, flush=True
    )


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bench(root_url: str, args: argparse.Namespace) -> dict[str, Any]:
    load_avg = {"start": _load()}
    url = create_database(root_url, f"bench_{uuid.uuid4().hex[:10]}")
    engine = sa.create_engine(url)
    upgrade_schema(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    conn = psycopg.connect(_psycopg_url(url))
    server = settings(conn)
    indexdef = conn.execute("SELECT pg_get_indexdef(%s::regclass)", (INDEX,)).fetchone()[0]
    if args.index_with:
        indexdef += f" WITH ({args.index_with})"
    conn.execute(f"DROP INDEX {INDEX}")
    conn.commit()

    started = time.perf_counter()
    gallery = make_gallery(args.sightings)
    _DEER_IDS[:] = gallery.deer_ids
    _log(f"{gallery.size:,} sightings of {len(gallery.counts):,} deer; loading")
    load(conn, gallery)
    load_s = time.perf_counter() - started
    conn.autocommit = True
    started = time.perf_counter()
    conn.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load
    vacuum_s = time.perf_counter() - started
    conn.autocommit = False
    images = (gallery.size + PER_IMAGE - 1) // PER_IMAGE
    _log(f"loaded in {load_s:.0f} s (+ vacuum {vacuum_s:.0f} s); inserts without the index")
    insert_plain = time_inserts(conn, gallery, args.inserts, images, seed=0)

    load_avg["before_build"] = _load()
    _log(f"building {indexdef}")
    build = build_index(conn, _psycopg_url(url), indexdef, args.maintenance_work_mem, args.parallel_workers)
    load_avg["after_build"] = _load()
    _log(f"built in {build['build_s']} s, {build['index_bytes'] / 2**30:.2f} GiB")
    insert_indexed = time_inserts(conn, gallery, args.inserts, images + args.inserts, seed=1)
    _log(f"insert {insert_plain:.3f} ms/row without the index, {insert_indexed:.3f} with it")
    conn.autocommit = True
    conn.execute("ANALYZE detections")
    conn.close()

    queries, sexes, query_deer = make_queries(gallery, args.queries)
    few_q, few_sexes, few_deer = make_queries(gallery, args.few_queries, seed=4, few=True)
    started = time.perf_counter()
    both = exact_top(gallery, np.concatenate([queries, few_q]), np.concatenate([sexes, few_sexes]))
    exact = tuple(a[: len(queries)] for a in both)
    few_exact = tuple(a[len(queries) :] for a in both)
    exact_s = time.perf_counter() - started
    sql_agree = sql_exact_check(factory, queries, sexes, exact[0], args.sql_checks)
    _log(f"exact search {exact_s:.0f} s; PostgreSQL agrees {sql_agree}/{args.sql_checks}")

    warm_q, warm_s, _ = make_queries(gallery, args.warm_queries, seed=5)  # the first calls fill the caches
    for q, vec in enumerate(warm_q):
        product_query(factory, vec, SEXES[warm_s[q]][0])
    deer_size = np.where(query_deer >= 0, gallery.counts[np.maximum(query_deer, 0)], 0)
    measured = run_queries(factory, queries, sexes, deer_size, exact, [None, *args.ef_search])
    product, alternatives = measured[0], measured[1:]
    for m in measured:
        _log(f"ef_search {m['ef_search'] or 'product'}: {m}")
    few = None
    if args.few_queries:
        few_size = gallery.counts[few_deer]
        few = run_queries(factory, few_q, few_sexes, few_size, few_exact, [None, *args.ef_search])
        _log(f"deer with 1-{FEW} sightings: {few}")
    first_of_sex = [int(np.argmax(sexes == i)) for i in range(len(SEXES))]
    plans = [explain(engine, factory, queries[q], SEXES[i][0]) for i, q in enumerate(first_of_sex)]
    load_avg["end"] = _load()
    engine.dispose()
    per_deer = gallery.counts
    return {
        "sightings": gallery.size,
        "deer": len(per_deer),
        "sightings_per_deer": {
            "median": int(np.median(per_deer)),
            "mean": round(float(per_deer.mean()), 1),
            "max": int(per_deer.max()),
            "deer_over_1000": int((per_deer > 1000).sum()),
        },
        "sex_share_of_sightings": {
            sex.value: round(float(per_deer[gallery.deer_sex == i].sum() / gallery.size), 3)
            for i, (sex, _) in enumerate(SEXES)
        },
        "queries": args.queries,
        "warm_queries": args.warm_queries,
        "unseen_queries": int((query_deer < 0).sum()),
        "server": server,
        "maintenance_work_mem": args.maintenance_work_mem,
        "max_parallel_maintenance_workers": args.parallel_workers,
        "index_definition": indexdef,
        "load_s": round(load_s, 1),
        "vacuum_analyze_s": round(vacuum_s, 1),
        **build,
        "insert_ms_per_row_without_index": round(insert_plain, 3),
        "insert_ms_per_row_with_index": round(insert_indexed, 3),
        "inserts": args.inserts,
        "exact_search_s": round(exact_s, 1),
        "sql_exact_agrees": f"{sql_agree}/{args.sql_checks}",
        "product_ef_search": max(100, 2 * deer_store.NEIGHBOURS),
        "limit": deer_store.NEIGHBOURS,
        "product": product,
        "ef_search_alternatives": alternatives,
        "few_sightings_queries": args.few_queries,
        "few_sightings": few,
        "explain": plans,
        "load_average": load_avg,
    }


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def report(r: dict[str, Any]) -> None:
    p = r["product"]
    print(
        f"{r['sightings']:,} sightings of {r['deer']:,} deer "
        f"(per deer: median {r['sightings_per_deer']['median']}, mean {r['sightings_per_deer']['mean']}, "
        f"max {r['sightings_per_deer']['max']}); PostgreSQL {r['server']['server_version']}, "
        f"pgvector {r['server']['pgvector']}, shared_buffers {r['server']['shared_buffers']}"
    )
    rows = [
        ("COPY load", f"{r['load_s']} s (+ VACUUM ANALYZE {r['vacuum_analyze_s']} s)"),
        (
            "HNSW build",
            f"{r['build_s']} s (maintenance_work_mem {r['maintenance_work_mem']}, "
            f"{r['max_parallel_maintenance_workers']} parallel worker(s))",
        ),
        ("index size", f"{_gib(r['index_bytes'])} (table {_gib(r['table_bytes'])})"),
        ("insert without index", f"{r['insert_ms_per_row_without_index']} ms/row"),
        ("insert with index", f"{r['insert_ms_per_row_with_index']} ms/row"),
        (f"query p50 / p95 (ef_search {r['product_ef_search']})", f"{p['p50_ms']} / {p['p95_ms']} ms"),
        (
            "recall@10",
            f"{p['recall_at_10']} (stored deer {p['recall_at_10_seen']}, unseen {p['recall_at_10_unseen']}, "
            f"min {p['recall_at_10_min']})",
        ),
        ("same-animal recall@10", f"{p['same_animal_recall']}"),
        ("nearest deer = exact", f"{p['nearest_deer_exact']} (stored deer {p['nearest_deer_exact_seen']})"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print("  ef_search  p50 ms  p95 ms  recall@10  stored  unseen  same animal  <0.99  nearest deer")
    for a in [p, *r["ef_search_alternatives"]]:
        ef = a["ef_search"] or f"{r['product_ef_search']}*"
        print(
            f"  {ef!s:>9}  {a['p50_ms']:>6}  {a['p95_ms']:>6}  {a['recall_at_10']:>9}  "
            f"{a['recall_at_10_seen']:>6}  {a['recall_at_10_unseen']!s:>6}  "
            f"{a['same_animal_recall']:>11}  {a['queries_below_0_99']:>5}  {a['nearest_deer_exact']:>12}"
        )
    for band, b in p["by_size_of_the_deer"].items():
        print(
            f"  query's deer has {band} sightings ({b['queries']} queries): recall@10 {b['recall_at_10']}, "
            f"same animal {b['same_animal_recall']}, nearest deer = exact {b['nearest_deer_exact']}"
        )
    if r["few_sightings"]:
        print(f"  {r['few_sightings_queries']} more queries of deer with 1-{FEW} sightings:")
        for a in r["few_sightings"]:
            ef = a["ef_search"] or f"{r['product_ef_search']}*"
            print(
                f"  {ef!s:>9}  p50 {a['p50_ms']} ms, recall@10 {a['recall_at_10']}, "
                f"same animal {a['same_animal_recall']}, nearest deer = exact {a['nearest_deer_exact']}"
            )
    for plan in r["explain"]:
        scan = next((n for n in plan["nodes"] if n["index"]), plan["nodes"][-1])
        print(
            f"  EXPLAIN {plan['sex']}: {scan['node']} using {scan['index']}, rows {scan['rows']} "
            f"(removed by filter {scan['removed_by_filter']}), buffers hit {scan['shared_hit']} "
            f"read {scan['shared_read']}, execution {plan['execution_ms']} ms"
        )
    print(f"  load average {r['load_average']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sightings", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--few-queries", type=int, default=100, help="extra queries of deer with at most 10 sightings"
    )
    parser.add_argument("--inserts", type=int, default=2000)
    parser.add_argument(
        "--ef-search", default="40,64,200,400,1000", help="alternatives to the product's value"
    )
    # The graph of 1M 512-d vectors needs about 3 GB: below that pgvector finishes the
    # build on disk, several times slower. One worker plus the leader use both cores here.
    parser.add_argument("--maintenance-work-mem", default="4GB")
    parser.add_argument("--parallel-workers", type=int, default=1)
    parser.add_argument(
        "--index-with", default="", help='HNSW options to try instead of the product\'s, e.g. "m = 32"'
    )
    parser.add_argument("--sql-checks", type=int, default=5, help="queries checked against a seq scan")
    parser.add_argument(
        "--warm-queries",
        type=int,
        default=40,
        help="calls before the timed ones; a large shared_buffers fills only as queries touch it",
    )
    parser.add_argument(
        "--shared-buffers",
        default="",
        help="PostgreSQL shared_buffers instead of pgserver's 128MB, e.g. 4GB (holds the 1M index)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.ef_search = [int(v) for v in args.ef_search.split(",") if v]
    if args.shared_buffers and not re.fullmatch(r"\d+(kB|MB|GB)?", args.shared_buffers):
        parser.error("--shared-buffers takes a PostgreSQL size such as 4GB")
    if any(not 1 <= ef <= 1000 for ef in args.ef_search):
        parser.error("hnsw.ef_search must be within 1..1000")

    work = Path(tempfile.mkdtemp(prefix="deerid-bench-million-", dir="/tmp"))
    try:
        root_url = start_embedded(work / "pgdata")
        if args.shared_buffers:
            # A server setting: written to postgresql.auto.conf, read at the next start.
            admin = sa.create_engine(root_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f"ALTER SYSTEM SET shared_buffers = '{args.shared_buffers}'"))
            admin.dispose()
            stop_embedded(work / "pgdata")
            root_url = start_embedded(work / "pgdata")
        try:
            results = bench(root_url, args)
        finally:
            stop_embedded(work / "pgdata")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
