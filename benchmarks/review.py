"""Human effort and review-screen speed.

    python benchmarks/review.py [--folds 3] [--gallery 10000] [--json]

1. Effort: nyala train (../shared/data/nyala/train) in folds by individual. In each fold
   the held-out individuals are reviewed by an oracle through the product's own queue
   (`deerid.evaluation.review.simulate_review`), from the automatic result, and the
   decisions per image to reach BCubed F1 0.8/0.9/0.95 are recorded. The probability and
   the automatic-merge threshold are fitted on the *other* folds' individuals, as a user's
   calibration would be fitted on animals other than those being reviewed. Rows:
   - pair queue: one pair at a time, most similar first, over single photos (what the
     landed review page did);
   - top-5 photos: a top-5 screen over single photos (no encounters);
   - top-8 encounters, raw: the shipped screen without a calibration;
   - top-8 encounters, calibrated: the same with the fitted probability;
   - + auto 2 %: also starting from automatic merges at the 2 % false-merge threshold;
   - perfect ranking: the same screen with an embedding that knows the answer.
2. Speed: `GET /api/review/next` on a database of `--gallery` sightings (every sighting its
   own provisional deer), each screen timed after answering the one before as a person works
   (a third of the answers merges); the first screen, which also reads every vector and builds
   the nearest-neighbour table, is reported apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deerid.app import Deerid
from deerid.core.config import Settings
from deerid.db.embedded import start_embedded, stop_embedded
from deerid.db.tables import Assignment, Deer, Detection, Image
from deerid.domain.classes import Sex
from deerid.domain.probability import SameAnimalProbability
from deerid.evaluation.calibration import choose_threshold
from deerid.evaluation.data import LabelledSet
from deerid.evaluation.openset import sweep_openset
from deerid.evaluation.pairs import encounter_pairs
from deerid.evaluation.retrieval import load_identity_folder
from deerid.evaluation.review import mean_review, plot_review, simulate_review
from ingest import _buck_row, image_rows, new_database

SHARED = Path(__file__).resolve().parents[2] / "shared"
NYALA = SHARED / "data" / "nyala" / "train"
LEVELS = ("0.8", "0.9", "0.95")


def embed_nyala(settings: Settings) -> tuple[np.ndarray, list[str], list[str], str]:
    from deerid.evaluation.run import embed_items
    from deerid.registry.models import active_embedder

    embedder = active_embedder(settings)
    items = load_identity_folder(NYALA)
    vectors, kept, _ = embed_items(items, embedder, batch_size=32)
    return vectors, [i for _, i, _ in kept], [s for _, _, s in kept], embedder.model_id


def _subset(data: LabelledSet, rows: np.ndarray, *, photos_as_encounters: bool = False) -> LabelledSet:
    names = [data.individual_names[i] for i in data.individual[rows]]
    sightings = [str(r) for r in rows] if photos_as_encounters else [str(s) for s in data.sighting[rows]]
    return LabelledSet.build(data.vectors[rows], names, sightings)


def effort(folds: int, seed: int = 0) -> dict[str, Any]:
    settings = Settings(device="cpu", data_dir=Path(tempfile.mkdtemp(prefix="deerid-bench-")))
    started = time.perf_counter()
    vectors, individuals, sightings, model_id = embed_nyala(settings)
    embed_s = time.perf_counter() - started
    data = LabelledSet.build(vectors, individuals, sightings)
    order = np.random.default_rng(seed).permutation(data.n_individuals)
    rows_out: dict[str, list[Any]] = {}
    curves_for_plot = []
    for fold, held in enumerate(np.array_split(order, folds)):
        test_rows = np.flatnonzero(np.isin(data.individual, held))
        train_rows = np.flatnonzero(~np.isin(data.individual, held))
        train = _subset(data, train_rows)
        pairs = encounter_pairs(train)
        fitted = SameAnimalProbability.fit(pairs.scores, pairs.same)
        auto = choose_threshold(sweep_openset(train, orders=3, seed=seed), 0.02)
        test = _subset(data, test_rows)
        photos = _subset(data, test_rows, photos_as_encounters=True)
        truth = np.eye(test.n_individuals)[test.individual]
        perfect = LabelledSet.build(
            truth + 1e-6 * test.vectors[:, : test.n_individuals],
            [test.individual_names[i] for i in test.individual],
            [str(s) for s in test.sighting],
        )
        auto_threshold = auto.threshold if auto.met else None
        variants: dict[str, tuple[LabelledSet, dict[str, Any]]] = {
            "pair queue (photos, k=1)": (photos, {"k": 1}),
            "top-5 screen (photos)": (photos, {"k": 5}),
            "top-8 screen (encounters, raw)": (test, {"k": 8}),
            "top-8 screen (encounters, calibrated)": (test, {"k": 8, "probability": fitted}),
            "+ automatic merges at 2 %": (
                test,
                {"k": 8, "probability": fitted, "threshold": auto_threshold},
            ),
            "perfect ranking": (perfect, {"k": 8}),
        }
        for name, (subset, options) in variants.items():
            t = time.perf_counter()
            curve = simulate_review(subset, **options)
            rows_out.setdefault(name, []).append(curve)
            d = curve.as_dict()
            print(
                f"fold {fold} ({len(test)} images, {test.n_individuals} individuals) {name}: "
                f"to F1 {[d['decisions_per_image_to_f1'][x] for x in LEVELS]}, "
                f"F1 at 0.25/0.5/1 {list(d['f1_at_decisions_per_image'].values())}, "
                f"auto threshold {auto.threshold:.2f}, {time.perf_counter() - t:.0f} s",
                flush=True,
            )
            if fold == 0:
                curves_for_plot.append((name, curve))
    plot = Path("artifacts") / "bench" / "review_curve.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot_review(curves_for_plot, plot)
    return {
        "model_id": model_id,
        "embed_s": round(embed_s, 1),
        "folds": folds,
        "per_fold": {name: [c.as_dict() for c in curves] for name, curves in rows_out.items()},
        "mean": {name: mean_review(curves) for name, curves in rows_out.items()},
        "plot": str(plot),
    }


def _scoring_cost(factory: Any, model: str, repeats: int = 7) -> dict[str, float]:
    """A screen after a merge (snapshot, ranking rebuilt, next screen), candidates ordered by the
    best pair alone versus as sets of views (the shipped default), interleaved in one run so the
    machine's load falls on both alike."""
    from deerid.store.review import ReviewCache, load_gallery

    cache = ReviewCache()
    with factory() as s:
        load_gallery(s, model, cache)  # vectors and nearest pairs, kept as the API keeps them
    times: dict[str, list[float]] = {"max": [], "both": []}
    for _ in range(repeats):
        for scoring, out in times.items():
            cache.forget_ranked()
            started = time.perf_counter()
            with factory() as s:
                graph = load_gallery(s, model, cache).graph
                graph.scoring = scoring  # type: ignore[assignment]
                graph.next_screen()
            out.append(1000 * (time.perf_counter() - started))
    return {f"after_merge_{k}_ms_median": round(statistics.median(v), 1) for k, v in times.items()}


def screen_speed(root_url: str, size: int, repeats: int = 30) -> dict[str, Any]:
    """Median time of GET /api/review/next with `size` stored sightings."""
    from fastapi.testclient import TestClient

    from deerid.api.main import create_app
    from deerid.registry.models import active_embedder

    data_dir = Path(tempfile.mkdtemp(prefix="deerid-bench-"))
    settings = Settings(
        database_url=new_database(root_url), data_dir=data_dir, device="cpu", api_token="bench"
    )
    model = active_embedder(settings).model_id
    with Deerid(settings) as app:
        factory = app.sessions
        rng = np.random.default_rng(0)
        per_deer = 5
        centres = rng.standard_normal((size // per_deer, 512)).astype(np.float32)
        with factory() as s, s.begin():
            image_ids = list(
                s.execute(
                    sa.insert(Image).returning(Image.id),
                    image_rows(size),
                ).scalars()
            )
            # Every sighting its own provisional deer: the review queue's hardest case.
            deer_ids = [uuid.uuid4() for _ in range(size)]
            s.execute(
                sa.insert(Deer),
                [
                    {"id": d, "name": f"Buck r{i}", "sex": Sex.BUCK, "sighting_count": 1}
                    for i, d in enumerate(deer_ids)
                ],
            )
            rows = [
                _buck_row(
                    image_ids[i],
                    centres[i // per_deer] + 0.8 * rng.standard_normal(512).astype(np.float32),
                    model,
                    deer_id=deer_ids[i],
                    assignment=Assignment.NEW,
                )
                for i in range(size)
            ]
            for start in range(0, size, 2000):
                s.execute(sa.insert(Detection), rows[start : start + 2000])
        timings = []
        auth = {"Authorization": "Bearer bench"}
        with TestClient(create_app(settings), base_url="http://localhost") as client:
            started = time.perf_counter()
            first = client.get("/api/review/next")
            first_ms = 1000 * (time.perf_counter() - started)
            assert first.status_code == 200, first.text
            screen = first.json()
            after_merge = []
            for n in range(repeats):
                # As a person works: answer the screen, then time the next one. Every third answer is
                # a match (about the share of merges on nyala), the rest "none of these".
                shown = [c["deer"]["id"] for c in screen["candidates"]]
                answer = {"query": screen["query"]["deer"]["id"], "shown": shown, "choice": "none"}
                if n % 3 == 2:
                    answer.update(choice="match", candidate=shown[0])
                assert client.post("/api/review/decisions", json=answer, headers=auth).status_code == 200
                started = time.perf_counter()
                res = client.get("/api/review/next")
                elapsed = 1000 * (time.perf_counter() - started)
                (after_merge if n % 3 == 2 else timings).append(elapsed)
                assert res.status_code == 200
                screen = res.json()
        scoring_ms = _scoring_cost(factory, model)
    return {
        **scoring_ms,
        "gallery_sightings": size,
        "first_screen_ms": round(first_ms, 1),
        "screen_ms_median": round(statistics.median(timings + after_merge), 1),
        "screen_ms_p95": round(float(np.percentile(timings + after_merge, 95)), 1),
        "after_none_ms_median": round(statistics.median(timings), 1),
        "after_merge_ms_median": round(statistics.median(after_merge), 1),
        "repeats": repeats,
    }


def feeder_session(root_url: str, budget: int = 400) -> dict[str, Any]:
    """What a user sees on the feeder set: deer after ingest (defaults, no calibration), queries
    waiting, and screens until the two known bucks (buck-A: 5 boxes, buck-B: 2) are each one
    deer, with an oracle that knows only those two and answers "none" to everything else."""
    from deerid.db.tables import ReviewChoice
    from deerid.pipeline.ingest import ingest
    from deerid.store import review as review_store

    feeder = SHARED / "data" / "trailcam" / "feeder"
    md = SHARED / "data" / "trailcam" / "feeder.detections.json"
    settings = Settings(
        database_url=new_database(root_url),
        data_dir=Path(tempfile.mkdtemp(prefix="deerid-bench-")),
        device="cpu",
    )
    with Deerid(settings) as app:
        report = ingest(app, feeder, md)
        model_id = app.embedder().model_id
        known = {
            (img["file"], i): det["individual"]
            for img in json.loads(md.read_text())["images"]
            for i, det in enumerate(img["detections"])
            if det.get("individual")
        }
        factory = app.sessions
        with factory() as s:
            label = {
                det_id: known.get((Path(path).name, index))
                for det_id, path, index in s.execute(
                    sa.select(Detection.id, Image.path, Detection.source_index).join(
                        Image, Image.id == Detection.image_id
                    )
                )
            }
            deer_before = s.execute(sa.select(sa.func.count()).select_from(Deer)).scalar_one()

        def animal(s: Any, deer_id: uuid.UUID) -> str | None:
            ids = s.execute(sa.select(Detection.id).where(Detection.deer_id == deer_id)).scalars()
            names = {label.get(i) for i in ids} - {None}
            return names.pop() if len(names) == 1 else None

        def done(s: Any) -> bool:
            for name in ("buck-A", "buck-B"):
                holders = {
                    s.get(Detection, d).deer_id for d, n in label.items() if n == name and s.get(Detection, d)
                }
                if len(holders) != 1:
                    return False
            return True

        cache = review_store.ReviewCache()  # as the server keeps one: vectors are read once
        screens = matches = 0
        waiting_at_start = None
        finished_at = None
        while screens < budget:
            with factory() as s, s.begin():
                if finished_at is None and done(s):
                    finished_at = screens
                    break
                view = review_store.next_screen(s, model_id, k=8, cache=cache)
                if view is None:
                    break
                if waiting_at_start is None:
                    waiting_at_start = view.remaining
                wanted = animal(s, view.query_deer_id)
                hit = next((c for c in view.candidates if wanted and animal(s, c.deer_id) == wanted), None)
                review_store.decide(
                    s,
                    model_id,
                    query=view.query_deer_id,
                    shown=[c.deer_id for c in view.candidates],
                    choice=ReviewChoice.MATCH if hit else ReviewChoice.NONE,
                    candidate=hit.deer_id if hit else None,
                    cache=cache,
                )
                screens += 1
                matches += int(hit is not None)
    return {
        "photos": report.photos,
        "deer_boxes_identified": report.reidentified,
        "cameras": report.cameras,
        "events": report.events,
        "tracks": report.tracks,
        "auto_joined": report.auto_joined,
        "deer_before_review": deer_before,
        "queries_waiting": waiting_at_start,
        "screens_until_known_bucks_whole": finished_at,
        "matches": matches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--gallery", type=int, default=10000, help="sightings for the speed test (0: skip)")
    parser.add_argument("--skip-effort", action="store_true")
    parser.add_argument("--feeder", action="store_true", help="also the feeder-set review session")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    if not args.skip_effort:
        out["effort"] = effort(args.folds)
    if args.gallery or args.feeder:
        pg_dir = Path(tempfile.mkdtemp(prefix="deerid-bench-pg-"))
        url = start_embedded(pg_dir / "pgdata")
        try:
            root = sa.engine.make_url(url).set(database=None).render_as_string(hide_password=False)
            if args.gallery:
                out["screen"] = screen_speed(root, args.gallery)
                print(f"review screen with {args.gallery} sightings: {out['screen']}", flush=True)
            if args.feeder:
                out["feeder"] = feeder_session(root)
                print(f"feeder set: {out['feeder']}", flush=True)
        finally:
            stop_embedded(pg_dir / "pgdata")
    if "effort" in out:
        print("\nmean over folds, decisions per image to F1 0.8 / 0.9 / 0.95:")
        for name, m in out["effort"]["mean"].items():
            print(f"  {name:40s} {[m['decisions_per_image_to_f1'][x] for x in LEVELS]}")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
