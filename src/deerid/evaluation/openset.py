"""Open-set re-identification as the pipeline lives it: a stream of images into an empty gallery.

Each image, in arrival order, is compared with every earlier image (carrying the
profile that image ended up in) and either joins the best profile at or above the
threshold or founds a new one — the rule of `deerid.domain.matching.decide`, with
the stream position as detection id so ties go to the profile seen first, as they
do in the database.

Differences from the pipeline, on purpose:
- Sighting rule: an image never matches *through* an image of its own sighting
  (left/right flank photos moments apart would make matching trivially easy); it
  may still join that profile through the profile's other images. Same-sighting
  images are simply not candidates.
- One partition: evaluation sets carry no sex, so every image is compared with
  every earlier one. Each image is its own photo, so no deer is excluded for
  sharing the query's photo.
- All earlier images are candidates, where the pipeline takes the nearest
  `NEIGHBOURS`; for NEAREST aggregation that cannot change a decision.

With NEAREST aggregation the image an image would match through is the most
similar earlier candidate whatever the threshold, so the stream is a forest of
"nearest earlier image" links, and a threshold only cuts the links below it. That
makes a sweep over many thresholds cost one similarity pass per order. Other
aggregations run `decide` per image (exact, but seconds per threshold on ~1,000
images).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import numpy as np

from deerid.domain.matching import Aggregation, Candidate, decide
from deerid.evaluation.clustering import OpenSetMetrics, mean_metrics, partition_metrics
from deerid.evaluation.data import LabelledSet

# 0.30 … 0.99: below 0.3 every zero-shot pair matches, 1.0 only matches duplicates.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.30 + 0.01 * i, 2) for i in range(70))

# How many of a deer's sightings each aggregation looks at; `decide` sees only these,
# which keeps each call small without changing its answer. A new aggregation must be
# added here deliberately.
_SIGHTINGS_USED = {Aggregation.NEAREST: 1, Aggregation.TOP2_MEAN: 2}


@dataclass(frozen=True)
class OpenSetResult:
    """One threshold: metrics averaged over the arrival orders, and each order's own."""

    threshold: float
    mean: OpenSetMetrics
    per_order: tuple[OpenSetMetrics, ...]

    @property
    def n_orders(self) -> int:
        return len(self.per_order)

    @property
    def worst_false_merge_rate(self) -> float:
        return max(m.false_merge_rate for m in self.per_order)

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            **self.mean.as_dict(),
            "worst_false_merge_rate": self.worst_false_merge_rate,
            "n_orders": self.n_orders,
        }


@dataclass(frozen=True)
class OpenSetSweep:
    """Open-set results at increasing thresholds (same orders for every threshold)."""

    results: tuple[OpenSetResult, ...]
    aggregation: Aggregation

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([r.threshold for r in self.results])

    @property
    def n_orders(self) -> int:
        return self.results[0].n_orders

    def curve(self, metric: str) -> np.ndarray:
        """Mean over orders of one OpenSetMetrics field, per threshold."""
        return np.array([getattr(r.mean, metric) for r in self.results], dtype=np.float64)

    @property
    def worst_false_merge_rate(self) -> np.ndarray:
        return np.array([r.worst_false_merge_rate for r in self.results])

    def at(self, threshold: float) -> OpenSetResult:
        """The result at a swept threshold (to within float rounding)."""
        for r in self.results:
            if abs(r.threshold - threshold) < 1e-9:
                return r
        raise KeyError(f"threshold {threshold} was not swept")


def stream_orders(
    n: int, *, orders: int = 3, seed: int = 0, capture_order: Sequence[Any] | None = None
) -> list[np.ndarray]:
    """Arrival orders (permutations of range(n)).

    `capture_order` (one sortable key per image, e.g. timestamps) gives the single
    real order, ties kept in input order; otherwise `orders` seeded random orders,
    since founders, and so the profiles, depend on who arrives first.
    """
    if capture_order is not None:
        if len(capture_order) != n:
            raise ValueError(f"need one capture key per image: {len(capture_order)} for {n}")
        return [np.array(sorted(range(n), key=lambda i: capture_order[i]), dtype=np.int64)]
    if orders < 1:
        raise ValueError(f"need at least one order, got {orders}")
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(orders)]


def simulate_stream(
    data: LabelledSet, order: np.ndarray, threshold: float, *, aggregation: Aggregation = Aggregation.NEAREST
) -> np.ndarray:
    """Founder index (into `data`) of each image's profile after streaming `order` at `threshold`."""
    order = _check_order(order, len(data))
    return _to_data_index(_stream(data, order, [threshold], aggregation)[0], order)


def evaluate_openset(
    data: LabelledSet,
    threshold: float,
    *,
    orders: int = 3,
    seed: int = 0,
    capture_order: Sequence[Any] | None = None,
    aggregation: Aggregation = Aggregation.NEAREST,
) -> OpenSetResult:
    """Open-set metrics at one threshold, over the orders of `stream_orders`."""
    sweep = sweep_openset(
        data, [threshold], orders=orders, seed=seed, capture_order=capture_order, aggregation=aggregation
    )
    return sweep.results[0]


def ideal_openset(
    data: LabelledSet,
    *,
    orders: int = 3,
    seed: int = 0,
    capture_order: Sequence[Any] | None = None,
    aggregation: Aggregation = Aggregation.NEAREST,
) -> OpenSetResult:
    """What a perfect embedding would score on the same orders: the ceiling under the sighting rule.

    An image whose individual has appeared only in its own sighting so far has no
    allowed match, so it founds a profile even with perfect vectors (an individual
    seen once, in two photos, always ends up as two profiles). Recall and profiles
    per individual should be read against this, not against 1.0.
    """
    one_hot = np.eye(data.n_individuals)[data.individual]
    perfect = LabelledSet(one_hot, data.individual, data.sighting, data.individual_names)
    return evaluate_openset(
        perfect, 0.5, orders=orders, seed=seed, capture_order=capture_order, aggregation=aggregation
    )


def sweep_openset(
    data: LabelledSet,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    orders: int = 3,
    seed: int = 0,
    capture_order: Sequence[Any] | None = None,
    aggregation: Aggregation = Aggregation.NEAREST,
) -> OpenSetSweep:
    """Open-set metrics at each threshold (sorted ascending), every threshold on the same orders."""
    if len(thresholds) == 0:
        raise ValueError("no thresholds to sweep")
    ts = sorted(float(t) for t in thresholds)
    order_list = stream_orders(len(data), orders=orders, seed=seed, capture_order=capture_order)
    per_threshold: list[list[OpenSetMetrics]] = [[] for _ in ts]
    for order in order_list:
        for k, founder_pos in enumerate(_stream(data, order, ts, aggregation)):
            founder = _to_data_index(founder_pos, order)
            per_threshold[k].append(partition_metrics(founder, data.individual))
    results = tuple(
        OpenSetResult(t, mean_metrics(runs), tuple(runs)) for t, runs in zip(ts, per_threshold, strict=True)
    )
    return OpenSetSweep(results, aggregation)


def _check_order(order: np.ndarray, n: int) -> np.ndarray:
    order = np.asarray(order, dtype=np.int64)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(f"order must be a permutation of range({n})")
    return order


def _stream(
    data: LabelledSet, order: np.ndarray, thresholds: Sequence[float], aggregation: Aggregation
) -> list[np.ndarray]:
    """Founder stream position per stream position, for each threshold."""
    if aggregation is Aggregation.NEAREST:
        parent, score = _nearest_earlier(data, order)
        return [_founders_from_links(parent, score, t) for t in thresholds]
    return [_stream_with_decide(data, order, t, aggregation) for t in thresholds]


def _to_data_index(founder_pos: np.ndarray, order: np.ndarray) -> np.ndarray:
    founder = np.empty_like(order)
    founder[order] = order[founder_pos]
    return founder


def _nearest_earlier(data: LabelledSet, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per stream position: position of the most similar earlier candidate (-1 if none), and its score.

    argmax returns the first maximum, i.e. the earliest image among equals, which is
    the tie-break `decide` applies between deer.
    """
    sim = data.similarity[np.ix_(order, order)]
    sig = data.sighting[order]
    n = len(order)
    blocked = np.triu(np.ones((n, n), dtype=bool)) | (sig[:, None] == sig[None, :])
    sim = np.where(blocked, -np.inf, sim)
    parent = np.argmax(sim, axis=1) if n else np.zeros(0, dtype=np.int64)
    score = sim[np.arange(n), parent]
    parent[np.isneginf(score)] = -1
    return parent, score


def _founders_from_links(parent: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
    founder = np.arange(len(parent))
    joins = (parent >= 0) & (score >= threshold)
    # Parents come earlier in the stream, so one forward pass resolves every chain.
    for i in np.flatnonzero(joins):
        founder[i] = founder[parent[i]]
    return founder


def _stream_with_decide(
    data: LabelledSet, order: np.ndarray, threshold: float, aggregation: Aggregation
) -> np.ndarray:
    """Founder position per stream position, deciding every image with `decide` itself."""
    try:
        keep = _SIGHTINGS_USED[aggregation]
    except KeyError:
        raise ValueError(f"no open-set simulation for aggregation {aggregation!r}") from None
    sim = data.similarity[np.ix_(order, order)]
    sig = data.sighting[order]
    n = len(order)
    founder = np.arange(n)
    for i in range(n):
        earlier = np.flatnonzero(sig[:i] != sig[i])
        candidates: list[Candidate] = []
        if earlier.size:
            profile = founder[earlier]
            sims = sim[i, earlier]
            # Each profile's best `keep` sightings, earliest first among equal similarities.
            by_profile = np.lexsort((earlier, -sims, profile))
            grouped = profile[by_profile]
            at = np.arange(len(grouped))
            starts = np.r_[True, grouped[1:] != grouped[:-1]]
            rank = at - np.maximum.accumulate(np.where(starts, at, 0))
            chosen = np.sort(by_profile[rank < keep])  # in stream order, like ascending detection ids
            candidates = [
                Candidate(int(earlier[k]), UUID(int=int(profile[k])), float(sims[k])) for k in chosen
            ]
        decision = decide(candidates, threshold, aggregation=aggregation)
        if decision.deer_id is not None:
            founder[i] = decision.deer_id.int
    return founder
