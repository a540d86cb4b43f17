"""deerid.training end to end on a tiny real set: determinism, resume, bad input, loading."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deerid.embed.trained import TrainedModelError, load_trained_embedder
from deerid.evaluation.retrieval import load_identity_folder
from deerid.training import TrainConfig, TrainingDataError, progress_line, train

NYALA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyala" / "train"

# Small and fast: 64 px, only the last block trained, 1 augmented view, no validation split.
CONFIG = TrainConfig(
    input_size=64,
    trainable_blocks=1,
    n_aug_views=1,
    epochs=3,
    batch_size=8,
    val_fraction=0.0,
    seed=3,
)


def _tiny_samples(tmp: Path) -> list[tuple[Path, str, str]]:
    items = load_identity_folder(NYALA)
    by_ind: dict[str, list] = {}
    for it in items:
        by_ind.setdefault(it[1], []).append(it)
    inds = sorted(by_ind)[:5]
    samples = [it for ind in inds[:4] for it in by_ind[ind][:3]]
    samples.append(by_ind[inds[4]][0])  # an individual with a single photo
    bad = tmp / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    samples.append((bad, inds[0], "99"))
    return samples


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    samples = _tiny_samples(tmp)
    events: list[dict] = []
    model = train(samples, CONFIG, tmp / "model", progress=events.append)
    return samples, model, events, tmp


def test_trains_counts_bad_input_and_reports_progress(trained):
    _, model, events, _ = trained
    data = model.info["data"]
    assert data["skipped_unreadable"] == 1 and "broken.jpg" in data["skipped"][0][0]
    assert data["individuals"] == 5 and data["single_photo_individuals"] == 1 and data["images"] == 13
    epochs = [e for e in events if e["phase"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert all(np.isfinite(e["loss"]) and e["seconds"] >= 0 and e["eta_s"] >= 0 for e in epochs)
    assert events[-1]["phase"] == "done"
    lines = [progress_line(e) for e in events]
    assert any(line.startswith("epoch 3/3  loss ") and "ETA" in line for line in lines)
    assert any(line.startswith("caching frozen features") for line in lines)
    assert (
        model.model_id.startswith("efficientnet_lite1-64-ft-") and len(model.model_id.rsplit("-", 1)[1]) == 12
    )
    saved = json.loads((model.model_dir / "model.json").read_text())
    assert saved["model_id"] == model.model_id and saved["seed"] == 3
    assert not (model.model_dir / "checkpoint.pt").exists() and not (model.model_dir / "cache").exists()


def test_loads_as_embedder(trained):
    samples, model, _, _ = trained
    emb = load_trained_embedder(model.model_dir, device="cpu", batch_size=4)
    imgs = [Image.open(p) for p, _, _ in samples[:5]]
    v = emb.embed(imgs)
    assert v.shape == (5, 512) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert emb.model_id == model.model_id and emb.dim == 512 and emb.input_size == 64
    assert emb.backbone == "efficientnet_lite1" and "-ft-" in emb.model_id
    assert emb.embed([]).shape == (0, 512)
    # Batching does not change vectors.
    assert np.allclose(load_trained_embedder(model.model_dir, batch_size=1).embed(imgs), v, atol=1e-5)


def test_deterministic_and_rerun_is_cheap(trained, tmp_path):
    samples, model, _, _ = trained
    again = train(samples, CONFIG, tmp_path / "again")
    assert again.model_id == model.model_id
    assert again.info["tail_sha256"] == model.info["tail_sha256"]
    events: list[dict] = []
    reused = train(samples, CONFIG, tmp_path / "again", progress=events.append)
    assert reused.model_id == model.model_id and events == [
        {"phase": "done", "reused": True, "model_id": model.model_id}
    ]
    other = train(samples, replace(CONFIG, seed=4, epochs=1), tmp_path / "other")
    assert other.model_id != model.model_id


def test_resumes_after_interruption(trained, tmp_path):
    samples, model, _, _ = trained

    class Stop(Exception):
        pass

    def stop_after_two(e: dict) -> None:
        if e["phase"] == "epoch" and e["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train(samples, CONFIG, tmp_path / "m", progress=stop_after_two)
    assert (tmp_path / "m" / "checkpoint.pt").is_file()
    events: list[dict] = []
    resumed = train(samples, CONFIG, tmp_path / "m", progress=events.append)
    assert {"phase": "resume", "epoch": 2} in events
    assert [e["epoch"] for e in events if e["phase"] == "epoch"] == [3]
    assert resumed.model_id == model.model_id


def test_refuses_fewer_than_two_individuals(tmp_path):
    one = [it for it in load_identity_folder(NYALA) if it[1] == sorted(p.name for p in NYALA.iterdir())[0]]
    with pytest.raises(TrainingDataError, match="at least 2 individuals"):
        train(one, CONFIG, tmp_path / "m")
    with pytest.raises(TrainingDataError, match="at least 2 individuals"):
        train([], CONFIG, tmp_path / "m")


def test_damaged_or_missing_model_is_refused(trained, tmp_path):
    _, model, _, _ = trained
    with pytest.raises(TrainedModelError, match="not found"):
        load_trained_embedder(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(model.model_dir, broken)
    data = bytearray((broken / "tail.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor data
    (broken / "tail.pt").write_bytes(bytes(data))
    with pytest.raises(TrainedModelError):
        load_trained_embedder(broken)
    (broken / "model.json").write_text("{")
    with pytest.raises(TrainedModelError, match="damaged"):
        load_trained_embedder(broken)


def test_zero_epochs_reproduces_the_untrained_embedder(trained, tmp_path):
    """The trainable part starts as the shipped head, and inference preprocesses like Embedder."""
    from deerid.embed.backbones import get_backbone_spec
    from deerid.embed.embedder import Embedder
    from deerid.embed.weights import resolve_weights

    samples, _, _, _ = trained
    model = train(samples, replace(CONFIG, epochs=0), tmp_path / "zero")
    spec = get_backbone_spec("efficientnet_lite1")
    base = Embedder(spec, resolve_weights(spec.weights), models_dir=tmp_path / "models", input_size=64)
    imgs = [Image.open(p) for p, _, _ in samples[:4]]
    mine = load_trained_embedder(model.model_dir).embed(imgs)
    assert model.model_id != base.model_id
    assert np.allclose(mine, base.embed(imgs), atol=1e-4)
