"""Re-ranking and set-to-set scoring (deerid.domain.rerank) and the matrix form of the retrieval metric.

Hand-checkable inputs first (unit circles, a few vectors), then one test on real nyala photos
from ../shared that ties the evaluated forms to the product's own code paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deerid.domain import rerank
from deerid.domain.review import ReviewGraph
from deerid.evaluation.ranking import retrieval_metrics_from_similarity
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics

NYALA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nyala" / "train"


def _circle(degrees: list[float]) -> np.ndarray:
    a = np.radians(degrees)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def _zhong_reference(dist: np.ndarray, k1: int, k2: int, lam: float) -> np.ndarray:
    """The published re_ranking loop (Zhong et al.'s code, query = gallery, no column scaling)."""
    n = len(dist)
    v = np.zeros_like(dist)
    rank = np.argsort(dist, kind="stable")
    for i in range(n):
        forward = rank[i, : k1 + 1]
        recip = forward[np.where(rank[forward, : k1 + 1] == i)[0]]
        expansion = recip
        for c in recip:
            half = int(np.around(k1 / 2))
            cf = rank[c, : half + 1]
            crecip = cf[np.where(rank[cf, : half + 1] == c)[0]]
            if len(np.intersect1d(crecip, recip)) > 2 / 3 * len(crecip):
                expansion = np.append(expansion, crecip)
        expansion = np.unique(expansion)
        w = np.exp(-dist[i, expansion])
        v[i, expansion] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    shared = np.stack([np.minimum(v[i][None, :], v).sum(axis=1) for i in range(n)])
    return (1 - shared / (2 - shared)) * (1 - lam) + dist * lam


# -- neighbour table -------------------------------------------------------------------------------


def test_knn_table_puts_self_first_and_keeps_a_unit_apart() -> None:
    """Each row lists itself first, then its nearest; rows of one unit never list each other,
    and a row with too few others pads with -1 instead of inventing neighbours."""
    x = _circle([0, 5, 20, 90])
    table, sims = rerank.knn_table(x @ x.T, 2)
    assert table.tolist() == [[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 2, 1]]
    assert sims[:, 0] == pytest.approx(1.0)

    table, _ = rerank.knn_table(x @ x.T, 2, same_unit=np.array([0, 0, 1, 2]))
    assert table[0].tolist() == [0, 2, 3]  # 1 shares 0's unit
    table, _ = rerank.knn_table(x @ x.T, 3, same_unit=np.array([0, 0, 0, 1]))
    assert table[0].tolist() == [0, 3, -1, -1]


# -- k-reciprocal ----------------------------------------------------------------------------------


def test_k_reciprocal_demotes_a_one_way_neighbour() -> None:
    """The motivating case, by hand on a circle (degrees): the query q=0 has a hub h=10 as its
    nearest, but h's own 2 nearest are a=14 and b=16 (a tight group), so q is not in h's list;
    p=-12 is second for q and has q first. With k1=2: R(q)={q,p}, R(h)={h,a}. Pure Jaccard
    (λ=0) must rank p above h; λ=1 must give back the cosine order."""
    x = _circle([0, 10, 14, 16, 19, -12])  # q h a b c p
    q, h, a, p = 0, 1, 2, 5
    table, _ = rerank.knn_table(x @ x.T, 5)
    v = rerank.reciprocal_weights(table, x, 2)
    assert v.col[v.row == q].tolist() == [q, p]
    assert v.col[v.row == h].tolist() == [h, a]

    sim0 = rerank.k_reciprocal_similarity(x, k1=2, k2=1, lam=0.0)
    assert sim0[q, p] > sim0[q, h]
    assert sim0[q, h] == pytest.approx(0.0)  # disjoint sets: Jaccard distance 1
    sim1 = rerank.k_reciprocal_similarity(x, k1=2, k2=1, lam=1.0)
    assert np.argsort(-sim1[q])[:3].tolist() == np.argsort(-(x @ x.T)[q])[:3].tolist()


def test_k_reciprocal_equals_the_published_algorithm() -> None:
    """The vectorised form reproduces the reference loop exactly on clustered random vectors,
    for several (k1, k2, λ), and is symmetric with 1 on the diagonal."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((12, 16))
    x = centres[rng.integers(0, 12, 90)] + 0.8 * rng.standard_normal((90, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for k1, k2, lam in [(3, 1, 0.3), (10, 3, 0.3), (20, 6, 0.1)]:
        ours = rerank.k_reciprocal_similarity(x, k1=k1, k2=k2, lam=lam)
        reference = 1 - _zhong_reference(rerank.cosine_distance(x @ x.T), k1, k2, lam)
        np.testing.assert_allclose(ours, reference, atol=1e-12)
        np.testing.assert_allclose(ours, ours.T, atol=1e-12)
        np.testing.assert_allclose(np.diagonal(ours), 1.0)


def test_per_query_rescore_equals_all_pairs_form() -> None:
    """What the review screen would run per query (neighbour table only, or V precomputed)
    gives the same numbers as the all-pairs matrix the evaluation measured."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((70, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    full = rerank.k_reciprocal_similarity(x, k1=6, k2=3, lam=0.3)
    table, _ = rerank.knn_table(x @ x.T, 32)
    weights = rerank.reciprocal_weights(table, x, 6)
    for query in (0, 17, 69):
        candidates = np.argsort(-(x @ x[query]))[1:25]
        on_the_fly = rerank.k_reciprocal_rescore(table, x, query, candidates, k1=6, k2=3, lam=0.3)
        precomputed = rerank.k_reciprocal_rescore(
            table, x, query, candidates, k1=6, k2=3, lam=0.3, weights=weights
        )
        np.testing.assert_allclose(on_the_fly, full[query, candidates], atol=1e-12)
        np.testing.assert_allclose(precomputed, full[query, candidates], atol=1e-12)


def test_reciprocal_weights_refuses_a_table_too_narrow() -> None:
    """k1 neighbours cannot be read from a table that keeps fewer: fail, don't truncate silently."""
    x = _circle([0, 10, 20, 30])
    table, _ = rerank.knn_table(x @ x.T, 2)
    with pytest.raises(ValueError, match="k1=3"):
        rerank.reciprocal_weights(table, x, 3)


def test_jaccard_pairs_by_hand() -> None:
    """Rows {0: .5, 1: .5} and {1: .5, 2: .5} share min 0.5: Jaccard 1 - .5/1.5 = 2/3; a row with
    itself: 0; disjoint rows: 1."""
    v = rerank.SparseRows(
        np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 2, 3]), np.array([0.5, 0.5, 0.5, 0.5, 1.0]), 4
    )
    d = rerank.jaccard_pairs(v, np.array([0, 0, 0]), np.array([1, 0, 2]))
    assert d == pytest.approx([2 / 3, 0.0, 1.0])


# -- query expansion -------------------------------------------------------------------------------


def test_alpha_query_expansion_by_hand() -> None:
    """q=(1,0), nearest g=(0.8,0.6) (cos 0.8): α=0 gives unit(q+g); α=1 weighs g by 0.8; an
    excluded neighbour is skipped for the next one."""
    q = np.array([[1.0, 0.0]])
    g = np.array([[0.8, 0.6], [0.0, 1.0]])
    plain = rerank.alpha_query_expansion(q, g, k=1, alpha=0.0)
    np.testing.assert_allclose(plain, [[1.8, 0.6] / np.hypot(1.8, 0.6)])
    weighted = rerank.alpha_query_expansion(q, g, k=1, alpha=1.0)
    np.testing.assert_allclose(weighted, [[1.64, 0.48] / np.hypot(1.64, 0.48)])
    skipped = rerank.alpha_query_expansion(q, g, k=1, alpha=0.0, exclude=np.array([[True, False]]))
    np.testing.assert_allclose(skipped, [[1.0, 1.0] / np.sqrt(2)])


def test_database_augmentation_never_expands_with_its_own_unit() -> None:
    """Rows 0 and 1 are one encounter (near-identical): each must expand with row 2, not the other."""
    x = _circle([0, 1, 40, 120])
    out = rerank.database_augmentation(x, k=1, alpha=0.0, same_unit=np.array([0, 0, 1, 2]))
    np.testing.assert_allclose(out[0], rerank._unit(x[0] + x[2]))
    np.testing.assert_allclose(out[1], rerank._unit(x[1] + x[2]))


# -- set-to-set scoring ----------------------------------------------------------------------------


def test_pool_by_hand() -> None:
    """Pairs 0.9, 0.5, 0.1, 0.3: best 0.9, mean 0.45, top-2 0.7; log-mean-exp tends to the best
    for small τ and to the mean for large τ."""
    s = np.array([[0.9, 0.5], [0.1, 0.3]])
    assert rerank.pool(s, "max") == pytest.approx(0.9)
    assert rerank.pool(s, "mean") == pytest.approx(0.45)
    assert rerank.pool(s, "top_m", m=2) == pytest.approx(0.7)
    assert rerank.pool(s, "lme", tau=1e-3) == pytest.approx(0.9 + 1e-3 * np.log(0.25), abs=1e-6)
    assert rerank.pool(s, "lme", tau=1e3) == pytest.approx(0.45, abs=1e-3)
    with pytest.raises(ValueError):
        rerank.pool(np.empty(0), "max")


def test_set_similarity_equals_pool_on_every_group_pair() -> None:
    """The vectorised all-groups form agrees with `pool` on groups of different sizes."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((25, 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    groups = np.unique(rng.integers(0, 8, 25), return_inverse=True)[1]
    for how in ("max", "mean", "top_m", "lme"):
        got = rerank.set_similarity(sim, groups, how, m=3, tau=0.1)  # type: ignore[arg-type]
        for a in range(groups.max() + 1):
            for b in range(groups.max() + 1):
                block = sim[np.ix_(groups == a, groups == b)]
                assert got[a, b] == pytest.approx(rerank.pool(block, how, m=3, tau=0.1))  # type: ignore[arg-type]


# -- real photos -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nyala_subset(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[str], list[str]]:
    """Every photo of 10 nyala individuals with two or more sightings, embedded by the default model."""
    from PIL import Image

    from deerid.core.config import Settings
    from deerid.embed.embedder import get_embedder

    items = load_identity_folder(NYALA)
    sightings: dict[str, set[str]] = {}
    for _, ind, sig in items:
        sightings.setdefault(ind, set()).add(sig)
    chosen = sorted(i for i in sightings if len(sightings[i]) >= 2)[:10]
    rows = [it for it in items if it[1] in chosen]
    embedder = get_embedder(Settings(data_dir=tmp_path_factory.mktemp("rank-data"), device="cpu"))
    vectors = np.asarray(embedder.embed([Image.open(p).convert("RGB") for p, _, _ in rows]), dtype=np.float64)
    return vectors, [i for _, i, _ in rows], [s for _, _, s in rows]


@pytest.mark.slow
def test_real_nyala_forms_agree_with_the_product(
    nyala_subset: tuple[np.ndarray, list[str], list[str]],
) -> None:
    """On real photos: (1) the matrix metric is retrieval_metrics on the cosine, number for number,
    so every re-ranked row of docs/ranking.md is on the product's scale; (2) k-reciprocal at λ=1
    ranks exactly as the cosine; (3) "best pair" set scores over sightings are what the review
    queue (ReviewGraph, one profile per sighting) shows as each candidate's score; (4) the
    per-query re-score on a 32-nearest table equals the evaluated matrix; (5) the queue orders
    candidates by the benchmark's "average of best pair and mean vector"."""
    x, ind, sig = nyala_subset
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert len(set(ind)) == 10 and len(x) >= 30

    cosine = retrieval_metrics(x, ind, sig)
    assert retrieval_metrics_from_similarity(x @ x.T, ind, sig) == cosine
    assert cosine["n_queries"] > 0

    unit = np.unique([f"{a}/{b}" for a, b in zip(ind, sig, strict=True)], return_inverse=True)[1]
    flat = rerank.k_reciprocal_similarity(x, k1=5, k2=1, lam=1.0, same_unit=unit)
    assert retrieval_metrics_from_similarity(flat, ind, sig) == cosine

    best = rerank.set_similarity(x @ x.T, unit, "max")
    graph = ReviewGraph.from_vectors(x, unit, same_unit=unit)
    for query in range(unit.max() + 1):
        for c in graph.candidates(query, k=8):
            assert c.score == pytest.approx(best[query, c.profile])

    # (5) The queue's default order is the average of the best pair and the mean vectors' cosine,
    # measured best for ranking at level review effort (docs/ranking.md).
    means = rerank.mean_vectors(x, unit)
    both = (best + means @ means.T) / 2
    for query in range(unit.max() + 1):
        shown = [c.profile for c in graph.candidates(query, k=8)]
        others = np.delete(np.arange(unit.max() + 1), query)
        expected = others[np.argsort(-both[query, others], kind="stable")][: len(shown)]
        np.testing.assert_allclose(both[query, shown], both[query, expected], atol=1e-9)

    tuned = rerank.k_reciprocal_similarity(x, k1=5, k2=2, lam=0.6, same_unit=unit)
    table, _ = rerank.knn_table(x @ x.T, 32, same_unit=unit)
    weights = rerank.reciprocal_weights(table, x, 5, same_unit=unit)
    for query in (0, len(x) // 2):
        candidates = table[query, 1:20]
        candidates = candidates[candidates >= 0]
        got = rerank.k_reciprocal_rescore(table, x, query, candidates, k1=5, k2=2, lam=0.6, weights=weights)
        np.testing.assert_allclose(got, tuned[query, candidates], atol=1e-12)
        fly = rerank.k_reciprocal_rescore(table, x, query, candidates, k1=5, k2=2, lam=0.6, same_unit=unit)
        np.testing.assert_allclose(fly, tuned[query, candidates], atol=1e-12)
