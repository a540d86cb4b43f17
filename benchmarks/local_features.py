"""Local-feature verification of the top-K cosine candidates (issue 9, lever 5), cross-validated.

    python benchmarks/local_features.py [--configs sift-full-500 sift-384 ...] [--k 8]
        [--max-queries N] [--skip-feeder] [--skip-nyala] [--json PATH]
        [--review CONFIG GEOMETRY] [--exclude-near N]
    python benchmarks/local_features.py --cost --configs ...   # cost per crop, pair and query only

What it measures (docs/ranking.md, "Lever 5", holds the table and the reading of it):

1. Photo queries on ../shared/data/nyala/train with the 3 folds by individual of
   benchmarks/openset_cv.py (`folds()`), the protocol of `retrieval_metrics`: each photo of a
   held-out fold queries the other photos of that fold except those of its own sighting. Its
   top-K candidates by the default embedder's cosine (vectors cached as benchmarks/ranking.py
   does) are re-ranked; everything below K keeps its cosine order. Rows:
   - cosine (baseline);
   - RANSAC inliers alone (ties keep their cosine order);
   - fusion: the cosine and the inlier count each mapped to a same-animal probability by
     isotonic regression (`deerid.domain.probability.SameAnimalProbability`, the product's
     calibration) fitted on the top-K pairs of the *other two* folds' queries, then combined
     either as a product of odds (naive Bayes: logit p_cos + logit p_inl − logit base rate) or
     by a logistic regression on the two logits, also fitted on the other folds.
   top-1 / top-5 / mAP are computed over the whole ranking (below K unchanged), so they are
   comparable with docs/ranking.md's cosine row (14.3 / 40.8 / 11.2); "in top-K" is the share
   of queries whose animal is among the K at all, the ceiling of any re-ranking.
2. Costs: milliseconds to extract one crop's keypoints, to match and verify one pair, and so
   per query (the query's extraction plus K pair verifications, gallery keypoints cached; and
   with every crop extracted on the fly). The study records them as it goes; `--cost` measures
   them apart, the configs taking turns on the same queries, fastest round kept.
3. The feeder bucks (../shared/data/trailcam): inliers between boxes annotated as the same
   buck (buck-A: 5 boxes, buck-B: 2) against pairs of a buck and a deer known to be another
   animal (the other buck, does), split by whether the two photos come from one camera.

`--review` adds the review effort (decisions per photo to F1 0.95, benchmarks/ranking.py's
oracle) with that config's inliers fused into every photo's top-K pairs. `--exclude-near N` is
a diagnostic protocol (see `fold_queries`), never the reported one.

Keypoints per crop and the scores of every pair are cached under --cache (default
/tmp/local-features-cache), never inside the repository; the nyala vectors under /tmp/rank-cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deerid.domain import verify
from deerid.domain.probability import SameAnimalProbability
from openset_cv import folds
from ranking import _units, load_nyala

SHARED = Path(__file__).resolve().parents[2] / "shared"
FEEDER = SHARED / "data" / "trailcam" / "feeder"
FEEDER_JSON = SHARED / "data" / "trailcam" / "feeder.detections.json"
GEOMETRIES: tuple[verify.Geometry, ...] = ("homography", "affine", "fundamental")

# name -> how to get a crop's keypoints. "base" configs reuse another config's cached keypoints:
# RootSIFT is a transform of SIFT descriptors, and a smaller budget keeps the strongest points.
CONFIGS: dict[str, dict[str, Any]] = {
    # REID_NOTES.md's setting, measured "at chance": 800 SIFT keypoints at 384 px.
    "sift-384": {"method": "sift", "max_side": 384, "n_features": 800},
    # Full crop resolution: nyala crops are at most 512 px, so this is the photo as stored.
    "sift-full": {"method": "sift", "max_side": None, "n_features": 2000},
    "sift-full-500": {"base": "sift-full", "strongest": 500},
    "sift-full-1000": {"base": "sift-full", "strongest": 1000},
    "rootsift-full": {"base": "sift-full", "root": True},
    "rootsift-full-1000": {"base": "sift-full-1000", "root": True},
    "rootsift-full-500": {"base": "sift-full-500", "root": True},
    "orb-full": {"method": "orb", "max_side": None, "n_features": 2000},
}


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _loader(path: str) -> Callable[[], np.ndarray]:
    return lambda: _rgb(Path(path))


# -- keypoints and pair scores, cached --------------------------------------------------------------


class FeatureStore:
    """Keypoints of each crop under one config, extracted once, one .npz per crop under the cache
    (float descriptors kept as float16: a 2,000-point SIFT crop is 0.5 MB instead of 1 MB)."""

    def __init__(self, name: str, cache: Path) -> None:
        self.name, self.spec = name, CONFIGS[name]
        self.base = FeatureStore(self.spec["base"], cache) if "base" in self.spec else None
        self.folder = cache / f"features-{name}"
        self.ms: dict[str, float] = {}

    def _file(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha1(key.encode()).hexdigest()}.npz"

    def get(self, key: str, load: Callable[[], np.ndarray]) -> verify.LocalFeatures:
        if self.base is not None:
            f = self.base.get(key, load)
            if "strongest" in self.spec:
                f = f.strongest(self.spec["strongest"])
            return verify.root_sift(f) if self.spec.get("root") else f
        path = self._file(key)
        if path.exists():
            with np.load(path) as saved:
                arrays = dict(saved)
            self.ms[key] = float(arrays.pop("ms"))
            if arrays["descriptors"].dtype == np.float16:
                arrays["descriptors"] = arrays["descriptors"].astype(np.float32)
            return verify.LocalFeatures.from_arrays(arrays)
        image = load()
        started = time.perf_counter()
        f = verify.extract(
            image,
            method=self.spec["method"],
            max_side=self.spec["max_side"],
            n_features=self.spec["n_features"],
        )
        self.ms[key] = 1000 * (time.perf_counter() - started)
        arrays = f.to_arrays()
        if not f.binary:
            arrays["descriptors"] = arrays["descriptors"].astype(np.float16)
        self.folder.mkdir(parents=True, exist_ok=True)
        np.savez(path, ms=np.array(self.ms[key]), **arrays)
        # Read back through the same path so a fresh and a cached run score identical descriptors.
        return self.get(key, load)

    def extract_ms(self) -> list[float]:
        return self.base.extract_ms() if self.base is not None else list(self.ms.values())


def score_pair(a: verify.LocalFeatures, b: verify.LocalFeatures) -> dict[str, Any]:
    """Ratio-test matches once, then inliers under each geometry, with the time of each step."""
    started = time.perf_counter()
    m = verify.ratio_matches(a, b)
    out: dict[str, Any] = {"matches": len(m), "ms_match": 1000 * (time.perf_counter() - started)}
    for g in GEOMETRIES:
        started = time.perf_counter()
        out[g] = verify.geometric_inliers(a, b, m, geometry=g)
        out[f"ms_{g}"] = 1000 * (time.perf_counter() - started)
    return out


class PairStore:
    """Scores of crop pairs under one config, keyed by the two crops' keys (sorted: the score of
    a pair is computed once, with the lexically first crop matched against the second)."""

    def __init__(self, name: str, cache: Path) -> None:
        self.path = cache / f"pairs-{name}.pkl"
        self.data: dict[tuple[str, str], dict[str, Any]] = (
            pickle.loads(self.path.read_bytes()) if self.path.exists() else {}
        )

    def score(
        self, a: str, b: str, features: FeatureStore, load: Callable[[str], np.ndarray]
    ) -> dict[str, Any]:
        key = (a, b) if a <= b else (b, a)
        if key not in self.data:
            fa = features.get(key[0], lambda: load(key[0]))
            fb = features.get(key[1], lambda: load(key[1]))
            self.data[key] = score_pair(fa, fb)
        return self.data[key]

    def save(self) -> None:
        self.path.write_bytes(pickle.dumps(self.data))


# -- candidates and re-ranking -----------------------------------------------------------------------


def fold_queries(
    x: np.ndarray,
    ind: list[str],
    unit: np.ndarray,
    test: np.ndarray,
    k: int,
    max_queries: int | None,
    scene: tuple[np.ndarray, int] | None = None,
) -> list[dict[str, Any]]:
    """Each valid query of a held-out fold: its cosine order over the fold (own sighting left
    out), which rows are its animal, and its top-k.

    `scene` = (sighting numbers, n) also leaves out every photo whose sighting number is within
    n of the query's, whatever its animal: a diagnostic stand-in for the product's rule that
    animals of one event are never candidates for each other (nyala sightings of a herd were
    numbered in a row, and their crops share background and each other)."""
    held = np.flatnonzero(test)
    ind_arr = np.asarray(ind)[held]
    unit_h = unit[held]
    sim = x[held] @ x[held].T
    rows = []
    for r, q in enumerate(held):
        allowed = unit_h != unit_h[r]
        if scene is not None:
            numbers = scene[0][held]
            allowed &= np.abs(numbers - numbers[r]) > scene[1]
        keep = np.flatnonzero(allowed)
        relevant = ind_arr[keep] == ind_arr[r]
        if not relevant.any():
            continue
        order = np.argsort(-sim[r, keep], kind="stable")
        rows.append(
            {
                "q": int(q),
                "gallery": held[keep[order]],
                "cos": sim[r, keep[order]],
                "hits": relevant[order],
            }
        )
    if max_queries is not None and len(rows) > max_queries:
        pick = np.sort(np.random.default_rng(0).choice(len(rows), max_queries, replace=False))
        rows = [rows[i] for i in pick]
    for row in rows:
        row["top"] = row["gallery"][:k]
    return rows


def query_metrics(hits: np.ndarray) -> tuple[float, float, float]:
    """top-1, top-5 and average precision of one query's hit list (the retrieval_metrics rule)."""
    ranks = np.flatnonzero(hits) + 1
    return float(hits[0]), float(hits[:5].any()), float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def reranked_hits(row: dict[str, Any], score: np.ndarray) -> np.ndarray:
    """The query's hit list with its top-K ordered by `score` (descending, ties in cosine order)."""
    k = len(score)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    return np.concatenate([row["hits"][:k][order], row["hits"][k:]])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_logistic(features: np.ndarray, y: np.ndarray, ridge: float = 1e-3, steps: int = 50) -> np.ndarray:
    """Weights (bias first) of a logistic regression by Newton steps; a small ridge keeps it finite
    when the classes separate."""
    a = np.column_stack([np.ones(len(features)), features])
    w = np.zeros(a.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) + ridge * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + ridge * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


class Fusion:
    """Cosine and inliers, each calibrated by isotonic regression on training pairs, then fused."""

    def __init__(self, cos: np.ndarray, inl: np.ndarray, same: np.ndarray) -> None:
        self.p_cos = SameAnimalProbability.fit(cos, same)
        self.p_inl = SameAnimalProbability.fit(inl, same)
        self.base_logit = float(_logit(np.array([same.mean()]))[0])
        self.w = fit_logistic(self._features(cos, inl), same.astype(np.float64))

    def _features(self, cos: np.ndarray, inl: np.ndarray) -> np.ndarray:
        return np.column_stack([_logit(self.p_cos(cos)), _logit(self.p_inl(inl.astype(np.float64)))])

    def odds_product(self, cos: np.ndarray, inl: np.ndarray) -> np.ndarray:
        f = self._features(cos, inl)
        return f[:, 0] + f[:, 1] - self.base_logit

    def logistic(self, cos: np.ndarray, inl: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(cos)), self._features(cos, inl)]) @ self.w


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a same-animal pair > a different-animal pair's), ties counted half."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    ranks = np.argsort(np.argsort(allv, kind="stable"), kind="stable").astype(np.float64) + 1
    # Average ranks over ties.
    for v in np.unique(allv):
        tie = allv == v
        ranks[tie] = ranks[tie].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def paired_interval(
    delta: list[np.ndarray], animal: list[np.ndarray], draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Fold-mean difference and its 95 % interval, resampling animals within each fold (the
    queries of one animal move together)."""
    rng = np.random.default_rng(seed)
    means = np.zeros(draws)
    for d, a in zip(delta, animal, strict=True):
        ids, inverse = np.unique(a, return_inverse=True)
        sums = np.bincount(inverse, weights=d)
        counts = np.bincount(inverse).astype(np.float64)
        pick = rng.integers(0, len(ids), size=(draws, len(ids)))
        means += sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    means /= len(delta)
    point = float(np.mean([d.mean() for d in delta]))
    return point, float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


# -- the nyala study ---------------------------------------------------------------------------------


def nyala_study(
    configs: list[str],
    k: int,
    cache: Path,
    max_queries: int | None,
    rank_cache: Path,
    review: tuple[str, str] | None = None,
    exclude_near: int | None = None,
) -> dict[str, Any]:
    x, ind, sig, model_id = load_nyala(rank_cache)
    items = json.loads((rank_cache / "nyala_meta.json").read_text())["items"]
    paths = [p for p, _, _ in items]
    unit = _units(ind, sig)
    masks = folds(np.asarray(ind))
    numbers = np.array([int("".join(ch for ch in s if ch.isdigit()) or -1) for s in sig])
    near = (numbers, exclude_near) if exclude_near is not None else None
    queries = [fold_queries(x, ind, unit, test, k, max_queries, near) for test in masks]
    n_pairs = len({tuple(sorted((paths[r["q"]], paths[c]))) for f in queries for r in f for c in r["top"]})
    print(
        f"nyala: {len(paths)} photos, model {model_id}, queries per fold {[len(f) for f in queries]}, "
        f"{n_pairs} distinct top-{k} pairs",
        flush=True,
    )
    out: dict[str, Any] = {
        "model_id": model_id,
        "k": k,
        "n_queries": [len(f) for f in queries],
        "configs": {},
    }

    def load(path: str) -> np.ndarray:
        return _rgb(Path(path))

    baseline_done = False
    for name in configs:
        features, pairs = FeatureStore(name, cache), PairStore(name, cache)
        started, done = time.perf_counter(), 0
        # Per fold, per query: (K,) arrays of cosine, inliers per geometry, matches, same animal.
        per_fold: list[list[dict[str, np.ndarray]]] = []
        for fold in queries:
            rows = []
            for r in fold:
                scores = [pairs.score(paths[r["q"]], paths[c], features, load) for c in r["top"]]
                rec = {
                    "cos": r["cos"][: len(r["top"])],
                    "same": r["hits"][: len(r["top"])],
                    "matches": np.array([s["matches"] for s in scores], np.float64),
                }
                for g in GEOMETRIES:
                    rec[g] = np.array([s[g] for s in scores], np.float64)
                rows.append(rec)
                done += 1
                if done % 100 == 0:
                    pairs.save()
                    print(f"  {name}: {done} queries, {time.perf_counter() - started:.0f} s", flush=True)
            per_fold.append(rows)
        pairs.save()
        out["configs"][name] = evaluate_config(name, queries, per_fold, features, pairs, paths, ind)
        if review is not None and review[0] == name:
            out["review"] = review_effort(
                x, ind, sig, unit, masks, per_fold, features, pairs, paths, k, review[1]
            )
        if not baseline_done:
            out["baseline"] = out["configs"][name].pop("cosine (baseline)")
            baseline_done = True
        else:
            out["configs"][name].pop("cosine (baseline)")
    return out


def evaluate_config(
    name: str,
    queries: list[list[dict[str, Any]]],
    per_fold: list[list[dict[str, np.ndarray]]],
    features: FeatureStore,
    pairs: PairStore,
    paths: list[str],
    ind: list[str],
) -> dict[str, Any]:
    """Every ranking variant of one keypoint config, per held-out fold and mean, plus costs."""
    variants: dict[str, dict[str, Any]] = {}
    baseline_hits: list[np.ndarray] = []
    animals = [np.array([ind[r["q"]] for r in fold]) for fold in queries]

    def record(variant: str, fold: int, hits_per_query: list[np.ndarray], extra: dict[str, Any]) -> None:
        m = np.array([query_metrics(h) for h in hits_per_query])
        row = {"fold": fold, "top1": m[:, 0].mean(), "top5": m[:, 1].mean(), "mAP": m[:, 2].mean(), **extra}
        variants.setdefault(variant, {"folds": [], "top1_per_query": []})
        variants[variant]["folds"].append(row)
        variants[variant]["top1_per_query"].append(m[:, 0])

    for f, (fold, rows) in enumerate(zip(queries, per_fold, strict=True)):
        record("cosine (baseline)", f, [r["hits"] for r in fold], {})
        in_top = float(np.mean([rec["same"].any() for rec in rows]))
        variants["cosine (baseline)"]["folds"][-1]["in_top_k"] = in_top
        baseline_hits.append(variants["cosine (baseline)"]["top1_per_query"][-1])
        train = [rec for g, rs in enumerate(per_fold) if g != f for rec in rs]
        t_cos = np.concatenate([rec["cos"] for rec in train])
        t_same = np.concatenate([rec["same"] for rec in train])
        for g in GEOMETRIES:
            record(
                f"inliers alone ({g})",
                f,
                [reranked_hits(r, rec[g]) for r, rec in zip(fold, rows, strict=True)],
                {},
            )
            pos = np.concatenate([rec[g][rec["same"]] for rec in rows])
            neg = np.concatenate([rec[g][~rec["same"]] for rec in rows])
            variants[f"inliers alone ({g})"]["folds"][-1].update(
                auc_topk=_auc(pos, neg),
                inliers_same_median=float(np.median(pos)) if len(pos) else float("nan"),
                inliers_diff_median=float(np.median(neg)),
                inliers_same_mean=float(np.mean(pos)) if len(pos) else float("nan"),
                inliers_diff_mean=float(np.mean(neg)),
            )
            fusion = Fusion(t_cos, np.concatenate([rec[g] for rec in train]), t_same)
            record(
                f"fusion, product of odds ({g})",
                f,
                [
                    reranked_hits(r, fusion.odds_product(rec["cos"], rec[g]))
                    for r, rec in zip(fold, rows, strict=True)
                ],
                {},
            )
            record(
                f"fusion, logistic ({g})",
                f,
                [
                    reranked_hits(r, fusion.logistic(rec["cos"], rec[g]))
                    for r, rec in zip(fold, rows, strict=True)
                ],
                {"weights": [round(float(w), 3) for w in fusion.w]},
            )
        # Cosine AUC inside the top-K for comparison with the inliers'.
        pos = np.concatenate([rec["cos"][rec["same"]] for rec in rows])
        neg = np.concatenate([rec["cos"][~rec["same"]] for rec in rows])
        variants["cosine (baseline)"]["folds"][-1]["auc_topk"] = _auc(pos, neg)

    for v in variants.values():
        v["mean"] = {key: float(np.mean([r[key] for r in v["folds"]])) for key in ("top1", "top5", "mAP")}
        if v is not variants["cosine (baseline)"]:
            delta = [a - b for a, b in zip(v["top1_per_query"], baseline_hits, strict=True)]
            v["top1_vs_cosine"] = paired_interval(delta, animals)
        del v["top1_per_query"]
    variants["cosine (baseline)"].pop("top1_per_query", None)

    ms_pair = {g: [] for g in GEOMETRIES}
    used = {tuple(sorted((paths[r["q"]], paths[c]))) for fold in queries for r in fold for c in r["top"]}
    for key in used:
        s = pairs.data[key]
        for g in GEOMETRIES:
            ms_pair[g].append(s["ms_match"] + s[f"ms_{g}"])
    # Loading keypoints records their extraction time, so a run served from the cache has some too.
    keypoints = float(np.median([len(features.get(p, _loader(p))) for p in paths[:50]]))
    ms_extract = float(np.median(features.extract_ms()))
    k = len(queries[0][0]["top"])
    costs = {
        "extract_ms": ms_extract,
        "pair_ms": {g: float(np.median(v)) for g, v in ms_pair.items()},
        "match_ms": float(np.median([pairs.data[key]["ms_match"] for key in used])),
        "keypoints_median": keypoints,
    }
    costs["query_ms_cached"] = {g: ms_extract + k * v for g, v in costs["pair_ms"].items()}
    costs["query_ms_uncached"] = {g: (k + 1) * ms_extract + k * v for g, v in costs["pair_ms"].items()}
    for variant, v in variants.items():
        m = v["mean"]
        ci = v.get("top1_vs_cosine")
        tail = f" Δtop-1 {ci[0]:+.1%} [{ci[1]:+.1%}, {ci[2]:+.1%}]" if ci else ""
        rates = f"top-1 {m['top1']:.1%} top-5 {m['top5']:.1%} mAP {m['mAP']:.1%}"
        print(f"  {name:14s} {variant:38s} {rates}{tail}", flush=True)
    print(f"  {name} costs: {json.dumps(costs)}", flush=True)
    return {**variants, "costs": costs}


# -- cost, measured apart ------------------------------------------------------------------------------


def cost_study(
    configs: list[str], rank_cache: Path, k: int, n_queries: int = 6, rounds: int = 3
) -> dict[str, Any]:
    """Per config, the same queries (photo + its top-k) extracted and verified from scratch, the
    configs taking turns over `rounds` rounds; the fastest round's medians (the machine is shared,
    so the slowest rounds measure the neighbours). Derived configs pay the extraction of their base
    (a smaller keypoint budget only saves matching)."""
    x, ind, sig, _ = load_nyala(rank_cache)
    items = json.loads((rank_cache / "nyala_meta.json").read_text())["items"]
    paths = [p for p, _, _ in items]
    unit = _units(ind, sig)
    rows = fold_queries(x, ind, unit, folds(np.asarray(ind))[0], k, n_queries)
    images = {i: _rgb(Path(paths[i])) for r in rows for i in [r["q"], *r["top"]]}

    def features(name: str, image: np.ndarray) -> verify.LocalFeatures:
        spec = CONFIGS[name]
        if "base" in spec:
            f = features(spec["base"], image)
            if "strongest" in spec:
                f = f.strongest(spec["strongest"])
            return verify.root_sift(f) if spec.get("root") else f
        return verify.extract(
            image, method=spec["method"], max_side=spec["max_side"], n_features=spec["n_features"]
        )

    best: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for name in configs:
            extract_ms, pair_ms = [], {g: [] for g in GEOMETRIES}
            done: dict[int, verify.LocalFeatures] = {}
            for i, image in images.items():
                started = time.perf_counter()
                done[i] = features(name, image)
                extract_ms.append(1000 * (time.perf_counter() - started))
            for r in rows:
                fq = done[r["q"]]
                for c in r["top"]:
                    fc = done[c]
                    started = time.perf_counter()
                    m = verify.ratio_matches(fq, fc)
                    match = time.perf_counter() - started
                    for g in GEOMETRIES:
                        started = time.perf_counter()
                        verify.geometric_inliers(fq, fc, m, geometry=g)
                        pair_ms[g].append(1000 * (match + time.perf_counter() - started))
            now = {"extract_ms": float(np.median(extract_ms))}
            now.update({f"pair_ms_{g}": float(np.median(v)) for g, v in pair_ms.items()})
            if name not in best or now["extract_ms"] + now["pair_ms_affine"] < (
                best[name]["extract_ms"] + best[name]["pair_ms_affine"]
            ):
                best[name] = now
    for name, b in best.items():
        for g in GEOMETRIES:
            b[f"query_ms_cached_{g}"] = b["extract_ms"] + k * b[f"pair_ms_{g}"]
            b[f"query_ms_uncached_{g}"] = (k + 1) * b["extract_ms"] + k * b[f"pair_ms_{g}"]
        print(f"  cost {name:20s} {json.dumps({key: round(v, 1) for key, v in b.items()})}", flush=True)
    return best


# -- review effort -----------------------------------------------------------------------------------


def review_effort(
    x: np.ndarray,
    ind: list[str],
    sig: list[str],
    unit: np.ndarray,
    masks: list[np.ndarray],
    per_fold: list[list[dict[str, np.ndarray]]],
    features: FeatureStore,
    pairs: PairStore,
    paths: list[str],
    k: int,
    geometry: str,
) -> dict[str, Any]:
    """Decisions per photo to F1 0.8/0.9/0.95 (the product's oracle, top-8 screen, as
    benchmarks/ranking.py runs it) with every photo's top-K pairs scored by the fused probability
    (product of odds, fitted on the other folds' query pairs) and every other pair by the
    calibrated cosine alone: verification only ever looks at the top-K, as it would in the
    product. The baseline rows run the same oracle on the raw cosine and on the calibrated
    cosine alone (isotonic flats become ties, so that row shows what calibration alone does)."""
    from deerid.evaluation import review as review_eval
    from deerid.evaluation.data import LabelledSet
    from ranking import review_scores

    out: dict[str, Any] = {}
    curves: dict[str, list[Any]] = {}
    for f, test in enumerate(masks):
        train = [rec for g, rs in enumerate(per_fold) if g != f for rec in rs]
        fusion = Fusion(
            np.concatenate([rec["cos"] for rec in train]),
            np.concatenate([rec[geometry] for rec in train]),
            np.concatenate([rec["same"] for rec in train]),
        )
        held = np.flatnonzero(test)
        xs = x[held]
        cos = xs @ xs.T
        u = unit[held]
        # Scores stay probabilities: the queue clips pair scores to [-1, 1] when it orders them.
        # The cosine breaks the isotonic map's ties, so "calibrated cosine alone" keeps its order.
        p_cos = fusion.p_cos(cos)
        fused = p_cos + 1e-6 * cos
        started = time.perf_counter()
        for r in range(len(held)):
            keep = np.flatnonzero(u != u[r])
            top = keep[np.argsort(-cos[r, keep], kind="stable")[:k]]
            for c in top:
                s = pairs.score(paths[held[r]], paths[held[c]], features, _loader_key)
                odds = float(fusion.odds_product(cos[r, c : c + 1], np.array([float(s[geometry])]))[0])
                fused[r, c] = fused[c, r] = 1 / (1 + np.exp(-odds)) + 1e-6 * cos[r, c]
        pairs.save()
        h_ind, h_sig = [ind[i] for i in held], [sig[i] for i in held]
        data = LabelledSet.build(xs, h_ind, h_sig)
        for name, sim in (
            ("cosine (raw, shipped)", None),
            ("calibrated cosine alone", p_cos + 1e-6 * cos),
            (f"fused, top-{k} verified ({geometry})", fused),
        ):
            with review_scores(sim, "max"):
                curve = review_eval.simulate_review(data, k=8)
            curves.setdefault(name, []).append(curve)
            d = curve.as_dict()
            print(
                f"  review {name:36s} fold {f}: to F1 {list(d['decisions_per_image_to_f1'].values())}, "
                f"F1 at 0.25/0.5/1 {list(d['f1_at_decisions_per_image'].values())}, "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
    for name, cs in curves.items():
        out[name] = {"folds": [c.as_dict() for c in cs], "mean": review_eval.mean_review(cs)}
    return out


def _loader_key(path: str) -> np.ndarray:
    return _rgb(Path(path))


# -- feeder bucks ------------------------------------------------------------------------------------


def feeder_crops() -> list[dict[str, Any]]:
    """Every deer box of the feeder set at full resolution, with its individual (if annotated),
    class and camera."""
    from deerid.ingest.crop import crop_boxes

    data = json.loads(FEEDER_JSON.read_text())
    classes = data["classification_categories"]
    out = []
    for image in data["images"]:
        deer = [d for d in image.get("detections", []) if d.get("classifications") and not d.get("difficult")]
        deer = [d for d in deer if classes[d["classifications"][0][0]] != "other"]
        if not deer:
            continue
        path = FEEDER / image["file"]
        exif = Image.open(path).getexif()
        camera = f"{exif.get(271, '?')} {exif.get(272, '?')}".strip()
        for n, (d, crop) in enumerate(
            zip(deer, crop_boxes(path, [d["bbox"] for d in deer], min_size=32), strict=True)
        ):
            if crop.image is None:
                continue
            out.append(
                {
                    "key": f"{image['file']}#{n}",
                    "file": image["file"],
                    "individual": d.get("individual"),
                    "class": classes[d["classifications"][0][0]],
                    "camera": camera,
                    "image": np.asarray(crop.image.convert("RGB")),
                }
            )
    return out


# Annotated as "very probably buck-A" without an `individual` (ANNOTATION_NOTES.md): neither same nor
# different for certain, so reported apart.
PROBABLY_A = {"IMG_2260.JPG", "IMG_2342.JPG"}


def feeder_study(configs: list[str], cache: Path) -> dict[str, Any]:
    crops = feeder_crops()
    by_key = {c["key"]: c for c in crops}
    bucks = [c for c in crops if c["individual"]]
    described = [(c["key"], c["individual"], c["image"].shape[:2]) for c in bucks]
    print(f"feeder: {len(crops)} deer crops, bucks {described}", flush=True)
    out: dict[str, Any] = {}
    for name in configs:
        features, pairs = FeatureStore(f"{name}", cache), PairStore(f"feeder-{name}", cache)
        groups: dict[str, list[dict[str, Any]]] = {}
        seen: set[tuple[str, str]] = set()
        for a in bucks:
            for b in crops:
                key = (a["key"], b["key"]) if a["key"] <= b["key"] else (b["key"], a["key"])
                if a["key"] == b["key"] or key in seen:
                    continue
                seen.add(key)
                if a["individual"] == b["individual"]:
                    group = f"same buck ({a['individual']})"
                elif b["individual"]:
                    group = "buck-A vs buck-B (different)"
                elif b["file"] in PROBABLY_A:
                    group = f"{a['individual']} vs probably buck-A (unannotated)"
                elif b["class"] == "doe":
                    group = "buck vs doe (different)"
                else:
                    group = "buck vs other deer (unannotated, mostly different)"
                if a["camera"] == b["camera"]:
                    group += ", same camera"
                else:
                    group += ", other camera"
                s = pairs.score(a["key"], b["key"], features, lambda k: by_key[k]["image"])
                groups.setdefault(group, []).append({"pair": [a["key"], b["key"]], **s})
        pairs.save()
        summary = {}
        for group, rows in sorted(groups.items()):
            summary[group] = {
                "n": len(rows),
                **{
                    g: {
                        "median": float(np.median([r[g] for r in rows])),
                        "max": int(max(r[g] for r in rows)),
                        "values": [int(r[g]) for r in rows] if len(rows) <= 12 else None,
                    }
                    for g in GEOMETRIES
                },
            }
            h = summary[group]["homography"]
            shown = f"median {h['median']:.0f} max {h['max']} {h['values'] or ''}"
            print(f"  {name:14s} {group:70s} n={len(rows):3d} homography inliers {shown}", flush=True)
        out[name] = summary
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=["sift-full", "sift-384"], choices=list(CONFIGS))
    parser.add_argument(
        "--k", type=int, default=8, help="candidates re-ranked per query (the screen shows 8)"
    )
    parser.add_argument(
        "--max-queries", type=int, default=None, help="per fold, a seeded sample (pilot runs)"
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/local-features-cache"))
    parser.add_argument("--rank-cache", type=Path, default=Path("/tmp/rank-cache"))
    parser.add_argument("--skip-nyala", action="store_true")
    parser.add_argument("--skip-feeder", action="store_true")
    parser.add_argument("--cost", action="store_true", help="only the cost per crop, pair and query")
    parser.add_argument(
        "--exclude-near",
        type=int,
        default=None,
        metavar="N",
        help="diagnostic: no candidate whose sighting number is within N of the query's (same scene)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    parser.add_argument(
        "--review",
        nargs=2,
        metavar=("CONFIG", "GEOMETRY"),
        default=None,
        help="also the review effort with this config's inliers fused (costs every photo's top-K pairs)",
    )
    args = parser.parse_args()

    import cv2

    # One thread: the machine is shared and per-pair costs should not depend on its load pattern.
    cv2.setNumThreads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    if args.cost:
        out["cost"] = cost_study(args.configs, args.rank_cache, args.k)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1, default=float))
        return
    if not args.skip_feeder:
        out["feeder"] = feeder_study(args.configs, args.cache)
    if not args.skip_nyala:
        review = tuple(args.review) if args.review else None
        out["nyala"] = nyala_study(
            args.configs, args.k, args.cache, args.max_queries, args.rank_cache, review, args.exclude_near
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
