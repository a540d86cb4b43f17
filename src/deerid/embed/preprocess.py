"""PIL crops → normalised input tensors for a backbone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


class BatchedEmbedder:
    """`embed` for any embedder that supplies `_forward(batch) -> np.ndarray`: crops are
    resized and normalised as its backbone was trained, in batches, input order kept."""

    batch_size: int
    input_size: int
    dim: int
    _spec: Any  # BackboneSpec: mean and std of its training

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
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
