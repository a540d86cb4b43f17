"""How good a set of deer profiles is, given each image's true individual.

A partition is given as `founder`: for every image, the index of the image that
founded its profile (a founder points at itself). That one array says both
which images share a profile and which images were matched rather than founding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class OpenSetMetrics:
    """Quality of the profiles one stream produced (or the mean over several streams).

    - BCubed precision: per image, the share of its profile that is its own individual;
      averaged over images. Recall: per image, the share of its individual's images
      that landed in its profile. F1 is their harmonic mean.
    - False-merge rate: among images that *matched* an existing profile, the share whose
      individual differs from that of the image that founded the profile. The founder
      is what a user sees as "that deer", and unlike a majority it never changes after
      the match, so each match is right or wrong at the moment it is made. 0 when
      nothing matched (no match, no false merge).
    - Profiles per individual: distinct profiles an individual's images are spread over,
      averaged over individuals (1.0 = never split).
    - Singleton rate: share of profiles that hold a single image.
    """

    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    false_merge_rate: float
    profiles_per_individual: float
    singleton_rate: float
    n_profiles: float  # floats: a mean over orders need not be whole
    n_matched: float
    n_false_merges: float

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


def partition_metrics(founder: np.ndarray, individual: np.ndarray) -> OpenSetMetrics:
    """Metrics of the partition `founder` (see module doc) against true `individual` codes."""
    founder = np.asarray(founder, dtype=np.int64)
    individual = np.asarray(individual, dtype=np.int64)
    n = len(founder)
    if n == 0 or len(individual) != n:
        raise ValueError(f"need one founder per image and at least one image: {n} vs {len(individual)}")
    if (founder < 0).any() or (founder >= n).any() or (founder[founder] != founder).any():
        raise ValueError("every founder must be an image that founded its own profile")

    # Cells of the profile × individual contingency table, as counts.
    cells, cell_count = np.unique(np.stack([founder, individual], axis=1), axis=0, return_counts=True)
    profile_size = np.bincount(founder, minlength=n)
    individual_size = np.bincount(individual)
    squared = cell_count.astype(np.float64) ** 2
    precision = float(np.sum(squared / profile_size[cells[:, 0]]) / n)
    recall = float(np.sum(squared / individual_size[cells[:, 1]]) / n)
    f1 = 2 * precision * recall / (precision + recall)

    matched = founder != np.arange(n)
    false = matched & (individual[founder] != individual)
    n_matched = int(matched.sum())
    n_profiles = int((~matched).sum())
    return OpenSetMetrics(
        bcubed_precision=precision,
        bcubed_recall=recall,
        bcubed_f1=f1,
        false_merge_rate=float(false.sum()) / n_matched if n_matched else 0.0,
        profiles_per_individual=len(cells) / int((individual_size > 0).sum()),
        singleton_rate=float((profile_size[~matched] == 1).sum()) / n_profiles,
        n_profiles=float(n_profiles),
        n_matched=float(n_matched),
        n_false_merges=float(false.sum()),
    )


def mean_metrics(runs: Sequence[OpenSetMetrics]) -> OpenSetMetrics:
    """Field-wise mean over runs (e.g. arrival orders)."""
    if not runs:
        raise ValueError("no runs to average")
    return OpenSetMetrics(
        **{f.name: float(np.mean([getattr(r, f.name) for r in runs])) for f in fields(OpenSetMetrics)}
    )
