"""How a crop is resized for a network, without importing torch (the decode thread and the
API import this; `deerid.embed.preprocess` builds the normalised batches)."""

from __future__ import annotations

import numpy as np
from PIL import Image

Pixels = Image.Image | np.ndarray
"""A crop: a PIL image of any size and mode, or `squash`'s (size, size, 3) uint8 RGB array."""


def squash(image: Image.Image, size: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB: the crop resized as every embedder's network sees it.

    Crops are squashed to a square rather than padded or centre-cropped: a
    detection box is already tight on the animal, and cropping would cut off
    the flanks whose markings carry the identity. Callers that prepare crops
    ahead (the decode thread of `deerid.reid.service.embed_detections`) hold
    these instead of the crops, so what waits is at most size² × 3 bytes a crop.
    """
    return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
