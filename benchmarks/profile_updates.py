"""match + store latency against the number of sightings of the matched deer.

    python benchmarks/profile_updates.py [--sizes 5,500,5000] [--queries 30] [--background 2000]
                                 [--modes incremental,full,before] [--json]

One fresh database holds a background gallery (`--background` buck sightings,
5 per deer) and, for each size in `--sizes` and each mode, one buck with that
many sightings (each mode updates its own deer, so none sees another's sums).
Vectors are clustered as real sightings are (as benchmarks/ingest.py builds
them): each deer has a centre drawn from N(0, I) in 512 dimensions and each
sighting is centre + 0.35 * N(0, I), L2-normalised: cosine ~0.94 to the
centre and ~0.89 between two sightings of one deer, ~0 across deer.
Each query is a new sighting drawn the same way from one sized deer's centre,
assigned with the product's `assign_detection` (threshold 0.85): the HNSW
search, the decision, storing the assignment and the profile update,
committed. The time is per detection, from the call to the commit.

Modes, interleaved query by query so that machine noise hits them alike:
- incremental: what assignment does now (`deer.add_sighting`, the stored sums);
- full: the same but with the full recompute (`deer.recompute_profile`) after
  each assignment, as merges and moves do;
- before: the profile recompute as it was before migration 0008 (pgvector's
  avg over every sighting, in SQL), copied here.
Each query adds a sighting, so a deer grows by up to `--queries` sightings
during its row; the table gives the count at the start. Figures are medians
and 95th percentiles in ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.orm import Session

from deerid.db.embedded import start_embedded, stop_embedded
from deerid.db.session import create_database, upgrade_schema
from deerid.db.tables import EMBEDDING_DIM, Assignment, Deer, Detection, Image
from deerid.domain.classes import Sex
from deerid.reid.service import assign_detection
from deerid.store import deer as deer_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import _buck_row, image_rows

MODEL = "bench-model"
NOISE = 0.35


def recompute_before_0008(session: Session, deer_id: uuid.UUID) -> bool:
    """`deer.recompute_profile` as it was before migration 0008, verbatim but for the name."""
    stats = session.execute(
        sa.select(
            sa.func.count(Detection.id),
            sa.func.min(Image.captured_at),
            sa.func.max(Image.captured_at),
            sa.func.avg(Detection.similarity).filter(Detection.assignment == Assignment.MATCHED),
        )
        .join(Image, Image.id == Detection.image_id)
        .where(Detection.deer_id == deer_id)
    ).one()
    count, first_seen, last_seen, confidence = stats
    if count == 0:
        session.execute(sa.delete(Deer).where(Deer.id == deer_id))
        return False
    model_id = session.execute(sa.select(Deer.model_id).where(Deer.id == deer_id)).scalar_one()
    mean = session.execute(
        sa.select(sa.func.avg(Detection.embedding, type_=Vector(EMBEDDING_DIM))).where(
            Detection.deer_id == deer_id, Detection.model_id == model_id
        )
    ).scalar()
    feature = None
    if mean is not None:
        vec = np.asarray(mean, dtype=np.float32)
        norm = float(np.linalg.norm(vec))
        feature = vec / norm if norm > 0 else None
    session.execute(
        sa.update(Deer)
        .where(Deer.id == deer_id)
        .values(
            sighting_count=count,
            first_seen=first_seen,
            last_seen=last_seen,
            confidence=confidence,
            feature_vector=feature,
        )
    )
    return True


UPDATES: dict[str, Callable[[Session, uuid.UUID, int], object]] = {
    "incremental": deer_store.add_sighting,
    "full": lambda s, deer_id, _det: deer_store.recompute_profile(s, deer_id),
    "before": lambda s, deer_id, _det: recompute_before_0008(s, deer_id),
}


def _sighting(rng: np.random.Generator, centre: np.ndarray) -> np.ndarray:
    vec = centre + NOISE * rng.standard_normal(centre.shape[0]).astype(np.float32)
    return vec / np.linalg.norm(vec)


def _detection(image_id: int, vec: np.ndarray, deer_id: uuid.UUID | None) -> dict[str, object]:
    if deer_id is None:
        return _buck_row(image_id, vec, MODEL)
    return _buck_row(image_id, vec, MODEL, deer_id=deer_id, assignment=Assignment.MATCHED, similarity=0.9)


def _images(session: Session, start: int, n: int) -> list[int]:
    return list(session.execute(sa.insert(Image).returning(Image.id), image_rows(n, start)).scalars())


def fill(
    factory: sa.orm.sessionmaker[Session], sizes: list[int], modes: list[str], background: int, seed: int = 0
) -> tuple[dict[tuple[int, str], tuple[uuid.UUID, np.ndarray]], int]:
    """The background gallery and one deer per size and mode.

    Returns ({(size, mode): (deer id, centre)}, images stored)."""
    rng = np.random.default_rng(seed)
    dim = EMBEDDING_DIM
    plan: list[tuple[int, str | None]] = [(5, None)] * (background // 5)
    plan += [(size, mode) for size in sizes for mode in modes]
    images = 0
    sized: dict[tuple[int, str], tuple[uuid.UUID, np.ndarray]] = {}
    for per_deer, mode in plan:
        centre = rng.standard_normal(dim).astype(np.float32)
        with factory() as s, s.begin():
            deer_id = deer_store.create_deer(s, Sex.BUCK, MODEL)
            image_ids = _images(s, images, per_deer)
            images += per_deer
            rows = [_detection(i, _sighting(rng, centre), deer_id) for i in image_ids]
            for start in range(0, len(rows), 1000):
                s.execute(sa.insert(Detection), rows[start : start + 1000])
            deer_store.recompute_profile(s, deer_id)
        if mode is not None:
            sized[per_deer, mode] = (deer_id, centre)
    with factory() as s, s.begin():
        s.execute(sa.text("ANALYZE"))  # what autovacuum does after a bulk load
    return sized, images


def bench(root_url: str, sizes: list[int], queries: int, background: int, modes: list[str]) -> dict:
    url = create_database(root_url, f"bench_{uuid.uuid4().hex[:10]}")
    engine = sa.create_engine(url)
    upgrade_schema(engine)
    factory = sa.orm.sessionmaker(engine, expire_on_commit=False)
    started = time.perf_counter()
    sized, images = fill(factory, sizes, modes, background)
    fill_seconds = time.perf_counter() - started
    rng = np.random.default_rng(1)
    # Warm-up, untimed: the first assignments open connections and fill caches.
    warm_deer = sized[sizes[0], modes[0]]
    with factory() as s, s.begin():
        image_ids = _images(s, images, 5)
        images += len(image_ids)
        warm = s.execute(
            sa.insert(Detection).returning(Detection.id),
            [_detection(i, _sighting(rng, warm_deer[1]), None) for i in image_ids],
        ).scalars()
        warm_ids = list(warm)
    for det_id in warm_ids:
        assign_detection(factory, det_id, threshold=0.85, model_id=MODEL)
    rows = []
    for size in sizes:
        det_ids: dict[str, list[int]] = {}
        with factory() as s, s.begin():
            for mode in modes:
                image_ids = _images(s, images, queries)
                images += len(image_ids)
                centre = sized[size, mode][1]
                det_ids[mode] = list(
                    s.execute(
                        sa.insert(Detection).returning(Detection.id),
                        [_detection(i, _sighting(rng, centre), None) for i in image_ids],
                    ).scalars()
                )
        timings: dict[str, list[float]] = {m: [] for m in modes}
        joined = 0
        for q in range(queries):
            for mode in modes:
                det_id = det_ids[mode][q]
                deer_store.add_sighting = UPDATES[mode]  # what the service calls after `assign`
                try:
                    t = time.perf_counter()
                    result = assign_detection(factory, det_id, threshold=0.85, model_id=MODEL)
                    timings[mode].append(1000 * (time.perf_counter() - t))
                finally:
                    deer_store.add_sighting = UPDATES["incremental"]
                joined += result.deer_id == sized[size, mode][0]
        row: dict[str, object] = {"sightings": size, "queries": queries, "joined_the_deer": joined}
        for mode in modes:
            row[f"{mode}_ms_median"] = round(statistics.median(timings[mode]), 2)
            row[f"{mode}_ms_p95"] = round(float(np.percentile(timings[mode], 95)), 2)
        rows.append(row)
        print(
            f"{size:>6} sightings: "
            + ", ".join(f"{m} {row[f'{m}_ms_median']} ms (p95 {row[f'{m}_ms_p95']})" for m in modes)
            + f"; {joined}/{queries * len(modes)} joined the deer",
            file=sys.stderr,
        )
    # Every profile the incremental path kept equals the full recompute's.
    same = True
    if "incremental" in modes:
        with factory() as s, s.begin():
            for size in sizes:
                deer_id = sized[size, "incremental"][0]
                cols = (Deer.feature_vector, Deer.confidence, Deer.sighting_count, Deer.embedding_sum)
                kept = s.execute(sa.select(*cols).where(Deer.id == deer_id)).one()
                deer_store.recompute_profile(s, deer_id)
                full = s.execute(sa.select(*cols).where(Deer.id == deer_id)).one()
                same &= (
                    bool(np.array_equal(np.asarray(kept[0]), np.asarray(full[0]))) and kept[1:] == full[1:]
                )
            s.rollback()
    engine.dispose()
    return {
        "background_sightings": background,
        "fill_s": round(fill_seconds, 1),
        "modes": modes,
        "rows": rows,
        "incremental_profiles_equal_full_recompute": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="5,500,5000")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--background", type=int, default=2000)
    parser.add_argument("--modes", default="incremental,full,before")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(UPDATES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")

    work = Path(tempfile.mkdtemp(prefix="deerid-bench-profile-"))
    root_url = start_embedded(work / "pgdata")
    try:
        results = bench(root_url, sizes, args.queries, args.background, modes)
    finally:
        stop_embedded(work / "pgdata")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
