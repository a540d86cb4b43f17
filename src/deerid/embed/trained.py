"""Load a model written by `deerid.training.train` as an Embedder-compatible object.

The folder holds `model.json` (recipe, base weights hash, model id) and `tail.pt`
(the trained last blocks, head conv, projection and centre). The frozen front of the
network comes from the published base weights, verified by sha256. Inference is the
training's eval path: squash-resize to the input size, network, GeM, projection,
L2-normalise, subtract the training mean (when the model was trained with it),
L2-normalise; optionally averaged with the mirrored image (`tta_flip`).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deerid.embed.backbones import get_backbone_spec
from deerid.embed.preprocess import BatchedEmbedder
from deerid.embed.weights import load_network, resolve_weights

MODEL_FILE = "model.json"
WEIGHTS_FILE = "tail.pt"


class TrainedModelError(RuntimeError):
    """A trained model folder is missing, incomplete or damaged; the message says which."""


class TrainedEmbedder(BatchedEmbedder):
    """Same contract as `deerid.embed.embedder.Embedder`: `.model_id`, `.dim`, `.backbone`,
    `.input_size`, `.batch_size`, `.device`, `.embed(images) -> float32 (n, dim)` L2-normalised."""

    def __init__(
        self, model_dir: Path, info: dict[str, Any], trunk, tail, device: torch.device, batch_size: int
    ) -> None:
        self.model_dir = model_dir
        self.info = info
        self.model_id: str = info["model_id"]
        self.backbone: str = info["backbone"]
        self.input_size: int = int(info["input_size"])
        self.dim: int = int(info["dim"])
        self.batch_size = batch_size
        self.device = device
        self.tta_flip = bool(info["config"].get("tta_flip", False))
        self._spec = get_backbone_spec(self.backbone)
        self._trunk = trunk.to(device).eval()
        self._tail = tail.to(device).eval()
        self._lock = threading.Lock()

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        with self._lock, torch.inference_mode():
            x = batch.to(self.device)
            v = self._tail(self._trunk(x))
            if self.tta_flip:
                v = F.normalize(v + self._tail(self._trunk(torch.flip(x, dims=[3]))), dim=1)
            v = F.normalize(v - self._tail.center, dim=1)
            return v.float().cpu().numpy()

    def __repr__(self) -> str:
        return f"TrainedEmbedder(model_id={self.model_id!r}, device={self.device.type!r})"


def read_model_info(model_dir: Path) -> dict[str, Any]:
    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE
    if not model_dir.is_dir():
        raise TrainedModelError(f"trained model folder not found: {model_dir}")
    if not path.is_file():
        raise TrainedModelError(
            f"{model_dir} has no {MODEL_FILE}: not a trained model folder (or training did not finish)"
        )
    try:
        info = json.loads(path.read_text())
        for k in (
            "model_id",
            "backbone",
            "input_size",
            "dim",
            "split_block",
            "base_weights_sha256",
            "tail_sha256",
            "config",
        ):
            info[k]
    except (ValueError, KeyError, TypeError) as exc:
        raise TrainedModelError(f"{path} is damaged or not a trained model description: {exc}") from exc
    if info.get("kind") != "trained":
        raise TrainedModelError(f"{path} does not describe a trained model")
    return info


def load_trained_embedder(model_dir: Path, device: str = "cpu", batch_size: int = 16) -> TrainedEmbedder:
    """Load `model_dir` (written by `deerid.training.train`); every file checked by hash."""
    from deerid.training.loop import resolve_device, state_sha256  # training imports embed, not vice versa
    from deerid.training.model import split_network

    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    spec = get_backbone_spec(info["backbone"])
    weights = resolve_weights(spec.weights, expected_sha256=info["base_weights_sha256"])
    network = load_network(spec, weights.path)
    trainable = len(network._blocks) - int(info["split_block"])
    trunk, tail = split_network(network, trainable)
    try:
        state = torch.load(model_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise TrainedModelError(f"{model_dir / WEIGHTS_FILE} is missing; retrain or restore it") from exc
    except Exception as exc:
        raise TrainedModelError(f"{model_dir / WEIGHTS_FILE} cannot be read: {exc}") from exc
    if not isinstance(state, dict) or state_sha256(state) != info["tail_sha256"]:
        raise TrainedModelError(
            f"{model_dir / WEIGHTS_FILE} does not match the hash in {MODEL_FILE}: the file is damaged. "
            "Restore it or retrain; a different file would silently change every vector."
        )
    tail.load_state_dict(state, strict=True)
    return TrainedEmbedder(model_dir, info, trunk, tail, resolve_device(device), batch_size)
