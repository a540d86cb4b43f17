"""The plain-PyTorch backbones load the published weights and compute what they were trained to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from deerid.embed.backbones import BACKBONES, get_backbone_spec
from deerid.embed.backbones.efficientnet_lite import EfficientNetLite, SameConv2d
from deerid.embed.backbones.resnet import ResNet50
from deerid.embed.preprocess import to_batch
from deerid.embed.weights import resolve_weights

MEGADETECTOR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "megadetector"

# Crops of real camera-trap photos, boxes from MegaDetector's own output file,
# with the ImageNet classes a correct network must put first.
CASES = {
    "zebra": ("snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG", {340}),
    "elephant": ("snapshot_kruger_KRU_S1_25_25_R1_KRU_S1_25_R1_IMAG0012.JPG", {101, 386}),  # tusker
    "baboon": ("snapshot_enonkishu_ENO_S1_B05_B05_R2_ENO_S1_B05_R2_IMAG0624.JPG", {372}),
    "peccary": ("wcs_camera_traps_animals_0090_1439.jpg", {341, 342}),  # hog / wild boar
}
ZEBRA_CLASS = 340


def _animal_crops() -> dict[str, Image.Image]:
    detections = json.loads((MEGADETECTOR / "mdv5a.detections.json").read_text())
    by_file = {entry["file"]: entry["detections"] for entry in detections["images"]}
    crops = {}
    for name, (file, _) in CASES.items():
        # The most confident box with a sensible size (the zebra photo's top box is a far-off speck).
        boxes = [d for d in by_file[file] if d["category"] == "1" and d["bbox"][2] * d["bbox"][3] > 0.02]
        x, y, w, h = max(boxes, key=lambda d: d["conf"])["bbox"]
        image = Image.open(MEGADETECTOR / file).convert("RGB")
        iw, ih = image.size
        crops[name] = image.crop((round(x * iw), round(y * ih), round((x + w) * iw), round((y + h) * ih)))
    return crops


@pytest.fixture(scope="module")
def crops() -> dict[str, Image.Image]:
    return _animal_crops()


def _load_lite(name: str) -> EfficientNetLite:
    spec = get_backbone_spec(name)
    model = spec.build()
    state = torch.load(resolve_weights(spec.weights).path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)  # strict: every key and shape must match
    return model.eval()


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_efficientnet_lite_classifies_real_animals(name: str, crops: dict[str, Image.Image]) -> None:
    spec = get_backbone_spec(name)
    model = _load_lite(name)
    batch = to_batch([crops[k] for k in CASES], spec.native_size, spec.mean, spec.std)
    with torch.inference_mode():
        probs = model(batch).softmax(dim=1)
    top1 = probs.argmax(dim=1).tolist()
    for (animal, (_, expected)), predicted in zip(CASES.items(), top1, strict=True):
        assert predicted in expected, f"{name} called the {animal} ImageNet class {predicted}"
    assert probs[0, ZEBRA_CLASS] > 0.7  # confident, not a lucky argmax


def test_lite_preprocessing_matters(crops: dict[str, Image.Image]) -> None:
    """The TF Lite normalisation ((x-127)/128) beats ImageNet mean/std on these weights:
    evidence the constants are the ones the checkpoint was trained with."""
    spec = get_backbone_spec("efficientnet_lite0")
    model = _load_lite("efficientnet_lite0")
    images = [crops[k] for k in CASES]
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with torch.inference_mode():
        ours = model(to_batch(images, 224, spec.mean, spec.std)).softmax(1).max(1).values.mean()
        other = model(to_batch(images, 224, *imagenet)).softmax(1).max(1).values.mean()
    assert ours > other


@pytest.mark.parametrize(("size", "cells"), [(224, 7), (240, 8), (260, 9), (320, 10)])
def test_lite_feature_map_size(size: int, cells: int) -> None:
    model = EfficientNetLite("efficientnet_lite0").eval()
    with torch.inference_mode():
        features = model.forward_features(torch.zeros(1, 3, size, size))
    assert tuple(features.shape) == (1, 1280, cells, cells)


def test_same_padding_is_tensorflows() -> None:
    """TF 'SAME' with stride 2 on an even input pads only bottom/right: with a
    3x3 all-ones kernel, output (0,0) sums the top-left 3x3 window, unpadded."""
    conv = SameConv2d(1, 1, 3, stride=2)
    conv.weight.data.fill_(1.0)
    x = torch.ones(1, 1, 4, 4)
    out = conv(x)
    assert tuple(out.shape) == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_resnet50_matches_torchvision_layout() -> None:
    model = ResNet50()
    state = model.state_dict()
    # torchvision's resnet50: 320 state-dict entries, 25,557,032 parameters.
    assert len(state) == 320
    assert sum(p.numel() for p in model.parameters()) == 25_557_032
    for key in ["conv1.weight", "layer1.0.downsample.0.weight", "layer4.2.bn3.running_var", "fc.bias"]:
        assert key in state
    # v1.5: the stride sits in the 3x3 conv, not the first 1x1.
    assert model.layer2[0].conv1.stride == (1, 1) and model.layer2[0].conv2.stride == (2, 2)
    model.eval()
    with torch.inference_mode():
        assert tuple(model.forward_features(torch.zeros(1, 3, 224, 224)).shape) == (1, 2048, 7, 7)
        assert tuple(model(torch.zeros(1, 3, 224, 224)).shape) == (1, 1000)


def test_registry_names() -> None:
    assert sorted(BACKBONES) == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50"]
    with pytest.raises(ValueError, match="available: efficientnet_lite0, efficientnet_lite1"):
        get_backbone_spec("vit_huge")
