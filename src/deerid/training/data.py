"""Check and describe the training samples: readable images, individuals, splits, hashes."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deerid.errors import Invalid

Sample = tuple[Path, str, str]  # (path, individual, sighting) as from load_identity_folder


class TrainingDataError(Invalid):
    """The samples cannot train a model; the message says why and what to do."""


@dataclass
class CheckedData:
    samples: list[Sample]  # readable ones, input order kept
    sha256: list[str]  # of each readable file's bytes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def individuals(self) -> list[str]:
        return sorted({s[1] for s in self.samples})

    def counts(self) -> dict[str, int]:
        per = Counter(s[1] for s in self.samples)
        return {
            "images": len(self.samples),
            "individuals": len(per),
            "single_photo_individuals": sum(1 for v in per.values() if v == 1),
            "skipped_unreadable": len(self.skipped),
        }

    def combined_hash(self) -> str:
        """One hash over (individual, sighting, file sha256), order-independent."""
        rows = sorted(f"{s[1]}\x00{s[2]}\x00{h}" for s, h in zip(self.samples, self.sha256, strict=True))
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def check_samples(samples: list[Sample]) -> CheckedData:
    """Drop unreadable images (counted in `skipped`), refuse data that cannot train."""
    good: list[Sample] = []
    hashes: list[str] = []
    skipped: list[tuple[str, str]] = []
    for path, individual, sighting in samples:
        path = Path(path)
        try:
            data = path.read_bytes()
            with Image.open(path) as img:
                img.verify()  # cheap structural check
            with Image.open(path) as img:
                img.convert("RGB").load()  # verify() misses truncated pixel data
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
            continue
        good.append((path, str(individual), str(sighting)))
        hashes.append(hashlib.sha256(data).hexdigest())
    checked = CheckedData(good, hashes, skipped)
    n_ind = len(checked.individuals)
    if n_ind < 2:
        raise TrainingDataError(
            f"training needs photos of at least 2 individuals to tell apart; got {n_ind} "
            f"({len(good)} readable images, {len(skipped)} unreadable skipped). "
            "Label more individuals (one folder per individual) and try again."
        )
    return checked


def split_individuals(
    individuals: list[str], fraction: float, seed: int, *, min_val: int = 2, min_train: int = 2
) -> tuple[list[str], list[str]]:
    """(train, validation) individuals; validation empty when there are too few to spare."""
    ids = sorted(individuals)
    n_val = round(len(ids) * fraction)
    if fraction <= 0 or n_val < min_val or len(ids) - n_val < min_train:
        return ids, []
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in order[:n_val])
    train = sorted(ids[i] for i in order[n_val:])
    return train, val
