"""Re-ranking and set-to-set scoring, cross-validated across individuals, with cost per query.

    python benchmarks/ranking.py [--json] [--skip-review] [--skip-cost] [--sizes 10000 100000]

What it measures (docs/ranking.md holds the table and the reading of it):

1. Photo queries (the protocol of `retrieval_metrics`: every photo of a fold queries every
   other photo of that fold except those of its own sighting): top-1, top-5, mAP per fold and
   their mean, for cosine (baseline), k-reciprocal re-ranking, αQE, DBA and DBA + αQE. Folds
   are benchmarks/openset_cv.py's 3 folds by individual (the split train_cv.py trains on).
   Every parameter is chosen by mAP on the *other two* folds' individuals (one gallery of
   them), then applied unchanged to the reported fold; k-reciprocal with the paper's own
   parameters (k1=20, k2=6, λ=0.3) is reported untuned beside it.
2. Sighting queries (lever 2): each sighting (the left and right photo of one encounter) is a
   set; a sighting queries every other sighting of its fold; the set score is best pair
   (today's rule), mean of pairs, top-2 mean, log-mean-exp (τ tuned as above), the mean
   vector, and the tuned k-reciprocal scores pooled by best pair.
3. Review effort: the product's oracle (`deerid.evaluation.review.simulate_review`, top-8
   screen over encounters, raw scores, the shipped row of benchmarks/review.py) on each held-out
   fold, decisions per photo to BCubed F1 0.8 / 0.9 / 0.95, for the baseline, the tuned
   k-reciprocal and DBA rankings, and the queue's profile scores "mean" and "both".
   simulate_review builds its pairs from vectors and offers no scoring; both are handed to it
   by swapping in a ReviewGraph built from the matrix (docs/ranking.md, "Wiring").
4. Cost per query on synthetic galleries (a centre per animal from N(0, I) in 512-d, five
   sightings each, sighting = centre + 0.35·N(0, I), normalised) of `--sizes` sightings: the
   32-nearest table the review screen keeps (built once), then per query the re-ranking of
   its top-N candidates: k-reciprocal from the table alone, k-reciprocal with V precomputed,
   k-reciprocal by extra nearest-neighbour queries instead of a table, αQE with one more
   exact query, set pooling.

Nyala vectors are computed once with the active embedder (DEERID_RUNTIME as set) and cached
under --cache (default /tmp/rank-cache), never inside the repository.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deerid.domain import rerank
from deerid.domain.review import ReviewGraph
from deerid.evaluation import review as review_eval
from deerid.evaluation.data import LabelledSet
from deerid.evaluation.ranking import retrieval_metrics_from_similarity
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics
from openset_cv import NYALA, folds

Metrics = dict[str, float | int]
Scorer = Callable[[np.ndarray, list[str], list[str], dict[str, Any]], Metrics]

# -- nyala vectors ---------------------------------------------------------------------------------


def load_nyala(cache: Path) -> tuple[np.ndarray, list[str], list[str], str]:
    """(vectors, individuals, sightings, model id), embedded once and cached as .npy."""
    vec_path, meta_path = cache / "nyala_vectors.npy", cache / "nyala_meta.json"
    if vec_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        items = meta["items"]
        return (
            np.load(vec_path).astype(np.float64),
            [i for _, i, _ in items],
            [s for _, _, s in items],
            meta["model_id"],
        )
    from deerid.core.config import Settings
    from deerid.evaluation.run import embed_items
    from deerid.registry.models import active_embedder

    embedder = active_embedder(Settings(device="cpu", data_dir=Path(tempfile.mkdtemp(prefix="deerid-rank-"))))
    vectors, kept, _ = embed_items(load_identity_folder(NYALA), embedder, batch_size=32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(vec_path, vectors.astype(np.float32))
    items = [[str(p), i, s] for p, i, s in kept]
    meta_path.write_text(json.dumps({"model_id": embedder.model_id, "items": items}))
    return load_nyala(cache)


def _units(individuals: list[str], sightings: list[str]) -> np.ndarray:
    """Sighting codes unique across individuals (the same key retrieval_metrics uses)."""
    _, codes = np.unique(
        [f"{a}\x00{b}" for a, b in zip(individuals, sightings, strict=True)], return_inverse=True
    )
    return codes.ravel()


# -- photo-level variants --------------------------------------------------------------------------


def _expansion_exclude(unit: np.ndarray) -> np.ndarray:
    # A photo's own sighting may neither rank nor expand it: the protocol's exclusion, kept inside QE.
    return unit[:, None] == unit[None, :]


def score_cosine(x: np.ndarray, ind: list[str], sig: list[str], _p: dict[str, Any]) -> Metrics:
    return retrieval_metrics(x, ind, sig)


def krec_matrix(x: np.ndarray, unit: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    return rerank.k_reciprocal_similarity(x, k1=p["k1"], k2=p["k2"], lam=p["lam"], same_unit=unit)


def score_krec(x: np.ndarray, ind: list[str], sig: list[str], p: dict[str, Any]) -> Metrics:
    return retrieval_metrics_from_similarity(krec_matrix(x, _units(ind, sig), p), ind, sig)


def score_aqe(x: np.ndarray, ind: list[str], sig: list[str], p: dict[str, Any]) -> Metrics:
    q = rerank.alpha_query_expansion(
        x, x, k=p["k"], alpha=p["alpha"], exclude=_expansion_exclude(_units(ind, sig))
    )
    return retrieval_metrics_from_similarity(q @ x.T, ind, sig)


def dba_vectors(x: np.ndarray, unit: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    return rerank.database_augmentation(x, k=p["k"], alpha=p["alpha"], same_unit=unit)


def score_dba(x: np.ndarray, ind: list[str], sig: list[str], p: dict[str, Any]) -> Metrics:
    return retrieval_metrics(dba_vectors(x, _units(ind, sig), p), ind, sig)


def score_dba_aqe(x: np.ndarray, ind: list[str], sig: list[str], p: dict[str, Any]) -> Metrics:
    unit = _units(ind, sig)
    g = dba_vectors(x, unit, p)
    q = rerank.alpha_query_expansion(g, g, k=p["k"], alpha=p["alpha"], exclude=_expansion_exclude(unit))
    return retrieval_metrics_from_similarity(q @ g.T, ind, sig)


def _grid(**axes: list[Any]) -> list[dict[str, Any]]:
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


QE_GRID = _grid(k=[1, 2, 3, 5, 10], alpha=[0.0, 3.0, 10.0])
KREC_GRID = _grid(k1=[3, 5, 10, 20], k2=[1, 2, 4], lam=[0.1, 0.3, 0.6, 0.9])
PHOTO_VARIANTS: dict[str, tuple[Scorer, list[dict[str, Any]]]] = {
    "cosine (baseline)": (score_cosine, [{}]),
    "k-reciprocal, paper parameters (untuned)": (score_krec, [{"k1": 20, "k2": 6, "lam": 0.3}]),
    "k-reciprocal (k1, k2, λ tuned)": (score_krec, KREC_GRID),
    "αQE (k, α tuned)": (score_aqe, QE_GRID),
    "DBA (k, α tuned)": (score_dba, QE_GRID),
    "DBA + αQE (k, α tuned)": (score_dba_aqe, QE_GRID),
}

# -- sighting-level variants (sets of views) -------------------------------------------------------


def set_scores(sim: np.ndarray, unit: np.ndarray, how: rerank.Pooling, p: dict[str, Any]) -> np.ndarray:
    return rerank.set_similarity(sim, unit, how, m=p.get("m", 2), tau=p.get("tau", 0.05))


def _set_labels(ind: list[str], unit: np.ndarray) -> tuple[list[str], list[str]]:
    first = np.unique(unit, return_index=True)[1]
    return [ind[i] for i in first], [str(u) for u in range(len(first))]


def set_variant(how: str) -> Scorer:
    def score(x: np.ndarray, ind: list[str], sig: list[str], p: dict[str, Any]) -> Metrics:
        unit = _units(ind, sig)
        set_ind, set_sig = _set_labels(ind, unit)
        if how == "mean vector":
            return retrieval_metrics(rerank.mean_vectors(x, unit), set_ind, set_sig)
        if how == "average of best pair and mean vector":
            means = rerank.mean_vectors(x, unit)
            both = (set_scores(x @ x.T, unit, "max", p) + means @ means.T) / 2
            return retrieval_metrics_from_similarity(both, set_ind, set_sig)
        if how == "k-reciprocal, best pair":
            return retrieval_metrics_from_similarity(
                set_scores(krec_matrix(x, unit, p), unit, "max", p), set_ind, set_sig
            )
        return retrieval_metrics_from_similarity(set_scores(x @ x.T, unit, how, p), set_ind, set_sig)  # type: ignore[arg-type]

    return score


SET_VARIANTS: dict[str, tuple[Scorer, list[dict[str, Any]]]] = {
    "best pair (today's rule)": (set_variant("max"), [{}]),
    "mean of pairs": (set_variant("mean"), [{}]),
    "top-2 mean": (set_variant("top_m"), [{"m": 2}]),
    "log-mean-exp (τ tuned)": (set_variant("lme"), _grid(tau=[0.01, 0.03, 0.1, 0.3])),
    "mean vector": (set_variant("mean vector"), [{}]),
    "average of best pair and mean vector": (set_variant("average of best pair and mean vector"), [{}]),
    "k-reciprocal (tuned), best pair": (set_variant("k-reciprocal, best pair"), KREC_GRID),
}

# -- cross-validation ------------------------------------------------------------------------------


def cross_validate(
    variants: dict[str, tuple[Scorer, list[dict[str, Any]]]],
    x: np.ndarray,
    ind: list[str],
    sig: list[str],
) -> dict[str, Any]:
    """Per variant: per fold the parameters chosen on the other folds and the held-out metrics."""
    masks = folds(np.asarray(ind))
    out: dict[str, Any] = {}
    for name, (scorer, grid) in variants.items():
        rows = []
        for k, test in enumerate(masks):
            chosen = grid[0]
            if len(grid) > 1:
                tune = np.flatnonzero(~test)
                tune_ind, tune_sig = [ind[i] for i in tune], [sig[i] for i in tune]
                tuned = [(scorer(x[tune], tune_ind, tune_sig, p)["mAP"], -i, p) for i, p in enumerate(grid)]
                chosen = max(tuned, key=lambda t: (t[0], t[1]))[2]
            held = np.flatnonzero(test)
            m = scorer(x[held], [ind[i] for i in held], [sig[i] for i in held], chosen)
            rows.append({"fold": k, "params": chosen, **m})
            print(
                f"  {name:42s} fold {k}: top-1 {m['top1']:.1%} top-5 {m['top5']:.1%} "
                f"mAP {m['mAP']:.1%} {chosen}",
                flush=True,
            )
        mean = {key: float(np.mean([r[key] for r in rows])) for key in ("top1", "top5", "mAP")}
        out[name] = {"folds": rows, "mean": mean}
    return out


def sweep(
    scorer: Scorer, grid: list[dict[str, Any]], x: np.ndarray, ind: list[str], sig: list[str]
) -> list[dict[str, Any]]:
    """Every grid point on the held-out folds, fold-mean (a diagnostic of the trend, never used
    to choose: choosing here would tune on the reported folds)."""
    masks = folds(np.asarray(ind))
    out = []
    for p in grid:
        ms = []
        for test in masks:
            held = np.flatnonzero(test)
            ms.append(scorer(x[held], [ind[i] for i in held], [sig[i] for i in held], p))
        out.append({**p, **{k: float(np.mean([m[k] for m in ms])) for k in ("top1", "top5", "mAP")}})
    return out


# -- review effort ---------------------------------------------------------------------------------


@contextmanager
def review_scores(sim: np.ndarray | None, scoring: str = "max") -> Iterator[None]:
    """Make simulate_review rank with `sim` instead of the cosine of its vectors, and score
    profile pairs by `scoring` (ReviewGraph's "max", "mean" or "both").

    simulate_review calls ReviewGraph.from_vectors and offers neither; this swaps in a class
    whose from_vectors builds the same all-pairs graph (pairs of different encounters, best
    first) from `sim` (the cosine when None). The product change that would make this
    unnecessary is in docs/ranking.md."""

    class Swapped(ReviewGraph):
        @classmethod
        def from_vectors(
            cls, vectors: np.ndarray, owner: Any, *, same_unit: Any = None, **_: Any
        ) -> ReviewGraph:
            x = np.asarray(vectors, dtype=np.float64)
            matrix = x @ x.T if sim is None else sim
            i, j = np.triu_indices(len(matrix), k=1)
            if same_unit is not None:
                keep = same_unit[i] != same_unit[j]
                i, j = i[keep], j[keep]
            s = matrix[i, j]
            order = np.argsort(-s, kind="stable")
            owner_arr = np.asarray(owner, dtype=np.int64)
            graph = ReviewGraph(owner_arr, i[order], j[order], s[order], int(owner_arr.max()) + 1, vectors=x)
            graph.scoring = scoring
            return graph

    with mock.patch.object(review_eval, "ReviewGraph", Swapped):
        yield


REVIEW_VARIANTS = {
    "cosine (baseline)": ("cosine (baseline)", "max"),
    "k-reciprocal (k1, k2, λ tuned)": ("k-reciprocal (k1, k2, λ tuned)", "max"),
    "DBA (k, α tuned)": ("DBA (k, α tuned)", "max"),
    "profile score: mean vector": ("cosine (baseline)", "mean"),
    "profile score: average of best pair and mean vector": ("cosine (baseline)", "both"),
}


def review_effort(x: np.ndarray, ind: list[str], sig: list[str], photo: dict[str, Any]) -> dict[str, Any]:
    """Decisions per photo to F1 0.8/0.9/0.95 on each held-out fold, parameters as tuned in `photo`."""
    masks = folds(np.asarray(ind))
    out: dict[str, Any] = {}
    for name, (ranking, scoring) in REVIEW_VARIANTS.items():
        curves = []
        for k, test in enumerate(masks):
            held = np.flatnonzero(test)
            h_ind, h_sig = [ind[i] for i in held], [sig[i] for i in held]
            unit = _units(h_ind, h_sig)
            p = photo[ranking]["folds"][k]["params"]
            vectors, sim = x[held], None
            if ranking.startswith("k-reciprocal"):
                sim = krec_matrix(vectors, unit, p)
            elif ranking.startswith("DBA"):
                vectors = dba_vectors(vectors, unit, p)
            data = LabelledSet.build(vectors, h_ind, h_sig)
            started = time.perf_counter()
            with review_scores(sim, scoring):
                curve = review_eval.simulate_review(data, k=8)
            curves.append(curve)
            d = curve.as_dict()
            print(
                f"  review {name:36s} fold {k}: to F1 {list(d['decisions_per_image_to_f1'].values())}, "
                f"F1 at 0.25/0.5/1 {list(d['f1_at_decisions_per_image'].values())}, "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
        out[name] = {"folds": [c.as_dict() for c in curves], "mean": review_eval.mean_review(curves)}
    return out


# -- cost per query --------------------------------------------------------------------------------


def synthetic_gallery(n: int, seed: int = 0, per_animal: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // per_animal + 1, 512)).astype(np.float32)
    x = centres[np.arange(n) // per_animal] + 0.35 * rng.standard_normal((n, 512)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def blocked_table(x: np.ndarray, k: int, block: int = 512) -> tuple[np.ndarray, float]:
    """(n, k+1) nearest table, itself first, by blocks (float32), and the seconds it took.

    What the review cache's comparable_pairs does above 1,000 sightings (it keeps each row's
    32 nearest), so its cost is the cost of having neighbour lists at all."""
    n = len(x)
    table = np.empty((n, k + 1), dtype=np.int64)
    started = time.perf_counter()
    for start in range(0, n, block):
        s = x[start : start + block] @ x.T
        rows = np.arange(start, start + len(s))
        s[np.arange(len(s)), rows] = np.inf
        part = np.argpartition(-s, k, axis=1)[:, : k + 1]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
        table[start : start + len(s)] = np.take_along_axis(part, order, axis=1)
    return table, time.perf_counter() - started


def _median_ms(fn: Callable[[int], Any], queries: np.ndarray) -> float:
    times = []
    for q in queries:
        started = time.perf_counter()
        fn(int(q))
        times.append(1000 * (time.perf_counter() - started))
    return round(float(np.median(times)), 2)


def per_query_ms(
    x: np.ndarray,
    table: np.ndarray,
    top: dict[int, np.ndarray],
    weights: rerank.SparseRows,
    queries: np.ndarray,
    p: dict[str, Any],
    n_candidates: int,
) -> dict[str, float]:
    """Median milliseconds of each per-query step, the top-N candidates given."""
    k1, k2, lam = p["k1"], p["k2"], p["lam"]
    n = len(x)

    def krec_table(q: int) -> Any:
        return rerank.k_reciprocal_rescore(table, x, q, top[q], k1=k1, k2=k2, lam=lam)

    def krec_v(q: int) -> Any:
        return rerank.k_reciprocal_rescore(table, x, q, top[q], k1=k1, k2=k2, lam=lam, weights=weights)

    def aqe(q: int) -> Any:
        # The expanded query re-scores the candidates it came with: no new search.
        return rerank.alpha_query_expansion(x[q : q + 1], x[top[q][:3]], k=3, alpha=3.0) @ x[top[q]].T

    def aqe_requery(q: int) -> Any:
        # The expanded query searched again (exact, as pgvector without an index would).
        e = rerank.alpha_query_expansion(x[q : q + 1], x[top[q][:3]], k=3, alpha=3.0).astype(x.dtype)
        return np.argpartition(-(e @ x.T)[0], n_candidates)[:n_candidates]

    def top2(q: int) -> Any:
        # Two-view sets on both sides (a sighting and each candidate's), pooled by the top-2 mean.
        a = x[[q, (q + 1) % n]]
        return [rerank.pool(a @ x[[c, (c + 1) % n]].T, "top_m", m=2) for c in top[q]]

    return {
        "k_reciprocal_from_table_ms": _median_ms(krec_table, queries),
        "k_reciprocal_with_V_ms": _median_ms(krec_v, queries),
        "aqe_rescore_candidates_ms": _median_ms(aqe, queries),
        "aqe_with_new_exact_query_ms": _median_ms(aqe_requery, queries),
        "set_pooling_top2_ms": _median_ms(top2, queries),
    }


def queue_ms(x: np.ndarray, table: np.ndarray) -> dict[str, float]:
    """What the wired set scoring costs the review queue: re-ranking every profile's candidates
    after a merge (the part a screen after a merge recomputes), best pair alone versus the
    average with mean vectors, every sighting its own profile (the worst case). Median of 5."""
    n = len(x)
    i = np.repeat(np.arange(n), table.shape[1] - 1)
    j = table[:, 1:].ravel()
    keep = i < j
    i, j = i[keep], j[keep]
    sim = np.einsum("ij,ij->i", x[i].astype(np.float64), x[j].astype(np.float64))
    order = np.argsort(-sim, kind="stable")
    out: dict[str, float] = {}
    for scoring in ("max", "both"):
        graph = ReviewGraph(np.arange(n), i[order], j[order], sim[order], n, vectors=x, scoring=scoring)  # type: ignore[arg-type]
        times = []
        for step in range(5):
            graph.merge(2 * step + 1, 2 * step)
            started = time.perf_counter()
            graph.candidates(0, k=8)
            times.append(1000 * (time.perf_counter() - started))
        out[f"rerank_after_merge_{scoring}_ms"] = round(float(np.median(times)), 1)
    return out


COST_PARAMS = {
    "k1=20, k2=6 (paper)": {"k1": 20, "k2": 6, "lam": 0.3},
    "k1=5, k2=1": {"k1": 5, "k2": 1, "lam": 0.9},
}


def cost(sizes: list[int], cache: Path, n_candidates: int = 100) -> dict[str, Any]:
    """Per-query milliseconds of each re-ranking at each gallery size (median of 50 queries)."""
    out: dict[str, Any] = {}
    for n in sizes:
        x = synthetic_gallery(n)
        path = cache / f"synthetic_table_{n}.npz"
        if path.exists():
            saved = np.load(path)
            table, table_s = saved["table"], float(saved["seconds"])
        else:
            table, table_s = blocked_table(x, 32)
            np.savez(path, table=table, seconds=table_s)
        queries = np.random.default_rng(1).choice(n, 50, replace=False)
        # The ranking to re-rank: an exact top-N by numpy, standing in for pgvector's.
        top: dict[int, np.ndarray] = {}
        started = time.perf_counter()
        for q in queries:
            s = x @ x[q]
            s[q] = -np.inf
            top[int(q)] = np.argsort(-s)[:n_candidates]
        exact_query_ms = 1000 * (time.perf_counter() - started) / len(queries)
        row: dict[str, Any] = {
            "sightings": n,
            "candidates": n_candidates,
            "table_build_s": round(table_s, 1),
            "exact_topN_query_ms": round(exact_query_ms, 2),
            **queue_ms(x, table),
        }
        for label, p in COST_PARAMS.items():
            k1 = p["k1"]
            started = time.perf_counter()
            weights = rerank.reciprocal_weights(table, x, k1)
            weights_s = time.perf_counter() - started
            weights_mb = (weights.row.nbytes + weights.col.nbytes + weights.weight.nbytes) / 2**20
            # The neighbour lists by extra queries instead of a table: the rows whose lists k-reciprocal
            # reads (the candidates and their k1 nearest, for the mutual test) in one blocked product.
            extra_rows = min(n, n_candidates * (k1 + 1))
            started = time.perf_counter()
            for start in range(0, extra_rows, 512):
                block = x[start : min(extra_rows, start + 512)] @ x.T
                np.argpartition(-block, k1, axis=1)
            extra_ms = 1000 * (time.perf_counter() - started)
            row[label] = {
                "V_build_s": round(weights_s, 1),
                "V_MiB": round(weights_mb, 1),
                "by_extra_queries_ms": round(extra_ms, 1),
                **per_query_ms(x, table, top, weights, queries, p, n_candidates),
            }
        print(f"  cost {row}", flush=True)
        out[str(n)] = row
    return out


# -- report ----------------------------------------------------------------------------------------


def print_table(title: str, results: dict[str, Any]) -> None:
    print(f"\n{title}: top-1 / top-5 / mAP, fold 0 | fold 1 | fold 2 | mean")
    for name, r in results.items():
        folds_txt = " | ".join(f"{f['top1']:.1%} {f['top5']:.1%} {f['mAP']:.1%}" for f in r["folds"])
        m = r["mean"]
        print(f"  {name:42s} {folds_txt} | {m['top1']:.1%} {m['top5']:.1%} {m['mAP']:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rank-cache"))
    parser.add_argument("--skip-review", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--sweep", action="store_true", help="also every k-reciprocal and DBA grid point")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    x, ind, sig, model_id = load_nyala(args.cache)
    print(f"nyala train: {len(x)} photos, {len(set(ind))} individuals, model {model_id}", flush=True)
    out: dict[str, Any] = {"model_id": model_id}
    started = time.perf_counter()
    out["photo"] = cross_validate(PHOTO_VARIANTS, x, ind, sig)
    out["sighting"] = cross_validate(SET_VARIANTS, x, ind, sig)
    out["cv_s"] = round(time.perf_counter() - started)
    if args.sweep:
        out["sweep"] = {
            "k-reciprocal": sweep(score_krec, KREC_GRID, x, ind, sig),
            "DBA": sweep(score_dba, QE_GRID, x, ind, sig),
        }
        for name, points in out["sweep"].items():
            print(f"\nsweep {name} (held-out fold mean, diagnostic only):")
            for pt in points:
                print(f"  {pt}")
    if not args.skip_review:
        out["review"] = review_effort(x, ind, sig, out["photo"])
    if not args.skip_cost and args.sizes:
        out["cost"] = cost(args.sizes, args.cache)
    print_table("photo queries (own sighting excluded)", out["photo"])
    print_table("sighting queries (a sighting's photos as one set)", out["sighting"])
    if "review" in out:
        print(
            "\nreview, top-8 screen over encounters: decisions per photo to F1 0.8 / 0.9 / 0.95 (fold mean)"
        )
        for name, r in out["review"].items():
            print(f"  {name:42s} {list(r['mean']['decisions_per_image_to_f1'].values())}")
    if args.json:
        print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
