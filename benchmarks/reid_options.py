"""What cheap options do for the untrained default on nyala train: test-time flip and
per-profile aggregation (nearest sighting vs mean of the two nearest).

    python benchmarks/reid_options.py [--json]

Closed set: top-1 / mAP with the sighting rule. Open set: the stream of
`deerid.evaluation.openset` over 3 seeded orders; for each option the best
BCubed F1 over thresholds 0.70…0.95 and the false-merge rate there.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from deerid.core.config import Settings
from deerid.domain.matching import Aggregation
from deerid.embed.embedder import get_embedder
from deerid.evaluation.data import LabelledSet
from deerid.evaluation.openset import evaluate_openset
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics

NYALA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyala" / "train"
THRESHOLDS = tuple(round(0.70 + 0.05 * i, 2) for i in range(6))


def embed(paths: list[Path], flip: bool) -> np.ndarray:
    embedder = get_embedder(
        Settings(data_dir=Path(tempfile.gettempdir()) / "deerid-bench-data", device="cpu")
    )
    out = []
    for start in range(0, len(paths), 32):
        images = [Image.open(p).convert("RGB") for p in paths[start : start + 32]]
        vectors = embedder.embed(images)
        if flip:
            vectors = vectors + embedder.embed([ImageOps.mirror(img) for img in images])
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        out.append(vectors)
    return np.concatenate(out)


def best_openset(data: LabelledSet, aggregation: Aggregation) -> dict[str, float]:
    best: dict[str, float] = {}
    for threshold in THRESHOLDS:
        metrics = evaluate_openset(data, threshold, orders=3, seed=0, aggregation=aggregation).mean
        if not best or metrics.bcubed_f1 > best["bcubed_f1"]:
            best = {
                "threshold": threshold,
                "bcubed_f1": metrics.bcubed_f1,
                "false_merge_rate": metrics.false_merge_rate,
            }
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    samples = load_identity_folder(NYALA)
    paths = [p for p, _, _ in samples]
    individuals = [i for _, i, _ in samples]
    sightings = [f"{i}/{s}" for _, i, s in samples]
    rows = []
    for flip in (False, True):
        started = time.perf_counter()
        vectors = embed(paths, flip)
        seconds = time.perf_counter() - started
        closed = retrieval_metrics(vectors, individuals, sightings)
        data = LabelledSet.build(vectors, individuals, sightings)
        for aggregation in (Aggregation.NEAREST, Aggregation.TOP2_MEAN):
            row = {
                "test_time_flip": flip,
                "aggregation": aggregation.value,
                "top1": closed["top1"],
                "mAP": closed["mAP"],
                "embed_s": round(seconds, 1),
                **best_openset(data, aggregation),
            }
            rows.append(row)
            print(
                f"flip={flip!s:5} {aggregation.value:>9}: top-1 {row['top1']:.1%} mAP {row['mAP']:.1%}  "
                f"best open-set F1 {row['bcubed_f1']:.1%} at {row['threshold']:.2f} "
                f"(false merges {row['false_merge_rate']:.1%}); embedding {seconds:.0f} s",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
