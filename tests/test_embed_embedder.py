"""The Embedder contract: shape, normalisation, stable model ids, saved heads, determinism, on eager
PyTorch and on the default runtime (ONNX Runtime on the CPU)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deerid.core.config import Settings
from deerid.core.files import sha256_file
from deerid.embed import head as head_module
from deerid.embed.backbones.resnet import ResNet50
from deerid.embed.cache import ModelCache
from deerid.embed.embedder import (
    available_backbones,
    get_embedder,
    make_model_id,
)
from deerid.embed.head import HeadConfig, build_projection
from deerid.embed.weights import WeightsHashMismatchError

REPO = Path(__file__).resolve().parents[1]
NYALA = REPO / ".." / "shared" / "data" / "nyala" / "train"
PHOTOS = [
    NYALA / "100" / "124_leftphoto.jpg",
    NYALA / "100" / "124_rightphoto.jpg",
    NYALA / "101" / "125_leftphoto.jpg",
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Eager PyTorch: these tests are about the Embedder and its head, and would each export the
    # network again in their fresh data dir; the default runtime gets the contract test below.
    return Settings(
        data_dir=tmp_path, backbone="efficientnet_lite0", device="cpu", embed_batch_size=2, runtime="torch"
    )


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.open(p) for p in PHOTOS]


def test_available_backbones() -> None:
    assert available_backbones() == [
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
        "resnet50",
    ]


def test_unknown_backbone_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"unknown backbone 'vgg16'; available: efficientnet_lite0, .*resnet50"
    ):
        get_embedder(Settings(data_dir=tmp_path, backbone="vgg16"))


@pytest.mark.parametrize("runtime", ["torch", "auto"])
def test_embed_contract(settings: Settings, photos: list[Image.Image], runtime: str) -> None:
    """Shape, dtype, unit norm, model id format, empty input, batching not changing vectors, grey
    and RGBA crops; for eager PyTorch and for the default runtime."""
    emb = get_embedder(settings.model_copy(update={"runtime": runtime}))
    assert (emb.backbone, emb.input_size, emb.dim) == ("efficientnet_lite0", 224, 512)
    assert re.fullmatch(r"efficientnet_lite0-224-[0-9a-f]{12}", emb.model_id)
    vectors = emb.embed(photos)
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert emb.embed([]).shape == (0, 512)
    # Batching (size 2 here) must not change vectors: compare with one-at-a-time.
    singles = np.concatenate([emb.embed([p]) for p in photos])
    np.testing.assert_allclose(vectors, singles, atol=1e-5)
    # Different photos give different vectors; the same photo in grey/RGBA still embeds.
    assert float(vectors[0] @ vectors[2]) < 0.999
    assert emb.embed([photos[0].convert("L"), photos[0].convert("RGBA")]).shape == (2, 512)


def test_one_instance_per_settings_and_thread_safe(settings: Settings, photos: list[Image.Image]) -> None:
    cache = ModelCache()
    emb = get_embedder(settings, cache)
    assert get_embedder(settings.model_copy(), cache) is emb
    expected = emb.embed(photos)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(emb.embed(photos))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_head_is_saved_then_loaded_not_regenerated(
    settings: Settings, photos: list[Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = get_embedder(settings)
    folder = settings.models_dir / first.model_id
    saved = json.loads((folder / "model.json").read_text())
    assert saved["model_id"] == first.model_id and saved["head"]["projection"] == "orthogonal"
    assert (folder / "head.pt").is_file()
    expected = first.embed(photos[:1])

    def no_regeneration(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("head regenerated although it was saved")

    monkeypatch.setattr(head_module, "build_projection", no_regeneration)
    second = get_embedder(settings)
    assert second is not first and second.model_id == first.model_id
    np.testing.assert_array_equal(second.embed(photos[:1]), expected)


def test_damaged_head_file_is_refused(settings: Settings) -> None:
    emb = get_embedder(settings)
    head_file = settings.models_dir / emb.model_id / "head.pt"
    torch.save({"projection": torch.zeros(1280, 512)}, head_file)
    with pytest.raises(RuntimeError, match="damaged"):
        get_embedder(settings)


def test_model_ids_differ_when_vectors_would() -> None:
    head = HeadConfig(in_dim=1280)
    base = make_model_id("efficientnet_lite2", 260, "ab" * 32, head)
    assert base == make_model_id("efficientnet_lite2", 260, "ab" * 32, HeadConfig(in_dim=1280))
    others = {
        make_model_id("efficientnet_lite1", 260, "ab" * 32, head),
        make_model_id("efficientnet_lite2", 320, "ab" * 32, head),
        make_model_id("efficientnet_lite2", 260, "cd" * 32, head),
        make_model_id("efficientnet_lite2", 260, "ab" * 32, HeadConfig(in_dim=1280, seed=1)),
        make_model_id("efficientnet_lite2", 260, "ab" * 32, HeadConfig(in_dim=1280, pooling="avg")),
    }
    assert base not in others and len(others) == 5


def test_different_backbones_give_different_ids_and_vectors(
    tmp_path: Path, photos: list[Image.Image]
) -> None:
    lite0 = get_embedder(Settings(data_dir=tmp_path, backbone="efficientnet_lite0", device="cpu"))
    lite1 = get_embedder(Settings(data_dir=tmp_path, backbone="efficientnet_lite1", device="cpu"))
    assert lite0.model_id != lite1.model_id
    assert lite1.model_id.startswith("efficientnet_lite1-240-")
    similarity = float(lite0.embed(photos[:1])[0] @ lite1.embed(photos[:1])[0])
    assert abs(similarity) < 0.5  # unrelated spaces: mixing them in one index would be meaningless


def test_projection_is_orthonormal_and_seeded() -> None:
    q = build_projection(HeadConfig(in_dim=1280)).double()
    np.testing.assert_allclose((q.T @ q).numpy(), np.eye(512), atol=1e-5)
    assert torch.equal(build_projection(HeadConfig(in_dim=1280)), build_projection(HeadConfig(in_dim=1280)))
    assert not torch.equal(q.float(), build_projection(HeadConfig(in_dim=1280, seed=1)))


def test_fc_svd_projection_uses_the_classifier() -> None:
    torch.manual_seed(0)
    weight = torch.randn(1000, 1280)
    q = build_projection(HeadConfig(in_dim=1280, projection="fc_svd"), weight).double()
    np.testing.assert_allclose((q.T @ q).numpy(), np.eye(512), atol=1e-5)
    # The leading column is the classifier's strongest input direction.
    top = torch.linalg.svd(weight.double(), full_matrices=False).Vh[0]
    assert abs(float(top @ q[:, 0])) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="classifier weight"):
        build_projection(HeadConfig(in_dim=1280, projection="fc_svd"))


def test_resnet50_with_user_weights(tmp_path: Path, photos: list[Image.Image]) -> None:
    torch.manual_seed(7)
    path = tmp_path / "my-resnet50.pth"
    torch.save({"state_dict": ResNet50().state_dict()}, path)  # a training checkpoint wrapper
    unstated = Settings(data_dir=tmp_path, backbone="resnet50", device="cpu", weights=path)
    with pytest.raises(WeightsHashMismatchError):
        get_embedder(unstated)
    stated = unstated.model_copy(update={"weights_sha256": sha256_file(path)})
    emb = get_embedder(stated)
    assert emb.model_id.startswith("resnet50-224-")
    vectors = emb.embed(photos[:2])
    assert vectors.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_input_size_setting(tmp_path: Path, photos: list[Image.Image]) -> None:
    emb = get_embedder(Settings(data_dir=tmp_path, backbone="efficientnet_lite0", embed_input_size=256))
    assert emb.input_size == 256
    assert emb.model_id.startswith("efficientnet_lite0-256-")
    assert emb.embed(photos[:1]).shape == (1, 512)


_CHILD = """
import json, sys
from PIL import Image
from deerid.core.config import Settings
from deerid.embed.embedder import get_embedder
emb = get_embedder(Settings(data_dir=sys.argv[1], backbone="efficientnet_lite0", device="cpu"))
vectors = emb.embed([Image.open(p) for p in sys.argv[2:]])
print(json.dumps({"model_id": emb.model_id, "vectors": vectors.tolist()}))
"""


def test_same_photo_same_vector_in_separate_processes(tmp_path: Path) -> None:
    def run(data_dir: Path) -> dict[str, object]:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(data_dir), *map(str, PHOTOS[:2])],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return json.loads(out.stdout)

    first = run(tmp_path)  # generates and saves the head
    second = run(tmp_path)  # loads the saved head
    fresh = run(tmp_path / "elsewhere")  # regenerates it from the seed in an empty data dir
    assert first["model_id"] == second["model_id"] == fresh["model_id"]
    np.testing.assert_array_equal(np.array(first["vectors"]), np.array(second["vectors"]))
    np.testing.assert_allclose(np.array(first["vectors"]), np.array(fresh["vectors"]), atol=1e-6)


def test_squashed_arrays_embed_like_the_crops_they_came_from(
    settings: Settings, photos: list[Image.Image]
) -> None:
    """The decode thread hands `squash`ed uint8 arrays instead of PIL crops: they give bit-for-bit
    the vectors of the crops themselves (same resize, done once), mixed in one batch too; an array
    of another size is resized like an image."""
    from deerid.embed.resize import squash

    emb = get_embedder(settings)
    expected = emb.embed(photos)
    arrays = [squash(p, emb.input_size) for p in photos]
    assert all(a.shape == (224, 224, 3) and a.dtype == np.uint8 for a in arrays)
    np.testing.assert_array_equal(emb.embed(arrays), expected)
    np.testing.assert_array_equal(emb.embed([arrays[0], photos[1], arrays[2]]), expected)
    odd = np.asarray(photos[0].convert("RGB"))  # full size, not squashed
    np.testing.assert_array_equal(emb.embed([odd, photos[1]]), expected[:2])  # same batch as expected
