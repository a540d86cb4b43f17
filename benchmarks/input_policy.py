"""Issue 9, lever 3 (input): resolution, aspect-preserving crops and test-time flips, cross-validated.

    python benchmarks/input_policy.py [--configs sq240 sq320 ...] [--skip-review] [--skip-cost] [--json]

Every configuration embeds ../shared/data/nyala/train once with the product embedder
(`get_embedder(Settings(embed_input_size=...))`, ONNX Runtime on the CPU, so the model ids are
the product's) and caches the vectors under --cache (default /tmp/rank-cache) with the
configuration in the file name. The metrics are docs/ranking.md's, from benchmarks/ranking.py:

1. Photo queries on benchmarks/openset_cv.py's 3 folds by individual: every photo of a held-out
   fold queries every other photo of that fold except its own sighting's (`retrieval_metrics`),
   top-1 / top-5 / mAP per fold and mean. Nothing is tuned, so no fold chooses anything.
2. Review effort for the baseline and the best configuration: the shipped top-8 screen over
   encounters with raw scores (`simulate_review`, through ranking.py's `review_scores` exactly as
   its baseline row), decisions per photo to BCubed F1 0.8 / 0.9 / 0.95.
3. Cost per image: the same 32 photos through each configuration's whole path (decode, resize
   or pad, network), the configurations taking turns over 7 rounds so load from other work on
   the shared cores hits every one alike; the least round, and its ratio to today's square 240.

Nyala photos are already crops of the animal (each file is the body box, at most 512 px), and
ranking.py reads each whole file as the crop. So a "margin" here can only be padding: the
surroundings a trail-camera box would get from its photo do not exist in this data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deerid.core.config import Settings
from deerid.embed.embedder import get_embedder
from deerid.embed.resize import squash
from deerid.evaluation import review as review_eval
from deerid.evaluation.data import LabelledSet
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics
from openset_cv import NYALA, folds
from ranking import review_scores

IMAGENET_MEAN_RGB = (124, 116, 104)
"""The backbone's normalisation mean in 0-255: padding with it feeds the network zeros."""

Prepare = Callable[[Image.Image, int], np.ndarray]


def pad_to_square(margin: float, fill: str) -> Prepare:
    """Aspect kept: the crop, plus `margin` of its longer side on every side, centred on a square
    canvas filled with the ImageNet mean (`fill="mean"`) or the crop mirrored at its edges
    (`fill="reflect"`), then resized to the input size."""

    def prepare(image: Image.Image, size: int) -> np.ndarray:
        rgb = image.convert("RGB")
        w, h = rgb.size
        side = round(max(w, h) * (1 + 2 * margin))
        if fill == "mean":
            scale = size / side
            inner = rgb.resize(
                (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR
            )
            canvas = Image.new("RGB", (size, size), IMAGENET_MEAN_RGB)
            canvas.paste(inner, ((size - inner.width) // 2, (size - inner.height) // 2))
            return np.asarray(canvas)
        left, top = (side - w) // 2, (side - h) // 2
        padded = np.pad(
            np.asarray(rgb), ((top, side - h - top), (left, side - w - left), (0, 0)), mode="reflect"
        )
        return squash(Image.fromarray(padded), size)

    return prepare


@dataclass(frozen=True)
class Config:
    size: int
    prepare: Prepare
    flip: bool = False
    label: str = ""


POLICIES: dict[str, tuple[Prepare, str]] = {
    "sq": (squash, "square resize"),
    "padmean0-": (pad_to_square(0.0, "mean"), "aspect kept, mean pad"),
    "padmean10-": (pad_to_square(0.1, "mean"), "aspect kept + 10 % margin, mean pad"),
    "padreflect0-": (pad_to_square(0.0, "reflect"), "aspect kept, reflect pad"),
    "padreflect10-": (pad_to_square(0.1, "reflect"), "aspect kept + 10 % margin, reflect pad"),
}


def config(name: str) -> Config:
    """`<policy><size>[flip]`, e.g. sq240 (today), sq384, padmean10-240, sq240flip."""
    flip = name.endswith("flip")
    stem = name.removesuffix("flip")
    for prefix, (prepare, label) in sorted(POLICIES.items(), key=lambda kv: -len(kv[0])):
        if stem.startswith(prefix) and stem[len(prefix) :].isdigit():
            size = int(stem[len(prefix) :])
            return Config(size, prepare, flip, f"{label}, {size}" + (", + h-flip mean" if flip else ""))
    raise ValueError(f"unknown configuration {name!r}: <{'|'.join(POLICIES)}><size>[flip]")


TABLE = [
    "sq240",
    "sq208",
    "sq256",
    "sq272",
    "sq288",
    "sq304",
    "sq320",
    "sq384",
    "padmean0-240",
    "padmean10-240",
    "padreflect0-240",
    "padreflect10-240",
    "sq240flip",
    "padmean0-288",
    "padmean10-288",
    "padreflect0-288",
    "sq288flip",
]
"""docs/ranking.md's lever 3 rows, today's first."""


def _embedder(size: int, data_dir: Path) -> Any:
    # One data dir for every run, so each size's ONNX export is made once and reused.
    settings = Settings(device="cpu", data_dir=data_dir, embed_input_size=size, embed_batch_size=32)
    return get_embedder(settings)


def embed_config(
    config: Config, paths: list[Path], data_dir: Path, batch: int = 32
) -> tuple[np.ndarray, str]:
    """L2-normalised vectors of `paths` under `config`, and the embedder's model id."""
    embedder = _embedder(config.size, data_dir)
    out = []
    for start in range(0, len(paths), batch):
        arrays = []
        for p in paths[start : start + batch]:
            with Image.open(p) as image:
                arrays.append(config.prepare(image.convert("RGB"), config.size))
        v = np.asarray(embedder.embed(arrays), dtype=np.float64)
        if config.flip:
            # Mean of the two unit vectors, renormalised: the flip's share of the query.
            v = v + embedder.embed([np.ascontiguousarray(a[:, ::-1]) for a in arrays])
            v /= np.linalg.norm(v, axis=1, keepdims=True)
        out.append(v)
    return np.concatenate(out), embedder.model_id


def load_config(
    name: str, cache: Path, data_dir: Path
) -> tuple[np.ndarray, list[str], list[str], str, float]:
    """(vectors, individuals, sightings, model id, embed seconds), embedded once and cached."""
    vec_path, meta_path = cache / f"input_{name}_vectors.npy", cache / f"input_{name}_meta.json"
    if not (vec_path.exists() and meta_path.exists()):
        items = load_identity_folder(NYALA)
        _embedder(config(name).size, data_dir)  # export outside the timed run
        started = time.perf_counter()
        vectors, model_id = embed_config(config(name), [p for p, _, _ in items], data_dir)
        seconds = time.perf_counter() - started
        cache.mkdir(parents=True, exist_ok=True)
        np.save(vec_path, vectors.astype(np.float32))
        meta = {"model_id": model_id, "seconds": seconds, "items": [[str(p), i, s] for p, i, s in items]}
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())
    items = meta["items"]
    return (
        np.load(vec_path).astype(np.float64),
        [i for _, i, _ in items],
        [s for _, _, s in items],
        meta["model_id"],
        float(meta["seconds"]),
    )


def photo_cv(x: np.ndarray, ind: list[str], sig: list[str]) -> dict[str, Any]:
    rows = []
    for k, test in enumerate(folds(np.asarray(ind))):
        held = np.flatnonzero(test)
        rows.append({"fold": k, **retrieval_metrics(x[held], [ind[i] for i in held], [sig[i] for i in held])})
    mean = {key: float(np.mean([r[key] for r in rows])) for key in ("top1", "top5", "mAP")}
    return {"folds": rows, "mean": mean}


def top1_hits(x: np.ndarray, ind: list[str], sig: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hit, individual code) per valid query of each held-out fold, folds concatenated: the
    top-1 of `retrieval_metrics` query by query (same exclusion, same stable tie-break), so two
    configurations can be compared on the same queries."""
    hits, who = [], []
    codes = np.unique(ind, return_inverse=True)[1]
    for test in folds(np.asarray(ind)):
        held = np.flatnonzero(test)
        v = x[held] / np.linalg.norm(x[held], axis=1, keepdims=True)
        h_ind = codes[held]
        h_sig = np.unique([f"{ind[i]}\x00{sig[i]}" for i in held], return_inverse=True)[1]
        sim = v @ v.T
        for q in range(len(held)):
            keep = h_sig != h_sig[q]
            relevant = h_ind[keep] == h_ind[q]
            if relevant.any():
                hits.append(relevant[np.argsort(-sim[q, keep], kind="stable")[0]])
                who.append(h_ind[q])
    return np.asarray(hits, dtype=float), np.asarray(who)


def paired_top1(
    base: np.ndarray, other: np.ndarray, who: np.ndarray, ind: list[str], reps: int = 2000
) -> dict[str, float]:
    """Fold-mean top-1 difference (points) of `other` over `base` on the same queries, with a 95 %
    interval from resampling individuals within each fold (queries of one animal move together)."""
    masks = folds(np.asarray(ind))
    codes = np.unique(ind, return_inverse=True)[1]
    fold_of = np.empty(len(who), dtype=int)
    for k, test in enumerate(masks):
        fold_of[np.isin(who, np.unique(codes[test]))] = k
    diff = other - base
    rng = np.random.default_rng(0)
    groups = [
        [np.flatnonzero((fold_of == k) & (who == a)) for a in np.unique(who[fold_of == k])]
        for k in range(len(masks))
    ]
    boot = []
    for _ in range(reps):
        means = []
        for g in groups:
            pick = np.concatenate([g[i] for i in rng.integers(0, len(g), len(g))])
            means.append(diff[pick].mean())
        boot.append(100 * np.mean(means))
    point = 100 * np.mean([diff[fold_of == k].mean() for k in range(len(masks))])
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {
        "top1_diff_points": round(float(point), 2),
        "ci95": [round(float(lo), 2), round(float(hi), 2)],
        "only_other_right": int(((other == 1) & (base == 0)).sum()),
        "only_base_right": int(((other == 0) & (base == 1)).sum()),
    }


def tuned_across_folds(names: list[str], cache: Path, data_dir: Path) -> dict[str, Any]:
    """docs/ranking.md's tuning rule applied to the choice of configuration: for each held-out
    fold, the configuration with the best mAP on the *other two* folds' individuals (one gallery),
    then that configuration's metrics on the held-out fold. Picking the best row of the table
    instead would tune on the reported folds."""
    loaded = {name: load_config(name, cache, data_dir) for name in names}
    ind, sig = loaded[names[0]][1], loaded[names[0]][2]
    rows = []
    for k, test in enumerate(folds(np.asarray(ind))):
        tune, held = np.flatnonzero(~test), np.flatnonzero(test)
        scores = {
            name: retrieval_metrics(v[0][tune], [ind[i] for i in tune], [sig[i] for i in tune])["mAP"]
            for name, v in loaded.items()
        }
        chosen = max(names, key=lambda n: scores[n])
        x = loaded[chosen][0]
        m = retrieval_metrics(x[held], [ind[i] for i in held], [sig[i] for i in held])
        rows.append({"fold": k, "chosen": chosen, **m})
    mean = {key: float(np.mean([r[key] for r in rows])) for key in ("top1", "top5", "mAP")}
    return {"folds": rows, "mean": mean}


def review_cv(x: np.ndarray, ind: list[str], sig: list[str]) -> dict[str, Any]:
    curves = []
    for test in folds(np.asarray(ind)):
        held = np.flatnonzero(test)
        data = LabelledSet.build(x[held], [ind[i] for i in held], [sig[i] for i in held])
        with review_scores(None, "max"):
            curves.append(review_eval.simulate_review(data, k=8))
    return {"folds": [c.as_dict() for c in curves], "mean": review_eval.mean_review(curves)}


def cost(names: list[str], data_dir: Path, n: int = 32, rounds: int = 7) -> dict[str, dict[str, float]]:
    """Milliseconds per image (decode + prepare + network) on the same 32 photos, least of
    `rounds`. Configurations take turns batch by batch, so load from other work on the shared
    cores reaches each of them alike, and the least of the rounds is the one least disturbed."""
    paths = [p for p, _, _ in load_identity_folder(NYALA)][:: max(1, 1213 // n)][:n]
    for name in names:
        embed_config(config(name), paths, data_dir)  # warm: export, sessions, caches
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            started = time.perf_counter()
            embed_config(config(name), paths, data_dir)
            times[name].append(1000 * (time.perf_counter() - started) / len(paths))
    base = min(times[names[0]])
    return {
        name: {
            "ms_per_image": round(min(t), 1),
            "median_ms": round(float(np.median(t)), 1),
            "vs_first": round(min(t) / base, 2),
        }
        for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rank-cache"))
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "rank-cache" / "deerid-data"
    )
    parser.add_argument(
        "--configs",
        nargs="*",
        default=TABLE,
        help="first = baseline for the ratios; <policy><size>[flip], policies: " + ", ".join(POLICIES),
    )
    parser.add_argument(
        "--review",
        nargs="*",
        default=None,
        help="configs to run the review oracle on (default: first and best)",
    )
    parser.add_argument("--skip-review", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    out: dict[str, Any] = {"photo": {}, "review": {}}
    for name in args.configs:
        x, ind, sig, model_id, seconds = load_config(name, args.cache, args.data_dir)
        r = photo_cv(x, ind, sig)
        out["photo"][name] = {"model_id": model_id, "embed_s": round(seconds, 1), **r}
        folds_txt = " | ".join(f"{f['top1']:.1%} {f['top5']:.1%} {f['mAP']:.1%}" for f in r["folds"])
        m = r["mean"]
        print(
            f"  {name:18s} {folds_txt} | mean {m['top1']:.1%} {m['top5']:.1%} {m['mAP']:.1%} "
            f"| {model_id}, embedded in {seconds:.0f} s",
            flush=True,
        )
    base_x, base_ind, base_sig, *_ = load_config(args.configs[0], args.cache, args.data_dir)
    base_hits, who = top1_hits(base_x, base_ind, base_sig)
    for name in args.configs[1:]:
        x, ind, sig, *_ = load_config(name, args.cache, args.data_dir)
        other, _ = top1_hits(x, ind, sig)
        out["photo"][name]["paired_vs_first"] = d = paired_top1(base_hits, other, who, base_ind)
        print(
            f"  paired {name:18s} top-1 {d['top1_diff_points']:+.1f} points vs {args.configs[0]}, 95 % "
            f"{d['ci95']}, queries only it gets right {d['only_other_right']}, only "
            f"{args.configs[0]} {d['only_base_right']}",
            flush=True,
        )
    squares = [n for n in args.configs if n.startswith("sq") and not n.endswith("flip")]
    if len(squares) > 1:
        out["size_tuned"] = t = tuned_across_folds(squares, args.cache, args.data_dir)
        print(
            "  size chosen on the other folds: "
            + " | ".join(f"{f['chosen']} {f['top1']:.1%} {f['top5']:.1%} {f['mAP']:.1%}" for f in t["folds"])
            + f" | mean {t['mean']['top1']:.1%} {t['mean']['top5']:.1%} {t['mean']['mAP']:.1%}",
            flush=True,
        )
    if not args.skip_review:
        best = max(args.configs, key=lambda c: out["photo"][c]["mean"]["top1"])
        for name in args.review if args.review is not None else list(dict.fromkeys([args.configs[0], best])):
            x, ind, sig, *_ = load_config(name, args.cache, args.data_dir)
            out["review"][name] = review_cv(x, ind, sig)
            rv = out["review"][name]
            print(
                f"  review {name:18s} to F1 0.8/0.9/0.95 (mean) "
                f"{list(rv['mean']['decisions_per_image_to_f1'].values())}, per fold "
                f"{[f['decisions_per_image_to_f1'] for f in rv['folds']]}",
                flush=True,
            )
    if not args.skip_cost:
        out["cost"] = cost(args.configs, args.data_dir)
        for name, c in out["cost"].items():
            print(
                f"  cost {name:18s} {c['ms_per_image']} ms/image, median {c['median_ms']} "
                f"({c['vs_first']}× {args.configs[0]})",
                flush=True,
            )
    if args.json:
        print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
