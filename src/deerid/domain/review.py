"""The review queue: which question to put to a person next, and which deer to show with it.

A *screen* is one query profile (a provisional deer: at first one encounter) beside its
top-k candidate profiles. The person answers with one decision: "it is candidate i"
(the two merge), "none of these" (a no-match for every pair shown), or "skip". The queue
is judged by how few decisions bring the profiles to the truth, so:

- Profiles are compared as **sets of views**: the average of their best sighting pair and
  the cosine of their mean vectors. After a merge a profile holds more views of the animal,
  so the next query of it ranks better. On held-out nyala sightings this ranks above the
  best pair alone (top-1 15.8 vs 13.9 %, top-5 44.7 vs 41.8 %) at the same review effort;
  the mean vector alone ranks best but needs more decisions (docs/ranking.md, lever 2).
  The probability shown, and the queue's priority, stay those of the best pair, which is
  what calibrations are fitted on.
- The next query is the one whose shown candidates most probably contain its animal,
  `1 - Π(1 - p_i)` over the k shown, with `p` the calibrated probability that two
  profiles are one animal. A "yes" removes error; a "none" only narrows the search, so
  asking likely matches first raises accuracy fastest per decision.
- A pair once decided is never shown again, nor a pair that can never be one animal
  (two tracks of one event, two boxes of one photo): that is the `blocked` set.

Everything here is plain numpy over a snapshot, so the API (over PostgreSQL) and
`deerid eval --review` (over a labelled folder, answered by an oracle) run the same code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from deerid.domain.rerank import mean_vectors

DEFAULT_K = 8
# Up to this many sightings every pair is compared; above it each sighting keeps its NEIGHBOURS
# nearest (all pairs of 10,000 sightings would be 50 million). 32 nearest sightings reach far
# deeper than the few screens a query is ever shown.
ALL_PAIRS_LIMIT = 1_000
NEIGHBOURS = 32

_BLOCK = 4_096

Scoring = Literal["max", "mean", "both"]
DEFAULT_SCORING: Scoring = "both"

Probability = Callable[[np.ndarray], np.ndarray]
"""Calibrated map from a pair score (cosine) to the probability of one animal."""


def uncalibrated(scores: np.ndarray) -> np.ndarray:
    """Without a calibration the raw similarity stands in: it orders the same, it only means less."""
    return np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)


@dataclass(frozen=True)
class Candidate:
    profile: int
    score: float  # best cosine between a sighting of the query and one of the candidate
    probability: float  # of `score`: calibrations are fitted on best pairs
    via_query: int  # sighting rows that gave the score
    via_candidate: int


@dataclass(frozen=True)
class Screen:
    query: int
    candidates: tuple[Candidate, ...]
    priority: float  # probability that the query's animal is among the candidates
    waiting: int = 1  # queries that could be asked now, this one included


def comparable_pairs(
    vectors: np.ndarray,
    *,
    same_unit: np.ndarray | None = None,
    neighbours: int = NEIGHBOURS,
    all_pairs_limit: int = ALL_PAIRS_LIMIT,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) of the sighting pairs worth comparing, i < j, most similar first.

    All pairs up to `all_pairs_limit` rows, else each row's `neighbours` nearest (a pair is
    kept when either side has the other among its nearest). Rows with equal `same_unit`
    (one encounter) are never a pair: they would prove nothing."""
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if n <= all_pairs_limit:
        i, j = np.triu_indices(n, k=1)
        sim = (x @ x.T)[i, j] if n else np.empty(0)
        if same_unit is not None:
            keep = same_unit[i] != same_unit[j]
            i, j, sim = i[keep], j[keep], sim[keep]
    else:
        k = min(neighbours, n - 1)
        rows_i, rows_j, sims = [], [], []
        for start in range(0, n, 1024):
            block = x[start : start + 1024] @ x.T
            rows = np.arange(start, start + len(block))
            if same_unit is not None:
                block[same_unit[rows][:, None] == same_unit[None, :]] = -np.inf
            block[np.arange(len(block)), rows] = -np.inf
            nearest = np.argpartition(-block, k, axis=1)[:, :k]
            rows_i.append(np.repeat(rows, k))
            rows_j.append(nearest.ravel())
            sims.append(np.take_along_axis(block, nearest, axis=1).ravel())
        a, b, sim = np.concatenate(rows_i), np.concatenate(rows_j), np.concatenate(sims)
        ok = np.isfinite(sim)
        a, b, sim = a[ok], b[ok], sim[ok]
        i, j = np.minimum(a, b), np.maximum(a, b)
        _, first = np.unique(i.astype(np.int64) * n + j, return_index=True)
        i, j, sim = i[first], j[first], sim[first]
    order = np.argsort(-sim, kind="stable")
    return i[order].astype(np.int64), j[order].astype(np.int64), sim[order]


def _pair_key(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    lo = np.minimum(a, b).astype(np.int64)
    hi = np.maximum(a, b).astype(np.int64)
    return lo * n + hi


@dataclass
class ReviewGraph:
    """Sightings (rows), the profile each belongs to, and the sighting pairs worth comparing.

    `pair_i`, `pair_j`, `pair_sim` hold each comparable sighting pair once: all pairs for
    a small gallery, each sighting's nearest neighbours for a large one. Profiles are
    numbered 0..n_profiles-1; `owner[row]` is the profile of a sighting.
    """

    owner: np.ndarray
    pair_i: np.ndarray
    pair_j: np.ndarray
    pair_sim: np.ndarray
    n_profiles: int
    blocked: set[tuple[int, int]] = field(default_factory=set)  # profile pairs never to show
    retired: set[int] = field(default_factory=set)  # profiles not to ask about as queries (skipped)
    # Rows' L2-normalised vectors, whose cosines `pair_sim` holds (set scoring and QC).
    vectors: np.ndarray | None = None
    # How candidates are ordered. "max": best sighting pair (what the probability is calibrated
    # on); "mean": cosine of the profiles' mean vectors; "both": their average (docs/ranking.md).
    scoring: Scoring = DEFAULT_SCORING
    # Shared between snapshots of one gallery (the API's cache): the ranked candidates of the
    # last state of `owner`, reused while nobody merges.
    memo: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.owner = np.array(self.owner, dtype=np.int64)  # a copy: merges must not touch the caller's array
        sim = np.asarray(self.pair_sim, dtype=np.float64)
        presorted = len(sim) < 2 or bool((sim[:-1] >= sim[1:]).all())  # the store caches them sorted
        order = np.arange(len(sim)) if presorted else np.argsort(-sim, kind="stable")
        # Kept sorted by similarity, best first, so the first pair of each profile pair is its best.
        self.pair_i = np.asarray(self.pair_i, dtype=np.int64)[order]
        self.pair_j = np.asarray(self.pair_j, dtype=np.int64)[order]
        self.pair_sim = np.asarray(self.pair_sim, dtype=np.float64)[order]
        self._scores: tuple[np.ndarray, ...] | None = None
        self._rank: tuple[np.ndarray, ...] | None = None

    @classmethod
    def from_vectors(
        cls,
        vectors: np.ndarray,
        owner: Sequence[int] | np.ndarray,
        *,
        same_unit: np.ndarray | None = None,
        all_pairs_limit: int = ALL_PAIRS_LIMIT,
        scoring: Scoring = DEFAULT_SCORING,
    ) -> ReviewGraph:
        """The comparable pairs of `vectors` (see `comparable_pairs`)."""
        x = np.asarray(vectors, dtype=np.float64)
        i, j, sim = comparable_pairs(x, same_unit=same_unit, all_pairs_limit=all_pairs_limit)
        owner_arr = np.asarray(owner, dtype=np.int64)
        n = int(owner_arr.max()) + 1 if len(owner_arr) else 0
        return cls(owner_arr, i, j, sim, n, vectors=x, scoring=scoring)

    # -- what changes as people decide --------------------------------------------------------

    def block(self, a: int, b: int) -> None:
        self.blocked.add((min(a, b), max(a, b)))

    def is_blocked(self, a: int, b: int) -> bool:
        return (min(a, b), max(a, b)) in self.blocked

    def merge(self, query: int, into: int) -> None:
        """Fold profile `query` into `into`; what was blocked for either is blocked for the union."""
        if query == into:
            return
        self.owner[self.owner == query] = into
        moved = set()
        for a, b in self.blocked:
            if query in (a, b):
                other = b if a == query else a
                if other != into:
                    moved.add((min(other, into), max(other, into)))
        self.blocked = {p for p in self.blocked if query not in p} | moved
        self.retired.discard(query)
        self.invalidate()

    def invalidate(self) -> None:
        """Forget cached scores after changing `owner` or `n_profiles` directly."""
        self._scores = None
        self._rank = None

    def retire(self, profile: int) -> None:
        self.retired.add(profile)

    # -- scores -------------------------------------------------------------------------------
    #
    # Two layers, because people answer "none" far more often than they merge: what the merges
    # decide (each profile pair's best score, and every profile's candidates in order) is
    # computed once per state of `owner` (and may be shared between snapshots through `memo`);
    # what the answers decide (`blocked`) is only a mask over it, cheap to apply every time.

    def _base(self) -> tuple[np.ndarray, ...]:
        """Each comparable profile pair once, blocked or not:
        (a, b, ranking score, via a, via b, best pair score), a < b."""
        if self._scores is not None:
            return self._scores
        a = self.owner[self.pair_i]
        b = self.owner[self.pair_j]
        keep = a != b
        a, b = a[keep], b[keep]
        ri, rj, sim = self.pair_i[keep], self.pair_j[keep], self.pair_sim[keep]
        key = _pair_key(a, b, self.n_profiles)
        _, first = np.unique(key, return_index=True)  # first = best, pairs are sorted by similarity
        a, b, ri, rj, sim = a[first], b[first], ri[first], rj[first], sim[first]
        swap = a > b
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        ri, rj = np.where(swap, rj, ri), np.where(swap, ri, rj)
        rank = sim
        if self.vectors is not None and self.scoring != "max" and len(a):
            mean_sim = self._mean_vector_cosines(a, b, sim)
            rank = mean_sim if self.scoring == "mean" else (sim + mean_sim) / 2
        self._scores = (a, b, rank, ri, rj, sim)
        return self._scores

    def _mean_vector_cosines(self, a: np.ndarray, b: np.ndarray, sim: np.ndarray) -> np.ndarray:
        """Cosine of the unit mean vectors of profiles a and b, pair by pair.

        Most profiles hold one sighting, whose mean is its own vector, so a pair of two such
        profiles already has its answer in `sim` (the cosine of its one sighting pair). Only the
        pairs touching a profile with several sightings are computed: a full recompute over
        10,000 sightings took close to a second, and the API rebuilds after every merge."""
        assert self.vectors is not None
        counts = np.bincount(self.owner, minlength=self.n_profiles)
        several = (counts[a] > 1) | (counts[b] > 1)
        out = np.array(sim, dtype=np.float64)
        todo = np.flatnonzero(several)
        if not len(todo):
            return out
        groups = np.flatnonzero(counts > 1)
        rows = np.flatnonzero(counts[self.owner] > 1)
        compact = np.full(self.n_profiles, -1, dtype=np.int64)
        compact[groups] = np.arange(len(groups))
        means = mean_vectors(self.vectors[rows], compact[self.owner[rows]], len(groups))
        row = np.empty(self.n_profiles, dtype=np.int64)  # a one-sighting profile's row
        row[self.owner] = np.arange(len(self.owner))

        def prototypes(profiles: np.ndarray) -> np.ndarray:
            out = self.vectors[row[profiles]].astype(np.float64)  # type: ignore[index]
            multi = compact[profiles] >= 0
            out[multi] = means[compact[profiles[multi]]]
            return out

        for lo in range(0, len(todo), _BLOCK):
            part = todo[lo : lo + _BLOCK]
            out[part] = np.einsum("ij,ij->i", prototypes(a[part]), prototypes(b[part]))
        return out

    def _ranked(self) -> tuple[np.ndarray, ...]:
        """Every profile's candidates, blocked or not, as rows sorted by (query, ranking score
        descending, candidate): (query, candidate, best pair score, via query, via candidate,
        pair key, group starts)."""
        if self._rank is not None:
            return self._rank
        memo_key = None
        if self.memo is not None:
            digest = hashlib.blake2b(self.owner.tobytes(), digest_size=16)
            for part in (self.pair_i, self.pair_j, self.pair_sim):
                digest.update(part.tobytes())
            memo_key = (digest.hexdigest(), self.n_profiles, self.scoring)
            entry = self.memo.get("entry")  # one item: another thread may replace it meanwhile
            if entry is not None and entry[0] == memo_key:
                self._rank = entry[1]
                return self._rank
        a, b, rank, ri, rj, sim = self._base()
        # Lower candidates first among equal scores: the (b, a) half lists, per query, the
        # candidates below it in ascending order, the (a, b) half those above it.
        query = np.concatenate([b, a])
        other = np.concatenate([a, b])
        ranking = np.concatenate([rank, rank])
        score = np.concatenate([sim, sim])
        via_q = np.concatenate([rj, ri])
        via_c = np.concatenate([ri, rj])
        order = np.argsort(query + (1.0 - np.clip(ranking, -1.0, 1.0)) / 2.000001, kind="stable")
        query, other, score, via_q, via_c = (x[order] for x in (query, other, score, via_q, via_c))
        key = _pair_key(query, other, self.n_profiles)
        starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]]) if len(query) else np.empty(0, int)
        self._rank = (query, other, score, via_q, via_c, key, starts)
        if self.memo is not None:
            self.memo["entry"] = (memo_key, self._rank)
        return self._rank

    def _open(self, keys: np.ndarray) -> np.ndarray:
        """Which of these pair keys are not blocked."""
        if not self.blocked:
            return np.ones(len(keys), dtype=bool)
        n = self.n_profiles
        blocked = np.fromiter((x * n + y for x, y in self.blocked), dtype=np.int64, count=len(self.blocked))
        return ~np.isin(keys, blocked)

    def profile_pairs(self) -> tuple[np.ndarray, ...]:
        """Per comparable profile pair not blocked: (a, b, best pair score, via row of a, via row
        of b), a < b."""
        a, b, _, ri, rj, sim = self._base()
        ok = self._open(a * self.n_profiles + b)
        return a[ok], b[ok], sim[ok], ri[ok], rj[ok]

    def candidates(
        self, query: int, k: int = DEFAULT_K, probability: Probability = uncalibrated
    ) -> tuple[Candidate, ...]:
        """The query's k most probable other profiles, best first (ties: lower profile index)."""
        q, other, score, via_q, via_c, key, _ = self._ranked()
        lo, hi = np.searchsorted(q, [query, query + 1])
        rows = np.arange(lo, hi)[self._open(key[lo:hi])][:k]
        probs = probability(score[rows]) if len(rows) else np.empty(0)
        return tuple(
            Candidate(int(other[r]), float(score[r]), float(p), int(via_q[r]), int(via_c[r]))
            for r, p in zip(rows, probs, strict=True)
        )

    def priorities(
        self, k: int = DEFAULT_K, probability: Probability = uncalibrated
    ) -> tuple[np.ndarray, np.ndarray]:
        """(queries, priority): for each possible query, the probability that its animal is
        among its top k candidates. Retired profiles are left out."""
        query, _, score, _, _, key, starts = self._ranked()
        if len(query) == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        kept = self._open(key)
        # Rank of each open row among the open rows of its query.
        counted = np.cumsum(kept)
        before = np.repeat(counted[starts] - kept[starts], np.diff(np.r_[starts, len(query)]))
        top = kept & (counted - before <= k)
        query, score = query[top], score[top]
        if len(query) == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        miss = np.log1p(-np.clip(probability(score), 0.0, 1.0 - 1e-12))
        groups = np.flatnonzero(np.r_[True, query[1:] != query[:-1]])
        queries = query[groups]
        priority = 1.0 - np.exp(np.add.reduceat(miss, groups))
        if self.retired:
            keep = ~np.isin(queries, np.fromiter(self.retired, dtype=np.int64))
            queries, priority = queries[keep], priority[keep]
        return queries, priority

    def next_screen(
        self,
        k: int = DEFAULT_K,
        probability: Probability = uncalibrated,
        *,
        exclude: Iterable[int] = (),
    ) -> Screen | None:
        """The most promising query and its candidates; None when nothing is left to ask."""
        queries, priority = self.priorities(k, probability)
        skip = list(exclude)
        if skip:
            keep = ~np.isin(queries, np.asarray(skip, dtype=np.int64))
            queries, priority = queries[keep], priority[keep]
        if len(queries) == 0:
            return None
        # Highest priority; ties go to the lower profile index (queries are sorted) so runs repeat.
        best = int(np.argmax(priority))
        query = int(queries[best])
        return Screen(query, self.candidates(query, k, probability), float(priority[best]), len(queries))
