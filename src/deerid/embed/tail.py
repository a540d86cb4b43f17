"""Split a backbone into a frozen trunk and a trainable tail + head.

Training builds and trains these; a trained model folder is loaded back into the same
pair, which is why they live in `embed` (embed never imports training).

The trunk (stem and early blocks) never changes, so its output can be computed once
per augmented view and cached; training then only runs the last block(s), the
1×1 head conv, GeM pooling and a 512-d projection — a few times cheaper per step on
a CPU than the full network. The projection starts as the shipped seeded orthogonal
matrix, so before the first step the model gives exactly the untrained vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deerid.embed.backbones.efficientnet_lite import EfficientNetLite
from deerid.embed.head import EMBEDDING_DIM, HeadConfig, build_projection


def resolve_device(device: str) -> torch.device:
    """`"auto"` → CUDA when present; an explicit CUDA request without CUDA fails loudly
    rather than quietly running on the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("DEVICE=cuda but no CUDA device is available to torch")
    return torch.device(device)


def n_blocks(network: nn.Module) -> int:
    if not isinstance(network, EfficientNetLite):
        raise ValueError(
            f"training supports the EfficientNet-Lite backbones only, not {type(network).__name__}"
        )
    return len(network._blocks)


class Trunk(nn.Module):
    """Stem + blocks[:split]; frozen, always in eval mode."""

    def __init__(self, network: EfficientNetLite, split: int) -> None:
        super().__init__()
        self.stem = network._conv_stem
        self.bn0 = network._bn0
        self.blocks = nn.ModuleList(network._blocks[:split])
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, _mode: bool = True) -> Trunk:
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn0(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return x


class Tail(nn.Module):
    """blocks[split:] + head conv + GeM + learnt projection → L2-normalised 512-d.

    Batch norm keeps its ImageNet running statistics (eval mode even while training):
    batches of a few identities would give noisy statistics, and frozen ones keep the
    inference path identical to training.
    """

    center: torch.Tensor  # a buffer, registered in __init__

    def __init__(self, network: EfficientNetLite, split: int, gem_p: float = 3.0) -> None:
        super().__init__()
        self.split = split
        self.blocks = nn.ModuleList(network._blocks[split:])
        self.conv_head = network._conv_head
        self.bn1 = network._bn1
        self.gem_p = gem_p
        proj = build_projection(HeadConfig(in_dim=network._conv_head.out_channels, out_dim=EMBEDDING_DIM))
        self.projection = nn.Parameter(proj.clone())
        # Training-data mean of the output vectors, subtracted at inference (0 = off).
        self.register_buffer("center", torch.zeros(EMBEDDING_DIM))
        self.eval()

    def train(self, mode: bool = True) -> Tail:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised 512-d projection of the pooled features."""
        for block in self.blocks:
            x = block(x)
        x = F.relu6(self.bn1(self.conv_head(x)))
        pooled = x.clamp(min=1e-6).pow(self.gem_p).mean(dim=(2, 3)).pow(1.0 / self.gem_p)
        return pooled @ self.projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(x), dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Inference vectors: normalise, subtract the stored centre, normalise again."""
        return F.normalize(self.forward(x) - self.center, dim=1)


def split_network(network: nn.Module, trainable_blocks: int) -> tuple[Trunk, Tail]:
    total = n_blocks(network)
    assert isinstance(network, EfficientNetLite)  # n_blocks has raised for any other backbone
    if not 0 <= trainable_blocks <= total:
        raise ValueError(f"trainable_blocks must be in 0..{total}, got {trainable_blocks}")
    split = total - trainable_blocks
    return Trunk(network, split), Tail(network, split)
