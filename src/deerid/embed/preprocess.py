"""PIL crops → normalised input tensors for a backbone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from deerid.embed.resize import Pixels, squash


def _squashed(image: Pixels, size: int) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.shape == (size, size, 3) and image.dtype == np.uint8:
            return image  # already squashed: the same bytes `squash` gives, no second resize
        image = Image.fromarray(image)
    return squash(image, size)


def to_batch(
    images: Sequence[Pixels], size: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """(n, 3, size, size) float32 tensor, normalised with the backbone's mean and std."""
    arrays = [_squashed(img, size) for img in images]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.sub_(mean_t).div_(std_t)


class BatchedEmbedder:
    """`embed` for any embedder that supplies `_forward(batch) -> np.ndarray`: crops are
    resized and normalised as its backbone was trained, in batches, input order kept."""

    batch_size: int
    input_size: int
    dim: int
    _spec: Any  # BackboneSpec: mean and std of its training

    def embed(self, images: Sequence[Pixels]) -> np.ndarray:
        """float32 (n, dim), each row L2-normalised; input order is kept."""
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        size, mean, std = self.input_size, self._spec.mean, self._spec.std
        return np.concatenate(
            [
                self._forward(to_batch(images[start : start + self.batch_size], size, mean, std))
                for start in range(0, len(images), self.batch_size)
            ]
        )

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        raise NotImplementedError
