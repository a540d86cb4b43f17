"""Cross-validated effect of `deerid train` on nyala re-identification.

    python benchmarks/train_cv.py [--folds 0,1,2] [--set key=value ...] [--json FILE]

3 folds across individuals of ../shared/data/nyala/train (the same seeded split as
benchmarks/backbones.py, ~60 individuals per held-out fold): train on the other two
thirds, then embed the held-out individuals with the untrained default and the trained
model, with and without the cheap test-time options (mirror averaging, centring).
Metrics: top-1 / top-5 / mAP from deerid.evaluation.retrieval (same-sighting matches
excluded). The frozen-trunk cache is built once for all images and shared by the folds
(views do not depend on the fold); its time is reported separately.
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
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from deerid.embed.model_file import WEIGHTS_FILE  # noqa: E402
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics  # noqa: E402
from deerid.training import TrainConfig, train  # noqa: E402
from deerid.training.cache import CLEAN, MIRROR  # noqa: E402
from deerid.training.data import check_samples  # noqa: E402
from deerid.training.loop import FrozenSplit, embed_cached  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "nyala" / "train"
N_FOLDS = 3


def folds(individuals: np.ndarray) -> list[np.ndarray]:
    ids = np.random.default_rng(0).permutation(np.unique(individuals))
    return [np.isin(individuals, ids[k::N_FOLDS]) for k in range(N_FOLDS)]


def parse_set(items: list[str]) -> dict:
    types = {f.name: f.type for f in fields(TrainConfig)}
    out = {}
    for item in items:
        k, v = item.split("=", 1)
        if k not in types:
            raise SystemExit(f"unknown TrainConfig field {k}")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v  # a plain string such as loss=triplet
    return out


def variants(tail, feats, center_from: torch.Tensor | None) -> dict[str, np.ndarray]:
    dev = torch.device("cpu")
    v = embed_cached(tail, feats[:, CLEAN], dev)
    vf = F.normalize(v + embed_cached(tail, feats[:, MIRROR], dev), dim=1)
    out = {"plain": v, "flip": vf}
    if center_from is not None:
        out["center"] = F.normalize(v - center_from, dim=1)
        out["flip+center"] = F.normalize(vf - center_from, dim=1)
    return {k: x.numpy() for k, x in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--folds", default="0,1,2")
    ap.add_argument("--set", nargs="*", default=[], help="TrainConfig overrides, key=value (JSON values)")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "deerid-train-cv-cache")
    ap.add_argument("--out", type=Path, default=None, help="where fold models go (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = replace(TrainConfig(), **parse_set(args.set), cache_dir=str(args.cache_dir))
    samples = load_identity_folder(args.data)
    data = check_samples(samples)
    samples = data.samples
    individuals = np.array([s[1] for s in samples])
    sightings = np.array([s[2] for s in samples])

    frozen = FrozenSplit.load(replace(cfg, device="cpu"))
    t0, c0 = time.monotonic(), time.process_time()
    feats, _ = frozen.features(data, cfg, args.cache_dir, None)
    cache_wall, cache_cpu = time.monotonic() - t0, time.process_time() - c0
    print(f"cache: {feats.shape} in {cache_wall:.0f} s wall, {cache_cpu:.0f} s CPU", flush=True)

    out_root = args.out or Path(tempfile.mkdtemp(prefix="deerid-train-cv-"))
    results = {
        "config": cfg.to_json(),
        "cache_wall_s": cache_wall,
        "cache_cpu_s": cache_cpu,
        "n_images": len(samples),
        "folds": [],
    }
    for k in [int(x) for x in args.folds.split(",")]:
        test = folds(individuals)[k]
        train_samples = [s for s, t in zip(samples, test, strict=True) if not t]
        tw, tc = time.monotonic(), time.process_time()

        def show(e: dict, k: int = k) -> None:
            if e.get("phase") == "epoch":
                print(
                    f"  fold {k} epoch {e['epoch']}/{e['epochs']} loss {e['loss']:.3f} "
                    f"val {e['val_score']} {e['seconds']:.0f}s eta {e['eta_s']:.0f}s",
                    flush=True,
                )

        model = train(train_samples, cfg, out_root / f"fold{k}", progress=show, resume=False)
        train_wall, train_cpu = time.monotonic() - tw, time.process_time() - tc

        tf = feats[torch.from_numpy(np.flatnonzero(test))]
        ind, sig = list(individuals[test]), list(sightings[test])
        untrained = FrozenSplit.load(replace(cfg, device="cpu")).tail  # a fresh, untrained tail
        # Untrained + centring on the training folds' mean (a shippable option for the default too).
        trf = feats[torch.from_numpy(np.flatnonzero(~test))]
        u_center = embed_cached(untrained, trf[:, CLEAN], torch.device("cpu")).mean(0)
        trained = FrozenSplit.load(replace(cfg, device="cpu")).tail  # the trained weights go in next
        trained.load_state_dict(torch.load(model.model_dir / WEIGHTS_FILE, weights_only=True))
        t_center = trained.center.clone()
        trained.center.zero_()
        row = {
            "fold": k,
            "n_test_images": int(test.sum()),
            "train_wall_s": train_wall,
            "train_cpu_s": train_cpu,
            "best_epoch": model.info["metrics"]["best_epoch"],
            "epochs_run": len(model.info["metrics"]["history"]),
            "untrained": {},
            "trained": {},
        }
        for name, tail, c in (("untrained", untrained, u_center), ("trained", trained, t_center)):
            for opt, v in variants(tail, tf, c).items():
                m = retrieval_metrics(v, ind, sig)
                row[name][opt] = {x: m[x] for x in ("top1", "top5", "mAP", "n_queries")}
        results["folds"].append(row)
        print(
            f"fold {k}: best epoch {row['best_epoch']}/{row['epochs_run']}, train {train_wall:.0f} s wall "
            f"/ {train_cpu:.0f} s CPU",
            flush=True,
        )
        for name in ("untrained", "trained"):
            print(
                "   ",
                name,
                " ".join(
                    f"{o}: {m['top1'] * 100:.1f}/{m['top5'] * 100:.1f}/{m['mAP'] * 100:.1f}"
                    for o, m in row[name].items()
                ),
                flush=True,
            )

    print("\nmean over folds (top-1 / top-5 / mAP %):")
    for name in ("untrained", "trained"):
        for opt in results["folds"][0][name]:
            ms = [f[name][opt] for f in results["folds"]]
            print(
                f"  {name:9s} {opt:12s} "
                + " / ".join(f"{np.mean([m[x] for m in ms]) * 100:.1f}" for x in ("top1", "top5", "mAP"))
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
