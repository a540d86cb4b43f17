"""Re-ranking a candidate list and scoring sets of views, in plain numpy.

Everything here is a pure function over L2-normalised vectors, similarity matrices or a
nearest-neighbour table, so the evaluation (a labelled folder, all pairs) and the review
screen (a stored gallery, a 32-nearest table) can run the same code. Measured on nyala in
`docs/ranking.md` (`benchmarks/ranking.py`); read that before wiring any of it in.

Re-ranking (lever 1 of the ranking issue):

- **k-reciprocal re-ranking** (Zhong et al., CVPR 2017). Two photos of one animal tend to be
  in *each other's* nearest lists, a look-alike only in one direction. Each row gets a
  sparse, weighted set of its k-reciprocal neighbours (expanded by the reciprocal sets of
  its neighbours), optionally smoothed over its k2 nearest (local query expansion); the
  Jaccard distance between two such sets is blended with the original distance:
  ``d* = (1 - λ) · Jaccard + λ · d``. Only the neighbour table and the vectors are needed,
  so a gallery that keeps a nearest-neighbour table pays no extra vector queries.
- **αQE** (average query expansion, Radenović et al.): the query is replaced by the
  normalised sum of itself and its k nearest, each weighted by ``sim**α``.
- **DBA** (database-side augmentation): the same expansion applied to every stored vector.

Set-to-set scoring (lever 2): a sighting, track or deer is a set of views; the score of
two sets is a pooling of their view-pair similarities (best pair, mean, top-m mean,
log-mean-exp) or the cosine of their mean vectors.

Distances: for unit vectors ``d = (1 - cos) / 2`` lies in [0, 1], the range Zhong et al.
bring their distances to; re-ranked similarities are returned as ``1 - d*`` so that
"higher is more alike" holds everywhere, as in the rest of deerid.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

Pooling = Literal["max", "mean", "top_m", "lme"]


def cosine_distance(sim: np.ndarray) -> np.ndarray:
    """(1 - cos) / 2, clipped to [0, 1]: the distance the re-ranking blends."""
    return np.clip((1.0 - np.asarray(sim, dtype=np.float64)) / 2.0, 0.0, 1.0)


# -- nearest-neighbour table ---------------------------------------------------------------------


def knn_table(
    sim: np.ndarray, k: int, *, same_unit: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities), each (n, k + 1): every row's k nearest, itself first.

    Rows of one unit (the same encounter) are never neighbours of each other: their
    near-identity would fill the lists with duplicates and, in evaluation, smuggle in the
    pairs the protocol excludes. Ties go to the lower index so results repeat. A row with
    fewer than k other rows pads with -1 (similarity -inf)."""
    s = np.array(sim, dtype=np.float64)
    n = len(s)
    if s.shape != (n, n):
        raise ValueError(f"need a square similarity matrix, got {s.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if same_unit is not None:
        s[np.asarray(same_unit)[:, None] == np.asarray(same_unit)[None, :]] = -np.inf
    s[np.arange(n), np.arange(n)] = np.inf  # self first
    width = min(k + 1, n)
    order = np.argsort(-s, axis=1, kind="stable")[:, :width]
    sims = np.take_along_axis(s, order, axis=1)
    order = np.where(np.isfinite(sims) | (np.arange(width) == 0), order, -1)
    sims[:, 0] = np.diagonal(np.asarray(sim, dtype=np.float64))
    if width < k + 1:
        pad = k + 1 - width
        order = np.pad(order, ((0, 0), (0, pad)), constant_values=-1)
        sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
    return order.astype(np.int64), sims


# -- k-reciprocal re-ranking ---------------------------------------------------------------------


@dataclass(frozen=True)
class SparseRows:
    """Rows of a sparse non-negative matrix as sorted (row, col, weight) triples."""

    row: np.ndarray
    col: np.ndarray
    weight: np.ndarray
    n_cols: int

    @cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of each row's entries: computed once, since a gallery's V serves many queries."""
        rows = np.arange(self.n_cols)
        return np.searchsorted(self.row, rows), np.searchsorted(self.row, rows, side="right")

    def dense(self, n_rows: int) -> np.ndarray:
        out = np.zeros((n_rows, self.n_cols))
        out[self.row, self.col] = self.weight
        return out


def _coalesce(row: np.ndarray, col: np.ndarray, weight: np.ndarray, n_cols: int) -> SparseRows:
    """Sum duplicate (row, col) entries and sort: the union step of the set expansions."""
    key = row.astype(np.int64) * n_cols + col
    keys, inverse = np.unique(key, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=weight, minlength=len(keys))
    return SparseRows(keys // n_cols, keys % n_cols, summed, n_cols)


def _reciprocal(table: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(len(rows), k + 1): each row's k-nearest that also hold the row among their k-nearest, else -1."""
    forward = table[rows, : k + 1]
    safe = np.where(forward >= 0, forward, 0)
    back = table[safe, : k + 1]  # (r, k+1, k+1)
    mutual = (back == rows[:, None, None]).any(axis=2) & (forward >= 0)
    return np.where(mutual, forward, -1)


def reciprocal_weights(
    table: np.ndarray,
    vectors: np.ndarray,
    k1: int,
    *,
    rows: np.ndarray | None = None,
    same_unit: np.ndarray | None = None,
    chunk: int = 2048,
) -> SparseRows:
    """Zhong et al.'s V: for each row, Gaussian weights over its expanded k-reciprocal set.

    The set R*(i) is R(i, k1) (mutual k1-nearest) joined with R(c, k1/2) for every c in
    R(i, k1) whose half-size set overlaps R(i, k1) by more than 2/3: that adds views the
    strict mutual test misses (a flank seen from further off) while keeping out the
    neighbours of look-alikes. Weights are exp(-d), normalised to sum 1 per row.

    Needs `table` (from `knn_table`, at least k1 + 1 wide) and the vectors (for the
    weights of expansion members outside a row's own list): no extra nearest-neighbour
    queries. `rows` limits the work to the rows a query needs (the review screen's case).
    Members of the row's own unit are dropped (see `knn_table`)."""
    n = len(table)
    if table.shape[1] < k1 + 1:
        raise ValueError(f"the neighbour table is {table.shape[1] - 1} wide, k1={k1} needs {k1}")
    x = np.asarray(vectors)  # cast per gathered row below: a gallery-sized copy per query would dominate
    want = np.arange(n) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    half = int(np.around(k1 / 2))
    out_r, out_c, out_w = [], [], []
    for start in range(0, len(want), chunk):
        r = want[start : start + chunk]
        mutual = _reciprocal(table, r, k1)  # (r, k1+1)
        cands = np.unique(mutual[mutual >= 0])
        # Half-size sets of just the members seen here, looked up by position (no gallery-sized array).
        half_sets = _reciprocal(table, cands, half) if len(cands) else np.full((1, half + 1), -1)
        hs = half_sets[np.searchsorted(cands, np.where(mutual >= 0, mutual, cands[0] if len(cands) else 0))]
        hs = np.where((mutual >= 0)[:, :, None], hs, -1)
        inside = (hs[:, :, :, None] == mutual[:, None, None, :]).any(axis=3) & (hs >= 0)
        size = (hs >= 0).sum(axis=2)
        accept = inside.sum(axis=2) > (2.0 / 3.0) * size
        extra = np.where(accept[:, :, None], hs, -1).reshape(len(r), -1)
        members = np.concatenate([mutual, extra], axis=1)
        rr = np.broadcast_to(r[:, None], members.shape)
        ok = members >= 0
        if same_unit is not None:
            unit = np.asarray(same_unit)
            ok &= (unit[np.where(ok, members, 0)] != unit[rr]) | (members == rr)
        rr, cc = rr[ok], members[ok]
        key = np.unique(rr.astype(np.int64) * n + cc)
        rr, cc = key // n, key % n
        cos = np.einsum("ij,ij->i", x[rr].astype(np.float64), x[cc].astype(np.float64))
        w = np.exp(-cosine_distance(cos))
        total = np.bincount(rr - r.min(), weights=w, minlength=int(r.max() - r.min()) + 1)
        out_r.append(rr)
        out_c.append(cc)
        out_w.append(w / total[rr - r.min()])
    if not out_r:
        return SparseRows(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), n)
    return SparseRows(np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_w), n)


def local_expansion(v: SparseRows, table: np.ndarray, k2: int, rows: np.ndarray | None = None) -> SparseRows:
    """Each row's V averaged over its k2 nearest (itself included): Zhong et al.'s local query
    expansion, which smooths a single odd view's neighbourhood with its neighbours'. k2 = 1 is
    the identity. Rows of V that the average needs must be present in `v`."""
    if k2 <= 1:
        return v
    n = len(table)
    want = np.arange(n) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    src = table[want, :k2]  # (r, k2), itself first
    starts, ends = v.bounds
    counts = np.where(src >= 0, ends[np.where(src >= 0, src, 0)] - starts[np.where(src >= 0, src, 0)], 0)
    # Gather the V rows of every (target, source) pair without a Python loop per row.
    flat_src = src.ravel()
    flat_cnt = counts.ravel()
    target = np.repeat(np.repeat(want, k2), flat_cnt)
    begin = np.repeat(np.where(flat_src >= 0, starts[np.where(flat_src >= 0, flat_src, 0)], 0), flat_cnt)
    offset = np.arange(flat_cnt.sum()) - np.repeat(np.cumsum(flat_cnt) - flat_cnt, flat_cnt)
    take = begin + offset
    return _coalesce(target, v.col[take], v.weight[take] / k2, v.n_cols)


def jaccard_pairs(v: SparseRows, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard distance of rows a[p] and b[p] of V, 1 - Σmin / Σmax (= 1 - m / (2 - m) as the
    rows sum to 1): small when two views share their reciprocal neighbourhoods."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    n = v.n_cols
    starts, ends = v.bounds

    def gather(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cnt = ends[rows] - starts[rows]
        pair = np.repeat(np.arange(len(rows)), cnt)
        take = np.repeat(starts[rows], cnt) + np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        return pair, v.col[take], v.weight[take]

    pa, ca, wa = gather(a)
    pb, cb, wb = gather(b)
    key = np.concatenate([pa * n + ca, pb * n + cb])
    w = np.concatenate([wa, wb])
    order = np.argsort(key, kind="stable")
    key, w = key[order], w[order]
    dup = np.flatnonzero(key[1:] == key[:-1])  # a column both rows hold
    shared = np.bincount(key[dup] // n, weights=np.minimum(w[dup], w[dup + 1]), minlength=len(a))
    return 1.0 - shared / (2.0 - shared)


def _jaccard_dense(v: np.ndarray) -> np.ndarray:
    """All-pairs Jaccard distance of dense V rows (evaluation sizes: a few thousand rows)."""
    n = len(v)
    shared = np.zeros((n, n))
    for i in range(n):
        cols = np.flatnonzero(v[i])
        shared[i] = np.minimum(v[i, cols][None, :], v[:, cols]).sum(axis=1)
    return 1.0 - shared / (2.0 - shared)


def k_reciprocal_similarity(
    vectors: np.ndarray,
    *,
    k1: int = 20,
    k2: int = 6,
    lam: float = 0.3,
    same_unit: np.ndarray | None = None,
) -> np.ndarray:
    """(n, n) re-ranked similarity ``1 - ((1 - λ)·Jaccard + λ·d)`` of every pair of rows.

    The all-pairs form, for evaluation and for galleries small enough to compare every pair;
    symmetric, with 1 on the diagonal. λ = 1 gives back the cosine order; λ = 0 ranks by
    shared neighbourhoods alone."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"λ must be in [0, 1], got {lam}")
    x = np.asarray(vectors, dtype=np.float64)
    sim = x @ x.T
    table, _ = knn_table(sim, max(k1, k2), same_unit=same_unit)
    v = local_expansion(reciprocal_weights(table, x, k1, same_unit=same_unit), table, k2)
    jaccard = _jaccard_dense(v.dense(len(x)))
    return 1.0 - ((1.0 - lam) * jaccard + lam * cosine_distance(sim))


def k_reciprocal_rescore(
    table: np.ndarray,
    vectors: np.ndarray,
    query: int,
    candidates: np.ndarray,
    *,
    k1: int = 20,
    k2: int = 6,
    lam: float = 0.3,
    weights: SparseRows | None = None,
    same_unit: np.ndarray | None = None,
) -> np.ndarray:
    """Re-ranked similarities of one stored query row to its candidate rows (the review screen's form).

    With `weights` (V of every row, from `reciprocal_weights`, kept beside the neighbour table)
    the work is a lookup and a Jaccard over len(candidates) pairs; without, V is computed for
    just the rows the query needs (the query, its candidates and their k2 nearest)."""
    c = np.asarray(candidates, dtype=np.int64)
    x = np.asarray(vectors)  # rows are cast as gathered (see reciprocal_weights)
    rows = np.r_[query, c]
    if weights is None:
        need = np.unique(table[rows, :k2]) if k2 > 1 else rows
        weights = reciprocal_weights(table, x, k1, rows=need[need >= 0], same_unit=same_unit)
    v = local_expansion(weights, table, k2, rows=rows)
    jaccard = jaccard_pairs(v, np.full(len(c), query), c)
    cos = x[c].astype(np.float64) @ x[query].astype(np.float64)
    return 1.0 - ((1.0 - lam) * jaccard + lam * cosine_distance(cos))


# -- query expansion -----------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def alpha_query_expansion(
    queries: np.ndarray,
    gallery: np.ndarray,
    *,
    k: int = 3,
    alpha: float = 3.0,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Each query replaced by unit(q + Σ_{k nearest g} max(cos, 0)^α · g).

    The nearest gallery views are likely the same animal; adding them averages out pose and
    light. α > 0 lets close neighbours count more than marginal ones (α = 0: plain average QE).
    `exclude[q, g]` True keeps g out of q's expansion (itself, its own encounter)."""
    q = np.asarray(queries, dtype=np.float64)
    g = np.asarray(gallery, dtype=np.float64)
    if k < 1:
        return _unit(q)
    sim = q @ g.T
    if exclude is not None:
        sim = np.where(exclude, -np.inf, sim)
    k = min(k, g.shape[0])
    nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    s = np.take_along_axis(sim, nearest, axis=1)
    w = np.where(np.isfinite(s), np.maximum(s, 0.0) ** alpha, 0.0)
    return _unit(q + np.einsum("qk,qkd->qd", w, g[nearest]))


def database_augmentation(
    vectors: np.ndarray, *, k: int = 3, alpha: float = 3.0, same_unit: np.ndarray | None = None
) -> np.ndarray:
    """Every stored vector expanded by its own k nearest (αQE applied to the gallery), so both
    sides of a comparison are neighbourhood averages. Rows of one unit do not expand each other."""
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    exclude = np.eye(n, dtype=bool)
    if same_unit is not None:
        exclude |= np.asarray(same_unit)[:, None] == np.asarray(same_unit)[None, :]
    return alpha_query_expansion(x, x, k=k, alpha=alpha, exclude=exclude)


# -- set-to-set scoring --------------------------------------------------------------------------


def pool(pair_sims: np.ndarray, how: Pooling = "max", *, m: int = 2, tau: float = 0.05) -> float:
    """One score from the view-pair similarities of two sets.

    max: the best pair (today's rule: one good view suffices, one bad one costs nothing);
    mean: every pair counts (a bad view drags it down); top_m: mean of the m best (needs m
    agreeing pairs, so a single lucky pair cannot win alone); lme: τ·log mean exp(s/τ), a
    soft max that tends to max as τ → 0 and to mean as τ → ∞."""
    s = np.asarray(pair_sims, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("no pair to pool")
    if how == "max":
        return float(s.max())
    if how == "mean":
        return float(s.mean())
    if how == "top_m":
        return float(np.sort(s)[-min(m, s.size) :].mean())
    if how == "lme":
        top = s.max()
        return float(top + tau * np.log(np.mean(np.exp((s - top) / tau))))
    raise ValueError(f"unknown pooling {how!r}")


def set_similarity(
    sim: np.ndarray, groups: np.ndarray, how: Pooling = "max", *, m: int = 2, tau: float = 0.05
) -> np.ndarray:
    """(G, G) set-to-set scores from an (n, n) view similarity and the group code (0..G-1) of
    each view: `pool` of every pair of groups at once (groups padded to the largest)."""
    g = np.asarray(groups, dtype=np.int64)
    s = np.asarray(sim, dtype=np.float64)
    n_groups = int(g.max()) + 1 if len(g) else 0
    order = np.argsort(g, kind="stable")
    size = np.bincount(g, minlength=n_groups)
    width = int(size.max()) if n_groups else 0
    slot = np.arange(len(g)) - np.repeat(np.cumsum(size) - size, size)
    idx = np.full((n_groups, width), -1, dtype=np.int64)
    idx[g[order], slot] = order
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    # (G, G, width * width): every view pair of every group pair.
    block = s[safe[:, None, :, None], safe[None, :, None, :]].reshape(n_groups, n_groups, -1)
    ok = (valid[:, None, :, None] & valid[None, :, None, :]).reshape(n_groups, n_groups, -1)
    count = ok.sum(axis=2)
    if how == "max":
        return np.where(ok, block, -np.inf).max(axis=2)
    if how == "mean":
        return np.where(ok, block, 0.0).sum(axis=2) / count
    if how == "top_m":
        ranked = np.sort(np.where(ok, block, -np.inf), axis=2)[:, :, ::-1]
        take = np.minimum(m, count)
        keep = np.arange(ranked.shape[2]) < take[:, :, None]
        return np.where(keep, ranked, 0.0).sum(axis=2) / take
    if how == "lme":
        top = np.where(ok, block, -np.inf).max(axis=2)
        e = np.where(ok, np.exp((block - top[:, :, None]) / tau), 0.0)
        return top + tau * np.log(e.sum(axis=2) / count)
    raise ValueError(f"unknown pooling {how!r}")


def mean_vectors(vectors: np.ndarray, groups: np.ndarray, n_groups: int | None = None) -> np.ndarray:
    """(G, d) unit mean vector of each group's views: one prototype per set (zero for a group
    with no views)."""
    g = np.asarray(groups, dtype=np.int64)
    x = np.asarray(vectors, dtype=np.float64)
    n = (int(g.max()) + 1 if len(g) else 0) if n_groups is None else n_groups
    out = np.zeros((n, x.shape[1]))
    if len(g):
        # Sums as differences of one running sum over the views sorted by group: np.add.at and
        # np.add.reduceat take seconds at 10,000 views, and the review queue recomputes these
        # after every merge.
        order = np.argsort(g, kind="stable")
        held = g[order]
        ends = np.flatnonzero(np.r_[held[1:] != held[:-1], True])
        running = np.cumsum(x[order], axis=0)[ends]
        running[1:] -= running[:-1].copy()
        out[held[ends]] = running
    return _unit(out)
