"""One call from labelled images (or vectors) to every evaluation number and the calibrated threshold."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from PIL import Image

from deerid.domain.matching import Aggregation
from deerid.domain.probability import SameAnimalProbability
from deerid.embed.protocol import EmbedderLike
from deerid.evaluation.calibration import (
    CALIBRATION_THRESHOLDS,
    DEFAULT_TARGET_FMR,
    Calibration,
    FmrRule,
    choose_threshold,
)
from deerid.evaluation.data import LabelledSet, require_calibration_data
from deerid.evaluation.openset import (
    OpenSetResult,
    OpenSetSweep,
    evaluate_openset,
    ideal_openset,
    sweep_openset,
)
from deerid.evaluation.pairs import fit_probability, probability_table
from deerid.evaluation.retrieval import load_identity_folder, retrieval_metrics
from deerid.evaluation.review import ReviewCurve, ReviewOptions, simulate_review
from deerid.evaluation.similarity import SimilarityStats, similarity_stats


class _StreamOptions(TypedDict):
    """The arrival-order options every open-set stream of one evaluation shares."""

    orders: int
    seed: int
    capture_order: Sequence[Any] | None
    aggregation: Aggregation


@dataclass(frozen=True)
class EvaluationResult:
    n_images: int
    n_individuals: int
    retrieval: dict[str, float | int]  # top1, top5, mAP, n_queries, n_excluded (closed set)
    threshold: float  # the active threshold the open-set numbers are for; NaN: none (no automatic merges)
    openset: OpenSetResult
    openset_ceiling: OpenSetResult  # a perfect embedding on the same orders (see `ideal_openset`)
    similarity: SimilarityStats
    calibration: Calibration
    aggregation: Aggregation
    seed: int
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) of images that could not be read
    model_id: str | None = None
    source: str | None = None
    probability: SameAnimalProbability | None = None  # encounter-vs-individual fit (evaluation.pairs)
    review: ReviewCurve | None = None  # the review queue answered by an oracle (`eval --review`)

    @property
    def sweep(self) -> OpenSetSweep:
        return self.calibration.curve

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable (NaN becomes None)."""
        out: dict[str, Any] = {
            "source": self.source,
            "model_id": self.model_id,
            "n_images": self.n_images,
            "n_individuals": self.n_individuals,
            "n_queries": self.retrieval["n_queries"],
            "n_excluded": self.retrieval["n_excluded"],
            "top1": self.retrieval["top1"],
            "top5": self.retrieval["top5"],
            "mAP": self.retrieval["mAP"],
            "threshold": self.threshold,
            "aggregation": self.aggregation.value,
            "n_orders": self.openset.n_orders,
            "seed": self.seed,
            "openset": self.openset.as_dict(),
            "openset_ceiling": {"threshold": None, **self.openset_ceiling.mean.as_dict()},
            "calibration": self.calibration.as_dict(with_curve=False),
            "probability": (
                {"n_pairs": self.probability.n_pairs, "at": probability_table(self.probability)}
                if self.probability is not None
                else None
            ),
            "sweep": [r.as_dict() for r in self.sweep.results],
            "similarity": self.similarity.as_dict(),
            "n_skipped": len(self.skipped),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }
        if self.review is not None:
            out["review"] = self.review.as_dict()
        return _json_safe(out)


def evaluate_vectors(
    vectors: np.ndarray,
    individuals: Sequence[str],
    sightings: Sequence[str],
    threshold: float | None,
    *,
    orders: int = 3,
    seed: int = 0,
    capture_order: Sequence[Any] | None = None,
    target_fmr: float = DEFAULT_TARGET_FMR,
    rule: FmrRule = FmrRule.WORST,
    thresholds: Sequence[float] = CALIBRATION_THRESHOLDS,
    aggregation: Aggregation = Aggregation.NEAREST,
    far: float = 0.01,
    model_id: str | None = None,
    source: str | None = None,
    skipped: Sequence[tuple[str, str]] = (),
    review: ReviewOptions | None = None,
) -> EvaluationResult:
    """Closed-set retrieval, open-set stream at `threshold`, the threshold sweep, similarity
    statistics, the calibrated threshold and the same-animal probability, for vectors that
    are already computed. `threshold` None (no automatic merges) streams with no match at all.

    `capture_order` (one sortable key per image) replaces the `orders` seeded random
    arrival orders with the one real order. Raises ValueError when the set has fewer
    than two individuals or no individual with two sightings.
    """
    if threshold is not None and not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold}")
    data = LabelledSet.build(vectors, individuals, sightings)
    require_calibration_data(data)
    stream: _StreamOptions = {
        "orders": orders,
        "seed": seed,
        "capture_order": capture_order,
        "aggregation": aggregation,
    }
    sweep = sweep_openset(data, thresholds, **stream)
    return EvaluationResult(
        n_images=len(data),
        n_individuals=data.n_individuals,
        retrieval=retrieval_metrics(data.vectors, individuals, sightings),
        threshold=float(threshold) if threshold is not None else math.nan,
        # No threshold: nothing merges, which an infinite threshold streams exactly.
        openset=evaluate_openset(data, threshold if threshold is not None else math.inf, **stream),
        openset_ceiling=ideal_openset(data, **stream),
        similarity=similarity_stats(data, far=far),
        calibration=choose_threshold(sweep, target_fmr, rule=rule),
        aggregation=aggregation,
        seed=seed,
        skipped=tuple(skipped),
        model_id=model_id,
        source=source,
        probability=fit_probability(data),
        review=simulate_review(
            data, threshold=threshold, k=review.k, probability=review.probability, budget=review.budget
        )
        if review is not None
        else None,
    )


def evaluate_folder(
    root: Path,
    embedder: EmbedderLike,
    *,
    threshold: float | None,
    orders: int = 3,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 32,
    target_fmr: float = DEFAULT_TARGET_FMR,
    rule: FmrRule = FmrRule.WORST,
    thresholds: Sequence[float] = CALIBRATION_THRESHOLDS,
    aggregation: Aggregation = Aggregation.NEAREST,
    far: float = 0.01,
    review: ReviewOptions | None = None,
) -> EvaluationResult:
    """`evaluate_vectors` on `root/<individual>/<sighting>_<anything>.jpg`, embedded here.

    Images that cannot be read are skipped and listed in the result. `progress(k)` is
    called after each batch with the number of images it handled (read or skipped),
    so the calls add up to the number of image files found.
    """
    items = load_identity_folder(root)
    if not items:
        raise ValueError(f"no images under {root} (expected <individual>/<sighting>_<name>.jpg)")
    vectors, kept, skipped = embed_items(items, embedder, batch_size=batch_size, progress=progress)
    if not kept:
        raise ValueError(f"none of the {len(items)} images under {root} could be read")
    return evaluate_vectors(
        vectors,
        [individual for _, individual, _ in kept],
        [sighting for _, _, sighting in kept],
        threshold,
        orders=orders,
        seed=seed,
        target_fmr=target_fmr,
        rule=rule,
        thresholds=thresholds,
        aggregation=aggregation,
        far=far,
        model_id=getattr(embedder, "model_id", None),
        source=str(root),
        skipped=skipped,
        review=review,
    )


def embed_items(
    items: Sequence[tuple[Path, str, str]],
    embedder: EmbedderLike,
    *,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[tuple[Path, str, str]], list[tuple[str, str]]]:
    """(vectors of the readable items, those items, (path, reason) of the unreadable ones)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    chunks: list[np.ndarray] = []
    kept: list[tuple[Path, str, str]] = []
    skipped: list[tuple[str, str]] = []
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        images: list[Image.Image] = []
        for item in batch:
            try:
                images.append(_read_rgb(item[0]))
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                skipped.append((str(item[0]), f"{type(exc).__name__}: {exc}"))
                continue
            kept.append(item)
        if images:
            chunks.append(np.asarray(embedder.embed(images)))
        if progress is not None:
            progress(len(batch))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
    return vectors, kept, skipped


def _read_rgb(path: Path) -> Image.Image:
    # Decode now, inside the try: PIL opens lazily and a truncated file fails only on load.
    with Image.open(path) as image:
        return image.convert("RGB")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
