"""What the rest of deerid needs of an embedder, pretrained or trained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from deerid.embed.resize import Pixels


class EmbedderLike(Protocol):
    model_id: str
    input_size: int

    def embed(self, images: Sequence[Pixels]) -> np.ndarray:
        """float32 (n, dim) L2-normalised rows, one per crop: a PIL image, or a (input_size,
        input_size, 3) uint8 RGB array as `deerid.embed.resize.squash` makes it."""
        ...
