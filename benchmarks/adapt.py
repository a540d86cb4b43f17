"""Cross-validated effect of `deerid adapt` (adaptation without labels) on nyala re-identification.

    python benchmarks/adapt.py [--folds 0,1,2] [--modes transductive,cross] [--set key=value ...]
                               [--diagnose] [--json FILE]

The 3 folds across individuals of ../shared/data/nyala/train (`folds()` of train_cv.py, so the
numbers sit beside docs/ranking.md and docs/training.md). Adaptation never sees an individual
label: its crops are (photo, sighting id) only, the sighting standing for a track (the left and
right photo of one sighting are one animal, as the photos of one track are).

- transductive: adapt on the held-out fold's own unlabelled photos, then evaluate on that fold
  (a user adapting on the very gallery they review);
- cross: adapt on the other two folds' unlabelled photos, evaluate on the held-out fold (a
  model adapted once, meeting animals it never saw);
- labelled (lever 6's reference, not adaptation): `train()` with the other folds' individual
  labels, its own early stopping, evaluated the same way.

Metrics: photo queries through `retrieval_metrics` (same-sighting matches excluded) and
sighting queries with the mean-vector set score (benchmarks/ranking.py), both against the
untrained default. `--diagnose` prints the pseudo-label link precision / recall per threshold
(it uses the labels, for the write-up only; it chooses nothing).
The frozen-trunk cache is built once for all photos and shared by every run. With `--out`, a
rerun continues an interrupted adaptation from its last epoch and reuses finished ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.append(str(BENCH))

from deerid.embed.model_file import WEIGHTS_FILE  # noqa: E402
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics  # noqa: E402
from deerid.training import TrainConfig, train  # noqa: E402
from deerid.training.adapt import AdaptConfig, adapt, pseudo_labels  # noqa: E402
from deerid.training.cache import CLEAN  # noqa: E402
from deerid.training.data import check_samples  # noqa: E402
from deerid.training.loop import FrozenSplit, embed_cached  # noqa: E402
from ranking import set_variant  # noqa: E402
from train_cv import DATA, folds  # noqa: E402

METRICS = ("top1", "top5", "mAP", "n_queries")


def parse_set(items: list[str]) -> tuple[dict, dict]:
    """Overrides for AdaptConfig and its TrainConfig (a TrainConfig field name goes to .train)."""
    mine = {f.name for f in fields(AdaptConfig)} - {"train"}
    theirs = {f.name for f in fields(TrainConfig)}
    a, t = {}, {}
    for item in items:
        k, v = item.split("=", 1)
        try:
            value = json.loads(v)
        except json.JSONDecodeError:
            value = v
        if k in mine:
            a[k] = value
        elif k in theirs:
            t[k] = value
        else:
            raise SystemExit(f"unknown AdaptConfig/TrainConfig field {k}")
    return a, t


def measure(vectors: np.ndarray, ind: list[str], sig: list[str]) -> dict[str, dict[str, float]]:
    photo = retrieval_metrics(vectors, ind, sig)
    sighting = set_variant("mean vector")(vectors, ind, sig, {})
    return {
        "photo": {m: float(photo[m]) for m in METRICS},
        "sighting_mean_vector": {m: float(sighting[m]) for m in METRICS},
    }


def link_quality(vectors: np.ndarray, ind: np.ndarray, sig: np.ndarray, k: int, threshold: float) -> dict:
    """Of the pairs of *different* sightings the pseudo-labels put together, how many are one
    individual (precision), and how many such pairs they find (recall)."""
    p = pseudo_labels(vectors, list(sig), k=k, threshold=threshold)
    keys, first = np.unique(sig, return_index=True)
    enc_ind = ind[first]
    enc_cluster = p.labels[first]
    same_ind = enc_ind[:, None] == enc_ind[None, :]
    same_cl = enc_cluster[:, None] == enc_cluster[None, :]
    off = ~np.eye(len(keys), dtype=bool)
    linked = (same_cl & off).sum() / 2
    right = (same_cl & same_ind & off).sum() / 2
    possible = (same_ind & off).sum() / 2
    return {
        "threshold": threshold,
        "k": k,
        "clusters": p.n_clusters,
        "joined": p.joined,
        "largest": p.largest,
        "pairs_linked": int(linked),
        "precision": float(right / linked) if linked else None,
        "recall": float(right / possible) if possible else None,
    }


def fmt(m: dict[str, float]) -> str:
    return f"{m['top1'] * 100:.1f} / {m['top5'] * 100:.1f} / {m['mAP'] * 100:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--folds", default="0,1,2")
    ap.add_argument("--modes", default="transductive,cross")
    ap.add_argument("--set", nargs="*", default=[], help="AdaptConfig / TrainConfig overrides, key=value")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "deerid-adapt-cache")
    ap.add_argument("--out", type=Path, default=None, help="where fold models go (default: a temp dir)")
    ap.add_argument("--diagnose", action="store_true", help="pseudo-label link quality only, no training")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    a_over, t_over = parse_set(args.set)
    base = AdaptConfig()
    config = replace(base, **a_over, train=replace(base.train, **t_over, cache_dir=str(args.cache_dir)))
    tcfg = config.train
    data = check_samples(load_identity_folder(args.data))
    samples = data.samples
    individuals = np.array([s[1] for s in samples])
    sightings = np.array([s[2] for s in samples])  # globally unique on nyala: one sighting, one animal

    frozen = FrozenSplit.load(replace(tcfg, device="cpu"))
    untrained = frozen.tail
    t0, c0 = time.monotonic(), time.process_time()
    feats, _ = frozen.features(data, tcfg, args.cache_dir, None)
    cache_wall, cache_cpu = time.monotonic() - t0, time.process_time() - c0
    print(f"cache: {tuple(feats.shape)} in {cache_wall:.0f} s wall, {cache_cpu:.0f} s CPU", flush=True)
    cpu = torch.device("cpu")
    base_vectors = embed_cached(untrained, feats[:, CLEAN], cpu).numpy()
    fold_masks = folds(individuals)

    if args.diagnose:
        rows = []
        for k in [int(x) for x in args.folds.split(",")]:
            for name, mask in (("fold", fold_masks[k]), ("other folds", ~fold_masks[k])):
                for kk in (1, 3, 5):
                    for thr in (0.7, 0.75, 0.8, 0.85, 0.9):
                        q = link_quality(base_vectors[mask], individuals[mask], sightings[mask], kk, thr)
                        rows.append({"fold": k, "set": name, **q})
                        prec = "—" if q["precision"] is None else f"{q['precision']:.2f}"
                        rec = "—" if q["recall"] is None else f"{q['recall']:.3f}"
                        print(
                            f"fold {k} {name:11s} k={kk} τ={thr:.2f}: {q['clusters']} clusters, "
                            f"{q['joined']} joined, largest {q['largest']}, {q['pairs_linked']} pairs, "
                            f"precision {prec}, recall {rec}",
                            flush=True,
                        )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        return

    out_root = args.out or Path(tempfile.mkdtemp(prefix="deerid-adapt-cv-"))
    results = {
        "config": config.to_json(),
        "cache_wall_s": cache_wall,
        "cache_cpu_s": cache_cpu,
        "n_images": len(samples),
        "folds": [],
    }
    modes = args.modes.split(",")
    for k in [int(x) for x in args.folds.split(",")]:
        test = fold_masks[k]
        ind, sig = list(individuals[test]), list(sightings[test])
        row: dict = {"fold": k, "n_test_images": int(test.sum())}
        row["untrained"] = measure(base_vectors[test], ind, sig)
        print(f"fold {k} untrained: photo {fmt(row['untrained']['photo'])}", flush=True)
        for mode in modes:
            pool = test if mode == "transductive" else ~test
            crops = [(samples[i][0], str(sightings[i])) for i in np.flatnonzero(pool)]
            tw, tc = time.monotonic(), time.process_time()

            def show(e: dict, k: int = k, mode: str = mode) -> None:
                if e.get("phase") == "epoch":
                    print(
                        f"  fold {k} {mode} epoch {e['epoch']}/{e['epochs']} loss {e['loss']:.3f} "
                        f"{e['seconds']:.0f}s",
                        flush=True,
                    )
                elif e.get("phase") in ("pseudo", "resume"):
                    print(f"  fold {k} {mode} pseudo-labels {e}", flush=True)

            if mode == "labelled":
                # Lever 6's reference: `deerid train` with the individual labels of the other folds
                # (early stopping on 15 % of them), on the same cache as adaptation (4 views, where
                # train_cv.py caches 6).
                lcfg = replace(
                    TrainConfig(),
                    n_aug_views=tcfg.n_aug_views,
                    cache_dir=str(args.cache_dir),
                    device=tcfg.device,
                )
                labelled = [samples[i] for i in np.flatnonzero(pool)]
                model = train(labelled, lcfg, out_root / f"fold{k}-{mode}", progress=show, resume=True)
            else:
                model = adapt(crops, config, out_root / f"fold{k}-{mode}", progress=show, resume=True)
            wall, cpu_s = time.monotonic() - tw, time.process_time() - tc
            tail = FrozenSplit.load(replace(tcfg, device="cpu")).tail  # a fresh, untrained tail
            tail.load_state_dict(torch.load(model.model_dir / WEIGHTS_FILE, weights_only=True))
            v = embed_cached(tail, feats[torch.from_numpy(np.flatnonzero(test)), CLEAN], cpu).numpy()
            q = link_quality(
                base_vectors[pool], individuals[pool], sightings[pool], config.link_k, config.link_threshold
            )
            row[mode] = {
                **measure(v, ind, sig),
                "adapt_images": int(pool.sum()),
                "wall_s": wall,
                "cpu_s": cpu_s,
                "pseudo": {
                    key: model.info.get("adapted", {}).get(key)
                    for key in (
                        "encounters",
                        "clusters",
                        "clusters_joining_encounters",
                        "largest_cluster_encounters",
                    )
                },
                "best_epoch": model.info["metrics"]["best_epoch"],
                "link_precision": q["precision"],
                "link_recall": q["recall"],
                "history": model.info["metrics"]["history"],
            }
            print(
                f"fold {k} {mode:12s}: photo {fmt(row[mode]['photo'])} "
                f"(untrained {fmt(row['untrained']['photo'])}), "
                f"sighting mean vector {fmt(row[mode]['sighting_mean_vector'])} "
                f"(untrained {fmt(row['untrained']['sighting_mean_vector'])}); "
                f"{pool.sum()} photos adapted on in {wall:.0f} s wall / {cpu_s:.0f} s CPU",
                flush=True,
            )
        results["folds"].append(row)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")

    print("\nmean over folds (top-1 / top-5 / mAP %):")
    for name in ("untrained", *modes):
        for q in ("photo", "sighting_mean_vector"):
            ms = [f[name][q] for f in results["folds"]]
            print(
                f"  {name:12s} {q:21s} "
                + " / ".join(f"{np.mean([m[x] for m in ms]) * 100:.1f}" for x in ("top1", "top5", "mAP"))
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
