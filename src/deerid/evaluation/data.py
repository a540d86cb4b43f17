"""A labelled evaluation set: normalised vectors, identity and sighting codes, and their similarities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True, eq=False)
class LabelledSet:
    """Images as rows: `vectors` L2-normalised (float64), `individual` and `sighting` as int codes.

    Sighting codes are unique across individuals: two individuals may both have a
    sighting labelled "12" (the label is only a file-name prefix), and those are
    different sightings.
    """

    vectors: np.ndarray
    individual: np.ndarray
    sighting: np.ndarray
    individual_names: tuple[str, ...]

    @classmethod
    def build(cls, vectors: np.ndarray, individuals: Sequence[str], sightings: Sequence[str]) -> LabelledSet:
        x = np.asarray(vectors, dtype=np.float64)
        n = len(individuals)
        if x.ndim != 2 or x.shape[0] != n or len(sightings) != n:
            raise ValueError(
                f"need one vector, individual and sighting per image: "
                f"got vectors {x.shape}, {n} individuals, {len(sightings)} sightings"
            )
        if not np.isfinite(x).all():
            raise ValueError("vectors contain NaN or infinite values")
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError("a zero vector has no direction: cosine similarity is undefined")
        names, individual = np.unique(np.asarray(individuals, dtype=str), return_inverse=True)
        keys = [f"{a}\x00{b}" for a, b in zip(individuals, sightings, strict=True)]
        _, sighting = np.unique(np.asarray(keys, dtype=str), return_inverse=True)
        return cls(x / norms, individual.ravel(), sighting.ravel(), tuple(str(s) for s in names))

    def __len__(self) -> int:
        return len(self.individual)

    @property
    def n_individuals(self) -> int:
        return len(self.individual_names)

    @cached_property
    def similarity(self) -> np.ndarray:
        """(n, n) cosine similarities, computed once and shared by every metric."""
        return self.vectors @ self.vectors.T

    def sightings_per_individual(self) -> np.ndarray:
        """Number of distinct sightings of each individual code."""
        pairs = np.unique(np.stack([self.individual, self.sighting], axis=1), axis=0)
        return np.bincount(pairs[:, 0], minlength=self.n_individuals)


def require_calibration_data(data: LabelledSet) -> None:
    """Open-set calibration needs both kinds of mistake to be possible."""
    if data.n_individuals < 2:
        raise ValueError(f"need at least 2 individuals to measure false merges, got {data.n_individuals}")
    if not (data.sightings_per_individual() >= 2).any():
        raise ValueError(
            "no individual has 2 or more sightings, so no image can rightly match another "
            "(images of one sighting never count as matches)"
        )
