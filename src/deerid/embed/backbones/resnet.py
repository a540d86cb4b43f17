"""ResNet50 (v1.5: stride in the 3x3 conv) in plain PyTorch.

Module names match torchvision's `resnet50`, so its published state dicts
(e.g. IMAGENET1K_V2) load with `strict=True` without torchvision installed.
"""

from __future__ import annotations

import torch
from torch import nn

FEATURE_DIM = 2048
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
NATIVE_SIZE = 224
_LAYERS = (3, 4, 6, 3)
_EXPANSION = 4


class Bottleneck(nn.Module):
    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * _EXPANSION
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """Backbone whose `forward_features` returns the (n, 2048, h, w) layer4 activations."""

    native_size = NATIVE_SIZE

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = 64
        stages: list[nn.Sequential] = []
        for i, blocks in enumerate(_LAYERS):
            width = 64 * 2**i
            stride = 1 if i == 0 else 2
            layer = [Bottleneck(in_ch, width, stride)]
            in_ch = width * _EXPANSION
            layer += [Bottleneck(in_ch, width, 1) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))

    @property
    def classifier_weight(self) -> torch.Tensor:
        return self.fc.weight
