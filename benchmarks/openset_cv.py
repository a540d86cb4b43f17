"""Open-set re-identification before and after training, cross-validated across individuals.

    python benchmarks/train_cv.py --out MODELS ...   # trains fold0, fold1, fold2 into MODELS
    python benchmarks/openset_cv.py --models MODELS [--json]

For each fold, the threshold is calibrated (false merges ≤ 5 %, worst of 3 orders)
on the fold's *training* individuals and then applied to its held-out ones, as a
user would calibrate on their own confirmed deer and then meet new animals. The
untrained default gets the same treatment. Same fold split as train_cv.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from deerid.core.config import Settings
from deerid.embed.embedder import get_embedder
from deerid.embed.trained import load_trained_embedder
from deerid.evaluation.calibration import calibrate
from deerid.evaluation.data import LabelledSet
from deerid.evaluation.openset import evaluate_openset
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics
from deerid.training.data import check_samples

NYALA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyala" / "train"
N_FOLDS = 3


def folds(individuals: np.ndarray) -> list[np.ndarray]:
    # The split of train_cv.py: keep both in step.
    ids = np.random.default_rng(0).permutation(np.unique(individuals))
    return [np.isin(individuals, ids[k::N_FOLDS]) for k in range(N_FOLDS)]


def embed(embedder: object, paths: list[Path]) -> np.ndarray:
    out = []
    for start in range(0, len(paths), 32):
        out.append(embedder.embed([Image.open(p).convert("RGB") for p in paths[start : start + 32]]))  # type: ignore[attr-defined]
    return np.concatenate(out)


def evaluate(embedder: object, samples: list, test: np.ndarray) -> dict[str, float]:
    paths = [s[0] for s in samples]
    individuals = [s[1] for s in samples]
    sightings = [f"{s[1]}/{s[2]}" for s in samples]
    vectors = embed(embedder, paths)
    train, held = np.flatnonzero(~test), np.flatnonzero(test)

    def subset(idx: np.ndarray) -> LabelledSet:
        return LabelledSet.build(vectors[idx], [individuals[i] for i in idx], [sightings[i] for i in idx])

    cal = calibrate(subset(train), target_fmr=0.05)
    held_set = subset(held)
    at_cal = evaluate_openset(held_set, cal.threshold, orders=3, seed=0).mean
    at_ref = evaluate_openset(held_set, 0.85, orders=3, seed=0).mean
    closed = retrieval_metrics(vectors[held], [individuals[i] for i in held], [sightings[i] for i in held])
    return {
        "top1": closed["top1"],
        "mAP": closed["mAP"],
        "calibrated_threshold": cal.threshold,
        "calibration_met": cal.met,
        "f1": at_cal.bcubed_f1,
        "false_merge_rate": at_cal.false_merge_rate,
        "profiles_per_individual": at_cal.profiles_per_individual,
        "f1_at_0.85": at_ref.bcubed_f1,
        "false_merge_rate_at_0.85": at_ref.false_merge_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, required=True, help="folder with fold0, fold1, fold2")
    parser.add_argument(
        "--no-center",
        action="store_true",
        help="zero the models' centring vector (the shipped recipe trains with center=False)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    samples = check_samples(load_identity_folder(NYALA)).samples
    individuals = np.array([s[1] for s in samples])
    untrained = get_embedder(Settings(data_dir=Path(tempfile.mkdtemp(prefix="deerid-ocv-")), device="cpu"))
    rows = []
    for k, test in enumerate(folds(individuals)):
        trained = load_trained_embedder(args.models / f"fold{k}", "cpu", 32)
        if args.no_center:
            trained._tail.center.zero_()  # models trained before centring was switched off
        for name, embedder in (("untrained", untrained), ("trained", trained)):
            row = {"fold": k, "model": name, **evaluate(embedder, samples, test)}
            rows.append(row)
            print(
                f"fold {k} {name:9}: top-1 {row['top1']:.1%} mAP {row['mAP']:.1%} | threshold "
                f"{row['calibrated_threshold']:.2f} (met {row['calibration_met']}) → F1 {row['f1']:.1%}, "
                f"false merges {row['false_merge_rate']:.1%}, {row['profiles_per_individual']:.2f} "
                f"profiles/individual | at 0.85: F1 {row['f1_at_0.85']:.1%}, "
                f"false merges {row['false_merge_rate_at_0.85']:.1%}",
                file=sys.stderr,
            )
    for name in ("untrained", "trained"):
        mine = [r for r in rows if r["model"] == name]
        means = {
            key: float(np.mean([r[key] for r in mine])) for key in ("top1", "mAP", "f1", "false_merge_rate")
        }
        print(f"mean {name:9}: " + ", ".join(f"{k} {v:.1%}" for k, v in means.items()), file=sys.stderr)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
