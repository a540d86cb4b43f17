"""ONNX Runtime, the default CPU runtime: the backbone + head on ONNX Runtime give PyTorch's vectors
on real feeder crops (within 1e-4, same model id), the export is the fused graph, it is cached and
reused, a damaged cached export is rebuilt, never trusted, and without onnxruntime the default falls
back to PyTorch with one log line while DEERID_RUNTIME=onnx refuses."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from deerid.core.config import DEFAULT_BACKBONE, Settings
from deerid.embed.embedder import Embedder, get_embedder
from deerid.embed.onnx_runtime import (
    ONNX_FILE,
    PARITY_TOLERANCE,
    RECORD_FILE,
    OnnxEmbedder,
    OnnxRuntimeError,
    cpu_cores,
)
from deerid.ingest.crop import crop_boxes
from support.paths import FEEDER, FEEDER_JSON

N_PHOTOS = 8


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
    """The default is auto; the environment variable picks another, and a runtime we do not have is
    refused at start-up rather than ignored."""
    monkeypatch.delenv("DEERID_RUNTIME", raising=False)
    assert Settings().runtime == "auto"
    monkeypatch.setenv("DEERID_RUNTIME", "torch")
    assert Settings().runtime == "torch"
    monkeypatch.setenv("DEERID_RUNTIME", "onnx")
    assert Settings().runtime == "onnx"
    monkeypatch.setenv("DEERID_RUNTIME", "tensorrt")
    with pytest.raises(ValueError, match="runtime"):
        Settings()


def test_onnx_matches_pytorch_on_feeder_crops(data_dir: Path, crops) -> None:
    """The exported network on real feeder crops: same model id, vectors within 1e-4 of PyTorch's,
    unit length, and every crop keeps its nearest neighbour, so stored vectors of either runtime mix."""
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


def test_default_runtime_on_the_cpu_is_onnx_and_torch_opts_out(data_dir: Path, crops) -> None:
    """DEERID_RUNTIME unset on the CPU gives the ONNX Runtime embedder (the fast one), with PyTorch's
    model id and vectors; DEERID_RUNTIME=torch still gives eager PyTorch."""
    default = get_embedder(Settings(data_dir=data_dir, device="cpu", embed_batch_size=4))
    eager = get_embedder(_settings(data_dir, "torch"))
    assert isinstance(default, OnnxEmbedder) and default.runtime == "onnx"
    assert isinstance(eager, Embedder) and not isinstance(eager, OnnxEmbedder)
    assert default.model_id == eager.model_id
    assert np.abs(default.embed(crops[:4]) - eager.embed(crops[:4])).max() <= PARITY_TOLERANCE


def test_export_is_one_conv_per_convolution_without_pad_chains(data_dir: Path) -> None:
    """TF 'SAME' padding is exported as each Conv's own constant pads: no Pad node and no Shape
    arithmetic left in the backbone (a traced size left 22 Shape→Pad chains ONNX Runtime could not
    fuse, running at half speed). Strided convolutions keep their asymmetric TF padding."""
    embedder = get_embedder(_settings(data_dir, "onnx"))
    graph = onnx.load(str(data_dir / "models" / embedder.model_id / ONNX_FILE)).graph
    ops = Counter(node.op_type for node in graph.node)
    assert ops["Pad"] == 0 and ops["Gather"] == 0
    assert ops["Shape"] <= 1  # the head's L2-normalise expands by its input's shape
    assert ops["Conv"] == 64  # Lite1: stem, 21 blocks (1 without expansion), head conv
    pads = [tuple(a.ints) for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "pads"]
    assert len(pads) == 64
    assert any(p[:2] != p[2:] for p in pads)  # e.g. (0, 0, 1, 1) for a 3x3 stride-2 conv on 240 px
    record = json.loads((data_dir / "models" / embedder.model_id / RECORD_FILE).read_text())
    assert record["format"] == 2


def test_without_onnxruntime_the_default_falls_back_to_torch(
    data_dir: Path, crops, monkeypatch, caplog
) -> None:
    """With onnxruntime not importable (a broken or missing wheel), the default runtime embeds on
    PyTorch and says so in one log line; DEERID_RUNTIME=onnx is an error naming the way out."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    expected = get_embedder(_settings(data_dir, "torch")).embed(crops[:2])

    with caplog.at_level(logging.WARNING, logger="deerid.embed.embedder"):
        embedder = get_embedder(Settings(data_dir=data_dir, device="cpu", embed_batch_size=4))
    assert isinstance(embedder, Embedder) and not isinstance(embedder, OnnxEmbedder)
    lines = [r.getMessage() for r in caplog.records if r.name == "deerid.embed.embedder"]
    assert len(lines) == 1 and "PyTorch, not ONNX Runtime" in lines[0] and "onnxruntime" in lines[0]
    np.testing.assert_array_equal(embedder.embed(crops[:2]), expected)

    with pytest.raises(OnnxRuntimeError, match=r"onnxruntime cannot be imported.*DEERID_RUNTIME=torch"):
        get_embedder(_settings(data_dir, "onnx"))


def test_export_is_reused_on_a_second_start(data_dir: Path, crops) -> None:
    """A second start loads the recorded export (same file, same vectors) instead of exporting
    again, and leaves no temporary files."""
    first = get_embedder(_settings(data_dir, "onnx"))
    path = data_dir / "models" / first.model_id / ONNX_FILE
    before = path.stat()
    vectors = first.embed(crops[:4])

    second = get_embedder(_settings(data_dir, "onnx"))
    assert second is not first
    assert not second.exported
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    np.testing.assert_array_equal(second.embed(crops[:4]), vectors)
    # No temporary files left beside the model.
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing record", "older format"])
def test_damaged_cached_export_is_rebuilt(data_dir: Path, crops, damage: str) -> None:
    """A cached export that does not match its record, or was recorded by an older exporter (the slow
    Pad graph), is exported again and gives PyTorch's vectors."""
    reference = get_embedder(_settings(data_dir, "torch")).embed(crops[:4])
    path = data_dir / "models" / reference_model_id(data_dir) / ONNX_FILE
    if damage == "garbage":
        path.write_bytes(b"not an onnx model\x00" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "older format":
        record = json.loads(path.with_name(RECORD_FILE).read_text())
        path.with_name(RECORD_FILE).write_text(json.dumps({**record, "format": 1}))
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
