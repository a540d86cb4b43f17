"""Human effort, measured: the product's own review queue answered by an oracle.

The folder's labels play the person. Profiles start as the pipeline leaves them: one per
encounter (in the folder format the `<sighting>` prefix is the encounter), joined
automatically only where a threshold is in force. Then, screen after screen, the queue
of `deerid.domain.review` (the code behind `GET /api/review/next`) picks a query and its
top-k candidates, and the oracle answers as a careful person would: the first candidate
that is the query's animal (its majority individual) is picked and merged, otherwise
"none of these". Every answer is one decision. BCubed F1 over images is recorded after
each one, giving decisions per image to reach F1 0.8 / 0.9 / 0.95 and F1 after 0.25 /
0.5 / 1 decisions per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deerid.domain.review import DEFAULT_K, DEFAULT_SCORING, Probability, ReviewGraph, Scoring, uncalibrated
from deerid.evaluation.clustering import partition_metrics
from deerid.evaluation.data import LabelledSet

F1_LEVELS: tuple[float, ...] = (0.8, 0.9, 0.95)
EFFORT_LEVELS: tuple[float, ...] = (0.25, 0.5, 1.0)
DEFAULT_BUDGET = 3.0  # decisions per image before the simulation stops
# The evaluation compares every pair up to this many images (the API keeps each sighting's
# nearest above 1,000: on all of nyala train, 1,213 photos, that depth ran out of candidates
# before F1 0.95; docs/review.md).
EXACT_LIMIT = 5_000


@dataclass(frozen=True)
class ReviewOptions:
    k: int = DEFAULT_K
    probability: Probability = uncalibrated  # never fitted on the evaluated set itself: that is its answer
    budget: float = DEFAULT_BUDGET


@dataclass(frozen=True)
class ReviewCurve:
    decisions: np.ndarray  # 0, 1, 2, ...
    f1: np.ndarray  # BCubed F1 after that many decisions
    n_images: int
    matches: int  # decisions that merged
    start_profiles: int
    auto_merges: int
    k: int

    def decisions_per_image_to(self, level: float) -> float | None:
        reached = np.flatnonzero(self.f1 >= level - 1e-12)
        return round(float(self.decisions[reached[0]]) / self.n_images, 4) if len(reached) else None

    def f1_at(self, per_image: float) -> float:
        upto = np.flatnonzero(self.decisions <= per_image * self.n_images)
        return round(float(self.f1[upto[-1]]), 4)

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `deerid eval --review` (a level never reached is None)."""
        return {
            "n_images": self.n_images,
            "decisions_per_image_to_f1": {str(x): self.decisions_per_image_to(x) for x in F1_LEVELS},
            "f1_at_decisions_per_image": {_key(x): self.f1_at(x) for x in EFFORT_LEVELS},
            "decisions": int(self.decisions[-1]),
            "matches": self.matches,
            "start_f1": round(float(self.f1[0]), 4),
            "start_profiles": self.start_profiles,
            "auto_merges": self.auto_merges,
            "k": self.k,
        }


def _key(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _founders(owner: np.ndarray) -> np.ndarray:
    """partition_metrics wants each image labelled by the first image of its profile."""
    first = np.full(int(owner.max()) + 1, len(owner), dtype=np.int64)
    np.minimum.at(first, owner, np.arange(len(owner)))
    return first[owner]


def automatic_profiles(data: LabelledSet, threshold: float | None) -> tuple[np.ndarray, int]:
    """The pipeline's automatic result: encounters in arrival (file) order, each joining the
    best earlier profile at or above `threshold` by its best image pair, else founding one.

    Returns (profile per image, number of automatic joins)."""
    encounters = list(dict.fromkeys(data.sighting.tolist()))
    owner = np.full(len(data), -1, dtype=np.int64)
    joins = 0
    sim = data.similarity
    for n, enc in enumerate(encounters):
        rows = np.flatnonzero(data.sighting == enc)
        placed = owner >= 0
        if threshold is not None and placed.any():
            best = sim[np.ix_(rows, np.flatnonzero(placed))].max(axis=0)
            owners = owner[placed]
            scores = np.full(int(owners.max()) + 1, -np.inf)
            np.maximum.at(scores, owners, best)
            target = int(np.argmax(scores))
            if scores[target] >= threshold:
                owner[rows] = target
                joins += 1
                continue
        owner[rows] = n
    return owner, joins


def simulate_review(
    data: LabelledSet,
    *,
    threshold: float | None = None,
    k: int = DEFAULT_K,
    probability: Probability = uncalibrated,
    budget: float = DEFAULT_BUDGET,
    scoring: Scoring = DEFAULT_SCORING,
) -> ReviewCurve:
    """Run the review queue with an oracle until every pair is decided, `budget` is spent, or
    every reported figure is known (F1 0.95 reached and 1 decision per image made)."""
    owner, joins = automatic_profiles(data, threshold)
    graph = ReviewGraph.from_vectors(
        data.vectors, owner, same_unit=data.sighting, all_pairs_limit=EXACT_LIMIT, scoring=scoring
    )
    truth = data.individual

    def animal(profile: int) -> int:
        return int(np.bincount(truth[graph.owner == profile]).argmax())

    n = len(data)
    decisions = [0]
    f1 = [partition_metrics(_founders(graph.owner), truth).bcubed_f1]
    matches = 0
    limit = math.floor(budget * n)
    while decisions[-1] < limit:
        screen = graph.next_screen(k, probability)
        if screen is None:
            break
        wanted = animal(screen.query)
        hit = next((c for c in screen.candidates if animal(c.profile) == wanted), None)
        if hit is not None:
            graph.merge(screen.query, hit.profile)
            matches += 1
        else:
            for c in screen.candidates:
                graph.block(screen.query, c.profile)
        decisions.append(decisions[-1] + 1)
        f1.append(partition_metrics(_founders(graph.owner), truth).bcubed_f1)
        # Every figure reported is known once the top level is reached and the longest effort
        # is spent; going on would only cost time.
        if f1[-1] >= max(F1_LEVELS) and decisions[-1] >= max(EFFORT_LEVELS) * n:
            break
    return ReviewCurve(
        np.asarray(decisions),
        np.asarray(f1),
        n,
        matches,
        len(np.unique(owner)),
        joins,
        k,
    )


def mean_review(curves: Sequence[ReviewCurve]) -> dict[str, Any]:
    """Fold means of the figures (a level missed by any fold is None)."""
    dicts = [c.as_dict() for c in curves]
    out: dict[str, Any] = {"decisions_per_image_to_f1": {}, "f1_at_decisions_per_image": {}}
    for group in out:
        for key in dicts[0][group]:
            values = [d[group][key] for d in dicts]
            out[group][key] = None if any(v is None for v in values) else round(float(np.mean(values)), 4)
    return out


def plot_review(curves: Sequence[tuple[str, ReviewCurve]], path: Any) -> None:
    """F1 against decisions per image, one line per curve, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for label, curve in curves:
        ax.plot(curve.decisions / curve.n_images, curve.f1, label=label, linewidth=1.6)
    for level in F1_LEVELS:
        ax.axhline(level, color="0.8", linewidth=0.8, zorder=0)
    ax.set_xlabel("review decisions per image")
    ax.set_ylabel("BCubed F1")
    ax.set_ylim(0, 1.01)
    ax.set_xlim(left=0)
    ax.set_title("Profiles after review (oracle answers)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
