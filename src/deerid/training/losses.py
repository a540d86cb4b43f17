"""Metric-learning losses: (sub-center) ArcFace and batch-hard triplet."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SubCenterArcFace(nn.Module):
    """ArcFace (additive angular margin) with k sub-centres per class (k=1: plain ArcFace).

    Sub-centres let one identity keep e.g. a left-flank and a right-flank centre.
    """

    def __init__(
        self,
        dim: int,
        n_classes: int,
        *,
        k: int = 1,
        scale: float = 30.0,
        margin: float = 0.3,
        label_smoothing: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.k, self.scale, self.margin, self.label_smoothing = k, scale, margin, label_smoothing
        w = torch.randn(n_classes * k, dim, generator=generator) / math.sqrt(dim)
        self.weight = nn.Parameter(w)
        self.n_classes = n_classes

    def init_from(self, vectors: torch.Tensor, labels: torch.Tensor) -> None:
        """Start each class centre at the mean of its (normalised) vectors: the first
        steps then fine-tune instead of chasing random centres."""
        with torch.no_grad():
            for c in range(self.n_classes):
                m = vectors[labels == c].mean(0)
                for j in range(self.k):
                    self.weight[c * self.k + j] = F.normalize(m, dim=0) + 0.01 * self.weight[c * self.k + j]

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1))
        cos = cos.view(-1, self.n_classes, self.k).amax(dim=2).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cos)
        target = F.one_hot(labels, self.n_classes).bool()
        logits = torch.where(target, torch.cos(theta + self.margin), cos) * self.scale
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)


def batch_hard_triplet(emb: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Hardest positive and hardest negative per anchor, cosine distance."""
    emb = F.normalize(emb, dim=1)
    dist = 1 - emb @ emb.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    pos = (dist * (same & ~eye)).amax(dim=1)
    neg = dist.masked_fill(same, 4.0).amin(dim=1)
    valid = (same & ~eye).any(dim=1) & (~same).any(dim=1)
    if not valid.any():
        return emb.sum() * 0.0
    return F.relu(pos - neg + margin)[valid].mean()
