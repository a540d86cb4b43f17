"""PIL crops → normalised input tensors for a backbone."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image


def to_batch(
    images: Sequence[Image.Image], size: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """(n, 3, size, size) float32 tensor.

    Crops are squashed to a square rather than padded or centre-cropped: a
    detection box is already tight on the animal, and cropping would cut off
    the flanks whose markings carry the identity.
    """
    arrays = [
        np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)) for img in images
    ]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.sub_(mean_t).div_(std_t)


def embed_batches(
    images: Sequence[Image.Image],
    *,
    batch_size: int,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    dim: int,
    forward: Callable[[torch.Tensor], np.ndarray],
) -> np.ndarray:
    """Run `forward` over the images in batches; (n, dim) float32, input order kept."""
    if len(images) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    chunks = [
        forward(to_batch(images[start : start + batch_size], size, mean, std))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks)
