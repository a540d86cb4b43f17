"""Retrieval metrics over a given similarity matrix, for rankings that are not a dot product.

`deerid.evaluation.retrieval.retrieval_metrics` scores vectors (it computes the cosine
itself). Re-ranked scores (k-reciprocal, an expanded query against a raw gallery, set
pooling) are a matrix with no vectors behind it, so this applies the *same* protocol to a
matrix: row q's scores rank the other rows, rows of q's own sighting never count, a query is
valid when its individual has a row outside its sighting, ties go to gallery order. On
``vectors @ vectors.T`` it gives exactly what `retrieval_metrics` gives (a test holds it
to that), so the two can be compared row for row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def retrieval_metrics_from_similarity(
    sim: np.ndarray, individuals: Sequence[str], sightings: Sequence[str]
) -> dict[str, float | int]:
    """top1, top5, mAP, n_queries, n_excluded of `sim[q, g]` (higher: more alike; need not be symmetric)."""
    s = np.asarray(sim, dtype=np.float64)
    n = len(individuals)
    if s.shape != (n, n) or len(sightings) != n:
        raise ValueError(
            f"need an (n, n) similarity with one individual and sighting per row: "
            f"got {s.shape}, {n} individuals, {len(sightings)} sightings"
        )
    ind = _codes(individuals)
    sig = _codes([f"{a}\x00{b}" for a, b in zip(individuals, sightings, strict=True)])
    top1 = top5 = ap_sum = 0.0
    n_queries = 0
    for q in range(n):
        keep = sig != sig[q]
        relevant = ind[keep] == ind[q]
        if not relevant.any():
            continue
        n_queries += 1
        hits = relevant[np.argsort(-s[q, keep], kind="stable")]
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
