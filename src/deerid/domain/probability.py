"""Similarity → probability that two are the same animal, fitted by isotonic regression.

A raw cosine similarity means different things for different models (a trained
model's similarities sit far higher than a pretrained one's), so people and the
candidate ranking see a probability fitted on labelled pairs instead.

The fit is the pool-adjacent-violators solution (monotone non-decreasing, no shape
assumed beyond that, as wildlife-tools does), with each pooled block shrunk towards
the base rate by `prior_pairs` pseudo-pairs: a lone pair at the top or bottom of the
score range would otherwise pin the probability to exactly 1 or 0, which no finite
sample can show. Between knots the map is linear; outside them it is flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, overload

import numpy as np

KIND = "isotonic"


@dataclass(frozen=True)
class SameAnimalProbability:
    x: np.ndarray  # knot scores, strictly increasing
    y: np.ndarray  # probability at each knot, non-decreasing, strictly inside (0, 1)
    n_pairs: int
    n_same: int
    prior_pairs: float

    @classmethod
    def fit(cls, scores: np.ndarray, same: np.ndarray, *, prior_pairs: float = 1.0) -> SameAnimalProbability:
        """Fit on pair scores and whether each pair is the same animal.

        Raises ValueError on no pairs, mismatched lengths, non-finite scores, or pairs
        of one class only (a probability cannot be measured without both kinds).
        """
        s = np.asarray(scores, dtype=np.float64).ravel()
        t = np.asarray(same, dtype=bool).ravel()
        if s.size == 0:
            raise ValueError("no pairs to fit a same-animal probability on")
        if s.size != t.size:
            raise ValueError(f"need one label per score: {s.size} scores, {t.size} labels")
        if not np.isfinite(s).all():
            raise ValueError("pair scores contain NaN or infinite values")
        n_same = int(t.sum())
        if n_same == 0 or n_same == s.size:
            kind = "same-animal" if n_same else "different-animal"
            raise ValueError(
                f"all {s.size} pairs are {kind} pairs: a probability needs both same- and "
                "different-animal pairs (more than one individual, some seen twice)"
            )
        if prior_pairs <= 0:
            raise ValueError(f"prior_pairs must be positive, got {prior_pairs}")

        # Tied scores are one point: a block boundary may never split them.
        ux, inverse = np.unique(s, return_inverse=True)
        weight = np.bincount(inverse).astype(np.float64)
        hits = np.bincount(inverse, weights=t.astype(np.float64))
        lo, hi, w, v = _pav_blocks(list(ux), list(ux), hits / weight, weight)
        base = n_same / s.size
        smoothed = (v * w + prior_pairs * base) / (w + prior_pairs)
        # Shrinking pulls small blocks further than big ones, which can break the order:
        # pool once more over the shrunk values (weighted by their effective size).
        lo, hi, _, v = _pav_blocks(lo, hi, smoothed, w + prior_pairs)
        xs: list[float] = []
        ys: list[float] = []
        for a, b, p in zip(lo, hi, v, strict=True):
            xs.append(a)
            ys.append(p)
            if b > a:
                xs.append(b)
                ys.append(p)
        return cls(np.array(xs), np.array(ys), int(s.size), n_same, float(prior_pairs))

    @overload
    def __call__(self, scores: float) -> float: ...
    @overload
    def __call__(self, scores: np.ndarray) -> np.ndarray: ...
    def __call__(self, scores: float | np.ndarray) -> float | np.ndarray:
        out = np.clip(np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y), 0.0, 1.0)
        return float(out) if np.ndim(out) == 0 else out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "x": [float(a) for a in self.x],
            "y": [float(b) for b in self.y],
            "n_pairs": self.n_pairs,
            "n_same": self.n_same,
            "prior_pairs": self.prior_pairs,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SameAnimalProbability:
        if d.get("kind") != KIND:
            raise ValueError(f"not an isotonic same-animal probability: kind={d.get('kind')!r}")
        x = np.asarray(d["x"], dtype=np.float64)
        y = np.asarray(d["y"], dtype=np.float64)
        if x.ndim != 1 or x.size == 0 or x.shape != y.shape:
            raise ValueError("a stored probability needs equally many knot scores and probabilities")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0) or y.min() < 0 or y.max() > 1:
            raise ValueError("a stored probability must be monotone with increasing knots in [0, 1]")
        return cls(x, y, int(d["n_pairs"]), int(d["n_same"]), float(d["prior_pairs"]))


def _pav_blocks(
    lo: list[float], hi: list[float], values: np.ndarray, weights: np.ndarray
) -> tuple[list[float], list[float], np.ndarray, np.ndarray]:
    """Pool adjacent blocks until their values never decrease; weighted means."""
    s_lo: list[float] = []
    s_hi: list[float] = []
    s_w: list[float] = []
    s_v: list[float] = []
    for a, b, value, weight in zip(lo, hi, values, weights, strict=True):
        a, b, value, weight = float(a), float(b), float(value), float(weight)
        while s_v and s_v[-1] > value:
            pw = s_w.pop()
            pv = s_v.pop()
            s_hi.pop()
            a = s_lo.pop()
            value = (pv * pw + value * weight) / (pw + weight)
            weight += pw
        s_lo.append(a)
        s_hi.append(b)
        s_w.append(weight)
        s_v.append(value)
    return s_lo, s_hi, np.array(s_w), np.array(s_v)
