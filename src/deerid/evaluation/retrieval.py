"""Sighting-aware retrieval metrics for re-identification embeddings.

Every image queries every other image, except images of its own sighting:
photos taken moments apart share pose, light and background, so letting them
match would measure near-duplicate detection instead of re-identification.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
# Bounds the (block, n) similarity matrix kept in memory at once.
_QUERY_BLOCK = 1024


def retrieval_metrics(
    vectors: np.ndarray, individuals: Sequence[str], sightings: Sequence[str]
) -> dict[str, float | int]:
    """top1, top5, mAP over valid queries, plus n_queries and n_excluded.

    Similarity is cosine (rows are normalised here, so callers may pass raw
    features). A query is valid when its individual has at least one image
    outside the query's own sighting; other images are counted in n_excluded.
    Ties in similarity are broken by gallery order, so results are exact and
    repeatable. With no valid query the three rates are NaN.
    """
    x = np.asarray(vectors, dtype=np.float64)
    n = len(individuals)
    if x.ndim != 2 or x.shape[0] != n or len(sightings) != n:
        raise ValueError(
            f"need one vector, individual and sighting per image: "
            f"got vectors {x.shape}, {n} individuals, {len(sightings)} sightings"
        )
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    ind = _codes(individuals)
    # A sighting belongs to one individual; keying on both keeps equal sighting
    # labels of different individuals apart.
    sig = _codes([f"{a}\x00{b}" for a, b in zip(individuals, sightings, strict=True)])

    top1 = top5 = ap_sum = 0.0
    n_queries = 0
    for start in range(0, n, _QUERY_BLOCK):
        stop = min(start + _QUERY_BLOCK, n)
        sim = x[start:stop] @ x.T
        for row, q in enumerate(range(start, stop)):
            keep = sig != sig[q]
            relevant = ind[keep] == ind[q]
            if not relevant.any():
                continue
            n_queries += 1
            order = np.argsort(-sim[row, keep], kind="stable")
            hits = relevant[order]
            top1 += float(hits[0])
            top5 += float(hits[:5].any())
            ranks = np.flatnonzero(hits) + 1
            ap_sum += float(np.mean(np.arange(1, len(ranks) + 1) / ranks))

    def rate(total: float) -> float:
        return total / n_queries if n_queries else float("nan")

    return {
        "top1": rate(top1),
        "top5": rate(top5),
        "mAP": rate(ap_sum),
        "n_queries": n_queries,
        "n_excluded": n - n_queries,
    }


def _codes(labels: Sequence[str]) -> np.ndarray:
    _, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    return codes


def load_identity_folder(root: Path | str) -> list[tuple[Path, str, str]]:
    """(path, individual, sighting) for `root/<individual>/<sighting>_<anything>.<jpg|jpeg|png>`.

    The sighting is the file stem before the first `_` (the whole stem when it
    has none). Sorted by path so every run sees the same order.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"identity folder not found: {root}")
    items: list[tuple[Path, str, str]] = []
    for individual_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(individual_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                items.append((path, individual_dir.name, path.stem.split("_", 1)[0]))
    return items
