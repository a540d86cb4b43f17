"""DEERID_RUNTIME=onnx: the backbone + head on ONNX Runtime give PyTorch's vectors on real feeder
crops (within 1e-4, same model id), the export is cached and reused, and a damaged cached export
is rebuilt, never trusted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "onnxruntime", reason="onnxruntime is not installed (pip install '.[onnx]'); the onnx runtime is opt-in"
)

from conftest import FEEDER, FEEDER_JSON
from deerid.core.config import DEFAULT_BACKBONE, Settings
from deerid.embed.embedder import Embedder, clear_embedder_cache, get_embedder
from deerid.embed.onnx_runtime import (
    ONNX_FILE,
    PARITY_TOLERANCE,
    RECORD_FILE,
    OnnxEmbedder,
    OnnxRuntimeError,
    cpu_cores,
)
from deerid.ingest.crop import crop_boxes

N_PHOTOS = 8


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_embedder_cache()


@pytest.fixture(scope="module")
def crops():
    """Every animal box of the first feeder photos, cut as the ingest cuts them."""
    images = json.loads(FEEDER_JSON.read_text())["images"]
    out = []
    for entry in images[:N_PHOTOS]:
        boxes = [d["bbox"] for d in entry["detections"] if d["category"] == "1"]
        out += [c.image for c in crop_boxes(FEEDER / entry["file"], boxes, target_size=240) if c.image]
    assert len(out) >= 8
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One data dir for the module, so the export happens once (test order: parity first)."""
    return tmp_path_factory.mktemp("onnx")


def _settings(data_dir: Path, runtime: str) -> Settings:
    return Settings(
        data_dir=data_dir, backbone=DEFAULT_BACKBONE, device="cpu", embed_batch_size=4, runtime=runtime
    )


def test_runtime_setting_reads_environment(monkeypatch) -> None:
    monkeypatch.delenv("DEERID_RUNTIME", raising=False)
    assert Settings().runtime == "torch"
    monkeypatch.setenv("DEERID_RUNTIME", "onnx")
    assert Settings().runtime == "onnx"
    monkeypatch.setenv("DEERID_RUNTIME", "tensorrt")
    with pytest.raises(ValueError, match="runtime"):
        Settings()


def test_onnx_matches_pytorch_on_feeder_crops(data_dir: Path, crops) -> None:
    torch_embedder = get_embedder(_settings(data_dir, "torch"))
    onnx_embedder = get_embedder(_settings(data_dir, "onnx"))
    assert isinstance(torch_embedder, Embedder)
    assert isinstance(onnx_embedder, OnnxEmbedder)
    assert onnx_embedder.exported
    assert onnx_embedder.threads == cpu_cores()
    assert onnx_embedder.model_id == torch_embedder.model_id
    assert onnx_embedder.dim == torch_embedder.dim

    expected = torch_embedder.embed(crops)
    got = onnx_embedder.embed(crops)
    assert got.dtype == np.float32
    assert got.shape == expected.shape == (len(crops), 512)
    assert np.abs(got - expected).max() <= PARITY_TOLERANCE
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # Same nearest neighbour for every crop: matching cannot tell the runtimes apart.
    np.testing.assert_array_equal(
        np.argsort(-(got @ got.T), axis=1)[:, 1], np.argsort(-(expected @ expected.T), axis=1)[:, 1]
    )

    path = data_dir / "models" / onnx_embedder.model_id / ONNX_FILE
    record = json.loads(path.with_name(RECORD_FILE).read_text())
    assert record["model_id"] == onnx_embedder.model_id
    assert record["parity_max_abs"] <= PARITY_TOLERANCE


def test_export_is_reused_on_a_second_start(data_dir: Path, crops) -> None:
    first = get_embedder(_settings(data_dir, "onnx"))
    path = data_dir / "models" / first.model_id / ONNX_FILE
    before = path.stat()
    vectors = first.embed(crops[:4])

    clear_embedder_cache()
    second = get_embedder(_settings(data_dir, "onnx"))
    assert second is not first
    assert not second.exported
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    np.testing.assert_array_equal(second.embed(crops[:4]), vectors)
    # No temporary files left beside the model.
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing record"])
def test_damaged_cached_export_is_rebuilt(data_dir: Path, crops, damage: str) -> None:
    reference = get_embedder(_settings(data_dir, "torch")).embed(crops[:4])
    path = data_dir / "models" / reference_model_id(data_dir) / ONNX_FILE
    if damage == "garbage":
        path.write_bytes(b"not an onnx model\x00" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.with_name(RECORD_FILE).unlink()

    embedder = get_embedder(_settings(data_dir, "onnx"))
    assert embedder.exported
    assert np.abs(embedder.embed(crops[:4]) - reference).max() <= PARITY_TOLERANCE


def test_unloadable_export_with_a_matching_record_is_a_clear_error(data_dir: Path) -> None:
    """A file that its record vouches for but ONNX Runtime cannot load (e.g. written by a newer
    exporter) is not silently replaced: the error names the file and the way out."""
    model_dir = data_dir / "models" / reference_model_id(data_dir)
    path = model_dir / ONNX_FILE
    path.write_bytes(b"not an onnx model")
    record_path = path.with_name(RECORD_FILE)
    record = json.loads(record_path.read_text())
    record["onnx_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    record_path.write_text(json.dumps(record))

    with pytest.raises(OnnxRuntimeError, match=r"cannot load .*model\.onnx.*DEERID_RUNTIME=torch"):
        get_embedder(_settings(data_dir, "onnx"))
    record_path.unlink()  # later tests (if any) start from a clean export


def reference_model_id(data_dir: Path) -> str:
    return get_embedder(_settings(data_dir, "torch")).model_id
