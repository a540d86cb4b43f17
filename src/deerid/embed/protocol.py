"""What the rest of deerid needs of an embedder, pretrained or trained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image


class EmbedderLike(Protocol):
    model_id: str
    input_size: int

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray: ...
